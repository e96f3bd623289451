//! The journal's on-disk records: the header line with the format version, the record types,
//! and their conversions from and to the engine's and the report's types.
//!
//! These types are the file format. They are plain data owned by the journal, so that a change
//! to the engine's or the report's types cannot change what a journal holds without a change
//! here, where [`FORMAT_VERSION`] is.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cce::model::{Action, ReleaseStatus};
use crate::engine::{self, OperationResult};
use crate::plan::resolved::{ExpandedPlan, FailureBudget};
use crate::plan::select::Shard;
use crate::report::model::{PlanInfo, WaveGate};
use crate::secret::Redactor;

/// What the header's `format` says: the file is a flotilla journal.
pub const FORMAT_MARKER: &str = "flotilla-journal";

/// The format this build writes. Version 3 added what a report of the run needs: the planned
/// operations and the waves' gates in the `run` record, the time of each `finished` record, and
/// the `end` record. Versions 1 (no header) and 2 are the journals of earlier builds; their
/// records are version 3's without those, so this build reads them.
pub const FORMAT_VERSION: u32 = 3;

/// The oldest format this build reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;

/// The first line of a journal since version 2, e.g.
/// `{"format":"flotilla-journal","version":2,"flotilla_version":"0.1.0"}`: what the file is, the
/// version of its format, and the flotilla that created it. A journal whose first line is a
/// record (no `format` key) is a version 1 journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub flotilla_version: String,
}

