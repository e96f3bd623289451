//! A journal turned into a [`RunReport`], for `flotilla report JOURNAL`.

use super::record::{Record, RecordedOutcome};
use super::resume::JournalState;
use crate::report::convert;
use crate::report::model::{ClusterInfo, OperationReport, Outcome, PlanInfo, RunReport, Summary};

impl JournalState {
    /// The report of everything the journal knows: each operation's last recorded end; one
    /// whose PUT was sent with no end recorded is reported cancelled.
    pub fn to_report(&self) -> RunReport {
        let mut operations = Vec::with_capacity(self.last.len());
        // Only an interrupt cancels an operation; a crash leaves intents without an end.
        let mut interrupted = false;
        for record in self.last.values() {
            match record {
                Record::Finished { wave, result } => {
                    interrupted |= result.outcome == RecordedOutcome::Cancelled;
                    operations.push(convert::operation(
                        &result.to_engine(),
                        wave,
                        &Default::default(),
                    ));
                }
                Record::Intent {
                    index,
                    rollback: _,
                    cluster_id,
                    namespace,
                    name,
                    action,
                    version_before,
                    release_version,
                    ..
                } => operations.push(OperationReport {
                    index: *index,
                    cluster: ClusterInfo {
                        name: String::new(),
                        id: cluster_id.clone(),
                    },
                    namespace: namespace.clone(),
                    name: name.clone(),
                    action: action.clone(),
                    wave: String::new(),
                    outcome: Outcome::Cancelled,
                    final_status: None,
                    version_before: *version_before,
                    version_after: None,
                    release_version: *release_version,
                    attempts: Vec::new(),
                    // Its intent was written before its PUT: whether the PUT left is not known.
                    change_sent: false,
                    change_applied: false,
                    reconciled: false,
                    rollback: None,
                    duration_ms: 0,
                    error: None,
                    skip_reason: Some(
                        "in flight when the run stopped: its PUT may have been applied".into(),
                    ),
                    note: None,
                }),
                Record::Run { .. } => {}
            }
        }
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
        let started_at = self.first_started_at.clone().unwrap_or_default();
        RunReport {
            format_version: crate::report::model::FORMAT_VERSION,
            flotilla_version: env!("CARGO_PKG_VERSION").to_owned(),
            plan,
            finished_at: started_at.clone(),
            started_at,
            duration_ms: operations
                .iter()
                .map(|op| op.duration_ms)
                .max()
                .unwrap_or(0),
            settings: serde_json::json!({"source": "journal"}),
            summary: Summary::of(&operations),
            halted: None,
            interrupted,
            credentials_refused: None,
            missing_shards: Vec::new(),
            operations,
        }
    }
}
