//! The project id found through IAM as the SDKs find it, end to end: the real binary with AK/SK
//! and no project id against the simulator's `GET /v3/projects`; one project is used, none,
//! several or a wrong answer is exit 2 before any release request.

use std::path::{Path, PathBuf};
use std::time::Duration;

use flotilla::secret::Secret;
use flotilla::sim::{IamFault, LogEntry, RunningSim, SimAuth, SimConfig};

use crate::e2e_support::*;

const LIMIT: Duration = Duration::from_secs(60);
const PROJECT: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

/// A signing simulator whose IAM lists `projects` (`(region, id)`).
fn iam_sim(projects: &[(&str, &str)]) -> SimConfig {
    let mut config = sim_config(Duration::from_millis(20)).with_auth(SimAuth::AkSk {
        ak: Secret::new(TEST_AK),
        sk: Secret::new(TEST_SK),
        project_id: None,
    });
    for (region, id) in projects {
        config = config.with_project(region, id);
    }
    config
}

/// A two-cluster plan served by a simulator started from `config`, written into `dir`, with
/// `iam_endpoint: <the simulator>` under `target` when `iam_in_plan`.
async fn setup(config: SimConfig, dir: &Path, iam_in_plan: bool) -> (RunningSim, PathBuf) {
    let mut spec = PlanSpec::new("iam", 2, 1).rollout(&[
        "rate: unlimited",
        "wait: { enabled: true, timeout: 20s, poll: 20ms }",
    ]);
    let mut seed = spec.load();
    let sim = start_sim(config, &mut seed).await;
    spec.endpoint = sim.base_url();
    let mut yaml = spec.to_yaml();
    if iam_in_plan {
        let endpoint_line = format!("  endpoint: {}\n", sim.base_url());
        yaml = yaml.replace(
            &endpoint_line,
            &format!("{endpoint_line}  iam_endpoint: {}/\n", sim.base_url()),
        );
    }
    let path = dir.join("iam.yaml");
    std::fs::write(&path, yaml).unwrap();
    (sim, path)
}

fn iam_requests(log: &[LogEntry]) -> Vec<&LogEntry> {
    log.iter().filter(|e| e.path == "/v3/projects").collect()
}

fn release_requests(log: &[LogEntry]) -> usize {
    log.iter()
        .filter(|e| e.path.starts_with("/autopilot/"))
        .count()
}

