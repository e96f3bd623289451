//! Error answers end to end, through the binary: whatever shape the error body takes, its code,
//! message and request id appear in every output (progress lines, the table, the JSON report,
//! JUnit, Markdown and `plan --diff`); a change refused by a busy release is waited out; and the
//! fault matrix passes against each error shape.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::e2e_support::*;
use flotilla::sim::store::ReleaseKey;
use flotilla::sim::{ErrorStyle, RunningSim};

const QUICK_ROLLOUT: &[&str] = &[
    "concurrency: 2",
    "rate: unlimited",
    "retry: { attempts: 5, backoff: 5ms, max_backoff: 20ms }",
    "request_timeout: 2s",
    "max_failures: 5",
    "wait: { enabled: true, timeout: 20s, poll: 20ms }",
];

/// The simulator's code for a release it does not have.
const RELEASE_NOT_FOUND: &str = "CCE.01404002";

/// A simulator answering errors in `style`, seeded from a plan of one cluster and two
/// releases, with `r1` deleted so that reading it answers 404; the plan written in `dir`.
async fn with_a_missing_release(style: ErrorStyle, dir: &Path) -> (RunningSim, std::path::PathBuf) {
    let mut spec = PlanSpec::new("errors", 1, 2).rollout(QUICK_ROLLOUT);
    let mut seed = spec.load();
    let config = signing_sim_config(Duration::from_millis(30)).with_error_style(style);
    let sim = start_sim(config, &mut seed).await;
    sim.with_store(|store| {
        store
            .delete(&ReleaseKey::new(&cluster_id(1), "apps", "r1"))
            .expect("deleted");
    });
    spec.endpoint = sim.base_url();
    let plan = spec.write(dir);
    (sim, plan)
}

/// The request id of the simulator's 404 answer.
fn request_id_of_the_404(sim: &RunningSim) -> String {
    let log = sim.request_log();
    let answer = log
        .iter()
        .rev()
        .find(|e| e.status == Some(404))
        .expect("a 404 was answered");
    assert_eq!(answer.error_code.as_deref(), Some(RELEASE_NOT_FOUND));
    answer.request_id.clone()
}

fn assert_shows(what: &str, text: &str, request_id: &str) {
    for part in [
        RELEASE_NOT_FOUND,
        "release r1 not found in namespace apps",
        request_id,
    ] {
        assert!(text.contains(part), "{what} lacks `{part}`:\n{text}");
    }
}

/// Tried as a new user would: an error body in the camel shape only the core SDK reader knows
/// (`errorCode`/`errorMsg`) showed as just `HTTP 404`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_output_of_apply_shows_the_code_message_and_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, plan) = with_a_missing_release(ErrorStyle::Camel, dir.path()).await;
    let mut command = flotilla_with_credentials(dir.path());
    command.arg("apply").arg(&plan).args([
        "--progress",
        "plain",
        "--report-json",
        "report.json",
        "--junit",
        "junit.xml",
        "--summary-md",
        "summary.md",
    ]);
    let output = output_within(Duration::from_secs(60), command).await;
    assert_eq!(exit_code(&output), Some(1), "{}", text(&output.stderr));
    let request_id = request_id_of_the_404(&sim);

    assert_shows("the progress lines", &text(&output.stderr), &request_id);
    assert_shows("the table", &text(&output.stdout), &request_id);
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert_shows("the JUnit report", &read("junit.xml"), &request_id);
    assert_shows("the Markdown summary", &read("summary.md"), &request_id);
    let report = read_json(&dir.path().join("report.json"));
    let failed: Vec<&Value> = report["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|op| op["outcome"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{report:#}");
    let error = &failed[0]["error"];
    assert_eq!(error["code"], RELEASE_NOT_FOUND);
    assert_eq!(error["request_id"], request_id.as_str());
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("release r1 not found in namespace apps"),
        "{error}"
    );
}

/// `plan --diff` used to leave out the code of every error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_diff_shows_the_code_message_and_request_id_as_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, plan) = with_a_missing_release(ErrorStyle::Nested, dir.path()).await;
    let mut command = flotilla_with_credentials(dir.path());
    command.arg("plan").arg(&plan).arg("--diff");
    let output = output_within(Duration::from_secs(60), command).await;
    assert_eq!(exit_code(&output), Some(1), "{}", text(&output.stderr));
    let request_id = request_id_of_the_404(&sim);
    assert_shows("plan --diff", &text(&output.stdout), &request_id);

    let mut command = flotilla_with_credentials(dir.path());
    command
        .arg("plan")
        .arg(&plan)
        .args(["--diff", "--format", "json"]);
    let output = output_within(Duration::from_secs(60), command).await;
    assert_eq!(exit_code(&output), Some(1), "{}", text(&output.stderr));
    let request_id = request_id_of_the_404(&sim);
    let doc: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let diff = doc["waves"][0]["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["release"] == "r1")
        .expect("r1 planned")["diff"]
        .clone();
    assert_eq!(diff["label"], "missing");
    assert_eq!(diff["code"], RELEASE_NOT_FOUND);
    assert_eq!(diff["request_id"], request_id.as_str());
    assert_shows(
        "plan --diff JSON",
        diff["error"].as_str().unwrap(),
        &request_id,
    );
}

