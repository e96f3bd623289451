//! Every output of a real run: the JSON report validates against the schema, the JUnit report
//! parses back, and no output (terminal, reports, journal, logs at -vvv) holds the AK, the SK
//! or a secret-looking value, although the simulator proves they were used.

use std::path::Path;
use std::time::Duration;

use crate::e2e_support::*;

const SECRET_VALUE: &str = "hunter2-SECRET";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_holds_a_credential_or_a_secret_value() {
    // Two waves, one deploy failure tolerated, and request errors so that failures and
    // retries are logged too.
    let mut spec = PlanSpec::new("secretive", 3, 3).rollout(&[
        "concurrency: 4",
        "rate: unlimited",
        "retry: { attempts: 20, backoff: 5ms, max_backoff: 20ms }",
        "request_timeout: 2s",
        "max_failures: 5",
        "wait: { enabled: true, timeout: 20s, poll: 20ms }",
        "waves:",
        "  - { name: first, select: { clusters: [c1] } }",
        "  - { name: rest, select: { labels: {} } }",
    ]);
    spec.values = format!(
        "{{ imageTag: \"2.0.0\", dbPassword: {SECRET_VALUE}, nested: {{ apiToken: {SECRET_VALUE} }} }}"
    );
    spec.values_of =
        |m| (m == 3).then(|| format!("{{ imageTag: fail-3, dbPassword: {SECRET_VALUE} }}"));
    let mut seed = spec.load();
    let mut config = signing_sim_config(Duration::from_millis(30));
    config.error_rate = 0.15;
    config.ambiguous_rate = 0.1;
    let sim = start_sim(config, &mut seed).await;
    spec.endpoint = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let plan = spec.write(dir.path());

    let mut command = flotilla_with_credentials(dir.path());
    command
        .args(["-vvv", "apply"])
        .arg(&plan)
        .args([
            "--progress",
            "plain",
            "--journal",
            "journal.jsonl",
            "--report-json",
            "report.json",
            "--junit",
            "junit.xml",
            "--summary-md",
            "summary.md",
        ])
        .env("GITHUB_STEP_SUMMARY", dir.path().join("step-summary.md"))
        .env("RUST_LOG", "trace");
    let output = output_within(Duration::from_secs(60), command).await;
    assert_eq!(exit_code(&output), Some(1), "{}", text(&output.stderr));

    // The secrets were really used: requests were signed with the AK/SK (the simulator
    // checks), and the values reached the simulator.
    let log = sim.request_log();
    assert!(
        log.iter().any(|e| e.status == Some(200)),
        "signed requests accepted"
    );
    assert!(
        log.iter().all(|e| e.status != Some(401)),
        "no signature refused"
    );
    let stored = sim.with_store(|store| store.snapshot());
    assert!(
        serde_json::to_string(&stored)
            .unwrap()
            .contains(SECRET_VALUE)
    );

    let mut outputs = vec![
        ("stdout".to_owned(), text(&output.stdout)),
        ("stderr".to_owned(), text(&output.stderr)),
    ];
    for file in [
        "report.json",
        "junit.xml",
        "summary.md",
        "step-summary.md",
        "journal.jsonl",
    ] {
        outputs.push((file.to_owned(), read(&dir.path().join(file))));
    }
    for format in ["table", "json", "junit", "md"] {
        for input in ["journal.jsonl", "report.json"] {
            let mut command = flotilla(dir.path());
            command.args(["-vvv", "report", input, "--format", format]);
            let rendered = output_within(Duration::from_secs(30), command).await;
            // `report` exits as the run it describes did.
            assert_eq!(exit_code(&rendered), Some(1), "report {input} {format}");
            outputs.push((
                format!("report {input} --format {format}"),
                text(&rendered.stdout),
            ));
            outputs.push((
                format!("report {input} --format {format} (stderr)"),
                text(&rendered.stderr),
            ));
        }
    }
    assert!(
        outputs[1].1.lines().count() > 20,
        "-vvv logged plenty: {}",
        outputs[1].1
    );
    for (name, content) in &outputs {
        for secret in [TEST_AK, TEST_SK, SECRET_VALUE] {
            assert!(
                !content.contains(secret),
                "{name} holds a secret ({} chars): {content}",
                secret.len()
            );
        }
    }
    // The other values are reported as they are: masking did not blank everything.
    assert!(outputs.iter().any(|(_, c)| c.contains("fail-3")));
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_validate_and_parse_back() {
    let mut spec = PlanSpec::new("reported", 4, 2).rollout(&[
        "concurrency: 4",
        "rate: unlimited",
        "retry: { attempts: 20, backoff: 5ms, max_backoff: 20ms }",
        "request_timeout: 2s",
        "max_failures: 1",
        "wait: { enabled: true, timeout: 20s, poll: 20ms }",
        "waves:",
        "  - { name: canary, select: { clusters: [c1] } }",
        "  - { name: main, select: { clusters: [c2, c3] } }",
        "  - { name: tail, select: { clusters: [c4] } }",
    ]);
    // r2 fails on every cluster: 1 failure is tolerated, the second halts the run.
    // concurrency 4 and per_cluster 2 start the main wave's four operations at once.
    spec.values_of = |m| (m == 2).then(|| "{ imageTag: fail-2 }".to_owned());
    let dir = tempfile::tempdir().unwrap();
    let plan = spec.write(dir.path());
    let mut command = flotilla(dir.path());
    command.arg("apply").arg(&plan).args([
        "--simulate",
        "--sim-settle",
        "30ms",
        "--sim-error-rate",
        "0.2",
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

    let report = read_json(&dir.path().join("report.json"));
    assert_valid_report(&report);
    // The report states the rollout the way `flotilla plan --format json` does.
    let mut plan_command = flotilla(dir.path());
    plan_command
        .arg("plan")
        .arg(&plan)
        .args(["--format", "json"]);
    let planned = output_within(Duration::from_secs(20), plan_command).await;
    let planned: serde_json::Value = serde_json::from_slice(&planned.stdout).expect("plan JSON");
    assert_eq!(report["settings"]["rollout"], planned["rollout"]);
    assert_eq!(report["settings"]["rollout"]["rate"], "unlimited");
    let summary = &report["summary"];
    assert_eq!(summary["total"], 8, "{summary}");
    // The main wave's two r2 operations run side by side: the first halts, the other finishes.
    assert_eq!(summary["failed"], 3, "{summary}");
    assert_eq!(summary["succeeded"], 3, "{summary}");
    assert_eq!(summary["skipped"], 2, "the tail wave never ran: {summary}");
    for op in report["operations"].as_array().unwrap() {
        if op["outcome"] == "skipped" {
            assert!(
                op["skip_reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{op}"
            );
        }
        if op["outcome"] == "failed" {
            assert!(op["error"]["message"].as_str().is_some(), "{op}");
        }
    }

    let junit = read(&dir.path().join("junit.xml"));
    let parsed = quick_junit::Report::deserialize_from_str(&junit).expect("JUnit parses");
    assert_eq!(parsed.test_suites.len(), 3, "one suite per wave");
    let cases: usize = parsed.test_suites.iter().map(|s| s.test_cases.len()).sum();
    assert_eq!(cases, 8, "one case per operation");
    let failures = parsed
        .test_suites
        .iter()
        .flat_map(|s| &s.test_cases)
        .filter(|c| matches!(c.status, quick_junit::TestCaseStatus::NonSuccess { .. }))
        .count();
    assert_eq!(failures, 3);

    let markdown = read(&dir.path().join("summary.md"));
    // Failures come first, in their own section, before the table of every operation.
    let section_start = markdown.find("### Failures").expect("a failures section");
    let section_end = section_start
        + markdown[section_start..]
            .find("<details>")
            .expect("the table of every operation after it");
    assert!(
        markdown[section_start..section_end].contains("fail-2"),
        "{markdown}"
    );
}

/// `--report-json /dev/stdout` with stdout sent to a file: the report follows the table in that
/// file; the file is not replaced by one holding only the report.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_to_dev_stdout_is_appended_to_what_stdout_holds() {
    let dir = tempfile::tempdir().unwrap();
    let plan = PlanSpec::new("to-stdout", 1, 2)
        .rollout(&["rate: unlimited", "wait: { enabled: false }"])
        .write(dir.path());
    let out_path = dir.path().join("out.txt");
    let mut command = flotilla(dir.path());
    command
        .arg("apply")
        .arg(&plan)
        .args([
            "--simulate",
            "--progress",
            "never",
            "--report-json",
            "/dev/stdout",
        ])
        .stdout(std::fs::File::create(&out_path).unwrap());
    let output = output_within(Duration::from_secs(60), command).await;
    assert_eq!(exit_code(&output), Some(0), "{}", text(&output.stderr));
    let out = read(&out_path);
    let table_end = out.find("2 succeeded").expect("the table's summary line");
    let json_start = out.find("{\n").expect("the JSON report");
    assert!(table_end < json_start, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out[json_start..]).expect("JSON");
    assert_eq!(report["summary"]["succeeded"], 2);
}
