//! Events the engine sends while it runs, for a progress display and logs.

use std::time::Duration;

use super::outcome::{CredentialRefusal, Method, OperationResult, Phase, RunSummary};

#[derive(Clone, Debug)]
pub enum Event {
    RunStarted {
        operations: usize,
        waves: usize,
        dry_run: bool,
    },
    WaveStarted {
        wave: usize,
        name: String,
        /// Operations of the wave that will run (those already succeeded per the journal excluded).
        operations: usize,
    },
    OperationStarted {
        index: usize,
        wave: usize,
    },
    /// One request finished (every request, GETs included).
    Request(RequestEvent),
    OperationFinished(Box<OperationResult>),
    WaveFinished {
        wave: usize,
        summary: RunSummary,
    },
    /// Waiting `duration` after wave `after_wave` before the next one.
    Soaking {
        after_wave: usize,
        duration: Duration,
    },
    /// No new operation starts; those in flight finish.
    Halted {
        reason: String,
    },
    /// An endpoint refused the credentials: nothing more is sent to it, and the run halts (no
    /// [`Event::Halted`] follows: this says it).
    CredentialsRefused(Box<CredentialRefusal>),
    /// The cancel signal was seen: no new operation or request starts.
    Cancelled,
    /// An endpoint's request rate changed, or a throttle paused it.
    RateChanged {
        endpoint: String,
        /// Requests per second; `None` when unlimited.
        rate: Option<f64>,
        paused_for: Option<Duration>,
    },
    RunFinished {
        summary: RunSummary,
        duration: Duration,
    },
}

#[derive(Clone, Debug)]
pub struct RequestEvent {
    pub index: usize,
    pub phase: Phase,
    pub method: Method,
    /// The request succeeded.
    pub ok: bool,
    pub status: Option<u16>,
    pub error_code: Option<String>,
    pub throttled: bool,
    /// The request will be retried after this delay.
    pub retry_in: Option<Duration>,
}
