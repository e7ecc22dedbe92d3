//! The one mapping from a command's outcome to the documented exit codes.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | invalid input: manifests with errors, unreadable files; for `diff`: there are differences |
//! | 2 | usage error (clap) |
//! | 3 | unavailable: no control plane answers, a workspace folder is owned by another instance, a wait timed out |
//! | 4 | not found, or refused (conflict, objects still inside, no valid token, a missing permission) |
//! | 99 | load test ran, and a threshold failed (k6's code, so CI habits carry over) |
//! | 70 | internal error |

use std::process::ExitCode;

/// Why a command failed, as far as the exit code is concerned.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The input was invalid; details were already printed.
    #[error("invalid input")]
    InvalidInput,
    /// A load test's thresholds failed (exit 99); the table was already printed.
    #[error("thresholds failed")]
    ThresholdsFailed,
    /// `diff` found differences (exit 1, like `kubectl diff`).
    #[error("differences found")]
    Differences,
    /// The workspace could not be served; the message says why.
    #[error("{0}")]
    Unavailable(String),
    /// Not found or refused; the message says why.
    #[error("{0}")]
    Refused(String),
    /// Anything else, with context.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Prints a failure (if any) and returns its exit code.
pub fn report(outcome: Result<(), Failure>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::InvalidInput | Failure::Differences) => ExitCode::from(1),
        Err(Failure::ThresholdsFailed) => ExitCode::from(coditect_loadtest::THRESHOLDS_FAILED),
        Err(Failure::Unavailable(why)) => {
            eprintln!("error: {why}");
            ExitCode::from(3)
        }
        Err(Failure::Refused(why)) => {
            eprintln!("error: {why}");
            ExitCode::from(4)
        }
        Err(Failure::Internal(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(70)
        }
    }
}

impl From<coditect_control_plane::client::ClientError> for Failure {
    fn from(e: coditect_control_plane::client::ClientError) -> Self {
        use coditect_control_plane::client::ClientError as C;
        match e {
            C::Unreachable { .. } | C::Interrupted { .. } => Failure::Unavailable(e.to_string()),
            C::NotFound(_) | C::Refused(_) | C::Unauthenticated(_) | C::Forbidden(_) => {
                Failure::Refused(e.to_string())
            }
            C::Setup(_) => Failure::Internal(anyhow::anyhow!(e)),
            C::Invalid { .. } => {
                eprintln!("error: {e}");
                Failure::InvalidInput
            }
            C::Other(_) => Failure::Internal(anyhow::anyhow!(e)),
        }
    }
}
