//! The client against local servers: headers and signatures as the gateway sees them, every
//! error shape and class, and the transport failures that decide whether a PUT may be resent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use flotilla::cce::address::ClusterAddress;
use flotilla::cce::client::{Client, ClientConfig, ClientError};
use flotilla::cce::credentials::Credentials;
use flotilla::cce::error::{ErrorClass, FailureKind};
use flotilla::cce::model::{Action, ReleaseStatus, UpdateReleaseBody};
use flotilla::cce::sign::{self, SigningInput};
use flotilla::engine::api::{ReleaseAddress, ReleaseApi};
use flotilla::plan::resolved::ClusterTarget;
use flotilla::secret::Secret;
use percent_encoding::percent_decode_str;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const AK: &str = "AKTESTVALUE000";
const SK: &str = "SKTESTVALUE0000000000";

/// The cluster as the client addresses it.
fn cluster<'a>(endpoint: &'a str, project_id: Option<&'a str>) -> ClusterAddress<'a> {
    ClusterAddress {
        name: "prod-a",
        id: "a870253f-5dc7-11ee-bf71-0255ac100b03",
        endpoint,
        project_id,
    }
}

/// The same cluster as a plan describes it, for calls through the engine's [`ReleaseApi`].
fn cluster_target(endpoint: &str, project_id: Option<&str>) -> ClusterTarget {
    ClusterTarget {
        name: "prod-a".into(),
        id: "a870253f-5dc7-11ee-bf71-0255ac100b03".into(),
        labels: BTreeMap::new(),
        region: "cn-north-4".into(),
        endpoint: endpoint.into(),
        iam_endpoint: None,
        project_id: project_id.map(str::to_owned),
    }
}

fn aksk(security_token: Option<&str>, project_id: Option<&str>) -> Credentials {
    Credentials::AkSk {
        access_key: Secret::new(AK),
        secret_key: Secret::new(SK),
        security_token: security_token.map(Secret::new),
        project_id: project_id.map(str::to_owned),
    }
}

fn fixed_clock() -> flotilla::cce::client::Clock {
    Arc::new(|| "2024-01-01T00:00:00Z".parse().unwrap())
}

fn config(timeout: Duration) -> ClientConfig {
    ClientConfig {
        request_timeout: timeout,
        connect_timeout: timeout,
        max_idle_per_host: 4,
        clock: Some(fixed_clock()),
        ..ClientConfig::default()
    }
}

/// One request as the server received it.
#[derive(Clone, Debug)]
struct Received {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// What the server answers.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    fn json(status: u16, body: serde_json::Value) -> Self {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
        }
    }
}

#[derive(Clone)]
struct Recorder {
    received: Arc<Mutex<Vec<Received>>>,
    reply: Arc<Mutex<Reply>>,
}

/// An axum server on 127.0.0.1:0 that records every request and answers `reply`.
async fn recording_server(reply: Reply) -> (String, Recorder) {
    let recorder = Recorder {
        received: Arc::default(),
        reply: Arc::new(Mutex::new(reply)),
    };
    let state = recorder.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                state.received.lock().unwrap().push(Received {
                    method,
                    uri,
                    headers,
                    body,
                });
                let reply = state.reply.lock().unwrap().clone();
                let mut response =
                    axum::response::Response::new(axum::body::Body::from(reply.body));
                *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
                for (name, value) in reply.headers {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                response
            }
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), recorder)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

