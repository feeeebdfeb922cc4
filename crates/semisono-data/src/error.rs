//! One error type for everything that reads user data. Every variant names the file (and line for
//! list files) and says what to do, because the CLI prints it as is and exits with code 2.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, DataError>;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file exists but its content is unusable (corrupt image, wrong size, bad JSON ...).
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    /// One line of a list / CSV / manifest file is malformed. `line` is 1-based.
    #[error("{path}:{line}: {message}")]
    BadLine {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A problem with the input as a whole (empty dataset, duplicate ids, unknown id in a split ...).
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn bad_line(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        DataError::BadLine {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}
