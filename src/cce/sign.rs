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
    let mut out = String::with_capacity(s.len());
    encode_into(&mut out, s);
    out
}

/// Appends `s` percent-encoded to `out`, without an intermediate string.
pub fn encode_into(out: &mut String, s: &str) {
    for chunk in utf8_percent_encode(s, ENCODE_SET) {
        out.push_str(chunk);
    }
}

/// Writes a timestamp as `X-Sdk-Date` wants it (`20240101T000000Z`), without going through
/// `strftime`'s format parser.
pub fn sdk_date(at: jiff::Timestamp) -> String {
    let dt = jiff::tz::Offset::UTC.to_datetime(at);
    let mut out = [b'0'; 16];
    let fields: [(i32, usize, usize); 6] = [
        (i32::from(dt.year()), 0, 4),
        (i32::from(dt.month()), 4, 2),
        (i32::from(dt.day()), 6, 2),
        (i32::from(dt.hour()), 9, 2),
        (i32::from(dt.minute()), 11, 2),
        (i32::from(dt.second()), 13, 2),
    ];
    for (value, start, width) in fields {
        let mut rest = value.unsigned_abs();
        for slot in out[start..start + width].iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
    }
    out[8] = b'T';
    out[15] = b'Z';
    out.iter().map(|&b| b as char).collect()
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

/// Each step of a signature, built as strings: the reference the streaming [`signature_hex`] is
/// tested against.
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

/// A request already in canonical pieces, as the client builds it.
#[derive(Clone, Copy, Debug)]
pub struct CanonicalParts<'a> {
    pub method: &'a str,
    /// Already canonical, see [`canonical_uri`] (trailing `/` included).
    pub canonical_uri: &'a str,
    /// Already canonical, see [`canonical_query`].
    pub canonical_query: &'a str,
    /// `(lowercase name, value)` pairs sorted by name, none with `_` in its name.
    pub sorted_headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The signature of `request` as lowercase hex: the same as [`sign`]'s, computed by streaming
/// the canonical request into the hash instead of building it as a string. The client signs
/// with it and the simulator verifies with it.
pub fn signature_hex(request: &CanonicalParts<'_>, date: &str, secret_key: &[u8]) -> [u8; 64] {
    let CanonicalParts {
        method,
        canonical_uri,
        canonical_query,
        sorted_headers,
        body,
    } = *request;
    let mut hex_buf = [0u8; 64];
    let mut canonical = Sha256::new();
    for part in [method, "\n", canonical_uri, "\n", canonical_query, "\n"] {
        canonical.update(part.as_bytes());
    }
    for (name, value) in sorted_headers {
        canonical.update(name.as_bytes());
        canonical.update(b":");
        canonical.update(value.trim().as_bytes());
        canonical.update(b"\n");
    }
    canonical.update(b"\n");
    for (i, (name, _)) in sorted_headers.iter().enumerate() {
        if i > 0 {
            canonical.update(b";");
        }
        canonical.update(name.as_bytes());
    }
    canonical.update(b"\n");
    canonical.update(hex_of(&Sha256::digest(body), &mut hex_buf));

    let mut mac = Hmac::<Sha256>::new_from_slice(secret_key).expect("HMAC takes any key length");
    mac.update(ALGORITHM.as_bytes());
    mac.update(b"\n");
    mac.update(date.as_bytes());
    mac.update(b"\n");
    mac.update(hex_of(&canonical.finalize(), &mut hex_buf));
    hex_of(&mac.finalize().into_bytes(), &mut hex_buf);
    hex_buf
}

/// The client's signing path: the whole `Authorization` header value for `request`.
pub fn authorization_for(
    request: &CanonicalParts<'_>,
    date: &str,
    access_key: &str,
    secret_key: &[u8],
) -> String {
    let signature = signature_hex(request, date, secret_key);
    let signed_headers_len: usize = request
        .sorted_headers
        .iter()
        .map(|(n, _)| n.len() + 1)
        .sum();
    let mut header =
        String::with_capacity(64 + access_key.len() + signed_headers_len + signature.len());
    header.push_str(ALGORITHM);
    header.push_str(" Access=");
    header.push_str(access_key);
    header.push_str(", SignedHeaders=");
    for (i, (name, _)) in request.sorted_headers.iter().enumerate() {
        if i > 0 {
            header.push(';');
        }
        header.push_str(name);
    }
    header.push_str(", Signature=");
    // hex digits are ASCII.
    header.extend(signature.iter().map(|&b| b as char));
    header
}

/// Whether `names` is a signed-header list as [`sign`] writes one: lowercase, without `_`,
/// sorted. A signature over any other list cannot verify.
pub fn is_canonical_header_list<'a>(names: impl IntoIterator<Item = &'a str>) -> bool {
    let mut previous: Option<&str> = None;
    for name in names {
        if name.contains('_') || name.bytes().any(|b| b.is_ascii_uppercase()) {
            return false;
        }
        if previous.is_some_and(|p| p > name) {
            return false;
        }
        previous = Some(name);
    }
    true
}

/// Lowercase hex of a 32-byte digest into `buf`, returning the written part.
fn hex_of<'b>(digest: &[u8], buf: &'b mut [u8; 64]) -> &'b [u8] {
    let out = &mut buf[..digest.len() * 2];
    hex::encode_to_slice(digest, out).expect("the buffer holds a 32-byte digest");
    out
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
pub fn signatures_equal(a: impl AsRef<[u8]>, b: impl AsRef<[u8]>) -> bool {
    let (a, b) = (a.as_ref(), b.as_ref());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
