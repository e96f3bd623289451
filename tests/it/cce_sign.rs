//! The signer against the official SDK's own vectors, and properties of its encoding.

use flotilla::cce::sign::{self, CanonicalParts, SigningInput};
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use reqwest::Url;
use serde_json::Value;

const VECTORS: &str = include_str!("../fixtures/sdk-signing-vectors.json");

fn decoded(s: &str) -> String {
    percent_decode_str(s).decode_utf8().unwrap().into_owned()
}

#[test]
fn every_sdk_vector_is_reproduced_byte_for_byte() {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 5);
    for (i, vector) in vectors.iter().enumerate() {
        let input = &vector["input"];
        let expected = &vector["expected"];
        let url = Url::parse(input["url"].as_str().unwrap()).unwrap();
        let date = input["date"].as_str().unwrap();
        let host = url.host_str().unwrap().to_owned();

        let mut headers: Vec<(String, String)> = input["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        headers.push(("X-Sdk-Date".into(), date.into()));
        headers.push(("Host".into(), host));
        if let Some(project) = input["project_id"].as_str() {
            headers.push(("X-Project-Id".into(), project.into()));
        }
        let header_refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();

        let segments: Vec<String> = url.path()[1..].split('/').map(decoded).collect();
        let segment_refs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let query: Vec<(String, String)> = url
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decoded(k), decoded(v))
            })
            .collect();
        let query_refs: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = input["body"].as_str().unwrap_or("").as_bytes();
        let ak = input["ak"].as_str().unwrap();
        let sk = input["sk"].as_str().unwrap().as_bytes();

        let signed = sign::sign(
            &SigningInput {
                method: input["method"].as_str().unwrap(),
                path_segments: &segment_refs,
                query: &query_refs,
                headers: &header_refs,
                body,
            },
            date,
            sk,
        );
        assert_eq!(
            signed.canonical_request, expected["canonical_request"],
            "vector {i}"
        );
        assert_eq!(
            signed.string_to_sign, expected["string_to_sign"],
            "vector {i}"
        );
        assert_eq!(
            signed.signed_headers, expected["signed_headers"],
            "vector {i}"
        );
        assert_eq!(signed.signature, expected["signature"], "vector {i}");
        let authorization = expected["headers"]["Authorization"].as_str().unwrap();
        assert_eq!(signed.authorization(ak), authorization, "vector {i}");

        // The query actually sent is the canonical one.
        let sent = Url::parse(expected["url"].as_str().unwrap()).unwrap();
        assert_eq!(
            sign::canonical_query(&query_refs),
            sent.query().unwrap_or(""),
            "vector {i}"
        );

        // The client's streaming path gives the same header.
        let mut lower: Vec<(String, &str)> = header_refs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), *v))
            .collect();
        lower.sort();
        let sorted: Vec<(&str, &str)> = lower.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let canonical_uri = sign::canonical_uri(&segment_refs);
        let canonical_query = sign::canonical_query(&query_refs);
        let streamed = sign::authorization_for(
            &CanonicalParts {
                method: input["method"].as_str().unwrap(),
                canonical_uri: &canonical_uri,
                canonical_query: &canonical_query,
                sorted_headers: &sorted,
                body,
            },
            date,
            ak,
            sk,
        );
        assert_eq!(streamed, authorization, "vector {i}");

        let parsed = sign::parse_authorization(authorization).unwrap();
        assert_eq!(parsed.access_key, ak);
        assert!(sign::signatures_equal(parsed.signature, &signed.signature));
    }
}

