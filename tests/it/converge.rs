//! Convergence end to end: the engine with the real client against the in-process simulator
//! (a second apply of the same plan sends zero PUTs), and `flotilla plan --diff` as the real
//! binary labelling each operation.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use flotilla::cce::client::{Client, ClientConfig};
use flotilla::cce::credentials::Credentials;
use flotilla::engine::{Convergence, EngineOptions, Outcome, RunReport};
use flotilla::plan::resolved::{ExpandedPlan, Rate};
use flotilla::secret::Secret;
use flotilla::sim::store::ReleaseKey;
use flotilla::sim::{RunningSim, SimConfig, Simulator};
use serde_json::Value;
use tokio::sync::mpsc;

const CHECKOUT_SECRET: &str = "demo-not-a-real-key";

/// plans/demo.yaml, made quick: no soak, fast polls, unlimited rate.
fn demo() -> ExpandedPlan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml");
    let mut plan = flotilla::plan::load_path(&path).expect("the demo plan loads");
    plan.rollout.rate = Rate::Unlimited;
    plan.rollout.wait.poll = Duration::from_millis(20);
    plan.rollout.wait.timeout = Duration::from_secs(10);
    for wave in &mut plan.waves {
        wave.soak = Duration::ZERO;
    }
    plan
}

async fn start_sim(plan: &ExpandedPlan) -> RunningSim {
    Simulator::start(
        SimConfig::default().with_settle(Duration::from_millis(50)),
        &[plan],
    )
    .await
    .expect("the simulator starts")
}

fn pointed_at(plan: &ExpandedPlan, sim: &RunningSim) -> ExpandedPlan {
    let mut plan = plan.clone();
    plan.retarget(&sim.base_url());
    plan
}

async fn apply(plan: &ExpandedPlan) -> RunReport {
    let client = Client::new(
        ClientConfig::default(),
        Credentials::Token(Secret::new("t")),
    )
    .expect("client");
    let (tx, mut rx) = mpsc::channel(1024);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let report = flotilla::engine::run(plan, Arc::new(client), EngineOptions::default(), tx).await;
    drain.await.unwrap();
    report
}

fn puts(sim: &RunningSim) -> usize {
    crate::e2e_support::puts(&sim.request_log()).count()
}

