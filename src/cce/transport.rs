//! Turning what came back into an [`ApiError`]: a transport failure (whether the request may
//! have been applied), an HTTP error status with its body's code and message, and
//! `Retry-After`.

use std::time::Duration;

use crate::cce::error::{ApiError, FailureKind};

/// Where a transport failure happened decides whether the request may have been applied.
pub(super) fn transport_error(e: &reqwest::Error) -> ApiError {
    let kind = if e.is_connect() || e.is_builder() {
        // Never written to the wire: DNS, TCP connect, TLS handshake, or a refused connection.
        FailureKind::NotSent
    } else if e.is_timeout() {
        FailureKind::TimedOut
    } else {
        // Cut while writing the request or reading the answer: it may have been applied.
        FailureKind::ConnectionLost
    };
    let mut err = ApiError::new(kind);
    err.message = Some(error_chain(e));
    err
}

/// An error and its sources on one line; URLs carry no secrets (credentials go in headers).
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 IMF-fixdate, or RFC 2822).
/// A date in the past means no wait.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let at = PARSER.parse_timestamp(value).ok()?;
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The [`ApiError`] for an answer with error status `status`: the service's code and message
/// read from `body` (see [`error_fields`]), with the `Content-Type`, `X-Request-Id` and parsed
/// `Retry-After` headers the caller took from the answer. Never fails, whatever the body.
pub fn http_error(
    status: u16,
    body: &[u8],
    content_type: Option<&str>,
    request_id: Option<String>,
    retry_after: Option<Duration>,
) -> ApiError {
    let (code, message) = error_fields(body, content_type);
    ApiError {
        kind: FailureKind::Http,
        status: Some(status),
        code,
        message,
        request_id,
        retry_after,
    }
}

/// `error_code`/`error_msg` (or `errorCode`/`errorMessage`, or IAM's nested `error`), with
/// `message` added; for a body that is not JSON (a gateway's HTML page), a short excerpt.
fn error_fields(body: &[u8], content_type: Option<&str>) -> (Option<String>, Option<String>) {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
        let text = |m: &serde_json::Map<String, serde_json::Value>, keys: &[&str]| {
            keys.iter().find_map(|k| match m.get(*k) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
        };
        let nested = map.get("error").and_then(|e| e.as_object());
        let code = text(&map, &["error_code", "errorCode", "code"])
            .or_else(|| nested.and_then(|n| text(n, &["code", "error_code"])));
        let primary = text(&map, &["error_msg", "errorMessage"])
            .or_else(|| nested.and_then(|n| text(n, &["message", "error_msg"])));
        let detail = text(&map, &["message"]);
        let message = match (primary, detail) {
            (Some(p), Some(d)) if p != d => Some(format!("{p} ({d})")),
            (Some(p), _) => Some(p),
            (None, d) => d,
        };
        return (code, message);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return (None, None);
    }
    let excerpt = html_title(text).unwrap_or(text);
    let mut collapsed: String = excerpt.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > 200 {
        collapsed = collapsed.chars().take(200).collect::<String>() + "…";
    }
    let kind = content_type
        .and_then(|c| c.split(';').next())
        .unwrap_or("non-JSON");
    (None, Some(format!("{kind} answer: {collapsed}")))
}

fn html_title(text: &str) -> Option<&str> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title>")? + "<title>".len();
    let end = start + lower[start..].find("</title>")?;
    Some(text[start..end].trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now: jiff::Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Mon, 01 Jan 2024 00:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 31 Dec 2023 23:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn error_bodies_of_every_shape() {
        let cases: [(&str, Option<&str>, Option<&str>); 6] = [
            (
                r#"{"error_code":"APIG.0308","error_msg":"The throttling threshold has been reached"}"#,
                Some("APIG.0308"),
                Some("The throttling threshold has been reached"),
            ),
            (
                r#"{"errorCode":"CCE.01","errorMessage":"bad","message":"more detail"}"#,
                Some("CCE.01"),
                Some("bad (more detail)"),
            ),
            (r#"{"message":"only this"}"#, None, Some("only this")),
            (
                r#"{"error":{"code":"IAM.1","message":"nested"}}"#,
                Some("IAM.1"),
                Some("nested"),
            ),
            (
                "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
                None,
                Some("text/html answer: 502 Bad Gateway"),
            ),
            ("", None, None),
        ];
        for (body, code, message) in cases {
            let ct = body.starts_with('<').then_some("text/html; charset=utf-8");
            let (c, m) = error_fields(body.as_bytes(), ct);
            assert_eq!(c.as_deref(), code, "{body}");
            assert_eq!(m.as_deref(), message, "{body}");
        }
    }
}
