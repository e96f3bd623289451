//! Simulated latency to the tenth of a millisecond. tokio's timer ticks in whole milliseconds and
//! fires on the tick after a deadline, which would make every simulated 100 ms answer take 101 to
//! 103 ms; a benchmark that measures how well a client hides latency cannot tell that apart from
//! the client's own overhead.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

/// Waits longer than this go to tokio's timer first, so that a test on paused time still
/// advances through them; only the last stretch is timed by the wake-up thread. That stretch
/// runs in real time: on paused time the runtime, idle meanwhile, may move its clock on to the
/// next timer, so a test that sets latency should not also time out on paused time.
const COARSE_MARGIN: Duration = Duration::from_millis(3);

/// Wakes waiters from a thread of its own, which sleeps on a condition variable with a
/// nanosecond time-out. The thread ends when the last handle is dropped.
pub(crate) struct PreciseDelay {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

#[derive(Default)]
struct Queue {
    due: BinaryHeap<Due>,
    next_seq: u64,
    stopped: bool,
}

/// One waiter; the heap's top is the earliest (then the first queued).
struct Due {
    at: std::time::Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl std::fmt::Debug for PreciseDelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreciseDelay").finish_non_exhaustive()
    }
}

impl PreciseDelay {
    pub(crate) fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
        });
        let waker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("flotilla-sim-delay".into())
            .spawn(move || waker.run())?;
        Ok(PreciseDelay { shared })
    }

    /// Resolves at `deadline`, give or take the scheduler's wake-up latency (tens of µs).
    pub(crate) async fn sleep_until(&self, deadline: Instant) {
        if let Some(coarse) = deadline.checked_sub(COARSE_MARGIN)
            && coarse > Instant::now()
        {
            tokio::time::sleep_until(coarse).await;
        }
        let Some(remaining) = deadline.checked_duration_since(Instant::now()) else {
            return;
        };
        if remaining.is_zero() {
            return;
        }
        let (wake, woken) = oneshot::channel();
        {
            let mut queue = self.shared.lock();
            let seq = queue.next_seq;
            queue.next_seq += 1;
            let at = std::time::Instant::now() + remaining;
            let earliest = queue.due.peek().is_none_or(|top| at < top.at);
            queue.due.push(Due { at, seq, wake });
            if earliest {
                self.shared.changed.notify_one();
            }
        }
        let _ = woken.await;
    }
}

impl Drop for PreciseDelay {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.changed.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self) {
        let mut queue = self.lock();
        loop {
            if queue.stopped {
                return;
            }
            let now = std::time::Instant::now();
            while queue.due.peek().is_some_and(|top| top.at <= now) {
                if let Some(due) = queue.due.pop() {
                    let _ = due.wake.send(());
                }
            }
            queue = match queue.due.peek().map(|top| top.at - now) {
                Some(wait) => {
                    self.changed
                        .wait_timeout(queue, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.changed.wait(queue).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_at_their_deadline_in_deadline_order() {
        let delay = Arc::new(PreciseDelay::start().unwrap());
        let start = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for ms in [30u64, 10, 20, 1] {
            let (delay, order) = (Arc::clone(&delay), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let deadline = start + Duration::from_millis(ms);
                delay.sleep_until(deadline).await;
                let now = Instant::now();
                order.lock().unwrap().push(ms);
                (now >= deadline, now - deadline)
            }));
        }
        for task in tasks {
            let (on_time, late) = task.await.unwrap();
            assert!(on_time, "woken early");
            // Lateness is the machine's scheduling, so only a loose bound here.
            assert!(late < Duration::from_millis(50), "{late:?} late");
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 10, 20, 30]);
    }

    #[tokio::test]
    async fn a_deadline_already_passed_does_not_wait() {
        let delay = PreciseDelay::start().unwrap();
        let past = Instant::now() - Duration::from_millis(5);
        tokio::time::timeout(Duration::from_secs(1), delay.sleep_until(past))
            .await
            .unwrap();
    }
}
