//! flotilla's benchmark harness: `cargo run --release --example bench [-- SCENARIO...]`.
//!
//! Builds the release binary, generates plans, starts `flotilla sim` as its own process (so the
//! simulator's CPU is not counted as flotilla's), runs every scenario with the real binary, and
//! prints one JSON line per scenario and then a Markdown table. Not a test: nothing here gates CI.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const AK: &str = "AKBENCH00000000000000";
const SK: &str = "SKBENCH0000000000000000000000000000000000";

/// One scenario: given the release binary and a scratch directory, its JSON result line.
type Scenario = fn(&Path, &Path) -> Value;

fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let bin = build_release_binary();
    let work = tempfile::tempdir().expect("temporary directory");
    let mut rows = Vec::new();
    let scenarios: [(&str, Scenario); 8] = [
        ("B0", b0_raw_http),
        ("B1", b1_overhead),
        ("B2", b2_latency_hiding),
        ("B3", b3_rate_accuracy),
        ("B4", b4_adaptive),
        ("B5", b5_scale),
        ("B6", b6_full_path),
        ("B7", b7_bad_plans),
    ];
    for (name, scenario) in scenarios {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).expect("scenario directory");
        let result = scenario(&bin, &dir);
        println!("{result}");
        rows.push(result);
    }
    println!();
    println!("| scenario | what | result | goal |");
    println!("|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} |",
            row["scenario"].as_str().unwrap_or(""),
            row["what"].as_str().unwrap_or(""),
            row["summary"].as_str().unwrap_or(""),
            row["goal"].as_str().unwrap_or("")
        );
    }
}

fn build_release_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--bin", "flotilla"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo build");
    assert!(status.success(), "cargo build --release failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("release").join("flotilla")
}

/// A plan of `clusters` × `releases` upgrades with the given rollout block.
fn write_plan(dir: &Path, clusters: usize, releases: usize, rollout: &str) -> PathBuf {
    let mut text = String::with_capacity(clusters * 80 + releases * 200);
    text.push_str("version: 1\nname: bench\ntarget:\n  region: cn-north-4\nclusters:\n");
    for c in 0..clusters {
        text.push_str(&format!(
            "  c{c}: {{ id: {:08x}-0000-4000-8000-{:012x}, labels: {{ env: prod }} }}\n",
            c, c
        ));
    }
    text.push_str(
        "defaults:\n  chart_id: af4b699e-018c-11ec-b8b0-0255ac100b05\n  action: upgrade\n",
    );
    text.push_str(rollout);
    text.push_str("releases:\n");
    for r in 0..releases {
        text.push_str(&format!(
            "  - name: app{r}\n    namespace: bench\n    selector: {{ labels: {{ env: prod }} }}\n    values: {{ imageTag: \"2.0.{r}\", replicaCount: 3 }}\n"
        ));
    }
    let path = dir.join("plan.yaml");
    std::fs::write(&path, text).expect("write plan");
    path
}

struct Sim {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Sim {
    /// A simulator that checks signatures with the bench's AK/SK.
    fn start(bin: &Path, dir: &Path, plan: &Path, extra: &[&str]) -> Sim {
        Self::spawn(bin, dir, plan, extra, true)
    }

