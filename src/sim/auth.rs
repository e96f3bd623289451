//! Authentication as the API gateway does it: `SDK-HMAC-SHA256` signatures (rebuilt from the
//! received request with the project's signer) or an `X-Auth-Token`; and the credential label
//! the request log and the throttle use, which never contains the credential itself.

use hyper::HeaderMap;
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use percent_encoding::percent_decode_str;
use rand::RngExt as _;
use sha2::{Digest, Sha256};

use crate::cce::credentials::Credentials;
use crate::cce::sign::{self, CanonicalParts};
use crate::secret::Secret;

/// A fresh AK/SK pair for a rehearsal (`apply --simulate`): the simulator checks signatures
/// with it, and the client signs with the same pair as [`Credentials`]. Nothing real is used.
pub fn throwaway_credentials(rng: &mut impl rand::Rng) -> (SimAuth, Credentials) {
    let ak: String = (0..20)
        .map(|_| char::from(b'A' + rng.random_range(0..26u8)))
        .collect();
    let sk: String = (0..40)
        .map(|_| char::from_digit(rng.random_range(0..16u32), 16).unwrap_or('0'))
        .collect();
    let auth = SimAuth::AkSk {
        ak: Secret::new(ak.clone()),
        sk: Secret::new(sk.clone()),
        project_id: None,
    };
    let credentials = Credentials::AkSk {
        access_key: Secret::new(ak),
        secret_key: Secret::new(sk),
        security_token: None,
        project_id: None,
    };
    (auth, credentials)
}

/// How the simulator authenticates requests.
#[derive(Clone, Debug, Default)]
pub enum SimAuth {
    /// Every request is accepted.
    #[default]
    None,
    /// `SDK-HMAC-SHA256` signatures with this AK/SK; `X-Project-Id` must match when set.
    AkSk {
        ak: Secret,
        sk: Secret,
        project_id: Option<String>,
    },
    /// `X-Auth-Token` must equal this token.
    Token(Secret),
}

impl SimAuth {
    pub fn is_none(&self) -> bool {
        matches!(self, SimAuth::None)
    }
}

/// The most `X-Sdk-Date` may differ from the server's clock.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 15 * 60;

/// The documented message of a signature that does not verify.
pub const SIGNATURE_MISMATCH: &str =
    "Incorrect IAM authentication information: verify aksk signature fail";

/// Checks requests against the configured credentials.
#[derive(Clone, Debug)]
pub struct Authenticator {
    auth: SimAuth,
    /// A pinned "now" for the date window (tests replaying old vectors).
    clock: Option<Timestamp>,
}

/// The parts of a received request that authentication looks at.
pub struct Received<'a> {
    pub method: &'a str,
    /// The path's segments, percent-decoded ([`path_segments`]); routing decoded them first.
    pub path_segments: &'a [&'a str],
    pub raw_query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Authenticator {
    pub fn new(auth: SimAuth, clock: Option<Timestamp>) -> Self {
        Authenticator { auth, clock }
    }

    pub fn mode(&self) -> &SimAuth {
        &self.auth
    }

    /// `Ok` or the 401 message.
    pub fn verify(&self, request: &Received<'_>) -> Result<(), String> {
        match &self.auth {
            SimAuth::None => Ok(()),
            SimAuth::Token(token) => {
                let given = header(request.headers, "x-auth-token").ok_or_else(|| {
                    "Incorrect IAM authentication information: X-Auth-Token is missing".to_owned()
                })?;
                if sign::signatures_equal(given, token.expose()) {
                    Ok(())
                } else {
                    Err("Incorrect IAM authentication information: the token is invalid".into())
                }
            }
            SimAuth::AkSk { ak, sk, project_id } => {
                self.verify_signature(request, ak, sk, project_id.as_deref())
            }
        }
    }

    /// `Ok` or the 401 message, for IAM's `GET /v3/projects`: the same signature or token
    /// check, but no `X-Project-Id`, which the SDKs do not send there.
    pub fn verify_iam(&self, request: &Received<'_>) -> Result<(), String> {
        match &self.auth {
            SimAuth::AkSk { ak, sk, .. } => self.verify_signature(request, ak, sk, None),
            _ => self.verify(request),
        }
    }

    fn verify_signature(
        &self,
        request: &Received<'_>,
        ak: &Secret,
        sk: &Secret,
        project_id: Option<&str>,
    ) -> Result<(), String> {
        let unauthorized = |why: &str| format!("Incorrect IAM authentication information: {why}");
        let authorization = header(request.headers, "authorization")
            .ok_or_else(|| unauthorized("Authorization header is missing"))?;
        let parsed = sign::parse_authorization(authorization)
            .ok_or_else(|| unauthorized("Authorization header is not SDK-HMAC-SHA256"))?;
        if !sign::signatures_equal(parsed.access_key, ak.expose()) {
            return Err(unauthorized("the access key is unknown"));
        }
        let date = header(request.headers, "x-sdk-date")
            .ok_or_else(|| unauthorized("X-Sdk-Date is missing"))?;
        let signed_at = parse_sdk_date(date)
            .ok_or_else(|| unauthorized("X-Sdk-Date is not in the format yyyyMMddTHHmmssZ"))?;
        let now = self.clock.unwrap_or_else(Timestamp::now);
        if (now.as_second() - signed_at.as_second()).abs() > MAX_CLOCK_SKEW_SECONDS {
            return Err(unauthorized(
                "X-Sdk-Date is more than 15 minutes from the server's time",
            ));
        }
        if let Some(expected) = project_id {
            match header(request.headers, "x-project-id") {
                Some(given) if given == expected => {}
                _ => return Err(unauthorized("X-Project-Id does not match the credential")),
            }
        }
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(8);
        for name in parsed.signed_headers.split(';') {
            let value = header(request.headers, name)
                .ok_or_else(|| unauthorized("a signed header is missing"))?;
            headers.push((name, value));
        }
        if !sign::is_canonical_header_list(headers.iter().map(|(name, _)| *name)) {
            return Err(SIGNATURE_MISMATCH.to_owned());
        }
        let query: Vec<(String, String)> = query_pairs(request.raw_query);
        let query_refs: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let expected = sign::signature_hex(
            &CanonicalParts {
                method: request.method,
                canonical_uri: &sign::canonical_uri(request.path_segments),
                canonical_query: &sign::canonical_query(&query_refs),
                sorted_headers: &headers,
                body: request.body,
            },
            date,
            sk.expose().as_bytes(),
        );
        if sign::signatures_equal(parsed.signature, expected) {
            Ok(())
        } else {
            Err(SIGNATURE_MISMATCH.to_owned())
        }
    }
}

