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

/// The variables `plans/fleet-upgrade.yaml` requires (`${VAR:?}`), as a CI job would set them.
fn with_fleet_variables(command: &mut std::process::Command) -> &mut std::process::Command {
    command
        .env("IMAGE_TAG", "3.1.0")
        .env("PAYMENTS_DB_PASSWORD", "rehearsal-only")
        .env("CN_NORTH_4_PROJECT_ID", "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e")
        .env("CN_EAST_3_PROJECT_ID", "1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f")
}

/// Every example plan rehearses as it is, rollbacks included (the simulator seeds the history
/// a rollback needs), within 30 s at the scale README suggests.
#[test]
fn every_plan_in_plans_rehearses_and_succeeds() {
    let plans_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
    let mut plans: Vec<_> = std::fs::read_dir(&plans_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    plans.sort();
    assert!(plans.len() >= 3, "{plans:?}");
    for plan in plans {
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let mut command = flotilla(dir.path());
        with_fleet_variables(&mut command)
            .arg("apply")
            .arg(&plan)
            .args(["--simulate", "--time-scale", "60", "--progress", "never"])
            .args(["--report-json", "report.json"]);
        let out = command.output().unwrap();
        let took = started.elapsed();
        let name = plan.display();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(took < Duration::from_secs(30), "{name} took {took:?}");
        let report = read_json(&dir.path().join("report.json"));
        assert_eq!(report["summary"]["failed"], 0, "{name}");
        // Something was done: a rehearsal that changes nothing rehearses nothing.
        assert!(
            report["summary"]["succeeded"].as_u64().unwrap() > 0,
            "{name}: {:#}",
            report["summary"]
        );
    }
}

/// `rollback.yaml` rolls `storefront` back to 41 and `checkout` to 17: the simulator seeds 42
/// and 18 revisions, and each rollback makes a new revision from the one it names.
#[test]
fn a_rollback_plan_rehearses_against_the_history_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/rollback.yaml");
    let out = flotilla(dir.path())
        .arg("apply")
        .arg(&plan)
        .args(["--simulate", "--time-scale", "100", "--progress", "never"])
        .args(["--sim-state", "state.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let state = read_json(&dir.path().join("state.json"));
    let releases = state["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 8);
    for release in releases {
        let (to, current) = match release["name"].as_str().unwrap() {
            "storefront" => (41, 43),
            "checkout" => (17, 19),
            other => panic!("{other}"),
        };
        assert_eq!(release["version"], current, "{release:#}");
        let last = &release["history"][current - 1];
        assert_eq!(last["description"], format!("Rollback to {to}"));
        assert_eq!(last["values"]["seededRevision"], to);
    }
}

/// `--sim-seed-revisions N` gives every release N revisions before the run, for rehearsing
/// `undo`, `previous` or `-N` on top of an upgrade.
#[test]
fn seed_revisions_give_every_release_a_history() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml");
    let out = flotilla(dir.path())
        .arg("apply")
        .arg(&plan)
        .args(["--simulate", "--time-scale", "100", "--progress", "never"])
        .args(["--sim-seed-revisions", "3", "--sim-state", "state.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let state = read_json(&dir.path().join("state.json"));
    for release in state["releases"].as_array().unwrap() {
        assert_eq!(release["version"], 4, "{release:#}");
        assert_eq!(release["history"][3]["action"], "upgrade");
    }
    let refused = flotilla(dir.path())
        .arg("apply")
        .arg(&plan)
        .args(["--simulate", "--sim-seed-revisions", "0"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("from 1 to 1000"));
}

/// Two regions, one throttle setting: each region's simulated endpoint throttles its own
/// requests, so both regions are paced (and get their 429s) independently, as in the cloud.
#[test]
fn each_region_rehearses_against_its_own_endpoint_and_throttle() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan =
        "version: 1\nname: two-regions\ntarget: { region: cn-north-4 }\nclusters:\n".to_owned();
    for n in 1..=8 {
        let region = if n <= 4 { "cn-north-4" } else { "cn-east-3" };
        plan.push_str(&format!(
            "  c{n}: {{ id: {}, region: {region} }}\n",
            cluster_id(n)
        ));
    }
    plan.push_str(&format!(
        "defaults: {{ chart_id: {CHART_ID} }}\nrollout:\n  concurrency: 16\n  per_cluster: 4\n  \
         rate: 200\n  burst: 200\n  retry: {{ attempts: 10, backoff: 100ms }}\n  \
         wait: {{ poll: 200ms }}\nreleases:\n"
    ));
    for release in ["web", "api", "worker"] {
        plan.push_str(&format!(
            "  - {{ name: {release}, namespace: apps, selector: {{ labels: {{}} }}, \
             values: {{ imageTag: \"2.0.0\" }} }}\n"
        ));
    }
    std::fs::write(dir.path().join("two-regions.yaml"), plan).unwrap();
    let out = flotilla(dir.path())
        .args([
            "apply",
            "two-regions.yaml",
            "--simulate",
            "--progress",
            "plain",
        ])
        .args(["--sim-throttle", "8", "--sim-settle", "100ms"])
        .args([
            "--sim-request-log",
            "requests.jsonl",
            "--report-json",
            "report.json",
        ])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    // One endpoint per region, and every request of a region's clusters went to its own.
    let log = read_request_log(&dir.path().join("requests.jsonl"));
    let region_of = |path: &str| {
        let n = (1..=8).find(|n| path.contains(&cluster_id(*n)))?;
        Some(if n <= 4 { "cn-north-4" } else { "cn-east-3" })
    };
    let mut endpoint_of_region = std::collections::BTreeMap::new();
    let mut throttled = std::collections::BTreeMap::<&str, usize>::new();
    for entry in &log {
        let Some(region) = region_of(&entry.path) else {
            continue;
        };
        let endpoint = endpoint_of_region
            .entry(region)
            .or_insert_with(|| entry.endpoint.clone());
        assert_eq!(*endpoint, entry.endpoint, "{region}: {entry:?}");
        if entry.status == Some(429) {
            *throttled.entry(region).or_default() += 1;
        }
    }
    assert_eq!(endpoint_of_region.len(), 2, "{endpoint_of_region:?}");
    assert_ne!(
        endpoint_of_region["cn-north-4"],
        endpoint_of_region["cn-east-3"]
    );
    for (region, endpoint) in &endpoint_of_region {
        assert!(
            stderr.contains(&format!("{endpoint} ({region})")),
            "{region} at {endpoint}: {stderr}"
        );
    }
    // Each endpoint throttled its own region, and each region got through.
    assert!(
        throttled.get("cn-north-4").is_some_and(|n| *n > 0)
            && throttled.get("cn-east-3").is_some_and(|n| *n > 0),
        "{throttled:?}"
    );
    // The report tells the same per region: every operation succeeded, 429s on both sides.
    let report = read_json(&dir.path().join("report.json"));
    assert_eq!(report["summary"]["succeeded"], 24);
    let mut reported = std::collections::BTreeMap::<&str, usize>::new();
    for op in report["operations"].as_array().unwrap() {
        let cluster = op["cluster"]["id"].as_str().unwrap();
        let region = region_of(cluster).unwrap();
        let count = op["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"] == 429)
            .count();
        *reported.entry(region).or_default() += count;
    }
    assert!(
        reported.get("cn-north-4").is_some_and(|n| *n > 0)
            && reported.get("cn-east-3").is_some_and(|n| *n > 0),
        "the report's 429s, per region: {reported:?}"
    );
}
