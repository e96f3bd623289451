//! The command line's errors: what can end a command before or outside the engine's own
//! reporting, each with its cause kept as a `source` (shown at `-vv`/`RUST_LOG=debug`), and the
//! one function that turns them into exit codes.

use std::path::PathBuf;

use crate::cce::credentials::CredentialsError;
use crate::cce::endpoint::ClientError;
use crate::engine::CredentialRefusal;
use crate::error::Exit;
use crate::journal::{JournalError, ResumeError};
use crate::plan::LoadError;
use crate::report::undo::UndoError;
use crate::report::write::ReportError;
use crate::sim::SimError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Problems already printed as diagnostics (plan errors with positions).
    #[error("{count} problem(s) found")]
    InvalidPlan { count: usize },
    /// Flags that cannot go together, or a value no lower layer judges.
    #[error("{0}")]
    Usage(String),
    /// Like [`Error::Usage`], with the lines that show what to do instead.
    #[error("{}", .0.join("\n"))]
    Explained(Vec<String>),
    /// A flag whose value the client refuses (`--endpoint`), or a cluster's endpoint.
    #[error("{context}: {source}")]
    Endpoint {
        context: String,
        #[source]
        source: ClientError,
    },
    /// A client that cannot be built from the flags (a CA file, an endpoint it cannot reach).
    #[error("{0}")]
    Client(#[source] ClientError),
    /// A report file that could not be written where a flag asks for it.
    #[error("{flag} {}: {source}", path.display())]
    ReportPath {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials: {0}")]
    Credentials(#[source] CredentialsError),
    /// A region's project id could not be found through IAM; no release request was sent.
    #[error("{0}")]
    ProjectId(#[source] Box<crate::cce::iam::DiscoveryError>),
    /// An endpoint refused the credentials (`plan --diff` stops reading at the first refusal).
    #[error("credentials: {}; nothing more was read. {}", refusal.detail(), super::CHECK_CREDENTIALS)]
    CredentialsRefused { refusal: CredentialRefusal },
    /// A journal that cannot be opened, locked or read before anything is sent.
    #[error("{0}")]
    Journal(#[source] JournalError),
    /// A journal that cannot be written once the run has started.
    #[error("{0}")]
    JournalWrite(#[source] JournalError),
    #[error("{0}")]
    Resume(#[source] ResumeError),
    /// A file given as input that cannot be read.
    #[error("{}: {source}", path.display())]
    Input {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A report given as input that cannot be read or merged.
    #[error("{0}")]
    ReportInput(#[source] ReportError),
    /// A report that cannot be written.
    #[error("{0}")]
    ReportOutput(#[source] ReportError),
    /// A run that cannot be undone (a dry run, a cluster the plan lacks).
    #[error("{}: {source}", path.display())]
    Undo {
        path: PathBuf,
        #[source]
        source: UndoError,
    },
    /// A plan given to the simulator as its seed.
    #[error("--seed {}: {source}", path.display())]
    SimulatorSeed {
        path: PathBuf,
        #[source]
        source: LoadError,
    },
    /// Settings the simulator refuses.
    #[error("{0}")]
    SimulatorConfig(#[source] SimError),
    /// The simulator failed while starting, running or stopping.
    #[error("{context}{source}")]
    Simulator {
        context: &'static str,
        #[source]
        source: SimError,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The engine's task ended without a report (a panic in it).
    #[error("the engine stopped unexpectedly: {0}")]
    EngineStopped(#[source] tokio::task::JoinError),
    #[error("cannot encode the {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
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

    /// The one place an error becomes an exit code: bad input, found before anything is sent, is
    /// 2; anything that went wrong later is 1.
    pub fn exit(&self) -> Exit {
        match self {
            Error::InvalidPlan { .. }
            | Error::Usage(_)
            | Error::Explained(_)
            | Error::Endpoint { .. }
            | Error::Client(_)
            | Error::ReportPath { .. }
            | Error::Credentials(_)
            | Error::ProjectId(_)
            | Error::CredentialsRefused { .. }
            | Error::Journal(_)
            | Error::Resume(_)
            | Error::Input { .. }
            | Error::ReportInput(_)
            | Error::Undo { .. }
            | Error::SimulatorSeed { .. }
            | Error::SimulatorConfig(_) => Exit::Invalid,
            Error::JournalWrite(_)
            | Error::ReportOutput(_)
            | Error::Simulator { .. }
            | Error::Io { .. }
            | Error::EngineStopped(_)
            | Error::Encode { .. } => Exit::Failed,
            Error::Reports {
                run: Exit::Interrupted,
                ..
            } => Exit::Interrupted,
            Error::Reports { .. } => Exit::Failed,
        }
    }

    /// The message as it is shown, line by line: each line is escaped on its own, so that only
    /// flotilla's own line breaks break it.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Error::Explained(lines) => lines.clone(),
            other => vec![other.to_string()],
        }
    }

    /// The causes below this error's own message, outermost first.
    pub fn causes(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        std::iter::successors(std::error::Error::source(self), |cause| cause.source())
    }
}

impl From<CredentialsError> for Error {
    /// Credentials that cannot be used end the command as invalid input (exit 2): nothing was
    /// sent.
    fn from(error: CredentialsError) -> Self {
        Error::Credentials(error)
    }
}

impl From<ClientError> for Error {
    fn from(error: ClientError) -> Self {
        Error::Client(error)
    }
}

impl From<ResumeError> for Error {
    fn from(error: ResumeError) -> Self {
        Error::Resume(error)
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

    #[test]
    fn a_journal_is_bad_input_before_the_run_and_a_failure_during_it() {
        let journal = || JournalError::Closed {
            path: PathBuf::from("j.jsonl"),
        };
        assert_eq!(Error::Journal(journal()).exit(), Exit::Invalid);
        assert_eq!(Error::JournalWrite(journal()).exit(), Exit::Failed);
    }

    #[test]
    fn the_cause_is_kept_as_the_source_and_its_text_in_the_message() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let error = Error::JournalWrite(JournalError::Io {
            path: PathBuf::from("j.jsonl"),
            source: io,
        });
        assert_eq!(error.to_string(), "journal j.jsonl: denied");
        let causes: Vec<String> = error.causes().map(ToString::to_string).collect();
        assert_eq!(causes, ["journal j.jsonl: denied", "denied"]);
    }
}
