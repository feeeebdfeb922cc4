//! The error type of training, checkpoints and evaluation.

use std::path::{Path, PathBuf};

use semisono_data::DataError;

use crate::config::ConfigError;
use crate::loader::LoaderError;

/// Everything that can stop a run, an evaluation or a checkpoint load.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// `method` names no registered method.
    #[error("unknown method '{name}'; valid methods: {valid}")]
    UnknownMethod { name: String, valid: String },
    /// A configuration value the code cannot honour (yet): names the key and what to do.
    #[error("configuration: {key}: {message}")]
    Config { key: String, message: String },
    #[error(transparent)]
    ConfigFile(#[from] ConfigError),
    #[error(transparent)]
    Loader(#[from] LoaderError),
    #[error(transparent)]
    Data(#[from] DataError),
    /// A network could not be built (e.g. an unknown backbone).
    #[error("model: {0}")]
    Model(String),
    /// A loss term became NaN or infinite; nothing was applied to the weights at this step.
    #[error(
        "step {step}: loss term '{term}' is not finite ({value}); the run stopped before updating \
         the weights, the last good checkpoint is kept"
    )]
    NonFinite { step: u64, term: String, value: f64 },
    /// Reading or writing a run directory or checkpoint failed.
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    /// The run directory is not in the state the call needs.
    #[error("{path}: {message}")]
    RunDir { path: PathBuf, message: String },
}

impl TrainError {
    pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> Self {
        TrainError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }

    pub(crate) fn config(key: &str, message: impl Into<String>) -> Self {
        TrainError::Config {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
