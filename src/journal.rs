//! The journal: a crash-safe JSON-lines record of every operation, read back by `--resume`.
//!
//! Lines are committed in groups: a writer thread takes every line queued since its last
//! fsync, writes them, fsyncs once, and only then tells each waiting caller that its line is
//! durable. A PUT waits for the acknowledgement of its intent line, and lines are written in
//! the order they were queued, so every line queued before an intent is durable before that
//! PUT leaves: a kill -9 at any instant can lose only lines queued after the last request that
//! changed anything.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::thread;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::engine::{self, OperationResult};
use crate::report::convert;
use crate::report::model::{OperationReport, Outcome, PlanInfo, RunReport, Summary};

/// A line and the caller waiting for it to be durable, if one waits.
struct Pending {
    line: Line,
    durable: Option<oneshot::Sender<Result<(), String>>>,
}

/// A line already encoded, or a record the writer thread encodes: the engine's thread, which
/// every request waits on, should not spend its time on JSON that nothing waits for.
enum Line {
    Encoded(Vec<u8>),
    Deferred(Encoder),
}

/// Appends one encoded line to the writer's buffer.
type Encoder = Box<dyn FnOnce(&mut Vec<u8>) + Send>;

/// An open journal file. Cloning shares the writer thread.
#[derive(Clone)]
pub struct JournalFile {
    path: PathBuf,
    queue: std_mpsc::Sender<Pending>,
}

impl std::fmt::Debug for JournalFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalFile")
            .field("path", &self.path)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("journal {path}: write failed: {message}")]
    Write { path: PathBuf, message: String },
    #[error("journal {path}: its writer has stopped")]
    Closed { path: PathBuf },
    #[error(
        "journal {path}: another flotilla run is writing it; wait for that run to end, or give this one its own --journal"
    )]
    Locked { path: PathBuf },
}

impl From<JournalError> for engine::JournalError {
    fn from(error: JournalError) -> Self {
        engine::JournalError(error.to_string())
    }
}

impl JournalFile {
    /// Opens `path` for appending (creating it and its directory), locks it against other runs
    /// for as long as this one writes it, and starts the writer thread.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        crate::atomic_file::create_parent(path).map_err(io_err)?;
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io_err)?;
        // Two runs appending to one journal would interleave their records, and a resume would
        // read them as one run. The lock goes with the file, so it lasts as long as the writer.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(JournalError::Locked {
                    path: path.to_owned(),
                });
            }
            // A file system that cannot lock (some network mounts: ENOTSUP, ENOLCK) still gets
            // a journal; only another run holding it stops this one.
            Err(std::fs::TryLockError::Error(e)) => {
                tracing::warn!(
                    "journal {}: cannot lock it ({e}); make sure no other run writes it",
                    path.display()
                );
            }
        }
        ensure_ends_with_newline(&mut file).map_err(io_err)?;
        let (queue, receiver) = std_mpsc::channel::<Pending>();
        thread::Builder::new()
            .name("flotilla-journal".into())
            .spawn(move || group_commit(file, receiver))
            .map_err(io_err)?;
        Ok(JournalFile {
            path: path.to_owned(),
            queue,
        })
    }

    /// Queues one record as a line; the returned future resolves once the line is fsynced.
    pub fn append<T: serde::Serialize>(
        &self,
        record: &T,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + use<T> {
        let mut line = Vec::new();
        encode_into(&mut line, record);
        self.queue_line(Line::Encoded(line))
    }

    /// Queues one record as a line without waiting for it: it becomes durable with the next
    /// group, before any line queued after it is acknowledged. The writer thread encodes it.
    /// Fails only once the writer has stopped.
    pub fn record<T: serde::Serialize + Send + 'static>(
        &self,
        record: T,
    ) -> Result<(), JournalError> {
        let pending = Pending {
            line: Line::Deferred(Box::new(move |buffer| encode_into(buffer, &record))),
            durable: None,
        };
        self.queue.send(pending).map_err(|_| JournalError::Closed {
            path: self.path.clone(),
        })
    }

    /// Resolves once every line queued so far is durable.
    pub fn sync(&self) -> impl Future<Output = Result<(), JournalError>> + Send + use<> {
        self.queue_line(Line::Encoded(Vec::new()))
    }

    fn queue_line(
        &self,
        line: Line,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + use<> {
        let (durable, acknowledged) = oneshot::channel();
        let sent = self.queue.send(Pending {
            line,
            durable: Some(durable),
        });
        let path = self.path.clone();
        async move {
            if sent.is_err() {
                return Err(JournalError::Closed { path });
            }
            match acknowledged.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(message)) => Err(JournalError::Write { path, message }),
                Err(_) => Err(JournalError::Closed { path }),
            }
        }
    }
}

fn encode_into<T: serde::Serialize>(buffer: &mut Vec<u8>, record: &T) {
    serde_json::to_writer(&mut *buffer, record).expect("journal records serialise");
    buffer.push(b'\n');
}

