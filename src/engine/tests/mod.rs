//! The engine against the fake API (the simulator's store behind scripted faults and a call
//! log), under paused tokio time, by theme; the helpers they share are here.

mod answers;
mod convergence;
mod credentials;
mod operation;
mod pacing;
mod preview;
mod reconcile;
mod relative;
mod resume;
mod scheduling;
mod settling;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::fake::{
    AnswerEdit, Bucket, FAKE_CHART_ID, FakeApi, Fault, cluster, image_tag, pending_revision, plan,
    rollout, run_plan,
};
use super::*;
use crate::cce::model::{Action, Chart, ReleaseParameters, ReleaseStatus, UpdateReleaseBody};
use crate::plan::resolved::{ClusterTarget, ExpandedPlan, FailureBudget, Rate, Rollout};
use crate::sim::RevisionSnapshot;

type Ops = Vec<(Arc<ClusterTarget>, String, &'static str)>;

/// `per_cluster` releases on each cluster, in plan order cluster by cluster.
fn ops_on(clusters: &[Arc<ClusterTarget>], per_cluster: usize, tag: &'static str) -> Ops {
    let mut ops = Vec::new();
    for c in clusters {
        for i in 0..per_cluster {
            ops.push((c.clone(), format!("app-{i}"), tag));
        }
    }
    ops
}

type Seeded = (Arc<ClusterTarget>, ExpandedPlan, Arc<FakeApi>);

/// `releases` releases on one cluster, tagged `v2`, with the default rollout, and a fake API
/// seeded with them.
fn seeded_on_one_cluster(releases: usize) -> Seeded {
    seeded_with(rollout(), releases, "v2")
}

/// `releases` releases on one cluster, tagged `tag`, under `rollout`, and a fake API seeded with
/// them.
fn seeded_with(rollout: Rollout, releases: usize, tag: &'static str) -> Seeded {
    let c = cluster("a", "r1");
    let p = plan(
        rollout,
        vec![ops_on(std::slice::from_ref(&c), releases, tag)],
    );
    let api = FakeApi::new();
    api.seed(&p);
    (c, p, api)
}

/// The default rollout without preflight and without waiting.
fn no_preflight_no_wait() -> Rollout {
    let mut r = rollout();
    r.preflight = false;
    r.wait.enabled = false;
    r
}

fn ok(report: &RunReport) {
    for r in &report.results {
        assert_eq!(r.outcome, Outcome::Succeeded, "{r:#?}");
    }
}

/// Two releases on one cluster, preflight and wait off; new revisions settle at once, so that
/// only a release's content can tell whether a change landed.
fn two_releases_without_preflight() -> (Arc<ClusterTarget>, ExpandedPlan, Arc<FakeApi>) {
    let seeded = seeded_with(no_preflight_no_wait(), 2, "v2");
    seeded.2.lock().store.set_settle(Duration::ZERO);
    seeded
}
