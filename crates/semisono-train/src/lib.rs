//! Semi-supervised methods behind the `SslMethod` trait, the training loop, checkpoints, evaluation,
//! prediction.
//!
//! * [`methods`]: the [`methods::SslMethod`] trait, the registry ([`methods::create`]) and the
//!   methods (`supervised`, `hermes`);
//! * [`trainer`]: the training loop ([`trainer::train`]): run directory, logging, evaluation on
//!   val, atomic checkpoints, exact resume;
//! * [`eval`]: per-image and summary metrics ([`eval::evaluate`], [`eval::write_report`]);
//! * [`predict`]: masks, lesion probabilities, classes and saliency of new images at native size.
//! * [`bench`]: training-step and inference timing on synthetic batches (`semisono bench`).
//!
//! The framework-free groundwork:
//! * [`config`]: the typed run configuration (TOML, presets, overrides);
//! * [`schedule`]: ramps, thresholds, learning-rate schedule and epoch arithmetic;
//! * [`loader`]: cached images, deterministic augmented batches, prefetched on worker threads;
//! * [`selector`]: the pseudo-label selectors (dual threshold, fixed threshold, entropy comparison).

pub mod bench;
pub mod config;
pub mod error;
pub mod eval;
pub mod loader;
pub mod methods;
pub mod predict;
pub mod schedule;
pub mod selector;
pub mod trainer;

pub use error::{Result, TrainError};
