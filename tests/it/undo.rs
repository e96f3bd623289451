//! Rolling back a fleet end to end, the real binary against the simulator under faults:
//! `release_version: previous` resolved per cluster (and shown by `plan --diff`), and
//! `flotilla undo` of an `apply` report: every release back at its revision before the run
//! with exactly one rollback applied, the last wave first, a release changed since refused
//! without `--force`.

use std::path::Path;
use std::time::Duration;

use crate::e2e_support::*;
use flotilla::sim::store::ReleaseSnapshot;
use flotilla::sim::{RunningSim, SimConfig};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(120);

const ROBUST_ROLLOUT: &[&str] = &[
    "concurrency: 8",
    "per_cluster: 2",
    "rate: unlimited",
    "retry: { attempts: 30, backoff: 5ms, max_backoff: 40ms }",
    "request_timeout: 2s",
    "wait: { enabled: true, timeout: 60s, poll: 20ms }",
];

/// A signing simulator that fails, cuts and answers ambiguously a share of every request.
fn faulty(seed: u64) -> SimConfig {
    let mut config = signing_sim_config(Duration::from_millis(30)).with_rng_seed(seed);
    config.error_rate = 0.15;
    config.ambiguous_rate = 0.15;
    config.reset_rate = 0.05;
    config
}

/// `c1` is the canary wave, every other cluster the `prod` wave.
fn canary_then_prod(name: &str, clusters: usize, releases: usize) -> PlanSpec {
    let mut spec = PlanSpec::new(name, clusters, releases).rollout(ROBUST_ROLLOUT);
    spec.rollout.push(
        "waves: [ { name: canary, select: { clusters: [c1] } }, { name: prod, select: { labels: {} } } ]"
            .to_owned(),
    );
    spec
}

/// `flotilla <args> --endpoint <sim>` in `dir`, with the test credentials.
async fn run(dir: &Path, sim: &RunningSim, args: &[&str]) -> std::process::Output {
    let mut command = flotilla_with_credentials(dir);
    command
        .args(args)
        .args(["--endpoint", &sim.base_url(), "--progress", "plain"]);
    output_within(LIMIT, command).await
}

fn releases(sim: &RunningSim) -> Vec<ReleaseSnapshot> {
    sim.state().releases
}

fn release<'s>(state: &'s [ReleaseSnapshot], cluster: usize, name: &str) -> &'s ReleaseSnapshot {
    let id = cluster_id(cluster);
    state
        .iter()
        .find(|r| r.cluster_id == id && r.name == name)
        .unwrap_or_else(|| panic!("c{cluster}/{name} is in the simulator"))
}

/// The current revision's values equal those of revision `version`.
fn content_of(release: &ReleaseSnapshot, version: i64) -> bool {
    let current = release.current().expect("a revision");
    let target = release
        .history
        .iter()
        .find(|r| r.version == version)
        .expect("the revision is in the history");
    current.values == target.values && current.chart_version == target.chart_version
}

fn image_tag(release: &ReleaseSnapshot) -> Value {
    release.current().expect("a revision").values["imageTag"].clone()
}

