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

/// Another pipeline's change made the release busy before this PUT, with preflight off: the
/// service refuses it (`Update release is forbidden`), the operation waits for the release to
/// settle, and sends it again, judged against the revision it settled at.
#[tokio::test(start_paused = true)]
async fn a_put_refused_by_a_busy_release_waits_for_it_to_settle_and_goes_out_again() {
    let mut r = rollout();
    r.preflight = false;
    let (c, p, api) = seeded_with(r, 1, "v2");
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
    let puts = api.puts();
    assert_eq!(puts.len(), 2, "{puts:#?}");
    assert!(
        puts[1].at >= start + Duration::from_secs(20),
        "{:?}",
        puts[1].at - start
    );
    let r = &report.results[0];
    assert_eq!(r.put_attempts, 2);
    assert_eq!((r.version_before, r.version_after), (Some(2), Some(3)));
    let refused = &r.attempts[0];
    assert_eq!(refused.status, Some(409));
    assert!(
        refused
            .error
            .as_deref()
            .unwrap()
            .contains(crate::cce::error::BUSY_PHRASE),
        "{refused:#?}"
    );
}

/// A second pipeline changed the release, to what this plan wants, between the preflight and
/// the PUT: the busy answer is waited out, the release judged again, and found as planned.
#[tokio::test(start_paused = true)]
async fn a_release_made_as_planned_by_another_change_while_busy_ends_unchanged() {
    let (c, p, api) = seeded_on_one_cluster(1);
    let other = p.waves[0].operations[0].body.as_ref().clone();
    api.script(&c.id, "app-0", |s| {
        s.put_faults.push_back(Fault::ChangedFirst(Box::new(other)))
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let r = &report.results[0];
    assert_eq!(r.outcome, Outcome::Unchanged, "{r:#?}");
    assert_eq!(r.put_attempts, 1);
    assert_eq!(r.version_before, Some(2));
    assert!(
        r.note.as_deref().unwrap().starts_with("unchanged"),
        "{r:#?}"
    );
    // Only the other pipeline's change applied.
    assert_eq!(api.release(&c.id, "app-0").applied_puts, 1);
}

/// Busy whatever the status, never fatal on the first answer; given up only once the retry
/// budget is spent, and then the error says busy.
#[tokio::test(start_paused = true)]
async fn a_release_busy_past_the_retry_budget_fails_saying_busy() {
    for status in [400, 403, 409] {
        let (c, p, api) = seeded_on_one_cluster(1);
        let attempts = p.rollout.retry.attempts;
        api.script(&c.id, "app-0", |s| {
            for _ in 0..attempts {
                s.put_faults.push_back(Fault::Busy(status));
            }
        });
        let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
        let r = &report.results[0];
        assert_eq!(r.outcome, Outcome::Failed, "{status}: {r:#?}");
        assert_eq!(r.put_attempts, attempts, "{status}");
        let error = r.error.as_ref().unwrap();
        assert!(error.message.starts_with("busy:"), "{status}: {error:?}");
        assert_eq!(error.status, Some(status));
        assert_eq!(
            error.code.as_deref(),
            Some(crate::sim::store::codes::RELEASE_BUSY)
        );

        // One busy answer fewer than the budget: the last PUT goes through.
        let (c, p, api) = seeded_on_one_cluster(1);
        api.script(&c.id, "app-0", |s| {
            for _ in 1..attempts {
                s.put_faults.push_back(Fault::Busy(status));
            }
        });
        let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
        ok(&report);
        assert_eq!(report.results[0].put_attempts, attempts, "{status}");
    }
}

/// A rollback refused by a busy release waits for it too, then goes out.
#[tokio::test(start_paused = true)]
async fn a_rollback_refused_by_a_busy_release_goes_out_once_it_settles() {
    let c = cluster("a", "r1");
    let mut p = plan(
        rollout(),
        vec![ops_on(std::slice::from_ref(&c), 1, "fail-v2")],
    );
    p.waves[0].operations[0].rollback_on_failure = true;
    let api = FakeApi::new();
    api.seed(&p);
    api.script(&c.id, "app-0", |s| {
        s.put_faults.push_back(Fault::Pass);
        s.put_faults.push_back(Fault::Busy(400));
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let r = &report.results[0];
    let rollback = r.rollback.as_ref().expect("rolled back");
    assert_eq!(rollback.outcome, Outcome::Succeeded, "{rollback:#?}");
    assert_eq!(api.puts().len(), 3);
    let release = api.release(&c.id, "app-0");
    assert_eq!(release.current().unwrap().values, release.history[0].values);
}
