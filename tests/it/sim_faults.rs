//! Gateway behaviour and faults: each fault at its rate over a seeded run (and the same run for
//! the same seed), what each one applies, throttling with its documented 429, and latency.

use std::time::{Duration, Instant};

use crate::sim_support::{client, fleet, release_url, send};
use flotilla::sim::{RunningSim, SimConfig, Simulator};
use futures::StreamExt;
use serde_json::json;

/// What the client saw: an HTTP status, or no answer (cut or timed out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Status(u16),
    NoAnswer,
}

async fn start(config: SimConfig) -> RunningSim {
    Simulator::start(config.with_settle(Duration::ZERO), &[&fleet()])
        .await
        .unwrap()
}

async fn run_gets(sim: &RunningSim, count: usize) -> Vec<Seen> {
    let c = client();
    let url = release_url(&sim.base_url(), "c1", "web", "frontend");
    let mut seen = Vec::with_capacity(count);
    for _ in 0..count {
        seen.push(match send(&c, reqwest::Method::GET, &url, None).await {
            Ok(reply) => Seen::Status(reply.status),
            Err(_) => Seen::NoAnswer,
        });
    }
    seen
}

fn within(count: usize, expected: usize, tolerance: usize) -> bool {
    count.abs_diff(expected) <= tolerance
}

