//! What the engine reports: one [`OperationResult`] per operation, and the run's summary.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::converge::Convergence;
use crate::cce::error::{ApiError, CredentialFailure, FailureKind};
use crate::cce::model::{Action, ReleaseStatus};
use crate::plan::resolved::Operation;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Succeeded,
    /// The release was already as planned: no PUT was sent. Counts as success.
    Unchanged,
    Failed,
    Skipped,
    Cancelled,
}

impl Outcome {
    /// Succeeded or unchanged: the release is as planned.
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Succeeded | Outcome::Unchanged)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The step of an operation a request belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// GET before the PUT: records `version_before`, waits out a `PENDING_*` release.
    Preflight,
    /// The change itself.
    Put,
    /// GET after an ambiguous PUT (or on resume): was the change applied?
    Reconcile,
    /// GET polls until the release settles.
    Wait,
    /// The rollback PUT after a failed upgrade (`rollback_on_failure`).
    RollbackPut,
    /// GET polls until the rollback settles.
    RollbackWait,
    /// GET after an ambiguous rollback PUT: was the rollback applied?
    RollbackReconcile,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Put,
}

impl Phase {
    pub fn method(self) -> Method {
        match self {
            Phase::Put | Phase::RollbackPut => Method::Put,
            _ => Method::Get,
        }
    }

    /// A request of the automatic rollback, not of the change: reported as the rollback's.
    pub fn is_rollback(self) -> bool {
        matches!(
            self,
            Phase::RollbackPut | Phase::RollbackWait | Phase::RollbackReconcile
        )
    }
}

/// What became of one request, in a word: the report's `attempts[].kind`. Decided from the
/// typed error alone ([`AttemptKind::of`]), never from its text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptKind {
    /// Answered 2xx, and the answer was read.
    Ok,
    /// HTTP 429, the gateway's throttle: retried after a pause, the endpoint paced down.
    Throttled,
    /// The release is busy with another operation: `Update release is forbidden` (any status)
    /// or a plain 409 to a change.
    Busy,
    /// HTTP 401, or 403 with a gateway authorization code: the credentials were refused, and
    /// the run halts.
    Credentials,
    /// Any other HTTP 4xx: the request was refused; not retried.
    ClientError,
    /// HTTP 5xx: retried (502, 503, 504), or, for a change (500 and the rest), reconciled by
    /// reading the release before anything is resent.
    ServerError,
    /// An HTTP status that is neither a success nor an error (a redirect): not retried.
    UnexpectedStatus,
    /// Never sent: a name lookup, a connection or a TLS handshake failed.
    NotSent,
    /// Sent, and no answer came within the time-out: it may have been applied.
    TimedOut,
    /// The connection was cut after the request was sent: it may have been applied.
    ConnectionLost,
    /// Answered 2xx with a body that could not be read: applied, read back by a GET.
    Unreadable,
    /// Not recorded: the attempt comes from a journal or report written before attempts were
    /// typed.
    #[default]
    Unrecorded,
}

