//! A journal turned into a [`RunReport`], for `flotilla report JOURNAL`: the newest run's report
//! as the run itself wrote it when the journal records its end, and a complete and honest one
//! of a run that died (every planned operation, times from its records) when it does not.

use std::collections::HashMap;
use std::time::Duration;

use super::record::{FinishedOperation, PlannedOperation, Record};
use super::resume::{JournalState, NewestRun};
use crate::engine::{OperationResult, PriorState};
use crate::report::convert;
use crate::report::model::{ClusterInfo, OperationReport, Outcome, PlanInfo, RunReport, Summary};
use crate::secret::Redactor;

/// Why an operation a run was given is not started in the report of a run that died.
pub const NOT_STARTED: &str =
    "not started: the run ended before it (killed or crashed: the journal records no end)";

/// Why an operation whose PUT was announced, with no end recorded, is cancelled in a report.
pub const IN_FLIGHT: &str = "in flight when the run stopped: its PUT may have been applied";

impl JournalState {
    /// The report of the newest run the journal records (with the runs it resumed).
    ///
    /// With its end recorded, it is the run's own report (`--report-json`), field by field.
    /// Without, the run was killed or crashed: the report is `interrupted`, runs from the
    /// newest `run` record to the last record written, and lists every planned operation:
    /// those in flight `cancelled`, those never started `skipped` ([`NOT_STARTED`]). A journal
    /// written before version 3 lists only the operations it has records of.
    pub fn to_report(&self) -> RunReport {
        let default_redactor = Redactor::default();
        let no_run = NewestRun::default();
        let newest = self.newest.as_ref().unwrap_or(&no_run);
        let operations = if newest.planned.is_empty() {
            self.recorded_operations(&default_redactor)
        } else {
            newest
                .planned
                .iter()
                .map(|planned| self.planned_operation(planned, &default_redactor))
                .collect()
        };
        let plan = self.plan().cloned().map_or_else(
            || PlanInfo {
                name: String::new(),
                hash: String::new(),
                shard: None,
                waves: Vec::new(),
                max_failures: None,
            },
            PlanInfo::from,
        );
        let (started_at, finished_at, duration_ms, halted, interrupted, credentials_refused) =
            match &newest.end {
                Some(end) => (
                    end.started_at.clone(),
                    end.finished_at.clone(),
                    end.duration_ms,
                    end.halted.clone(),
                    end.interrupted,
                    end.credentials_refused.clone().map(Into::into),
                ),
                None => {
                    let started = newest.started_at.parse::<jiff::Timestamp>().ok();
                    let finished = match (started, self.last_record_at) {
                        (Some(started), Some(last)) => Some(last.max(started)),
                        (started, last) => last.or(started),
                    };
                    let duration_ms = started
                        .zip(finished)
                        .and_then(|(s, f)| Duration::try_from(f.duration_since(s)).ok())
                        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                    // A journal of this version without an end is a run that died; an older
                    // one cannot tell, and only an interrupt's cancellations say it.
                    let interrupted = !newest.planned.is_empty()
                        || operations.iter().any(|op| op.outcome == Outcome::Cancelled);
                    (
                        newest.started_at.clone(),
                        finished.map_or_else(|| newest.started_at.clone(), |f| f.to_string()),
                        duration_ms,
                        None,
                        interrupted,
                        None,
                    )
                }
            };
        RunReport {
            format_version: crate::report::model::FORMAT_VERSION,
            flotilla_version: if newest.flotilla_version.is_empty() {
                env!("CARGO_PKG_VERSION").to_owned()
            } else {
                newest.flotilla_version.clone()
            },
            plan,
            started_at,
            finished_at,
            duration_ms,
            settings: newest.settings.clone(),
            summary: Summary::of(&operations),
            halted,
            interrupted,
            credentials_refused,
            missing_shards: Vec::new(),
            incomplete: false,
            operations,
        }
    }

    /// Whether the journal records the newest run's end (if not, it was killed or crashed).
    pub fn ended(&self) -> bool {
        self.newest.as_ref().is_some_and(|run| run.end.is_some())
    }

    /// One planned operation of the newest run, as the run's report tells it.
    fn planned_operation(
        &self,
        planned: &PlannedOperation,
        redactor: &Redactor,
    ) -> OperationReport {
        let by_newest = self.written_by_newest.contains(&planned.index);
        match self.last.get(&planned.index) {
            Some(Record::Finished { wave, result, .. }) if by_newest => {
                convert::operation(&result.to_engine(), wave, redactor)
            }
            Some(Record::Finished { wave, result, .. }) => {
                match self.prior_state(planned.index) {
                    // What the resumed run reported of it: done by an earlier run.
                    Some(PriorState::AlreadySucceeded(_)) => {
                        convert::operation(&done_earlier(result), wave, redactor)
                    }
                    Some(PriorState::InFlight { .. }) => {
                        convert::operation(&result.to_engine(), wave, redactor)
                    }
                    None => not_started(planned),
                }
            }
            Some(Record::Intent {
                version_before,
                release_version,
                ..
            }) => in_flight(planned, *version_before, *release_version),
            Some(Record::Run { .. } | Record::End(_)) | None => not_started(planned),
        }
    }

