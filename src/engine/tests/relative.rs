//! Rollbacks to `previous` or `-N`, resolved per release from its own revision and history, and
//! operations expected at a revision (`flotilla undo`): refused at another one unless forced.

use super::*;
use crate::plan::resolved::RelativeRevision;

/// Rolls every operation back to `relative`, as a plan that writes it does: no revision in
/// the body until the engine resolves it.
fn rolling_back(plan: &mut ExpandedPlan, relative: RelativeRevision) {
    let body = Arc::new(UpdateReleaseBody {
        chart_id: None,
        action: Action::Rollback,
        parameters: None,
        values: None,
    });
    for op in plan.waves.iter_mut().flat_map(|w| w.operations.iter_mut()) {
        op.action = Action::Rollback;
        op.body = body.clone();
        op.relative_version = Some(relative);
    }
}

/// Adds revisions tagged `v2`, `v3`, … to the release until it is at `revision`.
fn upgrade_to(api: &FakeApi, c: &ClusterTarget, revision: i64) {
    api.edit_release(&c.id, "web", |r| {
        let first = r.history[0].clone();
        for version in 2..=revision {
            r.history.push(RevisionSnapshot {
                version,
                values: image_tag(&format!("v{version}")),
                ..first.clone()
            });
        }
    });
}

/// Two clusters, one release each, at revisions 3 and 5.
fn two_clusters_at_3_and_5(
    rollout: Rollout,
) -> (
    Arc<ClusterTarget>,
    Arc<ClusterTarget>,
    ExpandedPlan,
    Arc<FakeApi>,
) {
    let a = cluster("a", "r1");
    let b = cluster("b", "r1");
    let p = plan(
        rollout,
        vec![vec![
            (a.clone(), "web".into(), "v1"),
            (b.clone(), "web".into(), "v1"),
        ]],
    );
    let api = FakeApi::new();
    api.seed(&p);
    upgrade_to(&api, &a, 3);
    upgrade_to(&api, &b, 5);
    (a, b, p, api)
}

fn put_revisions(api: &FakeApi) -> Vec<(String, Option<i64>)> {
    api.puts()
        .into_iter()
        .map(|call| {
            let version = call
                .body
                .and_then(|b| b.parameters)
                .and_then(|p| p.release_version);
            (call.cluster_id, version)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn previous_resolves_per_release_and_the_put_names_the_revision() {
    let (a, b, mut p, api) = two_clusters_at_3_and_5(rollout());
    rolling_back(&mut p, RelativeRevision::Previous);
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let mut sent = put_revisions(&api);
    sent.sort();
    assert_eq!(sent, vec![(a.id.clone(), Some(2)), (b.id.clone(), Some(4))]);
    let resolved: Vec<Option<i64>> = report.results.iter().map(|r| r.release_version).collect();
    assert_eq!(resolved, vec![Some(2), Some(4)]);
    assert!(
        report
            .results
            .iter()
            .all(|r| r.outcome == Outcome::Succeeded)
    );
    // The history read to resolve is the one the convergence judgement uses.
    assert_eq!(api.lock().history_lookups, 2);
}

#[tokio::test(start_paused = true)]
async fn minus_n_reads_the_release_even_with_preflight_off() {
    let mut no_preflight = rollout();
    no_preflight.preflight = false;
    let (a, b, mut p, api) = two_clusters_at_3_and_5(no_preflight);
    rolling_back(&mut p, RelativeRevision::Back(2));
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let mut sent = put_revisions(&api);
    sent.sort();
    assert_eq!(sent, vec![(a.id.clone(), Some(1)), (b.id.clone(), Some(3))]);
    // Read first: the revision before is known, as with preflight.
    assert!(report.results.iter().all(|r| r.version_before.is_some()));
}

#[tokio::test(start_paused = true)]
async fn a_revision_that_does_not_exist_fails_that_release_without_a_put() {
    let (a, _b, mut p, api) = two_clusters_at_3_and_5(rollout());
    rolling_back(&mut p, RelativeRevision::Back(4));
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    // Cluster a (revision 3) has two before it; cluster b (revision 5) has four.
    let failed = &report.results[0];
    assert_eq!(failed.cluster_id, a.id);
    assert_eq!(failed.outcome, Outcome::Failed);
    let message = &failed.error.as_ref().unwrap().message;
    assert!(
        message.contains("release_version: -4: the release's history has only 2 revision(s) before 3; nothing sent"),
        "{message}"
    );
    assert_eq!(put_revisions(&api).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_operation_expected_at_another_revision_is_skipped_unless_forced() {
    let (a, b, mut p, api) = two_clusters_at_3_and_5(rollout());
    for op in p.waves.iter_mut().flat_map(|w| w.operations.iter_mut()) {
        op.action = Action::Rollback;
        op.body = Arc::new(UpdateReleaseBody {
            chart_id: None,
            action: Action::Rollback,
            parameters: Some(ReleaseParameters {
                release_version: Some(1),
                ..ReleaseParameters::default()
            }),
            values: None,
        });
        // Both are expected at revision 3; b has moved on to 5.
        op.expected_revision = Some(3);
    }
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(put_revisions(&api), vec![(a.id.clone(), Some(1))]);
    let refused = &report.results[1];
    assert_eq!(refused.cluster_id, b.id);
    assert_eq!(refused.outcome, Outcome::Skipped);
    assert!(
        refused
            .skip_reason
            .as_deref()
            .is_some_and(|r| r.contains("at revision 5, not the 3")),
        "{refused:?}"
    );

    let forced = EngineOptions {
        force: true,
        ..EngineOptions::default()
    };
    let before = api.puts().len();
    let (report, _) = run_plan(&p, api.clone(), forced).await;
    assert_eq!(api.puts().len(), before + 2);
    assert!(
        report
            .results
            .iter()
            .all(|r| r.outcome == Outcome::Succeeded)
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_relative_rollback_that_never_landed_resolves_before_its_put() {
    let (a, b, mut p, api) = two_clusters_at_3_and_5(rollout());
    rolling_back(&mut p, RelativeRevision::Previous);
    // The killed run journaled both intents at the revisions it read; neither PUT landed.
    let options = EngineOptions {
        resume: HashMap::from([
            (
                0,
                PriorState::InFlight {
                    version_before: Some(3),
                },
            ),
            (
                1,
                PriorState::InFlight {
                    version_before: Some(5),
                },
            ),
        ]),
        ..EngineOptions::default()
    };
    let (report, _) = run_plan(&p, api.clone(), options).await;
    let mut sent = put_revisions(&api);
    sent.sort();
    assert_eq!(sent, vec![(a.id.clone(), Some(2)), (b.id.clone(), Some(4))]);
    assert!(
        report
            .results
            .iter()
            .all(|r| r.outcome == Outcome::Succeeded)
    );
}
