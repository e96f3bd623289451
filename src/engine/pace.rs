//! The per-endpoint pacer: every request to one endpoint takes a slot on a schedule (GCRA:
//! `rate` per second, `burst` at once), so no 1-second window carries more than `rate + burst`.
//! A throttle pauses the whole endpoint and lowers its rate (see [`super::adapt`]).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::adapt::Aimd;
use crate::cce::error::ApiError;
use crate::plan::resolved::Rate;

/// A rate change worth telling a person about.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateChange {
    /// Requests per second now; `None` when unlimited.
    pub rate: Option<f64>,
    /// Set when a throttle paused the endpoint.
    pub paused_for: Option<Duration>,
}

/// What [`Pacer::acquire`] hands back: the instant the request may go, and any rate change.
#[derive(Clone, Copy, Debug)]
pub struct Permit {
    pub sent_at: Instant,
    pub rate_change: Option<RateChange>,
}

/// The wait was interrupted by cancellation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancelled;

#[derive(Debug)]
pub struct Pacer {
    state: Mutex<PacerState>,
}

#[derive(Debug)]
struct PacerState {
    /// `None` for an unlimited endpoint: only throttle pauses apply.
    aimd: Option<Aimd>,
    /// Slots beyond the first that may go at once.
    extra_burst: f64,
    /// Theoretical arrival time of the next request (GCRA).
    tat: Instant,
    paused_until: Instant,
    /// Bumped by every pause, so sleepers holding an older slot take a new one.
    epoch: u64,
    reported_rate: f64,
}

struct Reservation {
    at: Instant,
    epoch: u64,
    rate_change: Option<RateChange>,
}

