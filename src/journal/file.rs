//! The journal file: its header, its lock, and the group-commit writer thread; and reading its
//! lines back, once its format is known to be one this build reads.
//!
//! Lines are committed in groups: a writer thread takes every line queued since its last
//! fsync, writes them, fsyncs once, and only then tells each waiting caller that its line is
//! durable. A PUT waits for the acknowledgement of its intent line, and lines are written in
//! the order they were queued, so every line queued before an intent is durable before that
//! PUT leaves: a kill -9 at any instant can lose only lines queued after the last request that
//! changed anything.
//!
//! A new file's first line is the [`Header`]; the writer thread writes it before any record, in
//! the first group. An existing file is checked before anything is appended to it, and read
//! only when its format is one this build reads (see [`super::record::format_of`]). The first
//! line that is a JSON object decides the format, so a header torn by a crash before anything
//! else was written counts as an unreadable line, not as a journal of no known format.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::thread;

use tokio::sync::oneshot;

use super::record::{FORMAT_MARKER, FORMAT_VERSION, FormatProblem, Header, format_of};
use crate::engine;
use crate::plan::resolved::{ExpandedPlan, short};
use crate::plan::select::Shard;

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
    #[error(
        "journal {path}: written in journal format version {version}{}, which this flotilla ({}) cannot read: \
         it reads versions {} to {FORMAT_VERSION} and writes version {FORMAT_VERSION}; \
         use a flotilla that reads it, or give a new run another --journal",
        written_by.as_ref().map(|v| format!(" by flotilla {v}")).unwrap_or_default(),
        env!("CARGO_PKG_VERSION"),
        super::record::OLDEST_READABLE_VERSION
    )]
    Version {
        path: PathBuf,
        version: u64,
        written_by: Option<String>,
    },
    #[error(
        "journal {path}: not a flotilla journal: its first line says format {format}, \
         where this flotilla ({}) writes format \"{FORMAT_MARKER}\" version {FORMAT_VERSION}; \
         give a new run another --journal",
        env!("CARGO_PKG_VERSION")
    )]
    Format { path: PathBuf, format: String },
}

impl JournalError {
    fn format(path: &Path, problem: FormatProblem) -> Self {
        let path = path.to_owned();
        match problem {
            FormatProblem::Unknown { format } => JournalError::Format { path, format },
            FormatProblem::Version {
                version,
                written_by,
            } => JournalError::Version {
                path,
                version,
                written_by,
            },
        }
    }
}

impl From<JournalError> for engine::JournalError {
    fn from(error: JournalError) -> Self {
        engine::JournalError(error.to_string())
    }
}

impl JournalFile {
    /// Opens `path` for appending (creating it and its directory), locks it against other runs
    /// for as long as this one writes it, checks that an existing journal is of a format this
    /// build reads, and starts the writer thread, whose first line in a new file is the header.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        crate::atomic_file::create_parent(path).map_err(io_err)?;
        let mut options = OpenOptions::new();
        options.create(true).read(true).append(true);
        // One rule for every file flotilla writes: readable by its owner only, as the reports
        // are (see `atomic_file`), whatever the umask.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io_err)?;
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
        let is_new = match existing_format(&file).map_err(io_err)? {
            Some(first) => {
                // Appending to an older journal keeps its header (a header can only be a
                // file's first line); an older build ignores the new records' new fields, and
                // skips the lines it cannot read (see the module `journal`).
                format_of(&first).map_err(|problem| JournalError::format(path, problem))?;
                false
            }
            None => true,
        };
        let (queue, receiver) = std_mpsc::channel::<Pending>();
        if is_new {
            let mut header = Vec::new();
            encode_into(&mut header, &Header::current());
            let _ = queue.send(Pending {
                line: Line::Encoded(header),
                durable: None,
            });
        }
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

