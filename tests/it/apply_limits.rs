//! The engine's limits held end to end, proven from the simulator's request log: operations in
//! flight overall and per cluster, and requests per 1-second window.

use std::time::Duration;

use crate::e2e_support::*;
use flotilla::engine::Outcome;
use flotilla::sim::SimConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_and_per_cluster_caps_are_never_exceeded() {
    // 3 clusters × 6 releases: per_cluster 2 allows 6 at once, concurrency 5 allows 5, so both
    // caps bind at some point of the run.
    let mut plan = PlanSpec::new("caps", 3, 6)
        .rollout(&[
            "concurrency: 5",
            "per_cluster: 2",
            "rate: unlimited",
            "request_timeout: 5s",
            "wait: { enabled: true, timeout: 20s, poll: 30ms }",
        ])
        .load();
    let mut config = sim_config(Duration::from_millis(120));
    config.latency = Duration::from_millis(15);
    let sim = start_sim(config, &mut plan).await;

    let report = run_engine(&plan, options()).await;
    assert_eq!(report.summary.succeeded, 18, "{:?}", report.summary);

    let log = sim.request_log();
    let spans = operation_spans(&log);
    assert_eq!(spans.len(), 18, "every release was touched");
    let overall = max_overlap(spans.values().copied());
    assert!(overall <= 5, "{overall} operations in flight, cap 5");
    assert!(
        overall >= 2,
        "the run overlapped operations at all ({overall})"
    );
    for n in 1..=3 {
        let cluster = cluster_id(n);
        let on_cluster = max_overlap(
            spans
                .iter()
                .filter(|((c, _, _), _)| *c == cluster)
                .map(|(_, span)| *span),
        );
        assert!(
            on_cluster <= 2,
            "{on_cluster} operations in flight on {cluster}, cap 2"
        );
    }
    for release in sim.state().releases {
        assert_eq!(release.applied_puts, 1, "{}", release.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_one_second_window_carries_more_than_rate_plus_burst() {
    // 30 operations × (preflight + PUT), plus the one chart lookup that decides convergence:
    // 61 requests at 25/s with a burst of 5.
    let mut plan = PlanSpec::new("rate", 5, 6)
        .rollout(&[
            "concurrency: 16",
            "per_cluster: 4",
            "rate: 25",
            "burst: 5",
            "request_timeout: 5s",
            "wait: { enabled: false }",
        ])
        .load();
    let sim = start_sim(sim_config(Duration::from_millis(10)), &mut plan).await;

    let report = run_engine(&plan, options()).await;
    assert_eq!(report.summary.succeeded, 30, "{:?}", report.summary);

    let log = sim.request_log();
    assert_eq!(
        log.len(),
        61,
        "one GET and one PUT per operation, and one chart GET"
    );
    let busiest = busiest_window(&log, 1000.0);
    assert!(
        busiest <= 30,
        "{busiest} requests in one second, rate 25 + burst 5"
    );
    assert!(
        busiest >= 20,
        "the requests were not spread thin by something else ({busiest})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_endpoint_is_paced_on_its_own() {
    // Two simulators stand for two regions; each gets its own rate + burst, and a throttled one
    // does not slow the other.
    let mut plan = PlanSpec::new("regions", 4, 5)
        .rollout(&[
            "concurrency: 16",
            "per_cluster: 4",
            "rate: 20",
            "burst: 4",
            "request_timeout: 5s",
            "wait: { enabled: false }",
        ])
        .load();
    let slow = flotilla::sim::Simulator::start(
        SimConfig::default()
            .with_settle(Duration::from_millis(10))
            .with_throttle(8.0),
        &[&plan],
    )
    .await
    .expect("sim a");
    let fast = flotilla::sim::Simulator::start(
        SimConfig::default().with_settle(Duration::from_millis(10)),
        &[&plan],
    )
    .await
    .expect("sim b");
    // Clusters 1 and 2 in one region, 3 and 4 in the other.
    for wave in &mut plan.waves {
        for op in &mut wave.operations {
            let mut cluster = (*op.cluster).clone();
            let on_slow = cluster.id == cluster_id(1) || cluster.id == cluster_id(2);
            cluster.endpoint = if on_slow {
                slow.base_url()
            } else {
                fast.base_url()
            };
            op.cluster = std::sync::Arc::new(cluster);
        }
    }
    let report = run_engine(&plan, options()).await;
    assert!(
        report
            .results
            .iter()
            .all(|r| r.outcome == Outcome::Succeeded),
        "{:?}",
        report.summary
    );
    for sim in [&slow, &fast] {
        let log = sim.request_log();
        assert!(busiest_window(&log, 1000.0) <= 24);
    }
    // The fast region finished long before the throttled one: its last request came before
    // the slow region's last.
    let last = |log: Vec<flotilla::sim::LogEntry>| {
        log.iter()
            .map(|e| e.finished.clone())
            .max()
            .expect("requests")
            .to_string()
    };
    let fast_log = fast.request_log();
    assert!(
        fast_log.iter().all(|e| e.status == Some(200)),
        "never throttled"
    );
    assert!(
        slow.request_log().iter().any(|e| e.status == Some(429)),
        "the slow region did throttle"
    );
    assert!(last(fast_log) < last(slow.request_log()));
}
