//! The undo planner: which operations, to which revision, in which order, and what it refuses.

use super::*;
use crate::report::model::{
    AttemptKind, AttemptReport, ClusterInfo, ErrorReport, FORMAT_VERSION, PlanInfo, RollbackReport,
    Summary,
};

/// The demo plan: canary-1 and canary-2 in wave `canary`, prod-1 … prod-6 in wave `prod`.
fn demo() -> ExpandedPlan {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml");
    crate::plan::load_path(&path).expect("the demo plan loads")
}

/// The report operation of `demo`'s operation on `cluster` for `release`, with `outcome`.
fn op(plan: &ExpandedPlan, cluster: &str, release: &str, outcome: Outcome) -> OperationReport {
    let planned = plan
        .operations()
        .find(|o| o.cluster.name == cluster && o.release == release)
        .expect("the demo plan has it");
    OperationReport {
        index: planned.index,
        cluster: ClusterInfo {
            name: cluster.to_owned(),
            id: planned.cluster.id.clone(),
        },
        namespace: planned.namespace.clone(),
        name: release.to_owned(),
        action: "upgrade".to_owned(),
        wave: plan.wave_name(planned.wave).to_owned(),
        outcome,
        final_status: None,
        version_before: None,
        version_after: None,
        release_version: None,
        attempts: Vec::new(),
        change_sent: false,
        change_applied: false,
        reconciled: false,
        rollback: None,
        duration_ms: 0,
        error: None,
        skip_reason: None,
        note: None,
    }
}

fn changed(mut op: OperationReport, before: i64, after: i64) -> OperationReport {
    op.version_before = Some(before);
    op.version_after = Some(after);
    op
}

fn run_of(plan: &ExpandedPlan, operations: Vec<OperationReport>) -> RunReport {
    RunReport {
        format_version: FORMAT_VERSION,
        flotilla_version: "test".to_owned(),
        plan: PlanInfo {
            name: plan.name.clone(),
            hash: plan.hash.clone(),
            shard: None,
            max_failures: None,
            waves: Vec::new(),
        },
        started_at: "2026-12-04T10:00:00Z".to_owned(),
        finished_at: "2026-12-04T10:05:00Z".to_owned(),
        duration_ms: 300_000,
        settings: serde_json::json!({"dry_run": false}),
        summary: Summary::of(&operations),
        halted: None,
        interrupted: false,
        credentials_refused: None,
        missing_shards: Vec::new(),
        incomplete: false,
        operations,
    }
}

fn put_attempt() -> AttemptReport {
    AttemptReport {
        request: "put".to_owned(),
        kind: AttemptKind::ConnectionLost,
        status: None,
        code: None,
        request_id: None,
        throttled: false,
        message: Some("connection lost before the answer".to_owned()),
        delay_ms: 0,
    }
}

#[test]
fn only_changes_with_both_revisions_are_rolled_back() {
    let plan = demo();
    let at = |outcome| op(&plan, "prod-1", "storefront", outcome);
    assert_eq!(
        decide(&changed(at(Outcome::Succeeded), 3, 4)),
        UndoDecision::RollBack { to: 3, expected: 4 }
    );
    // Failed after its PUT applied (the release settled FAILED at revision 4): undone too.
    let mut failed = changed(at(Outcome::Failed), 3, 4);
    failed.final_status = Some("FAILED".to_owned());
    assert_eq!(
        decide(&failed),
        UndoDecision::RollBack { to: 3, expected: 4 }
    );
    // Nothing changed: unchanged, skipped, failed before any PUT applied.
    let mut unchanged = at(Outcome::Unchanged);
    unchanged.version_before = Some(4);
    assert_eq!(decide(&unchanged), UndoDecision::NothingToUndo);
    assert_eq!(decide(&at(Outcome::Skipped)), UndoDecision::NothingToUndo);
    let mut refused = at(Outcome::Failed);
    refused.version_before = Some(3);
    refused.error = Some(ErrorReport {
        code: Some("CCE.01400001".to_owned()),
        message: "PUT failed".to_owned(),
        request_id: None,
    });
    assert_eq!(decide(&refused), UndoDecision::NothingToUndo);
}

#[test]
fn a_change_already_rolled_back_by_the_run_is_left_alone() {
    let plan = demo();
    let mut rolled_back = changed(op(&plan, "prod-1", "storefront", Outcome::Failed), 3, 5);
    rolled_back.rollback = Some(RollbackReport {
        outcome: Outcome::Succeeded,
        attempts: Vec::new(),
        to_version: Some(3),
        final_status: Some("DEPLOYED".to_owned()),
        error: None,
    });
    assert_eq!(decide(&rolled_back), UndoDecision::NothingToUndo);
    // A rollback that failed leaves the change to undo.
    if let Some(rollback) = rolled_back.rollback.as_mut() {
        rollback.outcome = Outcome::Failed;
    }
    assert_eq!(
        decide(&rolled_back),
        UndoDecision::RollBack { to: 3, expected: 5 }
    );
}

