//! SIGINT end to end, from the real binary: exit 130, no request reaches the simulator after
//! the signal (only those already in flight finish), and the report is written.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::e2e_support::*;

/// How long the child may take to notice a signal (it is delivered asynchronously, and this
/// machine is shared): a request sent within this time of `kill` was already on its way.
const NOTICE: Duration = Duration::from_millis(250);

fn send_signal(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_sending_exits_130_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let plan = PlanSpec::new("interrupted", 6, 10)
        .rollout(&[
            "concurrency: 6",
            "per_cluster: 1",
            "rate: unlimited",
            "request_timeout: 5s",
            "wait: { enabled: true, timeout: 20s, poll: 50ms }",
        ])
        .write(dir.path());
    let log_path = dir.path().join("requests.jsonl");
    let child = flotilla(dir.path())
        .arg("apply")
        .arg(&plan)
        .args([
            "--simulate",
            "--sim-latency",
            "50ms",
            "--sim-settle",
            "200ms",
            "--progress",
            "plain",
            "--report-json",
            "report.json",
            "--junit",
            "junit.xml",
            "--journal",
            "journal.jsonl",
            "--sim-request-log",
        ])
        .arg(&log_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flotilla runs");

    // Wait until the run is well under way: the simulator has logged a good part of it.
    let started = eventually(Duration::from_secs(20), || {
        std::fs::read_to_string(&log_path).is_ok_and(|log| log.lines().count() >= 20)
    })
    .await;
    assert!(started, "the run is under way");
    let signalled_at = jiff::Timestamp::now();
    send_signal("-INT", child.id());

    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.wait_with_output().expect("waited")),
    )
    .await
    .expect("exits after the signal")
    .expect("joined");
    let stderr = text(&output.stderr);
    assert_eq!(exit_code(&output), Some(130), "{stderr}");

    let log = read_request_log(&log_path);
    let cutoff = signalled_at + jiff::SignedDuration::try_from(NOTICE).unwrap();
    let late: Vec<_> = log
        .iter()
        .filter(|e| e.arrived.parse::<jiff::Timestamp>().unwrap() > cutoff)
        .collect();
    assert!(late.is_empty(), "requests after the signal: {late:#?}");
    // Everything that arrived got its answer: in-flight requests were allowed to finish.
    assert!(log.iter().all(|e| e.status.is_some()), "{log:#?}");

    let report = read_json(&dir.path().join("report.json"));
    assert_valid_report(&report);
    assert_eq!(report["interrupted"], true, "{report:#}");
    let summary = &report["summary"];
    assert_eq!(summary["total"], 60);
    assert!(summary["cancelled"].as_u64().unwrap() > 0, "{summary}");
    assert!(
        summary["succeeded"].as_u64().unwrap() < 60,
        "the run was cut short: {summary}"
    );
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    quick_junit::Report::deserialize_from_str(&junit).expect("the JUnit report parses");

    // The journal tells the same story as the report: `report` of either exits 130.
    for rendered in ["report.json", "journal.jsonl"] {
        let mut command = flotilla(dir.path());
        command.args(["report", rendered]);
        let output = output_within(Duration::from_secs(20), command).await;
        assert_eq!(exit_code(&output), Some(130), "report {rendered}");
    }
    // Word for word: an interrupted run records its end too.
    let mut command = flotilla(dir.path());
    command.args(["report", "journal.jsonl", "--format", "json"]);
    let output = output_within(Duration::from_secs(20), command).await;
    let from_journal: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(from_journal, report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_an_interrupt_too() {
    let dir = tempfile::tempdir().unwrap();
    let plan = PlanSpec::new("terminated", 2, 10)
        .rollout(&[
            "concurrency: 2",
            "rate: unlimited",
            "request_timeout: 5s",
            "wait: { enabled: true, timeout: 20s, poll: 50ms }",
        ])
        .write(dir.path());
    let log_path = dir.path().join("requests.jsonl");
    let child = flotilla(dir.path())
        .arg("apply")
        .arg(&plan)
        .args([
            "--simulate",
            "--sim-latency",
            "50ms",
            "--sim-settle",
            "300ms",
            "--progress",
            "plain",
            "--report-json",
            "report.json",
            "--sim-request-log",
        ])
        .arg(&log_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flotilla runs");
    let started = eventually(Duration::from_secs(20), || {
        std::fs::metadata(&log_path).is_ok_and(|m| m.len() > 0)
    })
    .await;
    assert!(started, "the run started");
    send_signal("-TERM", child.id());
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.wait_with_output().expect("waited")),
    )
    .await
    .expect("exits after the signal")
    .expect("joined");
    assert_eq!(exit_code(&output), Some(130), "{}", text(&output.stderr));
    let report = read_json(&dir.path().join("report.json"));
    assert_eq!(report["interrupted"], true);
}
