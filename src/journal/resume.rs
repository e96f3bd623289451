//! A journal read back for `--resume`: what is done, what may be in flight, whether the plan is
//! the one the journal recorded, and how long to wait out the requests of a run that died.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::{JournalError, read_lines};
use super::record::{PlannedOperation, Record, RecordedOutcome, RecordedPlan, RunEnd};
use crate::engine;

/// A PUT can leave a moment after the journal write that preceded it.
const AFTER_LAST_WRITE: Duration = Duration::from_secs(1);

/// A journal read back: its runs' plan identities and the last word on each operation.
#[derive(Clone, Debug, Default)]
pub struct JournalState {
    pub plans: Vec<RecordedPlan>,
    pub first_started_at: Option<String>,
    pub operations_in_plan: usize,
    pub last: BTreeMap<usize, Record>,
    /// Lines that could not be read (a line torn by a crash).
    pub unreadable: usize,
    /// When the file was last written: no request of the run that wrote it left much later.
    pub last_written: Option<jiff::Timestamp>,
    /// The newest run recorded was a rehearsal against the simulator (`--simulate`).
    pub simulated: bool,
    /// The newest run: how it began, and how it ended if its end is recorded.
    pub newest: Option<NewestRun>,
    /// The operations whose last word the newest run wrote (the others' is an earlier run's).
    pub written_by_newest: BTreeSet<usize>,
    /// When the newest record that says its time was written.
    pub last_record_at: Option<jiff::Timestamp>,
}

/// The newest run a journal records, as its `run` record and its `end` record tell it.
#[derive(Clone, Debug, Default)]
pub struct NewestRun {
    pub started_at: String,
    pub flotilla_version: String,
    pub settings: serde_json::Value,
    /// Every operation it was given, in plan order; empty in journals before version 3.
    pub planned: Vec<PlannedOperation>,
    /// How it ended; none when it was killed or crashed (or before version 3).
    pub end: Option<RunEnd>,
}

/// Why `--resume` cannot continue the run a journal records.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("--resume: {} records no run", path.display())]
    NoRun { path: PathBuf },
    /// A rehearsal changed nothing real: a real run cannot continue from it, nor a rehearsal
    /// from a real run.
    #[error(
        "--resume: {} records {}; {} cannot continue it. Run without --resume, or give this run its own --journal",
        path.display(),
        if *.journal_simulated { "a rehearsal against the simulator (--simulate), which changed nothing real" } else { "a run against the real API" },
        if *.journal_simulated { "a run against the real API" } else { "a rehearsal (--simulate)" }
    )]
    SimulationMismatch {
        path: PathBuf,
        journal_simulated: bool,
    },
    #[error(
        "--resume: the plan changed since the journal was written (journal: plan `{recorded_name}` sha256 {recorded_hash:.12}, now: sha256 {plan_hash:.12}); \
         resuming could apply a different change than the one in flight. Pass --force-resume to resume anyway, or run without --resume"
    )]
    PlanChanged {
        recorded_name: String,
        recorded_hash: String,
        plan_hash: String,
    },
}