#[test]
fn what_the_run_cannot_tell_is_not_undone_and_says_why() {
    let plan = demo();
    let at = |outcome| op(&plan, "prod-1", "storefront", outcome);
    let mut no_preflight = at(Outcome::Succeeded);
    no_preflight.version_after = Some(4);
    assert!(
        matches!(decide(&no_preflight), UndoDecision::Cannot(why) if why.contains("preflight off"))
    );

    let mut interrupted = at(Outcome::Cancelled);
    interrupted.version_before = Some(3);
    interrupted.attempts.push(put_attempt());
    assert!(
        matches!(decide(&interrupted), UndoDecision::Cannot(why) if why.contains("apply --resume"))
    );

    let mut in_flight = at(Outcome::Cancelled);
    in_flight.skip_reason =
        Some("in flight when the run stopped: its PUT may have been applied".to_owned());
    assert!(matches!(decide(&in_flight), UndoDecision::Cannot(_)));

    let mut unknown = at(Outcome::Failed);
    unknown.error = Some(ErrorReport {
        code: None,
        message: "PUT outcome unknown (no revision from before it); not resent".to_owned(),
        request_id: None,
    });
    assert!(matches!(decide(&unknown), UndoDecision::Cannot(_)));

    // A cancelled operation that never sent its PUT changed nothing.
    assert_eq!(decide(&at(Outcome::Cancelled)), UndoDecision::NothingToUndo);
}

#[test]
fn waves_are_reversed_prod_first_unless_the_order_is_kept() {
    let plan = demo();
    let run = run_of(
        &plan,
        vec![
            changed(
                op(&plan, "canary-1", "storefront", Outcome::Succeeded),
                1,
                2,
            ),
            changed(
                op(&plan, "canary-2", "storefront", Outcome::Succeeded),
                4,
                5,
            ),
            op(&plan, "prod-1", "checkout", Outcome::Unchanged),
            changed(op(&plan, "prod-1", "storefront", Outcome::Succeeded), 7, 9),
            changed(op(&plan, "prod-2", "storefront", Outcome::Failed), 2, 3),
        ],
    );
    let undo = plan_undo(&run, &plan, WaveOrder::Reversed).unwrap();
    let waves: Vec<&str> = undo.plan.waves.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(waves, ["prod", "canary"]);
    type Shown<'p> = (usize, usize, &'p str, Option<i64>, Option<i64>);
    let ops: Vec<Shown<'_>> = undo
        .plan
        .operations()
        .map(|o| {
            (
                o.index,
                o.wave,
                o.cluster.name.as_str(),
                crate::engine::converge::rollback_version(&o.body),
                o.expected_revision,
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            (0, 0, "prod-1", Some(7), Some(9)),
            (1, 0, "prod-2", Some(2), Some(3)),
            (2, 1, "canary-1", Some(1), Some(2)),
            (3, 1, "canary-2", Some(4), Some(5)),
        ]
    );
    assert!(undo.plan.operations().all(|o| o.action == Action::Rollback
        && !o.rollback_on_failure
        && o.body.values.is_none()
        && o.body.chart_id.is_none()));
    // The plan's clusters (endpoints, regions) and each wave's soak and budget.
    let canary = &undo.plan.waves[1];
    assert_eq!(canary.soak, Duration::from_secs(5));
    assert_eq!(canary.max_failures, plan.waves[0].max_failures);
    assert_eq!(
        undo.plan.operations().next().unwrap().cluster.region,
        "cn-north-4"
    );
    assert!(undo.not_undone.is_empty());
    assert_eq!(undo.plan.name, "undo-shop-v2-4");

    let kept = plan_undo(&run, &plan, WaveOrder::Kept).unwrap();
    let waves: Vec<&str> = kept.plan.waves.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(waves, ["canary", "prod"]);
    // Each order is an undo of its own: a resume of one never continues the other.
    assert_ne!(kept.plan.hash, undo.plan.hash);
    assert_eq!(
        undo.plan.hash,
        plan_undo(&run, &plan, WaveOrder::Reversed)
            .unwrap()
            .plan
            .hash
    );
}

#[test]
fn a_dry_run_or_a_cluster_the_plan_lacks_cannot_be_undone() {
    let plan = demo();
    let mut run = run_of(
        &plan,
        vec![changed(
            op(&plan, "prod-1", "storefront", Outcome::Succeeded),
            7,
            9,
        )],
    );
    run.settings = serde_json::json!({"dry_run": true});
    assert_eq!(
        plan_undo(&run, &plan, WaveOrder::Reversed).unwrap_err(),
        UndoError::DryRun
    );
    run.settings = serde_json::json!({"dry_run": false});
    run.operations[0].cluster.id = "not-in-the-plan".to_owned();
    let err = plan_undo(&run, &plan, WaveOrder::Reversed).unwrap_err();
    assert!(err.to_string().contains("not in the plan"), "{err}");
}

#[test]
fn what_cannot_be_undone_is_listed_and_the_rest_planned() {
    let plan = demo();
    let mut no_preflight = op(&plan, "prod-3", "storefront", Outcome::Succeeded);
    no_preflight.version_after = Some(4);
    let run = run_of(
        &plan,
        vec![
            changed(op(&plan, "prod-1", "storefront", Outcome::Succeeded), 7, 9),
            no_preflight,
        ],
    );
    let undo = plan_undo(&run, &plan, WaveOrder::Reversed).unwrap();
    assert_eq!(undo.plan.operation_count(), 1);
    assert_eq!(undo.not_undone.len(), 1);
    assert_eq!(undo.not_undone[0].operation, "prod-3 shop/storefront");
}
