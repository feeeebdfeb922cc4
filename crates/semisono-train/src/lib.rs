//! Semi-supervised methods behind the `SslMethod` trait, the training loop, checkpoints, evaluation,
//! prediction.
//!
//! This part is framework-free groundwork that the Burn training loop builds on:
//! * [`config`]: the typed run configuration (TOML, presets, overrides);
//! * [`schedule`]: ramps, thresholds, learning-rate schedule and epoch arithmetic;
//! * [`loader`]: cached images, deterministic augmented batches, prefetched on worker threads;
//! * [`selector`]: the pseudo-label selectors (dual threshold, fixed threshold, entropy comparison).

pub mod config;
pub mod loader;
pub mod schedule;
pub mod selector;
