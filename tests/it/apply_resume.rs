//! Crash safety end to end: the real binary is killed with SIGKILL at points chosen by a seeded
//! random generator while it runs against a simulator with latency, then `--resume`d with the
//! same journal. Every release ends applied exactly once, and the report is complete. Resume
//! refuses a changed plan unless forced.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::e2e_support::*;
use flotilla::journal::JournalState;
use rand::{RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

const KILL_SEED: u64 = 0x5EED_0009;
const CLUSTERS: usize = 4;
const RELEASES: usize = 6;
const OPERATIONS: usize = CLUSTERS * RELEASES;

fn crash_plan() -> PlanSpec {
    PlanSpec::new("crashy", CLUSTERS, RELEASES).rollout(&[
        "concurrency: 4",
        "per_cluster: 1",
        "rate: unlimited",
        "retry: { attempts: 5, backoff: 20ms, max_backoff: 100ms }",
        "request_timeout: 1s",
        "wait: { enabled: true, timeout: 30s, poll: 100ms }",
    ])
}

fn start_apply(dir: &Path, plan: &Path, resume: bool, extra: &[&str]) -> Child {
    let mut command = flotilla_with_credentials(dir);
    command
        .arg("apply")
        .arg(plan)
        .args(["--journal", "journal.jsonl", "--progress", "plain"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if resume {
        command.arg("--resume");
    }
    command.spawn().expect("flotilla runs")
}

/// `(cluster_id, release)` of each operation index.
fn releases_by_index(plan: &flotilla::plan::resolved::ExpandedPlan) -> Vec<(String, String)> {
    let mut by_index = vec![(String::new(), String::new()); plan.operation_count()];
    for op in plan.operations() {
        by_index[op.index] = (op.cluster.id.clone(), op.release.clone());
    }
    by_index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_three_times_then_resumed_every_release_is_applied_exactly_once() {
    killed_three_times_then_resumed(&[]).await;
}

/// Without preflight, intents are journaled ahead of their PUT, so a kill leaves intents whose
/// PUT never left; the resume tells them apart by the release's content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_preflight_killed_three_times_then_resumed_every_release_is_applied_exactly_once() {
    // Two per cluster, so that while every slot is busy other clusters have operations ready.
    killed_three_times_then_resumed(&["--no-preflight", "--per-cluster", "2"]).await;
}

async fn killed_three_times_then_resumed(flags: &[&str]) {
    let mut spec = crash_plan();
    let mut seed_plan = spec.load();
    let mut config = signing_sim_config(Duration::from_millis(200));
    config.latency = Duration::from_millis(100);
    let sim = start_sim(config, &mut seed_plan).await;
    // The simulator outlives every flotilla process: the plan points at it.
    spec.endpoint = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let plan_path = spec.write(dir.path());
    let plan = spec.load();
    let journal = dir.path().join("journal.jsonl");

    // Kill once at least k releases were changed, for 3 increasing k drawn from the seed.
    let mut rng = ChaCha8Rng::seed_from_u64(KILL_SEED);
    let mut points = BTreeSet::new();
    while points.len() < 3 {
        points.insert(rng.random_range(2..=OPERATIONS - 4) as u64);
    }
    let mut killed_running = 0;
    for (round, point) in points.iter().enumerate() {
        let mut child = start_apply(dir.path(), &plan_path, round > 0, flags);
        let reached = eventually(Duration::from_secs(30), || {
            sim.state().applied_puts >= *point || matches!(child.try_wait(), Ok(Some(_)))
        })
        .await;
        assert!(
            reached,
            "round {round}: {point} changes within the time limit"
        );
        child.kill().expect("SIGKILL sent");
        let status = child.wait().expect("reaped");
        if status.signal() == Some(9) {
            killed_running += 1;
        }
        // No pause here: a resume itself waits out the requests the dead run left in flight.
    }
    assert_eq!(killed_running, 3, "every kill hit a running process");
    assert!(
        sim.state().applied_puts < OPERATIONS as u64,
        "work remained for the last resume"
    );

    // What the journal knows before the last resume: its succeeded operations must not be
    // touched at all, not even with a GET.
    let done_before: BTreeSet<(String, String)> = {
        let state = JournalState::read(&journal).expect("journal readable");
        let by_index = releases_by_index(&plan);
        state
            .resume_states()
            .into_iter()
            .filter(|(_, prior)| matches!(prior, flotilla::engine::PriorState::AlreadySucceeded(_)))
            .map(|(index, _)| by_index[index].clone())
            .collect()
    };
    assert!(!done_before.is_empty(), "some operations had finished");
    let requests_before = sim.request_log().len();

    let final_flags: Vec<&str> = flags
        .iter()
        .copied()
        .chain(["--report-json", "final.json"])
        .collect();
    let child = start_apply(dir.path(), &plan_path, true, &final_flags);
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || child.wait_with_output().expect("waited")),
    )
    .await
    .expect("the last resume finishes")
    .expect("joined");
    assert_eq!(exit_code(&output), Some(0));

    let state = sim.state();
    let wrong: Vec<String> = state
        .releases
        .iter()
        .filter(|r| r.applied_puts != 1 || r.version != 2)
        .map(|r| {
            format!(
                "{} {}: applied {} v{}",
                r.cluster_id, r.name, r.applied_puts, r.version
            )
        })
        .collect();
    assert!(wrong.is_empty(), "not applied exactly once: {wrong:?}");
    assert_eq!(state.releases.len(), OPERATIONS);

    let touched_by_last: BTreeSet<(String, String)> = sim.request_log()[requests_before..]
        .iter()
        .filter_map(|e| release_of(&e.path))
        .map(|(cluster, _, name)| (cluster, name))
        .collect();
    let retouched: Vec<_> = touched_by_last.intersection(&done_before).collect();
    assert!(
        retouched.is_empty(),
        "succeeded operations were sent requests again: {retouched:?}"
    );

    // The resumed run's report and the journal's report are complete.
    let final_report = read_json(&dir.path().join("final.json"));
    assert_valid_report(&final_report);
    assert_eq!(final_report["summary"]["total"], OPERATIONS);
    assert_eq!(final_report["summary"]["succeeded"], OPERATIONS);

    let mut report = flotilla(dir.path());
    report.args(["report", "journal.jsonl", "--format", "json"]);
    let output = output_within(Duration::from_secs(30), report).await;
    assert_eq!(exit_code(&output), Some(0), "{}", text(&output.stderr));
    let from_journal: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert_valid_report(&from_journal);
    assert_eq!(
        from_journal["summary"]["total"], OPERATIONS,
        "{from_journal:#}"
    );
    assert_eq!(from_journal["summary"]["succeeded"], OPERATIONS);
    let names: BTreeSet<(String, String)> = from_journal["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            (
                op["cluster"]["id"].as_str().unwrap().to_owned(),
                op["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(names.len(), OPERATIONS, "every release once in the report");
    // A journal of several runs tells the last one as that run's own report did, whole.
    assert_eq!(from_journal, final_report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_a_changed_plan_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = PlanSpec::new("changing", 2, 2).rollout(&[
        "concurrency: 4",
        "rate: unlimited",
        "request_timeout: 5s",
        "wait: { enabled: true, timeout: 20s, poll: 20ms }",
    ]);
    let plan = spec.write(dir.path());
    let run = |resume: &[&str], log: &str| {
        let mut command = flotilla(dir.path());
        command
            .arg("apply")
            .arg(&plan)
            .args([
                "--simulate",
                "--sim-settle",
                "30ms",
                "--progress",
                "plain",
                "--journal",
                "journal.jsonl",
                "--sim-request-log",
                log,
            ])
            .args(resume);
        command
    };
    let first = output_within(Duration::from_secs(60), run(&[], "first.jsonl")).await;
    let stderr = text(&first.stderr);
    assert_eq!(exit_code(&first), Some(0), "{stderr}");
    let seed = stderr
        .split("--sim-rng-seed ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_default();
    assert!(
        seed.parse::<u64>().is_ok(),
        "the simulator's seed is shown: {stderr}"
    );

    // The same plan resumes: everything is done, so nothing is sent. A line cut short by a
    // crash is skipped, and said so.
    let mut journal = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("journal.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut journal, b"{\"record\":\"fini").unwrap();
    let same = output_within(Duration::from_secs(60), run(&["--resume"], "same.jsonl")).await;
    let stderr = text(&same.stderr);
    assert_eq!(exit_code(&same), Some(0), "{stderr}");
    assert!(stderr.contains("skipped 1 unreadable line(s)"), "{stderr}");
    assert!(read_request_log(&dir.path().join("same.jsonl")).is_empty());

    spec.values = "{ imageTag: \"2.0.1\" }".to_owned();
    spec.write(dir.path());
    let refused = output_within(Duration::from_secs(60), run(&["--resume"], "refused.jsonl")).await;
    let stderr = text(&refused.stderr);
    assert_eq!(exit_code(&refused), Some(2), "{stderr}");
    assert!(stderr.contains("plan changed"), "{stderr}");
    assert!(stderr.contains("--force-resume"), "{stderr}");
    let log = dir.path().join("refused.jsonl");
    assert!(
        !log.exists() || read_request_log(&log).is_empty(),
        "nothing was sent"
    );

    let forced = output_within(
        Duration::from_secs(60),
        run(&["--resume", "--force-resume"], "forced.jsonl"),
    )
    .await;
    assert_eq!(exit_code(&forced), Some(0), "{}", text(&forced.stderr));

    let mut missing = flotilla(dir.path());
    missing.arg("apply").arg(&plan).args([
        "--simulate",
        "--journal",
        "no-such-journal.jsonl",
        "--resume",
    ]);
    let missing = output_within(Duration::from_secs(60), missing).await;
    let stderr = text(&missing.stderr);
    assert_eq!(exit_code(&missing), Some(2), "{stderr}");
    assert!(stderr.contains("no journal"), "{stderr}");
}
