//! Parsers for flag values shared by several commands: durations, probabilities, rates, budgets.

use std::time::Duration;

use crate::plan::expand;
use crate::plan::resolved::{FailureBudget, Rate};

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

/// A positive number of requests per second.
pub fn per_second(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{text:?} is not a positive number of requests per second"
        )),
    }
}

/// A positive number of requests per second, or `unlimited`.
pub fn rate(text: &str) -> Result<Rate, String> {
    if text.eq_ignore_ascii_case("unlimited") {
        return Ok(Rate::Unlimited);
    }
    per_second(text)
        .map(Rate::PerSecond)
        .map_err(|e| format!("{e}, or `unlimited`"))
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

/// A count of at least 1.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} is not a whole number of at least 1")),
    }
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
        assert!(at_least_one("0").is_err());
    }
}
