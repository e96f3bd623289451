//! The engine's view of the API: the calls an operation makes, so that the engine can be
//! driven by the real client or, in unit tests under paused time, by a fake.

use std::future::Future;

use crate::cce::error::ApiError;
use crate::cce::model::{Chart, Release, UpdateReleaseBody};
use crate::plan::resolved::ClusterTarget;

/// One release's address.
#[derive(Clone, Copy, Debug)]
pub struct ReleaseAddress<'a> {
    pub cluster: &'a ClusterTarget,
    pub namespace: &'a str,
    pub name: &'a str,
}

pub trait ReleaseApi: Send + Sync + 'static {
    /// UpdateAutopilotRelease: one PUT.
    fn update_release(
        &self,
        at: ReleaseAddress<'_>,
        body: &UpdateReleaseBody,
    ) -> impl Future<Output = Result<Release, ApiError>> + Send;

    /// ShowAutopilotRelease: one GET.
    fn show_release(
        &self,
        at: ReleaseAddress<'_>,
    ) -> impl Future<Output = Result<Release, ApiError>> + Send;

    /// ShowAutopilotReleaseHistory: one GET.
    fn release_history(
        &self,
        at: ReleaseAddress<'_>,
    ) -> impl Future<Output = Result<Vec<Release>, ApiError>> + Send;

    /// ShowAutopilotChart: one GET, on `cluster`'s endpoint.
    fn show_chart(
        &self,
        cluster: &ClusterTarget,
        chart_id: &str,
    ) -> impl Future<Output = Result<Chart, ApiError>> + Send;
}