impl Pacer {
    pub fn new(rate: Rate, burst: u32, now: Instant) -> Self {
        let aimd = match rate {
            Rate::PerSecond(r) if r > 0.0 && r.is_finite() => Some(Aimd::new(r, now)),
            _ => None,
        };
        let reported_rate = aimd.as_ref().map_or(0.0, Aimd::rate);
        Pacer {
            state: Mutex::new(PacerState {
                aimd,
                extra_burst: f64::from(burst.max(1) - 1),
                tat: now,
                paused_until: now,
                epoch: 0,
                reported_rate,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PacerState> {
        // A panic while holding this lock cannot leave the schedule inconsistent: keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reserve(&self, now: Instant) -> Reservation {
        let mut s = self.lock();
        let start = now.max(s.paused_until);
        let Some(aimd) = s.aimd.as_mut() else {
            return Reservation {
                at: start,
                epoch: s.epoch,
                rate_change: None,
            };
        };
        let rate = aimd.tick(now);
        let interval = Duration::from_secs_f64(1.0 / rate);
        let tolerance = interval.mul_f64(s.extra_burst);
        let earliest = s.tat.checked_sub(tolerance).unwrap_or(start);
        let at = start.max(earliest);
        s.tat = s.tat.max(start) + interval;
        let rate_change = s.note_rate(rate);
        Reservation {
            at,
            epoch: s.epoch,
            rate_change,
        }
    }

    /// Waits for this endpoint's next slot. Cancellation interrupts the wait.
    pub async fn acquire(&self, cancel: &CancellationToken) -> Result<Permit, Cancelled> {
        let mut rate_change = None;
        loop {
            let now = Instant::now();
            let reservation = self.reserve(now);
            rate_change = reservation.rate_change.or(rate_change);
            if reservation.at > now {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Err(Cancelled),
                    () = tokio::time::sleep_until(reservation.at) => {}
                }
            } else if cancel.is_cancelled() {
                return Err(Cancelled);
            }
            let s = self.lock();
            // A throttle while this request slept: its slot was given at the old rate, so it
            // takes a new one behind the pause.
            if s.epoch == reservation.epoch {
                return Ok(Permit {
                    sent_at: reservation.at.max(now),
                    rate_change,
                });
            }
        }
    }

    /// A request sent at `sent_at` was throttled: pause the endpoint and lower its rate.
    pub fn on_throttle(&self, sent_at: Instant, error: &ApiError) -> RateChange {
        let now = Instant::now();
        let mut s = self.lock();
        let (pause, rate) = match s.aimd.as_mut() {
            Some(aimd) => {
                let pause = aimd.on_throttle(now, sent_at, error);
                (pause, Some(aimd.rate()))
            }
            None => (super::adapt::pause_for(error, None), None),
        };
        let resume_at = now + pause;
        if resume_at > s.paused_until {
            s.paused_until = resume_at;
        }
        // After the pause, requests resume at the rate without a burst.
        let tolerance = rate.map_or(Duration::ZERO, |r| {
            Duration::from_secs_f64(1.0 / r).mul_f64(s.extra_burst)
        });
        // Every sleeper takes a new slot (the epoch changes), so the schedule restarts here.
        s.tat = s.paused_until + tolerance;
        s.epoch += 1;
        if let Some(r) = rate {
            s.reported_rate = r;
        }
        RateChange {
            rate,
            paused_for: Some(pause),
        }
    }
}

impl PacerState {
    /// Reports increases in steps of 5% (or on reaching the ceiling), not on every request.
    fn note_rate(&mut self, rate: f64) -> Option<RateChange> {
        let ceiling = self.aimd.as_ref().map_or(rate, Aimd::ceiling);
        let step = (self.reported_rate * 0.05).max(0.1);
        let moved = (rate - self.reported_rate).abs() >= step
            || (rate >= ceiling && self.reported_rate < ceiling);
        if moved {
            self.reported_rate = rate;
            Some(RateChange {
                rate: Some(rate),
                paused_for: None,
            })
        } else {
            None
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cce::error::FailureKind;
    use std::sync::Arc;

    /// The largest number of instants in any window `[t, t + width)`.
    pub(crate) fn max_in_window(sorted: &[Instant], width: Duration) -> usize {
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..sorted.len() {
            while sorted[hi] - sorted[lo] >= width {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }

    async fn send_times(pacer: Arc<Pacer>, tasks: usize, per_task: usize) -> Vec<Instant> {
        let cancel = CancellationToken::new();
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let pacer = pacer.clone();
            let cancel = cancel.clone();
            handles.push(tokio::spawn(async move {
                let mut times = Vec::new();
                for _ in 0..per_task {
                    times.push(pacer.acquire(&cancel).await.unwrap().sent_at);
                    assert_eq!(times.last().copied(), Some(Instant::now()));
                }
                times
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        all.sort();
        all
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_never_exceeds_rate_plus_burst_in_any_second_and_achieves_the_rate() {
        let start = Instant::now();
        let pacer = Arc::new(Pacer::new(Rate::PerSecond(20.0), 5, start));
        let times = send_times(pacer, 8, 50).await;
        assert_eq!(times.len(), 400);
        // Also check closed windows: the schedule must hold even at the edges.
        assert!(max_in_window(&times, Duration::from_millis(1001)) <= 25);
        let span = (*times.last().unwrap() - start).as_secs_f64();
        // 400 requests at 20/s with a burst of 5: (400 - 5) / 20 = 19.75 s.
        assert!((19.7..=19.8).contains(&span), "{span}");
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_endpoints_never_wait() {
        let start = Instant::now();
        let pacer = Arc::new(Pacer::new(Rate::Unlimited, 1, start));
        let times = send_times(pacer, 4, 100).await;
        assert!(times.iter().all(|t| *t == start));
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_pauses_every_request_to_the_endpoint() {
        let start = Instant::now();
        let pacer = Arc::new(Pacer::new(Rate::PerSecond(10.0), 1, start));
        let cancel = CancellationToken::new();
        let first = pacer.acquire(&cancel).await.unwrap();
        // Another request has already reserved the next slot (at 100 ms) and sleeps.
        let sleeper = {
            let pacer = pacer.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move { pacer.acquire(&cancel).await.unwrap().sent_at })
        };
        tokio::task::yield_now().await;
        let throttle = ApiError {
            status: Some(429),
            retry_after: Some(Duration::from_secs(2)),
            ..ApiError::new(FailureKind::Http)
        };
        let change = pacer.on_throttle(first.sent_at, &throttle);
        assert_eq!(change.paused_for, Some(Duration::from_secs(2)));
        assert!((change.rate.unwrap() - 7.0).abs() < 1e-9);
        let resumed = sleeper.await.unwrap();
        assert!(resumed >= start + Duration::from_secs(2), "{resumed:?}");
        let next = pacer.acquire(&cancel).await.unwrap().sent_at;
        assert!(next - resumed >= Duration::from_secs_f64(1.0 / 7.0) - Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_interrupts_a_paced_wait() {
        let start = Instant::now();
        let pacer = Pacer::new(Rate::PerSecond(1.0), 1, start);
        let cancel = CancellationToken::new();
        pacer.acquire(&cancel).await.unwrap();
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            canceller.cancel();
        });
        assert_eq!(pacer.acquire(&cancel).await.unwrap_err(), Cancelled);
        assert_eq!(Instant::now() - start, Duration::from_millis(100));
    }
}
