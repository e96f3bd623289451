//! The engine: scheduling operations wave by wave within limits, retries, reconciliation and waiting.
//!
//! It has no I/O of its own: it talks through the `ReleaseApi` and `Journal` traits and an event
//! channel (see `ARCHITECTURE.md`, "The flow of one operation").
pub mod adapt;
pub mod api;
pub mod cce_api;
pub mod charts;
pub mod converge;
pub mod event;
#[cfg(test)]
mod fake;
pub mod gate;
pub mod journal;
pub mod operation;
pub mod outcome;
pub mod pace;
pub mod preview;
pub mod retry;
pub mod schedule;
#[cfg(test)]
mod tests;

pub use charts::ChartCache;
pub use converge::{Convergence, Decision};
pub use event::{Event, RequestEvent};
pub use journal::{Journal, JournalError, NoJournal, PutIntent};
pub use operation::PriorState;
pub use outcome::{
    Attempt, AttemptKind, CredentialRefusal, Method, OperationError, OperationResult, Outcome,
    Phase, RollbackResult, RunReport, RunSummary, Verdict,
};
pub use schedule::{EngineOptions, run};
