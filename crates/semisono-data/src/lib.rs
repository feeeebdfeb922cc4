//! Data layer of semisono: image I/O, the dataset directory (manifest.jsonl + PNG images and masks),
//! importers for public ultrasound layouts, splits and augmentations. No deep-learning framework here,
//! so this crate builds and tests in seconds.

pub mod augment;
pub mod dataset;
pub mod dicom;
pub mod error;
pub mod export;
pub mod image_io;
pub mod import;
pub mod manifest;
pub mod overlay;
/// The seeded PRNG shared with the phantom generator.
pub use semisono_rng as rng;
pub mod split;
pub mod staged;

pub use dataset::{Dataset, DatasetWriter, NewEntry};
pub use error::{DataError, Result};
pub use image_io::{GrayImage, MaskReport};
pub use manifest::{DatasetInfo, ManifestEntry};
pub use staged::StagedDir;