impl JournalState {
    pub fn read(path: &Path) -> Result<Self, JournalError> {
        let (records, unreadable) = read_lines::<Record>(path)?;
        let mut state = JournalState::default();
        // Journals before version 3 do not time their end records: the run's start and the
        // operation's own times (from the engine's start, a moment after) tell it closely.
        let mut run_start: Option<jiff::Timestamp> = None;
        for record in records {
            match &record {
                Record::Run {
                    plan,
                    started_at,
                    operations,
                    resume,
                    settings,
                    flotilla_version,
                    ..
                } => {
                    state.simulated = settings
                        .get("simulate")
                        .and_then(serde_json::Value::as_bool)
                        .unwrap_or(false);
                    // A fresh run starts over: only a resume continues the runs before it.
                    if !resume {
                        state.last.clear();
                        state.plans.clear();
                        state.first_started_at = None;
                    }
                    state.plans.push(plan.clone());
                    state
                        .first_started_at
                        .get_or_insert_with(|| started_at.clone());
                    state.operations_in_plan = *operations;
                    state.written_by_newest.clear();
                    state.newest = Some(NewestRun {
                        started_at: started_at.clone(),
                        flotilla_version: flotilla_version.clone(),
                        settings: settings.clone(),
                        // Moved in below: a large plan's list is not copied.
                        planned: Vec::new(),
                        end: None,
                    });
                }
                Record::Intent { index, .. } => {
                    state.written_by_newest.insert(*index);
                }
                Record::Finished { result, .. } => {
                    state.written_by_newest.insert(result.index);
                }
                Record::End(end) => {
                    if let Some(newest) = &mut state.newest {
                        newest.end = Some((**end).clone());
                    }
                }
            }
            if let Record::Run { started_at, .. } = &record {
                run_start = started_at.parse().ok();
            }
            let written_at = record.written_at().or_else(|| match &record {
                Record::Finished { result, .. } => run_start?
                    .checked_add(Duration::from_millis(
                        result.started_at.saturating_add(result.duration),
                    ))
                    .ok(),
                _ => None,
            });
            if let Some(at) = written_at {
                state.last_record_at = Some(state.last_record_at.map_or(at, |last| last.max(at)));
            }
            match record {
                Record::Intent { index, .. } => {
                    state.last.insert(index, record);
                }
                Record::Finished { ref result, .. } => {
                    state.last.insert(result.index, record);
                }
                Record::Run { planned, .. } => {
                    if let Some(newest) = &mut state.newest {
                        newest.planned = planned;
                    }
                }
                Record::End(_) => {}
            }
        }
        state.unreadable = unreadable;
        state.last_written = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| jiff::Timestamp::try_from(t).ok());
        Ok(state)
    }

    /// The journal's state for `--resume` of the plan hashed `plan_hash`, when this run (a
    /// rehearsal if `simulate`) may continue it. Read once this run holds the journal's lock,
    /// so that no other run can add to it afterwards. A plan that changed since is refused
    /// unless `force`.
    pub fn read_for_resume(
        path: &Path,
        plan_hash: &str,
        force: bool,
        simulate: bool,
    ) -> Result<Self, ResumeError> {
        let state = Self::read(path)?;
        state.check_plan(path, plan_hash, force)?;
        if state.simulated != simulate {
            return Err(ResumeError::SimulationMismatch {
                path: path.to_owned(),
                journal_simulated: state.simulated,
            });
        }
        Ok(state)
    }

    /// Refuses to resume a plan other than the journal's, unless `force`.
    pub fn check_plan(&self, path: &Path, plan_hash: &str, force: bool) -> Result<(), ResumeError> {
        let Some(recorded) = self.plan() else {
            return Err(ResumeError::NoRun {
                path: path.to_owned(),
            });
        };
        if recorded.hash != plan_hash && !force {
            return Err(ResumeError::PlanChanged {
                recorded_name: recorded.name.clone(),
                recorded_hash: recorded.hash.clone(),
                plan_hash: plan_hash.to_owned(),
            });
        }
        Ok(())
    }

    /// The plan hash of the journal's runs, when they agree.
    pub fn plan(&self) -> Option<&RecordedPlan> {
        self.plans.last()
    }

    /// What `--resume` does with operation `index`; `None`: run it as usual.
    pub fn prior_state(&self, index: usize) -> Option<engine::PriorState> {
        match self.last.get(&index)? {
            Record::Finished { result, .. } => match result.outcome {
                // An operation found already as planned is as done as one that changed it.
                RecordedOutcome::Succeeded | RecordedOutcome::Unchanged => Some(
                    engine::PriorState::AlreadySucceeded(Some(Box::new(result.to_engine()))),
                ),
                // Interrupted after its PUT left: it may have been applied.
                RecordedOutcome::Cancelled if result.put_sent => {
                    Some(engine::PriorState::InFlight {
                        version_before: result.version_before,
                    })
                }
                _ => None,
            },
            // A crash during the rollback of a failed upgrade: the upgrade itself ended in
            // failure, so the operation runs again from its preflight.
            Record::Intent { rollback: true, .. } => None,
            Record::Intent { version_before, .. } => Some(engine::PriorState::InFlight {
                version_before: *version_before,
            }),
            Record::Run { .. } | Record::End(_) => None,
        }
    }

    /// Whether `--resume` treats operation `index` as in flight.
    fn in_flight(&self, index: usize) -> bool {
        matches!(
            self.prior_state(index),
            Some(engine::PriorState::InFlight { .. })
        )
    }

    /// When the newest PUT that may still be in flight was announced: a run killed a moment
    /// ago may have requests on the wire that the service has yet to apply.
    pub fn last_in_flight_intent(&self) -> Option<jiff::Timestamp> {
        self.last
            .iter()
            .filter(|(index, _)| self.in_flight(**index))
            .filter_map(|(_, record)| match record {
                Record::Intent { at, .. } => at.parse().ok(),
                _ => None,
            })
            .max()
    }

    /// How long a resume at `now` waits before it reconciles anything; `None`: not at all.
    ///
    /// A PUT that the killed run sent just before it died may still reach the service.
    /// Reconciling before it lands would see the release unchanged and send the change again,
    /// so a resume waits until every such request has outlived its time-out. The clock starts
    /// at the journal's last write rather than at the newest intent: with preflight off,
    /// intents are journaled ahead of their PUT, which leaves when another operation ends, and
    /// so right after that one's end line is written. A clock that reads earlier than the
    /// journal's times cannot tell how long ago that was, and does not wait.
    pub fn wait_for_dead_run(
        &self,
        now: jiff::Timestamp,
        request_timeout: Duration,
    ) -> Option<Duration> {
        let newest_intent = self.last_in_flight_intent()?;
        let anchor = self
            .last_written
            .map_or(newest_intent, |written| written.max(newest_intent));
        let since = Duration::try_from(now.duration_since(anchor)).ok()?;
        (request_timeout + AFTER_LAST_WRITE).checked_sub(since)
    }

    /// Every operation's prior state, for the engine's options.
    pub fn resume_states(&self) -> HashMap<usize, engine::PriorState> {
        self.last
            .keys()
            .filter_map(|&index| Some((index, self.prior_state(index)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::file::JournalFile;
    use serde_json::json;

    fn finished(index: usize, outcome: engine::Outcome, put_sent: bool) -> Record {
        use crate::cce::model::{Action, UpdateReleaseBody};
        use crate::plan::resolved::{ClusterTarget, Operation};
        use std::sync::Arc;
        let op = Operation {
            index,
            wave: 0,
            cluster: Arc::new(ClusterTarget {
                name: "c".into(),
                id: "id".into(),
                labels: Default::default(),
                region: "cn-north-4".into(),
                endpoint: "https://cce.cn-north-4.myhuaweicloud.com".into(),
                iam_endpoint: None,
                project_id: None,
            }),
            namespace: "ns".into(),
            release: "r".into(),
            action: Action::Upgrade,
            body: Arc::new(UpdateReleaseBody {
                chart_id: None,
                action: Action::Upgrade,
                parameters: None,
                values: None,
            }),
            rollback_on_failure: false,
            relative_version: None,
            expected_revision: None,
        };
        let mut result = engine::OperationResult::new(&op, outcome, false);
        result.put_sent = put_sent;
        result.version_before = Some(1);
        Record::finished(
            "all".into(),
            result,
            "2026-11-26T00:00:05Z".parse().unwrap(),
            &crate::secret::Redactor::default(),
        )
    }

    fn intent(index: usize) -> Record {
        Record::Intent {
            index,
            rollback: false,
            cluster_id: "id".into(),
            namespace: "ns".into(),
            name: "r".into(),
            action: "upgrade".into(),
            version_before: Some(7),
            release_version: None,
            at: "2026-11-26T00:00:00Z".into(),
        }
    }

    /// README: operations that succeeded are not touched again on resume, not even with a GET;
    /// one found unchanged is as done.
    #[tokio::test]
    async fn an_unchanged_operation_is_not_checked_again_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let journal = JournalFile::open(&path).unwrap();
        journal
            .append(&finished(0, engine::Outcome::Unchanged, false))
            .await
            .unwrap();
        let state = JournalState::read(&path).unwrap();
        let Some(engine::PriorState::AlreadySucceeded(Some(previous))) = state.prior_state(0)
        else {
            panic!("an unchanged operation runs again on resume");
        };
        assert_eq!(previous.outcome, engine::Outcome::Unchanged);
    }

    #[tokio::test]
    async fn the_last_record_of_each_operation_decides_what_resume_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let journal = JournalFile::open(&path).unwrap();
        let run = |operations, resume| Record::Run {
            plan: RecordedPlan {
                name: "p".into(),
                hash: "ab".repeat(32),
                shard: None,
                waves: Vec::new(),
                max_failures: None,
            },
            started_at: "2026-11-26T00:00:00Z".into(),
            flotilla_version: "0".into(),
            operations,
            resume,
            settings: json!({}),
            // As a journal before version 3: no planned operations.
            planned: Vec::new(),
        };
        for record in [
            run(5, false),
            // An earlier run's success is forgotten by the fresh run below.
            finished(5, engine::Outcome::Succeeded, true),
            run(6, false),
            intent(0),
            finished(0, engine::Outcome::Succeeded, true),
            intent(1),
            finished(2, engine::Outcome::Skipped, false),
            intent(3),
            finished(3, engine::Outcome::Failed, true),
            run(6, true),
            // A resumed run's intent after a failure: in flight again.
            intent(3),
            finished(4, engine::Outcome::Cancelled, true),
        ] {
            journal.append(&record).await.unwrap();
        }
        let state = JournalState::read(&path).unwrap();
        assert!(matches!(
            state.prior_state(0),
            Some(engine::PriorState::AlreadySucceeded(_))
        ));
        assert!(matches!(
            state.prior_state(1),
            Some(engine::PriorState::InFlight {
                version_before: Some(7)
            })
        ));
        assert!(state.prior_state(2).is_none());
        assert!(matches!(
            state.prior_state(3),
            Some(engine::PriorState::InFlight { .. })
        ));
        assert!(
            matches!(
                state.prior_state(4),
                Some(engine::PriorState::InFlight {
                    version_before: Some(1)
                })
            ),
            "a cancelled operation whose PUT left is in flight"
        );
        assert!(state.prior_state(5).is_none(), "fresh run forgot it");
        assert_eq!(state.operations_in_plan, 6);
        let report = state.to_report();
        assert_eq!(report.summary.total, 5);
        assert_eq!(report.summary.succeeded, 1);
        assert_eq!(report.summary.cancelled, 3);
        assert_eq!(report.summary.skipped, 1);
        assert!(
            report.interrupted,
            "operation 4 was cancelled by an interrupt"
        );
    }

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn state_of(records: Vec<Record>, last_written: Option<&str>) -> JournalState {
        let mut state = JournalState {
            last_written: last_written.map(at),
            ..JournalState::default()
        };
        for record in records {
            let index = match &record {
                Record::Intent { index, .. } => *index,
                Record::Finished { result, .. } => result.index,
                Record::Run { .. } | Record::End(_) => continue,
            };
            state.last.insert(index, record);
        }
        state
    }

    fn intent_at(index: usize, when: &str) -> Record {
        let Record::Intent {
            rollback,
            cluster_id,
            namespace,
            name,
            action,
            version_before,
            ..
        } = intent(index)
        else {
            unreachable!("intent() makes intents")
        };
        Record::Intent {
            index,
            rollback,
            cluster_id,
            namespace,
            name,
            action,
            version_before,
            release_version: None,
            at: when.into(),
        }
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[test]
    fn nothing_in_flight_means_no_wait() {
        let done = state_of(
            vec![
                finished(0, engine::Outcome::Succeeded, true),
                finished(1, engine::Outcome::Failed, true),
                finished(2, engine::Outcome::Cancelled, false),
            ],
            Some("2026-11-26T00:00:00Z"),
        );
        assert_eq!(
            done.wait_for_dead_run(at("2026-11-26T00:00:01Z"), TIMEOUT),
            None
        );
        assert_eq!(
            JournalState::default().wait_for_dead_run(at("2026-11-26T00:00:01Z"), TIMEOUT),
            None
        );
    }

    #[test]
    fn an_in_flight_intent_is_waited_out_for_the_time_out_and_a_second_after_the_last_write() {
        let state = state_of(
            vec![
                intent_at(0, "2026-11-26T00:00:00Z"),
                intent_at(1, "2026-11-26T00:00:02Z"),
            ],
            Some("2026-11-26T00:00:03Z"),
        );
        // The clock starts at the last write, later than the newest intent.
        assert_eq!(
            state.wait_for_dead_run(at("2026-11-26T00:00:04Z"), TIMEOUT),
            Some(Duration::from_secs(5))
        );
        // Without a known last write, at the newest intent.
        let unknown_write = JournalState {
            last_written: None,
            ..state.clone()
        };
        assert_eq!(
            unknown_write.wait_for_dead_run(at("2026-11-26T00:00:04Z"), TIMEOUT),
            Some(Duration::from_secs(4))
        );
        // A write older than the newest intent does not move the clock back.
        let old_write = JournalState {
            last_written: Some(at("2026-11-25T00:00:00Z")),
            ..state.clone()
        };
        assert_eq!(
            old_write.wait_for_dead_run(at("2026-11-26T00:00:04Z"), TIMEOUT),
            Some(Duration::from_secs(4))
        );
    }

    #[test]
    fn a_dead_run_long_gone_or_a_clock_behind_the_journal_means_no_wait() {
        let state = state_of(
            vec![intent_at(0, "2026-11-26T00:00:00Z")],
            Some("2026-11-26T00:00:00Z"),
        );
        assert_eq!(
            state.wait_for_dead_run(at("2026-11-26T00:00:06.5Z"), TIMEOUT),
            None
        );
        assert_eq!(
            state.wait_for_dead_run(at("2026-11-25T23:59:59Z"), TIMEOUT),
            None
        );
    }

    #[test]
    fn only_in_flight_operations_count_for_the_wait() {
        // A rollback's intent: the operation runs again from its preflight.
        let mut rollback_intent = intent_at(0, "2026-11-26T00:00:09Z");
        if let Record::Intent { rollback, .. } = &mut rollback_intent {
            *rollback = true;
        }
        let state = state_of(
            vec![
                rollback_intent,
                intent_at(1, "2026-11-26T00:00:00Z"),
                // Its end came after the intent: not in flight.
                finished(2, engine::Outcome::Succeeded, true),
            ],
            None,
        );
        assert_eq!(
            state.last_in_flight_intent(),
            Some(at("2026-11-26T00:00:00Z"))
        );
        assert_eq!(
            state.wait_for_dead_run(at("2026-11-26T00:00:01Z"), TIMEOUT),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn resume_refuses_a_journal_without_a_run_or_of_another_plan_unless_forced() {
        let path = Path::new("j.jsonl");
        let empty = JournalState::default();
        let no_run = empty.check_plan(path, "ab", false).unwrap_err();
        assert!(no_run.to_string().contains("records no run"), "{no_run}");
        let state = JournalState {
            plans: vec![RecordedPlan {
                name: "p".into(),
                hash: "ab".repeat(32),
                shard: None,
                waves: Vec::new(),
                max_failures: None,
            }],
            ..JournalState::default()
        };
        assert!(state.check_plan(path, &"ab".repeat(32), false).is_ok());
        let changed = state.check_plan(path, &"cd".repeat(32), false).unwrap_err();
        let message = changed.to_string();
        assert!(message.contains("plan changed"), "{message}");
        assert!(message.contains("sha256 abababababab,"), "{message}");
        assert!(message.contains("now: sha256 cdcdcdcdcdcd)"), "{message}");
        assert!(message.contains("--force-resume"), "{message}");
        assert!(state.check_plan(path, &"cd".repeat(32), true).is_ok());
    }
}
