//! Rehearsals with `apply --simulate`: a real plan's soaks, polls and settling run
//! `--time-scale` times faster, and the report says so.

use std::path::Path;
use std::time::Duration;

use crate::e2e_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_plan_rehearses_sped_up_and_the_report_records_the_scale() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/fleet-upgrade.yaml");
    let report_path = dir.path().join("report.json");
    let mut command = flotilla(dir.path());
    // The variables an unattended run must be given, given.
    command
        .env("IMAGE_TAG", "3.1.0")
        .env("PAYMENTS_DB_PASSWORD", "rehearsal-only")
        .env("CN_NORTH_4_PROJECT_ID", "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e")
        .env("CN_EAST_3_PROJECT_ID", "1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f")
        .arg("apply")
        .arg(&plan)
        .args(["--simulate", "--time-scale", "100", "--progress", "plain"])
        .arg("--report-json")
        .arg(&report_path);
    // Seven minutes of soaks and ten-second polls, a hundred times faster: seconds.
    let out = output_within(Duration::from_secs(120), command).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("time runs 100x faster"), "{stderr}");

    let report = read_json(&report_path);
    assert_valid_report(&report);
    assert_eq!(report["settings"]["time_scale"], 100.0);
    assert_eq!(report["settings"]["rollout"]["wait"]["poll"], "100ms");
    assert_eq!(report["settings"]["rollout"]["rate"], 2000.0);
    assert_eq!(report["summary"]["failed"], 0);
    assert!(report["summary"]["succeeded"].as_u64().unwrap() > 0);
}

#[test]
fn the_time_scale_is_only_for_rehearsals_and_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        flotilla(dir.path())
            .arg("apply")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml"))
            .args(args)
            .output()
            .unwrap()
    };
    let without_simulate = run(&["--time-scale", "10"]);
    assert_eq!(without_simulate.status.code(), Some(2));
    let too_fast = run(&["--simulate", "--time-scale", "0.5"]);
    assert_eq!(too_fast.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&too_fast.stderr).contains("from 1 to 10000"));
}

/// A rehearsal changed nothing real: it keeps its own journal, a real run cannot `--resume` it,
/// and `undo` will not roll back real releases for it.
#[test]
fn a_rehearsal_is_never_taken_for_a_real_run() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml");
    let rehearsal = flotilla(dir.path())
        .arg("apply")
        .arg(&plan)
        .args(["--simulate", "--time-scale", "100", "--progress", "never"])
        .args(["--report-json", "rehearsal.json"])
        .output()
        .unwrap();
    assert_eq!(rehearsal.status.code(), Some(0));
    let journals: Vec<String> = std::fs::read_dir(dir.path().join(".flotilla/journal"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(journals.len(), 1, "{journals:?}");
    assert!(journals[0].ends_with("-simulate.jsonl"), "{journals:?}");

    let journal = dir.path().join(".flotilla/journal").join(&journals[0]);
    let resumed = flotilla_with_credentials(dir.path())
        .arg("apply")
        .arg(&plan)
        .args(["--endpoint", NOWHERE, "--resume", "--journal"])
        .arg(&journal)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("a rehearsal against the simulator"),
        "{stderr}"
    );

    let undone = flotilla_with_credentials(dir.path())
        .args(["undo", "rehearsal.json", "--plan"])
        .arg(&plan)
        .args(["--endpoint", NOWHERE])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&undone.stderr);
    assert_eq!(undone.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("changed nothing real"), "{stderr}");
}
