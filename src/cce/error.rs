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

    /// Whether the service refused the credentials themselves rather than this one request.
    pub fn credential_failure(&self) -> Option<CredentialFailure> {
        match self.kind {
            FailureKind::Http => credential_failure(self.status, self.code.as_deref()),
            _ => None,
        }
    }
}

/// The service refused who is asking, not what was asked: every other request with the same
/// credentials to the same endpoint would be refused the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialFailure {
    /// HTTP 401: a wrong AK/SK, a bad signature, an expired or invalid token, a project id that
    /// does not belong to the credential, a clock too far off.
    Authentication,
    /// HTTP 403 with a gateway authorization code: the credential is valid but may not call
    /// the API (an IAM policy, an app not authorized).
    Authorization,
}

impl fmt::Display for CredentialFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialFailure::Authentication => "authentication failed",
            CredentialFailure::Authorization => "not authorized",
        })
    }
}

/// The API gateway's authentication and authorization family: `APIG.0301` to `APIG.0307`
/// (`APIGW.` on newer gateways), 401 or 403 depending on the member (0308 is the throttle, 429).
const GATEWAY_AUTH_CODES: &[&str] = &["0301", "0302", "0303", "0304", "0305", "0306", "0307"];

/// Is an HTTP error a refusal of the credentials? Every 401 is: the gateway authenticates
/// before the service sees the request. A 403 is only with a gateway authorization code (an
/// IAM user or app not authorized for the API): the service itself answers 403 for reasons
/// that concern one request, such as `Update release is forbidden` while a release is busy.
pub fn credential_failure(status: Option<u16>, code: Option<&str>) -> Option<CredentialFailure> {
    match status? {
        401 => Some(CredentialFailure::Authentication),
        403 if code.is_some_and(is_gateway_auth_code) => Some(CredentialFailure::Authorization),
        _ => None,
    }
}

fn is_gateway_auth_code(code: &str) -> bool {
    let number = code
        .strip_prefix("APIG.")
        .or_else(|| code.strip_prefix("APIGW."));
    number.is_some_and(|n| GATEWAY_AUTH_CODES.contains(&n))
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

    #[test]
    fn credential_failures_are_every_401_and_a_403_with_a_gateway_authorization_code() {
        use CredentialFailure::*;
        let table: [(Option<u16>, Option<&str>, Option<CredentialFailure>); 14] = [
            (Some(401), Some("APIG.0301"), Some(Authentication)),
            (Some(401), Some("APIG.0307"), Some(Authentication)),
            (Some(401), None, Some(Authentication)),
            (Some(401), Some("CCE.01401001"), Some(Authentication)),
            (Some(403), Some("APIG.0302"), Some(Authorization)),
            (Some(403), Some("APIGW.0302"), Some(Authorization)),
            (Some(403), Some("APIG.0304"), Some(Authorization)),
            (Some(403), Some("APIG.0306"), Some(Authorization)),
            // The service's own 403s concern one request (a busy release), not the credential.
            (Some(403), Some("CCE.01403001"), None),
            (Some(403), None, None),
            (Some(403), Some("APIG.0308"), None),
            (Some(429), Some("APIG.0308"), None),
            (Some(404), Some("APIG.0101"), None),
            (None, None, None),
        ];
        for (status, code, expected) in table {
            assert_eq!(
                credential_failure(status, code),
                expected,
                "{status:?} {code:?}"
            );
        }
    }

    #[test]
    fn only_an_answer_can_refuse_credentials() {
        let mut error = ApiError::new(FailureKind::Http);
        error.status = Some(401);
        error.code = Some("APIG.0301".into());
        assert_eq!(
            error.credential_failure(),
            Some(CredentialFailure::Authentication)
        );
        error.kind = FailureKind::TimedOut;
        assert_eq!(error.credential_failure(), None);
    }
}
