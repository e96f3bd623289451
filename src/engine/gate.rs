//! The per-endpoint credential gate: until an endpoint has answered once, one request at a time
//! goes to it, and the first refusal of the credentials closes it for the rest of the run.
//!
//! So a wrong AK/SK or an expired token costs one request per endpoint, not one per operation
//! until a failure budget runs out. The first request to each endpoint goes alone (the preflight
//! GET, when preflight is on); any answer from the service other than a refusal opens the gate,
//! and a failure that proves nothing (not sent, timed out) lets the next request try.

use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::outcome::CredentialRefusal;
use super::pace::Cancelled;
use crate::cce::error::ApiError;

/// The first refusal of a run, whichever endpoint it came from.
#[derive(Clone, Debug, Default)]
pub struct FirstRefusal(Arc<OnceLock<CredentialRefusal>>);

impl FirstRefusal {
    pub fn get(&self) -> Option<&CredentialRefusal> {
        self.0.get()
    }
}

#[derive(Debug)]
enum GateState {
    /// No answer yet; `probing` while one request is out to find out.
    Unproven { probing: bool },
    /// The service answered a request: the credentials are accepted.
    Open,
    /// The service refused the credentials, in this answer.
    Closed(Box<CredentialRefusal>),
}

#[derive(Debug)]
pub struct Gate {
    endpoint: String,
    state: Mutex<GateState>,
    changed: Notify,
    /// Cancelled by the run's cancel or when the gate closes: everything waiting on this
    /// endpoint (a pacer slot, a back-off, a poll) stops at once.
    stop: CancellationToken,
    first: FirstRefusal,
}

/// Leave to send one request; tell the gate how it went with [`Pass::answered`]. Dropped
/// without an answer, a probe lets the next request try.
#[derive(Debug)]
pub struct Pass<'g> {
    gate: &'g Gate,
    probe: bool,
}

impl Gate {
    /// A gate for `endpoint`, stopped with `run_cancel`; its refusal, if any, goes to `first`
    /// unless another endpoint's came earlier.
    pub fn new(endpoint: &str, run_cancel: &CancellationToken, first: &FirstRefusal) -> Self {
        Gate {
            endpoint: endpoint.to_owned(),
            state: Mutex::new(GateState::Unproven { probing: false }),
            changed: Notify::new(),
            stop: run_cancel.child_token(),
            first: first.clone(),
        }
    }

    /// Cancelled when the run is cancelled or this gate closed.
    pub fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    #[cfg(test)]
    pub fn is_closed(&self) -> bool {
        matches!(*self.lock(), GateState::Closed(_))
    }

    /// `https://… refused the credentials (HTTP 401 APIG.0301)` once closed (why an operation
    /// of this endpoint was not sent); `None` while it is not.
    pub fn refusal_summary(&self) -> Option<String> {
        match &*self.lock() {
            GateState::Closed(refusal) => Some(refusal.summary()),
            _ => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // A panic while holding this lock leaves a valid state: keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until a request may go: at once when the gate is open, else when no other request
    /// is out probing it. `Err` when the gate closed or the run was cancelled.
    pub async fn pass(&self) -> Result<Pass<'_>, Cancelled> {
        // The usual case, every request after the first answer: no waiter to register.
        if matches!(*self.lock(), GateState::Open) && !self.stop.is_cancelled() {
            return Ok(Pass {
                gate: self,
                probe: false,
            });
        }
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.stop.is_cancelled() {
                return Err(Cancelled);
            }
            {
                let mut state = self.lock();
                match &mut *state {
                    GateState::Open => {
                        return Ok(Pass {
                            gate: self,
                            probe: false,
                        });
                    }
                    GateState::Closed(_) => return Err(Cancelled),
                    GateState::Unproven { probing } if !*probing => {
                        *probing = true;
                        return Ok(Pass {
                            gate: self,
                            probe: true,
                        });
                    }
                    GateState::Unproven { .. } => {}
                }
            }
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return Err(Cancelled),
                () = changed => {}
            }
        }
    }

    /// Closes the gate for good: no request to this endpoint from now on.
    fn close(&self, refusal: CredentialRefusal) {
        *self.lock() = GateState::Closed(Box::new(refusal.clone()));
        // Only the run's first refusal is kept; a later one (another endpoint) loses the race.
        let _ = self.first.0.set(refusal);
        self.stop.cancel();
        self.changed.notify_waiters();
    }

    fn settle(&self, probe: bool, answer: Result<(), &ApiError>) {
        if let Err(error) = answer
            && let Some(refusal) = CredentialRefusal::from_api(&self.endpoint, error)
        {
            self.close(refusal);
            return;
        }
        if !probe {
            return;
        }
        let answered = match answer {
            Ok(()) => true,
            // Any answer of the service's got past its authentication.
            Err(error) => error.status.is_some(),
        };
        if answered {
            let mut state = self.lock();
            if let GateState::Unproven { .. } = &*state {
                *state = GateState::Open;
            }
            drop(state);
            self.changed.notify_waiters();
        } else {
            self.release_probe();
        }
    }

    /// A probe that proved nothing (no answer, or dropped unanswered): the next request probes.
    fn release_probe(&self) {
        let mut state = self.lock();
        if let GateState::Unproven { probing } = &mut *state {
            *probing = false;
        }
        drop(state);
        self.changed.notify_waiters();
    }
}

