//! Waves kept in order across CI jobs, end to end: one matrix of `apply --wave W --shard K/N`
//! jobs per wave against one simulator, `report merge` as each wave's gate (its failure budget
//! over all its shards, then its soak), and the proof read back from the simulator's request log.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::e2e_support::*;

const LIMIT: Duration = Duration::from_secs(60);

/// Clusters 1-2 are `canary`, 3-4 `early`, 5-6 `late`.
fn tier(n: usize) -> String {
    let tier = match n {
        1 | 2 => "canary",
        3 | 4 => "early",
        _ => "late",
    };
    format!("{{ tier: {tier} }}")
}

/// Three waves; the canary's budget is `canary_budget` and its soak `soak`.
fn spec(name: &str, soak: &str, canary_budget: &str) -> PlanSpec {
    let mut spec = PlanSpec::new(name, 6, 2).rollout(&[
        "concurrency: 4",
        "rate: unlimited",
        "request_timeout: 5s",
        "wait: { enabled: true, timeout: 20s, poll: 20ms }",
        "max_failures: 100",
        "waves:",
    ]);
    spec.labels = tier;
    spec.rollout.extend([
        format!(
            "  - {{ name: canary, select: {{ labels: {{ tier: canary }} }}, soak: {soak}, max_failures: {canary_budget} }}"
        ),
        "  - { name: early, select: { labels: { tier: early } }, max_failures: 0 }".to_owned(),
        "  - { name: late, select: { labels: { tier: late } } }".to_owned(),
    ]);
    spec
}

/// One CI job: `apply PLAN --wave WAVE --shard K/N` against the simulator at `endpoint`,
/// writing `WAVE-K.json`.
fn shard_job(
    dir: &Path,
    plan: &Path,
    endpoint: &str,
    wave: &str,
    shard: u32,
) -> std::process::Command {
    let mut command = flotilla_with_credentials(dir);
    command.arg("apply").arg(plan).args([
        "--wave",
        wave,
        "--shard",
        &format!("{shard}/2"),
        "--endpoint",
        endpoint,
        "--progress",
        "never",
        "--report-json",
        &format!("{wave}-{shard}.json"),
    ]);
    command
}

/// The two shard jobs of `wave`, side by side, as a CI matrix runs them; checks their exit
/// codes against `expected`.
async fn run_wave(dir: &Path, plan: &Path, endpoint: &str, wave: &str, expected: i32) {
    let (one, two) = tokio::join!(
        output_within(LIMIT, shard_job(dir, plan, endpoint, wave, 1)),
        output_within(LIMIT, shard_job(dir, plan, endpoint, wave, 2)),
    );
    for (shard, output) in [(1, &one), (2, &two)] {
        assert_eq!(
            exit_code(output),
            Some(expected),
            "wave {wave}, shard {shard}/2:\n{}",
            text(&output.stderr)
        );
    }
}

/// `report merge WAVE-1.json WAVE-2.json -o WAVE.json`: its output and how long it took.
async fn gate(dir: &Path, wave: &str, extra: &[&str]) -> (std::process::Output, Duration) {
    let mut command = flotilla(dir);
    command
        .args(["report", "merge"])
        .args([format!("{wave}-1.json"), format!("{wave}-2.json")])
        .args(["-o", &format!("{wave}.json")])
        .args(extra);
    let started = Instant::now();
    let output = output_within(LIMIT, command).await;
    (output, started.elapsed())
}

