//! What `apply` would do to each release, without changing anything: every operation's release
//! is read and judged by the same code as `apply`'s preflight (the same reads, pacing, retries
//! and convergence decision), and only GETs are sent.

use std::collections::HashMap;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::api::ReleaseApi;
use super::charts::ChartCache;
use super::converge::Assessment;
use super::operation::{Context, OperationRun};
use super::pace::Pacer;
use crate::cce::error::ApiError;
use crate::cce::model::Release;
use crate::plan::resolved::ExpandedPlan;

/// What reading and judging one operation's release found.
#[derive(Clone, Debug, PartialEq)]
pub enum Preview {
    /// The release was read and judged against the plan.
    Judged {
        current: Box<Release>,
        assessment: Assessment,
        /// The revision `release_version: previous` or `-N` resolved to on this release.
        resolved_version: Option<i64>,
    },
    /// `release_version: previous` or `-N` names no revision this release has; why.
    Unresolved(String),
    /// The release does not exist (404): `apply` would fail this operation.
    Missing(ApiError),
    /// The release could not be read, retries included.
    Unreadable(ApiError),
    /// `cancel` fired before the release was read.
    Cancelled,
}

/// Reads and judges every operation of `plan`, `rollout.concurrency` at a time, each endpoint
/// paced by the plan's rate; answers come back in plan order.
pub async fn preview<A: ReleaseApi>(
    plan: &ExpandedPlan,
    api: &A,
    cancel: &CancellationToken,
) -> Vec<Preview> {
    let run_start = Instant::now();
    let rollout = &plan.rollout;
    let mut pacers: HashMap<&str, Pacer> = HashMap::new();
    for op in plan.operations() {
        pacers
            .entry(op.cluster.endpoint.as_str())
            .or_insert_with(|| Pacer::new(rollout.rate, rollout.burst, run_start));
    }
    // Nobody listens: a preview reports through its answers, and a send to a closed channel
    // returns at once.
    let (events, _) = mpsc::channel(1);
    let charts = ChartCache::new();
    let ctx = Context {
        api,
        rollout,
        events: &events,
        cancel,
        journal: None,
        dry_run: false,
        force: false,
        charts: &charts,
        seed: 0,
        run_start,
    };
    let ctx = &ctx;
    let pacers = &pacers;
    futures::stream::iter(plan.operations())
        .map(|op| {
            let pacer = &pacers[op.cluster.endpoint.as_str()];
            OperationRun::new(ctx, op, &op.body, pacer).preview()
        })
        .buffered(rollout.concurrency.max(1))
        .collect()
        .await
}
