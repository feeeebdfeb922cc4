//! Semi-supervised methods behind the `SslMethod` trait, the training loop, checkpoints, evaluation,
//! prediction.
//!
//! This part is framework-free groundwork that the Burn training loop builds on:
//! * [`schedule`]: ramps, thresholds, learning-rate schedule and epoch arithmetic;

pub mod schedule;
