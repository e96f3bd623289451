//! The requests of one operation: preflight, PUT, polls, their retries and fatal errors, dry runs.

use super::*;

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
    assert_eq!(report.verdict(), Verdict::Succeeded);
    assert_eq!(
        api.release(&c.id, "app-0").current().unwrap().values["imageTag"],
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
async fn failed_gets_are_retried_and_a_fatal_poll_ends_the_wait() {
    let (c, p, api) = seeded_on_one_cluster(2);
    // app-0: the preflight GET meets a 503 and a cut connection, then goes through.
    api.script(&c.id, "app-0", |r| {
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
    api.script(&c.id, "app-1", |r| {
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
    api.script(&c.id, "app-0", |r| {
        r.put_faults.push_back(Fault::Http(400, "CCE.01400001"))
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let r = &report.results[0];
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(api.puts().len(), 1);
    let error = r.error.as_ref().unwrap();
    assert_eq!(error.code.as_deref(), Some("CCE.01400001"));
    assert_eq!(error.request_id.as_deref(), Some("req-fake"));
    assert_eq!(report.verdict(), Verdict::Failed);
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_stop_after_the_configured_attempts() {
    let mut r = rollout();
    r.retry.attempts = 3;
    let (c, p, api) = seeded_with(r, 1, "v2");
    api.script(&c.id, "app-0", |r| {
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
    assert!(
        api.lock()
            .store
            .snapshot()
            .releases
            .iter()
            .all(|r| r.history.len() == 1)
    );
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