    fn spawn(bin: &Path, dir: &Path, plan: &Path, extra: &[&str], signed: bool) -> Sim {
        let log = dir.join("sim-requests.jsonl");
        let mut command = Command::new(bin);
        if signed {
            command
                .env("FLOTILLA_SIM_AK", AK)
                .env("FLOTILLA_SIM_SK", SK);
        }
        let mut child = command
            .arg("sim")
            .arg("--seed")
            .arg(plan)
            .arg("--request-log")
            .arg(&log)
            .args(["--rng-seed", "7"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start flotilla sim");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("sim stdout"))
            .read_line(&mut first)
            .expect("sim's first line");
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .expect("`listening on URL`")
            .to_owned();
        Sim { child, url, log }
    }

    fn cpu(&self) -> Duration {
        cpu_time(self.child.id())
    }

    /// SIGTERM, wait, then the request log.
    fn stop(mut self) -> Vec<Value> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// What one run of the binary cost.
struct Measured {
    wall: Duration,
    cpu: Duration,
    peak_rss_kb: u64,
    exit: Option<i32>,
    /// The simulator's CPU while the run lasted, when one served it.
    sim_cpu: Duration,
}

/// Runs the binary. Its end is caught by `waitid(WNOWAIT)` the instant it exits, without
/// reaping it, so that its CPU time can still be read from the zombie's /proc entry; peak RSS
/// is sampled from /proc meanwhile.
fn measure(bin: &Path, args: &[&str], sim_url: Option<&str>) -> Measured {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("HUAWEICLOUD_SDK_AK", AK)
        .env("HUAWEICLOUD_SDK_SK", SK)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(url) = sim_url {
        cmd.args(["--endpoint", url]);
    }
    measure_command(cmd)
}

/// Runs `cmd` to its end and measures it the way [`measure`] does.
fn measure_command(mut cmd: Command) -> Measured {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let started = Instant::now();
    let mut child = cmd.spawn().expect("start the measured command");
    let pid = child.id();
    let exited = Arc::new(AtomicBool::new(false));
    let sampler = {
        let exited = Arc::clone(&exited);
        std::thread::spawn(move || {
            let mut peak_rss_kb = 0;
            while !exited.load(Ordering::Relaxed) {
                if let Some(rss) = proc_status_kb(pid, "VmHWM:") {
                    peak_rss_kb = peak_rss_kb.max(rss);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peak_rss_kb
        })
    };
    rustix::process::waitid(
        rustix::process::WaitId::Pid(rustix::process::Pid::from_child(&child)),
        rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOWAIT,
    )
    .expect("waitid");
    let wall = started.elapsed();
    let cpu = cpu_time(pid);
    exited.store(true, Ordering::Relaxed);
    let peak_rss_kb = sampler.join().unwrap_or(0);
    let status = child.wait().expect("wait for the measured command");
    Measured {
        wall,
        cpu,
        peak_rss_kb,
        exit: status.code(),
        sim_cpu: Duration::ZERO,
    }
}

fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The CPU time a live or zombie process has used so far (zero if /proc cannot tell).
fn cpu_time(pid: u32) -> Duration {
    proc_cpu_ticks(pid).map_or(Duration::ZERO, |ticks| {
        Duration::from_secs_f64(ticks as f64 / 100.0)
    })
}

/// utime + stime, in clock ticks.
fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Starts a signing simulator seeded with `plan`, applies the plan against it with the journal
/// on, and returns what the run cost and the simulator's request log.
fn apply_against_sim(
    bin: &Path,
    dir: &Path,
    plan: &Path,
    sim_args: &[&str],
) -> (Measured, Vec<Value>) {
    apply_against_sim_with(bin, dir, plan, sim_args, &[])
}

fn apply_against_sim_with(
    bin: &Path,
    dir: &Path,
    plan: &Path,
    sim_args: &[&str],
    apply_extra: &[&str],
) -> (Measured, Vec<Value>) {
    let sim = Sim::start(bin, dir, plan, sim_args);
    let journal = dir.join("journal.jsonl");
    let _ = std::fs::remove_file(&journal);
    let sim_cpu_before = sim.cpu();
    let mut measured = measure(
        bin,
        &apply_args(plan, &journal, apply_extra),
        Some(&sim.url),
    );
    measured.sim_cpu = sim.cpu().saturating_sub(sim_cpu_before);
    (measured, sim.stop())
}

/// Runs `run` `RUNS` times and keeps the run of median `key`: this machine's disk sometimes
/// stalls an fsync for a few hundred milliseconds, which one run cannot tell from a slow client.
const RUNS: usize = 3;

fn median_of_runs<T>(mut run: impl FnMut() -> T, key: impl Fn(&T) -> f64) -> (T, Vec<f64>) {
    let mut runs: Vec<T> = (0..RUNS).map(|_| run()).collect();
    runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let keys = runs.iter().map(&key).collect();
    (runs.swap_remove(RUNS / 2), keys)
}

fn apply_args<'a>(plan: &'a Path, journal: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "apply",
        plan.to_str().expect("utf-8 path"),
        "--progress",
        "never",
        "--journal",
        journal.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    args
}

fn puts(log: &[Value]) -> Vec<&Value> {
    log.iter().filter(|e| e["method"] == "PUT").collect()
}

/// The most requests that arrived within any 1-second window.
fn busiest_second(log: &[Value]) -> usize {
    let mut arrivals: Vec<f64> = log
        .iter()
        .filter_map(|e| e["arrived_ms"].as_f64())
        .collect();
    arrivals.sort_by(f64::total_cmp);
    let mut best = 0;
    let mut start = 0;
    for end in 0..arrivals.len() {
        while arrivals[end] - arrivals[start] >= 1000.0 {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// Requests per second between the first and the last arrival.
fn achieved_rate(log: &[Value]) -> f64 {
    let arrivals: Vec<f64> = log
        .iter()
        .filter_map(|e| e["arrived_ms"].as_f64())
        .collect();
    let (Some(first), Some(last)) = (
        arrivals.iter().copied().reduce(f64::min),
        arrivals.iter().copied().reduce(f64::max),
    ) else {
        return 0.0;
    };
    if last <= first {
        return 0.0;
    }
    (arrivals.len() - 1) as f64 / ((last - first) / 1000.0)
}

/// The raw HTTP baseline: the same PUTs as B1 from a dedicated load loop (and `oha`, when it is
/// installed), to measure what the simulator and the loopback can carry.
/// B0's requests and B1's operations, and the concurrency of both: oha is measured once, with
/// these, and serves as both scenarios' baseline.
const N: usize = 20_000;
const CONCURRENCY: usize = 64;

fn b0_raw_http(bin: &Path, dir: &Path) -> Value {
    let plan = write_plan(dir, 200, 100, "rollout: { rate: unlimited }\n");
    let (sim, url) = unsigned_sim(bin, dir, &plan);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (elapsed, ok) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(CONCURRENCY)
            .build()
            .expect("client");
        let started = Instant::now();
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..CONCURRENCY {
            let (client, next, url) = (client.clone(), next.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let mut ok = 0;
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < N {
                    let sent = client
                        .put(&url)
                        .header("content-type", "application/json")
                        .body(PUT_BODY)
                        .send()
                        .await;
                    if let Ok(answer) = sent {
                        ok += usize::from(answer.status().is_success());
                        let _ = answer.bytes().await;
                    }
                }
                ok
            }));
        }
        let mut ok = 0;
        for task in tasks {
            ok += task.await.unwrap_or(0);
        }
        (started.elapsed(), ok)
    });
    let rps = N as f64 / elapsed.as_secs_f64();
    let oha = *OHA_BASELINE.get_or_init(|| oha_median(dir, &sim, &url));
    let _ = sim.stop();
    let summary = match oha {
        Some(o) => format!(
            "load loop {rps:.0} req/s; oha {:.0} req/s (median of {RUNS} runs)",
            o.requests_per_s
        ),
        None => format!("load loop {rps:.0} req/s (oha not installed)"),
    };
    json!({
        "scenario": "B0", "what": "raw HTTP PUTs against the simulator, concurrency 64, 20,000 requests",
        "requests": N, "ok": ok, "requests_per_s": rps, "oha_requests_per_s": oha.map(|o| o.requests_per_s),
        "summary": summary, "goal": "simulator ≥ 20,000 req/s",
    })
}

/// The body of B0's PUTs, as flotilla sends it for B1's plan.
const PUT_BODY: &str = r#"{"chart_id":"af4b699e-018c-11ec-b8b0-0255ac100b05","action":"upgrade","values":{"imageTag":"2.0.1","replicaCount":3}}"#;

/// oha against an unsigned simulator, measured once per harness run.
static OHA_BASELINE: std::sync::OnceLock<Option<OhaRun>> = std::sync::OnceLock::new();

/// oha's figures with [`N`] requests at [`CONCURRENCY`], from B0 when it ran.
fn oha_baseline(bin: &Path, dir: &Path) -> Option<OhaRun> {
    *OHA_BASELINE.get_or_init(|| {
        let plan = write_plan(dir, 1, 1, "");
        let (sim, url) = unsigned_sim(bin, dir, &plan);
        let oha = oha_median(dir, &sim, &url);
        let _ = sim.stop();
        oha
    })
}

/// A simulator without signature checks (oha and the load loop do not sign: they measure the
/// transport and the simulator), and the URL of the first release of `plan`.
fn unsigned_sim(bin: &Path, dir: &Path, plan: &Path) -> (Sim, String) {
    let sim = Sim::spawn(bin, dir, plan, &["--settle", "0", "--latency", "0"], false);
    let url = format!(
        "{}/autopilot/cam/v3/clusters/00000000-0000-4000-8000-000000000000/namespace/bench/releases/app0",
        sim.url
    );
    (sim, url)
}

/// One oha run: its own rate, and the CPU per request that it and the simulator spent.
#[derive(Clone, Copy)]
struct OhaRun {
    requests_per_s: f64,
    cpu_us_per_request: f64,
    sim_cpu_us_per_request: f64,
}

/// The run of median rate of [`RUNS`] oha runs against `sim`: its figure moves by a third from
/// run to run here. `None` without oha, or if any run fails.
fn oha_median(dir: &Path, sim: &Sim, url: &str) -> Option<OhaRun> {
    Command::new("oha").arg("--version").output().ok()?;
    let mut runs: Vec<OhaRun> = (0..RUNS)
        .map(|_| oha_once(dir, sim, url))
        .collect::<Option<_>>()?;
    runs.sort_by(|a, b| a.requests_per_s.total_cmp(&b.requests_per_s));
    Some(runs.swap_remove(RUNS / 2))
}

fn oha_once(dir: &Path, sim: &Sim, url: &str) -> Option<OhaRun> {
    let report_path = dir.join("oha.json");
    let report_file = std::fs::File::create(&report_path).ok()?;
    let mut cmd = Command::new("oha");
    cmd.args(["--no-tui", "--output-format", "json", "-m", "PUT"])
        .args(["-n", &N.to_string(), "-c", &CONCURRENCY.to_string()])
        .args(["-H", "content-type: application/json", "-d", PUT_BODY, url])
        .stdout(report_file)
        .stderr(Stdio::null());
    let sim_cpu_before = sim.cpu();
    let measured = measure_command(cmd);
    let sim_cpu = sim.cpu().saturating_sub(sim_cpu_before);
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).ok()?).ok()?;
    Some(OhaRun {
        requests_per_s: report["summary"]["requestsPerSec"].as_f64()?,
        cpu_us_per_request: us_per(measured.cpu, N),
        sim_cpu_us_per_request: us_per(sim_cpu, N),
    })
}

fn us_per(cpu: Duration, count: usize) -> f64 {
    cpu.as_secs_f64() * 1e6 / count as f64
}

/// Operations per second of the whole process, from start to exit, with every request signed
/// and checked; oha's figure is its own requests per second against an unsigned simulator.
fn b1_overhead(bin: &Path, dir: &Path) -> Value {
    let plan = write_plan(
        dir,
        200,
        100,
        "rollout: { concurrency: 64, per_cluster: 64, rate: unlimited, preflight: false, wait: { enabled: false }, retry: { attempts: 3, backoff: 100ms, max_backoff: 1s } }\n",
    );
    let ((m, log), walls) = median_of_runs(
        || apply_against_sim(bin, dir, &plan, &["--settle", "0"]),
        |(m, _)| m.wall.as_secs_f64(),
    );
    let ops = puts(&log).len();
    let ops_per_s = N as f64 / m.wall.as_secs_f64();
    let cpu_us = us_per(m.cpu, N);
    let sim_cpu_us = us_per(m.sim_cpu, N);
    let oha = oha_baseline(bin, dir);
    let versus = match oha {
        Some(oha) => format!(
            "whole process, signed: {:.0}% of oha's {:.0} req/s. CPU per request, client + simulator: flotilla {cpu_us:.0} + {sim_cpu_us:.0} µs, oha {:.0} + {:.0} µs",
            ops_per_s / oha.requests_per_s * 100.0,
            oha.requests_per_s,
            oha.cpu_us_per_request,
            oha.sim_cpu_us_per_request
        ),
        None => format!(
            "oha not installed. CPU per op, client + simulator: {cpu_us:.0} + {sim_cpu_us:.0} µs"
        ),
    };
    json!({
        "scenario": "B1", "what": "overhead: 20,000 ops, latency 0, unlimited rate, concurrency 64, no preflight/wait, journal on",
        "exit": m.exit, "puts": ops, "wall_s": m.wall.as_secs_f64(), "wall_s_of_runs": walls, "ops_per_s": ops_per_s,
        "oha_requests_per_s": oha.map(|o| o.requests_per_s), "share_of_oha": oha.map(|o| ops_per_s / o.requests_per_s),
        "cpu_us_per_op": cpu_us, "sim_cpu_us_per_op": sim_cpu_us,
        "oha_cpu_us_per_request": oha.map(|o| o.cpu_us_per_request),
        "sim_cpu_us_per_oha_request": oha.map(|o| o.sim_cpu_us_per_request),
        "peak_rss_mb": m.peak_rss_kb as f64 / 1024.0,
        "summary": format!(
            "{ops_per_s:.0} ops/s ({versus}); peak RSS {:.0} MB (the median-wall run of {RUNS})",
            m.peak_rss_kb as f64 / 1024.0
        ),
        "goal": "≥ 60% of oha's req/s; ≤ 30 µs CPU/op",
    })
}

/// Wall time counts the whole process; the run's own duration (from its JSON report) leaves
/// out loading the plan and writing the report, which no amount of latency hiding changes.
fn b2_latency_hiding(bin: &Path, dir: &Path) -> Value {
    let plan = write_plan(
        dir,
        500,
        10,
        "rollout: { concurrency: 100, per_cluster: 100, rate: unlimited, preflight: false, wait: { enabled: false } }\n",
    );
    let report = dir.join("report.json");
    let report_arg = report.to_str().expect("utf-8 path");
    let run_seconds = || -> f64 {
        std::fs::read_to_string(&report)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|r| r["duration_ms"].as_f64())
            .map_or(f64::NAN, |ms| ms / 1000.0)
    };
    let ((m, log, run_s), _) = median_of_runs(
        || {
            // A run that writes no report must not be credited with the last one's time.
            let _ = std::fs::remove_file(&report);
            let (m, log) = apply_against_sim_with(
                bin,
                dir,
                &plan,
                &["--settle", "0", "--latency", "100ms"],
                &["--report-json", report_arg],
            );
            (m, log, run_seconds())
        },
        |(_, _, run_s)| *run_s,
    );
    let ideal = 5_000.0 * 0.1 / 100.0;
    let ratio = run_s / ideal;
    let wall_ratio = m.wall.as_secs_f64() / ideal;
    json!({
        "scenario": "B2", "what": "latency hiding: 5,000 ops, latency 100 ms, concurrency 100",
        "exit": m.exit, "puts": puts(&log).len(), "run_s": run_s, "wall_s": m.wall.as_secs_f64(), "ideal_s": ideal,
        "ratio": ratio, "wall_ratio": wall_ratio,
        "summary": format!(
            "run {run_s:.2} s vs ideal {ideal:.2} s: ×{ratio:.3}; whole process {:.2} s: ×{wall_ratio:.3} (the median run of {RUNS})",
            m.wall.as_secs_f64()
        ),
        "goal": "≤ 1.03",
    })
}

fn b3_rate_accuracy(bin: &Path, dir: &Path) -> Value {
    let plan = write_plan(
        dir,
        300,
        10,
        "rollout: { concurrency: 64, per_cluster: 64, rate: 200, burst: 1, preflight: false, wait: { enabled: false } }\n",
    );
    let (m, log) = apply_against_sim(bin, dir, &plan, &["--settle", "0"]);
    let rate = achieved_rate(&log);
    let window = busiest_second(&log);
    json!({
        "scenario": "B3", "what": "rate accuracy: rate 200/s, burst 1, 3,000 ops",
        "exit": m.exit, "requests": log.len(), "achieved_rate": rate, "busiest_1s_window": window,
        "summary": format!("{rate:.1} req/s; busiest 1 s window {window}"),
        "goal": "within 2% of 200; window ≤ 201",
    })
}

fn b4_adaptive(bin: &Path, dir: &Path) -> Value {
    let plan = write_plan(
        dir,
        300,
        10,
        "rollout: { concurrency: 64, per_cluster: 64, rate: 1000, burst: 10, preflight: false, wait: { enabled: false }, retry: { attempts: 20, backoff: 100ms, max_backoff: 2s } }\n",
    );
    let (m, log) = apply_against_sim(bin, dir, &plan, &["--settle", "0", "--throttle", "150"]);
    let throttled = log.iter().filter(|e| e["status"] == 429).count();
    let accepted: Vec<Value> = log.iter().filter(|e| e["status"] != 429).cloned().collect();
    let rate = achieved_rate(&accepted);
    let share = throttled as f64 / log.len().max(1) as f64;
    json!({
        "scenario": "B4", "what": "adaptive: sim throttles at 150/s, client allowed 1,000/s, 3,000 ops",
        "exit": m.exit, "requests": log.len(), "throttled": throttled, "achieved_rate": rate,
        "throttled_share": share,
        "summary": format!("{rate:.1} accepted req/s ({:.0}% of 150); {:.1}% answered 429", rate / 1.5, share * 100.0),
        "goal": "≥ 90% of 150; ≤ 5% 429s",
    })
}

fn b5_scale(bin: &Path, dir: &Path) -> Value {
    let plan = write_plan(
        dir,
        1_000,
        100,
        "rollout: { concurrency: 64, per_cluster: 8, rate: unlimited, preflight: false, wait: { enabled: false } }\n",
    );
    let plan_str = plan.to_str().expect("utf-8 path");
    let validate = measure(bin, &["validate", plan_str], None);
    let (m, log) = apply_against_sim(bin, dir, &plan, &["--settle", "0"]);
    let ops_per_s = 100_000.0 / m.wall.as_secs_f64();
    json!({
        "scenario": "B5", "what": "scale: 100,000 ops (1,000 clusters × 100 releases)",
        "validate_exit": validate.exit, "validate_wall_s": validate.wall.as_secs_f64(),
        "validate_peak_rss_mb": validate.peak_rss_kb as f64 / 1024.0,
        "apply_exit": m.exit, "puts": puts(&log).len(), "apply_peak_rss_mb": m.peak_rss_kb as f64 / 1024.0,
        "apply_ops_per_s": ops_per_s,
        "summary": format!(
            "validate {:.2} s, {:.0} MB; apply {ops_per_s:.0} ops/s, {:.0} MB",
            validate.wall.as_secs_f64(), validate.peak_rss_kb as f64 / 1024.0, m.peak_rss_kb as f64 / 1024.0
        ),
        "goal": "validate ≤ 1.5 s and ≤ 200 MB; apply ≤ 400 MB",
    })
}

fn b6_full_path(bin: &Path, dir: &Path) -> Value {
    let plan = write_plan(
        dir,
        200,
        10,
        "rollout: { concurrency: 100, per_cluster: 100, rate: unlimited, preflight: true, wait: { enabled: true, timeout: 1m, poll: 50ms } }\n",
    );
    let (m, log) = apply_against_sim(bin, dir, &plan, &["--settle", "200ms"]);
    let ideal = 2_000.0 * 0.2 / 100.0;
    let ratio = m.wall.as_secs_f64() / ideal;
    json!({
        "scenario": "B6", "what": "full path: 2,000 ops, preflight + wait, settle 200 ms, concurrency 100",
        "exit": m.exit, "requests": log.len(), "puts": puts(&log).len(), "wall_s": m.wall.as_secs_f64(),
        "ideal_s": ideal, "ratio": ratio,
        "summary": format!("{:.2} s vs ideal {ideal:.2} s: ×{ratio:.2}", m.wall.as_secs_f64()),
        "goal": "≤ 1.3",
    })
}

/// Every bad plan of the test corpus is refused (exit 2) quickly, whatever is wrong with it.
fn b7_bad_plans(bin: &Path, dir: &Path) -> Value {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plans/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("bad-plan corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files.push(plan_with_many_problems(dir, 20_000));
    let mut slowest = (String::new(), Duration::ZERO);
    let mut wrong_exit = Vec::new();
    for file in &files {
        let m = measure(bin, &["validate", file.to_str().expect("utf-8 path")], None);
        if m.exit != Some(2) {
            wrong_exit.push(file.display().to_string());
        }
        if m.wall > slowest.1 {
            slowest = (
                file.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                m.wall,
            );
        }
    }
    json!({
        "scenario": "B7", "what": format!("bad plans: {} files of the corpus and one with 20,000 problems through `validate`", files.len() - 1),
        "files": files.len(), "not_exit_2": wrong_exit, "slowest": slowest.0, "slowest_s": slowest.1.as_secs_f64(),
        "summary": format!("all exit 2: {}; slowest {} in {:.3} s", wrong_exit.is_empty(), slowest.0, slowest.1.as_secs_f64()),
        "goal": "exit 2 within 1 s each",
    })
}

/// A plan whose every release names a cluster that does not exist: one problem each.
fn plan_with_many_problems(dir: &Path, releases: usize) -> PathBuf {
    let mut text = String::from(
        "version: 1\ntarget: { region: cn-north-4 }\nclusters:\n  c1: { id: 00000001-0000-4000-8000-000000000000 }\ndefaults:\n  chart_id: af4b699e-018c-11ec-b8b0-0255ac100b05\nreleases:\n",
    );
    for r in 0..releases {
        text.push_str(&format!(
            "  - {{ name: app{r}, namespace: ns, clusters: [nope{r}] }}\n"
        ));
    }
    let path = dir.join(format!("{releases}-problems.yaml"));
    std::fs::write(&path, text).expect("write plan");
    path
}