    /// The operations of a journal written before version 3, which lists no planned ones:
    /// each one's last record, the cluster's name found in another operation's end.
    fn recorded_operations(&self, redactor: &Redactor) -> Vec<OperationReport> {
        let cluster_names: HashMap<&str, &str> = self
            .last
            .values()
            .filter_map(|record| match record {
                Record::Finished { result, .. } => {
                    Some((result.cluster_id.as_str(), result.cluster_name.as_str()))
                }
                _ => None,
            })
            .collect();
        self.last
            .values()
            .filter_map(|record| match record {
                Record::Finished { wave, result, .. } => {
                    Some(convert::operation(&result.to_engine(), wave, redactor))
                }
                Record::Intent {
                    index,
                    cluster_id,
                    namespace,
                    name,
                    action,
                    version_before,
                    release_version,
                    ..
                } => {
                    let mut report = in_flight(
                        &PlannedOperation {
                            index: *index,
                            wave: String::new(),
                            cluster_name: cluster_names
                                .get(cluster_id.as_str())
                                .copied()
                                .unwrap_or_default()
                                .to_owned(),
                            cluster_id: cluster_id.clone(),
                            namespace: namespace.clone(),
                            release: name.clone(),
                            action: super::record::RecordedAction::Upgrade,
                        },
                        *version_before,
                        *release_version,
                    );
                    report.action = action.clone();
                    Some(report)
                }
                Record::Run { .. } | Record::End(_) => None,
            })
            .collect()
    }
}

/// What a resumed run reports of an operation an earlier run finished: the engine's own
/// rule, [`OperationResult::into_done_earlier`].
fn done_earlier(previous: &FinishedOperation) -> OperationResult {
    previous.to_engine().into_done_earlier()
}

fn identity(planned: &PlannedOperation, outcome: Outcome, reason: &str) -> OperationReport {
    OperationReport {
        index: planned.index,
        cluster: ClusterInfo {
            name: planned.cluster_name.clone(),
            id: planned.cluster_id.clone(),
        },
        namespace: planned.namespace.clone(),
        name: planned.release.clone(),
        action: crate::cce::model::Action::from(planned.action)
            .as_str()
            .to_owned(),
        wave: planned.wave.clone(),
        outcome,
        final_status: None,
        version_before: None,
        version_after: None,
        release_version: None,
        attempts: Vec::new(),
        // An intent is written before its PUT: whether the PUT left is not known.
        change_sent: false,
        change_applied: false,
        reconciled: false,
        rollback: None,
        duration_ms: 0,
        error: None,
        skip_reason: Some(reason.to_owned()),
        note: None,
    }
}

fn not_started(planned: &PlannedOperation) -> OperationReport {
    identity(planned, Outcome::Skipped, NOT_STARTED)
}

fn in_flight(
    planned: &PlannedOperation,
    version_before: Option<i64>,
    release_version: Option<i64>,
) -> OperationReport {
    OperationReport {
        version_before,
        release_version,
        ..identity(planned, Outcome::Cancelled, IN_FLIGHT)
    }
}

