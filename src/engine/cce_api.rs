//! The real client behind the engine's [`ReleaseApi`]: the plan's cluster lent to the client as
//! its own [`ClusterAddress`], borrowed, so that a request costs no copy of it.

use crate::cce::address::ClusterAddress;
use crate::cce::client::Client;
use crate::cce::error::ApiError;
use crate::cce::model::{Chart, Release, UpdateReleaseBody};
use crate::engine::api::{ReleaseAddress, ReleaseApi};
use crate::plan::resolved::ClusterTarget;

impl<'a> From<&'a ClusterTarget> for ClusterAddress<'a> {
    fn from(cluster: &'a ClusterTarget) -> Self {
        ClusterAddress {
            name: &cluster.name,
            id: &cluster.id,
            endpoint: &cluster.endpoint,
            project_id: cluster.project_id.as_deref(),
        }
    }
}

impl ReleaseApi for Client {
    async fn update_release(
        &self,
        at: ReleaseAddress<'_>,
        body: &UpdateReleaseBody,
    ) -> Result<Release, ApiError> {
        Client::update_release(self, at.cluster.into(), at.namespace, at.name, body).await
    }

    async fn show_release(&self, at: ReleaseAddress<'_>) -> Result<Release, ApiError> {
        Client::show_release(self, at.cluster.into(), at.namespace, at.name, false).await
    }

    async fn release_history(&self, at: ReleaseAddress<'_>) -> Result<Vec<Release>, ApiError> {
        Client::release_history(self, at.cluster.into(), at.namespace, at.name).await
    }

    async fn show_chart(&self, cluster: &ClusterTarget, chart_id: &str) -> Result<Chart, ApiError> {
        Client::show_chart(self, cluster.into(), chart_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_lent_to_the_client_field_by_field() {
        let cluster = ClusterTarget {
            name: "prod-a".into(),
            id: "a870253f-5dc7-11ee-bf71-0255ac100b03".into(),
            labels: Default::default(),
            region: "cn-north-4".into(),
            endpoint: "https://cce.cn-north-4.myhuaweicloud.com".into(),
            iam_endpoint: None,
            project_id: Some("p1".into()),
        };
        let address = ClusterAddress::from(&cluster);
        assert_eq!(
            address,
            ClusterAddress {
                name: "prod-a",
                id: "a870253f-5dc7-11ee-bf71-0255ac100b03",
                endpoint: "https://cce.cn-north-4.myhuaweicloud.com",
                project_id: Some("p1"),
            }
        );
        assert!(
            std::ptr::eq(address.id, cluster.id.as_str()),
            "borrowed, not copied"
        );
        let without_project = ClusterTarget {
            project_id: None,
            ..cluster.clone()
        };
        assert_eq!(ClusterAddress::from(&without_project).project_id, None);
    }
}