/// A line cut short by a crash must not glue itself to the next run's first line. Only the
/// last byte is read: a journal grows with every run.
fn ensure_ends_with_newline(file: &mut File) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(());
    }
    let mut reader = file.try_clone()?;
    reader.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    reader.read_exact(&mut last)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
        file.sync_data()?;
    }
    Ok(())
}

/// The writer thread. After a failed write or fsync nothing more is written and every later
/// line fails with the same error: what a failed fsync left on disk is unknown, and a line
/// that looks durable but is not would let a resume send a change twice.
fn group_commit(mut file: File, receiver: std_mpsc::Receiver<Pending>) {
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut waiters: Vec<oneshot::Sender<Result<(), String>>> = Vec::with_capacity(256);
    let mut failed: Option<String> = None;
    while let Ok(first) = receiver.recv() {
        buffer.clear();
        for pending in std::iter::once(first).chain(receiver.try_iter()) {
            if failed.is_none() {
                match pending.line {
                    Line::Encoded(line) => buffer.extend_from_slice(&line),
                    Line::Deferred(encode) => encode(&mut buffer),
                }
            }
            waiters.extend(pending.durable);
        }
        // A batch nobody waits for is written (a kill -9 cannot lose it) but not fsynced: the
        // next batch's fsync covers it, and an fsync costs more than the lines' writing.
        let result = match &failed {
            Some(message) => Err(message.clone()),
            None => file
                .write_all(&buffer)
                .and_then(|()| {
                    if waiters.is_empty() {
                        Ok(())
                    } else {
                        file.sync_data()
                    }
                })
                .map_err(|e| e.to_string()),
        };
        if let Err(message) = &result {
            failed.get_or_insert_with(|| message.clone());
        }
        for durable in waiters.drain(..) {
            let _ = durable.send(result.clone());
        }
    }
}

/// Reads every complete line of a journal as a `T`. A last line cut short by a crash, or any
/// line that is not a `T`, is skipped and counted.
pub fn read_lines<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<(Vec<T>, usize), JournalError> {
    let io_err = |source| JournalError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let mut records = Vec::new();
    let mut unreadable = 0;
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(io_err)?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice(&line) {
            Ok(value) => records.push(value),
            Err(_) => unreadable += 1,
        }
    }
    Ok((records, unreadable))
}

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "lowercase")]
pub enum Record {
    /// A run began (a fresh one or a resume).
    Run {
        plan: PlanInfo,
        started_at: String,
        flotilla_version: String,
        operations: usize,
        resume: bool,
        settings: serde_json::Value,
    },
    /// An operation is about to send its PUT; written and fsynced before the PUT goes out.
    Intent {
        index: usize,
        /// The rollback PUT of a failed upgrade rather than the change itself.
        #[serde(default)]
        rollback: bool,
        cluster_id: String,
        namespace: String,
        name: String,
        action: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version_before: Option<i64>,
        at: String,
    },
    /// An operation ended, however it ended.
    Finished {
        /// The name of the operation's wave.
        wave: String,
        result: Box<OperationResult>,
    },
}

/// A journal read back: its runs' plan identities and the last word on each operation.
#[derive(Clone, Debug, Default)]
pub struct JournalState {
    pub plans: Vec<PlanInfo>,
    pub first_started_at: Option<String>,
    pub operations_in_plan: usize,
    pub last: std::collections::BTreeMap<usize, Record>,
    /// Lines that could not be read (a line torn by a crash).
    pub unreadable: usize,
    /// When the file was last written: no request of the run that wrote it left much later.
    pub last_written: Option<jiff::Timestamp>,
}

