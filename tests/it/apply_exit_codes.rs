//! `flotilla apply`'s exit codes, from the real binary: 0 when everything succeeded, 1 when
//! something failed, 2 for a bad plan, missing credentials or an insecure endpoint (and then
//! not one request reaches the simulator). 130 is in `apply_signals.rs`.

use std::path::Path;
use std::time::Duration;

use crate::e2e_support::*;

const LIMIT: Duration = Duration::from_secs(60);

fn quick_plan(name: &str) -> PlanSpec {
    PlanSpec::new(name, 2, 2).rollout(&[
        "concurrency: 4",
        "rate: unlimited",
        "request_timeout: 5s",
        "wait: { enabled: true, timeout: 20s, poll: 20ms }",
    ])
}

fn simulate(dir: &Path, plan: &Path) -> std::process::Command {
    let mut command = flotilla(dir);
    command.args(["apply"]).arg(plan).args([
        "--simulate",
        "--sim-settle",
        "30ms",
        "--progress",
        "plain",
    ]);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_0_when_every_operation_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let plan = quick_plan("all-good").write(dir.path());
    let mut command = simulate(dir.path(), &plan);
    command.args(["--report-json", "report.json"]);
    let output = output_within(LIMIT, command).await;
    assert_eq!(exit_code(&output), Some(0), "{}", text(&output.stderr));
    let report = read_json(&dir.path().join("report.json"));
    assert_eq!(report["summary"]["succeeded"], 4, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_1_when_an_operation_failed() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = quick_plan("one-fails");
    spec.rollout.push("max_failures: 5".to_owned());
    spec.values_of = |m| (m == 2).then(|| "{ imageTag: fail-now }".to_owned());
    let plan = spec.write(dir.path());
    let mut command = simulate(dir.path(), &plan);
    command.args(["--report-json", "report.json"]);
    let output = output_within(LIMIT, command).await;
    assert_eq!(exit_code(&output), Some(1), "{}", text(&output.stderr));
    let report = read_json(&dir.path().join("report.json"));
    assert_eq!(report["summary"]["failed"], 2, "{report:#}");
    assert_eq!(report["summary"]["succeeded"], 2, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plans_exit_2_and_send_nothing() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plans/bad");
    let mut plans: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    plans.sort();
    assert!(plans.len() >= 10, "the corpus is there");
    let mut seed = quick_plan("seed").load();
    let sim = start_sim(signing_sim_config(Duration::from_millis(30)), &mut seed).await;
    let dir = tempfile::tempdir().unwrap();
    for plan in &plans {
        let mut command = flotilla_with_credentials(dir.path());
        command
            .arg("apply")
            .arg(plan)
            .args(["--endpoint", &sim.base_url(), "--progress", "plain"]);
        let output = output_within(LIMIT, command).await;
        assert_eq!(
            exit_code(&output),
            Some(2),
            "{}: {}",
            plan.display(),
            text(&output.stderr)
        );
    }
    assert!(sim.request_log().is_empty(), "{:?}", sim.request_log());
    assert!(
        !dir.path().join(".flotilla").exists(),
        "no journal was started for a bad plan"
    );
}

/// Simulator settings are input like any other: refused with exit 2 before anything starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_simulator_settings_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let plan = quick_plan("bad-sim").write(dir.path());
    let mut command = simulate(dir.path(), &plan);
    command.args(["--sim-error-rate", "0.6", "--sim-reset-rate", "0.6"]);
    let output = output_within(LIMIT, command).await;
    let stderr = text(&output.stderr);
    assert_eq!(exit_code(&output), Some(2), "{stderr}");
    assert!(stderr.contains("simulator settings"), "{stderr}");
    assert!(
        !dir.path().join(".flotilla").exists(),
        "no journal was started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_exit_2_naming_where_they_were_looked_for() {
    let mut spec = quick_plan("no-creds");
    let mut plan = spec.load();
    let sim = start_sim(signing_sim_config(Duration::from_millis(30)), &mut plan).await;
    spec.endpoint = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let path = spec.write(dir.path());
    let mut command = flotilla(dir.path());
    command
        .arg("apply")
        .arg(&path)
        .args(["--progress", "plain"]);
    let output = output_within(LIMIT, command).await;
    let stderr = text(&output.stderr);
    assert_eq!(exit_code(&output), Some(2), "{stderr}");
    for source in [
        "HUAWEICLOUD_SDK_AK",
        "HUAWEICLOUD_SDK_SK",
        "OS_AUTH_TOKEN",
        "--token-file",
    ] {
        assert!(
            stderr.contains(source),
            "the message names {source}: {stderr}"
        );
    }
    assert!(stderr.contains(".huaweicloud/credentials"), "{stderr}");
    assert!(sim.request_log().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_beyond_loopback_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    // Given as a flag.
    let path = quick_plan("insecure").write(dir.path());
    let mut command = flotilla_with_credentials(dir.path());
    command.arg("apply").arg(&path).args([
        "--endpoint",
        // Never reachable (RFC 6761), should the guard ever let a request through.
        "http://cce.invalid",
        "--progress",
        "plain",
    ]);
    let output = output_within(LIMIT, command).await;
    let stderr = text(&output.stderr);
    assert_eq!(exit_code(&output), Some(2), "{stderr}");
    assert!(stderr.contains("--allow-insecure-http"), "{stderr}");

    // Written in the plan.
    let mut spec = quick_plan("insecure-in-plan");
    // TEST-NET-1 (RFC 5737): routed nowhere.
    spec.endpoint = "http://192.0.2.1:8080".to_owned();
    let path = spec.write(dir.path());
    let mut command = flotilla_with_credentials(dir.path());
    command
        .arg("apply")
        .arg(&path)
        .args(["--progress", "plain"]);
    let output = output_within(LIMIT, command).await;
    let stderr = text(&output.stderr);
    assert_eq!(exit_code(&output), Some(2), "{stderr}");
    assert!(stderr.contains("--allow-insecure-http"), "{stderr}");
}

/// Flags are input too: a report that could not be written, a journal another run holds, or a
/// rollout override the plan itself could not say, is refused before the first request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_output_paths_and_out_of_range_overrides_exit_2_and_send_nothing() {
    let mut seed = quick_plan("outputs").load();
    let sim = start_sim(signing_sim_config(Duration::from_millis(30)), &mut seed).await;
    let dir = tempfile::tempdir().unwrap();
    let plan = quick_plan("outputs").write(dir.path());
    std::fs::write(dir.path().join("plain"), b"").unwrap();
    let busy = dir.path().join("busy.jsonl");
    let holder = std::fs::File::create(&busy).unwrap();
    holder.try_lock().expect("the test holds the journal");

    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let cases: [(&[&str], &str); 8] = [
        (
            &["--report-json", "plain/report.json"],
            "--report-json plain/report.json",
        ),
        (&["--junit", "."], "--junit ."),
        (
            &["--journal", "j.jsonl", "--summary-md", "./sub/../j.jsonl"],
            "the same file as --journal",
        ),
        (
            &["--report-json", "r.json", "--junit", "r.json"],
            "the same file as --report-json",
        ),
        (
            &["--journal", "busy.jsonl"],
            "another flotilla run is writing it",
        ),
        (&["--burst", "0"], "--burst"),
        (&["--retry-attempts", "1000"], "from 1 to 100"),
        (&["--request-timeout", "0s"], "more than 0"),
    ];
    for (flags, expected) in cases {
        let mut command = flotilla_with_credentials(dir.path());
        command
            .arg("apply")
            .arg(&plan)
            .args(["--endpoint", &sim.base_url(), "--progress", "plain"])
            .args(flags);
        let output = output_within(LIMIT, command).await;
        let stderr = text(&output.stderr);
        assert_eq!(exit_code(&output), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    }
    assert!(sim.request_log().is_empty(), "{:?}", sim.request_log());
    assert_eq!(
        std::fs::read(&busy).unwrap(),
        b"",
        "the held journal is untouched"
    );
}