impl Pass<'_> {
    /// How the request went: a refusal of the credentials closes the gate (whether or not it was
    /// the probe: a token can expire mid-run); any other answer opens it.
    pub fn answered(mut self, answer: Result<(), &ApiError>) {
        let probe = std::mem::take(&mut self.probe);
        self.gate.settle(probe, answer);
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if self.probe {
            self.gate.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cce::error::FailureKind;

    fn http(status: u16, code: &str) -> ApiError {
        let mut error = ApiError::new(FailureKind::Http);
        error.status = Some(status);
        error.code = Some(code.to_owned());
        error
    }

    fn gate() -> (Gate, FirstRefusal, CancellationToken) {
        let cancel = CancellationToken::new();
        let first = FirstRefusal::default();
        (Gate::new("https://cce.x", &cancel, &first), first, cancel)
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_request_goes_alone_and_an_answer_opens_the_gate() {
        let (gate, _, _) = gate();
        let probe = gate.pass().await.unwrap();
        let waiting = tokio::time::timeout(std::time::Duration::from_secs(60), gate.pass()).await;
        assert!(waiting.is_err(), "a second request waits for the probe");
        // A 404 is an answer: the credentials got past the gateway.
        probe.answered(Err(&http(404, "CCE.01404001")));
        let a = gate.pass().await.unwrap();
        let b = gate.pass().await.unwrap();
        assert!(!a.probe && !b.probe);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_that_proves_nothing_lets_the_next_request_probe() {
        let (gate, first, _) = gate();
        let probe = gate.pass().await.unwrap();
        probe.answered(Err(&ApiError::new(FailureKind::TimedOut)));
        let next = gate.pass().await.unwrap();
        assert!(next.probe);
        drop(next);
        assert!(
            gate.pass().await.unwrap().probe,
            "a dropped probe frees the gate"
        );
        assert!(first.get().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_closes_the_gate_and_wakes_every_waiter() {
        let (gate, first, cancel) = gate();
        let probe = gate.pass().await.unwrap();
        let waiter = async { gate.pass().await.map(|_| ()) };
        let refuse = async {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            probe.answered(Err(&http(401, "APIG.0301")));
        };
        let (waited, ()) = tokio::join!(waiter, refuse);
        assert_eq!(waited, Err(Cancelled));
        assert!(gate.is_closed() && gate.stop().is_cancelled());
        assert!(!cancel.is_cancelled(), "the run itself is not cancelled");
        let refusal = first.get().unwrap();
        assert_eq!(refusal.endpoint, "https://cce.x");
        assert_eq!(refusal.answer(), "HTTP 401 APIG.0301");
        assert!(gate.pass().await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_gate_closes_on_a_later_refusal() {
        let (gate, first, _) = gate();
        gate.pass().await.unwrap().answered(Ok(()));
        gate.pass()
            .await
            .unwrap()
            .answered(Err(&http(403, "APIG.0302")));
        assert!(gate.is_closed());
        assert_eq!(first.get().unwrap().status, 403);
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_first_refusal_of_a_run_is_kept() {
        let cancel = CancellationToken::new();
        let first = FirstRefusal::default();
        let a = Gate::new("https://a", &cancel, &first);
        let b = Gate::new("https://b", &cancel, &first);
        a.pass()
            .await
            .unwrap()
            .answered(Err(&http(401, "APIG.0301")));
        b.pass()
            .await
            .unwrap()
            .answered(Err(&http(401, "APIG.0301")));
        assert_eq!(first.get().unwrap().endpoint, "https://a");
        assert!(a.is_closed() && b.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn the_runs_cancel_stops_the_gate() {
        let (gate, _, cancel) = gate();
        cancel.cancel();
        assert!(gate.stop().is_cancelled());
        assert!(gate.pass().await.is_err());
    }
}
