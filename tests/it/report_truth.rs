//! What reports say about each operation, from the real binary against the simulator: the
//! rollback's requests are the rollback's, every attempt is typed, the schema accepts every
//! report of every fault the simulator injects, a halt is told once per wave after its cause,
//! and an interrupt after a PUT says the change was sent.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::e2e_support::*;

/// Runs `apply --simulate` of `plan` with `flags`, writing every report format; returns the
/// process's output (stdout holds the table).
async fn apply(dir: &Path, plan: &Path, flags: &[&str]) -> std::process::Output {
    let mut command = flotilla(dir);
    command
        .arg("apply")
        .arg(plan)
        .args([
            "--simulate",
            "--sim-latency",
            "2ms",
            "--sim-settle",
            "60ms",
            "--progress",
            "plain",
            "--report-json",
            "report.json",
            "--junit",
            "junit.xml",
            "--summary-md",
            "summary.md",
        ])
        .args(flags);
    output_within(Duration::from_secs(60), command).await
}

fn quick_rollout() -> [&'static str; 6] {
    [
        "concurrency: 4",
        "rate: unlimited",
        "request_timeout: 300ms",
        "max_failures: 100",
        "retry: { attempts: 6, backoff: 5ms, max_backoff: 20ms }",
        "wait: { enabled: true, timeout: 20s, poll: 20ms }",
    ]
}

