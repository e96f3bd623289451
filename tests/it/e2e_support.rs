//! Helpers shared by the end-to-end tests: plans written as YAML text, the simulator and the
//! engine in-process, the real binary, and the proofs read back from the simulator's request
//! log and state.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use flotilla::cce::client::{Client, ClientConfig};
use flotilla::cce::credentials::Credentials;
use flotilla::engine::{self, EngineOptions, RunReport};
use flotilla::plan::resolved::ExpandedPlan;
use flotilla::secret::Secret;
use flotilla::sim::{LogEntry, RunningSim, SimConfig, Simulator};

/// Every plan's chart.
pub const CHART_ID: &str = "af4b699e-018c-11ec-b8b0-0255ac100b05";
/// Where a plan points before it is retargeted at a simulator (nothing listens there).
pub const NOWHERE: &str = "http://127.0.0.1:9";

/// `00000000-0000-0000-0000-00000000000N`.
pub fn cluster_id(n: usize) -> String {
    format!("00000000-0000-0000-0000-{n:012}")
}

/// A plan written as YAML: clusters `c1..cN`, releases `r1..rM` on every cluster.
#[derive(Clone, Debug)]
pub struct PlanSpec {
    pub name: String,
    pub clusters: usize,
    pub releases: usize,
    /// Each cluster's labels (1-based cluster number), as a YAML flow mapping.
    pub labels: fn(usize) -> String,
    /// Lines under `rollout:` (without indentation; each is indented here).
    pub rollout: Vec<String>,
    /// Values of every release, as a YAML flow mapping.
    pub values: String,
    /// Values of one release (1-based release number) replacing `values`, when `Some`.
    pub values_of: fn(usize) -> Option<String>,
    pub rollback_on_failure: bool,
    pub endpoint: String,
}

impl PlanSpec {
    pub fn new(name: &str, clusters: usize, releases: usize) -> Self {
        PlanSpec {
            name: name.to_owned(),
            clusters,
            releases,
            labels: |_| "{}".to_owned(),
            rollout: Vec::new(),
            values: "{ imageTag: \"2.0.0\" }".to_owned(),
            values_of: |_| None,
            rollback_on_failure: false,
            endpoint: NOWHERE.to_owned(),
        }
    }

    /// Adds lines under `rollout:`.
    pub fn rollout(mut self, lines: &[&str]) -> Self {
        self.rollout.extend(lines.iter().map(|l| (*l).to_owned()));
        self
    }

    pub fn to_yaml(&self) -> String {
        let mut text = format!(
            "version: 1\nname: {}\ntarget:\n  region: cn-north-4\n  endpoint: {}\nclusters:\n",
            self.name, self.endpoint
        );
        for n in 1..=self.clusters {
            text.push_str(&format!(
                "  c{n}: {{ id: {}, labels: {} }}\n",
                cluster_id(n),
                (self.labels)(n)
            ));
        }
        text.push_str(&format!(
            "defaults:\n  chart_id: {CHART_ID}\n  action: upgrade\n  rollback_on_failure: {}\n",
            self.rollback_on_failure
        ));
        if !self.rollout.is_empty() {
            text.push_str("rollout:\n");
            for line in &self.rollout {
                text.push_str(&format!("  {line}\n"));
            }
        }
        text.push_str("releases:\n");
        for m in 1..=self.releases {
            let values = (self.values_of)(m).unwrap_or_else(|| self.values.clone());
            text.push_str(&format!(
                "  - {{ name: r{m}, namespace: apps, selector: {{ labels: {{}} }}, values: {values} }}\n"
            ));
        }
        text
    }

    /// The expanded plan, as `apply` would load it (no environment variables).
    pub fn load(&self) -> ExpandedPlan {
        load_plan(&self.to_yaml())
    }

    /// Writes the plan to `dir/<name>.yaml`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("{}.yaml", self.name));
        std::fs::write(&path, self.to_yaml()).expect("plan written");
        path
    }
}

pub fn load_plan(yaml: &str) -> ExpandedPlan {
    flotilla::plan::load_source(Path::new("e2e.yaml"), yaml.as_bytes(), &|_| None)
        .unwrap_or_else(|e| panic!("the test plan is valid: {e}\n{yaml}"))
}

/// Points every cluster of `plan` at `endpoint`.
pub fn point_at(plan: &mut ExpandedPlan, endpoint: &str) {
    let mut retargeted = HashMap::new();
    for wave in &mut plan.waves {
        for op in &mut wave.operations {
            op.cluster = retargeted
                .entry(op.cluster.id.clone())
                .or_insert_with(|| {
                    let mut cluster = (*op.cluster).clone();
                    cluster.endpoint = endpoint.to_owned();
                    Arc::new(cluster)
                })
                .clone();
        }
    }
}

