//! The headers of a request: content type, project id, and authentication, either an IAM
//! token or an `SDK-HMAC-SHA256` signature over exactly what is sent; and those of IAM's
//! project lookup, which carries neither content type nor project id.

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::cce::credentials::Credentials;
use crate::cce::endpoint::Target;
use crate::cce::error::{ApiError, FailureKind};
use crate::cce::sign;

const CONTENT_TYPE_JSON: &str = "application/json";

/// The headers sent, `Authorization` included, signed over exactly what is sent. The
/// cluster's project id wins over the credentials' one; `now` is read only to sign.
pub(super) fn request_headers(
    credentials: &Credentials,
    now: impl FnOnce() -> jiff::Timestamp,
    method: &Method,
    cluster_project_id: Option<&str>,
    target: &Target,
    query: &str,
    body: &[u8],
) -> Result<HeaderMap, ApiError> {
    let project_id = cluster_project_id.or_else(|| credentials.project_id());
    signed_headers(
        credentials,
        now,
        method,
        Some(CONTENT_TYPE_JSON),
        project_id,
        target,
        query,
        body,
    )
}

/// The headers of IAM's `GET /v3/projects?name=…`, as the SDKs send it: signed with the same
/// credentials, with neither `Content-Type` nor `X-Project-Id` (Go:
/// `core/auth/internal/iam_helper.go`, `GetKeystoneListProjectsRequest`, and
/// `core/auth/base_credentials.go`, `baseProcessAuthRequest`; Python:
/// `huaweicloudsdkcore/auth/internal.py`, `IamHelper.get_keystone_list_projects_request`).
pub(super) fn iam_headers(
    credentials: &Credentials,
    now: impl FnOnce() -> jiff::Timestamp,
    target: &Target,
    query: &str,
) -> Result<HeaderMap, ApiError> {
    signed_headers(
        credentials,
        now,
        &Method::GET,
        None,
        None,
        target,
        query,
        &[],
    )
}

#[expect(
    clippy::too_many_arguments,
    reason = "each is one part of what is signed; a struct would only rename them"
)]
fn signed_headers(
    credentials: &Credentials,
    now: impl FnOnce() -> jiff::Timestamp,
    method: &Method,
    content_type: Option<&'static str>,
    project_id: Option<&str>,
    target: &Target,
    query: &str,
    body: &[u8],
) -> Result<HeaderMap, ApiError> {
    let mut headers = HeaderMap::with_capacity(6);
    if let Some(content_type) = content_type {
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
    }
    if let Some(project_id) = project_id {
        headers.insert(
            HeaderName::from_static("x-project-id"),
            header_value(project_id, "the project id")?,
        );
    }
    match credentials {
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
            let date = sign::sdk_date(now());
            // Sorted by name: content-type, host, x-project-id, x-sdk-date, x-security-token.
            let mut signed: [(&str, &str); 5] = [("", ""); 5];
            let mut n = 0;
            for (name, value) in [
                ("content-type", content_type),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cce::endpoint::Endpoint;
    use crate::secret::Secret;

    fn target(query: &str) -> Target {
        let endpoint = Endpoint::parse("https://iam.cn-north-4.myhuaweicloud.com", false).unwrap();
        Target::new(Arc::new(endpoint), "/v3/projects", query)
    }

    fn signed_header_names(headers: &HeaderMap) -> String {
        let authorization = headers
            .get(reqwest::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap();
        sign::parse_authorization(authorization)
            .unwrap()
            .signed_headers
            .to_owned()
    }

    #[test]
    fn iams_project_lookup_carries_no_content_type_and_no_project_id() {
        let now = || "2024-01-01T00:00:00Z".parse().unwrap();
        let credentials = Credentials::AkSk {
            access_key: Secret::new("AK"),
            secret_key: Secret::new("SK"),
            security_token: Some(Secret::new("ST")),
            project_id: Some("would-be-wrong-here".into()),
        };
        let query = sign::canonical_query(&[("name", "cn-north-4")]);
        let iam = iam_headers(&credentials, now, &target(&query), &query).unwrap();
        assert!(iam.get(reqwest::header::CONTENT_TYPE).is_none());
        assert!(iam.get("x-project-id").is_none());
        assert_eq!(
            signed_header_names(&iam),
            "host;x-sdk-date;x-security-token"
        );
        assert_eq!(iam.get("x-sdk-date").unwrap(), "20240101T000000Z");

        let api =
            request_headers(&credentials, now, &Method::GET, None, &target(""), "", &[]).unwrap();
        assert_eq!(
            signed_header_names(&api),
            "content-type;host;x-project-id;x-sdk-date;x-security-token",
            "the release API's requests keep theirs"
        );
    }
}
