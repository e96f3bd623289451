//! The CCE Autopilot API client and its calls: each one a request built, signed, sent and its
//! answer read, every failure an [`ApiError`] the engine can act on.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde::de::DeserializeOwned;

use crate::cce::address::{ClusterAddress, release_path, releases_path};
use crate::cce::credentials::Credentials;
use crate::cce::endpoint::{Endpoint, Target, http_client, shown_url};
use crate::cce::error::{ApiError, FailureKind};
use crate::cce::headers::{iam_headers, request_headers};
use crate::cce::iam::{
    self, CacheKey, DiscoveryError, DiscoveryProblem, ProjectIdCache, ProjectsAnswer,
};
use crate::cce::model::{Chart, Release, UpdateReleaseBody};
use crate::cce::sign;
use crate::cce::transport::{http_error, parse_retry_after, transport_error};

// How a client is set up, also under the client's own path: what `Client::new` takes and
// returns.
pub use crate::cce::endpoint::{ClientConfig, ClientError, Clock};

/// The CCE Autopilot API client: one shared connection pool, credentials, and a clock.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    credentials: Arc<Credentials>,
    clock: Option<Clock>,
    allow_insecure_http: bool,
    https: bool,
    /// Every endpoint this client has sent to, parsed once.
    endpoints: Arc<Mutex<HashMap<String, Arc<Endpoint>>>>,
    /// Project ids found through IAM in this run.
    project_ids: Arc<ProjectIdCache>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("credentials", &self.credentials.kind())
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(config: ClientConfig, credentials: Credentials) -> Result<Client, ClientError> {
        let http = http_client(&config)?;
        Ok(Client {
            http,
            credentials: Arc::new(credentials),
            clock: config.clock,
            allow_insecure_http: config.allow_insecure_http,
            https: config.https,
            endpoints: Arc::default(),
            project_ids: Arc::default(),
        })
    }

    /// `endpoint` parsed and checked, the first time only.
    fn endpoint(&self, endpoint: &str) -> Result<Arc<Endpoint>, ApiError> {
        let mut known = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(parsed) = known.get(endpoint) {
            return Ok(Arc::clone(parsed));
        }
        let parsed = Arc::new(Endpoint::parse(endpoint, self.allow_insecure_http)?);
        if !self.https && parsed.url.scheme() == "https" {
            let mut err = ApiError::new(FailureKind::NotSent);
            err.message = Some(format!(
                "endpoint {}: this client was built for http endpoints only",
                shown_url(parsed.url.as_str())
            ));
            return Err(err);
        }
        known.insert(endpoint.to_owned(), Arc::clone(&parsed));
        Ok(parsed)
    }

    fn now(&self) -> jiff::Timestamp {
        match &self.clock {
            Some(clock) => clock(),
            None => jiff::Timestamp::now(),
        }
    }

    /// UpdateAutopilotRelease: `PUT .../namespace/{namespace}/releases/{name}`.
    pub async fn update_release(
        &self,
        cluster: ClusterAddress<'_>,
        namespace: &str,
        name: &str,
        body: &UpdateReleaseBody,
    ) -> Result<Release, ApiError> {
        let body = serde_json::to_vec(body).map_err(|e| {
            let mut err = ApiError::new(FailureKind::NotSent);
            err.message = Some(format!("cannot serialise the request body: {e}"));
            err
        })?;
        let path = release_path(cluster, namespace, name, "");
        self.call(
            Shape::Object,
            Method::PUT,
            cluster,
            &path,
            String::new(),
            body,
        )
        .await
    }

    /// ShowAutopilotRelease: `GET .../namespace/{namespace}/releases/{name}`.
    pub async fn show_release(
        &self,
        cluster: ClusterAddress<'_>,
        namespace: &str,
        name: &str,
        show_resources: bool,
    ) -> Result<Release, ApiError> {
        let path = release_path(cluster, namespace, name, "");
        let query = if show_resources {
            "show_resources=true".to_owned()
        } else {
            String::new()
        };
        self.call(
            Shape::Object,
            Method::GET,
            cluster,
            &path,
            query,
            Vec::new(),
        )
        .await
    }

    /// ShowAutopilotReleaseHistory: `GET .../releases/{name}/history`.
    pub async fn release_history(
        &self,
        cluster: ClusterAddress<'_>,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<Release>, ApiError> {
        let path = release_path(cluster, namespace, name, "/history");
        let entries: Vec<Option<Release>> = self
            .call(
                Shape::Array,
                Method::GET,
                cluster,
                &path,
                String::new(),
                Vec::new(),
            )
            .await?;
        Ok(entries_given(entries))
    }

    /// ListAutopilotReleases: `GET /autopilot/cam/v3/clusters/{cluster_id}/releases`.
    pub async fn list_releases(
        &self,
        cluster: ClusterAddress<'_>,
        namespace: Option<&str>,
        chart_id: Option<&str>,
    ) -> Result<Vec<Release>, ApiError> {
        let path = releases_path(cluster);
        let mut pairs = Vec::with_capacity(2);
        if let Some(chart_id) = chart_id {
            pairs.push(("chart_id", chart_id));
        }
        if let Some(namespace) = namespace {
            pairs.push(("namespace", namespace));
        }
        let query = sign::canonical_query(&pairs);
        let entries: Vec<Option<Release>> = self
            .call(Shape::Array, Method::GET, cluster, &path, query, Vec::new())
            .await?;
        Ok(entries_given(entries))
    }

    /// ShowAutopilotChart: `GET /autopilot/v2/charts/{chart_id}` on the cluster's endpoint.
    pub async fn show_chart(
        &self,
        base: ClusterAddress<'_>,
        chart_id: &str,
    ) -> Result<Chart, ApiError> {
        let mut path = String::from("/autopilot/v2/charts/");
        sign::encode_into(&mut path, chart_id);
        self.call(
            Shape::Object,
            Method::GET,
            base,
            &path,
            String::new(),
            Vec::new(),
        )
        .await
    }

    /// The project id of `region`, found as the SDKs find it: from this run's cache (per access
    /// key and region), else by asking IAM at `iam_endpoint`. Only for credentials that
    /// [`iam::needs_discovery`]; any other answer than exactly one project is an error.
    pub async fn discover_project_id(
        &self,
        region: &str,
        iam_endpoint: &str,
    ) -> Result<String, DiscoveryError> {
        let key = CacheKey::of(&self.credentials, region);
        if let Some(known) = key.as_ref().and_then(|key| self.project_ids.get(key)) {
            return Ok(known);
        }
        let failed = |problem, trace_id| DiscoveryError {
            region: region.to_owned(),
            iam_endpoint: shown_url(iam_endpoint),
            problem,
            trace_id,
        };
        let answer = self
            .list_projects(region, iam_endpoint)
            .await
            .map_err(|e| {
                let why = e.message.unwrap_or_else(|| "no answer".to_owned());
                failed(DiscoveryProblem::NoAnswer(why), None)
            })?;
        let project_id = iam::judge_projects_answer(&answer)
            .map_err(|problem| failed(problem, answer.trace_id.clone()))?;
        tracing::info!(region, iam_endpoint, "project id found through IAM");
        if let Some(key) = key {
            self.project_ids.put(key, project_id.clone());
        }
        Ok(project_id)
    }

    /// IAM's KeystoneListProjects, `GET /v3/projects?name={region}` on `iam_endpoint`, signed
    /// like every request but without content type or project id, as the SDKs send it; the
    /// answer as it came, for [`iam::judge_projects_answer`].
    pub async fn list_projects(
        &self,
        region: &str,
        iam_endpoint: &str,
    ) -> Result<ProjectsAnswer, ApiError> {
        let query = sign::canonical_query(&[("name", region)]);
        let target = Target::new(self.endpoint(iam_endpoint)?, iam::PROJECTS_PATH, &query);
        let headers = iam_headers(&self.credentials, || self.now(), &target, &query)?;
        let response = self
            .http
            .get(target.url)
            .headers(headers)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let status = response.status().as_u16();
        let trace_id = header(iam::TRACE_ID_HEADER);
        let request_id = header("x-request-id");
        let body = response.bytes().await.map_err(|e| transport_error(&e))?;
        Ok(ProjectsAnswer {
            status,
            body: body.to_vec(),
            trace_id,
            request_id,
        })
    }

    /// One request and its answer read as `T`. `path` is already percent-encoded (whole
    /// segments, [`sign::ENCODE_SET`]) and `query` already canonical.
    async fn call<T: DeserializeOwned>(
        &self,
        shape: Shape,
        method: Method,
        cluster: ClusterAddress<'_>,
        path: &str,
        query: String,
        body: Vec<u8>,
    ) -> Result<T, ApiError> {
        // reqwest's request future is kilobytes; boxed here, every future that awaits a call
        // holds a pointer to it instead of moving a copy of it at each level.
        Box::pin(async move {
            let target = Target::new(self.endpoint(cluster.endpoint)?, path, &query);
            let headers = request_headers(
                &self.credentials,
                || self.now(),
                &method,
                cluster.project_id,
                &target,
                &query,
                &body,
            )?;
            let started = std::time::Instant::now();
            let mut request = self
                .http
                .request(method.clone(), target.url)
                .headers(headers);
            if !body.is_empty() {
                request = request.body(body);
            }
            let response = request.send().await.map_err(|e| transport_error(&e))?;
            let status = response.status().as_u16();
            let request_id = response
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, self.now()));
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = response.bytes().await;
            tracing::debug!(
                method = %method,
                cluster = %cluster.name,
                path,
                status,
                request_id = request_id.as_deref().unwrap_or(""),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "api call"
            );
            if (200..300).contains(&status) {
                let bytes = bytes.map_err(|e| {
                    let mut err = transport_error(&e);
                    err.status = Some(status);
                    err.request_id = request_id.clone();
                    err
                })?;
                let decode_error = |message: String| ApiError {
                    kind: FailureKind::Decode,
                    status: Some(status),
                    code: None,
                    message: Some(message),
                    request_id: request_id.clone(),
                    retry_after: None,
                };
                // serde would read a struct from an array too; an answer of the wrong shape is
                // not the object asked for.
                let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
                if first != Some(shape.opening()) {
                    return Err(decode_error(format!("expected a JSON {}", shape.name())));
                }
                return crate::cce::model::read_answer(&bytes)
                    .map_err(|e| decode_error(e.to_string()));
            }
            // An error status stands even if its body is cut short.
            let body = bytes.unwrap_or_default();
            Err(http_error(
                status,
                &body,
                content_type.as_deref(),
                request_id,
                retry_after,
            ))
        })
        .await
    }
}

