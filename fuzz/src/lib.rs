//! The fuzz targets' bodies: each takes raw bytes, drives one flotilla entry point with them and
//! panics if an invariant breaks. libFuzzer calls them from `fuzz_targets/`; the main crate's
//! `tests/it/fuzz_regressions.rs` includes this file to replay every saved input the same way.

use std::path::Path;
use std::time::{Duration, Instant};

use flotilla::cce::model::{Chart, Release, read_answer};
use flotilla::cce::sign::{self, CanonicalParts, SigningInput};
use flotilla::cce::transport::{http_error, parse_retry_after};
use flotilla::plan::{self, ExpandedPlan, LoadError};
use flotilla::sim::auth::{path_segments, query_pairs};

/// The longest any plan input may take to load in an optimised build (the fuzz targets are
/// built optimised). libFuzzer's own `-timeout` catches true hangs; this catches inputs that
/// are merely far too slow.
pub const PLAN_LOAD_LIMIT: Duration = Duration::from_secs(1);

/// Arbitrary bytes as a plan file: the loader answers within `limit` with a plan or with
/// diagnostics, never a panic; every diagnostic with a position points into the text.
pub fn plan_load(data: &[u8], limit: Duration) -> Result<ExpandedPlan, LoadError> {
    let started = Instant::now();
    let result = plan::load_source(Path::new("fuzz.yaml"), data, &|_| None);
    let elapsed = started.elapsed();
    check_plan_result(data, &result);
    assert!(elapsed < limit, "loading took {elapsed:?}");
    result
}

/// What [`plan_load`] asserts about one load's result, shared with the regression tests.
pub fn check_plan_result(data: &[u8], result: &Result<ExpandedPlan, LoadError>) {
    match result {
        Ok(plan) => {
            assert!(!plan.name.is_empty());
            let indexes: Vec<usize> = plan.operations().map(|o| o.index).collect();
            assert_eq!(indexes.len(), plan.operation_count());
            assert!(
                indexes.iter().enumerate().all(|(i, index)| i == *index),
                "operation indexes are not 0..n in order: {indexes:?}"
            );
        }
        Err(error) => {
            assert!(
                !error.diagnostics().is_empty(),
                "an error without diagnostics"
            );
            // As YAML counts lines: CR LF, LF or a lone CR ends one.
            let lines =
                flotilla::plan::diagnostic::yaml_lines(&String::from_utf8_lossy(data)).count();
            for diagnostic in error.diagnostics() {
                assert!(!diagnostic.message.is_empty());
                if let Some(pos) = diagnostic.pos {
                    assert!(
                        pos.line >= 1 && pos.line <= lines && pos.col >= 1,
                        "position {pos:?} outside a {lines}-line text: {diagnostic}"
                    );
                }
            }
            // Rendering (caret lines included) must not panic either.
            let _ = error.to_string();
        }
    }
}

/// Arbitrary bytes as a 2xx answer: a release, a release history or list (`null` entries
/// included, as the client reads them), a chart. Reading never panics; any JSON object is a
/// release and any JSON array of objects and `null`s a history (no field can make an answer
/// unreadable); whatever was read is written back and read again unchanged.
pub fn release_parse(data: &[u8]) {
    let json = serde_json::from_slice::<serde_json::Value>(data).ok();
    match read_answer::<Release>(data) {
        Ok(release) => {
            let _ = release.status().is_pending();
            let _ = release.status_text();
            let _ = release.revision_text();
            let text = serde_json::to_vec(&release).expect("a release read can be written");
            let again: Release =
                serde_json::from_slice(&text).expect("a release written can be read back");
            assert_eq!(again, release, "a release does not survive a round trip");
        }
        Err(error) => assert!(
            !json.as_ref().is_some_and(serde_json::Value::is_object),
            "a JSON object was not read as a release: {error}"
        ),
    }
    match read_answer::<Vec<Option<Release>>>(data) {
        Ok(history) => {
            let text = serde_json::to_vec(&history).expect("a history read can be written");
            let again: Vec<Option<Release>> =
                serde_json::from_slice(&text).expect("a history written can be read back");
            assert_eq!(again, history, "a history does not survive a round trip");
        }
        Err(error) => {
            let entries_readable = json
                .as_ref()
                .and_then(serde_json::Value::as_array)
                .is_some_and(|items| items.iter().all(|i| i.is_object() || i.is_null()));
            assert!(
                !entries_readable,
                "a history of objects was not read: {error}"
            );
        }
    }
    if let Ok(chart) = read_answer::<Chart>(data) {
        let text = serde_json::to_vec(&chart).expect("a chart read can be written");
        let again: Chart = serde_json::from_slice(&text).expect("a chart written can be read back");
        assert_eq!(again, chart, "a chart does not survive a round trip");
    }
}

