//! Crash safety: resuming from a journal, and no PUT leaving before its intent is durable.

use super::*;

#[tokio::test(start_paused = true)]
async fn resume_without_a_revision_sends_only_what_did_not_land() {
    let (c, p, api) = two_releases_without_preflight();
    // The killed run's PUT for app-0 landed; app-1's intent was written but its PUT never left.
    api.edit_release(&c.id, "app-0", |r| {
        let mut applied = r.history[0].clone();
        applied.version = 2;
        applied.values = image_tag("v2");
        r.history.push(applied);
    });
    let in_flight = PriorState::InFlight {
        version_before: None,
    };
    let options = EngineOptions {
        resume: HashMap::from([(0, in_flight.clone()), (1, in_flight)]),
        ..EngineOptions::default()
    };
    let (report, _) = run_plan(&p, api.clone(), options).await;
    ok(&report);
    assert_eq!(api.release(&c.id, "app-0").applied_puts, 0);
    assert!(report.results[0].reconciled);
    assert_eq!(api.release(&c.id, "app-1").applied_puts, 1);
    assert_eq!(report.results[1].put_attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn resume_skips_what_succeeded_and_reconciles_what_was_in_flight() {
    let (c, p, api) = seeded_on_one_cluster(3);
    // app-1's PUT went through before the crash; app-2's never left.
    api.edit_release(&c.id, "app-1", |r| {
        let mut applied = pending_revision(
            &r.history[0],
            2,
            ReleaseStatus::PendingUpgrade,
            Duration::from_secs(3),
        );
        applied.values = image_tag("v2");
        r.history.push(applied);
        r.applied_puts = 1;
    });
    let mut resume = HashMap::new();
    resume.insert(0, PriorState::AlreadySucceeded(None));
    resume.insert(
        1,
        PriorState::InFlight {
            version_before: Some(1),
        },
    );
    resume.insert(
        2,
        PriorState::InFlight {
            version_before: Some(1),
        },
    );
    let options = EngineOptions {
        resume,
        ..EngineOptions::default()
    };
    let (report, _) = run_plan(&p, api.clone(), options).await;
    ok(&report);
    let calls = api.calls();
    assert!(
        calls.iter().all(|call| call.release != "app-0"),
        "a succeeded operation is not even read"
    );
    assert!(report.results[0].from_journal);
    let app1: Vec<&str> = calls
        .iter()
        .filter(|c| c.release == "app-1")
        .map(|c| c.method)
        .collect();
    assert!(app1.iter().all(|m| *m == "GET"));
    assert!(report.results[1].reconciled);
    assert_eq!(api.release(&c.id, "app-1").applied_puts, 1);
    let app2: Vec<&str> = calls
        .iter()
        .filter(|c| c.release == "app-2")
        .map(|c| c.method)
        .collect();
    assert_eq!(app2[..2], ["GET", "PUT"]);
    assert_eq!(api.release(&c.id, "app-2").applied_puts, 1);
    assert_eq!(report.summary.from_journal, 1);
}

/// Records when each PUT intent became durable; can be told to fail.
#[derive(Default)]
struct SlowJournal {
    durable: Mutex<Vec<(String, bool, Instant)>>,
    finished: Mutex<Vec<(usize, Outcome)>>,
    fail: bool,
}

impl Journal for SlowJournal {
    fn before_put<'a>(&'a self, intent: PutIntent<'a>) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if self.fail {
                return Err(JournalError("journal: disk full".into()));
            }
            self.durable.lock().unwrap().push((
                intent.operation.release.clone(),
                intent.rollback,
                Instant::now(),
            ));
            Ok(())
        })
    }

    fn finished(&self, result: &OperationResult) -> Result<(), JournalError> {
        self.finished
            .lock()
            .unwrap()
            .push((result.index, result.outcome));
        Ok(())
    }

    fn sync(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test(start_paused = true)]
