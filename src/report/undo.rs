//! `flotilla undo`'s planning: from a run's report to the rollbacks that undo it, each to the
//! revision its release had before the run and expected at the one the run left, in waves
//! reversed; as pure functions.
//!
//! A report carries each cluster's name and id but not its endpoint, region or project: those
//! come from the plan the run used (`undo --plan`), matched by cluster id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::model::{OperationReport, Outcome, RunReport};
use crate::cce::model::{Action, ReleaseParameters, UpdateReleaseBody};
use crate::plan::resolved::{ClusterTarget, ExpandedPlan, Operation, Wave};

/// One rollback of the undo: the run's operation, the revision to go back to, and the one the
/// release is expected at.
type Rollback<'r> = (&'r OperationReport, i64, i64);

/// What undo does with one operation of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UndoDecision {
    /// Roll the release back to `to` (its revision before the run), if it is still at
    /// `expected` (the revision the run left).
    RollBack { to: i64, expected: i64 },
    /// The run did not change the release: nothing to undo.
    NothingToUndo,
    /// The run may have changed the release, but undo cannot tell to what; why.
    Cannot(String),
}

/// Which operations of a run changed a release, and to what undo takes it back.
pub fn decide(op: &OperationReport) -> UndoDecision {
    if op
        .rollback
        .as_ref()
        .is_some_and(|r| r.outcome == Outcome::Succeeded)
    {
        // rollback_on_failure already took it back to its revision before the run.
        return UndoDecision::NothingToUndo;
    }
    match (op.version_before, op.version_after) {
        (Some(before), Some(after)) if after != before => UndoDecision::RollBack {
            to: before,
            expected: after,
        },
        (None, Some(_)) if op.outcome != Outcome::Unchanged => UndoDecision::Cannot(
            "the run did not read its revision before the change (preflight off)".to_owned(),
        ),
        (_, None) if may_have_applied(op) => UndoDecision::Cannot(
            "the run cannot tell whether its change was applied: finish it with `apply --resume`, then undo that run's report".to_owned(),
        ),
        _ => UndoDecision::NothingToUndo,
    }
}

/// A change whose PUT may have been applied without the run learning the revision it made:
/// in flight when the run stopped, interrupted after its PUT left, or failed not knowing.
fn may_have_applied(op: &OperationReport) -> bool {
    match op.outcome {
        Outcome::Cancelled => {
            op.change_sent
                || op.put_attempts() > 0
                || op
                    .skip_reason
                    .as_deref()
                    .is_some_and(|r| r.contains("in flight"))
        }
        Outcome::Failed => op.error.as_ref().is_some_and(|e| {
            e.message.contains("outcome unknown") || e.message.contains("cannot tell")
        }),
        _ => false,
    }
}

/// The order of the undo's waves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaveOrder {
    /// The run's last wave first (prod before canary): the default.
    Reversed,
    /// As the run went (`--keep-order`).
    Kept,
}

/// An operation of the run that undo leaves alone although it may have changed the release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotUndone {
    /// `cluster namespace/release`.
    pub operation: String,
    pub reason: String,
}

/// The undo of a run: a plan of rollbacks for the engine, and what it cannot undo.
#[derive(Clone, Debug)]
pub struct UndoPlan {
    pub plan: ExpandedPlan,
    pub not_undone: Vec<NotUndone>,
}

/// Why a run cannot be undone at all.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UndoError {
    #[error("the run was a dry run: it changed nothing")]
    DryRun,
    #[error(
        "cluster `{name}` (id {id}) of the run is not in the plan: pass the plan the run used with --plan"
    )]
    UnknownCluster { name: String, id: String },
}

