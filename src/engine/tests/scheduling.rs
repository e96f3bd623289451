//! Scheduling: concurrency caps, waves and soak, failure budgets, cancellation, and scale.

use super::*;

/// The most operations in flight at once, over all results passing `filter`.
fn max_overlap(results: &[OperationResult], filter: impl Fn(&OperationResult) -> bool) -> usize {
    let mut edges: Vec<(Duration, i32)> = Vec::new();
    for r in results
        .iter()
        .filter(|r| filter(r) && r.outcome != Outcome::Skipped)
    {
        edges.push((r.started_at, 1));
        edges.push((r.started_at + r.duration, -1));
    }
    // Ends before starts at the same instant: [start, end).
    edges.sort();
    let (mut now, mut best) = (0i32, 0i32);
    for (_, delta) in edges {
        now += delta;
        best = best.max(now);
    }
    best as usize
}

#[tokio::test(start_paused = true)]
async fn concurrency_and_per_cluster_caps_are_never_exceeded() {
    let clusters: Vec<_> = (0..4).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut r = rollout();
    r.concurrency = 5;
    r.per_cluster = 2;
    let p = plan(r, vec![ops_on(&clusters, 10, "v2")]);
    let api = FakeApi::new();
    api.seed(&p);
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    assert_eq!(max_overlap(&report.results, |_| true), 5);
    for c in &clusters {
        assert_eq!(
            max_overlap(&report.results, |r| r.cluster_id == c.id),
            2,
            "{}",
            c.name
        );
    }
    // Requests agree: never more than 2 operations' requests in flight on one cluster.
    let calls = api.calls();
    for c in &clusters {
        let mut edges: Vec<(Instant, i32)> = calls
            .iter()
            .filter(|call| call.cluster_id == c.id)
            .flat_map(|call| [(call.at, 1), (call.done.unwrap(), -1)])
            .collect();
        edges.sort();
        let mut now = 0;
        for (_, d) in edges {
            now += d;
            assert!(now <= 2);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_cluster_does_not_stall_the_others() {
    let slow = cluster("slow", "r1");
    let fast: Vec<_> = (0..2).map(|i| cluster(&format!("fast{i}"), "r1")).collect();
    let mut r = rollout();
    r.concurrency = 4;
    r.per_cluster = 2;
    let mut ops = ops_on(std::slice::from_ref(&slow), 6, "v2");
    ops.extend(ops_on(&fast, 10, "v2"));
    let p = plan(r, vec![ops]);
    let api = FakeApi::new();
    api.seed(&p);
    api.lock()
        .latency
        .insert(slow.id.clone(), Duration::from_secs(20));
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    let end = |r: &OperationResult| r.started_at + r.duration;
    let fast_done = report
        .results
        .iter()
        .filter(|r| r.cluster_id != slow.id)
        .map(end)
        .max()
        .unwrap();
    let slow_first_done = report
        .results
        .iter()
        .filter(|r| r.cluster_id == slow.id)
        .map(end)
        .min()
        .unwrap();
    // The fast clusters' 20 operations all finish while the slow cluster's first two are in flight.
    assert!(
        fast_done < slow_first_done,
        "{fast_done:?} vs {slow_first_done:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn waves_run_in_order_with_soak_between_them() {
    let clusters: Vec<_> = (0..3).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut p = plan(
        rollout(),
        vec![
            ops_on(&clusters[..1], 2, "v2"),
            ops_on(&clusters[1..], 3, "v2"),
        ],
    );
    p.waves[0].soak = Duration::from_secs(30);
    let api = FakeApi::new();
    api.seed(&p);
    let (report, events) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    let calls = api.calls();
    let first_wave_end = calls
        .iter()
        .filter(|c| c.cluster_id == clusters[0].id)
        .map(|c| c.done.unwrap())
        .max()
        .unwrap();
    let second_wave_start = calls
        .iter()
        .filter(|c| c.cluster_id != clusters[0].id)
        .map(|c| c.at)
        .min()
        .unwrap();
    assert!(second_wave_start >= first_wave_end + Duration::from_secs(30));
    assert!(second_wave_start < first_wave_end + Duration::from_secs(31));
    assert!(events.iter().any(|e| matches!(e, Event::Soaking { after_wave: 0, duration } if *duration == Duration::from_secs(30))));
    let waves: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::WaveStarted { wave, .. } => Some(*wave),
            _ => None,
        })
        .collect();
    assert_eq!(waves, [0, 1]);
}

/// Two waves, the first soaking 30 s, the second's calls returned with the moment it started.
async fn second_wave_start_after(
    prepare: impl FnOnce(&ExpandedPlan, &FakeApi) -> EngineOptions,
) -> (Duration, Vec<Event>) {
    let clusters: Vec<_> = (0..2).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut p = plan(
        rollout(),
        vec![
            ops_on(&clusters[..1], 2, "v2"),
            ops_on(&clusters[1..], 2, "v2"),
        ],
    );
    p.waves[0].soak = Duration::from_secs(30);
    let api = FakeApi::new();
    api.seed(&p);
    let options = prepare(&p, &api);
    let start = Instant::now();
    let (report, events) = run_plan(&p, api.clone(), options).await;
    assert_eq!(report.summary.failed, 0, "{:?}", report.summary);
    let second_wave_start = api
        .calls()
        .iter()
        .filter(|c| c.cluster_id == clusters[1].id)
        .map(|c| c.at)
        .min()
        .unwrap();
    (second_wave_start - start, events)
}

#[tokio::test(start_paused = true)]
async fn a_wave_that_changed_nothing_is_not_soaked() {
    // Every release of the first wave is already as planned: no PUT, nothing to watch.
    let (started, events) = second_wave_start_after(|p, api| {
        for op in &p.waves[0].operations {
            api.edit_release(&op.cluster.id, &op.release, |r| {
                r.history.last_mut().unwrap().values = image_tag("v2");
            });
        }
        EngineOptions::default()
    })
    .await;
    assert!(started < Duration::from_secs(30), "{started:?}");
    assert!(!events.iter().any(|e| matches!(e, Event::Soaking { .. })));
}

#[tokio::test(start_paused = true)]
async fn a_wave_done_by_the_run_a_resume_continues_is_not_soaked() {
    let (started, _) = second_wave_start_after(|p, _| {
        let resume = p.waves[0]
            .operations
            .iter()
            .map(|op| (op.index, PriorState::AlreadySucceeded(None)))
            .collect();
        EngineOptions {
            resume,
            ..EngineOptions::default()
        }
    })
    .await;
    assert!(started < Duration::from_secs(30), "{started:?}");
}

#[tokio::test(start_paused = true)]
async fn a_wave_that_sent_a_change_is_soaked() {
    let (started, _) = second_wave_start_after(|_, _| EngineOptions::default()).await;
    assert!(started >= Duration::from_secs(30), "{started:?}");
}

#[tokio::test(start_paused = true)]
async fn exceeding_the_budget_halts_and_skips_the_rest_unsent() {
    let c = cluster("a", "r1");
    let mut r = rollout();
    r.concurrency = 1;
    r.max_failures = FailureBudget::Count(1);
    let mut ops = ops_on(std::slice::from_ref(&c), 2, "v2");
    ops.extend((2..4).map(|i| (c.clone(), format!("app-{i}"), "fail-v2")));
    ops.extend((4..8).map(|i| (c.clone(), format!("app-{i}"), "v2")));
    let p = plan(r, vec![ops[..6].to_vec(), ops[6..].to_vec()]);
    let api = FakeApi::new();
    api.seed(&p);
    let (report, events) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let outcomes: Vec<Outcome> = report.results.iter().map(|r| r.outcome).collect();
    use Outcome::*;
    assert_eq!(
        outcomes,
        [
            Succeeded, Succeeded, Failed, Failed, Skipped, Skipped, Skipped, Skipped
        ]
    );
    let touched: std::collections::HashSet<String> =
        api.calls().into_iter().map(|c| c.release).collect();
    for r in &report.results[4..] {
        assert!(
            !touched.contains(&r.release),
            "{} was sent a request",
            r.release
        );
        assert!(
            r.skip_reason
                .as_deref()
                .unwrap()
                .contains("2 failed of 8 (max 1)"),
            "{:?}",
            r.skip_reason
        );
    }
    assert!(report.halted.is_some());
    assert_eq!(report.verdict(), Verdict::Failed);
    assert!(events.iter().any(|e| matches!(e, Event::Halted { .. })));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::WaveStarted { wave: 1, .. }))
    );
}

