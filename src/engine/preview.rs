//! What `apply` would do to each release, without changing anything: every operation's release
//! is read and judged by the same code as `apply`'s preflight (the same reads, pacing, retries
//! and convergence decision), and only GETs are sent. The first refusal of the credentials
//! stops it as it stops `apply`: nothing more is read.

use std::collections::HashMap;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::api::ReleaseApi;
use super::charts::ChartCache;
use super::converge::Assessment;
use super::gate::{FirstRefusal, Gate};
use super::operation::{Context, OperationRun};
use super::outcome::CredentialRefusal;
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
    /// `release_version: previous` or `-N` names no revision this release has, or its history
    /// could not be read; why, with the service's code and request id when it answered.
    Unresolved(super::outcome::OperationError),
    /// The release does not exist (404): `apply` would fail this operation.
    Missing(ApiError),
    /// The release could not be read, retries included.
    Unreadable(ApiError),
    /// `cancel` fired before the release was read.
    Cancelled,
    /// Not read: an endpoint refused the credentials first (see
    /// [`Previews::credentials_refused`]).
    NotRead,
}

/// Every operation's preview, in plan order, and why reading stopped early if it did.
#[derive(Clone, Debug, PartialEq)]
pub struct Previews {
    pub previews: Vec<Preview>,
    /// The first refusal of the credentials: once it came, no new read started on any
    /// endpoint (those in flight elsewhere finished).
    pub credentials_refused: Option<CredentialRefusal>,
}

/// Reads and judges every operation of `plan`, `rollout.concurrency` at a time, each endpoint
/// paced by the plan's rate and behind its credential gate; answers come back in plan order.
pub async fn preview<A: ReleaseApi>(
    plan: &ExpandedPlan,
    api: &A,
    cancel: &CancellationToken,
) -> Previews {
    let run_start = Instant::now();
    let rollout = &plan.rollout;
    let first_refusal = FirstRefusal::default();
    let mut endpoints: HashMap<&str, (Pacer, Gate)> = HashMap::new();
    for op in plan.operations() {
        let endpoint = op.cluster.endpoint.as_str();
        endpoints.entry(endpoint).or_insert_with(|| {
            (
                Pacer::new(rollout.rate, rollout.burst, run_start),
                Gate::new(endpoint, cancel, &first_refusal),
            )
        });
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
    let endpoints = &endpoints;
    let first = &first_refusal;
    let previews = futures::stream::iter(plan.operations())
        .map(|op| async move {
            if first.get().is_some() {
                return Preview::NotRead;
            }
            let (pacer, gate) = &endpoints[op.cluster.endpoint.as_str()];
            let preview = OperationRun::new(ctx, op, &op.body, pacer, gate)
                .preview()
                .await;
            match preview {
                // Stopped by a refusal (its own endpoint's or another's), not by `cancel`.
                Preview::Cancelled if first.get().is_some() && !cancel.is_cancelled() => {
                    Preview::NotRead
                }
                preview => preview,
            }
        })
        .buffered(rollout.concurrency.max(1))
        .collect()
        .await;
    Previews {
        previews,
        credentials_refused: first_refusal.get().cloned(),
    }
}