/// Recomputes the signature from what arrived, as the gateway does, with `sign::sign`.
fn verify_signature(received: &Received, secret_key: &str) {
    let authorization = header(&received.headers, "authorization").expect("signed");
    let parsed = sign::parse_authorization(authorization).expect("well-formed Authorization");
    assert_eq!(parsed.access_key, AK);
    let names: Vec<&str> = parsed.signed_headers.split(';').collect();
    let header_pairs: Vec<(&str, &str)> = names
        .iter()
        .map(|n| (*n, header(&received.headers, n).unwrap_or("")))
        .collect();
    let segments: Vec<String> = received.uri.path()[1..]
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8().unwrap().into_owned())
        .collect();
    let segment_refs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let query: Vec<(String, String)> = received
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            let d = |s: &str| percent_decode_str(s).decode_utf8().unwrap().into_owned();
            (d(k), d(v))
        })
        .collect();
    let query_refs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let date = header(&received.headers, "x-sdk-date").unwrap();
    let expected = sign::sign(
        &SigningInput {
            method: received.method.as_str(),
            path_segments: &segment_refs,
            query: &query_refs,
            headers: &header_pairs,
            body: &received.body,
        },
        date,
        secret_key.as_bytes(),
    );
    assert_eq!(parsed.signed_headers, expected.signed_headers);
    assert!(
        sign::signatures_equal(parsed.signature, &expected.signature),
        "signature does not verify"
    );
}

fn release_json() -> serde_json::Value {
    json!({
        "name": "web", "namespace": "default", "chart_version": "1.2.3",
        "status": "PENDING_UPGRADE", "version": 7, "values": "{\"imageTag\":\"v2\"}"
    })
}

#[tokio::test]
async fn signed_put_sends_every_header_and_verifies_server_side() {
    let (base, recorder) = recording_server(Reply::json(200, release_json())).await;
    let client = Client::new(
        config(Duration::from_secs(5)),
        aksk(Some("STSTSTST"), Some("env-project")),
    )
    .unwrap();
    let mut values = serde_json::Map::new();
    values.insert("imageTag".into(), json!("v2"));
    values.insert("password".into(), json!("p"));
    let body = UpdateReleaseBody {
        chart_id: Some("chart-1".into()),
        action: Action::Upgrade,
        parameters: None,
        values: Some(values),
    };
    let target = cluster(&base, Some("plan-project"));
    let release = client
        .update_release(target, "default", "web", &body)
        .await
        .unwrap();
    assert_eq!(release.status(), ReleaseStatus::PendingUpgrade);
    assert_eq!(release.version, Some(7));
    assert_eq!(release.values, json!({"imageTag": "v2"}));

    let received = recorder.received.lock().unwrap()[0].clone();
    assert_eq!(received.method, Method::PUT);
    assert_eq!(
        received.uri.path(),
        "/autopilot/cam/v3/clusters/a870253f-5dc7-11ee-bf71-0255ac100b03/namespace/default/releases/web"
    );
    let h = &received.headers;
    assert_eq!(header(h, "x-sdk-date"), Some("20240101T000000Z"));
    assert_eq!(header(h, "host"), Some(base.trim_start_matches("http://")));
    assert_eq!(header(h, "content-type"), Some("application/json"));
    // The plan's project id wins over the one that came with the credentials.
    assert_eq!(header(h, "x-project-id"), Some("plan-project"));
    assert_eq!(header(h, "x-security-token"), Some("STSTSTST"));
    assert!(header(h, "x-auth-token").is_none());
    assert!(
        header(h, "authorization")
            .unwrap()
            .contains("SignedHeaders=content-type;host;x-project-id;x-sdk-date;x-security-token,")
    );
    assert_eq!(
        &received.body[..],
        serde_json::to_vec(&body).unwrap().as_slice(),
        "the body is sent as serialised, byte for byte"
    );
    verify_signature(&received, SK);
}

#[tokio::test]
async fn a_wrong_secret_key_does_not_verify() {
    let (base, recorder) = recording_server(Reply::json(200, release_json())).await;
    let client = Client::new(config(Duration::from_secs(5)), aksk(None, None)).unwrap();
    client
        .show_release(cluster(&base, None), "default", "web", false)
        .await
        .unwrap();
    let received = recorder.received.lock().unwrap()[0].clone();
    let result = std::panic::catch_unwind(|| verify_signature(&received, "another-secret"));
    assert!(result.is_err(), "verification must depend on the key");
}