/// Plans the undo of `run`, addressing clusters as `plan` does (matched by cluster id), with
/// `plan`'s rollout and its waves' soak and failure budgets (looked up by wave name).
pub fn plan_undo(
    run: &RunReport,
    plan: &ExpandedPlan,
    order: WaveOrder,
) -> Result<UndoPlan, UndoError> {
    if run.settings.get("dry_run") == Some(&serde_json::Value::Bool(true)) {
        return Err(UndoError::DryRun);
    }
    let clusters: HashMap<&str, &Arc<ClusterTarget>> = plan
        .operations()
        .map(|op| (op.cluster.id.as_str(), &op.cluster))
        .collect();
    let mut ops: Vec<&OperationReport> = run.operations.iter().collect();
    ops.sort_by_key(|op| op.index);

    // The run's waves in the order it ran them, each with its rollbacks in the run's order.
    let mut waves: Vec<(String, Vec<Rollback<'_>>)> = Vec::new();
    let mut not_undone = Vec::new();
    for op in ops {
        match decide(op) {
            UndoDecision::RollBack { to, expected } => {
                if !clusters.contains_key(op.cluster.id.as_str()) {
                    return Err(UndoError::UnknownCluster {
                        name: op.cluster.name.clone(),
                        id: op.cluster.id.clone(),
                    });
                }
                match waves.iter_mut().find(|(name, _)| *name == op.wave) {
                    Some((_, list)) => list.push((op, to, expected)),
                    None => waves.push((op.wave.clone(), vec![(op, to, expected)])),
                }
            }
            UndoDecision::NothingToUndo => {}
            UndoDecision::Cannot(reason) => not_undone.push(NotUndone {
                operation: shown(op),
                reason,
            }),
        }
    }
    if order == WaveOrder::Reversed {
        waves.reverse();
    }

    let mut index = 0;
    let mut undo_waves = Vec::with_capacity(waves.len());
    for (name, list) in waves {
        let declared = plan.waves.iter().find(|w| w.name == name);
        let wave_index = undo_waves.len();
        let operations = list
            .into_iter()
            .map(|(op, to, expected)| {
                let operation = Operation {
                    index,
                    wave: wave_index,
                    cluster: Arc::clone(clusters[op.cluster.id.as_str()]),
                    namespace: op.namespace.clone(),
                    release: op.name.clone(),
                    action: Action::Rollback,
                    body: Arc::new(rollback_to(to)),
                    rollback_on_failure: false,
                    relative_version: None,
                    expected_revision: Some(expected),
                };
                index += 1;
                operation
            })
            .collect();
        undo_waves.push(Wave {
            name,
            implicit: declared.is_none_or(|w| w.implicit),
            soak: declared.map_or(Duration::ZERO, |w| w.soak),
            max_failures: declared.and_then(|w| w.max_failures),
            operations,
        });
    }

    let hash = undo_hash(run, &undo_waves);
    Ok(UndoPlan {
        plan: ExpandedPlan {
            name: format!("undo-{}", run.plan.name),
            hash,
            rollout: plan.rollout.clone(),
            waves: undo_waves,
            redactor: plan.redactor.clone(),
        },
        not_undone,
    })
}

fn rollback_to(version: i64) -> UpdateReleaseBody {
    UpdateReleaseBody {
        chart_id: None,
        action: Action::Rollback,
        parameters: Some(ReleaseParameters {
            release_version: Some(version),
            ..ReleaseParameters::default()
        }),
        values: None,
    }
}

fn shown(op: &OperationReport) -> String {
    let cluster = if op.cluster.name.is_empty() {
        &op.cluster.id
    } else {
        &op.cluster.name
    };
    format!("{cluster} {}/{}", op.namespace, op.name)
}

/// The undo's identity: the run it undoes and every rollback, so that `--resume` finds the
/// undo's own journal and refuses one of another undo.
fn undo_hash(run: &RunReport, waves: &[Wave]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"flotilla undo\n");
    hasher.update(run.plan.hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(run.started_at.as_bytes());
    for op in waves.iter().flat_map(|w| &w.operations) {
        let line = format!(
            "\n{} {} {} {} {:?} {:?}",
            op.cluster.id,
            op.namespace,
            op.release,
            op.wave,
            crate::engine::converge::rollback_version(&op.body),
            op.expected_revision
        );
        hasher.update(line.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests;
