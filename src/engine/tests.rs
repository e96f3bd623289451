//! The engine against the in-process fake API, under paused tokio time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::fake::{Bucket, FakeApi, Fault, cluster, plan, rollout, run_plan};
use super::*;
use crate::cce::model::{Action, ReleaseStatus};
use crate::error::Exit;
use crate::plan::resolved::{ClusterTarget, ExpandedPlan, FailureBudget, Rate, Rollout};

type Ops = Vec<(Arc<ClusterTarget>, String, &'static str)>;

/// `per_cluster` releases on each cluster, in plan order cluster by cluster.
fn ops_on(clusters: &[Arc<ClusterTarget>], per_cluster: usize, tag: &'static str) -> Ops {
    let mut ops = Vec::new();
    for c in clusters {
        for i in 0..per_cluster {
            ops.push((c.clone(), format!("app-{i}"), tag));
        }
    }
    ops
}

/// The most operations in flight at once, over all results passing `filter`.
fn max_overlap(results: &[OperationResult], filter: impl Fn(&OperationResult) -> bool) -> usize {
    let mut edges: Vec<(Duration, i32)> = Vec::new();
    for r in results
        .iter()
        .filter(|r| filter(r) && r.outcome != Outcome::Skipped)
    {
        edges.push((r.started_at, 1));
        edges.push((r.started_at + r.duration, -1));
    }
    // Ends before starts at the same instant: [start, end).
    edges.sort();
    let (mut now, mut best) = (0i32, 0i32);
    for (_, delta) in edges {
        now += delta;
        best = best.max(now);
    }
    best as usize
}

type Seeded = (Arc<ClusterTarget>, ExpandedPlan, Arc<FakeApi>);

/// `releases` releases on one cluster, tagged `v2`, with the default rollout, and a fake API
/// seeded with them.
fn seeded_on_one_cluster(releases: usize) -> Seeded {
    seeded_with(rollout(), releases, "v2")
}

/// `releases` releases on one cluster, tagged `tag`, under `rollout`, and a fake API seeded with
/// them.
fn seeded_with(rollout: Rollout, releases: usize, tag: &'static str) -> Seeded {
    let c = cluster("a", "r1");
    let p = plan(
        rollout,
        vec![ops_on(std::slice::from_ref(&c), releases, tag)],
    );
    let api = FakeApi::new();
    api.seed(&p);
    (c, p, api)
}

/// The default rollout without preflight and without waiting.
fn no_preflight_no_wait() -> Rollout {
    let mut r = rollout();
    r.preflight = false;
    r.wait.enabled = false;
    r
}

fn ok(report: &RunReport) {
    for r in &report.results {
        assert_eq!(r.outcome, Outcome::Succeeded, "{r:#?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_plain_upgrade_preflights_puts_and_waits_for_the_new_revision() {
    let (c, p, api) = seeded_on_one_cluster(1);
    let (report, events) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    let r = &report.results[0];
    assert_eq!((r.version_before, r.version_after), (Some(1), Some(2)));
    assert_eq!(r.final_status, Some(ReleaseStatus::Deployed));
    assert_eq!(r.put_attempts, 1);
    assert!(r.put_applied && !r.reconciled);
    let methods: Vec<&str> = api.calls().iter().map(|c| c.method).collect();
    assert_eq!(methods[..2], ["GET", "PUT"]);
    assert!(methods[2..].iter().all(|m| *m == "GET"));
    assert_eq!(report.exit(), Exit::Success);
    assert_eq!(
        api.with_release(&c.id, "app-0", |r| r.current().values["imageTag"].clone()),
        "v2"
    );
    let finished = events
        .iter()
        .filter(|e| matches!(e, Event::OperationFinished(_)))
        .count();
    assert_eq!(finished, 1);
    assert!(matches!(events.last(), Some(Event::RunFinished { .. })));
}

#[tokio::test(start_paused = true)]
async fn ambiguous_put_that_was_applied_is_reconciled_not_resent() {
    let (c, p, api) = seeded_on_one_cluster(1);
    api.with_release(&c.id, "app-0", |r| {
        r.put_faults.push_back(Fault::AppliedThen500)
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    assert_eq!(api.puts().len(), 1);
    assert_eq!(api.with_release(&c.id, "app-0", |r| r.applied_puts), 1);
    let r = &report.results[0];
    assert!(r.reconciled);
    assert_eq!(r.version_after, Some(2));
    let phases: Vec<Phase> = r.attempts.iter().map(|a| a.phase).collect();
    assert_eq!(phases, [Phase::Put, Phase::Reconcile]);
    assert_eq!(r.attempts[0].status, Some(500));
}

/// The preflight saw DEPLOYED; after an ambiguous PUT that no GET could check, that is not
/// the release's final state, whatever the report would like to say.
#[tokio::test(start_paused = true)]
async fn a_put_whose_outcome_cannot_be_checked_reports_no_final_state() {
    let (c, p, api) = seeded_on_one_cluster(1);
    api.with_release(&c.id, "app-0", |r| {
        r.put_faults.push_back(Fault::AppliedThen500);
        r.get_faults.push_back(Fault::Pass);
        r.get_faults
            .extend(std::iter::repeat_n(Fault::Http(503, "APIG.0201"), 20));
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let r = &report.results[0];
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(
        r.error.as_ref().unwrap().message.contains("not resent"),
        "{r:?}"
    );
    assert_eq!(
        r.final_status, None,
        "the preflight DEPLOYED is stale: {r:#?}"
    );
    assert_eq!(r.version_after, None);
    assert_eq!(api.puts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn ambiguous_put_that_changed_nothing_is_sent_again() {
    let (c, p, api) = seeded_on_one_cluster(1);
    // A 500 before anything was applied, then a cut connection before applying.
    api.with_release(&c.id, "app-0", |r| {
        r.put_faults.push_back(Fault::Http(500, "CCE.01500001"));
        r.put_faults.push_back(Fault::ResetBeforeApply);
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    assert_eq!(api.puts().len(), 3);
    assert_eq!(api.with_release(&c.id, "app-0", |r| r.applied_puts), 1);
    let r = &report.results[0];
    assert_eq!(r.put_attempts, 3);
    assert!(!r.reconciled);
    // Every resend waited a jittered back-off within its cap.
    let puts: Vec<&Attempt> = r
        .attempts
        .iter()
        .filter(|a| a.phase == Phase::Put)
        .collect();
    assert!(puts[1].delay_before <= Duration::from_secs(1));
    assert!(puts[2].delay_before <= Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_put_that_never_answers_times_out_and_is_reconciled() {
    let (c, p, api) = seeded_on_one_cluster(1);
    api.with_release(&c.id, "app-0", |r| {
        r.put_faults.push_back(Fault::AppliedThenHang)
    });
    let start = Instant::now();
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    assert_eq!(api.puts().len(), 1);
    assert!(report.results[0].reconciled);
    assert!(Instant::now() - start >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn failed_gets_are_retried_and_a_fatal_poll_ends_the_wait() {
    let (c, p, api) = seeded_on_one_cluster(2);
    // app-0: the preflight GET meets a 503 and a cut connection, then goes through.
    api.with_release(&c.id, "app-0", |r| {
        r.get_faults.push_back(Fault::Http(503, "APIG.0201"));
        r.get_faults.push_back(Fault::ResetBeforeApply);
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    let retried: Vec<(Phase, Option<u16>)> = report.results[0]
        .attempts
        .iter()
        .map(|a| (a.phase, a.status))
        .collect();
    assert_eq!(
        retried,
        [
            (Phase::Preflight, Some(503)),
            (Phase::Preflight, None),
            (Phase::Put, Some(200))
        ]
    );

    // Without preflight the first GET is the wait's poll: a 403 there ends the operation.
    let mut r = rollout();
    r.preflight = false;
    let p = plan(r, vec![ops_on(std::slice::from_ref(&c), 2, "v2")]);
    let api = FakeApi::new();
    api.seed(&p);
    api.with_release(&c.id, "app-1", |r| {
        r.get_faults.push_back(Fault::Http(403, "CCE.01403001"))
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(report.results[0].outcome, Outcome::Succeeded);
    let failed = &report.results[1];
    assert_eq!(failed.outcome, Outcome::Failed);
    let error = failed.error.as_ref().unwrap();
    assert!(
        error.message.starts_with("waiting for the release"),
        "{error:?}"
    );
    assert_eq!(error.status, Some(403));
    let polls_of_app_1 = api
        .calls()
        .iter()
        .filter(|call| call.release == "app-1" && call.method == "GET")
        .count();
    assert_eq!(polls_of_app_1, 1, "no poll after the fatal one");
}

#[tokio::test(start_paused = true)]
async fn fatal_put_errors_fail_at_once() {
    let (c, p, api) = seeded_on_one_cluster(1);
    api.with_release(&c.id, "app-0", |r| {
        r.put_faults.push_back(Fault::Http(400, "CCE.01400001"))
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let r = &report.results[0];
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(api.puts().len(), 1);
    let error = r.error.as_ref().unwrap();
    assert_eq!(error.code.as_deref(), Some("CCE.01400001"));
    assert_eq!(error.request_id.as_deref(), Some("req-fake"));
    assert_eq!(report.exit(), Exit::Failed);
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_stop_after_the_configured_attempts() {
    let mut r = rollout();
    r.retry.attempts = 3;
    let (c, p, api) = seeded_with(r, 1, "v2");
    api.with_release(&c.id, "app-0", |r| {
        for _ in 0..5 {
            r.put_faults.push_back(Fault::Http(503, "CCE.01503001"));
        }
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(report.results[0].outcome, Outcome::Failed);
    assert_eq!(api.puts().len(), 3);
    assert_eq!(report.results[0].attempts.len(), 3);
    assert!(
        report.results[0]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("3 attempts")
    );
}

#[tokio::test(start_paused = true)]
async fn preflight_404_fails_without_a_put() {
    let c = cluster("a", "r1");
    let p = plan(rollout(), vec![ops_on(std::slice::from_ref(&c), 1, "v2")]);
    let api = FakeApi::new(); // not seeded: the release does not exist
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let r = &report.results[0];
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.error.as_ref().unwrap().message.contains("not found"));
    assert!(api.puts().is_empty());
    assert_eq!(api.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_pending_release_is_waited_on_before_the_put() {
    let (c, p, api) = seeded_on_one_cluster(1);
    let start = Instant::now();
    api.with_release(&c.id, "app-0", |r| {
        let mut busy = r.revisions[0].clone();
        busy.version = 2;
        busy.pending = ReleaseStatus::PendingUpgrade;
        busy.settles_at = start + Duration::from_secs(20);
        r.revisions.push(busy);
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    let put = &api.puts()[0];
    assert!(
        put.at >= start + Duration::from_secs(20),
        "{:?}",
        put.at - start
    );
    let r = &report.results[0];
    assert_eq!((r.version_before, r.version_after), (Some(2), Some(3)));
}

#[tokio::test(start_paused = true)]
async fn a_wait_timeout_fails_with_the_last_status_seen() {
    let (_, p, api) = seeded_on_one_cluster(1);
    api.lock().settle = Duration::from_secs(3600);
    let start = Instant::now();
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let r = &report.results[0];
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.final_status, Some(ReleaseStatus::PendingUpgrade));
    let message = &r.error.as_ref().unwrap().message;
    assert!(
        message.contains("timed out") && message.contains("PENDING_UPGRADE"),
        "{message}"
    );
    let waited = Instant::now() - start;
    assert!(
        waited >= Duration::from_secs(60) && waited < Duration::from_secs(62),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deployed_status_from_before_the_change_never_counts() {
    let (c, p, api) = seeded_with(rollout(), 1, "fail-v2");
    // Reads lag: for 10 s GETs still show revision 1, DEPLOYED. The new revision fails.
    let start = Instant::now();
    api.with_release(&c.id, "app-0", |r| {
        r.stale_reads_until = Some(start + Duration::from_secs(10))
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let r = &report.results[0];
    assert_eq!(r.outcome, Outcome::Failed, "{r:#?}");
    assert_eq!(r.final_status, Some(ReleaseStatus::Failed));
    assert_eq!(r.version_after, Some(2));
    assert!(r.polls >= 10);
}

#[tokio::test(start_paused = true)]
async fn rollback_on_failure_restores_the_previous_revision() {
    let c = cluster("a", "r1");
    let mut p = plan(
        rollout(),
        vec![ops_on(std::slice::from_ref(&c), 1, "fail-v2")],
    );
    p.waves[0].operations[0].rollback_on_failure = true;
    let api = FakeApi::new();
    api.seed(&p);
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let r = &report.results[0];
    assert_eq!(r.outcome, Outcome::Failed);
    let rollback = r.rollback.as_ref().expect("rolled back");
    assert_eq!(rollback.outcome, Outcome::Succeeded, "{rollback:#?}");
    assert_eq!(rollback.to_version, 1);
    assert_eq!(rollback.version_after, Some(3));
    assert_eq!(rollback.final_status, Some(ReleaseStatus::Deployed));
    let puts = api.puts();
    assert_eq!(puts.len(), 2);
    let body = puts[1].body.as_ref().unwrap();
    assert_eq!(body.action, Action::Rollback);
    assert_eq!(body.parameters.as_ref().unwrap().release_version, Some(1));
    api.with_release(&c.id, "app-0", |r| {
        assert_eq!(r.current().values, r.revisions[0].values);
        assert_eq!(r.current().version, 3);
    });
}

/// A wait that timed out leaves the release PENDING_*, which the service will not change (409):
/// the rollback waits for it to settle, then goes out.
#[tokio::test(start_paused = true)]
async fn a_rollback_after_a_wait_time_out_waits_for_the_release_to_settle() {
    let c = cluster("a", "r1");
    let mut r = rollout();
    r.wait.timeout = Duration::from_secs(1);
    let mut p = plan(r, vec![ops_on(std::slice::from_ref(&c), 1, "v2")]);
    p.waves[0].operations[0].rollback_on_failure = true;
    let api = FakeApi::new();
    api.seed(&p);
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let r = &report.results[0];
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(
        r.error.as_ref().unwrap().message.starts_with("timed out"),
        "{r:#?}"
    );
    let rollback = r.rollback.as_ref().expect("rolled back");
    // The rollback was accepted (revision 3); its own wait has the same 1 s to see it settle.
    assert_eq!(rollback.version_after, Some(3), "{rollback:#?}");
    let puts = api.puts();
    assert_eq!(puts.len(), 2);
    assert_eq!(puts[1].body.as_ref().unwrap().action, Action::Rollback);
    api.with_release(&c.id, "app-0", |r| {
        assert_eq!(r.current().version, 3);
        assert_eq!(r.current().values, r.revisions[0].values);
    });
}

#[tokio::test(start_paused = true)]
async fn dry_run_sends_dry_run_true_and_does_not_wait() {
    let (_, p, api) = seeded_on_one_cluster(3);
    let options = EngineOptions {
        dry_run: true,
        ..EngineOptions::default()
    };
    let (report, _) = run_plan(&p, api.clone(), options).await;
    ok(&report);
    let puts = api.puts();
    assert_eq!(puts.len(), 3);
    for put in &puts {
        let body = put.body.as_ref().unwrap();
        assert_eq!(body.parameters.as_ref().unwrap().dry_run, Some(true));
        assert_eq!(body.values.as_ref().unwrap()["imageTag"], "v2");
    }
    // Preflight GET and the PUT only: no polls.
    assert_eq!(api.calls().len(), 6);
    assert!(report.results.iter().all(|r| r.dry_run && !r.put_applied));
    assert!(api.lock().releases.values().all(|r| r.revisions.len() == 1));
    // The plan's own bodies are untouched.
    assert_eq!(
        p.waves[0].operations[0]
            .body
            .parameters
            .as_ref()
            .unwrap()
            .dry_run,
        None
    );
}

#[tokio::test(start_paused = true)]
async fn no_wait_and_no_preflight_send_a_single_put() {
    let (_, p, api) = seeded_with(no_preflight_no_wait(), 2, "v2");
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    assert_eq!(api.calls().len(), 2);
    assert!(api.calls().iter().all(|c| c.method == "PUT"));
    assert_eq!(report.results[0].version_before, None);
    assert_eq!(report.results[0].version_after, Some(2));
}

/// Two releases on one cluster, preflight and wait off; new revisions settle at once, so that
/// only a release's content can tell whether a change landed.
fn two_releases_without_preflight() -> (Arc<ClusterTarget>, ExpandedPlan, Arc<FakeApi>) {
    let seeded = seeded_with(no_preflight_no_wait(), 2, "v2");
    seeded.2.lock().settle = Duration::ZERO;
    seeded
}

/// Without preflight there is no revision from before the PUT: the release's content decides.
#[tokio::test(start_paused = true)]
async fn without_preflight_an_ambiguous_put_is_reconciled_from_the_release_content() {
    let (c, p, api) = two_releases_without_preflight();
    api.with_release(&c.id, "app-0", |r| {
        r.put_faults.push_back(Fault::AppliedThen500)
    });
    api.with_release(&c.id, "app-1", |r| {
        r.put_faults.push_back(Fault::ResetBeforeApply)
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    assert_eq!(api.with_release(&c.id, "app-0", |r| r.applied_puts), 1);
    assert!(report.results[0].reconciled);
    assert_eq!(report.results[0].put_attempts, 1);
    assert_eq!(api.with_release(&c.id, "app-1", |r| r.applied_puts), 1);
    assert!(!report.results[1].reconciled);
    assert_eq!(report.results[1].put_attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn resume_without_a_revision_sends_only_what_did_not_land() {
    let (c, p, api) = two_releases_without_preflight();
    // The killed run's PUT for app-0 landed; app-1's intent was written but its PUT never left.
    api.with_release(&c.id, "app-0", |r| {
        let mut applied = r.revisions[0].clone();
        applied.version = 2;
        applied.values = serde_json::json!({"imageTag": "v2"});
        r.revisions.push(applied);
    });
    let in_flight = PriorState::InFlight {
        version_before: None,
    };
    let options = EngineOptions {
        resume: HashMap::from([(0, in_flight.clone()), (1, in_flight)]),
        ..EngineOptions::default()
    };
    let (report, _) = run_plan(&p, api.clone(), options).await;
    ok(&report);
    assert_eq!(api.with_release(&c.id, "app-0", |r| r.applied_puts), 0);
    assert!(report.results[0].reconciled);
    assert_eq!(api.with_release(&c.id, "app-1", |r| r.applied_puts), 1);
    assert_eq!(report.results[1].put_attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn concurrency_and_per_cluster_caps_are_never_exceeded() {
    let clusters: Vec<_> = (0..4).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut r = rollout();
    r.concurrency = 5;
    r.per_cluster = 2;
    let p = plan(r, vec![ops_on(&clusters, 10, "v2")]);
    let api = FakeApi::new();
    api.seed(&p);
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    assert_eq!(max_overlap(&report.results, |_| true), 5);
    for c in &clusters {
        assert_eq!(
            max_overlap(&report.results, |r| r.cluster_id == c.id),
            2,
            "{}",
            c.name
        );
    }
    // Requests agree: never more than 2 operations' requests in flight on one cluster.
    let calls = api.calls();
    for c in &clusters {
        let mut edges: Vec<(Instant, i32)> = calls
            .iter()
            .filter(|call| call.cluster_id == c.id)
            .flat_map(|call| [(call.at, 1), (call.done.unwrap(), -1)])
            .collect();
        edges.sort();
        let mut now = 0;
        for (_, d) in edges {
            now += d;
            assert!(now <= 2);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_cluster_does_not_stall_the_others() {
    let slow = cluster("slow", "r1");
    let fast: Vec<_> = (0..2).map(|i| cluster(&format!("fast{i}"), "r1")).collect();
    let mut r = rollout();
    r.concurrency = 4;
    r.per_cluster = 2;
    let mut ops = ops_on(std::slice::from_ref(&slow), 6, "v2");
    ops.extend(ops_on(&fast, 10, "v2"));
    let p = plan(r, vec![ops]);
    let api = FakeApi::new();
    api.seed(&p);
    api.lock()
        .latency
        .insert(slow.id.clone(), Duration::from_secs(20));
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    let end = |r: &OperationResult| r.started_at + r.duration;
    let fast_done = report
        .results
        .iter()
        .filter(|r| r.cluster_id != slow.id)
        .map(end)
        .max()
        .unwrap();
    let slow_first_done = report
        .results
        .iter()
        .filter(|r| r.cluster_id == slow.id)
        .map(end)
        .min()
        .unwrap();
    // The fast clusters' 20 operations all finish while the slow cluster's first two are in flight.
    assert!(
        fast_done < slow_first_done,
        "{fast_done:?} vs {slow_first_done:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn waves_run_in_order_with_soak_between_them() {
    let clusters: Vec<_> = (0..3).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut p = plan(
        rollout(),
        vec![
            ops_on(&clusters[..1], 2, "v2"),
            ops_on(&clusters[1..], 3, "v2"),
        ],
    );
    p.waves[0].soak = Duration::from_secs(30);
    let api = FakeApi::new();
    api.seed(&p);
    let (report, events) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    let calls = api.calls();
    let first_wave_end = calls
        .iter()
        .filter(|c| c.cluster_id == clusters[0].id)
        .map(|c| c.done.unwrap())
        .max()
        .unwrap();
    let second_wave_start = calls
        .iter()
        .filter(|c| c.cluster_id != clusters[0].id)
        .map(|c| c.at)
        .min()
        .unwrap();
    assert!(second_wave_start >= first_wave_end + Duration::from_secs(30));
    assert!(second_wave_start < first_wave_end + Duration::from_secs(31));
    assert!(events.iter().any(|e| matches!(e, Event::Soaking { after_wave: 0, duration } if *duration == Duration::from_secs(30))));
    let waves: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::WaveStarted { wave, .. } => Some(*wave),
            _ => None,
        })
        .collect();
    assert_eq!(waves, [0, 1]);
}

#[tokio::test(start_paused = true)]
async fn exceeding_the_budget_halts_and_skips_the_rest_unsent() {
    let c = cluster("a", "r1");
    let mut r = rollout();
    r.concurrency = 1;
    r.max_failures = FailureBudget::Count(1);
    let mut ops = ops_on(std::slice::from_ref(&c), 2, "v2");
    ops.extend((2..4).map(|i| (c.clone(), format!("app-{i}"), "fail-v2")));
    ops.extend((4..8).map(|i| (c.clone(), format!("app-{i}"), "v2")));
    let p = plan(r, vec![ops[..6].to_vec(), ops[6..].to_vec()]);
    let api = FakeApi::new();
    api.seed(&p);
    let (report, events) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let outcomes: Vec<Outcome> = report.results.iter().map(|r| r.outcome).collect();
    use Outcome::*;
    assert_eq!(
        outcomes,
        [
            Succeeded, Succeeded, Failed, Failed, Skipped, Skipped, Skipped, Skipped
        ]
    );
    let touched: std::collections::HashSet<String> =
        api.calls().into_iter().map(|c| c.release).collect();
    for r in &report.results[4..] {
        assert!(
            !touched.contains(&r.release),
            "{} was sent a request",
            r.release
        );
        assert!(
            r.skip_reason
                .as_deref()
                .unwrap()
                .contains("2 failed of 8 (max 1)"),
            "{:?}",
            r.skip_reason
        );
    }
    assert!(report.halted.is_some());
    assert_eq!(report.exit(), Exit::Failed);
    assert!(events.iter().any(|e| matches!(e, Event::Halted { .. })));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::WaveStarted { wave: 1, .. }))
    );
}

#[tokio::test(start_paused = true)]
async fn a_wave_percentage_budget_halts_before_the_next_wave() {
    let clusters: Vec<_> = (0..10).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut first: Ops = ops_on(&clusters, 1, "v2");
    first[3].2 = "fail-v2";
    let mut p = plan(rollout(), vec![first.clone(), ops_on(&clusters, 1, "v3")]);
    // 1 failure of 10 is within 10%: the next wave runs.
    p.waves[0].max_failures = Some(FailureBudget::Percent(10.0));
    let api = FakeApi::new();
    api.seed(&p);
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(report.summary.failed, 1);
    assert_eq!(report.summary.succeeded, 10 + 9 - 1 + 1);
    assert!(report.halted.is_none());

    // 2 failures of 10 exceed 10%: the second wave is skipped.
    first[4].2 = "fail-v2";
    let mut p = plan(rollout(), vec![first, ops_on(&clusters, 1, "v3")]);
    p.waves[0].max_failures = Some(FailureBudget::Percent(10.0));
    let api = FakeApi::new();
    api.seed(&p);
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(report.summary.failed, 2);
    assert!(
        report
            .halted
            .as_deref()
            .unwrap()
            .contains("wave \"wave-0\"")
    );
    assert!(
        report.results[10..]
            .iter()
            .all(|r| r.outcome == Outcome::Skipped)
    );
    assert!(
        api.puts()
            .iter()
            .all(|c| c.body.as_ref().unwrap().values.as_ref().unwrap()["imageTag"] != "v3")
    );
}

#[tokio::test(start_paused = true)]
async fn cancellation_marks_the_rest_cancelled_and_sends_nothing_after() {
    let clusters: Vec<_> = (0..4).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut r = rollout();
    r.concurrency = 2;
    let p = plan(r, vec![ops_on(&clusters, 5, "v2")]);
    let api = FakeApi::new();
    api.seed(&p);
    let cancel = tokio_util::sync::CancellationToken::new();
    let options = EngineOptions {
        cancel: cancel.clone(),
        ..EngineOptions::default()
    };
    let start = Instant::now();
    let at = start + Duration::from_millis(5500);
    tokio::spawn(async move {
        tokio::time::sleep_until(at).await;
        cancel.cancel();
    });
    let (report, events) = run_plan(&p, api.clone(), options).await;
    let calls = api.calls();
    assert!(calls.iter().all(|c| c.at <= at));
    assert!(
        calls.iter().all(|c| c.done.is_some()),
        "in-flight requests finish"
    );
    assert!(report.cancelled);
    assert_eq!(report.exit(), Exit::Interrupted);
    assert!(report.summary.succeeded >= 2);
    assert_eq!(report.summary.succeeded + report.summary.cancelled, 20);
    let unstarted = report
        .results
        .iter()
        .filter(|r| r.skip_reason.as_deref() == Some("interrupted before it started"))
        .count();
    assert!(unstarted >= 10);
    // Those interrupted while waiting were applied: a resume must reconcile them, not resend.
    let interrupted_waits: Vec<&OperationResult> = report
        .results
        .iter()
        .filter(|r| r.skip_reason.as_deref() == Some("interrupted"))
        .collect();
    assert!(!interrupted_waits.is_empty());
    assert!(
        interrupted_waits
            .iter()
            .all(|r| r.put_sent && r.put_applied)
    );
    assert!(events.iter().any(|e| matches!(e, Event::Cancelled)));
    // It ends promptly: in-flight polls are abandoned, nothing waits for the wait timeout.
    assert!(Instant::now() - at < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn resume_skips_what_succeeded_and_reconciles_what_was_in_flight() {
    let (c, p, api) = seeded_on_one_cluster(3);
    // app-1's PUT went through before the crash; app-2's never left.
    let start = Instant::now();
    api.with_release(&c.id, "app-1", |r| {
        let mut applied = r.revisions[0].clone();
        applied.version = 2;
        applied.values = serde_json::json!({"imageTag": "v2"});
        applied.settles_at = start + Duration::from_secs(3);
        applied.pending = ReleaseStatus::PendingUpgrade;
        r.revisions.push(applied);
        r.applied_puts = 1;
    });
    let mut resume = HashMap::new();
    resume.insert(0, PriorState::AlreadySucceeded(None));
    resume.insert(
        1,
        PriorState::InFlight {
            version_before: Some(1),
        },
    );
    resume.insert(
        2,
        PriorState::InFlight {
            version_before: Some(1),
        },
    );
    let options = EngineOptions {
        resume,
        ..EngineOptions::default()
    };
    let (report, _) = run_plan(&p, api.clone(), options).await;
    ok(&report);
    let calls = api.calls();
    assert!(
        calls.iter().all(|call| call.release != "app-0"),
        "a succeeded operation is not even read"
    );
    assert!(report.results[0].from_journal);
    let app1: Vec<&str> = calls
        .iter()
        .filter(|c| c.release == "app-1")
        .map(|c| c.method)
        .collect();
    assert!(app1.iter().all(|m| *m == "GET"));
    assert!(report.results[1].reconciled);
    assert_eq!(api.with_release(&c.id, "app-1", |r| r.applied_puts), 1);
    let app2: Vec<&str> = calls
        .iter()
        .filter(|c| c.release == "app-2")
        .map(|c| c.method)
        .collect();
    assert_eq!(app2[..2], ["GET", "PUT"]);
    assert_eq!(api.with_release(&c.id, "app-2", |r| r.applied_puts), 1);
    assert_eq!(report.summary.from_journal, 1);
}

/// Records when each PUT intent became durable; can be told to fail.
#[derive(Default)]
struct SlowJournal {
    durable: Mutex<Vec<(String, bool, Instant)>>,
    finished: Mutex<Vec<(usize, Outcome)>>,
    fail: bool,
}

impl Journal for SlowJournal {
    fn before_put<'a>(&'a self, intent: PutIntent<'a>) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if self.fail {
                return Err(JournalError("journal: disk full".into()));
            }
            self.durable.lock().unwrap().push((
                intent.operation.release.clone(),
                intent.rollback,
                Instant::now(),
            ));
            Ok(())
        })
    }

    fn finished(&self, result: &OperationResult) -> Result<(), JournalError> {
        self.finished
            .lock()
            .unwrap()
            .push((result.index, result.outcome));
        Ok(())
    }

    fn sync(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test(start_paused = true)]
async fn no_put_leaves_before_its_journal_line_is_durable() {
    let c = cluster("a", "r1");
    let mut p = plan(
        rollout(),
        vec![
            ops_on(std::slice::from_ref(&c), 2, "v2"),
            ops_on(std::slice::from_ref(&c), 0, "v2"),
        ],
    );
    p.waves[0].operations[1].body = {
        let mut body = (*p.waves[0].operations[1].body).clone();
        body.values
            .as_mut()
            .unwrap()
            .insert("imageTag".into(), "fail-x".into());
        Arc::new(body)
    };
    p.waves[0].operations[1].rollback_on_failure = true;
    let api = FakeApi::new();
    api.seed(&p);
    let journal = Arc::new(SlowJournal::default());
    let options = EngineOptions {
        journal: Some(journal.clone()),
        ..EngineOptions::default()
    };
    let (report, _) = run_plan(&p, api.clone(), options).await;
    assert_eq!(
        report.results[1].rollback.as_ref().unwrap().outcome,
        Outcome::Succeeded
    );
    let durable = journal.durable.lock().unwrap().clone();
    let puts = api.puts();
    assert_eq!(durable.len(), 3, "two changes and one rollback");
    assert_eq!(puts.len(), 3);
    for put in &puts {
        let is_rollback = put.body.as_ref().unwrap().action == Action::Rollback;
        let line = durable
            .iter()
            .find(|(release, rollback, _)| *release == put.release && *rollback == is_rollback)
            .unwrap();
        assert!(line.2 <= put.at);
    }
    let mut finished = journal.finished.lock().unwrap().clone();
    finished.sort_by_key(|f| f.0);
    assert_eq!(finished, [(0, Outcome::Succeeded), (1, Outcome::Failed)]);

    // A journal that cannot write: nothing is sent.
    let api = FakeApi::new();
    api.seed(&p);
    let options = EngineOptions {
        journal: Some(Arc::new(SlowJournal {
            fail: true,
            ..SlowJournal::default()
        })),
        ..EngineOptions::default()
    };
    let (report, _) = run_plan(&p, api.clone(), options).await;
    assert!(api.puts().is_empty());
    assert!(report.results.iter().all(|r| r.outcome == Outcome::Failed));
    assert!(
        report.results[0]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("disk full")
    );
}

/// Queues each intent when told and makes it durable 50 ms later, like a group commit.
#[derive(Default)]
struct RecordingJournal {
    /// When each operation's intent was queued, by operation index.
    queued: Mutex<HashMap<usize, Instant>>,
}

const FSYNC: Duration = Duration::from_millis(50);

impl Journal for RecordingJournal {
    fn before_put<'a>(&'a self, intent: PutIntent<'a>) -> BoxFuture<'a, Result<(), JournalError>> {
        let queued = Instant::now();
        let earlier = self
            .queued
            .lock()
            .unwrap()
            .insert(intent.operation.index, queued);
        assert!(earlier.is_none(), "an intent journaled twice");
        Box::pin(async move {
            tokio::time::sleep_until(queued + FSYNC).await;
            Ok(())
        })
    }

    fn finished(&self, _: &OperationResult) -> Result<(), JournalError> {
        Ok(())
    }

    fn sync(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test(start_paused = true)]
async fn without_preflight_intents_are_journaled_ahead_and_each_put_still_waits_for_its_own() {
    let clusters: Vec<_> = (0..6).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut r = no_preflight_no_wait();
    r.concurrency = 2;
    let p = plan(r, vec![ops_on(&clusters, 1, "v2")]);
    let api = FakeApi::new();
    api.seed(&p);
    let journal = Arc::new(RecordingJournal::default());
    let options = EngineOptions {
        journal: Some(journal.clone()),
        ..EngineOptions::default()
    };
    let (report, _) = run_plan(&p, api.clone(), options).await;
    ok(&report);
    let queued = journal.queued.lock().unwrap().clone();
    assert_eq!(queued.len(), 6, "one intent per operation: {queued:?}");
    for put in api.puts() {
        let op = p
            .operations()
            .find(|op| op.cluster.id == put.cluster_id && op.release == put.release)
            .unwrap();
        assert!(
            put.at >= queued[&op.index] + FSYNC,
            "a PUT left before its intent was durable"
        );
    }
    let run_start = Instant::now() - report.duration;
    let ahead = report
        .results
        .iter()
        .filter(|r| queued[&r.index] < run_start + r.started_at)
        .count();
    assert!(
        ahead >= 3,
        "later operations found their intent already queued"
    );
    // Their fsync overlapped the requests before them: 3 rounds of one request, not of
    // fsync + request.
    assert!(report.duration < 3 * (FSYNC + Duration::from_millis(10)));
}

#[tokio::test(start_paused = true)]
async fn every_request_to_an_endpoint_is_paced_gets_included() {
    let clusters: Vec<_> = (0..5).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let other = cluster("other", "r2");
    let mut r = rollout();
    r.rate = Rate::PerSecond(10.0);
    r.burst = 3;
    r.concurrency = 20;
    r.per_cluster = 4;
    let mut ops = ops_on(&clusters, 8, "v2");
    ops.extend(ops_on(std::slice::from_ref(&other), 4, "v2"));
    let p = plan(r, vec![ops]);
    let api = FakeApi::new();
    api.seed(&p);
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    let calls = api.calls();
    let mut r1: Vec<Instant> = calls
        .iter()
        .filter(|c| c.cluster_id != other.id)
        .map(|c| c.at)
        .collect();
    r1.sort();
    assert!(r1.len() > 120);
    assert!(super::pace::tests::max_in_window(&r1, Duration::from_millis(1001)) <= 13);
    let span = (*r1.last().unwrap() - r1[0]).as_secs_f64();
    let achieved = (r1.len() - 3) as f64 / span;
    assert!(achieved > 9.0, "{achieved}");
    // The other region has its own limiter: its 4 operations are not queued behind region r1.
    let other_done = calls
        .iter()
        .filter(|c| c.cluster_id == other.id)
        .map(|c| c.done.unwrap())
        .max()
        .unwrap();
    assert!(other_done < r1[0] + Duration::from_secs(15));
}

/// Runs many single-PUT operations against a token bucket at `limit` per second.
async fn against_gateway(
    limit: f64,
    message: &str,
    retry_after: Option<Duration>,
) -> (RunReport, Arc<FakeApi>) {
    let clusters: Vec<_> = (0..40).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut r = rollout();
    r.rate = Rate::PerSecond(100.0);
    r.burst = 10;
    r.concurrency = 64;
    r.per_cluster = 4;
    r.preflight = false;
    r.wait.enabled = false;
    r.retry.attempts = 20;
    let p = plan(r, vec![ops_on(&clusters, 30, "v2")]);
    let api = FakeApi::new();
    api.seed(&p);
    api.lock().default_latency = Duration::from_millis(50);
    api.lock().bucket = Some(Bucket {
        rate: limit,
        burst: 5.0,
        tokens: 5.0,
        last: Instant::now(),
        message: message.to_owned(),
        retry_after,
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    (report, api)
}

fn settled_rate(api: &FakeApi, after: Duration) -> f64 {
    let calls = api.calls();
    let start = calls[0].at + after;
    let sent: Vec<Instant> = calls
        .iter()
        .filter(|c| c.at >= start)
        .map(|c| c.at)
        .collect();
    sent.len() as f64 / (*sent.last().unwrap() - start).as_secs_f64()
}

#[tokio::test(start_paused = true)]
async fn aimd_settles_near_an_unknown_gateway_limit_with_few_429s() {
    let (report, api) = against_gateway(
        20.0,
        "The throttling threshold has been reached",
        Some(Duration::from_secs(1)),
    )
    .await;
    ok(&report);
    let calls = api.calls().len();
    let throttled = api.lock().throttled;
    assert_eq!(calls - throttled, 1200);
    assert!(
        throttled * 100 <= calls * 5,
        "{throttled} of {calls} throttled"
    );
    let rate = settled_rate(&api, Duration::from_secs(10));
    assert!(
        (15.0..=21.0).contains(&rate),
        "settled at {rate}/s against 20/s"
    );
    assert_eq!(report.summary.throttled, throttled);
}

#[tokio::test(start_paused = true)]
async fn a_stated_apig_0308_limit_is_honoured_per_minute() {
    let message = "The throttling threshold has been reached: policy user over ratelimit,limit:1200,time:1 minute";
    let (report, api) = against_gateway(20.0, message, None).await;
    ok(&report);
    let calls = api.calls().len();
    let throttled = api.lock().throttled;
    assert!(
        throttled * 100 <= calls * 3,
        "{throttled} of {calls} throttled"
    );
    let rate = settled_rate(&api, Duration::from_secs(5));
    assert!(
        (17.0..=20.0).contains(&rate),
        "settled at {rate}/s against 20/s"
    );
}

#[tokio::test(start_paused = true)]
async fn the_run_future_is_send_and_many_operations_schedule_quickly() {
    fn assert_send<T: Send>(_: &T) {}
    let clusters: Vec<_> = (0..500).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut r = no_preflight_no_wait();
    r.concurrency = 256;
    let p = plan(r, vec![ops_on(&clusters, 10, "v2")]);
    let api = FakeApi::new();
    api.seed(&p);
    api.lock().default_latency = Duration::ZERO;
    let (tx, mut rx) = mpsc::channel(1024);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let future = run(&p, api.clone(), EngineOptions::default(), tx);
    assert_send(&future);
    let cpu = std::time::Instant::now();
    let report = future.await;
    drain.await.unwrap();
    ok(&report);
    assert_eq!(api.puts().len(), 5000);
    // Debug build, shared machine: a generous bound that still catches quadratic scheduling.
    assert!(
        cpu.elapsed() < Duration::from_secs(10),
        "{:?}",
        cpu.elapsed()
    );
}
