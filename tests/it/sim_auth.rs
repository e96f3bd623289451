//! Authentication: every SDK signing vector is accepted when replayed with its AK/SK and date;
//! tampering, clock skew, a wrong project or token are 401 `APIG.0301`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::sim_support::{client, plan, release_url};
use flotilla::cce::sign::{self, SigningInput};
use flotilla::secret::Secret;
use flotilla::sim::auth::{SIGNATURE_MISMATCH, parse_sdk_date};
use flotilla::sim::{RunningSim, SimAuth, SimConfig, Simulator};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A copy of `shared/reference/sdk-signing-vectors.json`, so that the tests run anywhere.
const VECTORS: &str = include_str!("../fixtures/sdk-signing-vectors.json");
const VECTOR_HOST: &str = "cce.cn-north-4.myhuaweicloud.com";

struct Vector {
    method: String,
    /// Path and query as the SDK sent them.
    target: String,
    headers: Vec<(String, String)>,
    body: String,
    ak: String,
    sk: String,
    date: String,
    project_id: Option<String>,
}

fn vectors() -> Vec<Vector> {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let (input, expected) = (&v["input"], &v["expected"]);
            let url = expected["url"].as_str().unwrap();
            let target = url
                .strip_prefix(&format!("https://{VECTOR_HOST}"))
                .unwrap()
                .to_owned();
            Vector {
                method: expected["method"].as_str().unwrap().to_owned(),
                target,
                headers: expected["headers"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect(),
                body: expected["body"].as_str().unwrap_or("").to_owned(),
                ak: input["ak"].as_str().unwrap().to_owned(),
                sk: input["sk"].as_str().unwrap().to_owned(),
                date: input["date"].as_str().unwrap().to_owned(),
                project_id: input["project_id"].as_str().map(str::to_owned),
            }
        })
        .collect()
}

async fn sim_for(vector: &Vector, project_id: Option<&str>, now: jiff::Timestamp) -> RunningSim {
    let seed = plan(&[(
        "a870253f-5dc7-11ee-bf71-0255ac100b03",
        "monitoring",
        "testwww",
        "af4b699e-018c-11ec-b8b0-0255ac100b05",
    )]);
    let config = SimConfig::default()
        .with_settle(Duration::ZERO)
        .with_clock(now)
        .with_auth(SimAuth::AkSk {
            ak: Secret::new(&vector.ak),
            sk: Secret::new(&vector.sk),
            project_id: project_id.map(str::to_owned),
        });
    Simulator::start(config, &[&seed]).await.unwrap()
}

/// Sends exactly these bytes (the vector's own Host header included) and reads the answer.
async fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &str,
) -> (u16, Value) {
    let mut request = format!("{method} {target} HTTP/1.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn replay(vector: &Vector, sim: &RunningSim) -> (u16, Value) {
    raw_request(
        sim.addr(),
        &vector.method,
        &vector.target,
        &vector.headers,
        &vector.body,
    )
    .await
}

fn signed_at(vector: &Vector) -> jiff::Timestamp {
    parse_sdk_date(&vector.date).unwrap()
}

#[tokio::test]
async fn every_sdk_signing_vector_is_accepted() {
    let all = vectors();
    assert!(all.len() >= 5);
    for vector in &all {
        let sim = sim_for(vector, vector.project_id.as_deref(), signed_at(vector)).await;
        let (status, body) = replay(vector, &sim).await;
        assert_eq!(status, 200, "{} {}: {body}", vector.method, vector.target);
        let log = sim.request_log();
        assert!(log[0].credential.starts_with("ak:"));
        assert!(!log[0].credential.contains(&vector.ak));
    }
}

fn authorization(vector: &Vector) -> &str {
    let (_, value) = vector
        .headers
        .iter()
        .find(|(name, _)| name == "Authorization")
        .unwrap();
    value
}

fn flip_last_signature_digit(vector: &Vector) -> String {
    let mut changed = authorization(vector).to_owned();
    let last = changed.pop().unwrap();
    changed.push(if last == '0' { '1' } else { '0' });
    changed
}

/// A valid signature over the vector's request with its signed-header list put in another
/// form: only the rule that the list be as the signer writes it can refuse it.
fn signed_with_header_list(vector: &Vector, reshape: fn(Vec<String>) -> Vec<String>) -> String {
    let parsed = sign::parse_authorization(authorization(vector)).unwrap();
    let names = reshape(
        parsed
            .signed_headers
            .split(';')
            .map(str::to_owned)
            .collect(),
    );
    let value_of = |name: &str| {
        let (_, value) = vector
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap();
        value.as_str()
    };
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), value_of(n))).collect();
    let (path, query) = vector
        .target
        .split_once('?')
        .unwrap_or((&vector.target, ""));
    let segments = flotilla::sim::auth::path_segments(path);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let pairs = flotilla::sim::auth::query_pairs(Some(query));
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let signature = sign::signature_hex(
        &sign::CanonicalParts {
            method: &vector.method,
            canonical_uri: &sign::canonical_uri(&segments),
            canonical_query: &sign::canonical_query(&pairs),
            sorted_headers: &headers,
            body: vector.body.as_bytes(),
        },
        value_of("x-sdk-date"),
        vector.sk.as_bytes(),
    );
    format!(
        "{} Access={}, SignedHeaders={}, Signature={}",
        sign::ALGORITHM,
        parsed.access_key,
        names.join(";"),
        String::from_utf8(signature.to_vec()).unwrap()
    )
}

fn reversed(mut names: Vec<String>) -> Vec<String> {
    names.reverse();
    names
}

fn uppercased(names: Vec<String>) -> Vec<String> {
    names.iter().map(|n| n.to_ascii_uppercase()).collect()
}

