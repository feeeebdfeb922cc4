//! Mapping errors to exit codes: 2 for anything the user can fix in their input or command line,
//! 1 for failures of the run itself.

use std::fmt;

/// A bad-input error raised by the CLI itself (an option combination, a value out of range ...).
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// `return Err(bad_input!("..."))` for user-fixable problems.
#[macro_export]
macro_rules! bad_input {
    ($($arg:tt)*) => {
        anyhow::Error::new($crate::exit::BadInput(format!($($arg)*)))
    };
}

/// Training errors the user fixes in the config or the data, as opposed to failures of the run.
fn is_bad_train_input(e: &semisono_train::TrainError) -> bool {
    use semisono_train::TrainError as E;
    !matches!(e, E::NonFinite { .. } | E::Io { .. })
}

pub fn code_for(err: &anyhow::Error) -> u8 {
    let bad_input = err.chain().any(|e| {
        e.is::<BadInput>()
            || e.is::<semisono_data::DataError>()
            || e.is::<semisono_phantom::PhantomError>()
            || e.is::<semisono_train::config::ConfigError>()
            || e.downcast_ref::<semisono_train::TrainError>()
                .is_some_and(is_bad_train_input)
    });
    if bad_input {
        2
    } else {
        1
    }
}
