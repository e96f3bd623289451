//! Rate adaptation for one endpoint: AIMD (multiplicative decrease on a 429, additive increase
//! back toward the configured rate) and how long a throttle pauses the endpoint.

use std::time::Duration;

use tokio::time::Instant;

use crate::cce::error::ApiError;

/// The rate is multiplied by this on each throttling event.
pub const DECREASE_FACTOR: f64 = 0.7;
/// Pause after a 429 that says nothing about when to come back.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// The share of a stated gateway limit the rate may climb back to.
pub const LEARNT_LIMIT_MARGIN: f64 = 0.95;
/// A throttle never pauses an endpoint longer than this, whatever a header says.
pub const MAX_PAUSE: Duration = Duration::from_secs(120);

/// AIMD state of one endpoint. Pure: every method takes the current time.
#[derive(Clone, Debug)]
pub struct Aimd {
    /// The configured rate: additive increase never goes above it.
    configured: f64,
    /// A limit learnt from an `APIG.0308` message caps the rate below `configured`.
    learnt_ceiling: Option<f64>,
    floor: f64,
    /// Requests per second gained per second without a throttle.
    increase_per_second: f64,
    rate: f64,
    /// Increase is accounted up to this instant.
    increased_until: Instant,
    /// Requests sent before this instant belong to the congestion event already reacted to.
    last_decrease: Option<Instant>,
}

