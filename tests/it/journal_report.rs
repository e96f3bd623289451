//! A report rendered from a journal, end to end with the real binary: for a finished run it is
//! the run's own `--report-json`, whole; for a run killed with SIGKILL it lists every planned
//! operation (in flight, never started) with its cluster and wave, and honest times.

use std::os::unix::process::ExitStatusExt as _;
use std::process::Stdio;
use std::time::Duration;

use crate::e2e_support::*;

const LIMIT: Duration = Duration::from_secs(60);

fn report_of(dir: &std::path::Path, input: &str, format: &str) -> std::process::Command {
    let mut command = flotilla(dir);
    command.args(["report", input, "--format", format]);
    command
}

/// Three waves of one cluster each; on every cluster r1 changes, r2 is already as planned
/// (the simulator seeds releases without values) and r3 fails its deploy and is rolled back.
/// One at a time: the canary's r3 halts the run, and the next waves are skipped.
fn mixed_plan() -> PlanSpec {
    let mut spec = PlanSpec::new("mixed", 3, 3).rollout(&[
        "concurrency: 1",
        "per_cluster: 1",
        "rate: unlimited",
        "request_timeout: 5s",
        "wait: { enabled: true, timeout: 20s, poll: 20ms }",
        "waves:",
        "  - { name: canary, select: { clusters: [c1] }, soak: 1s }",
        "  - { name: main, select: { clusters: [c2] } }",
        "  - { name: tail, select: { clusters: [c3] } }",
    ]);
    spec.rollback_on_failure = true;
    spec.values_of = |m| match m {
        2 => Some("{}".to_owned()),
        3 => Some("{ imageTag: fail-3 }".to_owned()),
        _ => None,
    };
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_runs_journal_reports_exactly_what_the_run_reported() {
    let dir = tempfile::tempdir().unwrap();
    let plan = mixed_plan().write(dir.path());
    let mut command = flotilla(dir.path());
    command.arg("apply").arg(&plan).args([
        "--simulate",
        "--sim-settle",
        "30ms",
        "--progress",
        "plain",
        "--journal",
        "journal.jsonl",
        "--report-json",
        "report.json",
    ]);
    let output = output_within(LIMIT, command).await;
    assert_eq!(exit_code(&output), Some(1), "{}", text(&output.stderr));
    let own = read_json(&dir.path().join("report.json"));
    assert_valid_report(&own);
    // The run is as mixed as it should be.
    let summary = &own["summary"];
    assert_eq!(summary["succeeded"], 1, "{own:#}");
    assert_eq!(summary["unchanged"], 1, "{own:#}");
    assert_eq!(summary["failed"], 1, "{own:#}");
    assert_eq!(summary["skipped"], 6, "{own:#}");
    let failed = own["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["outcome"] == "failed")
        .unwrap();
    assert_eq!(failed["rollback"]["outcome"], "succeeded", "{failed:#}");
    assert!(own["halted"].is_string(), "{own:#}");

    let output = output_within(LIMIT, report_of(dir.path(), "journal.jsonl", "json")).await;
    assert_eq!(exit_code(&output), Some(1), "{}", text(&output.stderr));
    let from_journal: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("a JSON report");
    // Whole documents: no field may differ.
    assert_eq!(from_journal, own);
    // And so every rendering of the two is the same.
    for format in ["table", "md", "junit"] {
        let of_journal = output_within(LIMIT, report_of(dir.path(), "journal.jsonl", format)).await;
        let of_report = output_within(LIMIT, report_of(dir.path(), "report.json", format)).await;
        assert_eq!(
            text(&of_journal.stdout),
            text(&of_report.stdout),
            "--format {format}"
        );
        assert!(of_journal.stderr.is_empty(), "{}", text(&of_journal.stderr));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runs_journal_lists_every_planned_operation_with_honest_times() {
    let dir = tempfile::tempdir().unwrap();
    let plan = PlanSpec::new("killed", 4, 10)
        .rollout(&[
            "concurrency: 4",
            "per_cluster: 1",
            "rate: unlimited",
            "request_timeout: 5s",
            "wait: { enabled: true, timeout: 20s, poll: 50ms }",
            "waves:",
            "  - { name: canary, select: { clusters: [c1] } }",
            "  - { name: rest, select: { labels: {} } }",
        ])
        .write(dir.path());
    let journal = dir.path().join("journal.jsonl");
    let mut child = flotilla(dir.path())
        .arg("apply")
        .arg(&plan)
        .args([
            "--simulate",
            "--sim-latency",
            "30ms",
            "--sim-settle",
            "150ms",
            "--progress",
            "never",
            "--journal",
            "journal.jsonl",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("flotilla runs");
    // Under way in the second wave: some operations ended there, others are in flight.
    let under_way = eventually(Duration::from_secs(30), || {
        std::fs::read_to_string(&journal).is_ok_and(|j| {
            j.lines()
                .filter(|l| l.contains("\"record\":\"finished\"") && l.contains("\"rest\""))
                .count()
                >= 2
        })
    })
    .await;
    assert!(under_way, "the run reached its second wave");
    child.kill().expect("SIGKILL sent");
    let status = child.wait().expect("reaped");
    assert_eq!(status.signal(), Some(9), "killed while running");

    let output = output_within(LIMIT, report_of(dir.path(), "journal.jsonl", "json")).await;
    let stderr = text(&output.stderr);
    assert_eq!(exit_code(&output), Some(130), "{stderr}");
    assert!(stderr.contains("killed or crashed"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_valid_report(&report);
    assert_eq!(report["interrupted"], true);
    assert_eq!(report["summary"]["total"], 40, "every planned operation");
    let operations = report["operations"].as_array().unwrap();
    let indexes: Vec<u64> = operations
        .iter()
        .map(|op| op["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, (0..40).collect::<Vec<_>>(), "in plan order");
    for op in operations {
        assert!(
            op["cluster"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with('c')),
            "{op}"
        );
        assert!(
            ["canary", "rest"].contains(&op["wave"].as_str().unwrap()),
            "{op}"
        );
    }
    let with_reason = |reason: &str| {
        operations
            .iter()
            .filter(|op| {
                op["skip_reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with(reason))
            })
            .count()
    };
    let not_started = with_reason("not started");
    assert!(not_started > 0, "work remained: {report:#}");
    assert_eq!(report["summary"]["skipped"], not_started, "{report:#}");
    assert!(
        report["summary"]["succeeded"].as_u64().unwrap() >= 12,
        "the canary and some of the rest: {report:#}"
    );

    // Times: from the run's start to the last record written, not the longest operation.
    let started: jiff::Timestamp = report["started_at"].as_str().unwrap().parse().unwrap();
    let finished: jiff::Timestamp = report["finished_at"].as_str().unwrap().parse().unwrap();
    assert!(finished > started, "{report:#}");
    let span = finished.duration_since(started).as_millis();
    assert_eq!(report["duration_ms"].as_i64().unwrap() as i128, span);
    let longest = operations
        .iter()
        .map(|op| op["duration_ms"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(
        report["duration_ms"].as_u64().unwrap() > longest,
        "the run lasted longer than any one operation: {report:#}"
    );
    let record_times: Vec<jiff::Timestamp> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|l| {
            l.get("at")
                .or_else(|| l.get("started_at").filter(|_| l["record"] == "run"))
                .and_then(|t| t.as_str()?.parse().ok())
        })
        .collect();
    assert_eq!(record_times.iter().max(), Some(&finished));
}

/// The hash `plan` prints is the plan's one hash: the default journal is named after it, and
/// the report and the journal record it. A plan whose variables changed is another plan: its
/// `--resume` points at the journal of the plan it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_plan_hash_names_the_journal_and_is_the_reports() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = PlanSpec::new("hashed", 2, 1).rollout(&[
        "rate: unlimited",
        "request_timeout: 5s",
        "wait: { enabled: true, timeout: 20s, poll: 20ms }",
    ]);
    spec.values = "{ imageTag: \"${TAG:-2.0.0}\" }".to_owned();
    let plan = spec.write(dir.path());
    let with_tag = |command: &mut std::process::Command, tag: &str| {
        command.env("TAG", tag);
    };

    let mut command = flotilla(dir.path());
    command.arg("plan").arg(&plan);
    with_tag(&mut command, "2.5.0");
    let output = output_within(LIMIT, command).await;
    assert_eq!(exit_code(&output), Some(0), "{}", text(&output.stderr));
    let shown = text(&output.stdout);
    let short = shown
        .split("sha256 ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("a hash in {shown}"))
        .to_owned();
    assert_eq!(short.len(), 12, "{shown}");

    let apply = |tag: &str, extra: &[&str]| {
        let mut command = flotilla(dir.path());
        command.arg("apply").arg(&plan).args([
            "--simulate",
            "--sim-settle",
            "20ms",
            "--progress",
            "never",
        ]);
        command.args(extra);
        with_tag(&mut command, tag);
        command
    };
    let output = output_within(LIMIT, apply("2.5.0", &["--report-json", "report.json"])).await;
    assert_eq!(exit_code(&output), Some(0), "{}", text(&output.stderr));
    let journals: Vec<String> = std::fs::read_dir(dir.path().join(".flotilla/journal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        journals,
        [format!("hashed-{short}-simulate.jsonl")],
        "named after the plan's hash, `-simulate` once"
    );
    let report = read_json(&dir.path().join("report.json"));
    assert!(
        report["plan"]["hash"].as_str().unwrap().starts_with(&short),
        "{report:#}"
    );
    let journal = format!(".flotilla/journal/{}", journals[0]);
    let output = output_within(LIMIT, report_of(dir.path(), &journal, "json")).await;
    let from_journal: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(from_journal["plan"]["hash"], report["plan"]["hash"]);

    // Another tag is another plan: its resume finds no journal of its own, and is pointed at
    // the one of the plan it was.
    let output = output_within(LIMIT, apply("2.6.0", &["--resume"])).await;
    let stderr = text(&output.stderr);
    assert_eq!(exit_code(&output), Some(2), "{stderr}");
    assert!(stderr.contains("another hash"), "{stderr}");
    assert!(stderr.contains(&journal), "{stderr}");
    assert!(stderr.contains("--force-resume"), "{stderr}");
    let output = output_within(
        LIMIT,
        apply(
            "2.6.0",
            &["--resume", "--journal", &journal, "--force-resume"],
        ),
    )
    .await;
    assert_eq!(exit_code(&output), Some(0), "{}", text(&output.stderr));
}
