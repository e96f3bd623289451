//! `flotilla sim` as a process: the `listening on` line, serving, and a clean stop on SIGTERM
//! that writes the state file and the request log.

use std::process::Stdio;
use std::time::Duration;

use crate::sim_support::{fleet, release_url};
use flotilla::sim::{LogEntry, SimStateSnapshot, Store};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

struct Sim {
    child: Child,
    base_url: String,
    /// The `listening on` lines after the first (one per further `--listen`).
    more_lines: Vec<String>,
}

async fn spawn(args: &[&str], env: &[(&str, &str)]) -> Sim {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flotilla"));
    command
        .arg("sim")
        .args(args)
        .env_remove("FLOTILLA_SIM_AK")
        .env_remove("FLOTILLA_SIM_SK")
        .env_remove("FLOTILLA_SIM_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("flotilla runs");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut first))
        .await
        .expect("the first line comes quickly")
        .unwrap();
    let base_url = first
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_owned();
    assert!(base_url.starts_with("http://127.0.0.1:"), "{base_url}");
    let listens = args.iter().filter(|a| **a == "--listen").count();
    let mut more_lines = Vec::new();
    for _ in 1..listens {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line))
            .await
            .expect("every listening line comes at once")
            .unwrap();
        more_lines.push(line.trim_end().to_owned());
    }
    Sim {
        child,
        base_url,
        more_lines,
    }
}

/// Sends SIGTERM and waits for the exit; answers the exit code and stderr.
async fn terminate(mut sim: Sim) -> (Option<i32>, String) {
    let pid = sim.child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), sim.child.wait())
        .await
        .expect("stops on SIGTERM")
        .unwrap();
    let mut stderr = String::new();
    sim.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    (status.code(), stderr)
}

#[tokio::test]
async fn sim_binary_serves_and_stops_cleanly_on_sigterm_writing_state_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state.json");
    let log_path = dir.path().join("requests.jsonl");
    let mut store = Store::new(Duration::ZERO);
    store.seed(&fleet());
    std::fs::write(&state_path, serde_json::to_vec(&store.snapshot()).unwrap()).unwrap();

    let sim = spawn(
        &[
            "--settle",
            "0",
            "--rng-seed",
            "1",
            "--state",
            state_path.to_str().unwrap(),
            "--request-log",
            log_path.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let c = crate::sim_support::client();
    let url = release_url(&sim.base_url, "c1", "web", "frontend");
    let reply = crate::sim_support::put(
        &c,
        &url,
        serde_json::json!({"action": "upgrade", "values": {"imageTag": "v5"}}),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        crate::sim_support::get(&c, &format!("{}/nowhere", sim.base_url))
            .await
            .status,
        404
    );

    let (code, stderr) = terminate(sim).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("authentication is off"), "{stderr}");

    let state: SimStateSnapshot =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    let release = state.release("c1", "web", "frontend").unwrap();
    assert_eq!((release.version, release.applied_puts), (2, 1));
    let log = std::fs::read_to_string(&log_path).unwrap();
    let entries: Vec<LogEntry> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].status, Some(404));
}

#[tokio::test]
async fn credentials_from_the_environment_are_enforced_and_never_printed() {
    let sim = spawn(
        &[],
        &[
            ("FLOTILLA_SIM_AK", "AKFROMENV123"),
            ("FLOTILLA_SIM_SK", "SKFROMENV456"),
        ],
    )
    .await;
    let reply = crate::sim_support::get(
        &crate::sim_support::client(),
        &format!("{}/_sim/state", sim.base_url),
    )
    .await;
    assert_eq!(
        reply.status, 200,
        "the simulator's own route needs no signature"
    );
    let api = crate::sim_support::get(
        &crate::sim_support::client(),
        &release_url(&sim.base_url, "c1", "web", "x"),
    )
    .await;
    assert_eq!(
        (api.status, api.body["error_code"].as_str()),
        (401, Some("APIG.0301"))
    );
    let (code, stderr) = terminate(sim).await;
    assert_eq!(code, Some(0));
    assert!(
        !stderr.contains("AKFROMENV123") && !stderr.contains("SKFROMENV456"),
        "{stderr}"
    );
    assert!(!stderr.contains("authentication is off"));
}