#[tokio::test(start_paused = true)]
async fn a_wave_percentage_budget_halts_before_the_next_wave() {
    let clusters: Vec<_> = (0..10).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut first: Ops = ops_on(&clusters, 1, "v2");
    first[3].2 = "fail-v2";
    let mut p = plan(rollout(), vec![first.clone(), ops_on(&clusters, 1, "v3")]);
    // 1 failure of 10 is within 10%: the next wave runs.
    p.waves[0].max_failures = Some(FailureBudget::Percent(10.0));
    let api = FakeApi::new();
    api.seed(&p);
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(report.summary.failed, 1);
    assert_eq!(report.summary.succeeded, 10 + 9 - 1 + 1);
    assert!(report.halted.is_none());

    // 2 failures of 10 exceed 10%: the second wave is skipped.
    first[4].2 = "fail-v2";
    let mut p = plan(rollout(), vec![first, ops_on(&clusters, 1, "v3")]);
    p.waves[0].max_failures = Some(FailureBudget::Percent(10.0));
    let api = FakeApi::new();
    api.seed(&p);
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    assert_eq!(report.summary.failed, 2);
    assert!(
        report
            .halted
            .as_deref()
            .unwrap()
            .contains("wave \"wave-0\"")
    );
    assert!(
        report.results[10..]
            .iter()
            .all(|r| r.outcome == Outcome::Skipped)
    );
    assert!(
        api.puts()
            .iter()
            .all(|c| c.body.as_ref().unwrap().values.as_ref().unwrap()["imageTag"] != "v3")
    );
}