impl JournalState {
    pub fn read(path: &Path) -> Result<Self, JournalError> {
        let (records, unreadable) = read_lines::<Record>(path)?;
        let mut state = JournalState::default();
        for record in records {
            match &record {
                Record::Run {
                    plan,
                    started_at,
                    operations,
                    resume,
                    ..
                } => {
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
                }
                Record::Intent { index, .. } => {
                    state.last.insert(*index, record);
                }
                Record::Finished { result, .. } => {
                    state.last.insert(result.index, record);
                }
            }
        }
        state.unreadable = unreadable;
        state.last_written = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| jiff::Timestamp::try_from(t).ok());
        Ok(state)
    }

    /// The plan hash of the journal's runs, when they agree.
    pub fn plan(&self) -> Option<&PlanInfo> {
        self.plans.last()
    }

    /// What `--resume` does with operation `index`; `None`: run it as usual.
    pub fn prior_state(&self, index: usize) -> Option<engine::PriorState> {
        match self.last.get(&index)? {
            Record::Finished { result, .. } => match result.outcome {
                // An operation found already as planned is as done as one that changed it.
                engine::Outcome::Succeeded | engine::Outcome::Unchanged => {
                    Some(engine::PriorState::AlreadySucceeded(Some(result.clone())))
                }
                // Interrupted after its PUT left: it may have been applied.
                engine::Outcome::Cancelled if result.put_sent => {
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
            Record::Run { .. } => None,
        }
    }

    /// When the newest PUT that may still be in flight was announced: a run killed a moment
    /// ago may have requests on the wire that the service has yet to apply.
    pub fn last_in_flight_intent(&self) -> Option<jiff::Timestamp> {
        self.last
            .iter()
            .filter(|(index, _)| {
                matches!(
                    self.prior_state(**index),
                    Some(engine::PriorState::InFlight { .. })
                )
            })
            .filter_map(|(_, record)| match record {
                Record::Intent { at, .. } => at.parse().ok(),
                _ => None,
            })
            .max()
    }

    /// Every operation's prior state, for the engine's options.
    pub fn resume_states(&self) -> std::collections::HashMap<usize, engine::PriorState> {
        self.last
            .keys()
            .filter_map(|&index| Some((index, self.prior_state(index)?)))
            .collect()
    }

    /// The report of everything the journal knows: each operation's last recorded end; one
    /// whose PUT was sent with no end recorded is reported cancelled.
    pub fn to_report(&self) -> RunReport {
        let mut operations = Vec::with_capacity(self.last.len());
        // Only an interrupt cancels an operation; a crash leaves intents without an end.
        let mut interrupted = false;
        for record in self.last.values() {
            match record {
                Record::Finished { wave, result } => {
                    interrupted |= result.outcome == engine::Outcome::Cancelled;
                    operations.push(convert::operation(result, wave));
                }
                Record::Intent {
                    index,
                    rollback: _,
                    cluster_id,
                    namespace,
                    name,
                    action,
                    version_before,
                    ..
                } => operations.push(OperationReport {
                    index: *index,
                    cluster: crate::report::model::ClusterInfo {
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
                    attempts: Vec::new(),
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
        let plan = self.plan().cloned().unwrap_or(PlanInfo {
            name: String::new(),
            hash: String::new(),
            shard: None,
        });
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
            missing_shards: Vec::new(),
            operations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_journal_another_run_is_writing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let _first = JournalFile::open(&path).unwrap();
        let Err(second) = JournalFile::open(&path) else {
            panic!("a second writer got the journal");
        };
        assert!(matches!(second, JournalError::Locked { .. }), "{second}");
        assert!(second.to_string().contains("--journal"), "{second}");
    }

    #[tokio::test]
    async fn appended_lines_are_durable_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/run.jsonl");
        let journal = JournalFile::open(&path).unwrap();
        let writes: Vec<_> = (0..100)
            .map(|i| journal.append(&json!({"op": i})))
            .collect();
        for w in futures::future::join_all(writes).await {
            w.unwrap();
        }
        let (records, unreadable) = read_lines::<serde_json::Value>(&path).unwrap();
        assert_eq!(unreadable, 0);
        assert_eq!(records.len(), 100);
        assert_eq!(records[42], json!({"op": 42}));
    }

    #[tokio::test]
    async fn a_line_queued_without_waiting_is_durable_before_any_later_line_is_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let journal = JournalFile::open(&path).unwrap();
        for i in 0..50 {
            journal.record(json!({"end": i})).unwrap();
        }
        journal.append(&json!({"intent": 50})).await.unwrap();
        let (records, _) = read_lines::<serde_json::Value>(&path).unwrap();
        assert_eq!(
            records.len(),
            51,
            "the intent's fsync covers every line before it"
        );
        assert_eq!(records[0], json!({"end": 0}));
        assert_eq!(records[50], json!({"intent": 50}));
        journal.record(json!({"end": 51})).unwrap();
        journal.sync().await.unwrap();
        assert_eq!(read_lines::<serde_json::Value>(&path).unwrap().0.len(), 52);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn after_a_failed_write_every_later_line_fails_too() {
        let journal = JournalFile::open(Path::new("/dev/full")).unwrap();
        journal.record(json!({"end": 1})).unwrap();
        let first = journal.append(&json!({"intent": 2})).await;
        assert!(
            matches!(first, Err(JournalError::Write { .. })),
            "{first:?}"
        );
        let later = journal.sync().await;
        assert!(
            matches!(later, Err(JournalError::Write { .. })),
            "{later:?}"
        );
    }

    #[tokio::test]
    async fn a_torn_last_line_is_skipped_and_does_not_corrupt_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        std::fs::write(&path, b"{\"op\":1}\n{\"op\":2,\"resu").unwrap();
        let journal = JournalFile::open(&path).unwrap();
        journal.append(&json!({"op": 3})).await.unwrap();
        let (records, unreadable) = read_lines::<serde_json::Value>(&path).unwrap();
        assert_eq!(records, vec![json!({"op": 1}), json!({"op": 3})]);
        assert_eq!(unreadable, 1);
    }

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
        };
        let mut result = OperationResult::new(&op, outcome, false);
        result.put_sent = put_sent;
        result.version_before = Some(1);
        Record::Finished {
            wave: "all".into(),
            result: Box::new(result),
        }
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
            plan: PlanInfo {
                name: "p".into(),
                hash: "ab".repeat(32),
                shard: None,
            },
            started_at: "2026-11-26T00:00:00Z".into(),
            flotilla_version: "0".into(),
            operations,
            resume,
            settings: json!({}),
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
}