#[test]
fn sdk_date_is_the_x_sdk_date_format() {
    let at: jiff::Timestamp = "2024-03-05T07:08:09.999Z".parse().unwrap();
    assert_eq!(sign::sdk_date(at), "20240305T070809Z");
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Only unreserved characters and `%XX` with uppercase hex.
fn well_encoded(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = &bytes[i + 1..(i + 3).min(bytes.len())];
            if hex.len() != 2
                || !hex
                    .iter()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
            {
                return false;
            }
            i += 3;
        } else if is_unreserved(bytes[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

proptest! {
    #[test]
    fn canonical_uri_round_trips_through_percent_decoding(
        segments in prop::collection::vec(any::<String>(), 1..5)
    ) {
        let refs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let uri = sign::canonical_uri(&refs);
        prop_assert!(uri.starts_with('/') && uri.ends_with('/'));
        let inner = &uri[1..uri.len() - 1];
        let parts: Vec<&str> = inner.split('/').collect();
        prop_assert_eq!(parts.len(), segments.len());
        for (part, original) in parts.iter().zip(&segments) {
            prop_assert!(well_encoded(part), "{part}");
            prop_assert_eq!(&decoded(part), original);
        }
    }

    #[test]
    fn unreserved_characters_stay_literal(s in "[A-Za-z0-9._~-]{0,40}") {
        prop_assert_eq!(sign::encode(&s), s.clone());
        prop_assert_eq!(sign::canonical_uri(&[&s]), format!("/{s}/"));
    }

    #[test]
    fn everything_else_is_encoded(s in "[^A-Za-z0-9._~-]{1,10}") {
        let encoded = sign::encode(&s);
        prop_assert!(encoded.chars().all(|c| c == '%' || c.is_ascii_hexdigit()));
        prop_assert!(well_encoded(&encoded));
        prop_assert_eq!(decoded(&encoded), s);
    }

    #[test]
    fn canonical_query_is_sorted_and_round_trips(
        pairs in prop::collection::vec((any::<String>(), any::<String>()), 0..6)
    ) {
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let query = sign::canonical_query(&refs);
        let encoded: Vec<(&str, &str)> = if query.is_empty() {
            Vec::new()
        } else {
            query.split('&').map(|p| p.split_once('=').unwrap()).collect()
        };
        prop_assert_eq!(encoded.len(), pairs.len());
        for (k, v) in &encoded {
            prop_assert!(well_encoded(k) && well_encoded(v));
        }
        prop_assert!(encoded.windows(2).all(|w| w[0] <= w[1]), "{query}");
        let mut round: Vec<(String, String)> =
            encoded.iter().map(|(k, v)| (decoded(k), decoded(v))).collect();
        let mut original = pairs.clone();
        round.sort();
        original.sort();
        prop_assert_eq!(round, original);
    }

    #[test]
    fn streaming_signer_equals_the_reference_signer(
        method in "(GET|PUT|POST|DELETE)",
        segments in prop::collection::vec("[a-z0-9 %/-]{1,12}", 1..6),
        query in prop::collection::vec(("[a-z_]{1,6}", "[a-z0-9 ]{0,6}"), 0..3),
        project in proptest::option::of("[0-9a-f]{32}"),
        body in prop::collection::vec(any::<u8>(), 0..200),
        sk in "[A-Za-z0-9]{1,40}",
    ) {
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Host", "cce.example.com:8443"),
            ("X-Sdk-Date", "20240101T000000Z"),
        ];
        if let Some(p) = &project {
            headers.push(("X-Project-Id", p));
        }
        let reference = sign::sign(
            &SigningInput { method: &method, path_segments: &segs, query: &q, headers: &headers, body: &body },
            "20240101T000000Z",
            sk.as_bytes(),
        );
        let mut sorted: Vec<(String, &str)> =
            headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), *v)).collect();
        sorted.sort();
        let sorted: Vec<(&str, &str)> = sorted.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let uri = sign::canonical_uri(&segs);
        let query = sign::canonical_query(&q);
        let streamed = sign::authorization_for(
            &CanonicalParts { method: &method, canonical_uri: &uri, canonical_query: &query, sorted_headers: &sorted, body: &body },
            "20240101T000000Z",
            "AK",
            sk.as_bytes(),
        );
        prop_assert_eq!(streamed, reference.authorization("AK"));
    }

    #[test]
    fn sdk_date_matches_strftime(seconds in 0i64..4_102_444_800) {
        let at = jiff::Timestamp::from_second(seconds).unwrap();
        prop_assert_eq!(sign::sdk_date(at), at.strftime(sign::DATE_FORMAT).to_string());
    }
}

#[test]
fn a_canonical_header_list_is_lowercase_sorted_and_without_underscores() {
    assert!(sign::is_canonical_header_list([
        "content-type",
        "host",
        "x-sdk-date"
    ]));
    assert!(sign::is_canonical_header_list([]));
    assert!(!sign::is_canonical_header_list(["host", "content-type"]));
    assert!(!sign::is_canonical_header_list(["Host"]));
    assert!(!sign::is_canonical_header_list(["host", "x_custom"]));
}