#[tokio::test]
async fn gets_carry_content_type_and_token_auth() {
    let (base, recorder) = recording_server(Reply::json(200, json!([release_json()]))).await;
    let client = Client::new(
        config(Duration::from_secs(5)),
        Credentials::Token(Secret::new("IAMTOKENVALUE")),
    )
    .unwrap();
    let history = client
        .release_history(cluster(&base, None), "default", "web")
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    let received = recorder.received.lock().unwrap()[0].clone();
    assert_eq!(received.method, Method::GET);
    assert!(received.uri.path().ends_with("/releases/web/history"));
    assert_eq!(
        header(&received.headers, "content-type"),
        Some("application/json")
    );
    assert_eq!(
        header(&received.headers, "x-auth-token"),
        Some("IAMTOKENVALUE")
    );
    assert!(header(&received.headers, "authorization").is_none());
    assert!(header(&received.headers, "x-sdk-date").is_none());
    assert!(header(&received.headers, "x-project-id").is_none());
}

#[tokio::test]
async fn list_query_and_odd_names_are_encoded_and_still_verify() {
    let (base, recorder) = recording_server(Reply::json(200, json!([]))).await;
    let client = Client::new(
        config(Duration::from_secs(5)),
        aksk(None, Some("env-project")),
    )
    .unwrap();
    let target = cluster(&base, None);
    let listed = client
        .list_releases(target, Some("team a/b"), Some("chart~1"))
        .await
        .unwrap();
    assert!(listed.is_empty());
    // `[]` is not a release: a decode error, but the request went out.
    let err = client
        .show_release(target, "ns", "we b/ü", true)
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Decode, "{err}");
    let received = recorder.received.lock().unwrap().clone();
    assert_eq!(
        received[0].uri.to_string(),
        "/autopilot/cam/v3/clusters/a870253f-5dc7-11ee-bf71-0255ac100b03/releases?chart_id=chart~1&namespace=team%20a%2Fb"
    );
    assert_eq!(
        received[1].uri.to_string(),
        "/autopilot/cam/v3/clusters/a870253f-5dc7-11ee-bf71-0255ac100b03/namespace/ns/releases/we%20b%2F%C3%BC?show_resources=true"
    );
    for r in &received {
        // The credentials' project id is used when the plan has none.
        assert_eq!(header(&r.headers, "x-project-id"), Some("env-project"));
        verify_signature(r, SK);
    }
}

#[tokio::test]
async fn every_attempt_is_signed_afresh() {
    let (base, recorder) = recording_server(Reply::json(200, release_json())).await;
    static SECONDS: AtomicI64 = AtomicI64::new(1_704_067_200);
    let clock: flotilla::cce::client::Clock =
        Arc::new(|| jiff::Timestamp::from_second(SECONDS.fetch_add(61, Ordering::SeqCst)).unwrap());
    let client = Client::new(
        ClientConfig {
            clock: Some(clock),
            ..config(Duration::from_secs(5))
        },
        aksk(None, None),
    )
    .unwrap();
    let target = cluster_target(&base, None);
    let at = ReleaseAddress {
        cluster: &target,
        namespace: "default",
        name: "web",
    };
    ReleaseApi::show_release(&client, at).await.unwrap();
    ReleaseApi::show_release(&client, at).await.unwrap();
    let received = recorder.received.lock().unwrap().clone();
    let dates: Vec<&str> = received
        .iter()
        .map(|r| header(&r.headers, "x-sdk-date").unwrap())
        .collect();
    assert_eq!(dates, ["20240101T000000Z", "20240101T000101Z"]);
    assert_ne!(
        header(&received[0].headers, "authorization"),
        header(&received[1].headers, "authorization")
    );
    for r in &received {
        verify_signature(r, SK);
    }
}

