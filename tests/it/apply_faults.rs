//! The fault matrix end to end: errors, ambiguous answers, hangs, cut connections and
//! throttling at once, and still every operation succeeds and no release is changed twice;
//! deploy failures are reported and the budget halts exactly when it should.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::e2e_support::*;
use flotilla::engine::Outcome;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_errors_ambiguity_hangs_and_resets_every_operation_succeeds_once() {
    // 10 clusters × 30 releases = 300 operations.
    let mut plan = PlanSpec::new("faults", 10, 30)
        .rollout(ROBUST_ROLLOUT)
        .load();
    let mut config = sim_config(Duration::from_millis(30)).with_rng_seed(20_250_501);
    config.error_rate = 0.2;
    config.ambiguous_rate = 0.2;
    config.hang_rate = 0.05;
    config.reset_rate = 0.05;
    let sim = start_sim(config, &mut plan).await;

    let report = run_engine(&plan, options()).await;
    assert_every_operation_succeeded(&report, "");
    assert_every_release_applied_once(&sim, 300, "");

    // Every kind of fault really happened, PUTs included, and ambiguous PUTs were reconciled.
    let log = sim.request_log();
    let faults: BTreeSet<&str> = puts(&log).filter_map(|e| e.fault.as_deref()).collect();
    for kind in ["error", "ambiguous_error", "ambiguous_cut", "hang", "reset"] {
        assert!(faults.contains(kind), "no PUT met `{kind}`: {faults:?}");
    }
    let applied_then_failed = puts(&log)
        .filter(|e| e.applied && e.status != Some(200))
        .count();
    assert!(applied_then_failed > 0);
    assert!(report.results.iter().any(|r| r.reconciled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_at_once_with_throttling_over_a_thousand_operations() {
    // 20 clusters × 50 releases = 1,000 operations against a gateway that throttles, too.
    let mut plan = PlanSpec::new("all-faults", 20, 50)
        .rollout(&[
            "concurrency: 48",
            "per_cluster: 4",
            "rate: 1000",
            "burst: 50",
            "retry: { attempts: 30, backoff: 5ms, max_backoff: 40ms }",
            "request_timeout: 500ms",
            "wait: { enabled: false }",
        ])
        .load();
    let mut config = sim_config(Duration::from_millis(20))
        .with_rng_seed(7_000_001)
        .with_throttle(400.0);
    config.error_rate = 0.1;
    config.ambiguous_rate = 0.1;
    config.hang_rate = 0.02;
    config.reset_rate = 0.05;
    let sim = start_sim(config, &mut plan).await;

    let report = run_engine(&plan, options()).await;
    assert_every_operation_succeeded(&report, "");
    assert_every_release_applied_once(&sim, 1000, "");
    let log = sim.request_log();
    let faults: BTreeSet<&str> = log.iter().filter_map(|e| e.fault.as_deref()).collect();
    for kind in ["throttle", "error", "ambiguous_error", "hang", "reset"] {
        assert!(faults.contains(kind), "no request met `{kind}`: {faults:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_failures_are_reported_and_the_budget_halts_on_the_one_too_many() {
    // One cluster, one operation at a time, in plan order: r2, r4 and r6 fail to deploy.
    // `max_failures: 2` tolerates two; the third (r6) halts the run, so r7 and r8 never start.
    let mut spec = PlanSpec::new("budget", 1, 8).rollout(&[
        "concurrency: 1",
        "per_cluster: 1",
        "rate: unlimited",
        "max_failures: 2",
        "request_timeout: 5s",
        "wait: { enabled: true, timeout: 20s, poll: 20ms }",
    ]);
    spec.values_of = |m| (m % 2 == 0 && m <= 6).then(|| format!("{{ imageTag: fail-{m} }}"));
    let mut plan = spec.load();
    let sim = start_sim(sim_config(Duration::from_millis(30)), &mut plan).await;

    let report = run_engine(&plan, options()).await;
    let outcome_of = |name: &str| {
        report
            .results
            .iter()
            .find(|r| r.release == name)
            .map(|r| r.outcome)
            .expect("reported")
    };
    for (name, expected) in [
        ("r1", Outcome::Succeeded),
        ("r2", Outcome::Failed),
        ("r3", Outcome::Succeeded),
        ("r4", Outcome::Failed),
        ("r5", Outcome::Succeeded),
        ("r6", Outcome::Failed),
        ("r7", Outcome::Skipped),
        ("r8", Outcome::Skipped),
    ] {
        assert_eq!(outcome_of(name), expected, "{name}");
    }
    let failed = report.results.iter().find(|r| r.release == "r2").unwrap();
    assert_eq!(
        failed.final_status,
        Some(flotilla::cce::model::ReleaseStatus::Failed),
        "{failed:?}"
    );
    assert!(report.halted.is_some(), "the run says it halted");
    for skipped in report
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Skipped)
    {
        let reason = skipped.skip_reason.as_deref().unwrap_or_default();
        assert!(reason.contains("halted"), "skip reason: {reason:?}");
    }
    assert_eq!(report.verdict(), flotilla::engine::Verdict::Failed);

    // Nothing at all was sent for the skipped releases.
    let log = sim.request_log();
    let touched: BTreeSet<String> = log
        .iter()
        .filter_map(|e| release_of(&e.path))
        .map(|(_, _, name)| name)
        .collect();
    assert!(
        !touched.contains("r7") && !touched.contains("r8"),
        "{touched:?}"
    );
    let state = sim.state();
    for name in ["r7", "r8"] {
        let release = state.release(&cluster_id(1), "apps", name).unwrap();
        assert_eq!((release.applied_puts, release.version), (0, 1), "{name}");
    }
}