impl Header {
    /// The header this build writes.
    pub fn current() -> Self {
        Header {
            format: FORMAT_MARKER.to_owned(),
            version: FORMAT_VERSION,
            flotilla_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// Why a journal's format is not one this build reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatProblem {
    /// A `format` other than [`FORMAT_MARKER`], or a header that is not one.
    Unknown { format: String },
    /// A version this build does not read: newer than [`FORMAT_VERSION`], or older than
    /// [`OLDEST_READABLE_VERSION`].
    Version {
        version: u64,
        written_by: Option<String>,
    },
}

/// The format version of a journal whose first JSON object line is `first`, and whether that
/// line is the header (to be skipped as a record). Pure: the file layer reads the line.
pub fn format_of(
    first: &serde_json::Map<String, serde_json::Value>,
) -> Result<(u32, bool), FormatProblem> {
    let Some(format) = first.get("format") else {
        // Before the header existed, the first line was a record.
        return Ok((1, false));
    };
    if format.as_str() != Some(FORMAT_MARKER) {
        return Err(FormatProblem::Unknown {
            format: format.to_string(),
        });
    }
    let written_by = first
        .get("flotilla_version")
        .and_then(serde_json::Value::as_str)
        .map(ToOwned::to_owned);
    let Some(version) = first.get("version").and_then(serde_json::Value::as_u64) else {
        return Err(FormatProblem::Unknown {
            format: format!("{format} without a numeric version"),
        });
    };
    match u32::try_from(version) {
        Ok(readable @ OLDEST_READABLE_VERSION..=FORMAT_VERSION) => Ok((readable, true)),
        _ => Err(FormatProblem::Version {
            version,
            written_by,
        }),
    }
}

/// One line of the journal after the header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "lowercase")]
pub enum Record {
    /// A run began (a fresh one or a resume).
    Run {
        plan: RecordedPlan,
        started_at: String,
        flotilla_version: String,
        operations: usize,
        resume: bool,
        settings: serde_json::Value,
        /// Every operation the run was given, in plan order: what a report of a run that
        /// died lists as in flight or not started. Absent before version 3.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        planned: Vec<PlannedOperation>,
    },
    /// An operation is about to send its PUT; written and fsynced before the PUT goes out.
    Intent {
        index: usize,
        /// The rollback PUT of a failed upgrade rather than the change itself.
        #[serde(default)]
        rollback: bool,
        cluster_id: String,
        namespace: String,
        name: String,
        action: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version_before: Option<i64>,
        /// The revision a rollback PUT names, resolved when the plan wrote `previous` or `-N`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        release_version: Option<i64>,
        at: String,
    },
    /// An operation ended, however it ended.
    Finished {
        /// The name of the operation's wave.
        wave: String,
        result: Box<FinishedOperation>,
        /// When the end was recorded (RFC 3339). Absent before version 3.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
    },
    /// The run ended and returned its report: written after its last `finished` record. A run
    /// without one was killed, or crashed. Since version 3.
    End(Box<RunEnd>),
}

impl Record {
    /// The line that opens a run of `plan`, given the waves' gates its report carries
    /// (`waves`) and the effective `settings`.
    pub fn run_started(
        plan: &ExpandedPlan,
        shard: Option<Shard>,
        waves: &[WaveGate],
        resume: bool,
        settings: serde_json::Value,
    ) -> Self {
        Record::Run {
            plan: RecordedPlan {
                name: plan.name.clone(),
                hash: plan.hash.clone(),
                shard: shard.map(|s| s.to_string()),
                waves: waves.iter().map(RecordedWave::from).collect(),
                max_failures: Some(plan.rollout.max_failures),
            },
            started_at: jiff::Timestamp::now().to_string(),
            flotilla_version: env!("CARGO_PKG_VERSION").to_owned(),
            operations: plan.operation_count(),
            resume,
            settings,
            planned: plan
                .waves
                .iter()
                .flat_map(|wave| {
                    wave.operations.iter().map(|op| PlannedOperation {
                        index: op.index,
                        wave: wave.name.clone(),
                        cluster_name: op.cluster.name.clone(),
                        cluster_id: op.cluster.id.clone(),
                        namespace: op.namespace.clone(),
                        release: op.release.clone(),
                        action: op.action.into(),
                    })
                })
                .collect(),
        }
    }

    /// The line written before the PUT `intent` announces leaves, at `at`.
    pub fn intent(intent: &engine::PutIntent<'_>, at: jiff::Timestamp) -> Self {
        let op = intent.operation;
        Record::Intent {
            index: op.index,
            rollback: intent.rollback,
            cluster_id: op.cluster.id.clone(),
            namespace: op.namespace.clone(),
            name: op.release.clone(),
            action: op.action.as_str().to_owned(),
            version_before: intent.version_before,
            release_version: intent.release_version,
            at: at.to_string(),
        }
    }

    /// The line of an operation's end, in wave `wave`, recorded at `at`. Its free text
    /// (errors, reasons, notes) is masked by the plan's `redactor`, as the run's report masks
    /// it: a file on disk holds no more than the report.
    pub fn finished(
        wave: String,
        result: OperationResult,
        at: jiff::Timestamp,
        redactor: &Redactor,
    ) -> Self {
        let mut result = FinishedOperation::from(result);
        result.mask(redactor);
        Record::Finished {
            wave,
            result: Box::new(result),
            at: Some(at.to_string()),
        }
    }

    /// The line of the end of `run`, its halt masked by the plan's `redactor`.
    pub fn ended(run: &engine::RunReport, redactor: &Redactor) -> Self {
        Record::End(Box::new(RunEnd {
            started_at: run.started_at.to_string(),
            finished_at: run.finished_at.to_string(),
            duration_ms: millis(run.duration),
            halted: run
                .halted
                .as_ref()
                .map(|h| redactor.mask_text(h).into_owned()),
            interrupted: run.cancelled,
            credentials_refused: run.credentials_refused.clone().map(Into::into),
        }))
    }

    /// When the record was written, when it says.
    pub fn written_at(&self) -> Option<jiff::Timestamp> {
        match self {
            Record::Run { started_at, .. } => started_at.parse().ok(),
            Record::Intent { at, .. } => at.parse().ok(),
            Record::Finished { at, .. } => at.as_deref()?.parse().ok(),
            Record::End(end) => end.finished_at.parse().ok(),
        }
    }
}

/// One operation a run was given: who it is, before anything became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedOperation {
    pub index: usize,
    /// The name of its wave.
    pub wave: String,
    pub cluster_name: String,
    pub cluster_id: String,
    pub namespace: String,
    pub release: String,
    pub action: RecordedAction,
}

/// How a run ended, as its report tells it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEnd {
    /// When the engine started and finished (RFC 3339), and the time between, in milliseconds.
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    /// Why the run halted, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<String>,
    /// A signal stopped it.
    pub interrupted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_refused: Option<RecordedRefusal>,
}

