//! The report document: what happened to every operation of a run. It is the JSON report
//! (`schema/report.schema.json`), what `report merge` reads, and what every rendering draws from.

use serde::{Deserialize, Serialize};

use crate::engine::{CredentialRefusal, Verdict};
use crate::plan::resolved::{ExpandedPlan, FailureBudget};

/// What became of an operation, and of one of its requests: the engine's own, so that the two
/// cannot drift.
pub use crate::engine::{AttemptKind, Outcome};

/// Bumped on any incompatible change of the document's shape. Version 2 typed the attempts
/// (`kind`, `code`, `message`, ...) and gave the rollback its own; version 1 reports still read.
pub const FORMAT_VERSION: u32 = 2;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub format_version: u32,
    pub flotilla_version: String,
    pub plan: PlanInfo,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub finished_at: String,
    pub duration_ms: u64,
    /// The effective rollout settings and run flags.
    pub settings: serde_json::Value,
    pub summary: Summary,
    /// Why the run stopped early, when a failure budget was exceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<String>,
    /// True when SIGINT or SIGTERM stopped the run.
    #[serde(default)]
    pub interrupted: bool,
    /// An endpoint refused the credentials, and the run halted at that first refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_refused: Option<CredentialRefusal>,
    /// In a merged report, the shards (`K/N`) whose report was not given: their operations are
    /// not in it, so the merged run does not count as a success.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_shards: Vec<String>,
    /// A merged report that lacks a shard's report (see `missing_shards`): it accounts for
    /// part of what it covers only. Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
    pub operations: Vec<OperationReport>,
}

impl RunReport {
    /// The run was a rehearsal against the simulator (`--simulate`): it changed nothing real.
    pub fn was_simulated(&self) -> bool {
        self.settings.get("simulate") == Some(&serde_json::Value::Bool(true))
    }

