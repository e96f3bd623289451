//! `flotilla status` and `flotilla history` end to end: the real binary against the in-process
//! simulator, over a fleet with a release in sync, one drifted, one missing, one failed and one
//! whose masked values cannot be compared; `--detailed-exitcode` 0/2/1, the JSON against
//! `schema/status.schema.json`, and the seeded revisions in `history`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flotilla::cce::client::{Client, ClientConfig};
use flotilla::cce::credentials::Credentials;
use flotilla::cce::model::ReleaseStatus;
use flotilla::engine::EngineOptions;
use flotilla::plan::resolved::{ExpandedPlan, Rate};
use flotilla::secret::Secret;
use flotilla::sim::store::ReleaseKey;
use flotilla::sim::{RunningSim, SimConfig, Simulator};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::e2e_support::{assert_matches_schema, exit_code, output_within, text};

fn demo_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml")
}

fn demo() -> ExpandedPlan {
    let mut plan = flotilla::plan::load_path(&demo_path()).expect("the demo plan loads");
    plan.rollout.rate = Rate::Unlimited;
    plan.rollout.wait.poll = Duration::from_millis(20);
    plan.rollout.wait.timeout = Duration::from_secs(10);
    for wave in &mut plan.waves {
        wave.soak = Duration::ZERO;
    }
    plan
}

fn key(plan: &ExpandedPlan, cluster: &str, release: &str) -> ReleaseKey {
    let op = plan
        .operations()
        .find(|op| op.cluster.name == cluster && op.release == release)
        .expect("the operation is in the plan");
    ReleaseKey::new(&op.cluster.id, &op.namespace, &op.release)
}

/// The demo fleet's canary wave: canary-1 storefront applied (in sync), canary-1 checkout
/// applied (its secret masked: unknown), canary-1 search applied then FAILED (unhealthy),
/// canary-2 storefront deleted (missing), canary-2 checkout untouched (drifted).
async fn fleet() -> (RunningSim, ExpandedPlan) {
    let plan = demo();
    let mut config = SimConfig::default().with_settle(Duration::from_millis(20));
    config.seed_revisions = 3;
    let sim = Simulator::start(config, &[&plan])
        .await
        .expect("the simulator starts");
    let mut canary_1 = plan.clone();
    canary_1.retarget(&sim.base_url());
    for wave in &mut canary_1.waves {
        wave.operations.retain(|op| op.cluster.name == "canary-1");
    }
    let client = Client::new(
        ClientConfig::default(),
        Credentials::Token(Secret::new("t")),
    )
    .expect("client");
    let (tx, mut rx) = mpsc::channel(1024);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let applied =
        flotilla::engine::run(&canary_1, Arc::new(client), EngineOptions::default(), tx).await;
    drain.await.unwrap();
    assert!(applied.summary.all_succeeded(), "{:#?}", applied.results);
    sim.with_store(|store| {
        store
            .edit_release(&key(&plan, "canary-1", "search"), |release| {
                release.status = ReleaseStatus::Failed;
                if let Some(last) = release.history.last_mut() {
                    last.status = ReleaseStatus::Failed;
                }
            })
            .expect("search exists");
        store
            .delete(&key(&plan, "canary-2", "storefront"))
            .expect("storefront deleted");
    });
    (sim, plan)
}

async fn flotilla(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    let mut command = crate::e2e_support::flotilla_with_credentials(home.path());
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args(args);
    output_within(Duration::from_secs(60), command).await
}

fn status_args<'a>(sim_url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "status",
        "plans/demo.yaml",
        "--endpoint",
        sim_url,
        "--wave",
        "canary",
    ];
    args.extend_from_slice(extra);
    args
}

