//! `plan --diff`'s reads: each release read and judged by the preflight's code, with its retries,
//! and nothing but GETs sent.

use super::*;
use crate::engine::converge::Convergence;
use crate::engine::preview::{Preview, preview};
use tokio_util::sync::CancellationToken;

fn label(preview: &Preview) -> &'static str {
    match preview {
        Preview::Judged { assessment, .. } => assessment.decision.label().as_str(),
        Preview::Missing(_) => "missing",
        Preview::Unresolved(_) => "unresolved",
        Preview::Unreadable(_) => "unreadable",
        Preview::Cancelled => "cancelled",
        Preview::NotRead => "not read",
    }
}

#[tokio::test(start_paused = true)]
async fn each_release_is_read_retried_and_judged_in_plan_order_with_gets_only() {
    let (c, p, api) = seeded_on_one_cluster(4);
    // app-0 is already as planned; app-1 meets a 503 and a cut connection first; app-2 is gone;
    // app-3's reads fail past the retry budget.
    api.edit_release(&c.id, "app-0", |r| {
        r.history.last_mut().unwrap().values = image_tag("v2");
    });
    api.script(&c.id, "app-1", |r| {
        r.get_faults.push_back(Fault::Http(503, "APIG.0201"));
        r.get_faults.push_back(Fault::ResetBeforeApply);
    });
    api.edit_release(&c.id, "app-2", |r| r.history.clear());
    api.script(&c.id, "app-3", |r| {
        for _ in 0..p.rollout.retry.attempts {
            r.get_faults.push_back(Fault::Http(503, "APIG.0201"));
        }
    });

    let previews = preview(&p, &*api, &CancellationToken::new()).await.previews;

    let labels: Vec<&str> = previews.iter().map(label).collect();
    assert_eq!(labels, ["unchanged", "change", "missing", "unreadable"]);
    let Preview::Judged { current, .. } = &previews[1] else {
        unreachable!()
    };
    assert_eq!(
        current.version,
        Some(1),
        "the release as read, not as it would be"
    );
    let Preview::Unreadable(error) = &previews[3] else {
        unreachable!()
    };
    assert_eq!(error.status, Some(503));
    let calls = api.calls();
    assert!(calls.iter().all(|call| call.method == "GET"), "{calls:#?}");
    let reads_of = |name: &str| {
        calls
            .iter()
            .filter(|call| call.release == name && call.method == "GET")
            .count()
    };
    // A release read, and one chart lookup shared by the run; the retried read three times; the
    // read that never succeeds as often as the retry policy allows.
    assert_eq!(reads_of("app-1"), 3);
    assert_eq!(reads_of("app-3"), p.rollout.retry.attempts as usize);
    assert_eq!(labels[0], Convergence::Unchanged.as_str());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_preview_reads_nothing_more() {
    let (_, p, api) = seeded_on_one_cluster(2);
    let cancel = CancellationToken::new();
    cancel.cancel();
    let previews = preview(&p, &*api, &cancel).await.previews;
    assert!(previews.iter().all(|p| *p == Preview::Cancelled));
    assert!(api.calls().is_empty());
}