/// The elements of an array answer, a `null` element read as a release of which nothing is
/// given (as the SDKs read it: an entry without fields), so that it still counts as an entry.
fn entries_given(entries: Vec<Option<Release>>) -> Vec<Release> {
    entries.into_iter().map(Option::unwrap_or_default).collect()
}

/// What a successful answer's body must be.
#[derive(Clone, Copy)]
enum Shape {
    Object,
    Array,
}

impl Shape {
    fn opening(self) -> u8 {
        match self {
            Shape::Object => b'{',
            Shape::Array => b'[',
        }
    }

    fn name(self) -> &'static str {
        match self {
            Shape::Object => "object",
            Shape::Array => "array",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_built_for_http_refuses_an_https_endpoint_without_sending() {
        let client = Client::new(
            ClientConfig {
                https: false,
                ..ClientConfig::default()
            },
            Credentials::Token(crate::secret::Secret::new("t")),
        )
        .unwrap();
        let cluster = ClusterAddress {
            name: "c",
            id: "0f6b1c2e-5dc7-11ee-bf71-0255ac100b03",
            endpoint: "https://cce.invalid",
            project_id: None,
        };
        let refused = client
            .show_release(cluster, "ns", "web", false)
            .await
            .unwrap_err();
        assert_eq!(refused.kind, FailureKind::NotSent);
        assert!(
            refused
                .message
                .as_deref()
                .unwrap_or("")
                .contains("http endpoints only"),
            "{refused:?}"
        );
    }
}