fn state_of(doc: &Value, cluster: &str, release: &str) -> String {
    doc["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cluster"] == cluster && r["release"] == release)
        .unwrap_or_else(|| panic!("no {cluster} {release} in {doc:#}"))["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_tells_each_release_state_and_detailed_exit_codes() {
    let (sim, _plan) = fleet().await;
    let url = sim.base_url();
    let puts_before = crate::e2e_support::puts(&sim.request_log()).count();

    let out = flotilla(&status_args(&url, &[])).await;
    let table = text(&out.stdout);
    assert_eq!(exit_code(&out), Some(0), "{table}\n{}", text(&out.stderr));
    assert!(table.contains("shop/storefront: in sync"), "{table}");
    assert!(
        table.contains("search/search: unhealthy  (FAILED rev"),
        "{table}"
    );
    assert!(table.contains("shop/storefront: missing"), "{table}");
    assert!(table.contains("shop/checkout: drifted"), "{table}");
    assert!(table.contains("shop/checkout: unknown"), "{table}");
    assert!(
        table.contains("1 in sync, 1 drifted, 1 missing, 1 unhealthy, 1 unknown, 0 unreachable"),
        "{table}"
    );
    assert!(table.contains("requests sent: "), "{table}");
    assert!(
        !table.contains("demo-not-a-real-key"),
        "a secret was printed: {table}"
    );
    // Grouped by cluster within the wave: canary-1's header once, before canary-2's.
    assert_eq!(table.matches("  cluster canary-1\n").count(), 1, "{table}");

    let out = flotilla(&status_args(&url, &["--detailed-exitcode"])).await;
    assert_eq!(exit_code(&out), Some(2), "{}", text(&out.stdout));

    let out = flotilla(&status_args(
        &url,
        &[
            "--detailed-exitcode",
            "--select",
            "cluster=canary-1",
            "--select",
            "release=storefront",
        ],
    ))
    .await;
    assert_eq!(exit_code(&out), Some(0), "{}", text(&out.stdout));

    let out = flotilla(&status_args(&url, &["--format", "json"])).await;
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_matches_schema("status", &doc);
    assert_eq!(state_of(&doc, "canary-1", "storefront"), "in_sync");
    assert_eq!(state_of(&doc, "canary-2", "storefront"), "missing");
    assert_eq!(state_of(&doc, "canary-1", "search"), "unhealthy");
    assert_eq!(state_of(&doc, "canary-2", "checkout"), "drifted");
    assert_eq!(state_of(&doc, "canary-1", "checkout"), "unknown");
    let total = doc["requests"]["total"].as_u64().unwrap();
    let per_cluster: u64 = doc["requests"]["per_cluster"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(total >= 5 && total == per_cluster, "{doc:#}");

    let out = flotilla(&status_args(&url, &["--format", "markdown"])).await;
    let markdown = text(&out.stdout);
    assert!(
        markdown.contains("| canary | canary-2 | shop/storefront | missing |"),
        "{markdown}"
    );

    // Read-only: not one PUT.
    assert_eq!(
        crate::e2e_support::puts(&sim.request_log()).count(),
        puts_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exits_1_with_detailed_exitcode_when_the_api_cannot_be_reached() {
    // Nothing listens on port 1: every read fails after its retries.
    let args = status_args(
        "http://127.0.0.1:1",
        &[
            "--detailed-exitcode",
            "--select",
            "cluster=canary-1",
            "--select",
            "release=storefront",
        ],
    );
    let out = flotilla(&args).await;
    let table = text(&out.stdout);
    assert_eq!(exit_code(&out), Some(1), "{table}");
    assert!(table.contains("shop/storefront: unreachable"), "{table}");
    assert!(table.contains("Connection refused"), "{table}");
    // Without the flag, an unreachable release is shown, not an exit code.
    let out = flotilla(&args[..args.len() - 5]).await;
    assert_eq!(exit_code(&out), Some(0), "{}", text(&out.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_with_nothing_sent() {
    let out = flotilla(&["status", "plans/demo.yaml", "--select", "nonsense"]).await;
    assert_eq!(exit_code(&out), Some(2));
    let out = flotilla(&["history", "plans/demo.yaml", "-n", "x"]).await;
    assert_eq!(exit_code(&out), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_shows_the_seeded_revisions_newest_first() {
    let (sim, _plan) = fleet().await;
    let url = sim.base_url();
    let args = [
        "history",
        "plans/demo.yaml",
        "--endpoint",
        &url,
        "--select",
        "cluster=canary-2",
        "--select",
        "release=checkout",
        "-n",
        "2",
    ];
    let out = flotilla(&args).await;
    let table = text(&out.stdout);
    assert_eq!(exit_code(&out), Some(0), "{table}\n{}", text(&out.stderr));
    assert!(
        table.contains("canary-2 shop/checkout (wave canary)"),
        "{table}"
    );
    let revisions: Vec<&str> = table
        .lines()
        .filter(|l| l.trim_start().starts_with("revision "))
        .collect();
    assert_eq!(revisions.len(), 2, "{table}");
    assert!(
        revisions[0].contains("revision 3 ") && revisions[1].contains("revision 2 "),
        "{table}"
    );

    let mut json_args = args.to_vec();
    json_args.extend(["--format", "json"]);
    let out = flotilla(&json_args).await;
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let revisions = doc["releases"][0]["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 2, "{doc:#}");
    assert_eq!(revisions[0]["revision"], 3);

    // A missing release's history is an error shown, and exit 1.
    let missing = [
        "history",
        "plans/demo.yaml",
        "--endpoint",
        &url,
        "--select",
        "cluster=canary-2",
        "--select",
        "release=storefront",
    ];
    let out = flotilla(&missing).await;
    assert_eq!(exit_code(&out), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("error: "),
        "{}",
        text(&out.stdout)
    );
}