/// A little reader that carves structured fields out of fuzz bytes: a length byte, then that
/// many bytes (as lossy UTF-8). Running out of bytes yields empty fields.
struct Fields<'a> {
    data: &'a [u8],
}

impl<'a> Fields<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    fn bytes(&mut self) -> &'a [u8] {
        let len = usize::from(self.byte()).min(self.data.len());
        let (field, rest) = self.data.split_at(len);
        self.data = rest;
        field
    }

    fn text(&mut self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Arbitrary bytes as an HTTP error answer (status, `Content-Type`, `Retry-After`, body): the
/// client's error reading, and each SDK reader it combines, never panics, and it keeps its
/// excerpt of a non-JSON body short.
pub fn error_parse(data: &[u8]) {
    let mut fields = Fields { data };
    let status = 400 + u16::from(fields.byte()) % 200;
    let content_type = fields.text();
    let retry_after_header = fields.text();
    let body = fields.rest();
    let now = jiff::Timestamp::from_second(1_700_000_000).expect("a valid instant");
    let retry_after = parse_retry_after(&retry_after_header, now);
    let error = http_error(
        status,
        body,
        (!content_type.is_empty()).then_some(content_type.as_str()),
        Some("req-1".to_owned()),
        retry_after,
    );
    assert_eq!(error.status, Some(status));
    assert_eq!(error.retry_after, retry_after);
    // Each SDK reader on its own never panics either; the core one always has a code (the
    // status when the body gives none).
    let _ = flotilla::cce::error::read_as_cce_handler(body);
    let core = flotilla::cce::error::read_as_core_handler(status, body);
    assert!(core.code.is_some());
    if serde_json::from_slice::<serde_json::Value>(body).is_err()
        && let Some(message) = &error.message
    {
        // "<kind> answer: " plus at most 200 characters and an ellipsis.
        let excerpt = message.split_once(" answer: ").map_or("", |(_, e)| e);
        assert!(
            excerpt.chars().count() <= 201,
            "excerpt too long: {message}"
        );
    }
    let _ = error.class();
    let _ = error.is_throttle();
    let _ = error.to_string();
}

const METHODS: [&str; 6] = ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"];

/// An HTTP header name (a token) from arbitrary text; the signer lowercases it.
fn header_name(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(*c))
        .collect()
}

/// What an HTTP header value can carry: visible ASCII, spaces and tabs.
fn header_value(raw: &str) -> String {
    raw.chars()
        .filter(|c| *c == '\t' || (' '..='~').contains(c))
        .collect()
}

