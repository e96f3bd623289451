//! Network and credential flags shared by the commands that call the API (`apply`, `plan --diff`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use super::error::Error;
use crate::cce::credentials::CredentialSources;
use crate::cce::endpoint::{ClientConfig, check_endpoint};
use crate::plan::resolved::ExpandedPlan;

/// Flags flattened into every command that sends requests.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct NetworkArgs {
    /// Send every request to this base URL instead of the plan's endpoints (a private
    /// endpoint, a new region, a local simulator).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Ask this IAM base URL for a region's project id when the credentials are AK/SK without
    /// one (overrides the plan's iam_endpoint, HUAWEICLOUD_SDK_IAM_ENDPOINT and the region's).
    #[arg(long, value_name = "URL")]
    pub iam_endpoint: Option<String>,
    /// Authenticate with the IAM token in this file (sent as X-Auth-Token); overrides the
    /// environment and the profile file.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Trust the CA certificates in this PEM file besides the platform's.
    #[arg(long, value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,
    /// Allow plain http:// to hosts other than loopback (never do this over a network you
    /// do not control: signatures and tokens travel in clear).
    #[arg(long)]
    pub allow_insecure_http: bool,
}

/// How long connecting may take, at most (and never longer than a whole request).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl NetworkArgs {
    /// Refuses a malformed `--endpoint` or `--iam-endpoint`, or `http://` beyond loopback without
    /// `--allow-insecure-http`. Call before anything is sent.
    pub fn check(&self) -> Result<(), Error> {
        for (flag, url) in [
            ("--endpoint", &self.endpoint),
            ("--iam-endpoint", &self.iam_endpoint),
        ] {
            if let Some(url) = url {
                check_endpoint(url, self.allow_insecure_http).map_err(|source| {
                    Error::Endpoint {
                        context: flag.to_owned(),
                        source,
                    }
                })?;
            }
        }
        Ok(())
    }

    /// `--endpoint` without a trailing `/`, to replace every cluster's endpoint.
    pub fn endpoint_override(&self) -> Option<&str> {
        self.endpoint.as_deref().map(|e| e.trim_end_matches('/'))
    }

    /// Points every cluster of `plan` at `--endpoint` (when given), then refuses any endpoint
    /// that is malformed, or plain `http://` beyond loopback without `--allow-insecure-http`.
    /// Call before anything is sent.
    pub fn retarget(&self, plan: &mut ExpandedPlan) -> Result<(), Error> {
        self.check()?;
        if let Some(endpoint) = self.endpoint_override() {
            plan.retarget(endpoint);
        }
        let mut checked = HashSet::new();
        for op in plan.operations() {
            if checked.insert(op.cluster.endpoint.as_str()) {
                check_endpoint(&op.cluster.endpoint, self.allow_insecure_http).map_err(
                    |source| Error::Endpoint {
                        context: format!("cluster {}", op.cluster.name),
                        source,
                    },
                )?;
            }
        }
        Ok(())
    }

    /// The client's settings for a run of `plan`: its rollout's request time-out, a keep-alive
    /// pool as large as its concurrency, and TLS only if an endpoint needs it (`iam_https`: an
    /// IAM endpoint asked for a project id does).
    pub fn client_config(&self, plan: &ExpandedPlan, iam_https: bool) -> ClientConfig {
        let rollout = &plan.rollout;
        ClientConfig {
            https: iam_https
                || plan
                    .operations()
                    .any(|op| !op.cluster.endpoint.starts_with("http://")),
            request_timeout: rollout.request_timeout,
            connect_timeout: CONNECT_TIMEOUT.min(rollout.request_timeout),
            max_idle_per_host: rollout.concurrency.max(1),
            ca_cert: self.ca_cert.clone(),
            allow_insecure_http: self.allow_insecure_http,
            clock: None,
        }
    }

    /// Where credentials are looked for: `--token-file`, the process environment, the
    /// SDK's profile file.
    pub fn credential_sources(&self) -> CredentialSources {
        CredentialSources::from_process(self.token_file.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Harness {
        #[command(flatten)]
        net: NetworkArgs,
    }

    #[test]
    fn flags_parse_and_feed_the_client_config() {
        let h = Harness::try_parse_from([
            "x",
            "--endpoint",
            "http://127.0.0.1:8080/",
            "--token-file",
            "/tmp/t",
            "--ca-cert",
            "/tmp/ca.pem",
        ])
        .unwrap();
        assert!(h.net.check().is_ok());
        assert_eq!(h.net.endpoint_override(), Some("http://127.0.0.1:8080"));
        let mut plan = crate::plan::load_source(
            std::path::Path::new("p.yaml"),
            concat!(
                "version: 1\ntarget: { region: cn-north-4 }\n",
                "clusters: { c: { id: 0f6b1c2e-5dc7-11ee-bf71-0255ac100b03 } }\n",
                "rollout: { concurrency: 40, request_timeout: 5s }\n",
                "releases: [ { name: web, namespace: shop, clusters: [c],\n",
                "  chart_id: af4b699e-018c-11ec-b8b0-0255ac100b05 } ]\n",
            )
            .as_bytes(),
            &|_| None,
        )
        .unwrap();
        let config = h.net.client_config(&plan, false);
        assert_eq!(config.max_idle_per_host, 40);
        assert_eq!(config.request_timeout, Duration::from_secs(5));
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.ca_cert, Some(PathBuf::from("/tmp/ca.pem")));
        assert!(config.https, "the region's endpoint is https");
        h.net.retarget(&mut plan).unwrap();
        assert!(
            !h.net.client_config(&plan, false).https,
            "every endpoint is http"
        );
        assert!(h.net.client_config(&plan, true).https, "IAM is https");
        assert_eq!(
            h.net.credential_sources().token_file,
            Some(PathBuf::from("/tmp/t"))
        );
    }

    #[test]
    fn insecure_endpoint_is_a_usage_error_unless_allowed() {
        let h = Harness::try_parse_from(["x", "--endpoint", "http://sim.example.com"]).unwrap();
        let err = h.net.check().unwrap_err();
        assert_eq!(err.exit(), crate::error::Exit::Invalid);
        assert!(err.to_string().contains("--allow-insecure-http"), "{err}");
        let h = Harness::try_parse_from([
            "x",
            "--endpoint",
            "http://sim.example.com",
            "--allow-insecure-http",
        ])
        .unwrap();
        assert!(h.net.check().is_ok());
    }

    #[test]
    fn missing_credentials_are_invalid_input_with_the_resolvers_message() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = CredentialSources::from_map(None, Default::default());
        sources.profile_file = Some(dir.path().join("nothing-here"));
        let resolved = crate::cce::credentials::resolve(&sources).unwrap_err();
        let resolver_message = resolved.to_string();
        let as_cli: Error = resolved.into();
        assert_eq!(as_cli.exit(), crate::error::Exit::Invalid);
        assert_eq!(
            as_cli.to_string(),
            format!("credentials: {resolver_message}")
        );
    }
}