/// An endpoint's refusal of the run's credentials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRefusal {
    pub endpoint: String,
    pub failure: RecordedCredentialFailure,
    pub status: u16,
    pub code: Option<String>,
    pub message: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordedCredentialFailure {
    Authentication,
    Authorization,
}

impl From<engine::CredentialRefusal> for RecordedRefusal {
    fn from(refusal: engine::CredentialRefusal) -> Self {
        use crate::cce::error::CredentialFailure;
        RecordedRefusal {
            endpoint: refusal.endpoint,
            failure: match refusal.failure {
                CredentialFailure::Authentication => RecordedCredentialFailure::Authentication,
                CredentialFailure::Authorization => RecordedCredentialFailure::Authorization,
            },
            status: refusal.status,
            code: refusal.code,
            message: refusal.message,
            request_id: refusal.request_id,
        }
    }
}

impl From<RecordedRefusal> for engine::CredentialRefusal {
    fn from(refusal: RecordedRefusal) -> Self {
        use crate::cce::error::CredentialFailure;
        engine::CredentialRefusal {
            endpoint: refusal.endpoint,
            failure: match refusal.failure {
                RecordedCredentialFailure::Authentication => CredentialFailure::Authentication,
                RecordedCredentialFailure::Authorization => CredentialFailure::Authorization,
            },
            status: refusal.status,
            code: refusal.code,
            message: refusal.message,
            request_id: refusal.request_id,
        }
    }
}

/// One wave with what its gate (`report merge`) judges it by, as the run's report carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedWave {
    pub name: String,
    /// As a plan writes it: a count, or a share such as `"10%"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<FailureBudget>,
    pub soak_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_wave: Option<String>,
}

impl From<&WaveGate> for RecordedWave {
    fn from(wave: &WaveGate) -> Self {
        RecordedWave {
            name: wave.name.clone(),
            max_failures: wave.max_failures,
            soak_ms: wave.soak_ms,
            next_wave: wave.next_wave.clone(),
        }
    }
}

impl From<RecordedWave> for WaveGate {
    fn from(wave: RecordedWave) -> Self {
        WaveGate {
            name: wave.name,
            max_failures: wave.max_failures,
            soak_ms: wave.soak_ms,
            next_wave: wave.next_wave,
        }
    }
}

/// The plan a run applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedPlan {
    pub name: String,
    /// Lowercase hex SHA-256 of the plan file and of what its variables put in it.
    pub hash: String,
    /// `K/N` when the run was one shard of the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// The waves the run was given, with their gates. Absent before version 3.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<RecordedWave>,
    /// The run's own failure budget. Absent before version 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<FailureBudget>,
}

impl From<RecordedPlan> for PlanInfo {
    fn from(plan: RecordedPlan) -> Self {
        PlanInfo {
            name: plan.name,
            hash: plan.hash,
            shard: plan.shard,
            waves: plan.waves.into_iter().map(Into::into).collect(),
            max_failures: plan.max_failures,
        }
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordedOutcome {
    Succeeded,
    Unchanged,
    Failed,
    Skipped,
    Cancelled,
}

impl From<engine::Outcome> for RecordedOutcome {
    fn from(outcome: engine::Outcome) -> Self {
        match outcome {
            engine::Outcome::Succeeded => RecordedOutcome::Succeeded,
            engine::Outcome::Unchanged => RecordedOutcome::Unchanged,
            engine::Outcome::Failed => RecordedOutcome::Failed,
            engine::Outcome::Skipped => RecordedOutcome::Skipped,
            engine::Outcome::Cancelled => RecordedOutcome::Cancelled,
        }
    }
}

impl From<RecordedOutcome> for engine::Outcome {
    fn from(outcome: RecordedOutcome) -> Self {
        match outcome {
            RecordedOutcome::Succeeded => engine::Outcome::Succeeded,
            RecordedOutcome::Unchanged => engine::Outcome::Unchanged,
            RecordedOutcome::Failed => engine::Outcome::Failed,
            RecordedOutcome::Skipped => engine::Outcome::Skipped,
            RecordedOutcome::Cancelled => engine::Outcome::Cancelled,
        }
    }
}

/// What a PUT asked of a release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordedAction {
    Upgrade,
    Rollback,
}

impl From<Action> for RecordedAction {
    fn from(action: Action) -> Self {
        match action {
            Action::Upgrade => RecordedAction::Upgrade,
            Action::Rollback => RecordedAction::Rollback,
        }
    }
}

impl From<RecordedAction> for Action {
    fn from(action: RecordedAction) -> Self {
        match action {
            RecordedAction::Upgrade => Action::Upgrade,
            RecordedAction::Rollback => Action::Rollback,
        }
    }
}

/// The step of an operation a request belonged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordedPhase {
    Preflight,
    Put,
    Reconcile,
    Wait,
    RollbackPut,
    RollbackWait,
    /// Since version 3: before it, a rollback's reconcile GET was recorded as `reconcile`.
    RollbackReconcile,
}

