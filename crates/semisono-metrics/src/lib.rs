//! placeholder
pub mod aggregate;
pub mod cls;
pub mod numeric;
pub mod seg;
