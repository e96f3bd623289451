//! Every cluster's project id before the first release request: which clusters need one found
//! through IAM, at which IAM endpoint (checked like any endpoint), the lookup once per region,
//! and where each cluster's project id came from, as `flotilla plan` shows it.

use std::collections::HashMap;

use super::error::Error;
use crate::cce::client::Client;
use crate::cce::credentials::{Credentials, ProjectIdOrigin};
use crate::cce::endpoint::check_endpoint;
use crate::cce::iam::{self, ENV_IAM_ENDPOINT, IamEndpointFrom, project_id_source};
use crate::plan::resolved::{ClusterTarget, ExpandedPlan};
use crate::report::plan::ClusterProjectId;

/// One region's lookup: where IAM is asked, and for which clusters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IamLookup {
    pub region: String,
    pub iam_endpoint: String,
    pub from: IamEndpointFrom,
    /// The clusters that take its answer, in plan order.
    pub clusters: Vec<String>,
}

/// Where IAM endpoints may be set besides the plan.
#[derive(Clone, Debug, Default)]
pub struct IamOverrides {
    /// `--iam-endpoint`, or the simulator's address under `--simulate`.
    pub flag: Option<String>,
    /// `HUAWEICLOUD_SDK_IAM_ENDPOINT`.
    pub environment: Option<String>,
}

impl IamOverrides {
    /// `flag` and the process environment's `HUAWEICLOUD_SDK_IAM_ENDPOINT`.
    pub fn from_process(flag: Option<&str>) -> Self {
        IamOverrides {
            flag: flag.map(str::to_owned),
            environment: std::env::var(ENV_IAM_ENDPOINT).ok(),
        }
    }

    fn endpoint_for(&self, cluster: &ClusterTarget) -> (String, IamEndpointFrom) {
        iam::choose_iam_endpoint(
            self.flag.as_deref(),
            cluster.iam_endpoint.as_deref(),
            self.environment.as_deref(),
            &cluster.region,
        )
    }
}

/// The lookups `plan` needs with `credentials`: one per (region, IAM endpoint) whose clusters
/// have no project id of their own, in plan order; none when the credentials carry a project
/// id or are a token.
pub fn lookups(
    plan: &ExpandedPlan,
    credentials: &Credentials,
    overrides: &IamOverrides,
) -> Vec<IamLookup> {
    let mut wanted: Vec<IamLookup> = Vec::new();
    if !iam::needs_discovery(credentials) {
        return wanted;
    }
    for op in plan.operations() {
        let cluster = &op.cluster;
        if cluster.project_id.is_some() {
            continue;
        }
        let (iam_endpoint, from) = overrides.endpoint_for(cluster);
        let lookup = match wanted
            .iter_mut()
            .find(|l| l.region == cluster.region && l.iam_endpoint == iam_endpoint)
        {
            Some(lookup) => lookup,
            None => {
                wanted.push(IamLookup {
                    region: cluster.region.clone(),
                    iam_endpoint,
                    from,
                    clusters: Vec::new(),
                });
                let last = wanted.len() - 1;
                &mut wanted[last]
            }
        };
        if !lookup.clusters.contains(&cluster.name) {
            lookup.clusters.push(cluster.name.clone());
        }
    }
    wanted
}

/// Refuses an IAM endpoint that is malformed, or plain `http://` beyond loopback without
/// `--allow-insecure-http`: the API endpoints' rule. Nothing is sent.
pub fn check(lookups: &[IamLookup], allow_insecure_http: bool) -> Result<(), Error> {
    for lookup in lookups {
        check_endpoint(&lookup.iam_endpoint, allow_insecure_http).map_err(|source| {
            Error::Endpoint {
                context: format!(
                    "the IAM endpoint of region {} ({})",
                    lookup.region,
                    match lookup.from {
                        IamEndpointFrom::Flag => "--iam-endpoint",
                        IamEndpointFrom::Plan => "iam_endpoint in the plan",
                        IamEndpointFrom::Environment => ENV_IAM_ENDPOINT,
                        IamEndpointFrom::Region => "the region's",
                    }
                ),
                source,
            }
        })?;
    }
    Ok(())
}

/// Whether any lookup goes over `https` (the client then loads the trust store).
pub fn any_https(lookups: &[IamLookup]) -> bool {
    lookups
        .iter()
        .any(|l| !l.iam_endpoint.starts_with("http://"))
}

/// The lookups for the clusters that have an operation left to run (`left(index)`): a resumed
/// run whose operations of a region are all done asks nothing for it.
pub fn with_work_left(
    lookups: Vec<IamLookup>,
    left: impl Fn(usize) -> bool,
    plan: &ExpandedPlan,
) -> Vec<IamLookup> {
    lookups
        .into_iter()
        .filter_map(|mut lookup| {
            lookup.clusters.retain(|name| {
                plan.operations()
                    .any(|op| op.cluster.name == *name && left(op.index))
            });
            (!lookup.clusters.is_empty()).then_some(lookup)
        })
        .collect()
}

/// Asks IAM once per lookup, in plan order, and gives each cluster its region's project id.
/// The first failure ends it, before any release request. Returns each lookup's project id.
pub async fn discover(
    plan: &mut ExpandedPlan,
    client: &Client,
    lookups: &[IamLookup],
) -> Result<Vec<String>, Error> {
    let mut found = Vec::with_capacity(lookups.len());
    let mut of_cluster: HashMap<&str, &str> = HashMap::new();
    for lookup in lookups {
        let project_id = client
            .discover_project_id(&lookup.region, &lookup.iam_endpoint)
            .await
            .map_err(|e| Error::ProjectId(Box::new(e)))?;
        found.push(project_id);
    }
    for (lookup, project_id) in lookups.iter().zip(&found) {
        for cluster in &lookup.clusters {
            of_cluster.insert(cluster, project_id);
        }
    }
    plan.fill_project_ids(|cluster| {
        of_cluster
            .get(cluster.name.as_str())
            .map(|id| (*id).to_owned())
    });
    Ok(found)
}