/// Another pipeline's change is in progress when flotilla's PUT arrives (preflight off): the
/// simulator refuses it as the service does (`Update release is forbidden`, here with 403),
/// flotilla waits for the release to settle and sends the change again; it succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_refused_by_a_busy_release_is_waited_out_and_succeeds() {
    let mut spec = PlanSpec::new("busy", 1, 1)
        .rollout(QUICK_ROLLOUT)
        .rollout(&["preflight: false"]);
    let mut seed = spec.load();
    let config = signing_sim_config(Duration::from_millis(500)).with_busy_status(403);
    let sim = start_sim(config, &mut seed).await;
    spec.endpoint = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let plan = spec.write(dir.path());
    // The other pipeline's change: revision 2, PENDING_UPGRADE for 500 ms.
    let other = flotilla::cce::model::UpdateReleaseBody {
        chart_id: None,
        action: flotilla::cce::model::Action::Upgrade,
        parameters: None,
        values: Some(serde_json::from_str(r#"{"imageTag":"other"}"#).unwrap()),
    };
    sim.with_store(|store| {
        store
            .update(
                &ReleaseKey::new(&cluster_id(1), "apps", "r1"),
                &other,
                false,
            )
            .expect("the other change is accepted");
    });

    let mut command = flotilla_with_credentials(dir.path());
    command
        .arg("apply")
        .arg(&plan)
        .args(["--progress", "plain", "--report-json", "report.json"]);
    let output = output_within(Duration::from_secs(60), command).await;
    assert_eq!(exit_code(&output), Some(0), "{}", text(&output.stderr));

    let log = sim.request_log();
    let statuses: Vec<Option<u16>> = puts(&log).map(|e| e.status).collect();
    assert_eq!(statuses, [Some(403), Some(200)], "{log:#?}");
    let report = read_json(&dir.path().join("report.json"));
    let op = &report["operations"][0];
    assert_eq!(op["outcome"], "succeeded", "{op:#}");
    assert_eq!(
        (op["version_before"].as_i64(), op["version_after"].as_i64()),
        (Some(2), Some(3))
    );
    let state = sim.state();
    assert_eq!(state.releases[0].version, 3);
}

/// The reliability fault matrix, once with each error shape: every operation still succeeds
/// exactly once, and the client read the code of every error answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_matrix_passes_against_every_error_shape() {
    for style in [ErrorStyle::Snake, ErrorStyle::Camel, ErrorStyle::Nested] {
        let mut plan = PlanSpec::new("styles", 4, 15)
            .rollout(&[
                "concurrency: 16",
                "per_cluster: 4",
                "rate: unlimited",
                "retry: { attempts: 30, backoff: 5ms, max_backoff: 40ms }",
                "request_timeout: 500ms",
                "wait: { enabled: true, timeout: 60s, poll: 20ms }",
            ])
            .load();
        let mut config = sim_config(Duration::from_millis(30))
            .with_rng_seed(20_261_204)
            .with_error_style(style);
        config.error_rate = 0.2;
        config.ambiguous_rate = 0.2;
        config.hang_rate = 0.02;
        config.reset_rate = 0.05;
        config.throttle = Some(400.0);
        let sim = start_sim(config, &mut plan).await;

        let report = run_engine(&plan, options()).await;
        let context = format!("{style:?}: ");
        assert_every_operation_succeeded(&report, &context);
        assert_every_release_applied_once(&sim, 60, &context);

        let answered_errors: Vec<_> = report
            .results
            .iter()
            .flat_map(|r| &r.attempts)
            .filter(|a| a.status.is_some_and(|s| s >= 400))
            .collect();
        assert!(!answered_errors.is_empty(), "{style:?}: no error answered");
        assert!(
            answered_errors.iter().all(|a| a.error_code.is_some()),
            "{style:?}: an error answer's code was not read: {answered_errors:#?}"
        );
        sim.shutdown().await.unwrap();
    }
}