    /// As [`Self::record`], with the record made by `make` on the writer thread too.
    pub fn record_with<T, F>(&self, make: F) -> Result<(), JournalError>
    where
        T: serde::Serialize,
        F: FnOnce() -> T + Send + 'static,
    {
        let pending = Pending {
            line: Line::Deferred(Box::new(move |buffer| encode_into(buffer, &make()))),
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

/// The first JSON object line of an existing journal; `None` for an empty file (or a device
/// such as `/dev/full`, which is never read: it would never end).
fn existing_format(file: &File) -> io::Result<Option<serde_json::Map<String, serde_json::Value>>> {
    use std::io::{Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(None);
    }
    let mut reader = file.try_clone()?;
    reader.seek(SeekFrom::Start(0))?;
    first_object(&mut BufReader::new(reader))
}

/// The first line of a journal that is a JSON object, which decides its format; `None` for a
/// journal with none (a new file, or one whose only line is a header torn by a crash).
fn first_object(
    reader: &mut impl BufRead,
) -> io::Result<Option<serde_json::Map<String, serde_json::Value>>> {
    for line in reader.split(b'\n') {
        if let Ok(serde_json::Value::Object(first)) = serde_json::from_slice(&line?) {
            return Ok(Some(first));
        }
    }
    Ok(None)
}

/// Reads every complete line of a journal after its header as a `T`, once its format is known
/// to be one this build reads. A last line cut short by a crash, or any line that is not a `T`,
/// is skipped and counted.
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
    let mut format_known = false;
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(io_err)?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if !format_known {
            let Ok(serde_json::Value::Object(first)) = serde_json::from_slice(&line) else {
                unreadable += 1;
                continue;
            };
            format_known = true;
            let (_, is_header) =
                format_of(&first).map_err(|problem| JournalError::format(path, problem))?;
            if is_header {
                continue;
            }
        }
        match serde_json::from_slice(&line) {
            Ok(value) => records.push(value),
            Err(_) => unreadable += 1,
        }
    }
    Ok((records, unreadable))
}

/// `.flotilla/journal/<plan name>-<short plan hash>[-shard-K-of-N][-wave-W1+W2][-simulate].jsonl`:
/// one journal per plan, shard and set of waves, so that the jobs of a wave-by-wave CI run never
/// share one, and a rehearsal (`simulate`) never writes over the journal of a real run. The
/// hash is the plan's, the one `flotilla plan` shows and the reports carry: a plan whose
/// variables changed is another plan, with its own journal.
pub fn default_journal_path(
    plan: &ExpandedPlan,
    shard: Option<Shard>,
    waves: &[String],
    simulate: bool,
) -> PathBuf {
    journal_dir().join(format!(
        "{}-{}{}.jsonl",
        safe_file_name(&plan.name),
        short(&plan.hash),
        safe_file_name(&journal_suffix(shard, waves, simulate))
    ))
}

/// The journals in the default place of the plan named like `plan`, with the same shard, waves
/// and rehearsal, but another hash: the plan, or its variables, changed since they were written.
/// What `--resume` points at when the plan's own default journal is not there; the newest
/// last.
pub fn journals_of_other_hashes(
    plan: &ExpandedPlan,
    shard: Option<Shard>,
    waves: &[String],
    simulate: bool,
) -> Vec<PathBuf> {
    let prefix = format!("{}-", safe_file_name(&plan.name));
    let suffix = format!(
        "{}.jsonl",
        safe_file_name(&journal_suffix(shard, waves, simulate))
    );
    let Ok(entries) = std::fs::read_dir(journal_dir()) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return false;
            };
            name.strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(&suffix))
                .is_some_and(|hash| {
                    hash.len() == 12
                        && hash.bytes().all(|b| b.is_ascii_hexdigit())
                        && hash != short(&plan.hash)
                })
        })
        .map(|entry| journal_dir().join(entry.file_name()))
        .collect();
    // The newest last: the one a resume most likely means.
    found.sort_by_cached_key(|path| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .map(|modified| (modified, path.clone()))
    });
    found
}

fn journal_dir() -> PathBuf {
    Path::new(".flotilla").join("journal")
}

fn journal_suffix(shard: Option<Shard>, waves: &[String], simulate: bool) -> String {
    let mut suffix = String::new();
    if let Some(shard) = shard {
        suffix.push_str(&format!("-shard-{}-of-{}", shard.index, shard.count));
    }
    if !waves.is_empty() {
        suffix.push_str(&format!("-wave-{}", waves.join("+")));
    }
    if simulate {
        suffix.push_str("-simulate");
    }
    suffix
}

