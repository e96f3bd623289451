//! The reliability suite's fault matrix against answers shaped as the SDK models allow: with
//! `--null-fields 0.3` every field of every release and chart answer may be null or missing,
//! and still every operation succeeds, each release changed exactly once.

use std::time::Duration;

use crate::e2e_support::*;
use flotilla::engine::Outcome;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_null_fields_under_every_fault_every_operation_succeeds_exactly_once() {
    // 10 clusters × 30 releases = 300 operations, the fault matrix of `apply_faults`.
    let mut plan = PlanSpec::new("null-fields", 10, 30)
        .rollout(ROBUST_ROLLOUT)
        .load();
    let mut config = sim_config(Duration::from_millis(30))
        .with_rng_seed(20_251_204)
        .with_null_fields(0.3);
    config.error_rate = 0.2;
    config.ambiguous_rate = 0.2;
    config.hang_rate = 0.05;
    config.reset_rate = 0.05;
    let sim = start_sim(config, &mut plan).await;

    let report = run_engine(&plan, options()).await;
    assert_every_operation_succeeded(&report, "");
    assert_every_release_applied_once(&sim, 300, "");
    // Every operation reports the revision its change reached: proven, not assumed.
    for result in &report.results {
        assert_eq!(result.version_after, Some(2), "{result:#?}");
    }
    assert!(report.results.iter().any(|r| r.reconciled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_field_missing_nothing_is_reported_succeeded() {
    // Answers that never give a revision or a status: a run cannot prove anything, so no
    // operation succeeds, and none is sent twice.
    let mut plan = PlanSpec::new("all-null", 1, 3)
        .rollout(&[
            "rate: unlimited",
            "max_failures: 10",
            "retry: { attempts: 3, backoff: 5ms, max_backoff: 10ms }",
            "request_timeout: 2s",
            "wait: { enabled: true, timeout: 1s, poll: 20ms }",
        ])
        .load();
    let sim = start_sim(
        sim_config(Duration::from_millis(10)).with_null_fields(1.0),
        &mut plan,
    )
    .await;
    let report = run_engine(&plan, options()).await;
    for result in &report.results {
        assert_eq!(result.outcome, Outcome::Failed, "{result:#?}");
        let message = &result.error.as_ref().unwrap().message;
        assert!(message.contains("could not confirm"), "{message}");
    }
    assert_eq!(sim.state().applied_puts, 0, "nothing judged, nothing sent");
}

/// From the command line: the demo rehearsed against answers that leave fields out, with
/// faults, ends as it ends against whole answers: every operation succeeded, exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_rehearsed_with_null_fields_and_faults_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let plan = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml");
    let mut command = flotilla(dir.path());
    command
        .arg("apply")
        .arg(&plan)
        .args(["--simulate", "--time-scale", "100", "--progress", "never"])
        .args(["--sim-null-fields", "0.3", "--sim-error-rate", "0.1"])
        .args(["--sim-ambiguous-rate", "0.1", "--sim-rng-seed", "3"])
        .args(["--report-json", "report.json"]);
    let out = output_within(Duration::from_secs(120), command).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report = read_json(&dir.path().join("report.json"));
    assert_valid_report(&report);
    let operations = report["operations"].as_array().expect("operations");
    assert!(!operations.is_empty());
    for operation in operations {
        assert_eq!(operation["outcome"], "succeeded", "{operation}");
    }
}