impl From<engine::Phase> for RecordedPhase {
    fn from(phase: engine::Phase) -> Self {
        match phase {
            engine::Phase::Preflight => RecordedPhase::Preflight,
            engine::Phase::Put => RecordedPhase::Put,
            engine::Phase::Reconcile => RecordedPhase::Reconcile,
            engine::Phase::Wait => RecordedPhase::Wait,
            engine::Phase::RollbackPut => RecordedPhase::RollbackPut,
            engine::Phase::RollbackWait => RecordedPhase::RollbackWait,
            engine::Phase::RollbackReconcile => RecordedPhase::RollbackReconcile,
        }
    }
}

impl From<RecordedPhase> for engine::Phase {
    fn from(phase: RecordedPhase) -> Self {
        match phase {
            RecordedPhase::Preflight => engine::Phase::Preflight,
            RecordedPhase::Put => engine::Phase::Put,
            RecordedPhase::Reconcile => engine::Phase::Reconcile,
            RecordedPhase::Wait => engine::Phase::Wait,
            RecordedPhase::RollbackPut => engine::Phase::RollbackPut,
            RecordedPhase::RollbackWait => engine::Phase::RollbackWait,
            RecordedPhase::RollbackReconcile => engine::Phase::RollbackReconcile,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordedMethod {
    Get,
    Put,
}

impl From<engine::Method> for RecordedMethod {
    fn from(method: engine::Method) -> Self {
        match method {
            engine::Method::Get => RecordedMethod::Get,
            engine::Method::Put => RecordedMethod::Put,
        }
    }
}

impl From<RecordedMethod> for engine::Method {
    fn from(method: RecordedMethod) -> Self {
        match method {
            RecordedMethod::Get => engine::Method::Get,
            RecordedMethod::Put => engine::Method::Put,
        }
    }
}

/// The preflight's comparison of the plan with the release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordedConvergence {
    Change,
    Unchanged,
    Unknown,
}

impl From<engine::Convergence> for RecordedConvergence {
    fn from(convergence: engine::Convergence) -> Self {
        match convergence {
            engine::Convergence::Change => RecordedConvergence::Change,
            engine::Convergence::Unchanged => RecordedConvergence::Unchanged,
            engine::Convergence::Unknown => RecordedConvergence::Unknown,
        }
    }
}

impl From<RecordedConvergence> for engine::Convergence {
    fn from(convergence: RecordedConvergence) -> Self {
        match convergence {
            RecordedConvergence::Change => engine::Convergence::Change,
            RecordedConvergence::Unchanged => engine::Convergence::Unchanged,
            RecordedConvergence::Unknown => engine::Convergence::Unknown,
        }
    }
}

/// One request worth recording. Durations are whole milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedAttempt {
    pub phase: RecordedPhase,
    pub method: RecordedMethod,
    /// What became of it, as the report spells it (`ok`, `throttled`, ...). Absent before
    /// version 3, and read then as `unrecorded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub status: Option<u16>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub request_id: Option<String>,
    pub throttled: bool,
    /// Milliseconds of back-off before the request.
    pub delay_before: u64,
    /// Milliseconds from the start of the run.
    pub sent_at: u64,
}

impl From<engine::Attempt> for RecordedAttempt {
    fn from(attempt: engine::Attempt) -> Self {
        RecordedAttempt {
            phase: attempt.phase.into(),
            method: attempt.method.into(),
            kind: (attempt.kind != engine::AttemptKind::Unrecorded)
                .then(|| attempt.kind.as_str().to_owned()),
            status: attempt.status,
            error_code: attempt.error_code,
            error: attempt.error,
            request_id: attempt.request_id,
            throttled: attempt.throttled,
            delay_before: millis(attempt.delay_before),
            sent_at: millis(attempt.sent_at),
        }
    }
}

impl From<RecordedAttempt> for engine::Attempt {
    fn from(attempt: RecordedAttempt) -> Self {
        engine::Attempt {
            phase: attempt.phase.into(),
            method: attempt.method.into(),
            kind: attempt
                .kind
                .as_deref()
                .and_then(engine::AttemptKind::parse)
                .unwrap_or_default(),
            status: attempt.status,
            error_code: attempt.error_code,
            error: attempt.error,
            request_id: attempt.request_id,
            throttled: attempt.throttled,
            delay_before: Duration::from_millis(attempt.delay_before),
            sent_at: Duration::from_millis(attempt.sent_at),
        }
    }
}

/// Why an operation or its rollback failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedError {
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    pub status: Option<u16>,
}

