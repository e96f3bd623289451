//! The HTTP client every API request goes through: URLs, authentication headers, signing,
//! time-outs, and turning every failure into an [`ApiError`] the engine can act on.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

use crate::cce::address::{ClusterAddress, release_path, releases_path};
use crate::cce::credentials::Credentials;
use crate::cce::error::{ApiError, FailureKind};
use crate::cce::model::{Chart, Release, UpdateReleaseBody};
use crate::cce::sign;

/// Where signing dates come from; tests pin it.
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// How the one shared HTTP client is set up.
#[derive(Clone)]
pub struct ClientConfig {
    /// Whole request, connect included: past it, a sent request is [`FailureKind::TimedOut`].
    pub request_timeout: Duration,
    /// Connecting (TCP and TLS); capped at `request_timeout`.
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per host: the run's concurrency.
    pub max_idle_per_host: usize,
    /// A PEM file of extra CA certificates trusted besides the platform's.
    pub ca_cert: Option<PathBuf>,
    /// Allow `http://` to hosts other than loopback.
    pub allow_insecure_http: bool,
    /// Whether any endpoint is `https`. Without one the platform's trust store, which takes
    /// tens of milliseconds to read, is not loaded, and an `https` endpoint is refused.
    pub https: bool,
    /// Source of `X-Sdk-Date` and of "now" for `Retry-After` dates; `None` is the system clock.
    pub clock: Option<Clock>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_idle_per_host: 16,
            ca_cert: None,
            allow_insecure_http: false,
            https: true,
            clock: None,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_idle_per_host", &self.max_idle_per_host)
            .field("ca_cert", &self.ca_cert)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("https", &self.https)
            .field("clock", &self.clock.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// Why a client could not be built or an endpoint is refused. Nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("endpoint {url:?}: {reason}")]
    InvalidEndpoint { url: String, reason: String },
    #[error(
        "endpoint {url:?}: plain http:// is only allowed to loopback addresses; \
         use https:// or pass --allow-insecure-http"
    )]
    InsecureHttp { url: String },
    #[error("cannot read the CA certificate file {path}: {reason}")]
    CaCert { path: PathBuf, reason: String },
    #[error("cannot set up the HTTP client: {0}")]
    Build(String),
}

/// Refuses an endpoint that is not `http(s)://host[:port][/path]`, or plain `http://` to
/// anything but loopback (`127.0.0.0/8`, `::1`, `localhost`) unless `allow_insecure_http`.
pub fn check_endpoint(url: &str, allow_insecure_http: bool) -> Result<(), ClientError> {
    let invalid = |reason: &str| ClientError::InvalidEndpoint {
        url: shown_url(url),
        reason: reason.to_owned(),
    };
    let parsed = Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("user names and passwords do not belong in the URL"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("a base URL takes no query or fragment"));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http || is_loopback(&parsed) => Ok(()),
        "http" => Err(ClientError::InsecureHttp {
            url: shown_url(url),
        }),
        other => Err(invalid(&format!(
            "scheme {other}:// is not supported, use https://"
        ))),
    }
}

/// The URL as error messages show it: user information (`user:password@`), which an endpoint
/// must not carry but a mistyped one may, becomes `***@`.
fn shown_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        // Without `//`, `user:password@host` still parses, with `user` as its scheme.
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match (rest[..authority_end].rfind('@'), scheme) {
        (Some(at), Some(scheme)) => format!("{scheme}://***@{}", &rest[at + 1..]),
        (Some(at), None) => format!("***@{}", &rest[at + 1..]),
        (None, _) => url.to_owned(),
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

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
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("credentials", &self.credentials.kind())
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish_non_exhaustive()
    }
}

const CONTENT_TYPE_JSON: &str = "application/json";