fn report_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_per_job_graph_starts_no_wave_before_the_previous_one_passed_its_gate() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec("gated", "400ms", "0");
    let plan_path = spec.write(dir.path());
    let mut plan = spec.load();
    let sim = start_sim(signing_sim_config(Duration::from_millis(30)), &mut plan).await;
    let endpoint = sim.base_url();

    for wave in ["canary", "early", "late"] {
        run_wave(dir.path(), &plan_path, &endpoint, wave, 0).await;
        let (output, took) = gate(dir.path(), wave, &[]).await;
        let stderr = text(&output.stderr);
        assert_eq!(exit_code(&output), Some(0), "{stderr}");
        assert!(
            stderr.contains(&format!("gate: wave `{wave}` passed: 0 of 4 failed")),
            "{stderr}"
        );
        if wave == "canary" {
            assert!(
                stderr.contains(
                    "gate: soaking 400ms after wave `canary` before wave `early` may start"
                ),
                "{stderr}"
            );
            assert!(
                stderr.contains("gate: soak over: wave `early` may start"),
                "{stderr}"
            );
            assert!(
                took >= Duration::from_millis(400),
                "the gate soaked only {took:?}"
            );
        } else {
            assert!(!stderr.contains("soaking"), "{stderr}");
        }
        let merged = read_json(&report_path(dir.path(), wave));
        assert_valid_report(&merged);
        assert_eq!(merged["summary"]["succeeded"], 4, "{merged:#}");
        assert_eq!(merged["plan"]["waves"][0]["name"], wave);
    }

    // Every request of a wave came after every request of the waves before it: no shard
    // reached ahead, whatever clusters it held.
    let log = sim.request_log();
    let wave_of = |cluster: &str| -> usize {
        (1..=6)
            .find(|&n| cluster_id(n) == cluster)
            .map_or(usize::MAX, |n| (n - 1) / 2)
    };
    let mut last_finish = [0.0f64; 3];
    let mut first_arrival = [f64::INFINITY; 3];
    for entry in &log {
        let Some((cluster, _, _)) = release_of(&entry.path) else {
            continue;
        };
        let wave = wave_of(&cluster);
        first_arrival[wave] = first_arrival[wave].min(entry.arrived_ms);
        last_finish[wave] = last_finish[wave].max(entry.finished_ms);
    }
    assert!(
        first_arrival[1] >= last_finish[0] + 400.0,
        "wave early began {:.1} ms after the canary ended (soak 400 ms)",
        first_arrival[1] - last_finish[0]
    );
    assert!(first_arrival[2] >= last_finish[1]);
    assert_eq!(puts(&log).count(), 12);

    // Each job of each wave had a journal of its own, as two jobs on one machine need.
    let mut journals: Vec<String> = std::fs::read_dir(dir.path().join(".flotilla/journal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    journals.sort();
    assert_eq!(journals.len(), 6, "{journals:?}");
    assert!(
        journals
            .iter()
            .any(|j| j.starts_with("gated-") && j.ends_with("-shard-2-of-2-wave-early.jsonl")),
        "{journals:?}"
    );

    // The gates merge on into one report of the whole run; a wave merged twice is refused.
    let mut command = flotilla(dir.path());
    command.args([
        "report",
        "merge",
        "canary.json",
        "early.json",
        "late.json",
        "--no-soak",
    ]);
    let output = output_within(LIMIT, command).await;
    assert_eq!(exit_code(&output), Some(0), "{}", text(&output.stderr));
    let whole: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(whole["summary"]["succeeded"], 12);
    assert_eq!(whole["plan"]["waves"].as_array().unwrap().len(), 3);
    let mut command = flotilla(dir.path());
    command.args(["report", "merge", "canary.json", "canary-1.json"]);
    let output = output_within(LIMIT, command).await;
    assert_eq!(exit_code(&output), Some(2));
    assert!(
        text(&output.stderr).contains("merged, they would count operations twice")
            || text(&output.stderr).contains("count their operations twice"),
        "{}",
        text(&output.stderr)
    );
}

/// Each shard stays within the canary's budget of 1 failure, but the wave as a whole does not:
/// the gate fails, exits 1 and does not soak, so the next wave's jobs never start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_applies_the_waves_budget_over_all_its_shards_and_does_not_soak_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec("over-budget", "10m", "1");
    // r2 fails to deploy everywhere: once on each canary cluster, so once in each shard.
    spec.values_of = |m| (m == 2).then(|| "{ imageTag: fail-canary }".to_owned());
    let plan_path = spec.write(dir.path());
    let mut plan = spec.load();
    let sim = start_sim(signing_sim_config(Duration::from_millis(30)), &mut plan).await;

    // Each shard had a failure (exit 1) but stayed within its budget: neither halted.
    run_wave(dir.path(), &plan_path, &sim.base_url(), "canary", 1).await;
    for shard in 1..=2 {
        let report = read_json(&dir.path().join(format!("canary-{shard}.json")));
        assert!(report.get("halted").is_none(), "{report:#}");
        assert_eq!(report["summary"]["failed"], 1, "{report:#}");
    }
    let (output, _) = gate(dir.path(), "canary", &[]).await;
    let stderr = text(&output.stderr);
    assert_eq!(exit_code(&output), Some(1), "{stderr}");
    assert!(
        stderr.contains("gate: wave `canary` failed: 2 of 4 failed, over its max_failures 1"),
        "{stderr}"
    );
    assert!(stderr.contains("the next wave must not start"), "{stderr}");
    // A failed wave is not soaked (a 10 m soak would also outlast the run's time limit).
    assert!(!stderr.contains("soaking"), "{stderr}");
    // The merged report is written all the same, for the summary and the JUnit file.
    assert_eq!(
        read_json(&report_path(dir.path(), "canary"))["summary"]["failed"],
        2
    );

    // A shard's report missing fails the gate as well.
    std::fs::remove_file(dir.path().join("canary-2.json")).unwrap();
    let mut command = flotilla(dir.path());
    command.args(["report", "merge", "canary-1.json", "--no-soak"]);
    let output = output_within(LIMIT, command).await;
    assert_eq!(exit_code(&output), Some(1));
    assert!(
        text(&output.stderr).contains("shard(s) 2/2 (canary) missing"),
        "{}",
        text(&output.stderr)
    );
    // And the merged report says so in every format, with no one shard's settings.
    let merged: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_valid_report(&merged);
    assert_eq!(merged["incomplete"], true, "{merged:#}");
    assert_eq!(
        merged["missing_shards"],
        serde_json::json!(["2/2 (canary)"])
    );
    assert_eq!(merged["settings"].get("shard"), None, "{merged:#}");
    assert_eq!(
        merged["settings"]["shards"],
        serde_json::json!(["1/2 (canary)"])
    );
    std::fs::write(dir.path().join("incomplete.json"), &output.stdout).unwrap();
    for (format, says) in [
        ("md", "❌ **incomplete:** "),
        ("table", "incomplete: shards missing: 2/2 (canary)"),
        ("junit", "missing shards"),
    ] {
        let mut command = flotilla(dir.path());
        command.args(["report", "incomplete.json", "--format", format]);
        let output = output_within(LIMIT, command).await;
        assert_eq!(exit_code(&output), Some(1), "--format {format}");
        let rendered = text(&output.stdout);
        assert!(rendered.contains(says), "--format {format}: {rendered}");
        assert!(!rendered.contains('✅'), "--format {format}: {rendered}");
    }
}

/// The opt-out is loud: a warning at the start and a record in the report's settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharding_across_waves_is_warned_about_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let plan = spec("across", "0s", "0").write(dir.path());
    let mut command = flotilla(dir.path());
    command.arg("apply").arg(&plan).args([
        "--simulate",
        "--sim-settle",
        "20ms",
        "--shard",
        "1/2",
        "--shard-across-waves",
        "--progress",
        "never",
        "--report-json",
        "across.json",
    ]);
    let output = output_within(LIMIT, command).await;
    let stderr = text(&output.stderr);
    assert_eq!(exit_code(&output), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: --shard-across-waves: this shard runs part of 3 waves"),
        "{stderr}"
    );
    let report = read_json(&dir.path().join("across.json"));
    assert_valid_report(&report);
    assert_eq!(report["settings"]["shard_across_waves"], true);
    assert_eq!(report["plan"]["waves"].as_array().unwrap().len(), 3);
}