impl From<engine::OperationError> for RecordedError {
    fn from(error: engine::OperationError) -> Self {
        RecordedError {
            code: error.code,
            message: error.message,
            request_id: error.request_id,
            status: error.status,
        }
    }
}

impl From<RecordedError> for engine::OperationError {
    fn from(error: RecordedError) -> Self {
        engine::OperationError {
            code: error.code,
            message: error.message,
            request_id: error.request_id,
            status: error.status,
        }
    }
}

/// The rollback after a failed upgrade.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRollback {
    pub outcome: RecordedOutcome,
    pub to_version: i64,
    /// The release's status as the API spelled it.
    pub final_status: Option<String>,
    pub version_after: Option<i64>,
    pub error: Option<RecordedError>,
}

impl From<engine::RollbackResult> for RecordedRollback {
    fn from(rollback: engine::RollbackResult) -> Self {
        RecordedRollback {
            outcome: rollback.outcome.into(),
            to_version: rollback.to_version,
            final_status: rollback.final_status.map(status_text),
            version_after: rollback.version_after,
            error: rollback.error.map(Into::into),
        }
    }
}

impl From<RecordedRollback> for engine::RollbackResult {
    fn from(rollback: RecordedRollback) -> Self {
        engine::RollbackResult {
            outcome: rollback.outcome.into(),
            to_version: rollback.to_version,
            final_status: rollback.final_status.as_deref().map(ReleaseStatus::from),
            version_after: rollback.version_after,
            error: rollback.error.map(Into::into),
        }
    }
}

/// Everything recorded of one operation at its end. The keys are those of the engine's
/// result when version 1 was written; durations are whole milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinishedOperation {
    /// The operation's index in the plan: stable for a plan file.
    pub index: usize,
    pub wave: usize,
    pub cluster_name: String,
    pub cluster_id: String,
    pub namespace: String,
    pub release: String,
    pub action: RecordedAction,
    pub outcome: RecordedOutcome,
    pub from_journal: bool,
    pub dry_run: bool,
    /// The last status seen, as the API spelled it.
    pub final_status: Option<String>,
    pub version_before: Option<i64>,
    pub version_after: Option<i64>,
    /// The revision a rollback goes to (resolved when the plan wrote `previous` or `-N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_version: Option<i64>,
    /// A PUT of the change was sent: a cancelled operation with one is in flight for a resume.
    pub put_sent: bool,
    pub put_applied: bool,
    pub put_attempts: u32,
    pub polls: u32,
    pub attempts: Vec<RecordedAttempt>,
    pub reconciled: bool,
    pub rollback: Option<RecordedRollback>,
    /// Milliseconds from the start of the run.
    pub started_at: u64,
    /// Milliseconds.
    pub duration: u64,
    pub error: Option<RecordedError>,
    pub skip_reason: Option<String>,
    /// Absent from journals written before the preflight compared releases.
    #[serde(default)]
    pub convergence: Option<RecordedConvergence>,
    #[serde(default)]
    pub note: Option<String>,
}

