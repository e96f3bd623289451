//! Where a request goes: a cluster as the client addresses it, and the encoded paths of its
//! releases.

use crate::cce::sign;

/// A cluster as the client addresses it, borrowed from whoever describes the cluster: building
/// one per request costs no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterAddress<'a> {
    /// The cluster's name, for logs only.
    pub name: &'a str,
    /// The cluster's id, a path segment of every release call.
    pub id: &'a str,
    /// Base URL, e.g. `https://cce.cn-north-4.myhuaweicloud.com` (no trailing slash).
    pub endpoint: &'a str,
    /// Sent as `X-Project-Id`; `None` falls back to the credentials' project id.
    pub project_id: Option<&'a str>,
}

const RELEASES_ROOT: &str = "/autopilot/cam/v3/clusters/";

/// `/autopilot/cam/v3/clusters/{id}/namespace/{ns}/releases/{name}{suffix}`, segments encoded.
pub fn release_path(
    cluster: ClusterAddress<'_>,
    namespace: &str,
    name: &str,
    suffix: &str,
) -> String {
    let mut path = String::with_capacity(
        RELEASES_ROOT.len() + cluster.id.len() + namespace.len() + name.len() + 32,
    );
    path.push_str(RELEASES_ROOT);
    sign::encode_into(&mut path, cluster.id);
    path.push_str("/namespace/");
    sign::encode_into(&mut path, namespace);
    path.push_str("/releases/");
    sign::encode_into(&mut path, name);
    path.push_str(suffix);
    path
}

/// `/autopilot/cam/v3/clusters/{id}/releases`, the id encoded: every release of a cluster.
pub fn releases_path(cluster: ClusterAddress<'_>) -> String {
    let mut path = String::with_capacity(RELEASES_ROOT.len() + cluster.id.len() + 16);
    path.push_str(RELEASES_ROOT);
    sign::encode_into(&mut path, cluster.id);
    path.push_str("/releases");
    path
}
