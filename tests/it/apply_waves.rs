//! Waves, failure budgets across waves, `rollback_on_failure` and `--dry-run`, end to end
//! against the simulator: the proofs are orderings in its request log and its state history.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::e2e_support::*;
use flotilla::cce::model::ReleaseStatus;
use flotilla::engine::{EngineOptions, Outcome};

/// Clusters 1-2 are `canary`, 3-4 `early`, 5-6 `late`.
fn tier(n: usize) -> String {
    let tier = match n {
        1 | 2 => "canary",
        3 | 4 => "early",
        _ => "late",
    };
    format!("{{ tier: {tier} }}")
}

fn waves_rollout(soak: &str, first_wave_budget: &str) -> Vec<String> {
    [
        "concurrency: 8",
        "per_cluster: 2",
        "rate: unlimited",
        "request_timeout: 5s",
        "wait: { enabled: true, timeout: 20s, poll: 20ms }",
        "max_failures: 100",
        "waves:",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([
        format!(
            "  - {{ name: canary, select: {{ labels: {{ tier: canary }} }}, soak: {soak}, max_failures: {first_wave_budget} }}"
        ),
        format!("  - {{ name: early, select: {{ labels: {{ tier: early }} }}, soak: {soak} }}"),
        "  - { name: late, select: { labels: { tier: late } } }".to_owned(),
    ])
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_of_a_wave_before_the_previous_wave_ended_and_soaked() {
    let mut spec = PlanSpec::new("waves", 6, 3);
    spec.labels = tier;
    spec.rollout = waves_rollout("300ms", "0");
    let mut plan = spec.load();
    let sim = start_sim(sim_config(Duration::from_millis(40)), &mut plan).await;

    let report = run_engine(&plan, options()).await;
    assert_eq!(report.summary.succeeded, 18, "{:?}", report.summary);

    let log = sim.request_log();
    let wave_of = |cluster: &str| match cluster {
        c if c == cluster_id(1) || c == cluster_id(2) => 0,
        c if c == cluster_id(3) || c == cluster_id(4) => 1,
        _ => 2,
    };
    let mut first_arrival = [f64::INFINITY; 3];
    let mut first_put = [f64::INFINITY; 3];
    let mut last_finish = [0.0f64; 3];
    for entry in &log {
        // The one chart lookup (convergence) belongs to no wave's releases.
        let Some((cluster, _, _)) = release_of(&entry.path) else {
            continue;
        };
        let wave = wave_of(&cluster);
        first_arrival[wave] = first_arrival[wave].min(entry.arrived_ms);
        if entry.method == "PUT" {
            first_put[wave] = first_put[wave].min(entry.arrived_ms);
        }
        last_finish[wave] = last_finish[wave].max(entry.finished_ms);
    }
    for wave in 1..3 {
        // The simulator finishes a request before flotilla sees its answer, so the previous
        // wave ended no earlier than its last logged finish.
        assert!(
            first_arrival[wave] >= last_finish[wave - 1] + 300.0,
            "wave {wave} began {:.1} ms after wave {} ended (soak 300 ms)",
            first_arrival[wave] - last_finish[wave - 1],
            wave - 1
        );
        assert!(first_put[wave] >= first_arrival[wave]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_over_its_budget_halts_the_run_and_later_waves_are_skipped_unsent() {
    // The canary wave tolerates no failure; r1 fails to deploy on c1 and c2.
    let mut spec = PlanSpec::new("halt", 6, 3);
    spec.labels = tier;
    spec.rollout = waves_rollout("50ms", "0");
    spec.values_of = |m| (m == 1).then(|| "{ imageTag: fail-canary }".to_owned());
    let mut plan = spec.load();
    let sim = start_sim(sim_config(Duration::from_millis(40)), &mut plan).await;

    let report = run_engine(&plan, options()).await;
    let halted = report.halted.clone().expect("the run halted");
    assert!(halted.contains("canary"), "{halted}");
    let later: Vec<_> = report.results.iter().filter(|r| r.wave > 0).collect();
    assert_eq!(later.len(), 12);
    for result in &later {
        assert_eq!(result.outcome, Outcome::Skipped, "{result:?}");
        let reason = result.skip_reason.as_deref().unwrap_or_default();
        assert!(reason.contains("canary"), "skip reason: {reason:?}");
    }
    assert!(
        report
            .results
            .iter()
            .any(|r| r.wave == 0 && r.outcome == Outcome::Failed)
    );

    let log = sim.request_log();
    let clusters_touched: BTreeSet<String> = log
        .iter()
        .filter_map(|e| release_of(&e.path))
        .map(|(cluster, _, _)| cluster)
        .collect();
    assert_eq!(
        clusters_touched,
        BTreeSet::from([cluster_id(1), cluster_id(2)]),
        "only the canary wave's clusters got requests"
    );
    let state = sim.state();
    for release in state
        .releases
        .iter()
        .filter(|r| r.cluster_id != cluster_id(1) && r.cluster_id != cluster_id(2))
    {
        assert_eq!((release.applied_puts, release.version), (0, 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_failure_restores_the_previous_revisions_values() {
    let rollout = [
        "concurrency: 4",
        "rate: unlimited",
        "request_timeout: 5s",
        "max_failures: 10",
        "wait: { enabled: true, timeout: 20s, poll: 20ms }",
    ];
    // First a good release: revision 2 with these values.
    let mut good = PlanSpec::new("good", 2, 1).rollout(&rollout);
    good.values = "{ imageTag: \"1.0.0\", replicaCount: 3, tuning: { cache: small } }".to_owned();
    let mut good_plan = good.load();
    let sim = start_sim(sim_config(Duration::from_millis(40)), &mut good_plan).await;
    assert_eq!(run_engine(&good_plan, options()).await.summary.succeeded, 2);

    // Then a bad one that changes more than the tag, with rollback on failure.
    let mut bad = PlanSpec::new("bad", 2, 1).rollout(&rollout);
    bad.values = "{ imageTag: fail-2.0.0, replicaCount: 5, tuning: { cache: large } }".to_owned();
    bad.rollback_on_failure = true;
    let mut bad_plan = bad.load();
    point_at(&mut bad_plan, &sim.base_url());
    let report = run_engine(&bad_plan, options()).await;

    for result in &report.results {
        assert_eq!(result.outcome, Outcome::Failed, "still reported failed");
        let rollback = result.rollback.as_ref().expect("a rollback result");
        assert_eq!(rollback.outcome, Outcome::Succeeded, "{rollback:?}");
        assert_eq!(rollback.to_version, 2);
    }
    let state = sim.state();
    for release in &state.releases {
        let versions: Vec<(i64, &str, ReleaseStatus)> = release
            .history
            .iter()
            .map(|r| (r.version, r.action.as_str(), r.status.clone()))
            .collect();
        assert_eq!(
            versions,
            vec![
                (1, "install", ReleaseStatus::Deployed),
                (2, "upgrade", ReleaseStatus::Deployed),
                (3, "upgrade", ReleaseStatus::Failed),
                (4, "rollback", ReleaseStatus::Deployed),
            ],
            "{}",
            release.cluster_id
        );
        assert_eq!(
            release.history[3].values, release.history[1].values,
            "the rollback restored revision 2's values"
        );
        assert_eq!(release.history[3].values["replicaCount"], 3);
        assert_eq!(release.version, 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing() {
    let mut plan = PlanSpec::new("dry", 3, 4)
        .rollout(&[
            "concurrency: 6",
            "rate: unlimited",
            "request_timeout: 5s",
            "wait: { enabled: true, timeout: 20s, poll: 20ms }",
        ])
        .load();
    let sim = start_sim(sim_config(Duration::from_millis(40)), &mut plan).await;
    let before = sim.state();

    let report = run_engine(
        &plan,
        EngineOptions {
            dry_run: true,
            ..options()
        },
    )
    .await;
    assert_eq!(report.summary.succeeded, 12, "{:?}", report.summary);

    let after = sim.state();
    assert_eq!(after.applied_puts, 0);
    for (b, a) in before.releases.iter().zip(&after.releases) {
        assert_eq!((a.version, a.applied_puts), (1, 0), "{}", a.name);
        assert_eq!(a.history, b.history, "{} unchanged", a.name);
    }
    let log = sim.request_log();
    assert_eq!(puts(&log).count(), 12, "every PUT was sent, as a dry run");
    assert!(puts(&log).all(|e| e.status == Some(200) && !e.applied));
}