#[tokio::test(start_paused = true)]
async fn cancellation_marks_the_rest_cancelled_and_sends_nothing_after() {
    let clusters: Vec<_> = (0..4).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut r = rollout();
    r.concurrency = 2;
    let p = plan(r, vec![ops_on(&clusters, 5, "v2")]);
    let api = FakeApi::new();
    api.seed(&p);
    let cancel = tokio_util::sync::CancellationToken::new();
    let options = EngineOptions {
        cancel: cancel.clone(),
        ..EngineOptions::default()
    };
    let start = Instant::now();
    let at = start + Duration::from_millis(5500);
    tokio::spawn(async move {
        tokio::time::sleep_until(at).await;
        cancel.cancel();
    });
    let (report, events) = run_plan(&p, api.clone(), options).await;
    let calls = api.calls();
    assert!(calls.iter().all(|c| c.at <= at));
    assert!(
        calls.iter().all(|c| c.done.is_some()),
        "in-flight requests finish"
    );
    assert!(report.cancelled);
    assert_eq!(report.verdict(), Verdict::Interrupted);
    assert!(report.summary.succeeded >= 2);
    assert_eq!(report.summary.succeeded + report.summary.cancelled, 20);
    let unstarted = report
        .results
        .iter()
        .filter(|r| r.skip_reason.as_deref() == Some("interrupted before it started"))
        .count();
    assert!(unstarted >= 10);
    // Those interrupted while waiting were applied: a resume must reconcile them, not resend.
    let interrupted_waits: Vec<&OperationResult> = report
        .results
        .iter()
        .filter(|r| {
            r.skip_reason.as_deref().is_some_and(|reason| {
                reason.starts_with("interrupted after its change was sent: the change applied")
            })
        })
        .collect();
    assert!(!interrupted_waits.is_empty());
    // Every cancelled operation that had started says it was interrupted, and whether its
    // change had been sent.
    assert_eq!(
        unstarted + interrupted_waits.len(),
        report.summary.cancelled,
        "{:#?}",
        report.results
    );
    assert!(
        interrupted_waits
            .iter()
            .all(|r| r.put_sent && r.put_applied)
    );
    assert!(events.iter().any(|e| matches!(e, Event::Cancelled)));
    // It ends promptly: in-flight polls are abandoned, nothing waits for the wait timeout.
    assert!(Instant::now() - at < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn the_run_future_is_send_and_many_operations_schedule_quickly() {
    fn assert_send<T: Send>(_: &T) {}
    let clusters: Vec<_> = (0..500).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut r = no_preflight_no_wait();
    r.concurrency = 256;
    let p = plan(r, vec![ops_on(&clusters, 10, "v2")]);
    let api = FakeApi::new();
    api.seed(&p);
    api.lock().default_latency = Duration::ZERO;
    let (tx, mut rx) = mpsc::channel(1024);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let future = run(&p, api.clone(), EngineOptions::default(), tx);
    assert_send(&future);
    let cpu = std::time::Instant::now();
    let report = future.await;
    drain.await.unwrap();
    ok(&report);
    assert_eq!(api.puts().len(), 5000);
    // Debug build, shared machine: a generous bound that still catches quadratic scheduling.
    assert!(
        cpu.elapsed() < Duration::from_secs(10),
        "{:?}",
        cpu.elapsed()
    );
}