/// A simulator seeded from `plan`, quick to settle; the plan is pointed at it.
pub async fn start_sim(config: SimConfig, plan: &mut ExpandedPlan) -> RunningSim {
    let sim = Simulator::start(config, &[&*plan])
        .await
        .expect("the simulator starts");
    point_at(plan, &sim.base_url());
    sim
}

/// A simulator config for the tests: settles in `settle`, keeps its log in memory.
pub fn sim_config(settle: Duration) -> SimConfig {
    SimConfig::default().with_settle(settle).with_rng_seed(7)
}

/// Runs the engine in-process with the real client, the way `apply` does.
pub async fn run_engine(plan: &ExpandedPlan, options: EngineOptions) -> RunReport {
    let config = ClientConfig {
        request_timeout: plan.rollout.request_timeout,
        connect_timeout: plan.rollout.request_timeout.min(Duration::from_secs(5)),
        max_idle_per_host: plan.rollout.concurrency.max(1),
        ..ClientConfig::default()
    };
    let client = Client::new(config, Credentials::Token(Secret::new("e2e-token")))
        .expect("the client builds");
    let (events_tx, mut events) = tokio::sync::mpsc::channel(1024);
    let drain = tokio::spawn(async move { while events.recv().await.is_some() {} });
    let report = engine::run(plan, Arc::new(client), options, events_tx).await;
    drain.await.expect("events drained");
    report
}

/// The engine options of a plain run, seeded.
pub fn options() -> EngineOptions {
    EngineOptions {
        seed: 11,
        ..EngineOptions::default()
    }
}

// ---------------------------------------------------------------- proofs from the request log

/// The release a request path names: `(cluster_id, namespace, name)`; `None` for other routes.
pub fn release_of(path: &str) -> Option<(String, String, String)> {
    let rest = path.strip_prefix("/autopilot/cam/v3/clusters/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [cluster, "namespace", namespace, "releases", name, ..] => Some((
            (*cluster).to_owned(),
            (*namespace).to_owned(),
            (*name).to_owned(),
        )),
        _ => None,
    }
}

/// The span of each release's requests in the log: from the first arrival to the last finish.
/// With one operation per release it lies within that operation's lifetime, so overlaps of
/// spans never exceed the operations really in flight.
pub fn operation_spans(log: &[LogEntry]) -> BTreeMap<(String, String, String), (f64, f64)> {
    let mut spans: BTreeMap<_, (f64, f64)> = BTreeMap::new();
    for entry in log {
        let Some(release) = release_of(&entry.path) else {
            continue;
        };
        let span = spans
            .entry(release)
            .or_insert((entry.arrived_ms, entry.finished_ms));
        span.0 = span.0.min(entry.arrived_ms);
        span.1 = span.1.max(entry.finished_ms);
    }
    spans
}

/// The most intervals open at one instant (touching ends do not overlap).
pub fn max_overlap(intervals: impl IntoIterator<Item = (f64, f64)>) -> usize {
    let mut edges: Vec<(f64, i32)> = Vec::new();
    for (start, end) in intervals {
        edges.push((start, 1));
        edges.push((end, -1));
    }
    // At equal times, ends come first.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut open, mut most) = (0i32, 0i32);
    for (_, delta) in edges {
        open += delta;
        most = most.max(open);
    }
    usize::try_from(most).unwrap_or(0)
}

/// The most arrivals in any window of `window_ms` (sliding over every arrival).
pub fn busiest_window(log: &[LogEntry], window_ms: f64) -> usize {
    let mut arrivals: Vec<f64> = log.iter().map(|e| e.arrived_ms).collect();
    arrivals.sort_by(f64::total_cmp);
    let mut most = 0;
    let mut end = 0;
    for start in 0..arrivals.len() {
        while end < arrivals.len() && arrivals[end] < arrivals[start] + window_ms {
            end += 1;
        }
        most = most.max(end - start);
    }
    most
}

pub fn puts(log: &[LogEntry]) -> impl Iterator<Item = &LogEntry> {
    log.iter().filter(|e| e.method == "PUT")
}

// ---------------------------------------------------------------- the binary

pub const BINARY: &str = env!("CARGO_BIN_EXE_flotilla");

