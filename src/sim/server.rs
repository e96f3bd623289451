//! HTTP: accepting connections, routing, the gateway steps (latency, authentication, throttle,
//! faults) around each release or chart operation, and cutting connections without an answer.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::answers::{self, NullFields};
use super::auth::{self, Authenticator, Received};
use super::faults::{Draw, Fault, FaultDice, Throttle};
use super::log::{LogEntry, RequestLog};
use super::store::{CreateReleaseBody, Rejection, ReleaseKey, Store};
use crate::cce::model::UpdateReleaseBody;

/// The largest request body read.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What every connection's requests to one simulated endpoint share. The state, the dice, the
/// log, the latency timer and the request ids are the simulator's, shared by all its endpoints
/// (`Arc`); the throttle is the endpoint's own, as a region's gateway is.
#[derive(Debug)]
pub(crate) struct Shared {
    /// This endpoint's base URL, `http://127.0.0.1:PORT`, as the request log names it.
    pub endpoint: String,
    pub store: Arc<Mutex<Store>>,
    pub dice: Arc<Mutex<FaultDice>>,
    pub dice_idle: bool,
    pub throttle: Option<Mutex<Throttle>>,
    pub auth: Arc<Authenticator>,
    pub log: Arc<RequestLog>,
    pub latency: Duration,
    /// Times latency precisely; `None` when there is none.
    pub delay: Option<Arc<super::delay::PreciseDelay>>,
    pub retry_after: bool,
    /// The shape of error bodies.
    pub error_style: super::errors::ErrorStyle,
    /// The status a change to a busy release is refused with.
    pub busy_status: u16,
    pub next_seq: Arc<AtomicU64>,
    pub id_prefix: u64,
    /// What `GET /_sim/state` masks: the built-in rules and the seed plans' own.
    pub redactor: crate::secret::Redactor,
    /// `--null-fields`: fields of answers left out or `null` at random.
    pub null_fields: Arc<NullFields>,
    /// The projects its IAM lists; with AK/SK, release requests must name one.
    pub projects: Vec<super::iam::SimProject>,
    pub iam_fault: Option<super::iam::IamFault>,
}

impl Shared {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Accepts connections until `stop` turns true.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let mut stopped = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(stream, shared.clone(), stop.clone()));
                }
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            () = until_stopped(&mut stopped) => break,
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone).
pub(crate) async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// A connection's kill switch, pulled by a handler that must not answer.
#[derive(Debug, Default)]
struct ConnectionControl {
    cut: Notify,
    /// Close with a TCP reset rather than a FIN.
    reset: AtomicBool,
}

impl ConnectionControl {
    fn cut(&self) {
        self.reset.store(true, Ordering::Relaxed);
        self.cut.notify_one();
    }
}

/// The TCP stream, which resets the connection when it is dropped after a cut.
struct CuttableStream {
    inner: TcpStream,
    control: Arc<ConnectionControl>,
}