fn assert_exit(output: &std::process::Output, code: i32) {
    assert_eq!(
        exit_code(output),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_rolls_every_release_back_once_prod_first_under_faults() {
    let dir = tempfile::tempdir().unwrap();
    let spec = canary_then_prod("undo-faults", 4, 3);
    let mut seed = spec.load();
    let sim = start_sim(faulty(20_261_204), &mut seed).await;
    let plan = spec.write(dir.path());
    let plan = plan.to_str().unwrap();

    let applied = run(
        dir.path(),
        &sim,
        &["apply", plan, "--report-json", "run.json"],
    )
    .await;
    assert_exit(&applied, 0);
    let after_run = releases(&sim);
    assert!(
        after_run
            .iter()
            .all(|r| r.applied_puts == 1 && r.version == 2)
    );
    let log_after_run = sim.request_log().len();

    let undone = run(
        dir.path(),
        &sim,
        &[
            "undo",
            "run.json",
            "--plan",
            plan,
            "--report-json",
            "undo.json",
        ],
    )
    .await;
    assert_exit(&undone, 0);

    // Every release is back at its revision before the run, by exactly one rollback PUT.
    let state = releases(&sim);
    assert_eq!(state.len(), 12);
    for r in &state {
        assert_eq!(r.applied_puts, 2, "{}/{}", r.cluster_name, r.name);
        assert!(
            content_of(r, 1),
            "{}/{} not back at revision 1",
            r.cluster_name,
            r.name
        );
        let current = r.current().unwrap();
        assert_eq!(current.action, "rollback");
        assert_eq!(current.parameters.release_version, Some(1));
    }

    // Faults met the undo's own requests too, PUTs included.
    let log = sim.request_log();
    let undo_log = &log[log_after_run..];
    assert!(
        puts(undo_log).any(|e| e.fault.is_some()),
        "no fault met an undo PUT"
    );

    // The prod wave was undone before the canary: every prod request ends before the first
    // canary request.
    let spans = operation_spans(undo_log);
    let canary = cluster_id(1);
    let first_canary = spans
        .iter()
        .filter(|((c, _, _), _)| *c == canary)
        .map(|(_, (start, _))| *start)
        .fold(f64::INFINITY, f64::min);
    let last_prod = spans
        .iter()
        .filter(|((c, _, _), _)| *c != canary)
        .map(|(_, (_, end))| *end)
        .fold(0.0, f64::max);
    assert!(
        last_prod <= first_canary,
        "prod ended at {last_prod}, canary began at {first_canary}"
    );

    let report = read_json(&dir.path().join("undo.json"));
    assert_valid_report(&report);
    assert_eq!(report["summary"]["succeeded"], 12, "{report:#}");
    let waves: Vec<&str> = report["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["wave"].as_str().unwrap())
        .collect();
    assert_eq!(waves.first(), Some(&"prod"));
    assert_eq!(waves.last(), Some(&"canary"));
    for op in report["operations"].as_array().unwrap() {
        assert_eq!(op["release_version"], json!(1), "{op:#}");
        assert_eq!(op["version_before"], json!(2), "{op:#}");
    }
    // The undo kept its own journal, whose intents name the revision each PUT went back to.
    let journals: Vec<_> = std::fs::read_dir(dir.path().join(".flotilla/journal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let undo_journal = journals
        .iter()
        .find(|name| name.starts_with("undo-undo-faults-"))
        .unwrap_or_else(|| panic!("no undo journal in {journals:?}"));
    let lines =
        std::fs::read_to_string(dir.path().join(".flotilla/journal").join(undo_journal)).unwrap();
    let intents = lines
        .lines()
        .filter(|l| l.contains(r#""record":"intent""#))
        .count();
    assert_eq!(intents, 12);
    assert!(lines.contains(r#""release_version":1"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_changed_since_the_run_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let spec = PlanSpec::new("changed", 2, 1).rollout(ROBUST_ROLLOUT);
    let mut seed = spec.load();
    let sim = start_sim(faulty(41), &mut seed).await;
    let plan = spec.write(dir.path());
    let plan = plan.to_str().unwrap();
    let applied = run(
        dir.path(),
        &sim,
        &["apply", plan, "--report-json", "run.json"],
    )
    .await;
    assert_exit(&applied, 0);

    // Someone deploys 3.0.0 on c2 after the run.
    let mut later = PlanSpec::new("later", 2, 1).rollout(ROBUST_ROLLOUT);
    later.values = "{ imageTag: \"3.0.0\" }".to_owned();
    let later = later.write(dir.path());
    let deployed = run(
        dir.path(),
        &sim,
        &["apply", later.to_str().unwrap(), "--select", "cluster=c2"],
    )
    .await;
    assert_exit(&deployed, 0);

    let refused = run(
        dir.path(),
        &sim,
        &[
            "undo",
            "run.json",
            "--plan",
            plan,
            "--report-json",
            "undo.json",
        ],
    )
    .await;
    assert_exit(&refused, 1);
    let state = releases(&sim);
    assert!(content_of(release(&state, 1, "r1"), 1), "c1 is undone");
    let c2 = release(&state, 2, "r1");
    assert_eq!((c2.version, c2.applied_puts), (3, 2), "c2 is left alone");
    assert_eq!(image_tag(c2), json!("3.0.0"));
    let report = read_json(&dir.path().join("undo.json"));
    assert_valid_report(&report);
    let c2_op = report["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["cluster"]["name"] == "c2")
        .unwrap();
    assert_eq!(c2_op["outcome"], "skipped");
    let reason = c2_op["skip_reason"].as_str().unwrap();
    assert!(reason.contains("at revision 3, not the 2"), "{reason}");

    // The run's journal serves as well as its report.
    let journal = std::fs::read_dir(dir.path().join(".flotilla/journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("changed-"))
        })
        .expect("the run's journal");
    let forced = run(
        dir.path(),
        &sim,
        &["undo", journal.to_str().unwrap(), "--plan", plan, "--force"],
    )
    .await;
    assert_exit(&forced, 0);
    let state = releases(&sim);
    let c2 = release(&state, 2, "r1");
    assert!(content_of(c2, 1), "c2 is rolled back by --force");
    assert_eq!(c2.applied_puts, 3);
}

/// A fleet at different revisions per cluster, rolled back by one release entry.
fn rollback_plan(clusters: usize, relative: &str) -> String {
    let mut text = format!(
        "version: 1\nname: back\ntarget:\n  region: cn-north-4\n  endpoint: {NOWHERE}\nclusters:\n"
    );
    for n in 1..=clusters {
        text.push_str(&format!("  c{n}: {{ id: {} }}\n", cluster_id(n)));
    }
    text.push_str("rollout:\n");
    for line in ROBUST_ROLLOUT {
        text.push_str(&format!("  {line}\n"));
    }
    text.push_str(&format!(
        "releases:\n  - {{ name: r1, namespace: apps, selector: {{ labels: {{}} }}, action: rollback, parameters: {{ release_version: {relative} }} }}\n"
    ));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previous_rolls_each_cluster_back_to_its_own_revision_under_faults() {
    let dir = tempfile::tempdir().unwrap();
    let spec = PlanSpec::new("fleet", 3, 1).rollout(ROBUST_ROLLOUT);
    let mut seed = spec.load();
    let sim = start_sim(faulty(7_777), &mut seed).await;
    let plan = spec.write(dir.path());
    assert_exit(
        &run(dir.path(), &sim, &["apply", plan.to_str().unwrap()]).await,
        0,
    );
    // c1 goes one revision further: 3.0.0 at revision 3; c2 and c3 stay at 2.0.0, revision 2.
    let mut newer = PlanSpec::new("newer", 3, 1).rollout(ROBUST_ROLLOUT);
    newer.values = "{ imageTag: \"3.0.0\" }".to_owned();
    let newer = newer.write(dir.path());
    let selected = ["apply", newer.to_str().unwrap(), "--select", "cluster=c1"];
    assert_exit(&run(dir.path(), &sim, &selected).await, 0);

    let back = dir.path().join("back.yaml");
    std::fs::write(&back, rollback_plan(3, "previous")).unwrap();
    let back = back.to_str().unwrap();

    // `plan` shows the words; `plan --diff` the revision each cluster resolves to.
    let listed = output_within(LIMIT, {
        let mut command = flotilla(dir.path());
        command.args(["plan", back]);
        command
    })
    .await;
    assert_exit(&listed, 0);
    assert!(
        text(&listed.stdout).contains(r#""release_version":"previous""#),
        "{}",
        text(&listed.stdout)
    );
    let diff = output_within(LIMIT, {
        let mut command = flotilla_with_credentials(dir.path());
        command.args(["plan", back, "--diff", "--endpoint", &sim.base_url()]);
        command
    })
    .await;
    let shown = text(&diff.stdout);
    assert_exit(&diff, 0);
    assert!(
        shown.contains("rolls back to: revision 2 (release_version: previous)"),
        "{shown}"
    );
    assert_eq!(
        shown
            .matches("rolls back to: revision 1 (release_version: previous)")
            .count(),
        2,
        "{shown}"
    );

    let rolled = run(
        dir.path(),
        &sim,
        &["apply", back, "--report-json", "back.json"],
    )
    .await;
    assert_exit(&rolled, 0);
    let state = releases(&sim);
    let c1 = release(&state, 1, "r1");
    assert_eq!(image_tag(c1), json!("2.0.0"));
    assert!(content_of(c1, 2));
    assert_eq!(c1.applied_puts, 3);
    for n in [2, 3] {
        let r = release(&state, n, "r1");
        assert!(content_of(r, 1), "c{n}");
        assert_eq!(r.applied_puts, 2, "c{n}: exactly one rollback applied");
    }
    let report = read_json(&dir.path().join("back.json"));
    assert_valid_report(&report);
    let resolved: Vec<(String, Value)> = report["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            (
                op["cluster"]["name"].as_str().unwrap().to_owned(),
                op["release_version"].clone(),
            )
        })
        .collect();
    assert_eq!(
        resolved,
        [
            ("c1".to_owned(), json!(2)),
            ("c2".to_owned(), json!(1)),
            ("c3".to_owned(), json!(1))
        ]
    );

    // Two back from c1's revision 4 is revision 2; from c2's and c3's revision 3 it is 1.
    std::fs::write(dir.path().join("back2.yaml"), rollback_plan(3, "-2")).unwrap();
    let two_back = run(
        dir.path(),
        &sim,
        &["apply", "back2.yaml", "--report-json", "back2.json"],
    )
    .await;
    assert_exit(&two_back, 0);
    let report = read_json(&dir.path().join("back2.json"));
    let resolved: Vec<Value> = report["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["release_version"].clone())
        .collect();
    assert_eq!(resolved, [json!(2), json!(1), json!(1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_revision_past_the_history_fails_that_release_only() {
    let dir = tempfile::tempdir().unwrap();
    let spec = PlanSpec::new("fresh", 2, 1).rollout(ROBUST_ROLLOUT);
    let mut seed = spec.load();
    let sim = start_sim(signing_sim_config(Duration::from_millis(30)), &mut seed).await;
    // Only c1 was upgraded: c2 is at revision 1 with nothing before it.
    let plan = spec.write(dir.path());
    let selected = ["apply", plan.to_str().unwrap(), "--select", "cluster=c1"];
    assert_exit(&run(dir.path(), &sim, &selected).await, 0);
    std::fs::write(dir.path().join("back.yaml"), rollback_plan(2, "previous")).unwrap();
    let output = run(
        dir.path(),
        &sim,
        &[
            "apply",
            "back.yaml",
            "--report-json",
            "back.json",
            "--max-failures",
            "1",
        ],
    )
    .await;
    assert_exit(&output, 1);
    let report = read_json(&dir.path().join("back.json"));
    let ops = report["operations"].as_array().unwrap();
    assert_eq!(ops[0]["outcome"], "succeeded");
    assert_eq!(ops[1]["outcome"], "failed");
    let message = ops[1]["error"]["message"].as_str().unwrap();
    assert!(message.contains("no revision before 1"), "{message}");
    assert_eq!(release(&releases(&sim), 2, "r1").applied_puts, 0);
}

/// `flotilla sim --state`'s file, as `apply --simulate --sim-state` leaves it.
fn state_file(path: &Path) -> Vec<ReleaseSnapshot> {
    let state: flotilla::sim::store::SimStateSnapshot =
        serde_json::from_value(read_json(path)).expect("a simulator state");
    state.releases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehearsal_undoes_a_simulated_run_and_resumes_from_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let plan = PlanSpec::new("rehearsal", 2, 2)
        .rollout(ROBUST_ROLLOUT)
        .write(dir.path());
    let plan = plan.to_str().unwrap();
    let simulate = |extra: &[&str]| {
        let mut command = flotilla(dir.path());
        command
            .args(extra)
            .args(["--simulate", "--sim-settle", "30ms", "--progress", "plain"]);
        command
    };
    let state = dir.path().join("state.json");
    let applied = output_within(
        LIMIT,
        simulate(&[
            "apply",
            plan,
            "--sim-state",
            "state.json",
            "--report-json",
            "run.json",
        ]),
    )
    .await;
    assert_exit(&applied, 0);
    assert!(state_file(&state).iter().all(|r| r.version == 2));

    // Without the state after the run there is nothing to rehearse against.
    let refused = output_within(LIMIT, simulate(&["undo", "run.json", "--plan", plan])).await;
    assert_exit(&refused, 2);
    assert!(text(&refused.stderr).contains("--sim-state"));

    let undo = [
        "undo",
        "run.json",
        "--plan",
        plan,
        "--sim-state",
        "state.json",
        "--sim-error-rate",
        "0.2",
        "--sim-ambiguous-rate",
        "0.2",
    ];
    let undone = output_within(LIMIT, simulate(&undo)).await;
    assert_exit(&undone, 0);
    let after = state_file(&state);
    for r in &after {
        assert!(content_of(r, 1), "{}/{}", r.cluster_name, r.name);
        assert_eq!(r.applied_puts, 2, "{}/{}", r.cluster_name, r.name);
    }

    // Resumed from its journal, the undo sends nothing again.
    let mut resumed_args = undo.to_vec();
    resumed_args.extend(["--resume", "--report-json", "resumed.json"]);
    let resumed = output_within(LIMIT, simulate(&resumed_args)).await;
    assert_exit(&resumed, 0);
    assert_eq!(state_file(&state), after);
    let report = read_json(&dir.path().join("resumed.json"));
    assert_eq!(report["summary"]["succeeded"], 4, "{report:#}");
}
