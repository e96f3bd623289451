//! The dispatcher of `apply`: it owns the signals, the timers and the terminal while the engine
//! runs, and turns the engine's events into progress, signals into cancellation and ticks into
//! heartbeats, until the engine closes its channel.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::Event;
use crate::error::Exit;
use crate::plan::resolved::ExpandedPlan;
use crate::report::convert;
use crate::report::progress::{Activity, HEARTBEAT, Progress};

/// What a SIGINT or SIGTERM does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnInterrupt {
    /// The first: no new operation starts; requests in flight finish and are reported.
    Cancel,
    /// The second: exit at once. Every PUT sent so far has its intent durable; end lines still
    /// queued are what a resume reconciles with a GET.
    ExitNow,
}

impl OnInterrupt {
    pub fn after(already_cancelled: bool) -> Self {
        if already_cancelled {
            OnInterrupt::ExitNow
        } else {
            OnInterrupt::Cancel
        }
    }
}

/// The dispatcher's loop: events into the display, signals into cancellation, timers into
/// heartbeats, until the engine closes its channel.
pub async fn watch_run(
    mut events: mpsc::Receiver<Event>,
    progress: &mut Progress,
    plan: &ExpandedPlan,
    cancel: &CancellationToken,
    interrupts: &mut Interrupts,
) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.reset();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut activity = Activity::default();
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                if let Some(note) = activity.observe(&event, tokio::time::Instant::now().into_std()) {
                    progress.note(&note);
                }
                match event {
                    Event::WaveStarted { name, operations, .. } => {
                        progress.wave_started(&name, operations);
                    }
                    Event::OperationFinished(result) => {
                        let wave = plan.wave_name(result.wave);
                        progress.operation_finished(result.outcome, || convert::operation(&result, wave, &plan.redactor));
                    }
                    Event::Soaking { after_wave, duration } => {
                        let wave = plan.wave_name(after_wave);
                        progress.soaking(wave, duration);
                    }
                    Event::Halted { reason } => progress.note(&format!("halted: {reason}")),
                    Event::CredentialsRefused(refusal) => progress.note(&format!(
                        "halted: {refusal}; nothing more is sent to that endpoint, and no new operation starts"
                    )),
                    _ => {}
                }
            }
            () = interrupts.next() => match OnInterrupt::after(cancel.is_cancelled()) {
                OnInterrupt::ExitNow => {
                    progress.finish();
                    eprintln!("interrupted again: exiting at once");
                    std::process::exit(Exit::Interrupted as i32);
                }
                OnInterrupt::Cancel => {
                    progress.note("interrupted: no new operation starts; in-flight requests finish (interrupt again to exit at once)");
                    cancel.cancel();
                }
            },
            _ = tick.tick() => {
                progress.set_activity(activity.sample(tokio::time::Instant::now().into_std()));
            }
            _ = heartbeat.tick() => progress.heartbeat(),
        }
    }
}

/// SIGINT and SIGTERM as one stream. Both handlers are registered on creation, so a signal
/// that arrives before anyone waits is kept, not fatal.
pub struct Interrupts {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Interrupts {
    #[expect(
        clippy::new_without_default,
        reason = "registering signal handlers is an act, not a default value"
    )]
    pub fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Interrupts {
                signals: signal(SignalKind::interrupt())
                    .and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
                    .ok(),
            }
        }
        #[cfg(not(unix))]
        Interrupts {}
    }

    pub async fn next(&mut self) {
        #[cfg(unix)]
        if let Some((interrupt, terminate)) = self.signals.as_mut() {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_interrupt_cancels_and_the_second_exits_at_once() {
        assert_eq!(OnInterrupt::after(false), OnInterrupt::Cancel);
        assert_eq!(OnInterrupt::after(true), OnInterrupt::ExitNow);
    }
}