impl AttemptKind {
    /// The kind of a request that failed with `error`; `change` is true for a PUT.
    pub fn of(error: &ApiError, change: bool) -> Self {
        match error.kind {
            FailureKind::NotSent => AttemptKind::NotSent,
            FailureKind::TimedOut => AttemptKind::TimedOut,
            FailureKind::ConnectionLost => AttemptKind::ConnectionLost,
            FailureKind::Decode => AttemptKind::Unreadable,
            FailureKind::Http => {
                if error.is_throttle() {
                    AttemptKind::Throttled
                } else if error.credential_failure().is_some() {
                    AttemptKind::Credentials
                } else if error.release_busy(change) {
                    AttemptKind::Busy
                } else {
                    match error.status.unwrap_or(0) {
                        400..=499 => AttemptKind::ClientError,
                        500..=599 => AttemptKind::ServerError,
                        _ => AttemptKind::UnexpectedStatus,
                    }
                }
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptKind::Ok => "ok",
            AttemptKind::Throttled => "throttled",
            AttemptKind::Busy => "busy",
            AttemptKind::Credentials => "credentials",
            AttemptKind::ClientError => "client_error",
            AttemptKind::ServerError => "server_error",
            AttemptKind::UnexpectedStatus => "unexpected_status",
            AttemptKind::NotSent => "not_sent",
            AttemptKind::TimedOut => "timed_out",
            AttemptKind::ConnectionLost => "connection_lost",
            AttemptKind::Unreadable => "unreadable",
            AttemptKind::Unrecorded => "unrecorded",
        }
    }

    /// Every kind, in the order the documentation lists them.
    pub const ALL: [AttemptKind; 12] = [
        AttemptKind::Ok,
        AttemptKind::Throttled,
        AttemptKind::Busy,
        AttemptKind::Credentials,
        AttemptKind::ClientError,
        AttemptKind::ServerError,
        AttemptKind::UnexpectedStatus,
        AttemptKind::NotSent,
        AttemptKind::TimedOut,
        AttemptKind::ConnectionLost,
        AttemptKind::Unreadable,
        AttemptKind::Unrecorded,
    ];

    /// The kind `as_str` spells `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl std::fmt::Display for AttemptKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request worth reporting: every PUT, every reconcile GET, and every failed GET
/// (successful preflight and poll GETs are only counted, in [`OperationResult::polls`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub phase: Phase,
    pub method: Method,
    /// What became of it, in a word.
    pub kind: AttemptKind,
    /// HTTP status, when an answer came.
    pub status: Option<u16>,
    /// The service's error code.
    pub error_code: Option<String>,
    /// What went wrong, when something did: the failure in words and the service's message
    /// (the code and the request id are fields of their own).
    pub error: Option<String>,
    /// The answer's `X-Request-Id`.
    pub request_id: Option<String>,
    /// A gateway throttle (429).
    pub throttled: bool,
    /// The back-off waited before this request (pacing not included).
    #[serde(with = "duration_ms")]
    pub delay_before: Duration,
    /// When it was sent, from the start of the run.
    #[serde(with = "duration_ms")]
    pub sent_at: Duration,
}

impl Attempt {
    /// The attempt of a request in `phase`, sent `sent_at` after the start of the run after a
    /// back-off of `delay_before`, that answered 2xx (`failure` none) or failed with `failure`.
    /// The one place an attempt reads an [`ApiError`]'s fields.
    pub fn new(
        phase: Phase,
        failure: Option<&ApiError>,
        delay_before: Duration,
        sent_at: Duration,
    ) -> Self {
        let method = phase.method();
        let Some(error) = failure else {
            return Attempt {
                phase,
                method,
                kind: AttemptKind::Ok,
                status: Some(200),
                error_code: None,
                error: None,
                request_id: None,
                throttled: false,
                delay_before,
                sent_at,
            };
        };
        let what = error.what();
        Attempt {
            phase,
            method,
            kind: AttemptKind::of(error, method == Method::Put),
            status: error.status,
            error_code: error.code.clone(),
            error: Some(match &error.message {
                Some(message) => format!("{what}: {message}"),
                None => what.to_string(),
            }),
            request_id: error.request_id.clone(),
            throttled: error.is_throttle(),
            delay_before,
            sent_at,
        }
    }
}

/// Why an operation failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationError {
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    pub status: Option<u16>,
}

impl OperationError {
    pub fn message(message: impl Into<String>) -> Self {
        OperationError {
            code: None,
            message: message.into(),
            request_id: None,
            status: None,
        }
    }

    pub fn from_api(context: &str, error: &ApiError) -> Self {
        let what = error.what();
        let message = match &error.message {
            Some(detail) => format!("{context}: {what}: {detail}"),
            None => format!("{context}: {what}"),
        };
        OperationError {
            code: error.code.clone(),
            message,
            request_id: error.request_id.clone(),
            status: error.status,
        }
    }
}

/// An endpoint refused the run's credentials: nothing more was sent to it, and the run halted.
/// Never holds the credential itself, only what the service answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CredentialRefusal {
    /// The endpoint's base URL.
    pub endpoint: String,
    pub failure: CredentialFailure,
    pub status: u16,
    pub code: Option<String>,
    pub message: Option<String>,
    pub request_id: Option<String>,
}