impl Aimd {
    pub fn new(configured: f64, now: Instant) -> Self {
        let configured = configured.max(f64::MIN_POSITIVE);
        Aimd {
            configured,
            learnt_ceiling: None,
            floor: (configured * 0.02).clamp(0.05, configured),
            increase_per_second: (configured * 0.01).max(0.1),
            rate: configured,
            increased_until: now,
            last_decrease: None,
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn ceiling(&self) -> f64 {
        match self.learnt_ceiling {
            Some(learnt) => learnt.min(self.configured),
            None => self.configured,
        }
    }

    /// Additive increase for the time elapsed since the last call; returns the new rate.
    pub fn tick(&mut self, now: Instant) -> f64 {
        if now > self.increased_until {
            let elapsed = (now - self.increased_until).as_secs_f64();
            self.rate = (self.rate + self.increase_per_second * elapsed).min(self.ceiling());
            self.increased_until = now;
        }
        self.rate
    }

    /// A 429 arrived at `now` for a request sent at `sent_at`. Decreases the rate once per
    /// congestion event (a request sent before the last decrease does not decrease again) and
    /// returns how long the endpoint should pause.
    pub fn on_throttle(&mut self, now: Instant, sent_at: Instant, error: &ApiError) -> Duration {
        let stated = error.message.as_deref().and_then(stated_limit_per_second);
        if let Some(limit) = stated {
            // Pacing exactly at a gateway's limit is throttled by any jitter: stay a little under.
            self.learnt_ceiling = Some((limit * LEARNT_LIMIT_MARGIN).max(self.floor));
        }
        let pause = pause_for(error, stated);
        let fresh = self.last_decrease.is_none_or(|at| sent_at >= at);
        if fresh {
            self.tick(now);
            self.rate = (self.rate * DECREASE_FACTOR).max(self.floor);
            self.last_decrease = Some(now);
        }
        self.rate = self.rate.min(self.ceiling());
        // No increase while paused.
        self.increased_until = self.increased_until.max(now + pause);
        pause
    }
}

/// How long one 429 pauses its endpoint: `Retry-After` when present, else the time to earn one
/// request at the limit an `APIG.0308` message states, else [`DEFAULT_PAUSE`].
pub fn pause_for(error: &ApiError, stated_limit_per_second: Option<f64>) -> Duration {
    let pause = match (error.retry_after, stated_limit_per_second) {
        (Some(after), _) => after,
        (None, Some(limit)) if limit > 0.0 => Duration::from_secs_f64((1.0 / limit).min(60.0)),
        _ => DEFAULT_PAUSE,
    };
    pause.min(MAX_PAUSE)
}

/// The limit an `APIG.0308` message states, in requests per second:
/// `...policy user over ratelimit,limit:XX,time:1 minute` means XX per minute.
pub fn stated_limit_per_second(message: &str) -> Option<f64> {
    let after = &message[message.find("limit:")? + "limit:".len()..];
    let digits = after
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(after.len());
    let limit: f64 = after[..digits].parse().ok()?;
    if limit <= 0.0 || !limit.is_finite() {
        return None;
    }
    let period = match message.find("time:") {
        None => 60.0,
        Some(at) => {
            let text = message[at + "time:".len()..].trim_start();
            let count_end = text
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len());
            let count = text[..count_end].parse::<f64>().unwrap_or(1.0).max(1.0);
            let unit = text[count_end..].trim_start();
            let unit_seconds = if unit.starts_with("second") {
                1.0
            } else if unit.starts_with("hour") {
                3600.0
            } else if unit.starts_with("day") {
                86400.0
            } else {
                60.0
            };
            count * unit_seconds
        }
    };
    Some(limit / period)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cce::error::FailureKind;

    fn throttle(message: Option<&str>, retry_after: Option<Duration>) -> ApiError {
        ApiError {
            status: Some(429),
            code: Some("APIG.0308".into()),
            message: message.map(str::to_owned),
            retry_after,
            ..ApiError::new(FailureKind::Http)
        }
    }

    #[test]
    fn the_apig_0308_limit_is_per_minute() {
        let message = "The throttling threshold has been reached: policy user over ratelimit,limit:600,time:1 minute";
        assert_eq!(stated_limit_per_second(message), Some(10.0));
        assert_eq!(
            stated_limit_per_second("limit:30,time:1 second"),
            Some(30.0)
        );
        assert_eq!(stated_limit_per_second("limit:120"), Some(2.0));
        assert_eq!(stated_limit_per_second("over ratelimit"), None);
        assert_eq!(stated_limit_per_second("limit:0,time:1 minute"), None);
    }

    #[test]
    fn retry_after_wins_over_the_stated_limit_and_the_default() {
        let e = throttle(Some("limit:60,time:1 minute"), Some(Duration::from_secs(3)));
        assert_eq!(pause_for(&e, Some(1.0)), Duration::from_secs(3));
        let e = throttle(Some("limit:120,time:1 minute"), None);
        assert_eq!(pause_for(&e, Some(2.0)), Duration::from_millis(500));
        assert_eq!(pause_for(&throttle(None, None), None), DEFAULT_PAUSE);
        let huge = throttle(None, Some(Duration::from_secs(100_000)));
        assert_eq!(pause_for(&huge, None), MAX_PAUSE);
    }

    #[test]
    fn one_congestion_event_decreases_once_then_increase_is_additive() {
        let t0 = Instant::now();
        let mut aimd = Aimd::new(100.0, t0);
        let e = throttle(None, Some(Duration::from_secs(1)));
        let pause = aimd.on_throttle(t0 + Duration::from_secs(1), t0, &e);
        assert_eq!(pause, Duration::from_secs(1));
        assert!((aimd.rate() - 70.0).abs() < 1e-9, "{}", aimd.rate());
        // Sent before the decrease: same event, no second decrease.
        aimd.on_throttle(t0 + Duration::from_millis(1100), t0, &e);
        assert!((aimd.rate() - 70.0).abs() < 1e-9, "{}", aimd.rate());
        // No increase during the pause, then +1/s per second (1% of 100).
        assert!((aimd.tick(t0 + Duration::from_millis(1500)) - 70.0).abs() < 1e-9);
        let later = aimd.tick(t0 + Duration::from_millis(12_100));
        assert!((later - 80.0).abs() < 1e-6, "{later}");
        // Never above the configured rate.
        assert!((aimd.tick(t0 + Duration::from_secs(1000)) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_stated_limit_caps_the_rate() {
        let t0 = Instant::now();
        let mut aimd = Aimd::new(100.0, t0);
        let e = throttle(
            Some("policy user over ratelimit,limit:1200,time:1 minute"),
            None,
        );
        aimd.on_throttle(t0, t0, &e);
        assert!(aimd.rate() <= 19.0);
        assert!((aimd.tick(t0 + Duration::from_secs(1000)) - 19.0).abs() < 1e-9);
    }
}
