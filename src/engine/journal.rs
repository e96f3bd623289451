//! The journal as the engine sees it: told before every PUT (and the engine waits until it is
//! durable) and when each operation ends. The file journal lives in `crate::journal`.

use futures::future::BoxFuture;

use super::outcome::OperationResult;
use crate::plan::resolved::Operation;

/// A PUT about to be sent.
#[derive(Clone, Copy, Debug)]
pub struct PutIntent<'a> {
    pub operation: &'a Operation,
    /// The revision before the change, when known (preflight on, or from a resumed journal).
    pub version_before: Option<i64>,
    /// The revision the PUT names, for a rollback (resolved when the plan wrote `previous` or
    /// `-N`).
    pub release_version: Option<i64>,
    /// The rollback PUT of a failed upgrade, not the change itself.
    pub rollback: bool,
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
/// A journal that could not record; its message names the journal.
#[error("{0}")]
pub struct JournalError(pub String);

/// Called by the engine. Concurrent operations call it concurrently, so a journal may batch
/// (group-commit) the writes of one instant.
///
/// Only an intent is waited for. An end line is queued and the engine goes on; a journal must
/// keep its lines in order, so that the end line is durable before any later intent is
/// acknowledged, that is before the engine sends its next change. Losing an end line to a
/// crash costs a resume one reconciling GET, never a second change.
pub trait Journal: Send + Sync {
    /// Before the first PUT of the change (resends of the same change are not announced again)
    /// and before a rollback PUT. An error fails the operation without sending. With preflight
    /// off the engine calls it ahead of the operation's start, so a journal should queue the
    /// line when called; the future only waits for it to be durable.
    fn before_put<'a>(&'a self, intent: PutIntent<'a>) -> BoxFuture<'a, Result<(), JournalError>>;

    /// When an operation ends, whatever its outcome (skipped and cancelled ones included).
    /// Queues the line; an error means the journal can no longer record anything.
    fn finished(&self, result: &OperationResult) -> Result<(), JournalError>;

    /// Resolves once every line so far is durable; the engine awaits it before the run ends.
    fn sync(&self) -> BoxFuture<'_, Result<(), JournalError>>;
}

/// Keeps nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoJournal;

impl Journal for NoJournal {
    fn before_put<'a>(&'a self, _: PutIntent<'a>) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn finished(&self, _: &OperationResult) -> Result<(), JournalError> {
        Ok(())
    }

    fn sync(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