async fn no_put_leaves_before_its_journal_line_is_durable() {
    let c = cluster("a", "r1");
    let mut p = plan(
        rollout(),
        vec![
            ops_on(std::slice::from_ref(&c), 2, "v2"),
            ops_on(std::slice::from_ref(&c), 0, "v2"),
        ],
    );
    p.waves[0].operations[1].body = {
        let mut body = (*p.waves[0].operations[1].body).clone();
        body.values
            .as_mut()
            .unwrap()
            .insert("imageTag".into(), "fail-x".into());
        Arc::new(body)
    };
    p.waves[0].operations[1].rollback_on_failure = true;
    let api = FakeApi::new();
    api.seed(&p);
    let journal = Arc::new(SlowJournal::default());
    let options = EngineOptions {
        journal: Some(journal.clone()),
        ..EngineOptions::default()
    };
    let (report, _) = run_plan(&p, api.clone(), options).await;
    assert_eq!(
        report.results[1].rollback.as_ref().unwrap().outcome,
        Outcome::Succeeded
    );
    let durable = journal.durable.lock().unwrap().clone();
    let puts = api.puts();
    assert_eq!(durable.len(), 3, "two changes and one rollback");
    assert_eq!(puts.len(), 3);
    for put in &puts {
        let is_rollback = put.body.as_ref().unwrap().action == Action::Rollback;
        let line = durable
            .iter()
            .find(|(release, rollback, _)| *release == put.release && *rollback == is_rollback)
            .unwrap();
        assert!(line.2 <= put.at);
    }
    let mut finished = journal.finished.lock().unwrap().clone();
    finished.sort_by_key(|f| f.0);
    assert_eq!(finished, [(0, Outcome::Succeeded), (1, Outcome::Failed)]);

    // A journal that cannot write: nothing is sent.
    let api = FakeApi::new();
    api.seed(&p);
    let options = EngineOptions {
        journal: Some(Arc::new(SlowJournal {
            fail: true,
            ..SlowJournal::default()
        })),
        ..EngineOptions::default()
    };
    let (report, _) = run_plan(&p, api.clone(), options).await;
    assert!(api.puts().is_empty());
    assert!(report.results.iter().all(|r| r.outcome == Outcome::Failed));
    assert!(
        report.results[0]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("disk full")
    );
}

/// Queues each intent when told and makes it durable 50 ms later, like a group commit.
#[derive(Default)]
struct RecordingJournal {
    /// When each operation's intent was queued, by operation index.
    queued: Mutex<HashMap<usize, Instant>>,
}

const FSYNC: Duration = Duration::from_millis(50);

impl Journal for RecordingJournal {
    fn before_put<'a>(&'a self, intent: PutIntent<'a>) -> BoxFuture<'a, Result<(), JournalError>> {
        let queued = Instant::now();
        let earlier = self
            .queued
            .lock()
            .unwrap()
            .insert(intent.operation.index, queued);
        assert!(earlier.is_none(), "an intent journaled twice");
        Box::pin(async move {
            tokio::time::sleep_until(queued + FSYNC).await;
            Ok(())
        })
    }

    fn finished(&self, _: &OperationResult) -> Result<(), JournalError> {
        Ok(())
    }

    fn sync(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test(start_paused = true)]
async fn without_preflight_intents_are_journaled_ahead_and_each_put_still_waits_for_its_own() {
    let clusters: Vec<_> = (0..6).map(|i| cluster(&format!("c{i}"), "r1")).collect();
    let mut r = no_preflight_no_wait();
    r.concurrency = 2;
    let p = plan(r, vec![ops_on(&clusters, 1, "v2")]);
    let api = FakeApi::new();
    api.seed(&p);
    let journal = Arc::new(RecordingJournal::default());
    let options = EngineOptions {
        journal: Some(journal.clone()),
        ..EngineOptions::default()
    };
    let (report, _) = run_plan(&p, api.clone(), options).await;
    ok(&report);
    let queued = journal.queued.lock().unwrap().clone();
    assert_eq!(queued.len(), 6, "one intent per operation: {queued:?}");
    for put in api.puts() {
        let op = p
            .operations()
            .find(|op| op.cluster.id == put.cluster_id && op.release == put.release)
            .unwrap();
        assert!(
            put.at >= queued[&op.index] + FSYNC,
            "a PUT left before its intent was durable"
        );
    }
    let run_start = Instant::now() - report.duration;
    let ahead = report
        .results
        .iter()
        .filter(|r| queued[&r.index] < run_start + r.started_at)
        .count();
    assert!(
        ahead >= 3,
        "later operations found their intent already queued"
    );
    // Their fsync overlapped the requests before them: 3 rounds of one request, not of
    // fsync + request.
    assert!(report.duration < 3 * (FSYNC + Duration::from_millis(10)));
}
