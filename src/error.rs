//! Exit codes, and the one place errors become them.

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

/// Errors that end a command before or outside the engine's own reporting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Problems already printed as diagnostics (plan errors with positions).
    #[error("{count} problem(s) found")]
    InvalidPlan { count: usize },
    #[error("{0}")]
    Usage(String),
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
    /// The run ended with `run`, but a report could not be written: an interrupted run stays
    /// 130, any other becomes a failure, since the CI job lost what it gates on.
    #[error("{message}")]
    Reports { message: String, run: Exit },
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn exit(&self) -> Exit {
        match self {
            Error::InvalidPlan { .. } | Error::Usage(_) | Error::Credentials(_) => Exit::Invalid,
            Error::Io { .. } | Error::Other(_) => Exit::Failed,
            Error::Reports {
                run: Exit::Interrupted,
                ..
            } => Exit::Interrupted,
            Error::Reports { .. } => Exit::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_that_could_not_be_written_keeps_an_interrupt_130_and_fails_anything_else() {
        let reports = |run| Error::Reports {
            message: "--junit /nope: denied".into(),
            run,
        };
        assert_eq!(reports(Exit::Interrupted).exit(), Exit::Interrupted);
        assert_eq!(reports(Exit::Success).exit(), Exit::Failed);
        assert_eq!(reports(Exit::Failed).exit(), Exit::Failed);
    }
}
