//! The simulator's HTTP contract: every route, its shapes and error codes, `/_sim/state`, the
//! request log and the `--state` file, over a real socket (real time, short settle).

use std::time::Duration;

use crate::sim_support::{client, fleet, get, put, release_url, send, values_of};
use flotilla::cce::model::{Chart, Release, ReleaseStatus};
use flotilla::sim::{LogEntry, RunningSim, SimConfig, Simulator};
use reqwest::Method;
use serde_json::{Value, json};

async fn start(settle: Duration) -> RunningSim {
    Simulator::start(SimConfig::default().with_settle(settle), &[&fleet()])
        .await
        .expect("simulator starts")
}

fn release(body: &Value) -> Release {
    serde_json::from_value(body.clone()).expect("a release object")
}

#[tokio::test]
async fn show_answers_the_documented_release_shape_with_a_request_id() {
    let sim = start(Duration::ZERO).await;
    let reply = get(
        &client(),
        &release_url(&sim.base_url(), "c1", "web", "frontend"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.request_id.as_deref().map(str::len), Some(32));
    let object = reply.body.as_object().unwrap();
    for field in [
        "chart_name",
        "chart_public",
        "chart_version",
        "cluster_id",
        "cluster_name",
        "create_at",
        "description",
        "name",
        "namespace",
        "parameters",
        "status",
        "status_description",
        "update_at",
        "values",
        "version",
    ] {
        assert!(object.contains_key(field), "missing {field}");
    }
    assert!(
        reply.body["values"].is_string(),
        "values is a JSON-encoded string"
    );
    assert!(reply.body["parameters"].is_string());
    assert!(
        !object.contains_key("resources"),
        "resources only for show_resources=true"
    );
    assert_eq!(reply.body["status"], "DEPLOYED");
    assert_eq!(reply.body["version"], 1);
    assert_eq!(reply.body["cluster_id"], "c1");
}

#[tokio::test]
async fn errors_carry_the_documented_body_and_a_request_id() {
    let sim = start(Duration::ZERO).await;
    let c = client();
    let base = sim.base_url();
    for (url, status, code) in [
        (
            release_url(&base, "nope", "web", "frontend"),
            404,
            "CCE.01404001",
        ),
        (release_url(&base, "c1", "web", "nope"), 404, "CCE.01404002"),
        (
            format!("{base}/autopilot/v2/charts/nope"),
            404,
            "CCE.01404003",
        ),
        (format!("{base}/no/such/route"), 404, "APIG.0101"),
    ] {
        let reply = get(&c, &url).await;
        assert_eq!(reply.status, status, "{url}");
        assert_eq!(reply.body["error_code"], code, "{url}");
        assert!(
            reply.body["error_msg"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(reply.request_id.is_some());
    }
}

#[tokio::test]
async fn error_bodies_take_the_configured_style_and_busy_the_configured_status() {
    use flotilla::sim::ErrorStyle;
    let cases = [
        (ErrorStyle::Snake, 409, "/error_code", "/error_msg"),
        (ErrorStyle::Camel, 403, "/errorCode", "/errorMsg"),
        (ErrorStyle::Nested, 400, "/error/code", "/error/message"),
    ];
    for (style, busy_status, code_at, message_at) in cases {
        let config = SimConfig::default()
            .with_settle(Duration::from_secs(60))
            .with_error_style(style)
            .with_busy_status(busy_status);
        let sim = Simulator::start(config, &[&fleet()]).await.unwrap();
        let c = client();
        let base = sim.base_url();
        let missing = get(&c, &release_url(&base, "c1", "web", "nope")).await;
        assert_eq!(missing.status, 404, "{style:?}");
        assert_eq!(
            missing.body.pointer(code_at),
            Some(&json!("CCE.01404002")),
            "{style:?}: {}",
            missing.body
        );
        assert!(
            missing.body.pointer(message_at).is_some(),
            "{style:?}: {}",
            missing.body
        );

        let url = release_url(&base, "c1", "web", "frontend");
        let change = json!({"action": "upgrade", "values": {"imageTag": "v2"}});
        assert_eq!(put(&c, &url, change.clone()).await.status, 200);
        let busy = put(&c, &url, change).await;
        assert_eq!(busy.status, busy_status, "{style:?}");
        assert_eq!(
            busy.body.pointer(code_at),
            Some(&json!("CCE.01409001")),
            "{style:?}"
        );
        let message = busy
            .body
            .pointer(message_at)
            .and_then(Value::as_str)
            .unwrap();
        assert!(message.contains("Update release is forbidden"), "{message}");
        sim.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn put_upgrade_is_pending_then_deployed_and_counted_once() {
    let sim = start(Duration::from_millis(200)).await;
    let c = client();
    let url = release_url(&sim.base_url(), "c1", "web", "frontend");
    let reply = put(
        &c,
        &url,
        json!({"chart_id": "chart-fe", "action": "upgrade", "values": {"imageTag": "v2"}}),
    )
    .await;
    assert_eq!(reply.status, 200);
    let answered = release(&reply.body);
    assert_eq!(
        (answered.version, answered.status()),
        (Some(2), ReleaseStatus::PendingUpgrade)
    );

    let busy = put(
        &c,
        &url,
        json!({"action": "upgrade", "values": {"imageTag": "v3"}}),
    )
    .await;
    // Refused as the service refuses a busy release: the phrase, with 400 by default (the
    // status is `--busy-status`), so that the status alone is never what a client relies on.
    assert_eq!(
        (busy.status, busy.body["error_code"].as_str()),
        (400, Some("CCE.01409001"))
    );
    assert!(
        busy.body["error_msg"]
            .as_str()
            .unwrap()
            .starts_with("Update release is forbidden"),
        "{}",
        busy.body
    );

    // Settles after 200 ms of real time (real sockets: paused time would fire the client's
    // time-outs); polled, bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let shown = loop {
        let shown = get(&c, &url).await;
        if shown.body["status"] != "PENDING_UPGRADE" || std::time::Instant::now() > deadline {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(shown.body["status"], "DEPLOYED");
    assert_eq!(values_of(&shown.body), json!({"imageTag": "v2"}));
    let state = sim.state();
    let entry = state.release("c1", "web", "frontend").unwrap();
    assert_eq!((entry.applied_puts, entry.version), (1, 2));
    assert_eq!(state.applied_puts, 1);
}

#[tokio::test]
async fn bad_bodies_and_actions_are_400_and_change_nothing() {
    let sim = start(Duration::ZERO).await;
    let c = client();
    let url = release_url(&sim.base_url(), "c1", "web", "frontend");
    for body in [
        json!({"action": "explode"}),
        json!({"values": {"a": 1}}),
        json!({"action": "upgrade", "parameters": {"surprise": true}}),
        json!("not an object"),
    ] {
        let reply = put(&c, &url, body.clone()).await;
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.body["error_code"], "CCE.01400001");
    }
    let missing = put(
        &c,
        &url,
        json!({"action": "rollback", "parameters": {"release_version": 5}}),
    )
    .await;
    assert_eq!(
        (missing.status, missing.body["error_code"].as_str()),
        (400, Some("CCE.01400002"))
    );
    assert_eq!(sim.state().applied_puts, 0);
}

#[tokio::test]
async fn dry_run_answers_the_current_release_and_is_not_counted() {
    let sim = start(Duration::ZERO).await;
    let c = client();
    let url = release_url(&sim.base_url(), "c1", "web", "frontend");
    let reply = put(
        &c,
        &url,
        json!({"action": "upgrade", "parameters": {"dry_run": true}, "values": {"imageTag": "v9"}}),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["version"], 1);
    assert_eq!(values_of(&reply.body), json!({}));
    let state = sim.state();
    assert_eq!(state.applied_puts, 0);
    assert_eq!(
        state
            .release("c1", "web", "frontend")
            .unwrap()
            .history
            .len(),
        1
    );
    assert!(!sim.request_log().iter().any(|e| e.applied));
}

#[tokio::test]
async fn history_list_create_and_delete_follow_the_sdk_routes() {
    let sim = start(Duration::ZERO).await;
    let c = client();
    let base = sim.base_url();
    let url = release_url(&base, "c1", "web", "frontend");
    put(
        &c,
        &url,
        json!({"action": "upgrade", "values": {"imageTag": "v2"}}),
    )
    .await;
    let rolled = put(
        &c,
        &url,
        json!({"action": "rollback", "parameters": {"release_version": 1}}),
    )
    .await;
    assert_eq!(rolled.body["status"], "PENDING_ROLLBACK");

    let history = get(&c, &format!("{url}/history")).await;
    let versions: Vec<i64> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![1, 2, 3]);

    let list = get(
        &c,
        &format!("{base}/autopilot/cam/v3/clusters/c1/releases?namespace=web&chart_id=chart-be"),
    )
    .await;
    let names: Vec<&str> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["backend"]);

    let created = send(
        &c,
        Method::POST,
        &format!("{base}/autopilot/cam/v3/clusters/c1/releases"),
        Some(json!({"chart_id": "chart-be", "name": "worker", "namespace": "jobs", "values": {"imageTag": "v1"}})),
    )
    .await
    .unwrap();
    assert_eq!(created.status, 201);
    assert_eq!(created.body["status"], "PENDING_INSTALL");
    let again = send(
        &c,
        Method::POST,
        &format!("{base}/autopilot/cam/v3/clusters/c1/releases"),
        Some(json!({"chart_id": "chart-be", "name": "worker", "namespace": "jobs"})),
    )
    .await
    .unwrap();
    assert_eq!(again.status, 409);

    let worker = release_url(&base, "c1", "jobs", "worker");
    assert_eq!(get(&c, &worker).await.body["status"], "DEPLOYED");
    let deleted = send(&c, Method::DELETE, &worker, None).await.unwrap();
    assert_eq!(deleted.status, 200);
    assert_eq!(get(&c, &worker).await.status, 404);
}

#[tokio::test]
async fn chart_route_answers_the_seeded_chart_matching_its_releases() {
    let sim = start(Duration::ZERO).await;
    let c = client();
    let base = sim.base_url();
    let reply = get(&c, &format!("{base}/autopilot/v2/charts/chart-fe")).await;
    assert_eq!(reply.status, 200);
    let chart: Chart = serde_json::from_value(reply.body.clone()).unwrap();
    assert_eq!(chart.id, "chart-fe");
    assert!(reply.body["values"].is_string() && reply.body["public"].is_boolean());
    let shown = get(&c, &release_url(&base, "c2", "web", "frontend")).await;
    assert_eq!(shown.body["chart_name"].as_str(), Some(chart.name.as_str()));
    assert_eq!(
        shown.body["chart_version"].as_str(),
        Some(chart.version.as_str())
    );
    let all = get(&c, &format!("{base}/autopilot/v2/charts")).await;
    assert_eq!(all.body.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn sim_state_route_shows_every_release_with_history_and_applied_puts() {
    let sim = start(Duration::ZERO).await;
    let c = client();
    let base = sim.base_url();
    put(
        &c,
        &release_url(&base, "c2", "web", "frontend"),
        json!({"action": "upgrade", "values": {"apiToken": "s3cret"}}),
    )
    .await;
    let reply = get(&c, &format!("{base}/_sim/state")).await;
    assert_eq!(reply.status, 200);
    let typed: flotilla::sim::SimStateSnapshot =
        serde_json::from_value(reply.body.clone()).unwrap();
    assert_eq!(typed, sim.state());
    assert_eq!(typed.releases.len(), 3);
    let changed = typed.release("c2", "web", "frontend").unwrap();
    assert_eq!((changed.applied_puts, changed.history.len()), (1, 2));
    assert_eq!(changed.history[1].values["apiToken"], "******");
    assert!(!reply.body.to_string().contains("s3cret"));
}

#[tokio::test]
async fn request_log_has_one_entry_per_request_and_is_written_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("requests.jsonl");
    let sim = Simulator::start(
        SimConfig::default()
            .with_settle(Duration::ZERO)
            .with_request_log(&log_path),
        &[&fleet()],
    )
    .await
    .unwrap();
    let c = client();
    let base = sim.base_url();
    put(
        &c,
        &release_url(&base, "c1", "web", "frontend"),
        json!({"action": "upgrade"}),
    )
    .await;
    get(&c, &release_url(&base, "c1", "web", "nope")).await;
    get(&c, &format!("{base}/elsewhere")).await;
    let in_memory = sim.request_log();
    sim.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&log_path).unwrap();
    let written: Vec<LogEntry> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(written, in_memory);
    assert_eq!(written.len(), 3);
    let statuses: Vec<Option<u16>> = written.iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![Some(200), Some(404), Some(404)]);
    assert!(written[0].applied && !written[1].applied);
    assert_eq!(written[0].method, "PUT");
    assert_eq!(written[1].error_code.as_deref(), Some("CCE.01404002"));
    for entry in &written {
        assert_eq!(entry.credential, "anonymous");
        assert!(entry.finished_ms >= entry.arrived_ms);
        assert!(
            entry.arrived.parse::<jiff::Timestamp>().is_ok(),
            "{}",
            entry.arrived
        );
        assert!(
            entry.arrived.contains('.'),
            "sub-second precision: {}",
            entry.arrived
        );
    }
}

#[tokio::test]
async fn state_file_round_trips_across_restarts_and_a_missing_file_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state.json");
    let empty = Simulator::start(SimConfig::default().with_state_file(&state_path), &[])
        .await
        .unwrap();
    assert!(empty.state().releases.is_empty());
    empty.shutdown().await.unwrap();

    let first = Simulator::start(
        SimConfig::default()
            .with_settle(Duration::ZERO)
            .with_state_file(&state_path),
        &[&fleet()],
    )
    .await
    .unwrap();
    put(
        &client(),
        &release_url(&first.base_url(), "c1", "web", "backend"),
        json!({"action": "upgrade", "values": {"imageTag": "v7", "dbPassword": "pw"}}),
    )
    .await;
    let before = first.state();
    first.shutdown().await.unwrap();

    let second = Simulator::start(SimConfig::default().with_state_file(&state_path), &[])
        .await
        .unwrap();
    assert_eq!(second.state(), before);
    let shown = get(
        &client(),
        &release_url(&second.base_url(), "c1", "web", "backend"),
    )
    .await;
    assert_eq!(
        values_of(&shown.body),
        json!({"imageTag": "v7", "dbPassword": "******"})
    );
    second.shutdown().await.unwrap();
    let saved = std::fs::read_to_string(&state_path).unwrap();
    assert!(
        saved.contains("\"pw\""),
        "the state file keeps real values to restore them"
    );
}

#[tokio::test]
async fn resources_are_answered_only_for_show_resources() {
    let sim = start(Duration::ZERO).await;
    let url = release_url(&sim.base_url(), "c1", "web", "frontend");
    let shown = get(&client(), &format!("{url}?show_resources=true")).await;
    assert_eq!(shown.status, 200);
    let text = shown.body["resources"]
        .as_str()
        .expect("resources is a JSON-encoded string");
    let objects: Value = serde_json::from_str(text).expect("JSON inside");
    assert_eq!(objects[0]["name"], "frontend");
    assert_eq!(release(&shown.body).resources, objects);
    let plain = get(&client(), &url).await;
    assert!(plain.body.get("resources").is_none(), "{}", plain.body);
    let history = get(&client(), &format!("{url}/history")).await;
    assert!(history.body[0].get("resources").is_none());
}

#[tokio::test]
async fn a_put_naming_an_unknown_chart_is_404_and_a_missing_revision_400_changing_nothing() {
    let sim = start(Duration::ZERO).await;
    let url = release_url(&sim.base_url(), "c1", "web", "frontend");
    let unknown = put(
        &client(),
        &url,
        json!({"chart_id": "no-such-chart", "action": "upgrade", "values": {"imageTag": "v2"}}),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["error_code"], "CCE.01404003");
    let missing = put(
        &client(),
        &url,
        json!({"action": "rollback", "parameters": {"release_version": 9}}),
    )
    .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["error_code"], "CCE.01400002");
    let state = sim.state();
    assert_eq!(state.applied_puts, 0);
    assert!(state.charts.iter().all(|c| c.id != "no-such-chart"));
}