/// Where each cluster of `plan` (in plan order) gets its project id. `credentials` is `None`
/// when none were found; `discovered` names the clusters whose project id IAM gave in this run.
pub fn sources(
    plan: &ExpandedPlan,
    plan_ids: &HashMap<String, bool>,
    credentials: Option<(&Credentials, Option<ProjectIdOrigin>)>,
    lookups: &[IamLookup],
    discovered: bool,
) -> Vec<ClusterProjectId> {
    let mut rows: Vec<ClusterProjectId> = Vec::new();
    for op in plan.operations() {
        let cluster = &op.cluster;
        if rows.iter().any(|r| r.cluster == cluster.name) {
            continue;
        }
        let in_plan = plan_ids.get(&cluster.name).copied().unwrap_or(false);
        let lookup = lookups.iter().find(|l| l.clusters.contains(&cluster.name));
        let source = project_id_source(in_plan, credentials, discovered && lookup.is_some());
        rows.push(ClusterProjectId {
            cluster: cluster.name.clone(),
            region: cluster.region.clone(),
            source,
            project_id: cluster
                .project_id
                .clone()
                .or_else(|| credentials.and_then(|(c, _)| c.project_id().map(str::to_owned))),
            iam_endpoint: lookup.map(|l| l.iam_endpoint.clone()),
        });
    }
    rows
}

/// Which clusters of `plan` have a project id of the plan's own (before any is found).
pub fn set_in_plan(plan: &ExpandedPlan) -> HashMap<String, bool> {
    plan.operations()
        .map(|op| (op.cluster.name.clone(), op.cluster.project_id.is_some()))
        .collect()
}

/// What a read-only command (`plan --diff`, `status`, `history`) reads with: the client, the
/// runtime it runs on, and the lookups that gave `plan` its missing project ids.
pub struct ReadConnection {
    pub client: Client,
    pub runtime: tokio::runtime::Runtime,
    pub lookups: Vec<IamLookup>,
}

/// Connects a read-only command: checks the IAM endpoints it would ask (exit 2, nothing sent),
/// builds the client and the runtime, and finds every project id IAM must give before the first
/// release read.
pub fn connect_for_reads(
    net: &super::net::NetworkArgs,
    plan: &mut ExpandedPlan,
    credentials: Credentials,
) -> Result<ReadConnection, Error> {
    let lookups = lookups(
        plan,
        &credentials,
        &IamOverrides::from_process(net.iam_endpoint.as_deref()),
    );
    check(&lookups, net.allow_insecure_http)?;
    let client = Client::new(net.client_config(plan, any_https(&lookups)), credentials)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    runtime.block_on(discover(plan, &client, &lookups))?;
    Ok(ReadConnection {
        client,
        runtime,
        lookups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn plan() -> ExpandedPlan {
        crate::plan::load_source(
            std::path::Path::new("p.yaml"),
            concat!(
                "version: 1\ntarget: { region: cn-north-4 }\n",
                "clusters:\n",
                "  a: { id: 0f6b1c2e-5dc7-11ee-bf71-0255ac100b01 }\n",
                "  b: { id: 0f6b1c2e-5dc7-11ee-bf71-0255ac100b02, project_id: pb }\n",
                "  c: { id: 0f6b1c2e-5dc7-11ee-bf71-0255ac100b03, region: cn-east-3 }\n",
                "  d: { id: 0f6b1c2e-5dc7-11ee-bf71-0255ac100b04, iam_endpoint: 'http://127.0.0.1:9/' }\n",
                "releases: [ { name: web, namespace: shop, clusters: [a, b, c, d],\n",
                "  chart_id: af4b699e-018c-11ec-b8b0-0255ac100b05 } ]\n",
            )
            .as_bytes(),
            &|_| None,
        )
        .unwrap()
    }

    fn aksk(project: Option<&str>) -> Credentials {
        Credentials::AkSk {
            access_key: Secret::new("a"),
            secret_key: Secret::new("s"),
            security_token: None,
            project_id: project.map(str::to_owned),
        }
    }

    #[test]
    fn one_lookup_per_region_and_iam_endpoint_for_clusters_without_a_project_id() {
        let found = lookups(&plan(), &aksk(None), &IamOverrides::default());
        let summary: Vec<(&str, &str, Vec<&str>)> = found
            .iter()
            .map(|l| {
                (
                    l.region.as_str(),
                    l.iam_endpoint.as_str(),
                    l.clusters.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "cn-north-4",
                    "https://iam.cn-north-4.myhuaweicloud.com",
                    vec!["a"]
                ),
                (
                    "cn-east-3",
                    "https://iam.cn-east-3.myhuaweicloud.com",
                    vec!["c"]
                ),
                ("cn-north-4", "http://127.0.0.1:9", vec!["d"]),
            ]
        );
        assert!(check(&found, false).is_ok(), "loopback http is allowed");
        let flagged = IamOverrides {
            flag: Some("http://iam.example.com".into()),
            environment: None,
        };
        let refused = check(&lookups(&plan(), &aksk(None), &flagged), false).unwrap_err();
        assert!(refused.to_string().contains("--iam-endpoint"), "{refused}");
        assert!(lookups(&plan(), &aksk(Some("p")), &IamOverrides::default()).is_empty());
        assert!(
            lookups(
                &plan(),
                &Credentials::Token(Secret::new("t")),
                &IamOverrides::default()
            )
            .is_empty()
        );
    }
}
