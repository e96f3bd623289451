//! The journal's format version, end to end with the real binary: a new journal begins with its
//! header; a version 1 journal (no header, as earlier builds wrote) is still reported and
//! resumed; a journal of a newer version, or of another format, is refused with exit 2 and
//! both versions named, by `apply --resume`, by a fresh `apply` and by `report`, with nothing
//! sent and the file untouched.

use std::path::Path;
use std::time::Duration;

use crate::e2e_support::*;

const LIMIT: Duration = Duration::from_secs(60);

fn plan(dir: &Path) -> std::path::PathBuf {
    PlanSpec::new("versioned", 2, 2)
        .rollout(&[
            "concurrency: 4",
            "rate: unlimited",
            "request_timeout: 5s",
            "wait: { enabled: true, timeout: 20s, poll: 20ms }",
        ])
        .write(dir)
}

fn apply(
    dir: &Path,
    plan: &Path,
    journal: &str,
    log: &str,
    extra: &[&str],
) -> std::process::Command {
    let mut command = flotilla(dir);
    command
        .arg("apply")
        .arg(plan)
        .args([
            "--simulate",
            "--sim-settle",
            "30ms",
            "--progress",
            "plain",
            "--journal",
            journal,
            "--sim-request-log",
            log,
        ])
        .args(extra);
    command
}

fn report(dir: &Path, journal: &str) -> std::process::Command {
    let mut command = flotilla(dir);
    command.args(["report", journal, "--format", "json"]);
    command
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_journal_begins_with_its_header_and_a_version_1_journal_is_still_read_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let first = output_within(
        LIMIT,
        apply(
            dir.path(),
            &plan,
            "journal.jsonl",
            "first.jsonl",
            &["--report-json", "report.json"],
        ),
    )
    .await;
    assert_eq!(exit_code(&first), Some(0), "{}", text(&first.stderr));
    let written = lines(&dir.path().join("journal.jsonl"));
    assert_eq!(
        written[0],
        serde_json::json!({
            "format": "flotilla-journal",
            "version": 3,
            "flotilla_version": env!("CARGO_PKG_VERSION"),
        })
    );
    assert_eq!(written[1]["record"], "run");

    let reported = output_within(LIMIT, report(dir.path(), "journal.jsonl")).await;
    assert_eq!(exit_code(&reported), Some(0), "{}", text(&reported.stderr));
    let from_v3: serde_json::Value = serde_json::from_slice(&reported.stdout).unwrap();
    assert_eq!(from_v3["summary"]["succeeded"], 4, "{from_v3:#}");
    assert_eq!(from_v3, read_json(&dir.path().join("report.json")));

    // As a version 2 flotilla wrote it: no planned operations, untimed end lines, no end
    // record. Still the same operations, in a report that cannot know more.
    let mut v2 = String::new();
    for mut line in lines(&dir.path().join("journal.jsonl")) {
        if line["record"] == "end" {
            continue;
        }
        let object = line.as_object_mut().unwrap();
        object.remove("planned");
        object
            .remove("at")
            .filter(|_| object["record"] == "finished");
        if let Some(plan) = object.get_mut("plan").and_then(|p| p.as_object_mut()) {
            plan.remove("waves");
            plan.remove("max_failures");
        }
        if object.get("format").is_some() {
            object.insert("version".into(), 2.into());
        }
        v2.push_str(&format!("{line}\n"));
    }
    std::fs::write(dir.path().join("v2.jsonl"), v2).unwrap();
    let reported = output_within(LIMIT, report(dir.path(), "v2.jsonl")).await;
    assert_eq!(exit_code(&reported), Some(0), "{}", text(&reported.stderr));
    let from_v2: serde_json::Value = serde_json::from_slice(&reported.stdout).unwrap();
    assert_eq!(from_v2["summary"], from_v3["summary"]);
    assert_eq!(from_v2["operations"], from_v3["operations"]);
    assert_eq!(
        from_v2["interrupted"], false,
        "a version 2 journal has no end record to miss"
    );
    assert!(from_v2["duration_ms"].as_u64().unwrap() > 0, "{from_v2:#}");

    // The same journal as an earlier flotilla wrote it: the records alone, no header.
    let text_v3 = std::fs::read_to_string(dir.path().join("journal.jsonl")).unwrap();
    let (_, records) = text_v3.split_once('\n').unwrap();
    std::fs::write(dir.path().join("v1.jsonl"), records).unwrap();
    let reported = output_within(LIMIT, report(dir.path(), "v1.jsonl")).await;
    assert_eq!(exit_code(&reported), Some(0), "{}", text(&reported.stderr));
    let from_v1: serde_json::Value = serde_json::from_slice(&reported.stdout).unwrap();
    assert_eq!(
        from_v1, from_v3,
        "a version 1 journal reads as the same run"
    );

    let resumed = output_within(
        LIMIT,
        apply(
            dir.path(),
            &plan,
            "v1.jsonl",
            "resumed.jsonl",
            &["--resume"],
        ),
    )
    .await;
    assert_eq!(exit_code(&resumed), Some(0), "{}", text(&resumed.stderr));
    assert!(
        read_request_log(&dir.path().join("resumed.jsonl")).is_empty(),
        "every operation was done in the version 1 journal: nothing sent"
    );
    let after = lines(&dir.path().join("v1.jsonl"));
    assert_eq!(after[0]["record"], "run", "still a version 1 journal");
    let runs = after.iter().filter(|line| line["record"] == "run").count();
    assert_eq!(runs, 2, "the resume appended its run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_of_a_newer_version_or_another_format_is_refused_with_nothing_sent() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let run = r#"{"record":"run","plan":{"name":"versioned","hash":"00"},"started_at":"2026-11-26T00:00:00Z","flotilla_version":"9.1.0","operations":4,"resume":false,"settings":{}}"#;
    let future = format!(
        "{{\"format\":\"flotilla-journal\",\"version\":4,\"flotilla_version\":\"9.1.0\"}}\n{run}\n"
    );
    let other = format!("{{\"format\":\"other-tool\",\"version\":1}}\n{run}\n");
    for (name, content, expected) in [
        (
            "future.jsonl",
            &future,
            ["format version 4", "by flotilla 9.1.0", "writes version 3"],
        ),
        (
            "other.jsonl",
            &other,
            ["not a flotilla journal", "\"other-tool\"", "version 3"],
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let commands = [
            (
                "apply --resume",
                apply(dir.path(), &plan, name, "resume.jsonl", &["--resume"]),
            ),
            ("apply", apply(dir.path(), &plan, name, "fresh.jsonl", &[])),
            ("report", report(dir.path(), name)),
        ];
        for (what, command) in commands {
            let output = output_within(LIMIT, command).await;
            let stderr = text(&output.stderr);
            assert_eq!(exit_code(&output), Some(2), "{what} {name}: {stderr}");
            for words in expected {
                assert!(stderr.contains(words), "{what} {name}: {stderr}");
            }
            assert!(
                output.stdout.is_empty(),
                "{what} {name}: {}",
                text(&output.stdout)
            );
            assert_eq!(
                &std::fs::read_to_string(&path).unwrap(),
                content,
                "{what} {name}"
            );
        }
        for log in ["resume.jsonl", "fresh.jsonl"] {
            let log = dir.path().join(log);
            assert!(
                !log.exists() || read_request_log(&log).is_empty(),
                "nothing was sent"
            );
        }
    }
}