#[tokio::test]
async fn null_fields_leave_fields_out_or_null_and_the_client_reads_every_answer() {
    let sim = Simulator::start(
        SimConfig::default()
            .with_settle(Duration::ZERO)
            .with_rng_seed(17)
            .with_null_fields(1.0),
        &[&fleet()],
    )
    .await
    .expect("simulator starts");
    let url = release_url(&sim.base_url(), "c1", "web", "frontend");
    let shown = get(&client(), &url).await;
    let object = shown.body.as_object().unwrap();
    assert!(object.values().all(Value::is_null), "{object:?}");
    assert!(object.len() < 16, "some fields left out: {object:?}");
    assert_eq!(release(&shown.body), Release::default());
    let history = get(&client(), &format!("{url}/history")).await;
    let entries: Vec<Release> = serde_json::from_value(history.body).unwrap();
    assert_eq!(entries, vec![Release::default()]);
    let chart = get(
        &client(),
        &format!("{}/autopilot/v2/charts/chart-fe", sim.base_url()),
    )
    .await;
    let chart: Chart = serde_json::from_value(chart.body).unwrap();
    assert_eq!(chart, Chart::default());
    // The state views are the simulator's own: never blanked.
    assert_eq!(sim.state().releases[0].version, 1);

    // At 0.3, about that share of fields, and the same seed words answers the same way.
    let shapes = |seed| async move {
        let sim = Simulator::start(
            SimConfig::default()
                .with_rng_seed(seed)
                .with_null_fields(0.3),
            &[&fleet()],
        )
        .await
        .expect("simulator starts");
        let url = release_url(&sim.base_url(), "c1", "web", "frontend");
        // Each answer's shape: which fields it gives, which are null, which it leaves out.
        let mut shapes = Vec::new();
        for _ in 0..40 {
            let body = get(&client(), &url).await.body;
            let shape: Vec<(String, bool)> = body
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.is_null()))
                .collect();
            shapes.push(shape);
        }
        shapes
    };
    let seeded = shapes(5).await;
    assert!(seeded == shapes(5).await, "the same seed, the same shapes");
    let given: usize = seeded
        .iter()
        .map(|shape| shape.iter().filter(|(_, null)| !null).count())
        .sum();
    let share = given as f64 / (40.0 * 15.0);
    assert!((0.6..0.8).contains(&share), "{share}");
}