fn chart_gets(sim: &RunningSim) -> usize {
    sim.request_log()
        .iter()
        .filter(|e| e.method == "GET" && e.path.starts_with("/autopilot/v2/charts/"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_apply_of_the_same_plan_sends_zero_puts() {
    let plan = demo();
    let sim = start_sim(&plan).await;
    let plan = pointed_at(&plan, &sim);
    let total = plan.operation_count();

    let first = apply(&plan).await;
    assert_eq!(first.summary.succeeded, total, "{:#?}", first.results);
    let state = sim.state();
    assert_eq!(state.releases.len(), total);
    assert!(
        state.releases.iter().all(|r| r.applied_puts == 1),
        "{state:#?}"
    );
    assert_eq!(puts(&sim), total);
    // One chart id, one endpoint: one chart lookup for the whole run.
    assert_eq!(chart_gets(&sim), 1);

    let second = apply(&plan).await;
    assert_eq!(puts(&sim), total, "the second apply sent a PUT");
    assert_eq!(sim.state().applied_puts, total as u64);
    assert_eq!(second.summary.unchanged, total);
    assert_eq!(second.verdict(), flotilla::engine::Verdict::Succeeded);
    for r in &second.results {
        assert_eq!(r.outcome, Outcome::Unchanged, "{r:#?}");
        let note = r.note.as_deref().unwrap();
        assert!(!note.contains(CHECKOUT_SECRET), "{note}");
        if r.release == "checkout" {
            // Its paymentApiKey comes back masked: unknown, so not sent without --force.
            assert_eq!(r.convergence, Some(Convergence::Unknown));
            assert!(
                note.contains("paymentApiKey") && note.contains("--force"),
                "{note}"
            );
        } else {
            assert_eq!(r.convergence, Some(Convergence::Unchanged));
        }
    }
    assert_eq!(chart_gets(&sim), 2);
}

/// Runs `flotilla` in a clean environment, with the test AK/SK when `credentials`.
async fn flotilla(args: Vec<String>, credentials: bool) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut command = if credentials {
        crate::e2e_support::flotilla_with_credentials(home.path())
    } else {
        crate::e2e_support::flotilla(home.path())
    };
    // Plan paths in `args` are absolute or relative to the crate, as `cargo test` runs.
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args(&args);
    crate::e2e_support::output_within(Duration::from_secs(60), command).await
}

fn diff_args(sim: &RunningSim, extra: &[&str]) -> Vec<String> {
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml");
    let mut args = vec![
        "plan".to_owned(),
        plan.display().to_string(),
        "--diff".to_owned(),
        "--endpoint".to_owned(),
        sim.base_url(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// The label `plan --diff` printed on the operation line of `cluster` `namespace/release`.
fn label_of<'t>(text: &'t str, cluster: &str, release: &str) -> &'t str {
    let line = text
        .lines()
        .find(|l| l.contains(&format!(" {cluster} (")) && l.contains(&format!("/{release} ")))
        .unwrap_or_else(|| panic!("no line for {cluster} {release} in:\n{text}"));
    line.rsplit(": ").next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_diff_labels_each_operation_against_the_live_releases() {
    let plan = demo();
    let sim = start_sim(&plan).await;
    // Apply the plan to canary-1 only: its releases are then as planned.
    let mut canary = pointed_at(&plan, &sim);
    for wave in &mut canary.waves {
        wave.operations.retain(|op| op.cluster.name == "canary-1");
    }
    let applied = apply(&canary).await;
    assert!(applied.summary.all_succeeded(), "{:#?}", applied.results);
    let puts_before = puts(&sim);
    let log_before = sim.request_log().len();

    let out = flotilla(diff_args(&sim, &[]), true).await;
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}\n{stderr}");
    assert_eq!(label_of(&text, "canary-1", "storefront"), "unchanged");
    assert_eq!(label_of(&text, "canary-1", "search"), "unchanged");
    assert_eq!(label_of(&text, "canary-1", "checkout"), "unknown");
    assert_eq!(label_of(&text, "prod-3", "storefront"), "change");
    assert_eq!(label_of(&text, "canary-2", "checkout"), "change");
    assert!(
        text.contains("why: secret keys paymentApiKey masked by the API, everything else as planned; use --force"),
        "{text}"
    );
    assert!(
        text.contains("why: values: imagePullPolicy added, imageTag added, replicaCount added, paymentApiKey added"),
        "{text}"
    );
    assert!(text.contains("+ imageTag: \"2.4.0\""), "{text}");
    assert!(text.contains("+ paymentApiKey: \"******\""), "{text}");
    assert!(
        text.contains("? paymentApiKey: masked by the API"),
        "{text}"
    );
    assert!(text.contains("now: revision 2 DEPLOYED, chart"), "{text}");
    assert!(text.contains("now: revision 1 DEPLOYED, chart"), "{text}");
    assert!(
        text.contains("18 change, 2 unchanged, 1 unknown, 0 missing, 0 error"),
        "{text}"
    );
    for secret in [CHECKOUT_SECRET, crate::e2e_support::TEST_SK] {
        assert!(!text.contains(secret) && !stderr.contains(secret));
    }
    assert_eq!(puts(&sim), puts_before, "plan --diff sent a PUT");
    // Every release once, and the one chart once.
    let new_requests = &sim.request_log()[log_before..];
    assert_eq!(new_requests.len(), plan.operation_count() + 1);
    assert!(new_requests.iter().all(|e| e.credential.starts_with("ak:")));

    // A release that does not exist is flagged, and the exit code says so.
    let gone = plan
        .operations()
        .find(|op| op.cluster.name == "prod-6" && op.release == "checkout")
        .unwrap();
    sim.with_store(|store| {
        store
            .delete(&ReleaseKey::new(
                &gone.cluster.id,
                &gone.namespace,
                &gone.release,
            ))
            .expect("deleted");
    });
    let out = flotilla(diff_args(&sim, &["--format", "json"]), true).await;
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let ops: Vec<&Value> = doc["waves"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["operations"].as_array().unwrap())
        .collect();
    let find = |cluster: &str, release: &str| {
        ops.iter()
            .find(|op| op["cluster"]["name"] == cluster && op["release"] == release)
            .unwrap()["diff"]
            .clone()
    };
    assert_eq!(find("prod-6", "checkout")["label"], "missing");
    assert_eq!(find("canary-1", "storefront")["label"], "unchanged");
    assert_eq!(find("canary-1", "storefront")["current"]["revision"], 2);
    let unknown = find("canary-1", "checkout");
    assert_eq!(unknown["label"], "unknown");
    assert_eq!(unknown["masked_keys"], serde_json::json!(["paymentApiKey"]));
    let change = find("prod-1", "checkout");
    assert_eq!(change["label"], "change");
    assert_eq!(change["current"]["status"], "DEPLOYED");
    let keys: Vec<&str> = change["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"imageTag") && keys.contains(&"paymentApiKey"),
        "{change}"
    );
    assert_eq!(doc["diff_summary"]["missing"], 1);
    assert_eq!(doc["diff_summary"]["unchanged"], 2);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(CHECKOUT_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_diff_without_credentials_exits_2_and_sends_nothing() {
    let plan = demo();
    let sim = start_sim(&plan).await;
    let out = flotilla(diff_args(&sim, &[]), false).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for source in [
        "--token-file",
        "HUAWEICLOUD_SDK_AK",
        "OS_AUTH_TOKEN",
        "credentials",
    ] {
        assert!(stderr.contains(source), "{source}: {stderr}");
    }
    assert!(sim.request_log().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_flags_without_diff_are_a_usage_error() {
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml");
    let args = vec![
        "plan".to_owned(),
        plan.display().to_string(),
        "--endpoint".to_owned(),
        "http://127.0.0.1:9".to_owned(),
    ];
    let out = flotilla(args, true).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only apply with --diff"));
}
