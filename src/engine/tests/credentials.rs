//! A refusal of the credentials (401, or 403 with a gateway authorization code) stops the run at
//! the first one: nothing more is sent to that endpoint, no new operation starts anywhere, and
//! the verdict is `CredentialsRefused`.

use super::*;
use crate::cce::error::CredentialFailure;
use crate::engine::preview::{Preview, preview};
use tokio_util::sync::CancellationToken;

/// Calls sent to the clusters of `region` (the fake names clusters `id-<name>`).
fn calls_to(api: &FakeApi, clusters: &[Arc<ClusterTarget>]) -> usize {
    api.calls()
        .iter()
        .filter(|call| clusters.iter().any(|c| c.id == call.cluster_id))
        .count()
}

fn refused_skips(report: &RunReport) -> usize {
    report
        .results
        .iter()
        .filter(|r| {
            r.outcome == Outcome::Skipped
                && r.skip_reason
                    .as_deref()
                    .is_some_and(|reason| reason.contains("HTTP 401 APIG.0301"))
        })
        .count()
}

#[tokio::test(start_paused = true)]
async fn the_first_401_stops_every_request_to_its_endpoint_and_the_run() {
    // 20 releases on 4 clusters of one region: 8 could start at once, and a 10% budget would
    // allow 2 failures; the first preflight's 401 is the only request sent.
    let clusters: Vec<_> = (0..4).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut r = rollout();
    r.max_failures = FailureBudget::Percent(10.0);
    let p = plan(r, vec![ops_on(&clusters, 5, "v2")]);
    let api = FakeApi::new();
    api.seed(&p);
    api.script(&clusters[0].id, "app-0", |s| {
        s.get_faults.push_back(Fault::Http(401, "APIG.0301"));
    });
    let (report, events) = run_plan(&p, api.clone(), EngineOptions::default()).await;

    assert_eq!(api.calls().len(), 1, "{:#?}", api.calls());
    let first = &report.results[0];
    assert_eq!(first.outcome, Outcome::Failed);
    assert_eq!(first.attempts.len(), 1, "a 401 is not retried");
    assert_eq!(refused_skips(&report), 19, "{:#?}", report.results);
    for skipped in &report.results[1..] {
        assert!(skipped.attempts.is_empty() && skipped.polls == 0 && !skipped.put_sent);
    }
    let refusal = report.credentials_refused.as_ref().unwrap();
    assert_eq!(refusal.endpoint, "https://cce.r1.example");
    assert_eq!(refusal.failure, CredentialFailure::Authentication);
    assert_eq!(refusal.code.as_deref(), Some("APIG.0301"));
    assert_eq!(report.verdict(), Verdict::CredentialsRefused);
    assert!(
        report
            .halted
            .as_deref()
            .unwrap()
            .contains("refused the credentials (HTTP 401 APIG.0301)"),
        "{:?}",
        report.halted
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::CredentialsRefused(_)))
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn other_endpoints_finish_what_is_in_flight_and_start_nothing_new() {
    let east = cluster("east", "r1");
    let west = cluster("west", "r2");
    let mut ops = Vec::new();
    for i in 0..3 {
        ops.push((east.clone(), format!("app-{i}"), "v2"));
        ops.push((west.clone(), format!("app-{i}"), "v2"));
    }
    let mut r = rollout();
    r.concurrency = 2;
    // A later wave on the other endpoint must not run either.
    let p = plan(r, vec![ops, vec![(west.clone(), "app-9".to_owned(), "v2")]]);
    let api = FakeApi::new();
    api.seed(&p);
    api.script(&east.id, "app-0", |s| {
        s.get_faults.push_back(Fault::Http(401, "APIG.0301"));
    });
    let (report, events) = run_plan(&p, api.clone(), EngineOptions::default()).await;

    assert_eq!(calls_to(&api, std::slice::from_ref(&east)), 1);
    let outcomes: Vec<Outcome> = report.results.iter().map(|r| r.outcome).collect();
    use Outcome::*;
    // east/app-0 refused; west/app-0 was in flight and finished; the rest never started.
    assert_eq!(
        outcomes,
        [
            Failed, Succeeded, Skipped, Skipped, Skipped, Skipped, Skipped
        ]
    );
    assert_eq!(report.results[1].cluster_name, "west");
    assert_eq!(report.verdict(), Verdict::CredentialsRefused);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::WaveStarted { wave: 1, .. }))
    );
}

