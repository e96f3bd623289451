//! From the engine's results to the report document.

use crate::engine::{self, Method, OperationResult};
use crate::plan::resolved::ExpandedPlan;
use crate::secret::Redactor;

use super::model::{
    AttemptReport, ClusterInfo, ErrorReport, FORMAT_VERSION, OperationReport, PlanInfo,
    RollbackReport, RunReport, Summary,
};

fn error(error: &engine::OperationError, redactor: &Redactor) -> ErrorReport {
    let mut report = ErrorReport::from(error.clone());
    report.message = redactor.mask_text(&report.message).into_owned();
    report
}

/// One operation's report; `wave` is its wave's name. Its free text (errors, notes, reasons)
/// goes through the plan's `redactor`: a service may quote what it was sent.
pub fn operation(result: &OperationResult, wave: &str, redactor: &Redactor) -> OperationReport {
    let masked = |text: &String| redactor.mask_text(text).into_owned();
    OperationReport {
        index: result.index,
        cluster: ClusterInfo {
            name: result.cluster_name.clone(),
            id: result.cluster_id.clone(),
        },
        namespace: result.namespace.clone(),
        name: result.release.clone(),
        action: result.action.as_str().to_owned(),
        wave: wave.to_owned(),
        outcome: result.outcome,
        final_status: result.final_status.as_ref().map(|s| s.as_str().to_owned()),
        version_before: result.version_before,
        version_after: result.version_after,
        release_version: result.release_version,
        attempts: attempts(result.change_attempts(), redactor),
        change_sent: result.put_sent && !result.dry_run,
        change_applied: result.put_applied,
        reconciled: result.reconciled,
        rollback: result.rollback.as_ref().map(|rollback| RollbackReport {
            outcome: rollback.outcome,
            attempts: attempts(result.rollback_attempts(), redactor),
            to_version: Some(rollback.to_version),
            final_status: rollback
                .final_status
                .as_ref()
                .map(|s| s.as_str().to_owned()),
            error: rollback.error.as_ref().map(|e| error(e, redactor)),
        }),
        duration_ms: millis(result.duration),
        error: result.error.as_ref().map(|e| error(e, redactor)),
        skip_reason: result.skip_reason.as_ref().map(masked),
        note: note(result).as_ref().map(masked),
    }
}

/// The attempts as the report lists them, their messages masked: a service may quote what it
/// was sent.
fn attempts<'a>(
    attempts: impl Iterator<Item = &'a engine::Attempt>,
    redactor: &Redactor,
) -> Vec<AttemptReport> {
    attempts
        .map(|attempt| AttemptReport {
            request: match attempt.method {
                Method::Put => "put".to_owned(),
                Method::Get => "get".to_owned(),
            },
            kind: attempt.kind,
            status: attempt.status,
            code: attempt.error_code.clone(),
            request_id: attempt.request_id.clone(),
            throttled: attempt.throttled,
            message: attempt
                .error
                .as_ref()
                .map(|text| redactor.mask_text(text).into_owned()),
            delay_ms: millis(attempt.delay_before),
        })
        .collect()
}

fn note(result: &OperationResult) -> Option<String> {
    if result.from_journal {
        Some("succeeded in an earlier run (journal); nothing sent".to_owned())
    } else if result.dry_run && result.outcome == engine::Outcome::Succeeded {
        let mut note = "dry run: validated by the service, nothing changed".to_owned();
        if let Some(convergence) = &result.note {
            note.push_str("; ");
            note.push_str(convergence);
        }
        Some(note)
    } else {
        result.note.clone()
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The whole run's report.
pub fn run_report(
    run: &engine::RunReport,
    plan: &ExpandedPlan,
    shard: Option<String>,
    settings: serde_json::Value,
) -> RunReport {
    let operations: Vec<OperationReport> = run
        .results
        .iter()
        .map(|result| operation(result, plan.wave_name(result.wave), &plan.redactor))
        .collect();
    RunReport {
        format_version: FORMAT_VERSION,
        flotilla_version: env!("CARGO_PKG_VERSION").to_owned(),
        plan: PlanInfo {
            name: run.plan_name.clone(),
            hash: run.plan_hash.clone(),
            shard,
            // The waves' gate settings are the dispatcher's to add: it knows the whole plan.
            waves: Vec::new(),
            max_failures: Some(plan.rollout.max_failures),
        },
        started_at: run.started_at.to_string(),
        finished_at: run.finished_at.to_string(),
        duration_ms: millis(run.duration),
        settings,
        summary: Summary::of(&operations),
        halted: run
            .halted
            .as_ref()
            .map(|h| plan.redactor.mask_text(h).into_owned()),
        interrupted: run.cancelled,
        credentials_refused: run.credentials_refused.clone(),
        missing_shards: Vec::new(),
        incomplete: false,
        operations,
    }
}