/// 1,000 requests at rate 0.2: about 200 meet the fault, and the same seed replays exactly.
async fn seeded_run(configure: fn(SimConfig) -> SimConfig, fault: &str) -> Vec<Seen> {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sim = start(configure(SimConfig::default().with_rng_seed(42))).await;
        let seen = run_gets(&sim, 1000).await;
        let log = sim.request_log();
        let faulted = log
            .iter()
            .filter(|e| e.fault.as_deref().is_some_and(|f| f.starts_with(fault)))
            .count();
        assert!(within(faulted, 200, 50), "{fault}: {faulted} of 1000");
        runs.push(seen);
    }
    assert_eq!(
        runs[0], runs[1],
        "{fault}: the same seed replays the same faults"
    );
    let other = start(configure(SimConfig::default().with_rng_seed(43))).await;
    assert_ne!(
        run_gets(&other, 200).await,
        runs[0][..200],
        "{fault}: another seed differs"
    );
    runs.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_answers_500_502_or_503_at_its_rate() {
    let seen = seeded_run(
        |c| SimConfig {
            error_rate: 0.2,
            ..c
        },
        "error",
    )
    .await;
    let errors = seen
        .iter()
        .filter(|s| matches!(s, Seen::Status(500 | 502 | 503)))
        .count();
    assert!(within(errors, 200, 50), "{errors}");
    for status in [500, 502, 503] {
        assert!(seen.contains(&Seen::Status(status)), "{status}");
    }
    assert_eq!(
        seen.iter().filter(|s| **s == Seen::Status(200)).count(),
        1000 - errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_rate_cuts_the_connection_at_its_rate() {
    let seen = seeded_run(
        |c| SimConfig {
            reset_rate: 0.2,
            ..c
        },
        "reset",
    )
    .await;
    let cut = seen.iter().filter(|s| **s == Seen::NoAnswer).count();
    assert!(within(cut, 200, 50), "{cut}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_rate_answers_500_or_cuts_at_its_rate() {
    let seen = seeded_run(
        |c| SimConfig {
            ambiguous_rate: 0.2,
            ..c
        },
        "ambiguous",
    )
    .await;
    let errors = seen.iter().filter(|s| **s == Seen::Status(500)).count();
    let cut = seen.iter().filter(|s| **s == Seen::NoAnswer).count();
    assert!(within(errors + cut, 200, 50), "{errors} + {cut}");
    assert!(errors > 50 && cut > 50, "both kinds occur: {errors} {cut}");
}

#[tokio::test]
async fn hang_rate_leaves_requests_unanswered_at_its_rate() {
    let sim = start(SimConfig {
        hang_rate: 0.2,
        rng_seed: 42,
        ..SimConfig::default()
    })
    .await;
    // Long enough that a loaded machine's slow answer is not taken for a hang.
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let url = release_url(&sim.base_url(), "c1", "web", "frontend");
    let seen: Vec<Seen> = futures::stream::iter(0..300)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            async move {
                match c.get(&url).send().await {
                    Ok(r) => Seen::Status(r.status().as_u16()),
                    Err(e) => {
                        assert!(e.is_timeout(), "{e}");
                        Seen::NoAnswer
                    }
                }
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let hung = seen.iter().filter(|s| **s == Seen::NoAnswer).count();
    assert!(within(hung, 60, 25), "{hung} of 300");
    let logged = sim
        .request_log()
        .iter()
        .filter(|e| e.fault.as_deref() == Some("hang"))
        .count();
    assert_eq!(logged, hung);
    assert!(
        sim.request_log()
            .iter()
            .all(|e| (e.fault.is_some()) == e.status.is_none())
    );
}

async fn put_upgrade(
    sim: &RunningSim,
    tag: &str,
) -> Result<crate::sim_support::Reply, reqwest::Error> {
    let c = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    send(
        &c,
        reqwest::Method::PUT,
        &release_url(&sim.base_url(), "c1", "web", "frontend"),
        Some(json!({"action": "upgrade", "values": {"imageTag": tag}})),
    )
    .await
}

#[tokio::test]
async fn reset_and_error_apply_nothing_while_ambiguous_and_hang_apply_the_change() {
    for (config, applies) in [
        (
            SimConfig {
                reset_rate: 1.0,
                ..SimConfig::default()
            },
            false,
        ),
        (
            SimConfig {
                error_rate: 1.0,
                ..SimConfig::default()
            },
            false,
        ),
        (
            SimConfig {
                ambiguous_rate: 1.0,
                ..SimConfig::default()
            },
            true,
        ),
        (
            SimConfig {
                hang_rate: 1.0,
                ..SimConfig::default()
            },
            true,
        ),
    ] {
        let sim = start(config).await;
        let result = put_upgrade(&sim, "v2").await;
        assert!(
            result.as_ref().map_or(true, |r| r.status >= 500),
            "{result:?}"
        );
        let state = sim.state();
        assert_eq!(state.applied_puts, u64::from(applies));
        let entry = &sim.request_log()[0];
        assert_eq!(entry.applied, applies, "{entry:?}");
        assert!(entry.fault.is_some());
    }
}

#[tokio::test]
async fn throttle_answers_the_documented_429_with_retry_after_per_credential() {
    let sim = start(SimConfig::default().with_throttle(5.0)).await;
    let c = client();
    let url = release_url(&sim.base_url(), "c1", "web", "frontend");
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..20 {
        let reply = send(&c, reqwest::Method::GET, &url, None).await.unwrap();
        statuses.push(reply.status);
        if reply.status == 429 {
            last = Some(reply);
        }
    }
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert!((5..=6).contains(&admitted), "{statuses:?}");
    let throttled = last.unwrap();
    assert_eq!(throttled.body["error_code"], "APIG.0308");
    assert_eq!(
        throttled.body["error_msg"],
        "The throttling threshold has been reached: policy user over ratelimit,limit:300,time:1 minute"
    );
    assert_eq!(throttled.retry_after.as_deref(), Some("1"));
    // Another credential has its own bucket.
    let other = c
        .get(&url)
        .header("x-auth-token", "someone-else")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    let log = sim.request_log();
    assert_eq!(
        log.iter()
            .filter(|e| e.fault.as_deref() == Some("throttle"))
            .count(),
        20 - admitted
    );

    let quiet = start(SimConfig {
        retry_after: false,
        ..SimConfig::default().with_throttle(1.0)
    })
    .await;
    let url = release_url(&quiet.base_url(), "c1", "web", "frontend");
    send(&c, reqwest::Method::GET, &url, None).await.unwrap();
    let reply = send(&c, reqwest::Method::GET, &url, None).await.unwrap();
    assert_eq!((reply.status, reply.retry_after), (429, None));
}

/// Each endpoint of one simulator (one per region with `apply --simulate`, one per `--listen`)
/// throttles on its own, as each region's gateway does, and all serve the same releases.
#[tokio::test]
async fn each_endpoint_throttles_on_its_own_and_all_serve_the_same_releases() {
    let sim = start(SimConfig::default().with_endpoints(2).with_throttle(1.0)).await;
    let urls = sim.base_urls();
    assert_eq!(urls.len(), 2);
    assert_ne!(urls[0], urls[1]);
    assert_eq!(sim.base_url(), urls[0]);
    let c = client();
    let at = |base: &str| release_url(base, "c1", "web", "frontend");
    // One request a second: the first endpoint's bucket is empty after one GET...
    let first = send(&c, reqwest::Method::GET, &at(&urls[0]), None)
        .await
        .unwrap();
    let second = send(&c, reqwest::Method::GET, &at(&urls[0]), None)
        .await
        .unwrap();
    assert_eq!((first.status, second.status), (200, 429));
    // ... and the other endpoint's is full: the same credential, another gateway.
    let upgrade = json!({"action": "upgrade", "values": {"imageTag": "v3"}});
    let put = send(&c, reqwest::Method::PUT, &at(&urls[1]), Some(upgrade))
        .await
        .unwrap();
    assert_eq!(put.status, 200);
    assert_eq!(put.body["version"], 2);
    let state = sim.state();
    assert_eq!(state.release("c1", "web", "frontend").unwrap().version, 2);
    let log = sim.request_log();
    let seen: Vec<(&str, Option<u16>)> = log
        .iter()
        .map(|e| (e.endpoint.as_str(), e.status))
        .collect();
    assert_eq!(
        seen,
        [
            (urls[0].as_str(), Some(200)),
            (urls[0].as_str(), Some(429)),
            (urls[1].as_str(), Some(200))
        ]
    );
    let sequence: Vec<u64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(sequence, [0, 1, 2], "one request order over every endpoint");
}

#[tokio::test]
async fn latency_and_jitter_delay_every_api_answer() {
    let sim = start(SimConfig {
        latency: Duration::from_millis(80),
        jitter: Duration::from_millis(40),
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let url = release_url(&sim.base_url(), "c1", "web", "frontend");
    for _ in 0..3 {
        let started = Instant::now();
        send(&c, reqwest::Method::GET, &url, None).await.unwrap();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(80), "{took:?}");
    }
}

#[tokio::test]
async fn deploy_fail_rate_one_fails_every_deploy() {
    let sim = start(SimConfig {
        deploy_fail_rate: 1.0,
        ..SimConfig::default()
    })
    .await;
    assert_eq!(put_upgrade(&sim, "v2").await.unwrap().status, 200);
    let reply = send(
        &client(),
        reqwest::Method::GET,
        &release_url(&sim.base_url(), "c1", "web", "frontend"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(reply.body["status"], "FAILED");
}
