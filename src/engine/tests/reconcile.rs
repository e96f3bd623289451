//! Ambiguous PUTs: a PUT whose answer was lost is checked against the release, never blindly resent.

use super::*;

#[tokio::test(start_paused = true)]
async fn ambiguous_put_that_was_applied_is_reconciled_not_resent() {
    let (c, p, api) = seeded_on_one_cluster(1);
    api.script(&c.id, "app-0", |r| {
        r.put_faults.push_back(Fault::AppliedThen500)
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    assert_eq!(api.puts().len(), 1);
    assert_eq!(api.release(&c.id, "app-0").applied_puts, 1);
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
    api.script(&c.id, "app-0", |r| {
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
    api.script(&c.id, "app-0", |r| {
        r.put_faults.push_back(Fault::Http(500, "CCE.01500001"));
        r.put_faults.push_back(Fault::ResetBeforeApply);
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    assert_eq!(api.puts().len(), 3);
    assert_eq!(api.release(&c.id, "app-0").applied_puts, 1);
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
    api.script(&c.id, "app-0", |r| {
        r.put_faults.push_back(Fault::AppliedThenHang)
    });
    let start = Instant::now();
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    assert_eq!(api.puts().len(), 1);
    assert!(report.results[0].reconciled);
    assert!(Instant::now() - start >= Duration::from_secs(30));
}

/// Without preflight there is no revision from before the PUT: the release's content decides.
#[tokio::test(start_paused = true)]
async fn without_preflight_an_ambiguous_put_is_reconciled_from_the_release_content() {
    let (c, p, api) = two_releases_without_preflight();
    api.script(&c.id, "app-0", |r| {
        r.put_faults.push_back(Fault::AppliedThen500)
    });
    api.script(&c.id, "app-1", |r| {
        r.put_faults.push_back(Fault::ResetBeforeApply)
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    assert_eq!(api.release(&c.id, "app-0").applied_puts, 1);
    assert!(report.results[0].reconciled);
    assert_eq!(report.results[0].put_attempts, 1);
    assert_eq!(api.release(&c.id, "app-1").applied_puts, 1);
    assert!(!report.results[1].reconciled);
    assert_eq!(report.results[1].put_attempts, 2);
}
