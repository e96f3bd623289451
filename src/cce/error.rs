//! The one error every API call returns, and its classification into what the engine may do next.

use std::fmt;
use std::time::Duration;

/// What went wrong, as far as whether the request reached the service matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The request was never sent: DNS, connect, TLS handshake, or a refused connection.
    NotSent,
    /// The request was sent and no answer came within the time-out.
    TimedOut,
    /// The connection was cut after the request was sent and before the whole answer arrived.
    ConnectionLost,
    /// The service answered with an HTTP error status.
    Http,
    /// The service answered 2xx with a body that could not be read as the expected shape.
    Decode,
}

/// How the engine may react to an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    /// Nothing was applied: the same request may be sent again.
    Retryable,
    /// It may have been applied: reconcile with a GET before sending again.
    Ambiguous,
    /// Retrying cannot help.
    Fatal,
}

/// An API call's failure, with all the service said about it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct ApiError {
    pub kind: FailureKind,
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub request_id: Option<String>,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(kind: FailureKind) -> Self {
        ApiError {
            kind,
            status: None,
            code: None,
            message: None,
            request_id: None,
            retry_after: None,
        }
    }

    pub fn class(&self) -> ErrorClass {
        classify(self.kind, self.status)
    }

    /// True for a gateway throttle (HTTP 429, `APIG.0308` among others).
    pub fn is_throttle(&self) -> bool {
        self.status == Some(429)
    }
}

/// What went wrong, in a few words: the start of every message about an [`ApiError`].
pub struct WhatFailed<'a>(&'a ApiError);

impl fmt::Display for WhatFailed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.kind {
            FailureKind::NotSent => f.write_str("request not sent"),
            FailureKind::TimedOut => f.write_str("timed out waiting for the answer"),
            FailureKind::ConnectionLost => f.write_str("connection lost before the answer"),
            FailureKind::Http => write!(f, "HTTP {}", self.0.status.unwrap_or(0)),
            FailureKind::Decode => f.write_str("unreadable answer"),
        }
    }
}

impl ApiError {
    pub fn what(&self) -> WhatFailed<'_> {
        WhatFailed(self)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.what())?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

/// The retry decision's input half: may the failed request have been applied?
pub fn classify(kind: FailureKind, status: Option<u16>) -> ErrorClass {
    match kind {
        FailureKind::NotSent => ErrorClass::Retryable,
        FailureKind::TimedOut | FailureKind::ConnectionLost => ErrorClass::Ambiguous,
        // A 2xx we could not read was applied; reading it again is the reconcile GET's job.
        FailureKind::Decode => ErrorClass::Ambiguous,
        FailureKind::Http => match status.unwrap_or(0) {
            429 | 502 | 503 | 504 => ErrorClass::Retryable,
            400..=499 => ErrorClass::Fatal,
            // 500, and any other 5xx: the service may have applied the change before failing.
            500..=599 => ErrorClass::Ambiguous,
            _ => ErrorClass::Fatal,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        use ErrorClass::*;
        use FailureKind::*;
        let table = [
            (NotSent, None, Retryable),
            (TimedOut, None, Ambiguous),
            (ConnectionLost, None, Ambiguous),
            (Decode, Some(200), Ambiguous),
            (Http, Some(429), Retryable),
            (Http, Some(502), Retryable),
            (Http, Some(503), Retryable),
            (Http, Some(504), Retryable),
            (Http, Some(500), Ambiguous),
            (Http, Some(501), Ambiguous),
            (Http, Some(400), Fatal),
            (Http, Some(401), Fatal),
            (Http, Some(403), Fatal),
            (Http, Some(404), Fatal),
            (Http, Some(409), Fatal),
            (Http, Some(418), Fatal),
            (Http, Some(302), Fatal),
        ];
        for (kind, status, expected) in table {
            assert_eq!(classify(kind, status), expected, "{kind:?} {status:?}");
        }
    }
}
