//! Where requests go and over what: checking an endpoint (the loopback rule for plain
//! `http://`), endpoints parsed once and the URLs built from them, and the one HTTP client's
//! set-up (time-outs, keep-alive pool, TLS and extra CA certificates) from [`ClientConfig`].

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use crate::cce::error::{ApiError, FailureKind};
use crate::cce::sign;
use crate::cce::transport::error_chain;

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
pub(super) fn shown_url(url: &str) -> String {
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

/// The one shared HTTP client `config` describes. Nothing is sent.
pub(super) fn http_client(config: &ClientConfig) -> Result<reqwest::Client, ClientError> {
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
    builder.build().map_err(|e| match &config.ca_cert {
        // Its certificates are parsed here: a PEM with a bad body is this file's fault.
        Some(path) => ClientError::CaCert {
            path: path.clone(),
            reason: error_chain(&e),
        },
        None => ClientError::Build(error_chain(&e)),
    })
}

/// An endpoint parsed and checked once per client: what every request to it starts from.
pub(super) struct Endpoint {
    /// With the base path, if any.
    pub(super) url: Url,
    /// `host[:port]`, the port only when the URL names a non-default one (as `Host` is sent).
    pub(super) host: String,
    /// The URL's path without its trailing `/`: a private gateway's prefix, or empty.
    base_path: String,
    /// The base path as the canonical URI starts: segments decoded and re-encoded, as the
    /// gateway does.
    canonical_base: String,
}

impl Endpoint {
    pub(super) fn parse(endpoint: &str, allow_insecure_http: bool) -> Result<Endpoint, ApiError> {
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
pub(super) struct Target {
    pub(super) url: Url,
    pub(super) endpoint: Arc<Endpoint>,
    pub(super) canonical_uri: String,
}

impl Target {
    /// `path` is already percent-encoded and `query` already canonical.
    pub(super) fn new(endpoint: Arc<Endpoint>, path: &str, query: &str) -> Target {
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
