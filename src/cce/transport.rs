//! Turning what came back into an [`ApiError`]: a transport failure (whether the request may
//! have been applied), an HTTP error status with its body's code and message (read in
//! `cce::error`), and `Retry-After`.

use std::time::Duration;

use crate::cce::error::{ApiError, FailureKind, read_error_body};

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
/// as either SDK reader reads them from `body` (see [`read_error_body`]), with the
/// `Content-Type`, `X-Request-Id` and parsed `Retry-After` headers the caller took from the
/// answer. Never fails, whatever the body.
pub fn http_error(
    status: u16,
    body: &[u8],
    content_type: Option<&str>,
    request_id: Option<String>,
    retry_after: Option<Duration>,
) -> ApiError {
    let read = read_error_body(body, content_type);
    // Kept as the SDKs keep it: it tells which policy refused an authorization.
    let message = match (read.message, read.encoded_authorization_message) {
        (Some(message), Some(encoded)) => Some(format!(
            "{message} (encoded authorization message: {encoded})"
        )),
        (None, Some(encoded)) => Some(format!("encoded authorization message: {encoded}")),
        (message, None) => message,
    };
    ApiError {
        kind: FailureKind::Http,
        status: Some(status),
        code: read.code,
        message,
        request_id,
        retry_after,
    }
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
    fn an_error_keeps_what_the_body_and_headers_say() {
        let body = br#"{"error_code":"IAM.0002","error_msg":"denied","encoded_authorization_message":"enc-123"}"#;
        let error = http_error(403, body, None, Some("req-9".into()), None);
        assert_eq!(error.code.as_deref(), Some("IAM.0002"));
        assert_eq!(
            error.message.as_deref(),
            Some("denied (encoded authorization message: enc-123)")
        );
        assert_eq!(
            error.to_string(),
            "HTTP 403 IAM.0002: denied (encoded authorization message: enc-123) (request id req-9)"
        );
    }
}