impl CredentialRefusal {
    /// The refusal `error` is, when it is one.
    pub fn from_api(endpoint: &str, error: &ApiError) -> Option<Self> {
        Some(CredentialRefusal {
            endpoint: endpoint.to_owned(),
            failure: error.credential_failure()?,
            status: error.status?,
            code: error.code.clone(),
            message: error.message.clone(),
            request_id: error.request_id.clone(),
        })
    }

    /// `https://… refused the credentials (HTTP 401 APIG.0301)`: why an operation was not sent.
    pub fn summary(&self) -> String {
        format!(
            "{} refused the credentials ({})",
            self.endpoint,
            self.answer()
        )
    }

    /// `HTTP 401 APIG.0301`: the status and the code, for short mentions.
    pub fn answer(&self) -> String {
        match &self.code {
            Some(code) => format!("HTTP {} {code}", self.status),
            None => format!("HTTP {}", self.status),
        }
    }
}

/// `refused by https://… (authentication failed): HTTP 401 APIG.0301: message (request id …)`:
/// after a `credentials` prefix.
pub struct RefusalDetail<'a>(&'a CredentialRefusal);

impl std::fmt::Display for RefusalDetail<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let refusal = self.0;
        write!(
            f,
            "refused by {} ({}): {}",
            refusal.endpoint,
            refusal.failure,
            refusal.answer()
        )?;
        if let Some(message) = &refusal.message {
            write!(f, ": {message}")?;
        }
        if let Some(id) = &refusal.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

impl CredentialRefusal {
    pub fn detail(&self) -> RefusalDetail<'_> {
        RefusalDetail(self)
    }
}

/// `credentials refused by https://… (authentication failed): HTTP 401 APIG.0301: …`
impl std::fmt::Display for CredentialRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "credentials {}", self.detail())
    }
}

/// The rollback after a failed upgrade.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RollbackResult {
    /// `succeeded` when the release is back at `version_before`'s content and `DEPLOYED`.
    pub outcome: Outcome,
    /// The revision rolled back to.
    pub to_version: i64,
    pub final_status: Option<ReleaseStatus>,
    pub version_after: Option<i64>,
    pub error: Option<OperationError>,
}

/// Everything known about one operation at its end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationResult {
    /// [`Operation::index`]: stable for a plan file.
    pub index: usize,
    pub wave: usize,
    pub cluster_name: String,
    pub cluster_id: String,
    pub namespace: String,
    pub release: String,
    pub action: Action,
    pub outcome: Outcome,
    /// Succeeded in an earlier run, per the journal: nothing was sent this time.
    pub from_journal: bool,
    pub dry_run: bool,
    /// The last status seen.
    pub final_status: Option<ReleaseStatus>,
    pub version_before: Option<i64>,
    pub version_after: Option<i64>,
    /// The revision a rollback goes to: the plan's number, or the one `previous` or `-N`
    /// resolved to on this release.
    #[serde(default)]
    pub release_version: Option<i64>,
    /// True once a PUT of the change was sent (it may have reached the service). A resume must
    /// treat a cancelled operation with `put_sent` as in flight: reconcile, never resend blindly.
    pub put_sent: bool,
    /// True once this run's PUT is known to have been applied (answered 2xx or reconciled);
    /// a resume must reconcile such an operation rather than send it again.
    pub put_applied: bool,
    /// PUTs of the change sent (rollback PUTs not included).
    pub put_attempts: u32,
    /// Successful GETs not listed in `attempts` (preflight and polls).
    pub polls: u32,
    pub attempts: Vec<Attempt>,
    /// An ambiguous PUT (or a resumed in-flight one) was settled by a reconcile GET.
    pub reconciled: bool,
    pub rollback: Option<RollbackResult>,
    /// From the start of the run.
    #[serde(with = "duration_ms")]
    pub started_at: Duration,
    #[serde(with = "duration_ms")]
    pub duration: Duration,
    pub error: Option<OperationError>,
    /// Why it was skipped or cancelled.
    pub skip_reason: Option<String>,
    /// The preflight's convergence decision, when one was made (preflight on, not `--force`,
    /// not a resumed in-flight operation).
    #[serde(default)]
    pub convergence: Option<Convergence>,
    /// Why the PUT was or was not sent, for people, e.g. "unchanged: chart and values already
    /// as planned" or "unknown: secret keys dbPassword masked by the API, ...; use --force".
    #[serde(default)]
    pub note: Option<String>,
}

