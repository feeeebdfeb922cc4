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

pub fn code_for(err: &anyhow::Error) -> u8 {
    let bad_input = err.chain().any(|e| {
        e.is::<BadInput>()
            || e.is::<semisono_data::DataError>()
            || e.is::<semisono_phantom::PhantomError>()
    });
    if bad_input {
        2
    } else {
        1
    }
}
