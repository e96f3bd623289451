//! The one error every API call returns, its classification into what the engine may do next
//! (a busy release included), and the error bodies read as both SDK readers read them.

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

/// The phrase in the service's refusal of a change to a release that is busy with another
/// operation. The Terraform provider for this API retries its PUT exactly when the error text
/// contains it; the status that comes with it is not documented.
pub const BUSY_PHRASE: &str = "Update release is forbidden";

/// Whether an answer refuses a request because the release is busy with another operation
/// (a `PENDING_*` release): nothing was applied, and the same change may go out once the
/// release settles. Any 4xx whose message contains [`BUSY_PHRASE`] (400, 403 and 409 are all
/// seen), except a refusal of the credentials and a throttle; and, for a `change` (a PUT), a
/// plain 409, which is what a conflict with another operation is.
pub fn release_busy(
    kind: FailureKind,
    status: Option<u16>,
    code: Option<&str>,
    message: Option<&str>,
    change: bool,
) -> bool {
    let Some(status) = status.filter(|_| kind == FailureKind::Http) else {
        return false;
    };
    if credential_failure(Some(status), code).is_some() || status == 429 {
        return false;
    }
    let says_busy = message.is_some_and(|m| {
        m.to_ascii_lowercase()
            .contains(&BUSY_PHRASE.to_ascii_lowercase())
    });
    match status {
        400..=499 if says_busy => true,
        409 => change,
        _ => false,
    }
}

impl ApiError {
    /// See [`release_busy`]; `change` is true for a PUT.
    pub fn release_busy(&self, change: bool) -> bool {
        release_busy(
            self.kind,
            self.status,
            self.code.as_deref(),
            self.message.as_deref(),
            change,
        )
    }
}

/// What an error answer's body says, as the SDKs read it: the service's code, its message, and
/// the `encoded_authorization_message` an IAM policy refusal may carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
    pub encoded_authorization_message: Option<String>,
}

/// The longest excerpt of a body that is not a JSON object kept as the message.
const EXCERPT_CHARS: usize = 200;

/// The CCE client's own error handler, as every SDK installs it for this API (Go:
/// `services/cce/v3/cce_error_handler.go`, `CceErrorHandler.HandleError`; Python:
/// `huaweicloudsdkcce/v3/cce_exception_handler.py`): the code from `error_code`, else
/// `errorCode`; the message from `error_msg`, else `errorMessage`, then `message` appended after
/// `", "` when it differs (or alone when there is no other); `encoded_authorization_message`
/// kept. A body that is not a JSON object gives nothing here (the Go handler gives up on it).
pub fn read_as_cce_handler(body: &[u8]) -> ErrorBody {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) else {
        return ErrorBody::default();
    };
    let primary = text_of(&map, "error_msg").or_else(|| text_of(&map, "errorMessage"));
    ErrorBody {
        code: text_of(&map, "error_code").or_else(|| text_of(&map, "errorCode")),
        message: with_detail(primary, text_of(&map, "message")),
        encoded_authorization_message: text_of(&map, "encoded_authorization_message"),
    }
}

/// The key pairs the core SDK's default handler tries, in its order.
const CORE_PAIRS: [(&str, &str); 3] = [
    ("error_code", "error_msg"),
    ("errorCode", "errorMsg"),
    ("code", "message"),
];

/// The core SDK's default error handler, what IAM's answers meet (Python:
/// `huaweicloudsdkcore/exceptions/exception_handler.py`, `DefaultExceptionHandler`; Go:
/// `core/sdkerr/errors.go`, `processServiceResponseError`): the first pair present of
/// `error_code`/`error_msg`, `errorCode`/`errorMsg`, `code`/`message`, else the same search in
/// every value of the body that is itself an object, in order, at any depth (IAM answers
/// `{"error": {"code": …, "message": …}}`); a body that is not a JSON object is the message as
/// text, and so is a body where no message was found; with no code, the HTTP status is the code.
pub fn read_as_core_handler(status: u16, body: &[u8]) -> ErrorBody {
    let mut read = match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(map)) => {
            let (code, message) = core_pair(&map).unzip();
            ErrorBody {
                code,
                message,
                encoded_authorization_message: text_of(&map, "encoded_authorization_message"),
            }
        }
        _ => ErrorBody::default(),
    };
    if read.message.is_none() {
        read.message = body_excerpt(body, None);
    }
    if read.code.is_none() {
        read.code = Some(status.to_string());
    }
    read
}