impl OperationResult {
    /// What a resumed run reports of an operation an earlier run finished: the journal's
    /// word stands, with nothing sent and nothing waited in this run.
    pub fn into_done_earlier(mut self) -> Self {
        self.attempts.clear();
        self.from_journal = true;
        self.duration = Duration::ZERO;
        self.started_at = Duration::ZERO;
        self.error = None;
        self.skip_reason = None;
        self
    }

    /// A result with nothing done yet.
    pub fn new(op: &Operation, outcome: Outcome, dry_run: bool) -> Self {
        OperationResult {
            index: op.index,
            wave: op.wave,
            cluster_name: op.cluster.name.clone(),
            cluster_id: op.cluster.id.clone(),
            namespace: op.namespace.clone(),
            release: op.release.clone(),
            action: op.action,
            outcome,
            from_journal: false,
            dry_run,
            final_status: None,
            version_before: None,
            version_after: None,
            release_version: super::converge::rollback_version(&op.body),
            put_sent: false,
            put_applied: false,
            put_attempts: 0,
            polls: 0,
            attempts: Vec::new(),
            reconciled: false,
            rollback: None,
            started_at: Duration::ZERO,
            duration: Duration::ZERO,
            error: None,
            skip_reason: None,
            convergence: None,
            note: None,
        }
    }

    /// An operation that never started.
    pub fn not_run(op: &Operation, outcome: Outcome, reason: &str, dry_run: bool) -> Self {
        let mut result = Self::new(op, outcome, dry_run);
        result.skip_reason = Some(reason.to_owned());
        result
    }

    /// Retries were needed: some request of the change failed before it succeeded.
    pub fn retried(&self) -> bool {
        self.put_attempts > 1
            || self.reconciled
            || self.change_attempts().any(|a| a.error.is_some())
    }

    /// The attempts of the change itself, in order: what the report lists as the operation's.
    pub fn change_attempts(&self) -> impl Iterator<Item = &Attempt> {
        self.attempts.iter().filter(|a| !a.phase.is_rollback())
    }

    /// The attempts of the automatic rollback, in order: what the report lists as its own.
    pub fn rollback_attempts(&self) -> impl Iterator<Item = &Attempt> {
        self.attempts.iter().filter(|a| a.phase.is_rollback())
    }
}

/// Counts over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub total: usize,
    pub succeeded: usize,
    /// Already as planned, nothing sent; counts as success.
    #[serde(default)]
    pub unchanged: usize,
    pub failed: usize,
    pub skipped: usize,
    pub cancelled: usize,
    /// Of `succeeded`: taken from the journal, nothing sent.
    pub from_journal: usize,
    /// Operations with a retried or reconciled request.
    pub retried: usize,
    /// Throttled requests (429).
    pub throttled: usize,
}

impl RunSummary {
    pub fn add(&mut self, result: &OperationResult) {
        self.total += 1;
        match result.outcome {
            Outcome::Succeeded => self.succeeded += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Cancelled => self.cancelled += 1,
        }
        self.from_journal += usize::from(result.from_journal);
        self.retried += usize::from(result.retried());
        self.throttled += result.attempts.iter().filter(|a| a.throttled).count();
    }

    /// Every operation succeeded or was already as planned.
    pub fn all_succeeded(&self) -> bool {
        self.succeeded + self.unchanged == self.total
    }
}