/// Arbitrary method, path segments, query, headers, keys and body: signing is deterministic,
/// the client's streaming signer agrees with the reference signer, the `Authorization` header
/// reads back into its parts, and the simulator's verification (decode the received path and
/// query, look up the signed headers, sign again) accepts exactly this signature.
pub fn sign_roundtrip(data: &[u8]) {
    let mut fields = Fields { data };
    let method = METHODS[usize::from(fields.byte()) % METHODS.len()];
    // Path segments are never empty: the client's are cluster ids, namespaces and names.
    let segments: Vec<String> = (0..fields.byte() % 6)
        .map(|_| fields.text())
        .filter(|s| !s.is_empty())
        .collect();
    let query: Vec<(String, String)> = (0..fields.byte() % 5)
        .map(|_| (fields.text(), fields.text()))
        .collect();
    let mut headers: Vec<(String, String)> = vec![
        ("Host".to_owned(), "cce.example.com".to_owned()),
        ("X-Sdk-Date".to_owned(), "20240101T000000Z".to_owned()),
    ];
    for _ in 0..fields.byte() % 5 {
        let name = header_name(&fields.text());
        let value = header_value(&fields.text());
        // One value per name, as the client sends them.
        if !name.is_empty()
            && !name.eq_ignore_ascii_case("authorization")
            && !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            headers.push((name, value));
        }
    }
    // Access keys are alphanumeric, like every key IAM issues.
    let access_key: String = fields
        .text()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let access_key = if access_key.is_empty() {
        "AK".to_owned()
    } else {
        access_key
    };
    let secret_key = fields.bytes().to_vec();
    let body = fields.rest();
    let date = "20240101T000000Z";

    let segment_refs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let query_refs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let input = SigningInput {
        method,
        path_segments: &segment_refs,
        query: &query_refs,
        headers: &header_refs,
        body,
    };
    let signed = sign::sign(&input, date, &secret_key);
    assert_eq!(
        signed,
        sign::sign(&input, date, &secret_key),
        "signing is not deterministic"
    );

    // Canonical encoding is stable: the order of query pairs does not matter.
    let reversed: Vec<(&str, &str)> = query_refs.iter().rev().copied().collect();
    let canonical_query = sign::canonical_query(&query_refs);
    assert_eq!(canonical_query, sign::canonical_query(&reversed));

    // The client's streaming signer, fed the canonical pieces it builds, agrees.
    let mut sorted: Vec<(String, &str)> = header_refs
        .iter()
        .filter(|(name, _)| !name.contains('_'))
        .map(|(name, value)| (name.to_ascii_lowercase(), *value))
        .collect();
    sorted.sort();
    let sorted: Vec<(&str, &str)> = sorted.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let canonical_uri = sign::canonical_uri(&segment_refs);
    let authorization = sign::authorization_for(
        &CanonicalParts {
            method,
            canonical_uri: &canonical_uri,
            canonical_query: &canonical_query,
            sorted_headers: &sorted,
            body,
        },
        date,
        &access_key,
        &secret_key,
    );
    assert_eq!(authorization, signed.authorization(&access_key));

    // The header reads back into its parts.
    let parsed = sign::parse_authorization(&authorization).expect("our own header parses");
    assert_eq!(parsed.access_key, access_key);
    assert_eq!(parsed.signed_headers, signed.signed_headers);
    assert!(sign::signatures_equal(parsed.signature, &signed.signature));

    // The simulator's side: what it receives decodes into what was signed.
    let received_segments = path_segments(&canonical_uri);
    assert_eq!(received_segments, segments, "path {canonical_uri:?}");
    let received_query = query_pairs(Some(&canonical_query));
    let mut expected_query = query.clone();
    expected_query.sort();
    let mut received_sorted = received_query.clone();
    received_sorted.sort();
    assert_eq!(received_sorted, expected_query, "query {canonical_query:?}");
    let mut verify_headers: Vec<(&str, &str)> = Vec::new();
    for name in parsed.signed_headers.split(';').filter(|n| !n.is_empty()) {
        let value = header_refs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .expect("every signed header was sent");
        verify_headers.push((name, value));
    }
    let segs: Vec<&str> = received_segments.iter().map(String::as_str).collect();
    let q: Vec<(&str, &str)> = received_query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resigned = sign::sign(
        &SigningInput {
            method,
            path_segments: &segs,
            query: &q,
            headers: &verify_headers,
            body,
        },
        date,
        &secret_key,
    );
    assert_eq!(resigned.signed_headers, parsed.signed_headers);
    assert!(sign::signatures_equal(
        &resigned.signature,
        parsed.signature
    ));

    // A signature differing in one digit is refused.
    let mut tampered = signed.signature.clone().into_bytes();
    tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).expect("hex is ASCII");
    assert!(!sign::signatures_equal(&tampered, parsed.signature));
}