/// The first code and message pair in `map`, or in an object inside it (depth first, in the
/// body's order; serde_json bounds the depth of what it parses).
fn core_pair(map: &serde_json::Map<String, serde_json::Value>) -> Option<(String, String)> {
    CORE_PAIRS
        .iter()
        .find_map(|(code, message)| Some((text_of(map, code)?, text_of(map, message)?)))
        .or_else(|| {
            map.values()
                .filter_map(serde_json::Value::as_object)
                .find_map(core_pair)
        })
}

/// What flotilla reads from an error answer: whatever either SDK reader reads, since an API
/// gateway in front of any endpoint may answer in either shape. The code is the CCE handler's,
/// else the core handler's (from its key pairs, nested ones included); the message is the CCE
/// handler's primary one, else the core handler's, with a top-level `message` appended when it
/// differs; a body that is not a JSON object, or one where neither reader found a message, is
/// the message as a short excerpt. With no code the code stays absent: the HTTP status the core
/// handler would put there is already the error's status.
pub fn read_error_body(body: &[u8], content_type: Option<&str>) -> ErrorBody {
    let map = match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(map)) => map,
        parsed => {
            // A gateway's HTML page or plain text says what it is; a JSON string or array is
            // the message as it stands.
            let label = parsed
                .is_err()
                .then(|| content_type.and_then(media_type).unwrap_or("non-JSON"));
            return ErrorBody {
                message: body_excerpt(body, label),
                ..ErrorBody::default()
            };
        }
    };
    let pair = core_pair(&map);
    let code = text_of(&map, "error_code")
        .or_else(|| text_of(&map, "errorCode"))
        .or_else(|| pair.as_ref().map(|(code, _)| code.clone()));
    let primary = text_of(&map, "error_msg")
        .or_else(|| text_of(&map, "errorMessage"))
        .or_else(|| pair.map(|(_, message)| message));
    let message =
        with_detail(primary, text_of(&map, "message")).or_else(|| body_excerpt(body, None));
    ErrorBody {
        code,
        message,
        encoded_authorization_message: text_of(&map, "encoded_authorization_message"),
    }
}