impl From<OperationResult> for FinishedOperation {
    fn from(result: OperationResult) -> Self {
        FinishedOperation {
            index: result.index,
            wave: result.wave,
            cluster_name: result.cluster_name,
            cluster_id: result.cluster_id,
            namespace: result.namespace,
            release: result.release,
            action: result.action.into(),
            outcome: result.outcome.into(),
            from_journal: result.from_journal,
            dry_run: result.dry_run,
            final_status: result.final_status.map(status_text),
            version_before: result.version_before,
            version_after: result.version_after,
            release_version: result.release_version,
            put_sent: result.put_sent,
            put_applied: result.put_applied,
            put_attempts: result.put_attempts,
            polls: result.polls,
            attempts: result.attempts.into_iter().map(Into::into).collect(),
            reconciled: result.reconciled,
            rollback: result.rollback.map(Into::into),
            started_at: millis(result.started_at),
            duration: millis(result.duration),
            error: result.error.map(Into::into),
            skip_reason: result.skip_reason,
            convergence: result.convergence.map(Into::into),
            note: result.note,
        }
    }
}

impl From<FinishedOperation> for OperationResult {
    fn from(recorded: FinishedOperation) -> Self {
        OperationResult {
            index: recorded.index,
            wave: recorded.wave,
            cluster_name: recorded.cluster_name,
            cluster_id: recorded.cluster_id,
            namespace: recorded.namespace,
            release: recorded.release,
            action: recorded.action.into(),
            outcome: recorded.outcome.into(),
            from_journal: recorded.from_journal,
            dry_run: recorded.dry_run,
            final_status: recorded.final_status.as_deref().map(ReleaseStatus::from),
            version_before: recorded.version_before,
            version_after: recorded.version_after,
            release_version: recorded.release_version,
            put_sent: recorded.put_sent,
            put_applied: recorded.put_applied,
            put_attempts: recorded.put_attempts,
            polls: recorded.polls,
            attempts: recorded.attempts.into_iter().map(Into::into).collect(),
            reconciled: recorded.reconciled,
            rollback: recorded.rollback.map(Into::into),
            started_at: Duration::from_millis(recorded.started_at),
            duration: Duration::from_millis(recorded.duration),
            error: recorded.error.map(Into::into),
            skip_reason: recorded.skip_reason,
            convergence: recorded.convergence.map(Into::into),
            note: recorded.note,
        }
    }
}

impl FinishedOperation {
    /// The engine's result this record describes.
    pub fn to_engine(&self) -> OperationResult {
        self.clone().into()
    }

    /// Masks what `redactor` finds secret in the record's free text.
    fn mask(&mut self, redactor: &Redactor) {
        let mask = |text: &mut String| {
            if let std::borrow::Cow::Owned(masked) = redactor.mask_text(text) {
                *text = masked;
            }
        };
        for error in [
            self.error.as_mut(),
            self.rollback.as_mut().and_then(|r| r.error.as_mut()),
        ]
        .into_iter()
        .flatten()
        {
            mask(&mut error.message);
        }
        for text in [self.skip_reason.as_mut(), self.note.as_mut()]
            .into_iter()
            .flatten()
        {
            mask(text);
        }
        for attempt in &mut self.attempts {
            if let Some(error) = attempt.error.as_mut() {
                mask(error);
            }
        }
    }
}

fn status_text(status: ReleaseStatus) -> String {
    match status {
        ReleaseStatus::Other(other) => other,
        known => known.as_str().to_owned(),
    }
}