/// The engine's answer: every operation in plan order, the summary and the timing.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub plan_name: String,
    pub plan_hash: String,
    pub dry_run: bool,
    pub started_at: jiff::Timestamp,
    pub finished_at: jiff::Timestamp,
    pub duration: Duration,
    /// In plan order (the order of [`crate::plan::resolved::ExpandedPlan::operations`]).
    pub results: Vec<OperationResult>,
    pub summary: RunSummary,
    /// Why the run halted (a failure budget exceeded, a journal that failed), if it did.
    pub halted: Option<String>,
    /// A cancel signal stopped the run.
    pub cancelled: bool,
    /// An endpoint refused the credentials: the run halted at the first refusal.
    pub credentials_refused: Option<CredentialRefusal>,
}

/// How a run ended, as a whole: what the exit code is made from, one layer up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every operation succeeded or was unchanged, or there was none.
    Succeeded,
    /// An operation failed, was skipped by a halt, or was cancelled.
    Failed,
    /// A cancel signal stopped the run.
    Interrupted,
    /// An endpoint refused the credentials; the run stopped at the first refusal.
    CredentialsRefused,
}

impl RunReport {
    pub fn verdict(&self) -> Verdict {
        if self.cancelled {
            Verdict::Interrupted
        } else if self.credentials_refused.is_some() {
            Verdict::CredentialsRefused
        } else if self.summary.all_succeeded() {
            Verdict::Succeeded
        } else {
            Verdict::Failed
        }
    }
}

/// Durations as whole milliseconds in serialized results.
pub mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, code: Option<&str>) -> ApiError {
        let mut error = ApiError::new(FailureKind::Http);
        error.status = Some(status);
        error.code = code.map(Into::into);
        error
    }

    #[test]
    fn an_attempts_kind_comes_from_the_typed_error_alone() {
        use AttemptKind::*;
        let table: [(ApiError, bool, AttemptKind); 14] = [
            (answered(429, Some("APIG.0308")), true, Throttled),
            (answered(429, None), false, Throttled),
            (answered(401, Some("APIG.0301")), false, Credentials),
            (answered(403, Some("APIG.0302")), true, Credentials),
            (answered(403, Some("CCE.01403001")), true, ClientError),
            (answered(409, None), true, Busy),
            (answered(409, None), false, ClientError),
            (answered(404, Some("CCE.01404002")), false, ClientError),
            (answered(500, None), true, ServerError),
            (answered(503, None), false, ServerError),
            (answered(302, None), false, UnexpectedStatus),
            (ApiError::new(FailureKind::NotSent), true, NotSent),
            (ApiError::new(FailureKind::TimedOut), true, TimedOut),
            (
                ApiError::new(FailureKind::ConnectionLost),
                true,
                ConnectionLost,
            ),
        ];
        for (error, change, expected) in table {
            assert_eq!(
                AttemptKind::of(&error, change),
                expected,
                "{error:?} {change}"
            );
        }
        assert_eq!(
            AttemptKind::of(&ApiError::new(FailureKind::Decode), false),
            Unreadable
        );
    }

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for kind in AttemptKind::ALL {
            assert_eq!(AttemptKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str(), "serde and as_str agree");
        }
        assert_eq!(AttemptKind::parse("nonsense"), None);
    }

    #[test]
    fn an_attempt_keeps_status_code_request_id_and_the_message_apart() {
        let mut error = answered(429, Some("APIG.0308"));
        error.message = Some("The throttling threshold has been reached".into());
        error.request_id = Some("req-7".into());
        let attempt = Attempt::new(Phase::Put, Some(&error), Duration::ZERO, Duration::ZERO);
        assert_eq!(attempt.kind, AttemptKind::Throttled);
        assert_eq!(attempt.status, Some(429));
        assert_eq!(attempt.error_code.as_deref(), Some("APIG.0308"));
        assert_eq!(attempt.request_id.as_deref(), Some("req-7"));
        assert!(attempt.throttled);
        assert_eq!(
            attempt.error.as_deref(),
            Some("HTTP 429: The throttling threshold has been reached")
        );
        let ok = Attempt::new(Phase::Reconcile, None, Duration::ZERO, Duration::ZERO);
        assert_eq!(
            (ok.kind, ok.status, ok.error),
            (AttemptKind::Ok, Some(200), None)
        );
    }
}
