//! Waiting for releases to settle: before a change, after it, on time-out, and rolling back a failure.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_pending_release_is_waited_on_before_the_put() {
    let (c, p, api) = seeded_on_one_cluster(1);
    let start = Instant::now();
    api.edit_release(&c.id, "app-0", |r| {
        let busy = pending_revision(
            &r.history[0],
            2,
            ReleaseStatus::PendingUpgrade,
            Duration::from_secs(20),
        );
        r.history.push(busy);
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
    api.lock().store.set_settle(Duration::from_secs(3600));
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
    api.script(&c.id, "app-0", |r| {
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
    let release = api.release(&c.id, "app-0");
    let current = release.current().unwrap();
    assert_eq!(current.values, release.history[0].values);
    assert_eq!(current.version, 3);
    // The rollback's PUT is the rollback's: the change was sent once.
    assert_eq!(r.put_attempts, 1);
    let change: Vec<Phase> = r.change_attempts().map(|a| a.phase).collect();
    assert_eq!(change, [Phase::Put]);
    let rollback: Vec<Phase> = r.rollback_attempts().map(|a| a.phase).collect();
    assert_eq!(rollback, [Phase::RollbackPut]);
    assert!(!r.retried(), "a rollback is not a retry of the change");
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
    let release = api.release(&c.id, "app-0");
    let current = release.current().unwrap();
    assert_eq!(current.version, 3);
    assert_eq!(current.values, release.history[0].values);
}
