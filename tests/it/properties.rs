//! Property tests over the pure decisions: plan expansion (which operations, in which wave and
//! order), retry decisions and backoff, and the pacer's schedule.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flotilla::cce::error::ErrorClass;
use flotilla::engine::pace::Pacer;
use flotilla::engine::retry::{Decision, RequestKind, backoff, backoff_ceiling, decide};
use flotilla::plan::load_source;
use flotilla::plan::resolved::{Rate, RetryPolicy};
use proptest::prelude::*;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Plan expansion

#[derive(Clone, Debug)]
struct Cluster {
    env: u8,
    zone: u8,
}

/// Where a generated release is: one of the three ways a plan can say it.
#[derive(Clone, Debug)]
enum Placement {
    Cluster(usize),
    /// A bit set over cluster indexes (bits past the fleet are dropped).
    Clusters(u16),
    Labels {
        env: Option<u8>,
        zone: Option<u8>,
    },
}

fn cluster_strategy() -> impl Strategy<Value = Cluster> {
    (0u8..3, 0u8..2).prop_map(|(env, zone)| Cluster { env, zone })
}

fn placement_strategy() -> impl Strategy<Value = Placement> {
    prop_oneof![
        (0usize..12).prop_map(Placement::Cluster),
        (1u16..u16::MAX).prop_map(Placement::Clusters),
        (proptest::option::of(0u8..3), proptest::option::of(0u8..2))
            .prop_map(|(env, zone)| Placement::Labels { env, zone }),
    ]
}

/// The clusters (indexes, in declaration order) a release placed so lands on.
fn matched(placement: &Placement, clusters: &[Cluster]) -> Vec<usize> {
    (0..clusters.len())
        .filter(|&c| match placement {
            Placement::Cluster(i) => *i % clusters.len() == c,
            Placement::Clusters(bits) => bits & (1 << c) != 0,
            Placement::Labels { env, zone } => {
                env.is_none_or(|e| clusters[c].env == e)
                    && zone.is_none_or(|z| clusters[c].zone == z)
            }
        })
        .collect()
}