impl Client {
    pub fn new(config: ClientConfig, credentials: Credentials) -> Result<Client, ClientError> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout.min(config.request_timeout))
            .pool_max_idle_per_host(config.max_idle_per_host.max(1))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("flotilla/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_cert {
            let ca_error = |reason: String| ClientError::CaCert {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("no PEM certificate in it".to_owned()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        if !config.https {
            builder = builder.tls_certs_only(Vec::new());
        }
        let http = builder.build().map_err(|e| match &config.ca_cert {
            // Its certificates are parsed here: a PEM with a bad body is this file's fault.
            Some(path) => ClientError::CaCert {
                path: path.clone(),
                reason: error_chain(&e),
            },
            None => ClientError::Build(error_chain(&e)),
        })?;
        Ok(Client {
            http,
            credentials: Arc::new(credentials),
            clock: config.clock,
            allow_insecure_http: config.allow_insecure_http,
            https: config.https,
            endpoints: Arc::default(),
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
        self.call(
            Shape::Array,
            Method::GET,
            cluster,
            &path,
            String::new(),
            Vec::new(),
        )
        .await
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
        self.call(Shape::Array, Method::GET, cluster, &path, query, Vec::new())
            .await
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
            let headers = self.headers(&method, cluster.project_id, &target, &query, &body)?;
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
                return serde_json::from_slice(&bytes).map_err(|e| decode_error(e.to_string()));
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

    /// The headers sent, `Authorization` included, signed over exactly what is sent.
    fn headers(
        &self,
        method: &Method,
        cluster_project_id: Option<&str>,
        target: &Target,
        query: &str,
        body: &[u8],
    ) -> Result<HeaderMap, ApiError> {
        let project_id = cluster_project_id.or_else(|| self.credentials.project_id());
        let mut headers = HeaderMap::with_capacity(6);
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static(CONTENT_TYPE_JSON),
        );
        if let Some(project_id) = project_id {
            headers.insert(
                HeaderName::from_static("x-project-id"),
                header_value(project_id, "the project id")?,
            );
        }
        match &*self.credentials {
            Credentials::Token(token) => {
                headers.insert(
                    HeaderName::from_static("x-auth-token"),
                    secret_header_value(token.expose(), "the IAM token")?,
                );
            }
            Credentials::AkSk {
                access_key,
                secret_key,
                security_token,
                ..
            } => {
                let date = sign::sdk_date(self.now());
                // Sorted by name: content-type, host, x-project-id, x-sdk-date, x-security-token.
                let mut signed: [(&str, &str); 5] = [("", ""); 5];
                let mut n = 0;
                for (name, value) in [
                    ("content-type", Some(CONTENT_TYPE_JSON)),
                    ("host", Some(target.endpoint.host.as_str())),
                    ("x-project-id", project_id),
                    ("x-sdk-date", Some(date.as_str())),
                    (
                        "x-security-token",
                        security_token.as_ref().map(|t| t.expose()),
                    ),
                ] {
                    if let Some(value) = value {
                        signed[n] = (name, value);
                        n += 1;
                    }
                }
                let authorization = sign::authorization_for(
                    &sign::CanonicalParts {
                        method: method.as_str(),
                        canonical_uri: &target.canonical_uri,
                        canonical_query: query,
                        sorted_headers: &signed[..n],
                        body,
                    },
                    &date,
                    access_key.expose(),
                    secret_key.expose().as_bytes(),
                );
                headers.insert(
                    HeaderName::from_static("x-sdk-date"),
                    header_value(&date, "the date")?,
                );
                if let Some(token) = security_token {
                    headers.insert(
                        HeaderName::from_static("x-security-token"),
                        secret_header_value(token.expose(), "the security token")?,
                    );
                }
                headers.insert(
                    reqwest::header::AUTHORIZATION,
                    secret_header_value(&authorization, "the access key")?,
                );
            }
        }
        Ok(headers)
    }
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

/// An endpoint parsed and checked once per client: what every request to it starts from.
struct Endpoint {
    /// With the base path, if any.
    url: Url,
    /// `host[:port]`, the port only when the URL names a non-default one (as `Host` is sent).
    host: String,
    /// The URL's path without its trailing `/`: a private gateway's prefix, or empty.
    base_path: String,
    /// The base path as the canonical URI starts: segments decoded and re-encoded, as the
    /// gateway does.
    canonical_base: String,
}

impl Endpoint {
    fn parse(endpoint: &str, allow_insecure_http: bool) -> Result<Endpoint, ApiError> {
        let not_sent = |message: String| {
            let mut err = ApiError::new(FailureKind::NotSent);
            err.message = Some(message);
            err
        };
        check_endpoint(endpoint, allow_insecure_http).map_err(|e| not_sent(e.to_string()))?;
        let url = Url::parse(endpoint).map_err(|e| not_sent(e.to_string()))?;
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let base_path = url.path().trim_end_matches('/').to_owned();
        let mut canonical_base = String::with_capacity(base_path.len());
        for segment in base_path.split('/').skip(1) {
            canonical_base.push('/');
            let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            sign::encode_into(&mut canonical_base, &decoded);
        }
        Ok(Endpoint {
            url,
            host,
            base_path,
            canonical_base,
        })
    }
}

/// A request's URL and what the signature needs from it.
struct Target {
    url: Url,
    endpoint: Arc<Endpoint>,
    canonical_uri: String,
}

impl Target {
    /// `path` is already percent-encoded and `query` already canonical.
    fn new(endpoint: Arc<Endpoint>, path: &str, query: &str) -> Target {
        let mut url = endpoint.url.clone();
        url.set_path(&format!("{}{path}", endpoint.base_path));
        url.set_query((!query.is_empty()).then_some(query));
        let mut canonical_uri =
            String::with_capacity(endpoint.canonical_base.len() + path.len() + 1);
        canonical_uri.push_str(&endpoint.canonical_base);
        canonical_uri.push_str(path);
        canonical_uri.push('/');
        Target {
            url,
            endpoint,
            canonical_uri,
        }
    }
}

fn header_value(value: &str, what: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(value).map_err(|_| {
        let mut err = ApiError::new(FailureKind::NotSent);
        err.message = Some(format!("{what} holds characters a header cannot carry"));
        err
    })
}

/// Like [`header_value`], marked sensitive so that no HTTP-level debug output shows it.
fn secret_header_value(value: &str, what: &str) -> Result<HeaderValue, ApiError> {
    let mut v = header_value(value, what)?;
    v.set_sensitive(true);
    Ok(v)
}

/// Where a transport failure happened decides whether the request may have been applied.
fn transport_error(e: &reqwest::Error) -> ApiError {
    let kind = if e.is_connect() || e.is_builder() {
        // Never written to the wire: DNS, TCP connect, TLS handshake, or a refused connection.
        FailureKind::NotSent
    } else if e.is_timeout() {
        FailureKind::TimedOut
    } else {
        // Cut while writing the request or reading the answer: it may have been applied.
        FailureKind::ConnectionLost
    };
    let mut err = ApiError::new(kind);
    err.message = Some(error_chain(e));
    err
}

/// An error and its sources on one line; URLs carry no secrets (credentials go in headers).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 IMF-fixdate, or RFC 2822).
/// A date in the past means no wait.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let at = PARSER.parse_timestamp(value).ok()?;
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The [`ApiError`] for an answer with error status `status`: the service's code and message
/// read from `body` (see [`error_fields`]), with the `Content-Type`, `X-Request-Id` and parsed
/// `Retry-After` headers the caller took from the answer. Never fails, whatever the body.
pub fn http_error(
    status: u16,
    body: &[u8],
    content_type: Option<&str>,
    request_id: Option<String>,
    retry_after: Option<Duration>,
) -> ApiError {
    let (code, message) = error_fields(body, content_type);
    ApiError {
        kind: FailureKind::Http,
        status: Some(status),
        code,
        message,
        request_id,
        retry_after,
    }
}

/// `error_code`/`error_msg` (or `errorCode`/`errorMessage`, or IAM's nested `error`), with
/// `message` added; for a body that is not JSON (a gateway's HTML page), a short excerpt.
fn error_fields(body: &[u8], content_type: Option<&str>) -> (Option<String>, Option<String>) {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
        let text = |m: &serde_json::Map<String, serde_json::Value>, keys: &[&str]| {
            keys.iter().find_map(|k| match m.get(*k) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
        };
        let nested = map.get("error").and_then(|e| e.as_object());
        let code = text(&map, &["error_code", "errorCode", "code"])
            .or_else(|| nested.and_then(|n| text(n, &["code", "error_code"])));
        let primary = text(&map, &["error_msg", "errorMessage"])
            .or_else(|| nested.and_then(|n| text(n, &["message", "error_msg"])));
        let detail = text(&map, &["message"]);
        let message = match (primary, detail) {
            (Some(p), Some(d)) if p != d => Some(format!("{p} ({d})")),
            (Some(p), _) => Some(p),
            (None, d) => d,
        };
        return (code, message);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return (None, None);
    }
    let excerpt = html_title(text).unwrap_or(text);
    let mut collapsed: String = excerpt.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > 200 {
        collapsed = collapsed.chars().take(200).collect::<String>() + "…";
    }
    let kind = content_type
        .and_then(|c| c.split(';').next())
        .unwrap_or("non-JSON");
    (None, Some(format!("{kind} answer: {collapsed}")))
}

fn html_title(text: &str) -> Option<&str> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title>")? + "<title>".len();
    let end = start + lower[start..].find("</title>")?;
    Some(text[start..end].trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_http_only_to_loopback() {
        for ok in [
            "https://cce.cn-north-4.myhuaweicloud.com",
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:9000",
            "http://localhost:1234/prefix",
            "https://10.0.0.1:8443",
        ] {
            assert!(check_endpoint(ok, false).is_ok(), "{ok}");
        }
        for insecure in ["http://10.0.0.1", "http://cce.example.com", "http://[::2]"] {
            assert!(
                matches!(
                    check_endpoint(insecure, false),
                    Err(ClientError::InsecureHttp { .. })
                ),
                "{insecure}"
            );
            assert!(check_endpoint(insecure, true).is_ok(), "{insecure}");
        }
        for bad in [
            "ftp://example.com",
            "not a url",
            "https://user:pw-s3cret@example.com",
            "https://example.com?x=1",
            "https://example.com/#frag",
        ] {
            let refused = check_endpoint(bad, true);
            assert!(
                matches!(refused, Err(ClientError::InvalidEndpoint { .. })),
                "{bad}"
            );
            let message = refused.unwrap_err().to_string();
            assert!(!message.contains("s3cret"), "{message}");
        }
        let schemeless = check_endpoint("user:pw-s3cret@cce.example.com", false);
        let message = schemeless.unwrap_err().to_string();
        assert!(!message.contains("s3cret"), "{message}");
        let insecure = check_endpoint("http://user:pw-s3cret@cce.example.com/x", false);
        let message = insecure.unwrap_err().to_string();
        assert!(
            message.contains("http://***@cce.example.com/x"),
            "{message}"
        );
    }

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

    #[test]
    fn retry_after_seconds_and_dates() {
        let now: jiff::Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Mon, 01 Jan 2024 00:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 31 Dec 2023 23:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn error_bodies_of_every_shape() {
        let cases: [(&str, Option<&str>, Option<&str>); 6] = [
            (
                r#"{"error_code":"APIG.0308","error_msg":"The throttling threshold has been reached"}"#,
                Some("APIG.0308"),
                Some("The throttling threshold has been reached"),
            ),
            (
                r#"{"errorCode":"CCE.01","errorMessage":"bad","message":"more detail"}"#,
                Some("CCE.01"),
                Some("bad (more detail)"),
            ),
            (r#"{"message":"only this"}"#, None, Some("only this")),
            (
                r#"{"error":{"code":"IAM.1","message":"nested"}}"#,
                Some("IAM.1"),
                Some("nested"),
            ),
            (
                "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
                None,
                Some("text/html answer: 502 Bad Gateway"),
            ),
            ("", None, None),
        ];
        for (body, code, message) in cases {
            let ct = body.starts_with('<').then_some("text/html; charset=utf-8");
            let (c, m) = error_fields(body.as_bytes(), ct);
            assert_eq!(c.as_deref(), code, "{body}");
            assert_eq!(m.as_deref(), message, "{body}");
        }
    }

    #[test]
    fn urls_and_canonical_uris_agree() {
        let endpoint = |url| Arc::new(Endpoint::parse(url, false).unwrap());
        let target = Target::new(
            endpoint("https://gw.example.com:8443/pre%20fix/"),
            "/autopilot/cam/v3/clusters/c%2F1/releases",
            "a=1&b=x%20y",
        );
        assert_eq!(
            target.url.as_str(),
            "https://gw.example.com:8443/pre%20fix/autopilot/cam/v3/clusters/c%2F1/releases?a=1&b=x%20y"
        );
        assert_eq!(target.endpoint.host, "gw.example.com:8443");
        assert_eq!(
            target.canonical_uri,
            "/pre%20fix/autopilot/cam/v3/clusters/c%2F1/releases/"
        );
        let default_port = Target::new(endpoint("https://h.example.com:443"), "/x", "");
        assert_eq!(default_port.endpoint.host, "h.example.com");
        assert_eq!(default_port.url.as_str(), "https://h.example.com/x");
    }
}
