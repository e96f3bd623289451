//! The process's exit codes. What becomes which is decided above: `cli::error::Error::exit` for
//! errors, and the run's verdict in `cli` (see ARCHITECTURE.md).

use std::process::ExitCode;

/// flotilla's documented exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every operation succeeded, or there was nothing to do.
    Success = 0,
    /// An operation failed, was skipped by a halt, or was cancelled.
    Failed = 1,
    /// The plan, usage or credentials were invalid, and nothing was sent.
    Invalid = 2,
    /// Interrupted by SIGINT or SIGTERM.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}
