//! Pacing: the per-endpoint rate limit, and adapting to an API gateway's throttling.

use super::*;

#[tokio::test(start_paused = true)]
async fn every_request_to_an_endpoint_is_paced_gets_included() {
    let clusters: Vec<_> = (0..5).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let other = cluster("other", "r2");
    let mut r = rollout();
    r.rate = Rate::PerSecond(10.0);
    r.burst = 3;
    r.concurrency = 20;
    r.per_cluster = 4;
    let mut ops = ops_on(&clusters, 8, "v2");
    ops.extend(ops_on(std::slice::from_ref(&other), 4, "v2"));
    let p = plan(r, vec![ops]);
    let api = FakeApi::new();
    api.seed(&p);
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    let calls = api.calls();
    let mut r1: Vec<Instant> = calls
        .iter()
        .filter(|c| c.cluster_id != other.id)
        .map(|c| c.at)
        .collect();
    r1.sort();
    assert!(r1.len() > 120);
    assert!(super::pace::tests::max_in_window(&r1, Duration::from_millis(1001)) <= 13);
    let span = (*r1.last().unwrap() - r1[0]).as_secs_f64();
    let achieved = (r1.len() - 3) as f64 / span;
    assert!(achieved > 9.0, "{achieved}");
    // The other region has its own limiter: its 4 operations are not queued behind region r1.
    let other_done = calls
        .iter()
        .filter(|c| c.cluster_id == other.id)
        .map(|c| c.done.unwrap())
        .max()
        .unwrap();
    assert!(other_done < r1[0] + Duration::from_secs(15));
}

/// Runs many single-PUT operations against a token bucket at `limit` per second.
async fn against_gateway(
    limit: f64,
    message: &str,
    retry_after: Option<Duration>,
) -> (RunReport, Arc<FakeApi>) {
    let clusters: Vec<_> = (0..40).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut r = rollout();
    r.rate = Rate::PerSecond(100.0);
    r.burst = 10;
    r.concurrency = 64;
    r.per_cluster = 4;
    r.preflight = false;
    r.wait.enabled = false;
    r.retry.attempts = 20;
    let p = plan(r, vec![ops_on(&clusters, 30, "v2")]);
    let api = FakeApi::new();
    api.seed(&p);
    api.lock().default_latency = Duration::from_millis(50);
    api.lock().bucket = Some(Bucket {
        rate: limit,
        burst: 5.0,
        tokens: 5.0,
        last: Instant::now(),
        message: message.to_owned(),
        retry_after,
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    (report, api)
}

fn settled_rate(api: &FakeApi, after: Duration) -> f64 {
    let calls = api.calls();
    let start = calls[0].at + after;
    let sent: Vec<Instant> = calls
        .iter()
        .filter(|c| c.at >= start)
        .map(|c| c.at)
        .collect();
    sent.len() as f64 / (*sent.last().unwrap() - start).as_secs_f64()
}

#[tokio::test(start_paused = true)]
async fn aimd_settles_near_an_unknown_gateway_limit_with_few_429s() {
    let (report, api) = against_gateway(
        20.0,
        "The throttling threshold has been reached",
        Some(Duration::from_secs(1)),
    )
    .await;
    ok(&report);
    let calls = api.calls().len();
    let throttled = api.lock().throttled;
    assert_eq!(calls - throttled, 1200);
    assert!(
        throttled * 100 <= calls * 5,
        "{throttled} of {calls} throttled"
    );
    let rate = settled_rate(&api, Duration::from_secs(10));
    assert!(
        (15.0..=21.0).contains(&rate),
        "settled at {rate}/s against 20/s"
    );
    assert_eq!(report.summary.throttled, throttled);
}

#[tokio::test(start_paused = true)]
async fn a_stated_apig_0308_limit_is_honoured_per_minute() {
    let message = "The throttling threshold has been reached: policy user over ratelimit,limit:1200,time:1 minute";
    let (report, api) = against_gateway(20.0, message, None).await;
    ok(&report);
    let calls = api.calls().len();
    let throttled = api.lock().throttled;
    assert!(
        throttled * 100 <= calls * 3,
        "{throttled} of {calls} throttled"
    );
    let rate = settled_rate(&api, Duration::from_secs(5));
    assert!(
        (17.0..=20.0).contains(&rate),
        "settled at {rate}/s against 20/s"
    );
}