#[tokio::test]
async fn a_tampered_request_is_401_with_the_documented_message() {
    for vector in &vectors() {
        let sim = sim_for(vector, vector.project_id.as_deref(), signed_at(vector)).await;
        // A different path, query or body than what was signed.
        let tampered_target = vector.target.replace("testwww", "testwwx");
        let (status, body) = raw_request(
            sim.addr(),
            &vector.method,
            &tampered_target,
            &vector.headers,
            &vector.body,
        )
        .await;
        assert_eq!(status, 401, "{}", vector.target);
        assert_eq!(body["error_code"], "APIG.0301");
        assert_eq!(body["error_msg"], SIGNATURE_MISMATCH);
        if !vector.body.is_empty() {
            let body_changed = vector.body.replace("v2", "v3");
            let (status, _) = raw_request(
                sim.addr(),
                &vector.method,
                &vector.target,
                &vector.headers,
                &body_changed,
            )
            .await;
            assert_eq!(status, 401);
        }
        // Re-signing with the list as it is gives the vector's own header back.
        assert_eq!(
            signed_with_header_list(vector, |names| names),
            authorization(vector)
        );
        // A signature off by one digit, and valid signatures over a signed-header list the
        // signer would not write.
        for tampered in [
            flip_last_signature_digit(vector),
            signed_with_header_list(vector, reversed),
            signed_with_header_list(vector, uppercased),
        ] {
            let mut headers = vector.headers.clone();
            for (name, value) in &mut headers {
                if name == "Authorization" {
                    *value = tampered.clone();
                }
            }
            let (status, body) = raw_request(
                sim.addr(),
                &vector.method,
                &vector.target,
                &headers,
                &vector.body,
            )
            .await;
            assert_eq!(status, 401, "{}", vector.target);
            assert_eq!(body["error_msg"], SIGNATURE_MISMATCH);
        }
        assert_eq!(sim.state().applied_puts, 0);
    }
}

#[tokio::test]
async fn a_date_more_than_15_minutes_off_is_401_and_within_15_is_accepted() {
    let vector = &vectors()[0];
    let date = signed_at(vector);
    for (offset_minutes, expected) in [(16, 401), (-16, 401), (14, 200), (-14, 200)] {
        let now = date
            .checked_add(jiff::SignedDuration::from_mins(offset_minutes))
            .unwrap();
        let sim = sim_for(vector, None, now).await;
        let (status, body) = replay(vector, &sim).await;
        assert_eq!(status, expected, "{offset_minutes} min: {body}");
        if expected == 401 {
            assert_eq!(body["error_code"], "APIG.0301");
        }
    }
}

#[tokio::test]
async fn a_project_id_other_than_the_configured_one_is_401() {
    let all = vectors();
    let with_project = all.iter().find(|v| v.project_id.is_some()).unwrap();
    let sim = sim_for(
        with_project,
        Some("another-project"),
        signed_at(with_project),
    )
    .await;
    assert_eq!(replay(with_project, &sim).await.0, 401);
    let without_project = all.iter().find(|v| v.project_id.is_none()).unwrap();
    let sim = sim_for(
        without_project,
        Some("0123456789abcdef0123456789abcdef"),
        signed_at(without_project),
    )
    .await;
    assert_eq!(replay(without_project, &sim).await.0, 401);
}

#[tokio::test]
async fn requests_signed_by_the_project_signer_are_accepted_and_unsigned_ones_refused() {
    let sim = Simulator::start(
        SimConfig::default().with_auth(SimAuth::AkSk {
            ak: Secret::new("AKTEST"),
            sk: Secret::new("SKTEST"),
            project_id: None,
        }),
        &[&crate::sim_support::fleet()],
    )
    .await
    .unwrap();
    let host = sim.addr().to_string();
    let date = jiff::Timestamp::now()
        .strftime(sign::DATE_FORMAT)
        .to_string();
    let headers = [
        ("Content-Type", "application/json"),
        ("Host", host.as_str()),
        ("X-Sdk-Date", date.as_str()),
    ];
    let segments = [
        "autopilot",
        "cam",
        "v3",
        "clusters",
        "c1",
        "namespace",
        "web",
        "releases",
        "frontend",
    ];
    let signed = sign::sign(
        &SigningInput {
            method: "GET",
            path_segments: &segments,
            query: &[],
            headers: &headers,
            body: b"",
        },
        &date,
        b"SKTEST",
    );
    let url = release_url(&sim.base_url(), "c1", "web", "frontend");
    let c = client();
    let ok = c
        .get(&url)
        .header("content-type", "application/json")
        .header("x-sdk-date", &date)
        .header("authorization", signed.authorization("AKTEST"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let refused = c.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("x-request-id"));
    let other_ak = c
        .get(&url)
        .header("content-type", "application/json")
        .header("x-sdk-date", &date)
        .header("authorization", signed.authorization("AKOTHER"))
        .send()
        .await
        .unwrap();
    assert_eq!(other_ak.status(), 401);
}

#[tokio::test]
async fn token_mode_checks_x_auth_token() {
    let sim = Simulator::start(
        SimConfig::default().with_auth(SimAuth::Token(Secret::new("tok-123"))),
        &[&crate::sim_support::fleet()],
    )
    .await
    .unwrap();
    let url = release_url(&sim.base_url(), "c1", "web", "frontend");
    let c = client();
    let status = |token: Option<&'static str>| {
        let mut request = c.get(&url);
        if let Some(token) = token {
            request = request.header("x-auth-token", token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(Some("tok-123")).await, 200);
    assert_eq!(status(Some("tok-124")).await, 401);
    assert_eq!(status(None).await, 401);
    let log = sim.request_log();
    assert!(log[0].credential.starts_with("token:") && !log[0].credential.contains("tok-123"));
    assert_eq!(log[2].credential, "anonymous");
}