/// The binary in `dir`, with a clean environment: no credentials, no profile file, no CI
/// summary file, no colours.
pub fn flotilla(dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

/// Reads a request log written as JSON lines (`--sim-request-log`).
pub fn read_request_log(path: &Path) -> Vec<LogEntry> {
    let text = std::fs::read_to_string(path).expect("request log readable");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a log entry"))
        .collect()
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} readable: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

/// Checks `document` against `schema/{name}.schema.json`, naming every violation.
pub fn assert_matches_schema(name: &str, document: &serde_json::Value) {
    let schema = read_json(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("schema/{name}.schema.json")),
    );
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("the {name} schema compiles: {e}"));
    let problems: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        problems.is_empty(),
        "{name} violates the schema: {problems:#?}\n{document:#}"
    );
}

/// Checks `report` against `schema/report.schema.json`.
pub fn assert_valid_report(report: &serde_json::Value) {
    assert_matches_schema("report", report);
}

/// Polls `done` every 10 ms for at most `limit`.
pub async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

/// Runs `command` to its end off the async workers (an in-process simulator keeps serving),
/// for at most `limit`.
pub async fn output_within(limit: Duration, mut command: Command) -> std::process::Output {
    let run = tokio::task::spawn_blocking(move || command.output().expect("flotilla runs"));
    tokio::time::timeout(limit, run)
        .await
        .expect("flotilla finished in time")
        .expect("joined")
}

/// The access key and secret key the signing simulators of these tests expect.
pub const TEST_AK: &str = "E2EACCESSKEYID4TESTS";
pub const TEST_SK: &str = "e2eSecretKey0123456789abcdefSECRETSK";

/// A simulator that checks signatures made with [`TEST_AK`] and [`TEST_SK`].
pub fn signing_sim_config(settle: Duration) -> SimConfig {
    sim_config(settle).with_auth(flotilla::sim::SimAuth::AkSk {
        ak: Secret::new(TEST_AK),
        sk: Secret::new(TEST_SK),
        project_id: None,
    })
}

/// The project id the test credentials carry, so that no IAM is asked for one.
pub const TEST_PROJECT_ID: &str = "0e2e0000000000000000000000000001";

/// [`flotilla`] with the test credentials in the environment, as a CI job would set them (with
/// a project id: AK/SK without one make flotilla ask IAM, which `iam_discovery` tests).
pub fn flotilla_with_credentials(dir: &Path) -> Command {
    let mut command = flotilla_with_credentials_without_project(dir);
    command.env("HUAWEICLOUD_SDK_PROJECT_ID", TEST_PROJECT_ID);
    command
}

/// [`flotilla`] with the test AK/SK and no project id: flotilla asks IAM for one.
pub fn flotilla_with_credentials_without_project(dir: &Path) -> Command {
    let mut command = flotilla(dir);
    command
        .env("HUAWEICLOUD_SDK_AK", TEST_AK)
        .env("HUAWEICLOUD_SDK_SK", TEST_SK);
    command
}

pub fn exit_code(output: &std::process::Output) -> Option<i32> {
    output.status.code()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Retries generous enough that a request failing half the time still gets through, and a
/// short time-out so that hangs cost little.
pub const ROBUST_ROLLOUT: &[&str] = &[
    "concurrency: 32",
    "per_cluster: 4",
    "rate: unlimited",
    "retry: { attempts: 30, backoff: 5ms, max_backoff: 40ms }",
    "request_timeout: 500ms",
    "wait: { enabled: true, timeout: 60s, poll: 20ms }",
];

/// The fault matrix's first promise: every operation succeeded. `context` starts the message.
pub fn assert_every_operation_succeeded(report: &flotilla::engine::RunReport, context: &str) {
    let not_ok: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.outcome != flotilla::engine::Outcome::Succeeded)
        .map(|r| (r.index, r.outcome, r.error.clone()))
        .collect();
    assert!(not_ok.is_empty(), "{context}{not_ok:#?}");
}

/// Its second: every release was changed exactly once. `context` starts the message.
pub fn assert_every_release_applied_once(
    sim: &flotilla::sim::RunningSim,
    releases: usize,
    context: &str,
) {
    let state = sim.state();
    assert_eq!(state.releases.len(), releases, "{context}");
    let twice: Vec<String> = state
        .releases
        .iter()
        .filter(|r| r.applied_puts != 1)
        .map(|r| format!("{}/{}: {}", r.cluster_id, r.name, r.applied_puts))
        .collect();
    assert!(
        twice.is_empty(),
        "{context}not applied exactly once: {twice:?}"
    );
    assert_eq!(state.applied_puts, releases as u64, "{context}");
}