/// A field as text: a non-empty string, or a number (the Python SDK keeps whatever JSON value
/// it finds; a number is the one other shape a code comes in).
fn text_of(map: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<String> {
    match map.get(key)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `primary`, then `detail` after `", "` when it says something else, as the CCE handler joins
/// `error_msg` and `message`.
fn with_detail(primary: Option<String>, detail: Option<String>) -> Option<String> {
    match (primary, detail) {
        (Some(p), Some(d)) if p != d => Some(format!("{p}, {d}")),
        (Some(p), _) => Some(p),
        (None, d) => d,
    }
}

/// `text/html` of `text/html; charset=utf-8`.
fn media_type(content_type: &str) -> Option<&str> {
    content_type
        .split(';')
        .next()
        .map(str::trim)
        .filter(|kind| !kind.is_empty())
}

/// A body that is not a readable error object, as a one-line message: an HTML page's title, or
/// the text with its white space collapsed, at most [`EXCERPT_CHARS`] characters, after
/// `"{label} answer: "` when a label is given.
fn body_excerpt(body: &[u8], label: Option<&str>) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let excerpt = html_title(text).unwrap_or(text);
    let mut collapsed: String = excerpt.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > EXCERPT_CHARS {
        collapsed = collapsed.chars().take(EXCERPT_CHARS).collect::<String>() + "…";
    }
    Some(match label {
        Some(label) => format!("{label} answer: {collapsed}"),
        None => collapsed,
    })
}

fn html_title(text: &str) -> Option<&str> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title>")? + "<title>".len();
    let end = start + lower.get(start..)?.find("</title>")?;
    text.get(start..end)
        .map(str::trim)
        .filter(|t| !t.is_empty())
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

    /// The CCE handler's own cases (Go `CceErrorHandler.HandleError`).
    #[test]
    fn the_cce_handler_reads_as_the_sdk_does() {
        let cases: [(&str, Option<&str>, Option<&str>); 8] = [
            (
                r#"{"error_code":"CCE.01400001","error_msg":"bad"}"#,
                Some("CCE.01400001"),
                Some("bad"),
            ),
            (
                r#"{"errorCode":"CCE.99","errorMessage":"bad","message":"more"}"#,
                Some("CCE.99"),
                Some("bad, more"),
            ),
            (
                r#"{"error_code":"A","error_msg":"same","message":"same"}"#,
                Some("A"),
                Some("same"),
            ),
            (r#"{"message":"only this"}"#, None, Some("only this")),
            // error_code wins over errorCode, error_msg over errorMessage.
            (
                r#"{"errorCode":"B","error_code":"A","errorMessage":"y","error_msg":"x"}"#,
                Some("A"),
                Some("x"),
            ),
            // The CCE handler does not read errorMsg, nor nested objects.
            (
                r#"{"errorCode":"CCE.99","errorMsg":"m"}"#,
                Some("CCE.99"),
                None,
            ),
            (r#"{"error":{"code":"IAM.1","message":"m"}}"#, None, None),
            ("<html>oops</html>", None, None),
        ];
        for (body, code, message) in cases {
            let read = read_as_cce_handler(body.as_bytes());
            assert_eq!(read.code.as_deref(), code, "{body}");
            assert_eq!(read.message.as_deref(), message, "{body}");
        }
        let read = read_as_cce_handler(
            br#"{"error_code":"A","error_msg":"b","encoded_authorization_message":"e"}"#,
        );
        assert_eq!(read.encoded_authorization_message.as_deref(), Some("e"));
    }

    /// The core handler's cases (Python `DefaultExceptionHandler._process_sdk_error`).
    #[test]
    fn the_core_handler_reads_as_the_sdk_does() {
        let cases: [(u16, &str, &str, &str); 9] = [
            (400, r#"{"error_code":"A","error_msg":"a"}"#, "A", "a"),
            (
                400,
                r#"{"errorCode":"CCE.99","errorMsg":"boom"}"#,
                "CCE.99",
                "boom",
            ),
            (400, r#"{"code":"C","message":"c"}"#, "C", "c"),
            // The first pair present, in the handler's order.
            (
                400,
                r#"{"code":"C","message":"c","errorCode":"B","errorMsg":"b"}"#,
                "B",
                "b",
            ),
            (
                401,
                r#"{"error":{"code":"IAM.0001","message":"token expired"}}"#,
                "IAM.0001",
                "token expired",
            ),
            // Nested under any key, at any depth.
            (
                403,
                r#"{"x":1,"detail":{"inner":{"error_code":"D","error_msg":"deep"}}}"#,
                "D",
                "deep",
            ),
            // A half pair is no pair: the status is the code, the body the message.
            (404, r#"{"error_code":"E"}"#, "404", r#"{"error_code":"E"}"#),
            (502, "Bad Gateway", "502", "Bad Gateway"),
            (
                500,
                r#"["not","an","object"]"#,
                "500",
                r#"["not","an","object"]"#,
            ),
        ];
        for (status, body, code, message) in cases {
            let read = read_as_core_handler(status, body.as_bytes());
            assert_eq!(read.code.as_deref(), Some(code), "{body}");
            assert_eq!(read.message.as_deref(), Some(message), "{body}");
        }
    }

    #[test]
    fn flotilla_reads_what_either_reader_reads() {
        /// The body, its content type, the code and the message read.
        type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);
        let cases: [Case; 13] = [
            (
                r#"{"error_code":"APIG.0308","error_msg":"The throttling threshold has been reached"}"#,
                None,
                Some("APIG.0308"),
                Some("The throttling threshold has been reached"),
            ),
            (
                r#"{"errorCode":"CCE.99","errorMsg":"boom"}"#,
                None,
                Some("CCE.99"),
                Some("boom"),
            ),
            (
                r#"{"errorCode":"CCE.01","errorMessage":"bad","message":"more detail"}"#,
                None,
                Some("CCE.01"),
                Some("bad, more detail"),
            ),
            (
                r#"{"errorCode":"A","errorMsg":"m","message":"detail"}"#,
                None,
                Some("A"),
                Some("m, detail"),
            ),
            (r#"{"code":"X","message":"m"}"#, None, Some("X"), Some("m")),
            (r#"{"message":"only this"}"#, None, None, Some("only this")),
            (
                r#"{"error":{"code":"IAM.1","message":"nested"}}"#,
                None,
                Some("IAM.1"),
                Some("nested"),
            ),
            (
                r#"{"result":{"errorCode":"N.1","errorMsg":"under another key"}}"#,
                None,
                Some("N.1"),
                Some("under another key"),
            ),
            (
                r#"{"error_code":404,"error_msg":"numeric"}"#,
                None,
                Some("404"),
                Some("numeric"),
            ),
            (
                "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
                Some("text/html; charset=utf-8"),
                None,
                Some("text/html answer: 502 Bad Gateway"),
            ),
            (
                "upstream   timed\nout",
                None,
                None,
                Some("non-JSON answer: upstream timed out"),
            ),
            (
                r#"{"unrelated":true}"#,
                None,
                None,
                Some(r#"{"unrelated":true}"#),
            ),
            ("", None, None, None),
        ];
        for (body, content_type, code, message) in cases {
            let read = read_error_body(body.as_bytes(), content_type);
            assert_eq!(read.code.as_deref(), code, "{body}");
            assert_eq!(read.message.as_deref(), message, "{body}");
        }
    }

    #[test]
    fn a_long_body_is_cut_to_an_excerpt() {
        let body = "x".repeat(5000);
        let message = read_error_body(body.as_bytes(), None).message.unwrap();
        assert_eq!(
            message.chars().count(),
            "non-JSON answer: ".len() + EXCERPT_CHARS + 1
        );
        assert!(message.ends_with('…'));
    }

    #[test]
    fn a_busy_release_is_told_by_its_message_whatever_the_status_and_by_a_409_to_a_change() {
        let busy = "Update release is forbidden: release web is PENDING_UPGRADE";
        /// Status, code, message, whether the request was a change, and whether it is busy.
        type Row<'a> = (Option<u16>, Option<&'a str>, Option<&'a str>, bool, bool);
        let table: [Row; 13] = [
            (Some(400), Some("CCE.01400001"), Some(busy), true, true),
            (Some(403), Some("CCE.01403001"), Some(busy), true, true),
            (Some(409), Some("CCE.01409001"), Some(busy), true, true),
            // The phrase is the answer, whatever was asked.
            (Some(400), None, Some(busy), false, true),
            (
                Some(400),
                None,
                Some("update RELEASE is Forbidden"),
                true,
                true,
            ),
            // A plain 409 is busy for a change only.
            (Some(409), None, Some("conflict"), true, true),
            (Some(409), None, None, false, false),
            (Some(400), None, Some("bad values"), true, false),
            (
                Some(403),
                Some("CCE.01403001"),
                Some("forbidden"),
                true,
                false,
            ),
            // The credentials or the gateway, not the release.
            (Some(403), Some("APIG.0302"), Some(busy), true, false),
            (Some(401), Some("APIG.0301"), Some(busy), true, false),
            (Some(429), Some("APIG.0308"), Some(busy), true, false),
            (Some(500), None, Some(busy), true, false),
        ];
        for (status, code, message, change, expected) in table {
            assert_eq!(
                release_busy(FailureKind::Http, status, code, message, change),
                expected,
                "{status:?} {code:?} {message:?} change {change}"
            );
        }
        assert!(!release_busy(
            FailureKind::TimedOut,
            Some(409),
            None,
            Some(busy),
            true
        ));
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Whatever comes back, reading it never panics, and a code or message either SDK
        /// reader finds is never lost.
        #[test]
        fn reading_any_body_never_panics_and_loses_nothing(
            body in proptest::prop_oneof![
                proptest::collection::vec(proptest::num::u8::ANY, 0..300),
                json_error_body().prop_map(|v: serde_json::Value| v.to_string().into_bytes()),
            ],
            status in 400u16..600,
        ) {
            let read = read_error_body(&body, Some("application/json"));
            let cce = read_as_cce_handler(&body);
            let core = read_as_core_handler(status, &body);
            if cce.code.is_some() || core.code.as_deref() != Some(&*status.to_string()) {
                proptest::prop_assert!(read.code.is_some());
            }
            if cce.message.is_some() || core.message.is_some() {
                proptest::prop_assert!(read.message.is_some());
            }
        }
    }

    /// Error bodies of the shapes the readers know, nested, with keys and values drawn from
    /// those shapes.
    fn json_error_body() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let key = prop::sample::select(vec![
            "error_code",
            "error_msg",
            "errorCode",
            "errorMsg",
            "errorMessage",
            "code",
            "message",
            "encoded_authorization_message",
            "error",
            "detail",
        ]);
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<i64>().prop_map(serde_json::Value::from),
            "[ -~\n]{0,20}".prop_map(serde_json::Value::from),
            Just(serde_json::Value::from("Update release is forbidden")),
        ];
        leaf.prop_recursive(3, 24, 6, move |inner| {
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|pairs| {
                serde_json::Value::Object(
                    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                )
            })
        })
    }
}