    /// The verdict of the run the report describes; a merged report that lacks a shard cannot
    /// vouch for the whole plan.
    pub fn verdict(&self) -> Verdict {
        if self.interrupted {
            Verdict::Interrupted
        } else if self.credentials_refused.is_some() {
            Verdict::CredentialsRefused
        } else if self.summary.all_succeeded() && self.missing_shards.is_empty() {
            Verdict::Succeeded
        } else {
            Verdict::Failed
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanInfo {
    pub name: String,
    /// Lowercase hex SHA-256 of the plan file and of what its variables put in it.
    pub hash: String,
    /// `K/N` when the run was one shard of the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// The waves the run was given (`--wave`, or all of them), in plan order, with the settings
    /// `report merge` judges them by as their gate. Empty in reports written before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<WaveGate>,
    /// The run's own failure budget (`rollout.max_failures`), which a gate applies as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<FailureBudget>,
}

/// One wave as its gate (`report merge`) needs it: the plan's settings, carried by every shard's
/// report so that the merge needs neither the plan nor its variables.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WaveGate {
    pub name: String,
    /// The wave's own failure budget, over all its shards together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<FailureBudget>,
    /// How long to wait after the wave passed, before its next wave may start.
    pub soak_ms: u64,
    /// The wave after it in the plan; none for the last, whose soak nothing waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_wave: Option<String>,
}

impl WaveGate {
    /// The waves a run was given, with their gate settings: those named by `--wave`, or every
    /// wave the selection reaches (`selected`, a shard of which may be empty), each with the
    /// plan's next wave, the one its soak is for.
    pub fn of_run(whole: &ExpandedPlan, named: &[String], selected: &ExpandedPlan) -> Vec<Self> {
        let kept = |name: &str| {
            if named.is_empty() {
                selected.waves.iter().any(|w| w.name == name)
            } else {
                named.iter().any(|n| n == name)
            }
        };
        whole
            .waves
            .iter()
            .enumerate()
            .filter(|(_, wave)| kept(&wave.name))
            .map(|(i, wave)| WaveGate {
                name: wave.name.clone(),
                max_failures: wave.max_failures,
                soak_ms: u64::try_from(wave.soak.as_millis()).unwrap_or(u64::MAX),
                next_wave: whole.waves.get(i + 1).map(|next| next.name.clone()),
            })
            .collect()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub total: usize,
    pub succeeded: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub skipped: usize,
    pub cancelled: usize,
}

impl Summary {
    pub fn of(operations: &[OperationReport]) -> Self {
        let mut summary = Summary {
            total: operations.len(),
            ..Summary::default()
        };
        for op in operations {
            match op.outcome {
                Outcome::Succeeded => summary.succeeded += 1,
                Outcome::Unchanged => summary.unchanged += 1,
                Outcome::Failed => summary.failed += 1,
                Outcome::Skipped => summary.skipped += 1,
                Outcome::Cancelled => summary.cancelled += 1,
            }
        }
        summary
    }

    /// Every operation succeeded (or was already as planned).
    pub fn all_succeeded(&self) -> bool {
        self.failed == 0 && self.skipped == 0 && self.cancelled == 0
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationReport {
    /// Position in the plan's execution order.
    pub index: usize,
    pub cluster: ClusterInfo,
    pub namespace: String,
    pub name: String,
    pub action: String,
    pub wave: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_before: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_after: Option<i64>,
    /// The revision a rollback goes to; where the plan wrote `previous` or `-N`, the one it
    /// resolved to on this release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_version: Option<i64>,
    /// The requests of the change itself (the rollback's are the rollback's).
    pub attempts: Vec<AttemptReport>,
    /// A PUT of the change was sent (it may have reached the service). Absent when none was.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub change_sent: bool,
    /// The change is known to have applied: its PUT was answered 2xx, or a read showed it.
    /// Absent when it is not known to have.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub change_applied: bool,
    /// An ambiguous answer was settled by reading the release back.
    #[serde(default)]
    pub reconciled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackReport>,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    /// Free-form remarks, e.g. why an operation counted as unchanged or came from the journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl OperationReport {
    /// The PUTs sent for the change (reconciling GETs and the rollback's PUTs not counted).
    pub fn put_attempts(&self) -> usize {
        puts(&self.attempts)
    }

    /// Nothing was done for it: no request, no error, no reading of its release. What a halt
    /// or an interrupt leaves of the operations it kept from starting, which a reader is told
    /// about in one line per wave rather than one per operation.
    pub fn never_started(&self) -> bool {
        matches!(self.outcome, Outcome::Skipped | Outcome::Cancelled)
            && self.skip_reason.is_some()
            && self.attempts.is_empty()
            && self.error.is_none()
            && self.version_before.is_none()
            && self.rollback.is_none()
            && !self.change_sent
    }

    /// The PUTs the automatic rollback sent, if there was one.
    pub fn rollback_put_attempts(&self) -> Option<usize> {
        self.rollback.as_ref().map(|r| puts(&r.attempts))
    }
}

fn puts(attempts: &[AttemptReport]) -> usize {
    attempts.iter().filter(|a| a.request == "put").count()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub name: String,
    pub id: String,
}

/// One request of an operation or of its rollback.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptReport {
    /// `put` or `get`.
    pub request: String,
    /// What became of it, in a word. Version 1 reports did not say: `unrecorded`.
    #[serde(default)]
    pub kind: AttemptKind,
    /// HTTP status; absent when no answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The service's error code (`error_code` in version 1 reports).
    #[serde(default, alias = "error_code", skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The answer's `X-Request-Id`, for a support ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The gateway throttled it (429).
    #[serde(default)]
    pub throttled: bool,
    /// What went wrong, in full: the failure in words and the service's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Waited before this attempt, in milliseconds.
    pub delay_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RollbackReport {
    pub outcome: Outcome,
    /// The rollback's own requests: its PUTs, its reconciling GETs and failed polls.
    #[serde(default)]
    pub attempts: Vec<AttemptReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl From<crate::engine::OperationError> for ErrorReport {
    /// An error as the run's reports show it: the service's code, the message, the request id.
    fn from(error: crate::engine::OperationError) -> Self {
        ErrorReport {
            code: error.code,
            message: error.message,
            request_id: error.request_id,
        }
    }
}

impl std::fmt::Display for ErrorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(code) = &self.code {
            write!(f, "{code}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}