/// Every attempt of `report`, the rollbacks' included.
fn attempts(report: &serde_json::Value) -> Vec<&serde_json::Value> {
    let operations = report["operations"].as_array().expect("operations");
    operations
        .iter()
        .flat_map(|op| {
            let own = op["attempts"].as_array().into_iter().flatten();
            let rollback = op["rollback"]["attempts"].as_array().into_iter().flatten();
            own.chain(rollback)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollbacks_requests_are_its_own_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = PlanSpec::new("rolled-back", 1, 1).rollout(&quick_rollout());
    spec.values = "{ imageTag: fail-3.0.0 }".to_owned();
    spec.rollback_on_failure = true;
    let plan = spec.write(dir.path());
    let output = apply(dir.path(), &plan, &[]).await;
    let stdout = text(&output.stdout);
    assert_eq!(exit_code(&output), Some(1), "{}", text(&output.stderr));

    let report = read_json(&dir.path().join("report.json"));
    assert_valid_report(&report);
    let op = &report["operations"][0];
    assert_eq!(op["outcome"], "failed");
    let own: Vec<_> = op["attempts"].as_array().unwrap().iter().collect();
    assert_eq!(own.len(), 1, "the change was sent once: {op:#}");
    assert_eq!(
        (own[0]["request"].as_str(), own[0]["kind"].as_str()),
        (Some("put"), Some("ok"))
    );
    let rollback = &op["rollback"];
    assert_eq!(rollback["outcome"], "succeeded", "{op:#}");
    let theirs = rollback["attempts"].as_array().unwrap();
    assert_eq!(theirs.len(), 1, "{rollback:#}");
    assert_eq!(theirs[0]["request"], "put");
    assert_eq!(
        (op["change_sent"].as_bool(), op["change_applied"].as_bool()),
        (Some(true), Some(true))
    );

    // The table counts the change's PUT, and the rollback's apart.
    assert!(stdout.contains("rollback succeeded (1 PUT)"), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.contains(" r1 "))
        .expect("the row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    // cluster namespace release action result revision status attempts: the change's one PUT.
    assert_eq!(cells.get(7), Some(&"1"), "{stdout}");
    let markdown = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(markdown.contains("| 1 + 1 rollback |"), "{markdown}");
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(junit.contains("rollback succeeded: put 200 ok"), "{junit}");
    assert!(
        !junit.contains("rerun"),
        "a rollback is not a rerun: {junit}"
    );
}

/// Each fault the simulator can inject, as `apply --simulate` flags, and the attempt kinds at
/// least one of its requests must show.
const FAULTS: &[(&str, &[&str], &[&str])] = &[
    ("throttling", &["--sim-throttle", "5"], &["throttled"]),
    (
        "5xx",
        &["--sim-error-rate", "0.4", "--sim-rng-seed", "7"],
        &["server_error"],
    ),
    (
        "resets",
        &["--sim-reset-rate", "0.4", "--sim-rng-seed", "7"],
        &["connection_lost"],
    ),
    (
        "timeouts",
        &["--sim-hang-rate", "0.3", "--sim-rng-seed", "7"],
        &["timed_out"],
    ),
    (
        "ambiguous PUTs",
        &["--sim-ambiguous-rate", "0.4", "--sim-rng-seed", "7"],
        &[],
    ),
    (
        "failed deploys",
        &["--sim-deploy-fail-rate", "0.5", "--sim-rng-seed", "7"],
        &[],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_the_simulator_injects_gives_reports_the_schema_accepts() {
    let mut kinds_seen = BTreeSet::new();
    for (fault, flags, expected) in FAULTS {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = PlanSpec::new("faults", 3, 4).rollout(&quick_rollout());
        spec.rollback_on_failure = true;
        let plan = spec.write(dir.path());
        let output = apply(dir.path(), &plan, flags).await;
        let stderr = text(&output.stderr);
        assert!(
            matches!(exit_code(&output), Some(0 | 1)),
            "{fault}: {stderr}"
        );
        let report = read_json(&dir.path().join("report.json"));
        assert_valid_report(&report);
        let kinds: BTreeSet<String> = attempts(&report)
            .iter()
            .map(|a| {
                a["kind"]
                    .as_str()
                    .expect("every attempt has a kind")
                    .to_owned()
            })
            .collect();
        for kind in *expected {
            assert!(
                kinds.contains(*kind),
                "{fault}: no {kind} attempt in {report:#}"
            );
        }
        for attempt in attempts(&report) {
            let kind = attempt["kind"].as_str().unwrap();
            // Throttled exactly when the kind says so; every failure says what it was.
            assert_eq!(
                attempt["throttled"] == true,
                kind == "throttled",
                "{attempt}"
            );
            assert_eq!(attempt.get("message").is_some(), kind != "ok", "{attempt}");
        }
        if *fault == "ambiguous PUTs" {
            assert!(
                kinds.contains("server_error") || kinds.contains("connection_lost"),
                "{fault}: {kinds:?}"
            );
        }
        if *fault == "failed deploys" {
            let rolled_back = report["operations"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|op| op.get("rollback").is_some())
                .collect::<Vec<_>>();
            assert!(!rolled_back.is_empty(), "{report:#}");
            for op in rolled_back {
                let puts = |list: &serde_json::Value| {
                    list.as_array()
                        .unwrap()
                        .iter()
                        .filter(|a| a["request"] == "put")
                        .count()
                };
                assert!(puts(&op["rollback"]["attempts"]) >= 1, "{op:#}");
                assert_eq!(puts(&op["attempts"]), 1, "the change went once: {op:#}");
            }
        }
        kinds_seen.extend(kinds);
    }
    assert!(kinds_seen.contains("ok"), "{kinds_seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_is_told_after_its_cause_and_once_per_wave_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = PlanSpec::new("halting", 8, 3);
    spec.labels = |n| {
        let tier = match n {
            1 => "canary",
            2..=4 => "early",
            _ => "late",
        };
        format!("{{ tier: {tier} }}")
    };
    spec.rollout = [
        "concurrency: 4",
        "rate: unlimited",
        "request_timeout: 2s",
        "wait: { enabled: true, timeout: 20s, poll: 20ms }",
        "waves:",
        "  - { name: canary, select: { labels: { tier: canary } }, max_failures: 0 }",
        "  - { name: early, select: { labels: { tier: early } } }",
        "  - { name: late, select: { labels: { tier: late } } }",
    ]
    .iter()
    .map(|l| (*l).to_owned())
    .collect();
    spec.values_of = |m| (m == 1).then(|| "{ imageTag: fail-canary }".to_owned());
    let plan = spec.write(dir.path());
    let output = apply(dir.path(), &plan, &[]).await;
    let stderr = text(&output.stderr);
    assert_eq!(exit_code(&output), Some(1), "{stderr}");

    let failed_at = stderr
        .find("failed    c1/apps/r1")
        .expect("the failure is told");
    let halted_at = stderr.find("halted: ").expect("the halt is told");
    assert!(failed_at < halted_at, "the cause comes first: {stderr}");
    // A canary operation the halt kept from starting is one alone: its own line says it.
    assert!(
        stderr
            .lines()
            .filter(|l| l.contains("] skipped "))
            .all(|l| l.contains(" c1/apps/")),
        "no line per skipped operation of a later wave: {stderr}"
    );
    for (wave, count) in [("early", 9), ("late", 12)] {
        let line =
            format!("wave {wave}: {count} operation(s) skipped (run halted: wave \"canary\"");
        assert_eq!(stderr.matches(&line).count(), 1, "{line}: {stderr}");
    }

    let markdown = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(
        markdown.contains("| wave early: 9 operation(s) | | | skipped |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| wave late: 12 operation(s) | | | skipped |"),
        "{markdown}"
    );
    let failures = &markdown[..markdown.find("<details>").unwrap()];
    // c1/apps/r3, kept from starting alone, and one row for each later wave.
    assert_eq!(failures.matches("| skipped |").count(), 3, "{markdown}");

    // JSON still lists every operation.
    let report = read_json(&dir.path().join("report.json"));
    assert_valid_report(&report);
    assert_eq!(report["summary"]["total"], 24);
    assert_eq!(report["summary"]["skipped"], 22);
    assert_eq!(report["operations"].as_array().unwrap().len(), 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_after_the_put_says_the_change_was_sent_and_applied() {
    let dir = tempfile::tempdir().unwrap();
    // Every operation is waiting for its release to settle (30 s) when the signal comes.
    let plan = PlanSpec::new("sent", 2, 2)
        .rollout(&[
            "concurrency: 4",
            "rate: unlimited",
            "request_timeout: 5s",
            "wait: { enabled: true, timeout: 60s, poll: 50ms }",
        ])
        .write(dir.path());
    let log_path = dir.path().join("requests.jsonl");
    let child = flotilla(dir.path())
        .arg("apply")
        .arg(&plan)
        .args([
            "--simulate",
            "--sim-settle",
            "30s",
            "--progress",
            "plain",
            "--report-json",
            "report.json",
            "--summary-md",
            "summary.md",
            "--sim-request-log",
        ])
        .arg(&log_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flotilla runs");
    let all_sent = eventually(Duration::from_secs(20), || {
        std::fs::read_to_string(&log_path)
            .is_ok_and(|log| log.lines().filter(|l| l.contains("\"PUT\"")).count() >= 4)
    })
    .await;
    assert!(all_sent, "every PUT went out");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.wait_with_output().expect("waited")),
    )
    .await
    .expect("exits after the signal")
    .expect("joined");
    assert_eq!(exit_code(&output), Some(130), "{}", text(&output.stderr));

    let report = read_json(&dir.path().join("report.json"));
    assert_valid_report(&report);
    for op in report["operations"].as_array().unwrap() {
        assert_eq!(op["outcome"], "cancelled", "{op:#}");
        assert_eq!(op["change_sent"], true, "{op:#}");
        assert_eq!(op["change_applied"], true, "{op:#}");
        let reason = op["skip_reason"].as_str().unwrap();
        assert!(
            reason.starts_with(
                "interrupted after its change was sent: the change applied (revision 2)"
            ),
            "{reason}"
        );
    }
    let markdown = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(
        markdown.contains("interrupted after its change was sent"),
        "{markdown}"
    );
}