#[tokio::test]
async fn every_error_shape_and_class() {
    struct Case {
        reply: Reply,
        status: u16,
        code: Option<&'static str>,
        message: Option<&'static str>,
        retry_after: Option<Duration>,
        class: ErrorClass,
    }
    let with = |mut reply: Reply, extra: &[(&'static str, &str)]| {
        reply
            .headers
            .extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        reply
    };
    let cases = [
        Case {
            reply: with(
                Reply::json(429, json!({"error_code": "APIG.0308", "error_msg": "The throttling threshold has been reached: policy user over ratelimit,limit:10,time:1 minute"})),
                &[("retry-after", "3"), ("x-request-id", "req-429")],
            ),
            status: 429,
            code: Some("APIG.0308"),
            message: Some("The throttling threshold has been reached: policy user over ratelimit,limit:10,time:1 minute"),
            retry_after: Some(Duration::from_secs(3)),
            class: ErrorClass::Retryable,
        },
        Case {
            // Retry-After as an HTTP date, 5 s after the client's (fixed) clock.
            reply: with(
                Reply::json(503, json!({"errorCode": "CCE.503", "errorMessage": "busy", "message": "try later"})),
                &[("retry-after", "Mon, 01 Jan 2024 00:00:05 GMT")],
            ),
            status: 503,
            code: Some("CCE.503"),
            message: Some("busy, try later"),
            retry_after: Some(Duration::from_secs(5)),
            class: ErrorClass::Retryable,
        },
        Case {
            reply: Reply {
                status: 502,
                headers: vec![("content-type", "text/html".into())],
                body: "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>".into(),
            },
            status: 502,
            code: None,
            message: Some("text/html answer: 502 Bad Gateway"),
            retry_after: None,
            class: ErrorClass::Retryable,
        },
        Case {
            reply: Reply { status: 504, headers: vec![], body: String::new() },
            status: 504,
            code: None,
            message: None,
            retry_after: None,
            class: ErrorClass::Retryable,
        },
        Case {
            reply: Reply::json(500, json!({"error_code": "CCE.500", "error_msg": "internal"})),
            status: 500,
            code: Some("CCE.500"),
            message: Some("internal"),
            retry_after: None,
            class: ErrorClass::Ambiguous,
        },
        Case {
            reply: Reply::json(401, json!({"error_code": "APIG.0301", "error_msg": "Incorrect IAM authentication information: verify aksk signature fail"})),
            status: 401,
            code: Some("APIG.0301"),
            message: Some("Incorrect IAM authentication information: verify aksk signature fail"),
            retry_after: None,
            class: ErrorClass::Fatal,
        },
        Case {
            reply: Reply::json(400, json!({"error_code": "CCE.400", "error_msg": "bad values"})),
            status: 400,
            code: Some("CCE.400"),
            message: Some("bad values"),
            retry_after: None,
            class: ErrorClass::Fatal,
        },
        Case {
            reply: Reply::json(403, json!({"error_code": "CCE.403", "error_msg": "forbidden"})),
            status: 403,
            code: Some("CCE.403"),
            message: Some("forbidden"),
            retry_after: None,
            class: ErrorClass::Fatal,
        },
        Case {
            reply: Reply::json(404, json!({"error_code": "CCE.404", "error_msg": "release not found"})),
            status: 404,
            code: Some("CCE.404"),
            message: Some("release not found"),
            retry_after: None,
            class: ErrorClass::Fatal,
        },
        Case {
            reply: Reply {
                status: 409,
                headers: vec![("content-type", "text/plain".into())],
                body: "conflict:   another   operation\n is in progress".into(),
            },
            status: 409,
            code: None,
            message: Some("text/plain answer: conflict: another operation is in progress"),
            retry_after: None,
            class: ErrorClass::Fatal,
        },
    ];
    let (base, recorder) = recording_server(Reply::json(200, json!({}))).await;
    let client = Client::new(config(Duration::from_secs(5)), aksk(None, None)).unwrap();
    let target = cluster(&base, None);
    for case in cases {
        *recorder.reply.lock().unwrap() = case.reply;
        let err = client
            .show_release(target, "default", "web", false)
            .await
            .unwrap_err();
        let what = format!("HTTP {}", case.status);
        assert_eq!(err.kind, FailureKind::Http, "{what}");
        assert_eq!(err.status, Some(case.status), "{what}");
        assert_eq!(err.code.as_deref(), case.code, "{what}");
        assert_eq!(err.message.as_deref(), case.message, "{what}");
        assert_eq!(err.retry_after, case.retry_after, "{what}");
        assert_eq!(err.class(), case.class, "{what}");
        if case.status == 429 {
            assert_eq!(err.request_id.as_deref(), Some("req-429"));
            assert!(err.is_throttle());
            assert!(err.to_string().contains("(request id req-429)"));
        }
    }
}

/// What the SDK models accept, the client reads: a PUT answer of nulls is a release of which
/// nothing is given, and a history's `null` entry is an entry (issue 17 §1).
#[tokio::test]
async fn answers_with_nulls_and_null_entries_are_read_as_the_sdks_read_them() {
    let nulls = json!({"chart_name": null, "chart_public": null, "status": null,
                       "status_description": null, "values": null, "version": null});
    let (base, _recorder) = recording_server(Reply::json(200, nulls)).await;
    let client = Client::new(config(Duration::from_secs(5)), aksk(None, None)).unwrap();
    let release = client
        .update_release(cluster(&base, None), "default", "web", &put_body())
        .await
        .expect("a 200 of nulls is an answer, not an unreadable one");
    assert_eq!(release, flotilla::cce::model::Release::default());

    let history = json!([release_json(), null, {"version": "8", "status": "SUPERSEDED"}]);
    let (base, _recorder) = recording_server(Reply::json(200, history)).await;
    let history = client
        .release_history(cluster(&base, None), "default", "web")
        .await
        .unwrap();
    let revisions: Vec<Option<i64>> = history.iter().map(|r| r.version).collect();
    assert_eq!(revisions, [Some(7), None, Some(8)]);
    assert_eq!(history[2].status_text(), "SUPERSEDED");
}

#[tokio::test]
async fn an_unreadable_success_is_a_decode_error() {
    let (base, _recorder) = recording_server(Reply {
        status: 200,
        headers: vec![("x-request-id", "r-1".into())],
        body: "<html>not json</html>".into(),
    })
    .await;
    let client = Client::new(config(Duration::from_secs(5)), aksk(None, None)).unwrap();
    let err = client
        .show_release(cluster(&base, None), "default", "web", false)
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Decode);
    assert_eq!(err.status, Some(200));
    assert_eq!(err.request_id.as_deref(), Some("r-1"));
    assert_eq!(err.class(), ErrorClass::Ambiguous);
}