#[tokio::test(start_paused = true)]
async fn without_preflight_the_first_put_is_the_probe_and_the_only_request() {
    let (c, p, api) = seeded_with(no_preflight_no_wait(), 6, "v2");
    api.script(&c.id, "app-0", |s| {
        s.put_faults.push_back(Fault::Http(401, "APIG.0301"));
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(api.calls().len(), 1);
    assert_eq!(api.puts().len(), 1);
    assert_eq!(report.results[0].outcome, Outcome::Failed);
    assert_eq!(refused_skips(&report), 5);
    assert_eq!(report.verdict(), Verdict::CredentialsRefused);
}

#[tokio::test(start_paused = true)]
async fn a_403_with_a_gateway_authorization_code_stops_the_run_too() {
    let (c, p, api) = seeded_on_one_cluster(4);
    api.script(&c.id, "app-0", |s| {
        s.get_faults.push_back(Fault::Http(403, "APIG.0302"));
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(api.calls().len(), 1);
    let refusal = report.credentials_refused.as_ref().unwrap();
    assert_eq!(refusal.failure, CredentialFailure::Authorization);
    assert_eq!(report.verdict(), Verdict::CredentialsRefused);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_mid_run_stops_an_operation_whose_put_was_sent_as_cancelled() {
    // The token expires mid-run: app-0's PUT is accepted (and opens the gate), app-1's is
    // refused while app-0 waits for its release to settle. app-0 stops before its next poll,
    // cancelled (its PUT may have landed: a resume reconciles it), and app-2 never starts.
    let mut r = no_preflight_no_wait();
    r.wait.enabled = true;
    r.concurrency = 2;
    r.per_cluster = 2;
    let (c, p, api) = seeded_with(r, 3, "v2");
    api.script(&c.id, "app-1", |s| {
        s.put_faults.push_back(Fault::Http(401, "APIG.0307"));
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let [first, second, third] = &report.results[..] else {
        panic!("{:#?}", report.results);
    };
    assert_eq!(first.outcome, Outcome::Cancelled, "{first:#?}");
    assert!(first.put_sent);
    assert!(
        first
            .skip_reason
            .as_deref()
            .unwrap()
            .contains("stopped after its PUT"),
        "{first:#?}"
    );
    assert_eq!(second.outcome, Outcome::Failed);
    assert_eq!(third.outcome, Outcome::Skipped);
    assert!(!api.calls().iter().any(|call| call.release == "app-2"));
    // After the refusal, nothing: app-0's PUT and app-1's refused PUT are the last two calls.
    let calls = api.calls();
    assert_eq!(calls.last().unwrap().release, "app-1");
    assert_eq!(report.verdict(), Verdict::CredentialsRefused);
}

#[tokio::test(start_paused = true)]
async fn a_cut_first_request_does_not_halt_the_run() {
    // The first preflight is cut before it reaches the service: it proves nothing about the
    // credentials, so the run goes on (that the next request then probes is the gate's own
    // unit test, `a_failure_that_proves_nothing_lets_the_next_request_probe`).
    let (c, p, api) = seeded_on_one_cluster(3);
    api.script(&c.id, "app-0", |s| {
        s.get_faults.push_back(Fault::ResetBeforeApply);
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    assert!(report.credentials_refused.is_none());
    assert_eq!(report.verdict(), Verdict::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn plan_diff_reads_stop_at_the_first_refusal() {
    let (c, p, api) = seeded_on_one_cluster(5);
    api.script(&c.id, "app-0", |s| {
        s.get_faults.push_back(Fault::Http(401, "APIG.0301"));
    });
    let read = preview(&p, &*api, &CancellationToken::new()).await;
    assert_eq!(api.calls().len(), 1);
    assert!(matches!(read.previews[0], Preview::Unreadable(_)));
    assert!(
        read.previews[1..]
            .iter()
            .all(|preview| *preview == Preview::NotRead),
        "{:#?}",
        read.previews
    );
    assert_eq!(
        read.credentials_refused.unwrap().endpoint,
        "https://cce.r1.example"
    );
}