fn safe_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[cfg(unix)]
    #[test]
    fn a_new_journal_is_readable_by_its_owner_only_like_the_reports() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        drop(JournalFile::open(&path).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

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

    fn first_line(path: &Path) -> serde_json::Value {
        let text = std::fs::read_to_string(path).unwrap();
        serde_json::from_str(text.lines().next().unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_new_journal_begins_with_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let journal = JournalFile::open(&path).unwrap();
        journal.append(&json!({"op": 1})).await.unwrap();
        assert_eq!(
            first_line(&path),
            json!({
                "format": "flotilla-journal",
                "version": FORMAT_VERSION,
                "flotilla_version": env!("CARGO_PKG_VERSION"),
            })
        );
        drop(journal);
        // The next run appends to it: one header, still first. The writer thread lets go of
        // the file (and its lock) a moment after the last sender is dropped.
        let mut reopened = JournalFile::open(&path);
        for _ in 0..500 {
            if !matches!(reopened, Err(JournalError::Locked { .. })) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            reopened = JournalFile::open(&path);
        }
        let journal = reopened.unwrap();
        journal.append(&json!({"op": 2})).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("flotilla-journal").count(), 1, "{text}");
        let (records, _) = read_lines::<serde_json::Value>(&path).unwrap();
        assert_eq!(records, vec![json!({"op": 1}), json!({"op": 2})]);
    }

    #[tokio::test]
    async fn a_version_1_journal_is_appended_to_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        std::fs::write(&path, "{\"record\":\"run\"}\n").unwrap();
        let journal = JournalFile::open(&path).unwrap();
        journal.append(&json!({"record": "intent"})).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"record\":\"run\"}\n{\"record\":\"intent\"}\n",
            "no header in the middle of a version 1 journal"
        );
    }

    #[tokio::test]
    async fn a_header_torn_by_a_crash_is_an_unreadable_line_and_the_next_run_writes_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        std::fs::write(&path, b"{\"format\":\"flotilla-jou").unwrap();
        let journal = JournalFile::open(&path).unwrap();
        journal.append(&json!({"op": 1})).await.unwrap();
        let (records, unreadable) = read_lines::<serde_json::Value>(&path).unwrap();
        assert_eq!(records, vec![json!({"op": 1})]);
        assert_eq!(unreadable, 1);
    }

    #[test]
    fn a_journal_of_a_newer_version_is_neither_read_nor_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let future = "{\"format\":\"flotilla-journal\",\"version\":4,\"flotilla_version\":\"9.1.0\"}\n\
                      {\"record\":\"run\",\"whatever\":\"version 4 holds\"}\n";
        std::fs::write(&path, future).unwrap();
        let Err(opened) = JournalFile::open(&path) else {
            panic!("a newer journal was opened for appending");
        };
        let Err(read) = read_lines::<serde_json::Value>(&path) else {
            panic!("a newer journal was read");
        };
        for error in [opened, read] {
            assert!(
                matches!(error, JournalError::Version { version: 4, .. }),
                "{error}"
            );
            let message = error.to_string();
            assert!(message.contains("format version 4"), "{message}");
            assert!(message.contains("flotilla 9.1.0"), "{message}");
            assert!(
                message.contains(&format!("writes version {FORMAT_VERSION}")),
                "{message}"
            );
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), future, "untouched");
    }

    #[test]
    fn a_file_of_another_format_is_neither_read_nor_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.jsonl");
        std::fs::write(&path, "{\"format\":\"other-tool\",\"version\":2}\n").unwrap();
        let Err(opened) = JournalFile::open(&path) else {
            panic!("another tool's file was opened for appending");
        };
        let Err(read) = read_lines::<serde_json::Value>(&path) else {
            panic!("another tool's file was read");
        };
        for error in [opened, read] {
            assert!(matches!(error, JournalError::Format { .. }), "{error}");
            assert!(error.to_string().contains("\"other-tool\""), "{error}");
            assert!(error.to_string().contains("flotilla-journal"), "{error}");
        }
    }
}