async fn apply(dir: &Path, plan: &Path, extra: &[&str]) -> std::process::Output {
    let mut command = flotilla_with_credentials_without_project(dir);
    command
        .arg("apply")
        .arg(plan)
        .args(["--progress", "plain"])
        .args(extra);
    output_within(LIMIT, command).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_project_is_found_once_and_sent_with_every_release_request() {
    let dir = tempfile::tempdir().unwrap();
    // The simulator refuses a release request whose X-Project-Id is not this project's.
    let (sim, plan) = setup(iam_sim(&[("cn-north-4", PROJECT)]), dir.path(), true).await;
    let output = apply(dir.path(), &plan, &[]).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(exit_code(&output), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "project id of region cn-north-4 found through IAM at {}: {PROJECT}",
            sim.base_url()
        )),
        "{stderr}"
    );
    let log = sim.request_log();
    let iam = iam_requests(&log);
    assert_eq!(iam.len(), 1, "asked once for the region: {log:#?}");
    assert_eq!(iam[0].query.as_deref(), Some("name=cn-north-4"));
    assert_eq!(iam[0].status, Some(200));
    assert!(iam[0].credential.starts_with("ak:"), "signed");
    assert_eq!(log[0].path, "/v3/projects", "before any release request");
    assert!(release_requests(&log) > 0);
    assert!(
        log.iter().all(|e| e.status != Some(401)),
        "every release request carried the project id: {log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_iam_endpoint_flag_is_used_and_plan_diff_finds_the_project_too() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, plan) = setup(iam_sim(&[("cn-north-4", PROJECT)]), dir.path(), false).await;
    let mut command = flotilla_with_credentials_without_project(dir.path());
    command
        .arg("plan")
        .arg(&plan)
        .args(["--diff", "--iam-endpoint", &sim.base_url()]);
    let output = output_within(LIMIT, command).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(exit_code(&output), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "c1, c2: IAM at {} for region cn-north-4: {PROJECT}",
            sim.base_url()
        )),
        "{stdout}"
    );
    let log = sim.request_log();
    assert_eq!(iam_requests(&log).len(), 1, "{log:#?}");
    assert!(release_requests(&log) >= 2, "a GET per release: {log:#?}");
    assert!(log.iter().all(|e| e.status == Some(200)), "{log:#?}");

    // `plan` alone names IAM, and sends nothing.
    let before = sim.request_log().len();
    let mut command = flotilla_with_credentials_without_project(dir.path());
    command
        .arg("plan")
        .arg(&plan)
        .args(["--iam-endpoint", &sim.base_url(), "--format", "json"]);
    let output = output_within(LIMIT, command).await;
    assert_eq!(exit_code(&output), Some(0), "{}", text(&output.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let cluster = &doc["waves"][0]["operations"][0]["cluster"];
    assert_eq!(
        cluster["project_id_source"], "iam_when_sending",
        "{cluster}"
    );
    assert_eq!(sim.request_log().len(), before, "plan alone sends nothing");
}

/// Runs `apply` against a simulator from `config` and checks the exit-2 refusal: it names the
/// region and the IAM endpoint, and not one release request was sent.
async fn refused(config: SimConfig, credentials_ok: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (sim, plan) = setup(config, dir.path(), true).await;
    let output = if credentials_ok {
        apply(dir.path(), &plan, &[]).await
    } else {
        let mut command = flotilla(dir.path());
        command
            .env("HUAWEICLOUD_SDK_AK", TEST_AK)
            .env("HUAWEICLOUD_SDK_SK", "NotTheSecretKey0123456789abcdefWRONG")
            .arg("apply")
            .arg(&plan)
            .args(["--progress", "plain"]);
        output_within(LIMIT, command).await
    };
    let stderr = text(&output.stderr);
    assert_eq!(exit_code(&output), Some(2), "{stderr}");
    for needle in [
        "cn-north-4".to_owned(),
        format!("{}/v3/projects", sim.base_url()),
        "HUAWEICLOUD_SDK_PROJECT_ID".to_owned(),
    ] {
        assert!(stderr.contains(&needle), "{needle}: {stderr}");
    }
    let log = sim.request_log();
    assert_eq!(iam_requests(&log).len(), 1, "{log:#?}");
    assert_eq!(release_requests(&log), 0, "no release request: {log:#?}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_project_for_the_region_is_exit_2_with_the_trace_id() {
    let stderr = refused(iam_sim(&[("eu-west-0", PROJECT)]), true).await;
    assert!(stderr.contains("no project named `cn-north-4`"), "{stderr}");
    assert!(stderr.contains("X-IAM-Trace-Id="), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_projects_for_the_region_are_exit_2_naming_them() {
    let stderr = refused(
        iam_sim(&[("cn-north-4", "p-one"), ("cn-north-4", "p-two")]),
        true,
    )
    .await;
    assert!(stderr.contains("p-one, p-two"), "{stderr}");
    assert!(stderr.contains("X-IAM-Trace-Id="), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_answers_are_exit_2_before_any_release_request() {
    let project = [("cn-north-4", PROJECT)];
    let not_json = refused(iam_sim(&project).with_iam_fault(IamFault::NotJson), true).await;
    assert!(not_json.contains("not JSON"), "{not_json}");
    let no_list = refused(iam_sim(&project).with_iam_fault(IamFault::NoProjects), true).await;
    assert!(no_list.contains("no `projects`"), "{no_list}");
    let forbidden = refused(
        iam_sim(&project).with_iam_fault(IamFault::Status(403)),
        true,
    )
    .await;
    assert!(forbidden.contains("HTTP 403"), "{forbidden}");
    let unauthorized = refused(iam_sim(&project), false).await;
    assert!(unauthorized.contains("HTTP 401"), "{unauthorized}");
    assert!(
        !unauthorized.contains("NotTheSecretKey"),
        "never the secret: {unauthorized}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_diff_stops_at_a_wrong_answer_before_reading_any_release() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, plan) = setup(iam_sim(&[]), dir.path(), true).await;
    let mut command = flotilla_with_credentials_without_project(dir.path());
    command.arg("plan").arg(&plan).arg("--diff");
    let output = output_within(LIMIT, command).await;
    let stderr = text(&output.stderr);
    assert_eq!(exit_code(&output), Some(2), "{stderr}");
    assert!(stderr.contains("no project named `cn-north-4`"), "{stderr}");
    assert_eq!(release_requests(&sim.request_log()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iam_endpoint_over_plain_http_beyond_loopback_is_refused_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, plan) = setup(iam_sim(&[("cn-north-4", PROJECT)]), dir.path(), false).await;
    let output = apply(
        dir.path(),
        &plan,
        &["--iam-endpoint", "http://iam.example.com"],
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(exit_code(&output), Some(2), "{stderr}");
    assert!(stderr.contains("--allow-insecure-http"), "{stderr}");
    assert!(sim.request_log().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehearsal_finds_its_project_ids_through_the_simulators_iam() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml");
    let log_path = dir.path().join("requests.jsonl");
    let mut command = flotilla(dir.path());
    command.arg("apply").arg(&demo).args([
        "--simulate",
        "--time-scale",
        "50",
        "--progress",
        "plain",
        "--sim-request-log",
    ]);
    command.arg(&log_path).env("IMAGE_TAG", "");
    let output = output_within(LIMIT, command).await;
    let stderr = text(&output.stderr);
    assert_eq!(exit_code(&output), Some(0), "{stderr}");
    assert!(
        stderr.contains("project id of region cn-north-4 found through IAM"),
        "{stderr}"
    );
    let log = read_request_log(&log_path);
    assert_eq!(log[0].path, "/v3/projects", "{log:#?}");
    assert_eq!(iam_requests(&log).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_suggests_iam_endpoint_for_a_misspelt_key() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = PlanSpec::new("typo", 1, 1).to_yaml().replace(
        "  region: cn-north-4\n",
        "  region: cn-north-4\n  iam_endpont: https://iam.example.com\n",
    );
    let path = dir.path().join("typo.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut command = flotilla(dir.path());
    command.arg("validate").arg(&path);
    let output = output_within(LIMIT, command).await;
    let stderr = text(&output.stderr);
    assert_eq!(exit_code(&output), Some(2), "{stderr}");
    assert!(stderr.contains("did you mean `iam_endpoint`?"), "{stderr}");
}

/// The client asks IAM once per access key and region in a run, whatever it is asked after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_asks_once_per_region_and_caches_the_answer() {
    use flotilla::cce::client::{Client, ClientConfig};
    use flotilla::cce::credentials::Credentials;
    let mut seed = PlanSpec::new("cache", 1, 1).load();
    let sim = start_sim(
        iam_sim(&[("cn-north-4", PROJECT), ("cn-east-3", "p-east")]),
        &mut seed,
    )
    .await;
    let client = Client::new(
        ClientConfig {
            https: false,
            ..ClientConfig::default()
        },
        Credentials::AkSk {
            access_key: Secret::new(TEST_AK),
            secret_key: Secret::new(TEST_SK),
            security_token: None,
            project_id: None,
        },
    )
    .unwrap();
    let iam = sim.base_url();
    for _ in 0..3 {
        assert_eq!(
            client
                .discover_project_id("cn-north-4", &iam)
                .await
                .unwrap(),
            PROJECT
        );
    }
    assert_eq!(
        client.discover_project_id("cn-east-3", &iam).await.unwrap(),
        "p-east"
    );
    let log = sim.request_log();
    let asked: Vec<Option<&str>> = iam_requests(&log)
        .iter()
        .map(|e| e.query.as_deref())
        .collect();
    assert_eq!(asked, [Some("name=cn-north-4"), Some("name=cn-east-3")]);
}
