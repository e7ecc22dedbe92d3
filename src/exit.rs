//! The one mapping from a command's outcome to the documented exit codes.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | invalid input: manifests with errors, unreadable files |
//! | 2 | usage error (clap) |
//! | 3 | workspace unavailable: its folder is owned by another instance, or its storage cannot be opened |
//! | 70 | internal error |

use std::process::ExitCode;

/// Why a command failed, as far as the exit code is concerned.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The input was invalid; details were already printed.
    #[error("invalid input")]
    InvalidInput,
    /// The workspace could not be served; the message says why.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else, with context.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Prints a failure (if any) and returns its exit code.
pub fn report(outcome: Result<(), Failure>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::InvalidInput) => ExitCode::from(1),
        Err(Failure::Unavailable(why)) => {
            eprintln!("error: {why}");
            ExitCode::from(3)
        }
        Err(Failure::Internal(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(70)
        }
    }
}
