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

/// The binary with the test access key and a secret key the simulator does not expect: every
/// signature is refused with 401 `APIG.0301`.
fn flotilla_with_wrong_secret(dir: &Path) -> std::process::Command {
    let mut command = flotilla_with_credentials(dir);
    command.env("HUAWEICLOUD_SDK_SK", WRONG_SK);
    command
}

const WRONG_SK: &str = "NotTheSecretKey0123456789abcdefWRONG";

/// Twelve operations, eight at once, and a budget (10%) that would allow one failure first.
fn fleet_plan(name: &str) -> PlanSpec {
    PlanSpec::new(name, 3, 4).rollout(&[
        "concurrency: 8",
        "rate: unlimited",
        "max_failures: 10%",
        "request_timeout: 5s",
        "wait: { enabled: true, timeout: 20s, poll: 20ms }",
    ])
}

/// A wrong secret key stops the run at the first 401: exactly one request reaches the
/// endpoint, exit 2, one message naming the endpoint and the code (never the key), the rest
/// reported as not started; and a resume with the right key finishes the plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_key_stops_the_run_at_the_first_401_with_exit_2() {
    let mut spec = fleet_plan("bad-key");
    let mut seed = spec.load();
    let sim = start_sim(signing_sim_config(Duration::from_millis(30)), &mut seed).await;
    spec.endpoint = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let plan = spec.write(dir.path());
    let mut command = flotilla_with_wrong_secret(dir.path());
    command.arg("apply").arg(&plan).args([
        "--progress",
        "plain",
        "--report-json",
        "report.json",
        "--summary-md",
        "summary.md",
    ]);
    let output = output_within(LIMIT, command).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(exit_code(&output), Some(2), "{stdout}{stderr}");

    let log = sim.request_log();
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0].status, Some(401));
    assert_eq!(log[0].error_code.as_deref(), Some("APIG.0301"));

    let report = read_json(&dir.path().join("report.json"));
    assert_valid_report(&report);
    assert_eq!(report["summary"]["failed"], 1, "{report:#}");
    assert_eq!(report["summary"]["skipped"], 11, "{report:#}");
    let refused = &report["credentials_refused"];
    assert_eq!(refused["endpoint"], sim.base_url().as_str(), "{report:#}");
    assert_eq!(refused["failure"], "authentication");
    assert_eq!(refused["code"], "APIG.0301");
    for op in report["operations"].as_array().unwrap() {
        if op["outcome"] == "skipped" {
            let reason = op["skip_reason"].as_str().unwrap();
            assert!(reason.contains("APIG.0301"), "{reason}");
            assert!(op["attempts"].as_array().unwrap().is_empty());
        }
    }

    let message = format!("error: credentials refused by {}", sim.base_url());
    assert_eq!(stderr.matches(&message).count(), 1, "{stderr}");
    assert!(stderr.contains("APIG.0301"), "{stderr}");
    assert!(stdout.contains("halted: credentials refused"), "{stdout}");
    assert!(!stderr.contains("exceeded its failure budget"), "{stderr}");
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(summary.contains("**Credentials refused:**"), "{summary}");
    for output in [&stdout, &stderr, &summary] {
        assert!(!output.contains(WRONG_SK) && !output.contains(TEST_SK));
    }

    // With the right key, a resume does the whole plan.
    let mut command = flotilla_with_credentials(dir.path());
    command
        .arg("apply")
        .arg(&plan)
        .args(["--resume", "--progress", "plain"]);
    let output = output_within(LIMIT, command).await;
    assert_eq!(exit_code(&output), Some(0), "{}", text(&output.stderr));
    assert_eq!(puts(&sim.request_log()).count(), 12);
}

/// Two endpoints, one of which refuses the credentials: it gets exactly one request, the other
/// finishes only the operations already in flight, and nothing new starts anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_endpoint_gets_one_request_and_the_other_starts_nothing_new() {
    let mut spec = PlanSpec::new("two-endpoints", 2, 6).rollout(&[
        "concurrency: 2",
        "per_cluster: 1",
        "rate: unlimited",
        "request_timeout: 5s",
        "wait: { enabled: true, timeout: 20s, poll: 20ms }",
    ]);
    let mut seed = spec.load();
    let good = start_sim(signing_sim_config(Duration::from_millis(30)), &mut seed).await;
    let refusing_config =
        sim_config(Duration::from_millis(30)).with_auth(flotilla::sim::SimAuth::AkSk {
            ak: flotilla::secret::Secret::new(TEST_AK),
            sk: flotilla::secret::Secret::new(WRONG_SK),
            project_id: None,
        });
    let refusing = start_sim(refusing_config, &mut seed).await;
    spec.endpoint = good.base_url();
    let dir = tempfile::tempdir().unwrap();
    let yaml = spec.to_yaml().replace(
        &format!("c2: {{ id: {}, labels: {{}} }}", cluster_id(2)),
        &format!(
            "c2: {{ id: {}, labels: {{}}, endpoint: \"{}\" }}",
            cluster_id(2),
            refusing.base_url()
        ),
    );
    assert!(yaml.contains(&refusing.base_url()), "{yaml}");
    let plan = dir.path().join("two-endpoints.yaml");
    std::fs::write(&plan, yaml).unwrap();
    let mut command = flotilla_with_credentials(dir.path());
    command
        .arg("apply")
        .arg(&plan)
        .args(["--progress", "plain", "--report-json", "report.json"]);
    let output = output_within(LIMIT, command).await;
    assert_eq!(exit_code(&output), Some(2), "{}", text(&output.stderr));
    assert_eq!(
        refusing.request_log().len(),
        1,
        "{:#?}",
        refusing.request_log()
    );

    let report = read_json(&dir.path().join("report.json"));
    assert_valid_report(&report);
    assert_eq!(
        report["credentials_refused"]["endpoint"],
        refusing.base_url().as_str()
    );
    let operations = report["operations"].as_array().unwrap();
    let count = |cluster: &str, outcome: &str| {
        operations
            .iter()
            .filter(|op| op["cluster"]["name"] == cluster && op["outcome"] == outcome)
            .count()
    };
    // c1 (the good endpoint): at most the one operation in flight finished.
    assert!(count("c1", "succeeded") <= 1, "{report:#}");
    assert!(count("c1", "skipped") >= 5, "{report:#}");
    assert_eq!(count("c2", "failed"), 1, "{report:#}");
    assert_eq!(count("c2", "skipped"), 5, "{report:#}");
    let good_releases: std::collections::HashSet<_> = good
        .request_log()
        .iter()
        .filter_map(|entry| release_of(&entry.path))
        .map(|(_, _, name)| name)
        .collect();
    assert!(good_releases.len() <= 1, "{good_releases:?}");
}

/// `plan --diff` with a wrong key: exit 2 at the first 401, one request, no diff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_diff_with_a_wrong_secret_key_exits_2_after_one_request() {
    let mut spec = fleet_plan("bad-key-diff");
    let mut seed = spec.load();
    let sim = start_sim(signing_sim_config(Duration::from_millis(30)), &mut seed).await;
    spec.endpoint = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let plan = spec.write(dir.path());
    let mut command = flotilla_with_wrong_secret(dir.path());
    command.arg("plan").arg(&plan).arg("--diff");
    let output = output_within(LIMIT, command).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(exit_code(&output), Some(2), "{stdout}{stderr}");
    assert_eq!(sim.request_log().len(), 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: credentials: refused by {}",
            sim.base_url()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP 401 APIG.0301"), "{stderr}");
    assert!(!stderr.contains(WRONG_SK), "{stderr}");
}
