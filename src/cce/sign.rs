//! `SDK-HMAC-SHA256` request signing, byte for byte as the official SDK signs.

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "SDK-HMAC-SHA256";

/// Everything but `A-Z a-z 0-9 - _ . ~` is percent-encoded, with uppercase hex.
pub const ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `X-Sdk-Date`'s format.
pub const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, ENCODE_SET).to_string()
}

/// The canonical URI: each (decoded) path segment encoded, joined by `/`, always ending in `/`.
pub fn canonical_uri(segments: &[&str]) -> String {
    let mut uri = String::with_capacity(128);
    for segment in segments {
        uri.push('/');
        uri.push_str(&encode(segment));
    }
    uri.push('/');
    uri
}

/// The canonical query, which is also the query string actually sent: pairs encoded, sorted
/// by key then value, `key=value` joined by `&`.
pub fn canonical_query(pairs: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> =
        pairs.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The parts of a request that the signature covers.
#[derive(Clone, Debug)]
pub struct SigningInput<'a> {
    pub method: &'a str,
    /// Decoded path segments, e.g. `["autopilot", "cam", "v3", ...]`.
    pub path_segments: &'a [&'a str],
    /// Decoded query pairs in any order.
    pub query: &'a [(&'a str, &'a str)],
    /// Every header to be sent, `Host` and `X-Sdk-Date` included, in any case.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// Each step of a signature, for tests and for the simulator's diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signed_headers: String,
    /// Lowercase hex HMAC-SHA256.
    pub signature: String,
}

impl Signed {
    pub fn authorization(&self, access_key: &str) -> String {
        format!(
            "{ALGORITHM} Access={access_key}, SignedHeaders={}, Signature={}",
            self.signed_headers, self.signature
        )
    }
}

/// Signs `input` with the secret key. `date` must be the `X-Sdk-Date` header's value.
pub fn sign(input: &SigningInput<'_>, date: &str, secret_key: &[u8]) -> Signed {
    let mut headers: Vec<(String, &str)> = input
        .headers
        .iter()
        .filter(|(name, _)| !name.contains('_'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim()))
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut canonical_headers = String::new();
    for (name, value) in &headers {
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(value);
        canonical_headers.push('\n');
    }
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method,
        canonical_uri(input.path_segments),
        canonical_query(input.query),
        canonical_headers,
        signed_headers,
        hex::encode(Sha256::digest(input.body)),
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{date}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret_key).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    Signed {
        canonical_request,
        string_to_sign,
        signed_headers,
        signature,
    }
}

/// An `Authorization` header's three parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access_key: &'a str,
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

/// Reads `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`.
pub fn parse_authorization(header: &str) -> Option<Authorization<'_>> {
    let rest = header.strip_prefix(ALGORITHM)?.trim_start();
    let (mut access_key, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        match key {
            "Access" => access_key = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => return None,
        }
    }
    Some(Authorization {
        access_key: access_key?,
        signed_headers: signed_headers?,
        signature: signature?,
    })
}

/// Constant-time comparison of two signatures.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
