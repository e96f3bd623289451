//! Retry decisions as pure functions: what to do after a failed request (a change refused by a
//! busy release included), and how long to back off (exponential, full jitter, capped).

use std::time::Duration;

use crate::cce::error::{ApiError, ErrorClass};
use crate::plan::resolved::RetryPolicy;

/// The kind of request that failed: a PUT may have changed the release, a GET never does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    Put,
    Get,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send the same request again after `delay`.
    Retry { delay: Duration },
    /// The PUT may have been applied: GET the release before anything else.
    Reconcile,
    /// The release is busy with another operation and refused the change (nothing applied):
    /// wait for it to settle, judge it again, and send the change again.
    AwaitSettled,
    /// Give up: the operation fails with this error.
    Fail,
}

impl Decision {
    /// The back-off before the next attempt, when there is one.
    pub fn retry_delay(&self) -> Option<Duration> {
        match self {
            Decision::Retry { delay } => Some(*delay),
            Decision::Reconcile | Decision::AwaitSettled | Decision::Fail => None,
        }
    }
}

/// What to do after attempt number `attempts_made` (1 for the first) failed with `class`.
/// `draw` is a uniform random number in `[0, 1)` for the jitter.
pub fn decide(
    request: RequestKind,
    attempts_made: u32,
    class: ErrorClass,
    policy: &RetryPolicy,
    draw: f64,
) -> Decision {
    match (class, request) {
        (ErrorClass::Fatal, _) => Decision::Fail,
        (ErrorClass::Ambiguous, RequestKind::Put) => Decision::Reconcile,
        _ => retry_or_fail(attempts_made, policy, draw),
    }
}

/// What to do after PUT number `puts` (1 for the first) failed with `error`. A refusal because
/// the release is busy (see [`ApiError::release_busy`]) waits for it to settle while attempts
/// remain, whatever its status; a dry run changes nothing, so an ambiguous one is simply sent
/// again; anything else is [`decide`]d by its class.
pub fn decide_put(
    puts: u32,
    error: &ApiError,
    dry_run: bool,
    policy: &RetryPolicy,
    draw: f64,
) -> Decision {
    if error.release_busy(true) {
        return if puts < policy.attempts {
            Decision::AwaitSettled
        } else {
            Decision::Fail
        };
    }
    let class = match error.class() {
        ErrorClass::Ambiguous if dry_run => ErrorClass::Retryable,
        class => class,
    };
    decide(RequestKind::Put, puts, class, policy, draw)
}

/// Retry while attempts remain (the first attempt counts), else fail.
pub fn retry_or_fail(attempts_made: u32, policy: &RetryPolicy, draw: f64) -> Decision {
    if attempts_made < policy.attempts {
        Decision::Retry {
            delay: backoff(attempts_made, policy, draw),
        }
    } else {
        Decision::Fail
    }
}

/// The ceiling of the delay after attempt `attempts_made`: `backoff * 2^(n-1)`, at most `max_backoff`.
pub fn backoff_ceiling(attempts_made: u32, policy: &RetryPolicy) -> Duration {
    // 2^31 seconds of any back-off is past every max_backoff; beyond, the shift would overflow.
    let doublings = attempts_made.saturating_sub(1).min(31);
    policy
        .backoff
        .checked_mul(1u32 << doublings)
        .unwrap_or(policy.max_backoff)
        .min(policy.max_backoff)
}

/// Full jitter: uniformly between zero and the ceiling.
pub fn backoff(attempts_made: u32, policy: &RetryPolicy, draw: f64) -> Duration {
    let draw = if draw.is_finite() {
        draw.clamp(0.0, 1.0)
    } else {
        0.0
    };
    backoff_ceiling(attempts_made, policy).mul_f64(draw)
}

