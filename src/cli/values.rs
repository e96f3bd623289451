//! Parsers for flag values shared by several commands: durations, probabilities, rates, budgets,
//! `--redact` patterns.

use std::time::Duration;

use crate::plan::resolved::{FailureBudget, Rate};
use crate::plan::{expand, schema};

/// A `--redact` pattern: a regular expression (Rust regex syntax).
pub fn redact_pattern(text: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(text).map_err(|e| {
        let why = e.to_string();
        let last = why
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(&why);
        format!(
            "not a regular expression: {}",
            last.trim().trim_start_matches("error: ")
        )
    })
}

/// `500ms`, `2s`, `1m`, `1h`, or `0`.
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    expand::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration like 500ms, 2s, 1m or 1h"))
}

/// A probability from 0 to 1.
pub fn probability(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{text:?} is not a probability between 0 and 1")),
    }
}

/// How many times faster a rehearsal runs: at least 1, at most 10,000.
pub fn time_scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (1.0..=10_000.0).contains(&f) => Ok(f),
        _ => Err(format!("{text:?} is not a speed-up from 1 to 10000")),
    }
}

/// How many revisions the simulator seeds each release with: 1 to
/// [`crate::sim::store::MAX_SEEDED_REVISIONS`].
pub fn seed_revisions(text: &str) -> Result<u32, String> {
    let max = crate::sim::store::MAX_SEEDED_REVISIONS;
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a number of revisions from 1 to {max}"
        )),
    }
}

/// A positive number of requests per second.
pub fn per_second(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{text:?} is not a positive number of requests per second"
        )),
    }
}

/// A positive number of requests per second, at most the plan's own limit, or `unlimited`.
pub fn rate(text: &str) -> Result<Rate, String> {
    if text.eq_ignore_ascii_case("unlimited") {
        return Ok(Rate::Unlimited);
    }
    let max = schema::rollout_number_maximum(&["rate"]);
    match per_second(text) {
        Ok(r) if r <= max => Ok(Rate::PerSecond(r)),
        Ok(_) => Err(format!("{text:?} is more than {max} requests per second")),
        Err(e) => Err(format!("{e}, or `unlimited`")),
    }
}

/// A whole number within the bounds the plan schema sets on the rollout setting at `path`.
fn rollout_count<T: TryFrom<u64>>(text: &str, path: &[&str]) -> Result<T, String> {
    let (min, max) = schema::rollout_count_range(path);
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("{text:?} is not a whole number from {min} to {max}"))
}

pub fn concurrency(text: &str) -> Result<usize, String> {
    rollout_count(text, &["concurrency"])
}

pub fn per_cluster(text: &str) -> Result<usize, String> {
    rollout_count(text, &["per_cluster"])
}

pub fn burst(text: &str) -> Result<u32, String> {
    rollout_count(text, &["burst"])
}

pub fn attempts(text: &str) -> Result<u32, String> {
    rollout_count(text, &["retry", "attempts"])
}

/// A duration longer than zero.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        Duration::ZERO => Err(format!("{text:?}: must be more than 0")),
        d => Ok(d),
    }
}

/// A count (`3`) or a percentage (`10%`) of the operations in scope.
pub fn budget(text: &str) -> Result<FailureBudget, String> {
    if let Some(pct) = text.strip_suffix('%') {
        return match pct.trim().parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(FailureBudget::Percent(p)),
            _ => Err(format!("{text:?} is not a percentage from 0% to 100%")),
        };
    }
    text.parse::<u32>()
        .map(FailureBudget::Count)
        .map_err(|_| format!("{text:?} is not a count (e.g. 3) or a percentage (e.g. 10%)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_rates_and_budgets_parse_or_explain() {
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(duration("5").unwrap_err().contains("not a duration"));
        assert!(duration("5d").is_err());
        assert!(duration("ms").is_err());
        assert_eq!(rate("unlimited"), Ok(Rate::Unlimited));
        assert_eq!(rate("2.5"), Ok(Rate::PerSecond(2.5)));
        assert!(rate("0").is_err());
        assert!(rate("-1").is_err());
        assert_eq!(budget("10%"), Ok(FailureBudget::Percent(10.0)));
        assert_eq!(budget("0"), Ok(FailureBudget::Count(0)));
        assert!(budget("120%").is_err());
        assert!(budget("-1").is_err());
        assert_eq!(probability("0.2"), Ok(0.2));
        assert!(probability("1.5").is_err());
    }

    /// A flag that overrides a rollout setting is held to the plan schema's bounds.
    #[test]
    fn rollout_flags_take_what_a_plan_may_say() {
        assert_eq!(concurrency("64"), Ok(64));
        assert!(per_cluster("0").is_err());
        assert_eq!(
            concurrency("10001").unwrap_err(),
            "\"10001\" is not a whole number from 1 to 10000"
        );
        assert!(burst("0").is_err());
        assert_eq!(burst("1000000"), Ok(1_000_000));
        assert_eq!(attempts("100"), Ok(100));
        assert!(attempts("1000").is_err());
        assert!(rate("1000001").unwrap_err().contains("more than 1000000"));
        assert!(positive_duration("0s").unwrap_err().contains("more than 0"));
        assert_eq!(positive_duration("2s"), Ok(Duration::from_secs(2)));
    }
}