#[test]
fn sim_help_lists_every_flag() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["sim", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--listen",
        "--seed",
        "--state",
        "--ak",
        "--sk",
        "--project-id",
        "--token",
        "--settle",
        "--deploy-fail-rate",
        "--latency",
        "--jitter",
        "--throttle",
        "--no-retry-after",
        "--error-rate",
        "--ambiguous-rate",
        "--hang-rate",
        "--reset-rate",
        "--null-fields",
        "--rng-seed",
        "--request-log",
        "--error-style",
        "--busy-status",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

/// The process answers errors in the `--error-style` asked for, and refuses a `--busy-status`
/// that is not one of the three seen.
#[tokio::test]
async fn the_error_style_reaches_the_answers_and_a_strange_busy_status_is_refused() {
    let sim = spawn(&["--error-style", "nested", "--busy-status", "409"], &[]).await;
    let missing = crate::sim_support::get(
        &crate::sim_support::client(),
        &release_url(&sim.base_url, "nope", "web", "frontend"),
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body["error"]["code"], "CCE.01404001",
        "{}",
        missing.body
    );
    let (code, _) = terminate(sim).await;
    assert_eq!(code, Some(0));

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["sim", "--busy-status", "500"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("400, 403, 409"), "{stderr}");
}

/// `--listen` twice: two endpoints, one `listening on` line each, serving the same releases,
/// each with its own throttle.
#[tokio::test]
async fn each_listen_address_is_an_endpoint_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state.json");
    let mut store = Store::new(Duration::ZERO);
    store.seed(&fleet());
    std::fs::write(&state_path, serde_json::to_vec(&store.snapshot()).unwrap()).unwrap();
    let state_arg = state_path.to_str().unwrap();
    let mut sim = spawn(
        &[
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
            "--throttle",
            "1",
            "--state",
            state_arg,
        ],
        &[],
    )
    .await;
    let second = sim.more_lines.remove(0);
    let second = second
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("second line: {second:?}"))
        .to_owned();
    assert_ne!(second, sim.base_url);
    let client = reqwest::Client::new();
    let get = |base: &str| {
        client
            .get(release_url(base, "c1", "web", "frontend"))
            .send()
    };
    assert_eq!(get(&sim.base_url).await.unwrap().status(), 200);
    assert_eq!(get(&sim.base_url).await.unwrap().status(), 429);
    // The other endpoint: the same release, its own (full) bucket.
    assert_eq!(get(&second).await.unwrap().status(), 200);
    let (code, stderr) = terminate(sim).await;
    assert_eq!(code, Some(0), "{stderr}");
}

/// `flotilla sim --project REGION=ID` serves IAM's project list with signature checks, in IAM's
/// shapes; two projects for one region make `apply` stop with exit 2 naming both, before any
/// release request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_projects_are_served_by_its_iam_and_two_for_a_region_are_several() {
    use crate::e2e_support::{PlanSpec, TEST_AK, TEST_SK, output_within, text};
    let dir = tempfile::tempdir().unwrap();
    let mut spec = PlanSpec::new("several", 1, 1);
    let seed = spec.write(dir.path());
    let sim = spawn(
        &[
            "--ak",
            TEST_AK,
            "--sk",
            TEST_SK,
            "--project",
            "cn-north-4=p-one",
            "--project",
            "cn-north-4=p-two",
            "--project",
            "cn-east-3=p-three",
            "--seed",
            seed.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let unsigned = crate::sim_support::client()
        .get(format!("{}/v3/projects?name=cn-east-3", sim.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    assert!(unsigned.headers().contains_key("x-iam-trace-id"));
    let body: serde_json::Value = serde_json::from_slice(&unsigned.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], 401, "{body}");

    spec.endpoint = sim.base_url.clone();
    let plan = spec.write(dir.path());
    let mut command = crate::e2e_support::flotilla_with_credentials_without_project(dir.path());
    command
        .arg("apply")
        .arg(&plan)
        .args(["--iam-endpoint", &sim.base_url, "--progress", "plain"]);
    let output = output_within(Duration::from_secs(60), command).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("p-one, p-two"), "{stderr}");
    let (code, sim_stderr) = terminate(sim).await;
    assert_eq!(code, Some(0));
    assert!(
        sim_stderr
            .contains("lists 3 project(s): cn-north-4=p-one, cn-north-4=p-two, cn-east-3=p-three"),
        "{sim_stderr}"
    );
}