/// `ak:` + 8 hex of SHA-256(AK), `token:` + 8 hex of SHA-256(token), or `anonymous`: who sent a
/// request, for the request log and the per-credential throttle, without the credential.
pub fn credential_label(headers: &HeaderMap) -> String {
    if let Some(parsed) = header(headers, "authorization").and_then(sign::parse_authorization) {
        return format!("ak:{}", short_hash(parsed.access_key));
    }
    if let Some(token) = header(headers, "x-auth-token") {
        return format!("token:{}", short_hash(token));
    }
    "anonymous".to_owned()
}

fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..4])
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Reads `X-Sdk-Date` (`20240101T000000Z`), the one form the SDK writes.
pub fn parse_sdk_date(text: &str) -> Option<Timestamp> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |at: std::ops::Range<usize>| {
        bytes[at].iter().try_fold(0i16, |value, &digit| {
            digit
                .is_ascii_digit()
                .then(|| value * 10 + i16::from(digit - b'0'))
        })
    };
    let two = |at| number(at).and_then(|n| i8::try_from(n).ok());
    let civil = DateTime::new(
        number(0..4)?,
        two(4..6)?,
        two(6..8)?,
        two(9..11)?,
        two(11..13)?,
        two(13..15)?,
        0,
    )
    .ok()?;
    TimeZone::UTC.to_timestamp(civil).ok()
}

/// The decoded segments of a received path: `/a/b%20c` -> `["a", "b c"]`.
pub fn path_segments(raw_path: &str) -> Vec<String> {
    let trimmed = raw_path.strip_prefix('/').unwrap_or(raw_path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed
        .split('/')
        .map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect()
}

/// The decoded pairs of a received query: `a=1&foo=b%20ar` -> `[("a","1"), ("foo","b ar")]`.
pub fn query_pairs(raw_query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = raw_query.filter(|q| !q.is_empty()) else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode_str(key).decode_utf8_lossy().into_owned(),
                percent_decode_str(value).decode_utf8_lossy().into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throwaway_credentials_are_the_pair_the_simulator_checks_and_fresh_each_time() {
        let mut rng = rand::rng();
        let (auth, credentials) = throwaway_credentials(&mut rng);
        let (
            SimAuth::AkSk { ak, sk, project_id },
            Credentials::AkSk {
                access_key,
                secret_key,
                ..
            },
        ) = (&auth, &credentials)
        else {
            panic!("an AK/SK pair on both sides");
        };
        assert_eq!(ak.expose(), access_key.expose());
        assert_eq!(sk.expose(), secret_key.expose());
        assert_eq!((ak.expose().len(), sk.expose().len()), (20, 40));
        assert!(project_id.is_none());
        let (SimAuth::AkSk { ak: other, .. }, _) = throwaway_credentials(&mut rng) else {
            panic!("an AK/SK pair");
        };
        assert_ne!(other.expose(), ak.expose());
    }

    #[test]
    fn received_paths_and_queries_decode_into_what_was_signed() {
        assert_eq!(path_segments("/a/b%20c/"), vec!["a", "b c"]);
        assert!(path_segments("/").is_empty());
        assert_eq!(
            query_pairs(Some("a=1&foo=b%20ar&flag")),
            vec![
                ("a".into(), "1".into()),
                ("foo".into(), "b ar".into()),
                ("flag".into(), String::new())
            ]
        );
    }

    #[test]
    fn credential_labels_never_contain_the_credential() {
        let mut headers = HeaderMap::new();
        assert_eq!(credential_label(&headers), "anonymous");
        headers.insert(
            "authorization",
            "SDK-HMAC-SHA256 Access=AKEXAMPLE0000000000, SignedHeaders=host, Signature=00"
                .parse()
                .unwrap(),
        );
        let label = credential_label(&headers);
        assert!(label.starts_with("ak:") && label.len() == 11, "{label}");
        assert!(!label.contains("AKEXAMPLE"));
    }

    #[test]
    fn sdk_dates_parse_as_utc() {
        assert_eq!(
            parse_sdk_date("20240101T000000Z").unwrap().to_string(),
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(
            parse_sdk_date("20241231T235959Z").unwrap().to_string(),
            "2024-12-31T23:59:59Z"
        );
        for bad in [
            "2024-01-01",
            "20240101T000000",
            "20241301T000000Z",
            "20240230T000000Z",
            "20240101T240000Z",
            "2024010aT000000Z",
            "+2024101T000000Z",
            "20240101t000000Z",
        ] {
            assert!(parse_sdk_date(bad).is_none(), "{bad}");
        }
    }
}
