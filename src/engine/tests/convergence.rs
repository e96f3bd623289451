//! Convergence through whole runs: unchanged releases get no PUT, masked keys need `--force`,
//! rollbacks compare with the history.

use serde_json::{Map, Value, json};

use super::*;

fn forced() -> EngineOptions {
    EngineOptions {
        force: true,
        ..EngineOptions::default()
    }
}

/// Gives every operation of `plan` this body (and its action).
fn with_body(plan: &mut ExpandedPlan, body: UpdateReleaseBody) {
    let body = Arc::new(body);
    for wave in &mut plan.waves {
        for op in &mut wave.operations {
            op.action = body.action;
            op.body = body.clone();
        }
    }
}

fn values(v: Value) -> Option<Map<String, Value>> {
    v.as_object().cloned()
}

/// Four releases on clusters in two regions (two endpoints), all upgraded to `v2`.
fn fleet() -> ExpandedPlan {
    let a = cluster("a", "r1");
    let b = cluster("b", "r1");
    let c = cluster("c", "r2");
    plan(
        rollout(),
        vec![vec![
            (a.clone(), "web".into(), "v2"),
            (a, "api".into(), "v2"),
            (b, "web".into(), "v2"),
            (c, "web".into(), "v2"),
        ]],
    )
}

#[tokio::test(start_paused = true)]
async fn a_second_run_of_the_same_plan_sends_zero_puts() {
    let p = fleet();
    let api = FakeApi::new();
    api.seed(&p);

    let first = report_of_run(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(first.summary.succeeded, 4, "{:#?}", first.results);
    assert_eq!(api.puts().len(), 4);
    for r in &first.results {
        assert_eq!(r.convergence, Some(Convergence::Change));
        assert_eq!(
            r.note.as_deref(),
            Some("change: values: imageTag changed"),
            "{r:#?}"
        );
    }
    // One chart lookup per endpoint, however many operations share it.
    let mut lookups = api.lock().chart_lookups.clone();
    lookups.sort();
    assert_eq!(
        lookups,
        [
            (
                "https://cce.r1.example".to_owned(),
                FAKE_CHART_ID.to_owned()
            ),
            (
                "https://cce.r2.example".to_owned(),
                FAKE_CHART_ID.to_owned()
            ),
        ]
    );

    let second = report_of_run(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(api.puts().len(), 4, "the second run sent a PUT");
    assert_eq!(second.summary.unchanged, 4);
    assert_eq!(second.summary.succeeded, 0);
    assert!(second.summary.all_succeeded());
    assert_eq!(second.verdict(), Verdict::Succeeded);
    for r in &second.results {
        assert_eq!(r.outcome, Outcome::Unchanged);
        assert_eq!(r.convergence, Some(Convergence::Unchanged));
        assert_eq!(
            r.note.as_deref(),
            Some("unchanged: chart and values already as planned")
        );
        assert_eq!(r.version_before, Some(2));
        assert_eq!(r.final_status, Some(ReleaseStatus::Deployed));
        assert!(!r.put_sent && r.put_attempts == 0);
    }
    assert_eq!(
        api.lock().chart_lookups.len(),
        4,
        "a new run looks charts up again"
    );
}

#[tokio::test(start_paused = true)]
async fn force_sends_every_put_without_looking_anything_up() {
    let p = fleet();
    let api = FakeApi::new();
    api.seed(&p);
    report_of_run(&p, api.clone(), EngineOptions::default()).await;
    let lookups = api.lock().chart_lookups.len();
    let report = report_of_run(&p, api.clone(), forced()).await;
    assert_eq!(report.summary.succeeded, 4);
    assert_eq!(api.puts().len(), 8);
    assert_eq!(api.lock().chart_lookups.len(), lookups);
    assert!(
        report
            .results
            .iter()
            .all(|r| r.convergence.is_none() && r.note.is_none())
    );
}

#[tokio::test(start_paused = true)]
async fn a_masked_secret_key_is_unknown_and_unchanged_without_force() {
    let mut p = fleet();
    with_body(
        &mut p,
        UpdateReleaseBody {
            chart_id: Some(FAKE_CHART_ID.into()),
            action: Action::Upgrade,
            parameters: None,
            values: values(json!({"imageTag": "v1", "dbPassword": "hunter2"})),
        },
    );
    let api = FakeApi::new();
    api.seed(&p);
    api.edit_every_release(|release| {
        release.history[0].values =
            values(json!({"imageTag": "v1", "dbPassword": "hunter2"})).unwrap();
    });

    let report = report_of_run(&p, api.clone(), EngineOptions::default()).await;
    assert!(api.puts().is_empty());
    assert_eq!(report.summary.unchanged, 4);
    for r in &report.results {
        assert_eq!(r.outcome, Outcome::Unchanged);
        assert_eq!(r.convergence, Some(Convergence::Unknown));
        let note = r.note.as_deref().unwrap();
        assert!(
            note.contains("dbPassword") && note.contains("--force"),
            "{note}"
        );
        assert!(!note.contains("hunter2"));
    }

    let report = report_of_run(&p, api.clone(), forced()).await;
    assert_eq!(api.puts().len(), 4);
    assert!(
        report
            .results
            .iter()
            .all(|r| r.outcome == Outcome::Succeeded)
    );
}

#[tokio::test(start_paused = true)]
async fn a_masked_key_does_not_hide_another_difference() {
    let mut p = fleet();
    with_body(
        &mut p,
        UpdateReleaseBody {
            chart_id: Some(FAKE_CHART_ID.into()),
            action: Action::Upgrade,
            parameters: None,
            values: values(json!({"imageTag": "v2", "dbPassword": "hunter2"})),
        },
    );
    let api = FakeApi::new();
    api.seed(&p);
    api.edit_every_release(|release| {
        release.history[0].values =
            values(json!({"imageTag": "v1", "dbPassword": "hunter2"})).unwrap();
    });
    let report = report_of_run(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(api.puts().len(), 4);
    let note = report.results[0].note.as_deref().unwrap();
    assert_eq!(
        note,
        "change: values: imageTag changed; secret keys dbPassword masked by the API, not compared"
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_chart_version_is_a_change_even_with_equal_values() {
    let p = fleet();
    let api = FakeApi::new();
    api.seed(&p);
    report_of_run(&p, api.clone(), EngineOptions::default()).await;
    {
        let store = &mut api.lock().store;
        let chart = store.chart(FAKE_CHART_ID).unwrap();
        store.insert_chart(Chart {
            version: "1.1.0".into(),
            ..chart
        });
    }
    let report = report_of_run(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(api.puts().len(), 8);
    assert_eq!(
        report.results[0].note.as_deref(),
        Some("change: chart app 1.0.0 -> app 1.1.0")
    );
    // The upgrade moved the releases to the new chart: converged again.
    let third = report_of_run(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(api.puts().len(), 8);
    assert_eq!(third.summary.unchanged, 4);
}

#[tokio::test(start_paused = true)]
async fn a_chart_that_cannot_be_looked_up_means_the_put_is_sent() {
    let p = fleet();
    let api = FakeApi::new();
    api.seed(&p);
    report_of_run(&p, api.clone(), EngineOptions::default()).await;
    // Only the lookup fails: the store would still take an upgrade naming the chart.
    api.lock()
        .unresolvable_charts
        .insert(FAKE_CHART_ID.to_owned());
    let lookups_before = api.lock().chart_lookups.len();
    let report = report_of_run(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(api.puts().len(), 8);
    let note = report.results[0].note.as_deref().unwrap();
    assert!(
        note.starts_with(
            "change: chart chart-1 could not be resolved: ShowAutopilotChart: HTTP 404"
        ),
        "{note}"
    );
    // A 404 is fatal: each endpoint's lookup was sent once, not retried; the failed lookup
    // is not cached, so later operations on the endpoint ask again.
    assert!(
        report.results[0]
            .attempts
            .iter()
            .any(|a| a.status == Some(404))
    );
    assert_eq!(
        api.lock().chart_lookups.len() - lookups_before,
        report.results.len(),
        "one lookup per operation: none retried, none cached"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_decides_but_still_sends_every_put() {
    let p = fleet();
    let api = FakeApi::new();
    api.seed(&p);
    report_of_run(&p, api.clone(), EngineOptions::default()).await;
    let options = EngineOptions {
        dry_run: true,
        ..EngineOptions::default()
    };
    let report = report_of_run(&p, api.clone(), options).await;
    assert_eq!(api.puts().len(), 8);
    for r in &report.results {
        assert_eq!(r.outcome, Outcome::Succeeded);
        assert_eq!(r.convergence, Some(Convergence::Unchanged));
        assert_eq!(
            r.note.as_deref(),
            Some("unchanged: chart and values already as planned (dry run: sent anyway)")
        );
    }
}

#[tokio::test(start_paused = true)]
async fn without_preflight_there_is_no_decision_and_the_put_is_sent() {
    let mut p = fleet();
    p.rollout.preflight = false;
    let api = FakeApi::new();
    api.seed(&p);
    report_of_run(&p, api.clone(), EngineOptions::default()).await;
    let report = report_of_run(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(api.puts().len(), 8);
    assert!(api.lock().chart_lookups.is_empty());
    assert!(report.results.iter().all(|r| r.convergence.is_none()));
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

#[tokio::test(start_paused = true)]
async fn a_rollback_already_at_the_target_content_is_unchanged_via_the_history() {
    let c = cluster("a", "r1");
    let mut p = plan(rollout(), vec![vec![(c.clone(), "web".into(), "v1")]]);
    with_body(&mut p, rollback_to(1));
    let api = FakeApi::new();
    api.seed(&p);
    // Revision 2 upgraded to v2; revision 3 rolled back to revision 1's content.
    api.edit_release(&c.id, "web", |r| {
        let first = r.history[0].clone();
        r.history.push(RevisionSnapshot {
            version: 2,
            values: image_tag("v2"),
            ..first.clone()
        });
        r.history.push(RevisionSnapshot {
            version: 3,
            ..first
        });
    });
    let report = report_of_run(&p, api.clone(), EngineOptions::default()).await;
    assert!(api.puts().is_empty(), "{:#?}", report.results);
    assert_eq!(report.results[0].outcome, Outcome::Unchanged);
    assert_eq!(api.lock().history_lookups, 1);
    assert!(api.lock().chart_lookups.is_empty());

    // Rolling back to revision 2 from there is a change, and then converged.
    with_body(&mut p, rollback_to(2));
    let report = report_of_run(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(api.puts().len(), 1);
    assert_eq!(report.results[0].outcome, Outcome::Succeeded);
    assert_eq!(
        report.results[0].note.as_deref(),
        Some("change: values: imageTag changed")
    );
    let report = report_of_run(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(api.puts().len(), 1);
    assert_eq!(report.results[0].outcome, Outcome::Unchanged);
}

#[tokio::test(start_paused = true)]
async fn a_failed_release_with_the_planned_values_is_upgraded_again() {
    let c = cluster("a", "r1");
    let p = plan(rollout(), vec![vec![(c.clone(), "web".into(), "v1")]]);
    let api = FakeApi::new();
    api.seed(&p);
    api.edit_release(&c.id, "web", |r| {
        r.history[0].status = ReleaseStatus::Failed;
    });
    let report = report_of_run(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(api.puts().len(), 1);
    assert_eq!(
        report.results[0].note.as_deref(),
        Some("change: status FAILED (not DEPLOYED)")
    );
}

#[tokio::test(start_paused = true)]
async fn chart_and_history_lookups_are_paced_like_every_request() {
    let c = cluster("a", "r1");
    let mut r = rollout();
    r.rate = Rate::PerSecond(1.0);
    r.burst = 1;
    let p = plan(r, vec![vec![(c.clone(), "web".into(), "v1")]]);
    let api = FakeApi::new();
    api.seed(&p);
    // Already as planned: a preflight GET, then the chart GET, then nothing.
    let report = report_of_run(&p, api.clone(), EngineOptions::default()).await;
    let result = &report.results[0];
    assert_eq!(result.outcome, Outcome::Unchanged);
    assert_eq!(api.lock().chart_lookups.len(), 1);
    assert_eq!(result.polls, 2);
    // At 1 request per second without burst, the second GET waits its slot.
    assert!(result.duration >= Duration::from_secs(1), "{result:#?}");
    assert!(result.duration < Duration::from_secs(2), "{result:#?}");
}

/// Runs `plan` for its report alone.
async fn report_of_run(
    plan: &ExpandedPlan,
    api: Arc<FakeApi>,
    options: EngineOptions,
) -> RunReport {
    run_plan(plan, api, options).await.0
}