fn plan_text(clusters: &[Cluster], releases: &[Placement], waves: &[u8]) -> String {
    let mut t = String::from("version: 1\ntarget: { region: cn-north-4 }\nclusters:\n");
    for (c, cluster) in clusters.iter().enumerate() {
        let _ = writeln!(
            t,
            "  c{c}: {{ id: {c:08x}-0000-4000-8000-000000000000, labels: {{ env: e{}, zone: z{} }} }}",
            cluster.env, cluster.zone
        );
    }
    t.push_str("defaults: { chart_id: af4b699e-018c-11ec-b8b0-0255ac100b05 }\n");
    if !waves.is_empty() {
        t.push_str("rollout:\n  waves:\n");
        for (w, env) in waves.iter().enumerate() {
            let _ = writeln!(
                t,
                "    - {{ name: w{w}, select: {{ labels: {{ env: e{env} }} }} }}"
            );
        }
    }
    t.push_str("releases:\n");
    for (r, placement) in releases.iter().enumerate() {
        let _ = write!(t, "  - {{ name: r{r}, namespace: ns, ");
        match placement {
            Placement::Cluster(i) => {
                let _ = write!(t, "cluster: c{}", i % clusters.len());
            }
            Placement::Clusters(_) => {
                let names: Vec<String> = matched(placement, clusters)
                    .iter()
                    .map(|c| format!("c{c}"))
                    .collect();
                let _ = write!(t, "clusters: [{}]", names.join(", "));
            }
            Placement::Labels { env, zone } => {
                let mut labels = Vec::new();
                if let Some(e) = env {
                    labels.push(format!("env: e{e}"));
                }
                if let Some(z) = zone {
                    labels.push(format!("zone: z{z}"));
                }
                let _ = write!(t, "selector: {{ labels: {{ {} }} }}", labels.join(", "));
            }
        }
        t.push_str(" }\n");
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Every release lands on exactly the clusters it names or selects; each cluster's
    /// operations go to the first wave selecting it (else the implicit wave); within a wave they
    /// are dealt round-robin over clusters in declaration order; indexes run 0..n in order.
    /// A plan is refused exactly when a release or wave selects nothing or a wave is left empty.
    #[test]
    fn expansion_yields_one_operation_per_matched_cluster_in_wave_and_round_robin_order(
        clusters in prop::collection::vec(cluster_strategy(), 1..10),
        releases in prop::collection::vec(placement_strategy(), 1..6),
        waves in prop::collection::vec(0u8..3, 0..3),
    ) {
        let text = plan_text(&clusters, &releases, &waves);
        let result = load_source(Path::new("prop.yaml"), text.as_bytes(), &|_| None);

        let per_release: Vec<Vec<usize>> = releases.iter().map(|p| matched(p, &clusters)).collect();
        // Each cluster's wave: the first whose env matches, else the implicit one (waves.len()).
        let wave_of: Vec<usize> = clusters
            .iter()
            .map(|c| waves.iter().position(|env| *env == c.env).unwrap_or(waves.len()))
            .collect();
        let ops_of_cluster = |c: usize| per_release.iter().filter(|m| m.contains(&c)).count();
        let release_selects_nothing = per_release.iter().any(Vec::is_empty);
        let wave_selects_nothing = waves.iter().any(|env| !clusters.iter().any(|c| c.env == *env));
        let wave_left_empty = (0..waves.len())
            .any(|w| !(0..clusters.len()).any(|c| wave_of[c] == w && ops_of_cluster(c) > 0));
        let should_fail = release_selects_nothing || wave_selects_nothing || wave_left_empty;

        let plan = match result {
            Ok(plan) => {
                prop_assert!(!should_fail, "accepted a plan it should refuse:\n{text}");
                plan
            }
            Err(e) => {
                prop_assert!(should_fail, "refused a valid plan: {e}\n{text}");
                return Ok(());
            }
        };

        let expected_count: usize = per_release.iter().map(Vec::len).sum();
        prop_assert_eq!(plan.operation_count(), expected_count);
        let indexes: Vec<usize> = plan.operations().map(|o| o.index).collect();
        prop_assert_eq!(indexes, (0..expected_count).collect::<Vec<_>>());

        // The expected operations, wave by wave, round-robin over clusters.
        let mut expected: Vec<(usize, String, String)> = Vec::new();
        let mut wave_names: Vec<String> = (0..waves.len()).map(|w| format!("w{w}")).collect();
        if wave_of.iter().enumerate().any(|(c, w)| *w == waves.len() && ops_of_cluster(c) > 0) {
            wave_names.push("(implicit)".to_owned());
        }
        for w in 0..=waves.len() {
            let queues: Vec<(usize, Vec<usize>)> = (0..clusters.len())
                .filter(|&c| wave_of[c] == w)
                .map(|c| (c, (0..releases.len()).filter(|&r| per_release[r].contains(&c)).collect()))
                .collect();
            let rounds = queues.iter().map(|(_, q)| q.len()).max().unwrap_or(0);
            for round in 0..rounds {
                for (c, queue) in &queues {
                    if let Some(r) = queue.get(round) {
                        expected.push((w, format!("c{c}"), format!("r{r}")));
                    }
                }
            }
        }
        let actual: Vec<(usize, String, String)> = plan
            .operations()
            .map(|o| (o.wave, o.cluster.name.clone(), o.release.clone()))
            .collect();
        // Declared waves keep their index; the implicit wave comes right after the last one.
        let expected: Vec<(usize, String, String)> = expected
            .into_iter()
            .map(|(w, c, r)| (w.min(wave_names.len() - 1), c, r))
            .collect();
        prop_assert_eq!(actual, expected);
        let names: Vec<&str> = plan.waves.iter().map(|w| w.name.as_str()).collect();
        prop_assert_eq!(names, wave_names.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

// ---------------------------------------------------------------------------------------------
// Retry decisions

fn policy_strategy() -> impl Strategy<Value = RetryPolicy> {
    (1u32..20, 0u64..120_000, 0u64..600_000).prop_map(|(attempts, backoff_ms, max_ms)| {
        RetryPolicy {
            attempts,
            backoff: Duration::from_millis(backoff_ms),
            max_backoff: Duration::from_millis(max_ms),
        }
    })
}

fn any_draw() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0f64..1.0,
        Just(1.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        any::<f64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A delay never exceeds `max_backoff` nor the doubling ceiling, whatever the draw.
    #[test]
    fn retry_delay_never_exceeds_max_backoff(
        policy in policy_strategy(),
        attempts_made in 0u32..200,
        draw in any_draw(),
    ) {
        let ceiling = backoff_ceiling(attempts_made, &policy);
        prop_assert!(ceiling <= policy.max_backoff);
        prop_assert!(backoff(attempts_made, &policy, draw) <= ceiling);
        for class in [ErrorClass::Retryable, ErrorClass::Ambiguous, ErrorClass::Fatal] {
            for request in [RequestKind::Put, RequestKind::Get] {
                if let Decision::Retry { delay } = decide(request, attempts_made, class, &policy, draw) {
                    prop_assert!(delay <= policy.max_backoff, "{delay:?} > {:?}", policy.max_backoff);
                    prop_assert!(attempts_made < policy.attempts);
                }
            }
        }
    }

    /// Retrying a request that keeps failing makes exactly `attempts` attempts; fatal errors
    /// make one; an ambiguous PUT is reconciled, never resent blindly.
    #[test]
    fn retries_never_exceed_the_policys_attempts(
        policy in policy_strategy(),
        draws in prop::collection::vec(any_draw(), 20),
        request in prop_oneof![Just(RequestKind::Put), Just(RequestKind::Get)],
        class in prop_oneof![
            Just(ErrorClass::Retryable),
            Just(ErrorClass::Ambiguous),
            Just(ErrorClass::Fatal),
        ],
    ) {
        let mut attempts_made = 1;
        let last = loop {
            match decide(request, attempts_made, class, &policy, draws[attempts_made as usize % 20]) {
                Decision::Retry { .. } => attempts_made += 1,
                other => break other,
            }
            prop_assert!(attempts_made <= policy.attempts);
        };
        match (class, request) {
            (ErrorClass::Fatal, _) => prop_assert_eq!((attempts_made, last), (1, Decision::Fail)),
            (ErrorClass::Ambiguous, RequestKind::Put) => {
                prop_assert_eq!((attempts_made, last), (1, Decision::Reconcile));
            }
            _ => prop_assert_eq!((attempts_made, last), (policy.attempts, Decision::Fail)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pacing

/// The largest number of instants in any half-open window `[t, t + width)`.
fn max_in_window(sorted: &[Instant], width: Duration) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..sorted.len() {
        while sorted[hi] - sorted[lo] >= width {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// The instants `tasks` concurrent tasks were allowed to send `slots` requests in all, under
/// paused time.
fn schedule(rate: f64, burst: u32, tasks: usize, slots: usize) -> (Instant, Vec<Instant>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let start = Instant::now();
        let pacer = Arc::new(Pacer::new(Rate::PerSecond(rate), burst, start));
        let cancel = CancellationToken::new();
        let mut handles = Vec::new();
        for task in 0..tasks {
            let pacer = pacer.clone();
            let cancel = cancel.clone();
            let mine = slots / tasks + usize::from(task < slots % tasks);
            handles.push(tokio::spawn(async move {
                let mut times = Vec::with_capacity(mine);
                for _ in 0..mine {
                    times.push(pacer.acquire(&cancel).await.expect("not cancelled").sent_at);
                }
                times
            }));
        }
        let mut all = Vec::new();
        for handle in handles {
            all.extend(handle.await.expect("the task ran"));
        }
        all.sort();
        (start, all)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// No 1-second window ever holds more than `rate + burst` slots, and the schedule is not
    /// slower than the rate allows.
    #[test]
    fn pacer_never_puts_more_than_rate_plus_burst_in_any_second(
        rate in prop_oneof![0.5f64..5.0, 5.0f64..200.0, (1u32..300).prop_map(f64::from)],
        burst in 1u32..20,
        tasks in 1usize..8,
        slots in 1usize..300,
    ) {
        let (start, times) = schedule(rate, burst, tasks, slots);
        prop_assert_eq!(times.len(), slots);
        let busiest = max_in_window(&times, Duration::from_secs(1));
        let bound = (rate + f64::from(burst)).floor() as usize;
        prop_assert!(busiest <= bound, "{busiest} slots in one second, bound {bound}");
        // The first `burst` go at once; each later one a rate interval after the previous.
        let span = (*times.last().expect("slots > 0") - start).as_secs_f64();
        let ideal = slots.saturating_sub(burst as usize) as f64 / rate;
        prop_assert!(span <= ideal + 1e-3, "span {span} s, ideal {ideal} s");
    }
}