/// Whole milliseconds, as version 1 wrote durations.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A `finished` line as version 1 wrote it (the engine's result serialized as it was), with
    /// every field set.
    const V1_FINISHED: &str = r#"{"record":"finished","wave":"canary","result":{"index":3,"wave":1,"cluster_name":"c1","cluster_id":"id-1","namespace":"shop","release":"web","action":"upgrade","outcome":"failed","from_journal":false,"dry_run":false,"final_status":"FAILED","version_before":4,"version_after":5,"put_sent":true,"put_applied":true,"put_attempts":2,"polls":7,"attempts":[{"phase":"put","method":"PUT","status":503,"error_code":"CCE.01500001","error":"unavailable","request_id":"req-1","throttled":false,"delay_before":0,"sent_at":12},{"phase":"rollback_put","method":"PUT","status":null,"error_code":null,"error":"connection reset","request_id":null,"throttled":true,"delay_before":250,"sent_at":900}],"reconciled":true,"rollback":{"outcome":"succeeded","to_version":4,"final_status":"DEPLOYED","version_after":6,"error":null},"started_at":10,"duration":1234,"error":{"code":"CCE.01400001","message":"deploy failed","request_id":"req-2","status":400},"skip_reason":null,"convergence":"change","note":"change: chart"}}"#;

    #[test]
    fn a_version_1_finished_line_reads_back_and_is_written_the_same() {
        let record: Record = serde_json::from_str(V1_FINISHED).unwrap();
        let Record::Finished { wave, result, at } = &record else {
            panic!("not a finished record: {record:?}");
        };
        assert_eq!(at, &None, "version 1 did not time its end lines");
        assert_eq!(wave, "canary");
        let engine = result.to_engine();
        assert_eq!(engine.outcome, engine::Outcome::Failed);
        assert_eq!(engine.final_status, Some(ReleaseStatus::Failed));
        assert_eq!(engine.duration, Duration::from_millis(1234));
        assert_eq!(engine.attempts[1].phase, engine::Phase::RollbackPut);
        // Version 1 did not type its attempts: they read as unrecorded, and are written so.
        assert_eq!(engine.attempts[0].kind, engine::AttemptKind::Unrecorded);
        assert_eq!(engine.convergence, Some(engine::Convergence::Change));
        let written = serde_json::to_value(&record).unwrap();
        let original: serde_json::Value = serde_json::from_str(V1_FINISHED).unwrap();
        assert_eq!(written, original);
        // And through the engine's result and back: nothing is lost on the way, and the
        // time of the end is added.
        let when: jiff::Timestamp = "2026-12-04T10:00:00Z".parse().unwrap();
        let again = Record::finished(wave.clone(), engine, when, &Redactor::default());
        let mut expected = original.clone();
        expected["at"] = json!("2026-12-04T10:00:00Z");
        assert_eq!(serde_json::to_value(&again).unwrap(), expected);
        assert_eq!(again.written_at(), Some(when));
    }

    #[test]
    fn an_end_line_masks_what_the_plan_finds_secret() {
        let mut line: serde_json::Value = serde_json::from_str(V1_FINISHED).unwrap();
        line["result"]["error"]["message"] = json!("rejected hunter2-rotated for the chart");
        line["result"]["note"] = json!("note: hunter2-rotated");
        line["result"]["skip_reason"] = json!("because hunter2-rotated");
        let record: Record = serde_json::from_value(line).unwrap();
        let Record::Finished { wave, result, .. } = record else {
            panic!("not a finished record");
        };
        // The value of a secret variable, say: the plan's own rule, not a built-in one.
        let mut redactor = Redactor::default();
        redactor.add_literal("hunter2-rotated");
        let masked = Record::finished(
            wave,
            result.to_engine(),
            jiff::Timestamp::UNIX_EPOCH,
            &redactor,
        );
        let text = serde_json::to_string(&masked).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("rejected ******"), "{text}");
    }

    #[test]
    fn a_run_line_lists_its_planned_operations_and_an_end_line_reads_back() {
        let plan = crate::plan::load_source(
            std::path::Path::new("p.yaml"),
            b"version: 1\nname: p\ntarget: { region: cn-north-4 }\nclusters:\n  c1: { id: 00000000-0000-0000-0000-000000000001 }\ndefaults: { chart_id: af4b699e-018c-11ec-b8b0-0255ac100b05, action: upgrade }\nreleases:\n  - { name: web, namespace: shop, selector: { labels: {} }, values: {} }\n",
            &|_| None,
        )
        .unwrap();
        let gates = WaveGate::of_run(&plan, &[], &plan);
        let run = Record::run_started(&plan, None, &gates, false, json!({"dry_run": false}));
        let line = serde_json::to_value(&run).unwrap();
        assert_eq!(
            line["planned"],
            json!([{"index": 0, "wave": plan.waves[0].name, "cluster_name": "c1",
                    "cluster_id": "00000000-0000-0000-0000-000000000001",
                    "namespace": "shop", "release": "web", "action": "upgrade"}])
        );
        assert_eq!(line["plan"]["max_failures"], json!(0));
        let back: Record = serde_json::from_value(line).unwrap();
        assert_eq!(back, run);

        let end = json!({"record": "end", "started_at": "2026-12-04T10:00:00Z",
            "finished_at": "2026-12-04T10:00:21.781Z", "duration_ms": 21781,
            "halted": "wave \"canary\" exceeded its failure budget", "interrupted": false});
        let record: Record = serde_json::from_value(end.clone()).unwrap();
        assert!(matches!(&record, Record::End(end) if end.duration_ms == 21781));
        assert_eq!(serde_json::to_value(&record).unwrap(), end);
    }

    #[test]
    fn an_attempts_kind_and_a_rollbacks_reconcile_are_recorded() {
        let mut error = crate::cce::error::ApiError::new(crate::cce::error::FailureKind::Http);
        error.status = Some(429);
        let attempt = engine::Attempt::new(
            engine::Phase::RollbackReconcile,
            Some(&error),
            Duration::ZERO,
            Duration::from_millis(5),
        );
        let recorded = RecordedAttempt::from(attempt.clone());
        let line = serde_json::to_value(&recorded).unwrap();
        assert_eq!(line["kind"], "throttled");
        assert_eq!(line["phase"], "rollback_reconcile");
        let back: RecordedAttempt = serde_json::from_value(line).unwrap();
        assert_eq!(engine::Attempt::from(back), attempt);
    }

    #[test]
    fn a_version_1_line_without_the_later_fields_still_reads() {
        let mut line: serde_json::Value = serde_json::from_str(V1_FINISHED).unwrap();
        let result = line["result"].as_object_mut().unwrap();
        result.remove("convergence");
        result.remove("note");
        let record: Record = serde_json::from_value(line).unwrap();
        let Record::Finished { result, .. } = record else {
            panic!("not a finished record");
        };
        assert_eq!(result.convergence, None);
        assert_eq!(result.note, None);
    }

    #[test]
    fn a_status_the_api_added_later_is_kept_as_spelled() {
        let mut line: serde_json::Value = serde_json::from_str(V1_FINISHED).unwrap();
        line["result"]["final_status"] = json!("SUPERSEDED");
        let record: Record = serde_json::from_value(line.clone()).unwrap();
        let Record::Finished { result, .. } = &record else {
            panic!("not a finished record");
        };
        assert_eq!(
            result.to_engine().final_status,
            Some(ReleaseStatus::Other("SUPERSEDED".into()))
        );
        assert_eq!(serde_json::to_value(&record).unwrap(), line);
    }

    #[test]
    fn the_header_names_the_format_and_this_version() {
        let header = serde_json::to_value(Header::current()).unwrap();
        assert_eq!(header["format"], "flotilla-journal");
        assert_eq!(header["version"], FORMAT_VERSION);
        let object = header.as_object().unwrap();
        assert_eq!(format_of(object), Ok((FORMAT_VERSION, true)));
    }

    #[test]
    fn a_first_line_without_a_format_is_version_1() {
        let first = json!({"record": "run", "plan": {"name": "p", "hash": "ab"}});
        assert_eq!(format_of(first.as_object().unwrap()), Ok((1, false)));
    }

    #[test]
    fn a_newer_version_or_an_unknown_format_is_refused() {
        let newer =
            json!({"format": "flotilla-journal", "version": 4, "flotilla_version": "9.0.0"});
        assert_eq!(
            format_of(newer.as_object().unwrap()),
            Err(FormatProblem::Version {
                version: 4,
                written_by: Some("9.0.0".into())
            })
        );
        let zero = json!({"format": "flotilla-journal", "version": 0});
        assert!(matches!(
            format_of(zero.as_object().unwrap()),
            Err(FormatProblem::Version { version: 0, .. })
        ));
        let other = json!({"format": "someone-else", "version": 2});
        assert!(matches!(
            format_of(other.as_object().unwrap()),
            Err(FormatProblem::Unknown { .. })
        ));
        let no_version = json!({"format": "flotilla-journal", "version": "2"});
        assert!(matches!(
            format_of(no_version.as_object().unwrap()),
            Err(FormatProblem::Unknown { .. })
        ));
    }
}