/// Outcome counts of a journal's newest run that a person reading a report of a run that died
/// wants first: how many were in flight, how many never started.
pub fn died_counts(report: &RunReport) -> (usize, usize) {
    let count = |reason: &str| {
        report
            .operations
            .iter()
            .filter(|op| op.skip_reason.as_deref() == Some(reason))
            .count()
    };
    (count(IN_FLIGHT), count(NOT_STARTED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record::{RecordedAction, RecordedPlan, RunEnd};
    use serde_json::json;

    fn planned(index: usize) -> PlannedOperation {
        PlannedOperation {
            index,
            wave: if index == 0 { "canary" } else { "main" }.into(),
            cluster_name: format!("c{index}"),
            cluster_id: format!("id-{index}"),
            namespace: "shop".into(),
            release: "web".into(),
            action: RecordedAction::Upgrade,
        }
    }

    fn run(resume: bool, at: &str) -> Record {
        Record::Run {
            plan: RecordedPlan {
                name: "p".into(),
                hash: "ab".repeat(32),
                shard: None,
                waves: Vec::new(),
                max_failures: None,
            },
            started_at: at.into(),
            flotilla_version: "0.1.0".into(),
            operations: 4,
            resume,
            settings: json!({"resume": resume}),
            planned: (0..4).map(planned).collect(),
        }
    }

    fn finished(index: usize, outcome: &str, at: &str) -> Record {
        serde_json::from_value(json!({
            "record": "finished", "wave": planned(index).wave, "at": at,
            "result": {"index": index, "wave": 0, "cluster_name": format!("c{index}"),
                "cluster_id": format!("id-{index}"), "namespace": "shop", "release": "web",
                "action": "upgrade", "outcome": outcome, "from_journal": false, "dry_run": false,
                "final_status": "DEPLOYED", "version_before": 1, "version_after": 2,
                "put_sent": true, "put_applied": true, "put_attempts": 1, "polls": 1,
                "attempts": [{"phase": "put", "method": "PUT", "status": 200, "error_code": null,
                    "error": null, "request_id": null, "throttled": false, "delay_before": 0,
                    "sent_at": 5}],
                "reconciled": false, "rollback": null, "started_at": 3, "duration": 1500,
                "error": null, "skip_reason": null}
        }))
        .unwrap()
    }

    fn intent(index: usize, at: &str) -> Record {
        Record::Intent {
            index,
            rollback: false,
            cluster_id: format!("id-{index}"),
            namespace: "shop".into(),
            name: "web".into(),
            action: "upgrade".into(),
            version_before: Some(1),
            release_version: None,
            at: at.into(),
        }
    }

    fn state(records: Vec<Record>) -> JournalState {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let lines: String = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(&path, lines).unwrap();
        JournalState::read(&path).unwrap()
    }

    #[test]
    fn a_run_that_died_lists_every_planned_operation_with_honest_times() {
        let state = state(vec![
            run(false, "2026-12-04T10:00:00Z"),
            finished(0, "succeeded", "2026-12-04T10:00:04Z"),
            intent(1, "2026-12-04T10:00:12Z"),
        ]);
        assert!(!state.ended());
        let report = state.to_report();
        assert!(report.interrupted, "a run without its end died");
        assert_eq!(report.started_at, "2026-12-04T10:00:00Z");
        assert_eq!(report.finished_at, "2026-12-04T10:00:12Z");
        assert_eq!(report.duration_ms, 12_000);
        assert_eq!(report.settings, json!({"resume": false}));
        let outcomes: Vec<_> = report.operations.iter().map(|op| op.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Succeeded,
                Outcome::Cancelled,
                Outcome::Skipped,
                Outcome::Skipped
            ]
        );
        let in_flight = &report.operations[1];
        assert_eq!(in_flight.cluster.name, "c1");
        assert_eq!(in_flight.wave, "main");
        assert_eq!(in_flight.version_before, Some(1));
        assert_eq!(in_flight.skip_reason.as_deref(), Some(IN_FLIGHT));
        let never = &report.operations[3];
        assert_eq!(
            (never.cluster.name.as_str(), never.wave.as_str()),
            ("c3", "main")
        );
        assert_eq!(never.skip_reason.as_deref(), Some(NOT_STARTED));
        assert_eq!(died_counts(&report), (1, 2));
        assert_eq!(report.summary.total, 4);
    }

    #[test]
    fn a_run_that_ended_is_told_by_its_end() {
        let end = Record::End(Box::new(RunEnd {
            started_at: "2026-12-04T10:00:00.012Z".into(),
            finished_at: "2026-12-04T10:00:21.793Z".into(),
            duration_ms: 21_781,
            halted: Some("the run exceeded its failure budget".into()),
            interrupted: false,
            credentials_refused: None,
        }));
        let mut records = vec![run(false, "2026-12-04T10:00:00Z")];
        records.extend((0..4).map(|i| finished(i, "succeeded", "2026-12-04T10:00:05Z")));
        records.push(end);
        let state = state(records);
        assert!(state.ended());
        let report = state.to_report();
        assert!(!report.interrupted);
        assert_eq!(report.duration_ms, 21_781);
        assert_eq!(report.started_at, "2026-12-04T10:00:00.012Z");
        assert_eq!(report.finished_at, "2026-12-04T10:00:21.793Z");
        assert_eq!(
            report.halted.as_deref(),
            Some("the run exceeded its failure budget")
        );
        assert_eq!(report.summary.succeeded, 4);
    }

    #[test]
    fn a_resumed_run_reports_what_an_earlier_run_did_as_done_earlier() {
        let state = state(vec![
            run(false, "2026-12-04T10:00:00Z"),
            finished(0, "succeeded", "2026-12-04T10:00:04Z"),
            intent(1, "2026-12-04T10:00:05Z"),
            run(true, "2026-12-04T10:05:00Z"),
            finished(1, "succeeded", "2026-12-04T10:05:02Z"),
        ]);
        let report = state.to_report();
        let earlier = &report.operations[0];
        assert_eq!(earlier.outcome, Outcome::Succeeded);
        assert!(
            earlier.attempts.is_empty(),
            "nothing sent by the resumed run"
        );
        assert_eq!(earlier.duration_ms, 0);
        assert_eq!(
            earlier.note.as_deref(),
            Some("succeeded in an earlier run (journal); nothing sent")
        );
        assert_eq!(report.operations[1].attempts.len(), 1);
        assert_eq!(
            report.started_at, "2026-12-04T10:05:00Z",
            "the resumed run's start"
        );
        assert_eq!(report.duration_ms, 2_000);
        assert_eq!(report.summary.skipped, 2, "2 and 3 never started");
    }
}
