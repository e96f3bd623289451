//! Helpers shared by the simulator's tests: plans built in code, and a small HTTP client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flotilla::cce::model::{Action, UpdateReleaseBody};
use flotilla::plan::resolved::{ClusterTarget, ExpandedPlan, Operation, Rollout, Wave};
use serde_json::{Map, Value, json};

/// A plan upgrading each `(cluster_id, namespace, release, chart_id)` to `imageTag: v2`.
pub fn plan(targets: &[(&str, &str, &str, &str)]) -> ExpandedPlan {
    let mut values = Map::new();
    values.insert("imageTag".into(), json!("v2"));
    let operations = targets
        .iter()
        .enumerate()
        .map(
            |(index, (cluster_id, namespace, release, chart_id))| Operation {
                index,
                wave: 0,
                cluster: Arc::new(ClusterTarget {
                    name: format!("name-of-{cluster_id}"),
                    id: (*cluster_id).to_owned(),
                    labels: BTreeMap::new(),
                    region: "cn-north-4".into(),
                    endpoint: "http://127.0.0.1:1".into(),
                    iam_endpoint: None,
                    project_id: None,
                }),
                namespace: (*namespace).to_owned(),
                release: (*release).to_owned(),
                action: Action::Upgrade,
                body: Arc::new(UpdateReleaseBody {
                    chart_id: Some((*chart_id).to_owned()),
                    action: Action::Upgrade,
                    parameters: None,
                    values: Some(values.clone()),
                }),
                rollback_on_failure: false,
                relative_version: None,
                expected_revision: None,
            },
        )
        .collect();
    ExpandedPlan {
        name: "test".into(),
        hash: "0".repeat(64),
        rollout: Rollout::default(),
        waves: vec![Wave {
            name: "all".into(),
            implicit: true,
            soak: Duration::ZERO,
            max_failures: None,
            operations,
        }],
        redactor: Default::default(),
    }
}

/// The usual fleet: two clusters, a few releases, two charts.
pub fn fleet() -> ExpandedPlan {
    plan(&[
        ("c1", "web", "frontend", "chart-fe"),
        ("c1", "web", "backend", "chart-be"),
        ("c2", "web", "frontend", "chart-fe"),
    ])
}

pub fn release_url(base: &str, cluster: &str, namespace: &str, name: &str) -> String {
    format!("{base}/autopilot/cam/v3/clusters/{cluster}/namespace/{namespace}/releases/{name}")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// An answer: status, `X-Request-Id`, and the body as JSON (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub request_id: Option<String>,
    pub retry_after: Option<String>,
    pub body: Value,
}

pub async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Reply, reqwest::Error> {
    let mut request = client
        .request(method, url)
        .header("content-type", "application/json");
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let request_id = header("x-request-id");
    let retry_after = header("retry-after");
    let bytes = response.bytes().await?;
    Ok(Reply {
        status,
        request_id,
        retry_after,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    })
}

pub async fn get(client: &reqwest::Client, url: &str) -> Reply {
    send(client, reqwest::Method::GET, url, None)
        .await
        .expect("GET answered")
}

pub async fn put(client: &reqwest::Client, url: &str, body: Value) -> Reply {
    send(client, reqwest::Method::PUT, url, Some(body))
        .await
        .expect("PUT answered")
}

/// The `values` of a release answer, decoded from its JSON-encoded string.
pub fn values_of(release: &Value) -> Value {
    let text = release["values"].as_str().expect("values is a string");
    serde_json::from_str(text).expect("values is JSON")
}