/// Reads one HTTP/1.1 request (headers, then `Content-Length` bytes of body).
async fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "client closed before sending a whole request");
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            while data.len() < end + 4 + length {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0);
                data.extend_from_slice(&buf[..n]);
            }
            return data;
        }
    }
}

/// A raw server: accepts one connection, reads the whole request, reports it, then `after`.
async fn raw_server<F, Fut>(after: F) -> (String, tokio::sync::oneshot::Receiver<Vec<u8>>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let request = read_request(&mut stream).await;
        let _ = tx.send(request);
        after(stream).await;
    });
    (format!("http://{addr}"), rx)
}

fn put_body() -> UpdateReleaseBody {
    UpdateReleaseBody {
        chart_id: Some("chart-1".into()),
        action: Action::Upgrade,
        parameters: None,
        values: None,
    }
}

#[tokio::test]
async fn a_hang_after_the_request_was_sent_is_timed_out() {
    let (hold_tx, hold_rx) = tokio::sync::oneshot::channel::<()>();
    let (base, received) = raw_server(|stream| async move {
        // Keep the connection open, answering nothing, until the test ends.
        let _ = hold_rx.await;
        drop(stream);
    })
    .await;
    let client = Client::new(config(Duration::from_millis(300)), aksk(None, None)).unwrap();
    let err = client
        .update_release(cluster(&base, None), "default", "web", &put_body())
        .await
        .unwrap_err();
    let request = received.await.expect("the server got the whole request");
    assert!(request.starts_with(b"PUT "));
    assert_eq!(err.kind, FailureKind::TimedOut, "{err}");
    assert_eq!(err.class(), ErrorClass::Ambiguous);
    drop(hold_tx);
}

