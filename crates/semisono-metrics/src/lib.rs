//! placeholder
pub mod numeric;
pub mod seg;