/// A uniform number in `[0, 1)` determined by the run's seed, the operation and a counter, so a
/// run's jitter is reproducible whatever order the operations interleave in (splitmix64).
pub fn draw(seed: u64, operation: usize, counter: u32) -> f64 {
    let mut z = seed
        ^ (operation as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(counter).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;
    use RequestKind::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3),
        }
    }

    #[test]
    fn retry_decision_table() {
        let p = policy();
        let retry = |secs: f64| Decision::Retry {
            delay: Duration::from_secs_f64(secs),
        };
        let table = [
            (Put, 1, Retryable, 0.5, retry(0.5)),
            (Put, 2, Retryable, 0.5, retry(1.0)),
            (Put, 3, Retryable, 0.5, Decision::Fail),
            (Put, 1, Ambiguous, 0.5, Decision::Reconcile),
            (Put, 3, Ambiguous, 0.5, Decision::Reconcile),
            (Put, 1, Fatal, 0.5, Decision::Fail),
            (Get, 1, Ambiguous, 0.5, retry(0.5)),
            (Get, 2, Retryable, 1.0, retry(2.0)),
            (Get, 3, Ambiguous, 0.5, Decision::Fail),
            (Get, 1, Fatal, 0.5, Decision::Fail),
        ];
        for (request, attempts, class, draw, expected) in table {
            assert_eq!(
                decide(request, attempts, class, &p, draw),
                expected,
                "{request:?} attempt {attempts} {class:?}"
            );
        }
    }

    #[test]
    fn a_busy_release_is_waited_out_within_the_attempts_whatever_its_status() {
        use crate::cce::error::{BUSY_PHRASE, FailureKind};
        let p = policy();
        let answer = |status: u16, message: &str| ApiError {
            status: Some(status),
            message: Some(message.to_owned()),
            ..ApiError::new(FailureKind::Http)
        };
        let busy = format!("{BUSY_PHRASE}: the release is busy");
        let table = [
            (1, answer(400, &busy), false, Decision::AwaitSettled),
            (2, answer(403, &busy), false, Decision::AwaitSettled),
            (1, answer(409, &busy), false, Decision::AwaitSettled),
            (1, answer(409, "conflict"), false, Decision::AwaitSettled),
            (1, answer(409, "conflict"), true, Decision::AwaitSettled),
            // The budget spent: give up.
            (3, answer(400, &busy), false, Decision::Fail),
            // Not busy: by class, as before.
            (1, answer(400, "bad values"), false, Decision::Fail),
            (1, answer(403, "forbidden"), false, Decision::Fail),
            (1, answer(500, "internal"), false, Decision::Reconcile),
            (
                1,
                answer(500, "internal"),
                true,
                Decision::Retry {
                    delay: Duration::from_millis(500),
                },
            ),
            (
                1,
                answer(503, "unavailable"),
                false,
                Decision::Retry {
                    delay: Duration::from_millis(500),
                },
            ),
        ];
        for (puts, error, dry_run, expected) in table {
            assert_eq!(
                decide_put(puts, &error, dry_run, &p, 0.5),
                expected,
                "PUT {puts} {error} dry run {dry_run}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            attempts: 100,
            ..policy()
        };
        let ceilings: Vec<u64> = (1..=6).map(|n| backoff_ceiling(n, &p).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 3, 3, 3, 3]);
        assert_eq!(backoff_ceiling(u32::MAX, &p), Duration::from_secs(3));
    }

    #[test]
    fn jittered_backoff_stays_within_its_bounds_and_spreads() {
        let p = RetryPolicy {
            attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
        };
        for attempt in 1..10 {
            let ceiling = backoff_ceiling(attempt, &p);
            let delays: Vec<Duration> = (0..200)
                .map(|i| backoff(attempt, &p, draw(7, i, attempt)))
                .collect();
            assert!(delays.iter().all(|d| *d <= ceiling));
            let mean = delays.iter().map(Duration::as_secs_f64).sum::<f64>() / 200.0;
            let half = ceiling.as_secs_f64() / 2.0;
            assert!(
                (mean - half).abs() < half * 0.2,
                "attempt {attempt}: {mean} vs {half}"
            );
        }
        assert_eq!(backoff(1, &p, f64::NAN), Duration::ZERO);
        assert_eq!(backoff(1, &p, 7.0), Duration::from_millis(100));
    }

    #[test]
    fn draws_are_uniform_reproducible_and_in_range() {
        assert_eq!(draw(1, 2, 3), draw(1, 2, 3));
        assert_ne!(draw(1, 2, 3), draw(1, 2, 4));
        assert_ne!(draw(1, 2, 3), draw(2, 2, 3));
        let draws: Vec<f64> = (0..10_000).map(|i| draw(42, i, 0)).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let below_half = draws.iter().filter(|d| **d < 0.5).count();
        assert!((4800..5200).contains(&below_half), "{below_half}");
    }
}