impl Drop for CuttableStream {
    fn drop(&mut self) {
        if self.control.reset.load(Ordering::Relaxed) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for CuttableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CuttableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let control = Arc::new(ConnectionControl::default());
    let io = TokioIo::new(CuttableStream {
        inner: stream,
        control: control.clone(),
    });
    let handler_control = control.clone();
    let service =
        service_fn(move |request| handle(shared.clone(), handler_control.clone(), request));
    let connection = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    // Dropping the connection future closes the socket: that is how a cut, and shutdown, happen.
    tokio::select! {
        _ = connection => {}
        _ = control.cut.notified() => {}
        () = until_stopped(&mut stop) => {}
    }
}

/// How a request ends.
enum Ending {
    Answer(Answer),
    /// Cut the connection without an answer.
    Cut,
    /// Never answer.
    Hang,
}

struct Answer {
    status: u16,
    /// The body; for an error, empty until rendered in the configured style.
    body: Bytes,
    error_code: Option<&'static str>,
    error_message: Option<String>,
    retry_after: Option<u64>,
    /// IAM's answers carry `X-IAM-Trace-Id`, the request id.
    iam_trace: bool,
}

impl Answer {
    fn json<T: Serialize>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Answer {
                status,
                body: Bytes::from(body),
                error_code: None,
                error_message: None,
                retry_after: None,
                iam_trace: false,
            },
            Err(e) => Answer::error(500, "CCE.01500001", &format!("encoding the answer: {e}")),
        }
    }

    /// A release or chart object, or an array of them, as the simulator words it: a release's
    /// `resources` only in the answer to a GET of `shown` with `show_resources=true`, then
    /// `--null-fields` applied.
    fn worded<T: Serialize>(
        shared: &Shared,
        status: u16,
        value: &T,
        shown: Option<&ReleaseKey>,
    ) -> Self {
        let mut answer = match serde_json::to_value(value) {
            Ok(answer) => answer,
            Err(e) => {
                return Answer::error(500, "CCE.01500001", &format!("encoding the answer: {e}"));
            }
        };
        match &mut answer {
            Value::Object(object) => match shown {
                Some(key) => answers::with_resources(object, key, true),
                None => {
                    object.remove("resources");
                }
            },
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(object) = item {
                        object.remove("resources");
                    }
                }
            }
            _ => {}
        }
        shared.null_fields.blank_answer(&mut answer);
        Answer::json(status, &answer)
    }

    fn error(status: u16, code: &'static str, message: &str) -> Self {
        Answer {
            status,
            body: Bytes::new(),
            error_code: Some(code),
            error_message: Some(message.to_owned()),
            retry_after: None,
            iam_trace: false,
        }
    }

    fn iam(answer: super::iam::IamAnswer) -> Self {
        Answer {
            status: answer.status,
            body: Bytes::from(answer.body),
            error_code: None,
            error_message: None,
            retry_after: None,
            iam_trace: true,
        }
    }

    /// The store's refusal; a change to a busy release is refused with the configured status.
    fn rejected(rejection: Rejection, busy_status: u16) -> Self {
        let status = if rejection.code == super::store::codes::RELEASE_BUSY {
            busy_status
        } else {
            rejection.status
        };
        Answer::error(status, rejection.code, &rejection.message)
    }

    fn into_response(
        self,
        request_id: &str,
        style: super::errors::ErrorStyle,
    ) -> Response<Full<Bytes>> {
        let body = match (self.error_code, &self.error_message) {
            (Some(code), Some(message)) => Bytes::from(style.body(code, message).to_string()),
            _ => self.body,
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(id) = HeaderValue::from_str(request_id) {
            if self.iam_trace {
                headers.insert("x-iam-trace-id", id.clone());
            }
            headers.insert("x-request-id", id);
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// What the log needs to know beyond the answer.
#[derive(Default)]
struct Trail {
    fault: Option<Fault>,
    applied: bool,
}

async fn handle(
    shared: Arc<Shared>,
    control: Arc<ConnectionControl>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let arrived = shared.log.stamp();
    let arrived_at = tokio::time::Instant::now();
    let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("{:016x}{:016x}", shared.id_prefix, seq);
    let (parts, body) = request.into_parts();
    let needs_credential = shared.log.is_recording() || shared.throttle.is_some();
    let credential = if needs_credential {
        auth::credential_label(&parts.headers)
    } else {
        String::new()
    };
    let mut trail = Trail::default();
    let ending = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => {
            let body = collected.to_bytes();
            process(&shared, &parts, &body, &credential, arrived_at, &mut trail).await
        }
        Err(e) => Ending::Answer(Answer::error(
            400,
            super::store::codes::BAD_REQUEST,
            &format!("reading the request body: {e}"),
        )),
    };
    let (status, error_code) = match &ending {
        Ending::Answer(answer) => (Some(answer.status), answer.error_code),
        Ending::Cut | Ending::Hang => (None, None),
    };
    if shared.log.is_recording() {
        let finished = shared.log.stamp();
        shared.log.record(LogEntry {
            seq,
            endpoint: shared.endpoint.clone(),
            request_id: request_id.clone(),
            arrived: arrived.rfc3339(),
            finished: finished.rfc3339(),
            arrived_ms: arrived.since_start_ms,
            finished_ms: finished.since_start_ms,
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            credential,
            status,
            error_code: error_code.map(str::to_owned),
            fault: trail.fault.map(|f| f.as_str().to_owned()),
            applied: trail.applied,
        });
    }
    match ending {
        Ending::Answer(answer) => Ok(answer.into_response(&request_id, shared.error_style)),
        Ending::Cut => {
            control.cut();
            std::future::pending().await
        }
        Ending::Hang => std::future::pending().await,
    }
}

/// The API operations the simulator serves.
enum Operation {
    ShowRelease(ReleaseKey),
    UpdateRelease(ReleaseKey),
    DeleteRelease(ReleaseKey),
    History(ReleaseKey),
    ListReleases(String),
    CreateRelease(String),
    ListCharts,
    ShowChart(String),
    ChartValues(String),
}

impl Operation {
    fn parse(method: &Method, segments: &[&str]) -> Option<Operation> {
        let key =
            |cluster: &str, namespace: &str, name: &str| ReleaseKey::new(cluster, namespace, name);
        Some(match (method, segments) {
            (
                m,
                [
                    "autopilot",
                    "cam",
                    "v3",
                    "clusters",
                    c,
                    "namespace",
                    ns,
                    "releases",
                    n,
                ],
            ) => match *m {
                Method::GET => Operation::ShowRelease(key(c, ns, n)),
                Method::PUT => Operation::UpdateRelease(key(c, ns, n)),
                Method::DELETE => Operation::DeleteRelease(key(c, ns, n)),
                _ => return None,
            },
            (
                &Method::GET,
                [
                    "autopilot",
                    "cam",
                    "v3",
                    "clusters",
                    c,
                    "namespace",
                    ns,
                    "releases",
                    n,
                    "history",
                ],
            ) => Operation::History(key(c, ns, n)),
            (m, ["autopilot", "cam", "v3", "clusters", c, "releases"]) => match *m {
                Method::GET => Operation::ListReleases((*c).to_owned()),
                Method::POST => Operation::CreateRelease((*c).to_owned()),
                _ => return None,
            },
            (&Method::GET, ["autopilot", "v2", "charts"]) => Operation::ListCharts,
            (&Method::GET, ["autopilot", "v2", "charts", id]) => {
                Operation::ShowChart((*id).to_owned())
            }
            (&Method::GET, ["autopilot", "v2", "charts", id, "values"]) => {
                Operation::ChartValues((*id).to_owned())
            }
            _ => return None,
        })
    }
}

async fn process(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: &[u8],
    credential: &str,
    arrived_at: tokio::time::Instant,
    trail: &mut Trail,
) -> Ending {
    let segments = auth::path_segments(parts.uri.path());
    let segment_refs: Vec<&str> = segments.iter().map(String::as_str).collect();
    // The simulator's own state: no latency, faults, throttle or signature apply to it.
    if parts.method == Method::GET && segment_refs == ["_sim", "state"] {
        let snapshot = shared.store().snapshot().redacted(&shared.redactor);
        return Ending::Answer(Answer::json(200, &snapshot));
    }
    // IAM is another service than the release API's gateway: no latency, faults or throttle.
    if parts.method == Method::GET && segment_refs == ["v3", "projects"] {
        return Ending::Answer(list_projects(shared, parts, &segment_refs, body));
    }
    let Some(operation) = Operation::parse(&parts.method, &segment_refs) else {
        return Ending::Answer(Answer::error(
            404,
            "APIG.0101",
            "The API does not exist or has not been published in the environment",
        ));
    };
    let draw = if shared.dice_idle {
        Draw::default()
    } else {
        shared.dice.lock().unwrap_or_else(|e| e.into_inner()).draw()
    };
    // Latency counts from the request's arrival, so that reading it is part of it.
    let delay = shared.latency + draw.jitter;
    if let Some(timer) = &shared.delay
        && !delay.is_zero()
    {
        timer.sleep_until(arrived_at + delay).await;
    }
    if let Err(message) = shared.auth.verify(&Received {
        method: parts.method.as_str(),
        path_segments: &segment_refs,
        raw_query: parts.uri.query(),
        headers: &parts.headers,
        body,
    }) {
        return Ending::Answer(Answer::error(401, "APIG.0301", &message));
    }
    if let Err(message) = check_project(shared, &parts.headers) {
        return Ending::Answer(Answer::error(401, "APIG.0301", &message));
    }
    if let Some(throttle) = &shared.throttle {
        let mut throttle = throttle.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(wait) = throttle.admit(credential, Instant::now()) {
            trail.fault = Some(Fault::Throttle);
            let message = format!(
                "The throttling threshold has been reached: policy user over ratelimit,limit:{},time:1 minute",
                throttle.limit_per_minute()
            );
            let mut answer = Answer::error(429, "APIG.0308", &message);
            if shared.retry_after {
                answer.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
            }
            return Ending::Answer(answer);
        }
    }
    match draw.fault {
        Some(Fault::Reset) => {
            trail.fault = Some(Fault::Reset);
            return Ending::Cut;
        }
        Some(Fault::Error) => {
            trail.fault = Some(Fault::Error);
            let (code, message) = match draw.error_status {
                502 => ("APIG.0202", "Backend unavailable"),
                503 => ("CCE.01503001", "Service temporarily unavailable"),
                _ => ("CCE.01500001", "Internal server error"),
            };
            return Ending::Answer(Answer::error(draw.error_status, code, message));
        }
        _ => {}
    }
    let answer = operate(
        shared,
        operation,
        parts.uri.query(),
        body,
        draw.deploy_fails,
        trail,
    );
    match draw.fault {
        Some(Fault::AmbiguousError) => {
            trail.fault = Some(Fault::AmbiguousError);
            Ending::Answer(Answer::error(500, "CCE.01500001", "Internal server error"))
        }
        Some(Fault::AmbiguousCut) => {
            trail.fault = Some(Fault::AmbiguousCut);
            Ending::Cut
        }
        Some(Fault::Hang) => {
            trail.fault = Some(Fault::Hang);
            Ending::Hang
        }
        _ => Ending::Answer(answer),
    }
}

/// IAM's `GET /v3/projects`, authenticated as IAM does (a signature without a project id),
/// answered with IAM's error shape on a refusal.
fn list_projects(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    segments: &[&str],
    body: &[u8],
) -> Answer {
    let received = Received {
        method: parts.method.as_str(),
        path_segments: segments,
        raw_query: parts.uri.query(),
        headers: &parts.headers,
        body,
    };
    if let Err(message) = shared.auth.verify_iam(&received) {
        return Answer::iam(super::iam::iam_error(401, &message));
    }
    let host = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    Answer::iam(super::iam::list_projects(
        &shared.projects,
        shared.iam_fault,
        &auth::query_pairs(parts.uri.query()),
        &format!("http://{host}"),
    ))
}

/// With AK/SK and projects known, a release request must name one of them in `X-Project-Id`:
/// the real gateway refuses AK/SK without a project, which is why flotilla asks IAM.
fn check_project(shared: &Shared, headers: &hyper::HeaderMap) -> Result<(), String> {
    if shared.projects.is_empty() || !matches!(shared.auth.mode(), auth::SimAuth::AkSk { .. }) {
        return Ok(());
    }
    match headers.get("x-project-id").and_then(|v| v.to_str().ok()) {
        Some(id) if shared.projects.iter().any(|p| p.id == id) => Ok(()),
        Some(_) => Err(
            "Incorrect IAM authentication information: X-Project-Id names no project of this account"
                .to_owned(),
        ),
        None => Err(
            "Incorrect IAM authentication information: X-Project-Id is missing (AK/SK needs a project)"
                .to_owned(),
        ),
    }
}

/// The operation itself, on the store.
fn operate(
    shared: &Shared,
    operation: Operation,
    raw_query: Option<&str>,
    body: &[u8],
    deploy_fails: bool,
    trail: &mut Trail,
) -> Answer {
    let result = match operation {
        Operation::ShowRelease(key) => {
            let shown = answers::asks_for_resources(&auth::query_pairs(raw_query));
            let release = shared.store().show(&key);
            release.map(|r| Answer::worded(shared, 200, &r, shown.then_some(&key)))
        }
        Operation::History(key) => {
            let history = shared.store().history(&key);
            history.map(|h| Answer::worded(shared, 200, &h, None))
        }
        Operation::UpdateRelease(key) => match serde_json::from_slice::<UpdateReleaseBody>(body) {
            Ok(update) => shared
                .store()
                .update(&key, &update, deploy_fails)
                .map(|outcome| {
                    trail.applied = outcome.applied;
                    Answer::worded(shared, 200, &outcome.release, None)
                }),
            Err(e) => Err(Rejection::bad_request(format!("invalid request body: {e}"))),
        },
        Operation::DeleteRelease(key) => shared.store().delete(&key).map(|outcome| {
            trail.applied = outcome.applied;
            Answer::json(200, &serde_json::json!({}))
        }),
        Operation::ListReleases(cluster) => {
            let query = auth::query_pairs(raw_query);
            let find = |name: &str| {
                query
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            shared
                .store()
                .list(&cluster, find("namespace"), find("chart_id"))
                .map(|list| Answer::worded(shared, 200, &list, None))
        }
        Operation::CreateRelease(cluster) => {
            match serde_json::from_slice::<CreateReleaseBody>(body) {
                Ok(create) => {
                    shared
                        .store()
                        .create(&cluster, create, deploy_fails)
                        .map(|outcome| {
                            trail.applied = outcome.applied;
                            Answer::worded(shared, 201, &outcome.release, None)
                        })
                }
                Err(e) => Err(Rejection::bad_request(format!("invalid request body: {e}"))),
            }
        }
        Operation::ListCharts => {
            let charts = shared.store().charts();
            Ok(Answer::worded(shared, 200, &charts, None))
        }
        Operation::ShowChart(id) => {
            let chart = shared.store().chart(&id);
            chart.map(|c| Answer::worded(shared, 200, &c, None))
        }
        Operation::ChartValues(id) => shared.store().chart(&id).map(|chart| {
            let basic: serde_json::Value =
                serde_json::from_str(&chart.values).unwrap_or_else(|_| serde_json::json!({}));
            Answer::json(200, &serde_json::json!({"values": {"basic": basic}}))
        }),
    };
    result.unwrap_or_else(|rejection| Answer::rejected(rejection, shared.busy_status))
}