#[tokio::test]
async fn a_connection_dropped_before_the_answer_is_lost_not_unsent() {
    let (base, received) = raw_server(|stream| async move { drop(stream) }).await;
    let client = Client::new(config(Duration::from_secs(5)), aksk(None, None)).unwrap();
    let err = client
        .update_release(cluster(&base, None), "default", "web", &put_body())
        .await
        .unwrap_err();
    received.await.expect("the server got the whole request");
    assert_eq!(err.kind, FailureKind::ConnectionLost, "{err}");
    assert_eq!(err.class(), ErrorClass::Ambiguous);
}

#[tokio::test]
async fn a_connection_dropped_mid_answer_is_lost() {
    let (base, received) = raw_server(|mut stream| async move {
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"name\":\"we")
            .await
            .unwrap();
        stream.flush().await.unwrap();
        drop(stream);
    })
    .await;
    let client = Client::new(config(Duration::from_secs(5)), aksk(None, None)).unwrap();
    let err = client
        .update_release(cluster(&base, None), "default", "web", &put_body())
        .await
        .unwrap_err();
    received.await.expect("the server got the whole request");
    assert_eq!(err.kind, FailureKind::ConnectionLost, "{err}");
    assert_eq!(err.status, Some(200));
    assert_eq!(err.class(), ErrorClass::Ambiguous);
}

#[tokio::test]
async fn a_refused_connection_was_not_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = Client::new(config(Duration::from_secs(5)), aksk(None, None)).unwrap();
    let err = client
        .update_release(
            cluster(&format!("http://{addr}"), None),
            "default",
            "web",
            &put_body(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::NotSent, "{err}");
    assert_eq!(err.class(), ErrorClass::Retryable);
}

#[tokio::test]
async fn plain_http_beyond_loopback_is_refused_before_sending() {
    let client = Client::new(config(Duration::from_secs(5)), aksk(None, None)).unwrap();
    let err = client
        .show_release(cluster("http://192.0.2.1:9", None), "default", "web", false)
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::NotSent);
    assert!(err.to_string().contains("--allow-insecure-http"), "{err}");
}

#[tokio::test]
async fn errors_and_debug_output_carry_no_secret() {
    let (base, _recorder) = recording_server(Reply::json(
        401,
        json!({"error_code": "APIG.0301", "error_msg": "verify aksk signature fail"}),
    ))
    .await;
    let client = Client::new(config(Duration::from_secs(5)), aksk(Some("STSECRET"), None)).unwrap();
    let err = client
        .show_release(cluster(&base, None), "default", "web", false)
        .await
        .unwrap_err();
    let printed = format!("{err} {err:?} {client:?}");
    for secret in [AK, SK, "STSECRET"] {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
}

#[test]
fn a_bad_ca_certificate_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    // A PEM block whose body is not a certificate fails only when the client is built.
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for path in [missing, empty, garbage] {
        let err = Client::new(
            ClientConfig {
                ca_cert: Some(path.clone()),
                ..ClientConfig::default()
            },
            aksk(None, None),
        )
        .unwrap_err();
        assert!(matches!(err, ClientError::CaCert { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}
