//! Seeded gateway behaviour: which fault a request meets, its latency jitter, whether its deploy
//! fails, and the per-credential token bucket of `--throttle`.

use std::collections::HashMap;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// What the gateway did to a request instead of (or besides) answering it normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// 429 from `--throttle`.
    Throttle,
    /// `--reset-rate`: the connection is cut before anything is applied.
    Reset,
    /// `--error-rate`: 500, 502 or 503 before anything is applied.
    Error,
    /// `--ambiguous-rate`, first kind: the change is applied, then the answer is a 500.
    AmbiguousError,
    /// `--ambiguous-rate`, second kind: the change is applied, then the connection is cut.
    AmbiguousCut,
    /// `--hang-rate`: the change is applied, then no answer ever comes.
    Hang,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::Reset => "reset",
            Fault::Error => "error",
            Fault::AmbiguousError => "ambiguous_error",
            Fault::AmbiguousCut => "ambiguous_cut",
            Fault::Hang => "hang",
        }
    }
}

/// The probabilities of each fault, each in `0..=1`, their sum at most 1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultRates {
    pub error: f64,
    pub ambiguous: f64,
    pub hang: f64,
    pub reset: f64,
    pub deploy_fail: f64,
}

impl FaultRates {
    /// The first rate outside `0..=1`, or a sum of request fault rates above 1, as a message.
    pub fn check(&self) -> Result<(), String> {
        for (name, rate) in [
            ("error rate", self.error),
            ("ambiguous rate", self.ambiguous),
            ("hang rate", self.hang),
            ("reset rate", self.reset),
            ("deploy fail rate", self.deploy_fail),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} {rate} is not between 0 and 1"));
            }
        }
        let sum = self.error + self.ambiguous + self.hang + self.reset;
        if sum > 1.0 + 1e-9 {
            return Err(format!(
                "error, ambiguous, hang and reset rates add up to {sum}, more than 1"
            ));
        }
        Ok(())
    }

    fn any_request_fault(&self) -> bool {
        self.error + self.ambiguous + self.hang + self.reset > 0.0
    }
}

/// One request's fate, drawn when it arrives.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Draw {
    /// Never [`Fault::Throttle`]: throttling is the token bucket's decision.
    pub fault: Option<Fault>,
    /// The HTTP status of an [`Fault::Error`] or [`Fault::AmbiguousError`].
    pub error_status: u16,
    /// Extra latency, up to `--jitter`.
    pub jitter: Duration,
    /// The deploy this request starts fails (`--deploy-fail-rate`).
    pub deploy_fails: bool,
}

/// The seeded dice. Every request consumes the same number of draws, so a run with the same
/// seed and the same request order meets the same faults.
#[derive(Debug)]
pub struct FaultDice {
    rng: ChaCha8Rng,
    rates: FaultRates,
    jitter: Duration,
}

impl FaultDice {
    pub fn new(seed: u64, rates: FaultRates, jitter: Duration) -> Self {
        FaultDice {
            rng: ChaCha8Rng::seed_from_u64(seed),
            rates,
            jitter,
        }
    }

    /// True when no request can meet a fault, a jitter or a failed deploy: no need to draw.
    pub fn is_idle(&self) -> bool {
        !self.rates.any_request_fault() && self.rates.deploy_fail == 0.0 && self.jitter.is_zero()
    }

    pub fn draw(&mut self) -> Draw {
        let fault_roll: f64 = self.rng.random();
        let kind_roll: f64 = self.rng.random();
        let jitter_roll: f64 = self.rng.random();
        let deploy_roll: f64 = self.rng.random();
        let r = &self.rates;
        // The rates split [0, 1) into consecutive ranges: reset, error, ambiguous, hang, none.
        let reset_end = r.reset;
        let error_end = reset_end + r.error;
        let ambiguous_end = error_end + r.ambiguous;
        let hang_end = ambiguous_end + r.hang;
        let fault = if fault_roll < reset_end {
            Some(Fault::Reset)
        } else if fault_roll < error_end {
            Some(Fault::Error)
        } else if fault_roll < ambiguous_end {
            Some(if kind_roll < 0.5 {
                Fault::AmbiguousError
            } else {
                Fault::AmbiguousCut
            })
        } else if fault_roll < hang_end {
            Some(Fault::Hang)
        } else {
            None
        };
        let error_status = match fault {
            Some(Fault::Error) if kind_roll < 1.0 / 3.0 => 500,
            Some(Fault::Error) if kind_roll < 2.0 / 3.0 => 502,
            Some(Fault::Error) => 503,
            _ => 500,
        };
        Draw {
            fault,
            error_status,
            jitter: self.jitter.mul_f64(jitter_roll),
            deploy_fails: deploy_roll < r.deploy_fail,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// `--throttle RPS`: a token bucket per credential, holding at most one second of requests.
#[derive(Debug)]
pub struct Throttle {
    rate: f64,
    capacity: f64,
    buckets: HashMap<String, Bucket>,
}

impl Throttle {
    pub fn new(rate_per_second: f64) -> Self {
        Throttle {
            rate: rate_per_second,
            capacity: rate_per_second.max(1.0),
            buckets: HashMap::new(),
        }
    }

    /// The per-minute equivalent, as the gateway's 429 message states it.
    pub fn limit_per_minute(&self) -> u64 {
        (self.rate * 60.0).round() as u64
    }

    /// Takes a token for `credential`, or says how long until one is available.
    pub fn admit(&mut self, credential: &str, now: Instant) -> Result<(), Duration> {
        let bucket = match self.buckets.get_mut(credential) {
            Some(bucket) => bucket,
            None => self.buckets.entry(credential.to_owned()).or_insert(Bucket {
                tokens: self.capacity,
                refilled: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.capacity);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fault_meets_its_rate_and_a_seed_replays() {
        let rates = FaultRates {
            error: 0.1,
            ambiguous: 0.2,
            hang: 0.05,
            reset: 0.15,
            deploy_fail: 0.3,
        };
        let run = |seed| {
            let mut dice = FaultDice::new(seed, rates, Duration::from_millis(10));
            (0..20_000).map(|_| dice.draw()).collect::<Vec<_>>()
        };
        let draws = run(7);
        assert_eq!(draws, run(7));
        assert_ne!(draws, run(8));
        let share = |pred: &dyn Fn(&Draw) -> bool| {
            draws.iter().filter(|d| pred(d)).count() as f64 / draws.len() as f64
        };
        let close = |got: f64, want: f64| (got - want).abs() < 0.015;
        assert!(close(share(&|d| d.fault == Some(Fault::Error)), 0.1));
        assert!(close(
            share(&|d| matches!(d.fault, Some(Fault::AmbiguousError | Fault::AmbiguousCut))),
            0.2
        ));
        assert!(close(share(&|d| d.fault == Some(Fault::Hang)), 0.05));
        assert!(close(share(&|d| d.fault == Some(Fault::Reset)), 0.15));
        assert!(close(share(&|d| d.deploy_fails), 0.3));
        assert!(draws.iter().all(|d| d.jitter <= Duration::from_millis(10)));
        for status in [500, 502, 503] {
            assert!(
                draws
                    .iter()
                    .any(|d| d.fault == Some(Fault::Error) && d.error_status == status)
            );
        }
    }

    #[test]
    fn rates_outside_zero_to_one_or_adding_past_one_are_refused() {
        assert!(
            FaultRates {
                error: 1.5,
                ..Default::default()
            }
            .check()
            .is_err()
        );
        assert!(
            FaultRates {
                error: 0.6,
                reset: 0.6,
                ..Default::default()
            }
            .check()
            .is_err()
        );
        assert!(
            FaultRates {
                error: 0.5,
                reset: 0.5,
                deploy_fail: 1.0,
                ..Default::default()
            }
            .check()
            .is_ok()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_admits_a_burst_then_refills_at_its_rate_per_credential() {
        let mut throttle = Throttle::new(2.0);
        assert_eq!(throttle.limit_per_minute(), 120);
        let now = Instant::now();
        assert!(throttle.admit("a", now).is_ok());
        assert!(throttle.admit("a", now).is_ok());
        let wait = throttle.admit("a", now).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(
            throttle.admit("b", now).is_ok(),
            "buckets are per credential"
        );
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(throttle.admit("a", Instant::now()).is_ok());
        assert!(throttle.admit("a", Instant::now()).is_err());
    }
}
