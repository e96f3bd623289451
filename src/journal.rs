//! The journal: a crash-safe JSON-lines record of every operation, read back by `--resume`.
//!
//! Lines are committed in groups: a writer thread takes every line queued since its last
//! fsync, writes them, fsyncs once, and only then tells each waiting caller that its line is
//! durable. A PUT waits for that acknowledgement, so a kill -9 at any instant can lose only
//! lines whose PUT was never sent.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::thread;

use tokio::sync::oneshot;

/// A line and the caller waiting for it to be durable.
struct Pending {
    line: Vec<u8>,
    durable: oneshot::Sender<Result<(), String>>,
}

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
}

impl JournalFile {
    /// Opens `path` for appending (creating it and its directory), and starts the writer thread.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err)?;
        ensure_ends_with_newline(path, &mut file).map_err(io_err)?;
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

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one record as a line; the returned future resolves once the line is fsynced.
    pub fn append<T: serde::Serialize>(
        &self,
        record: &T,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + use<T> {
        let mut line = serde_json::to_vec(record).expect("journal records serialise");
        line.push(b'\n');
        let (durable, acknowledged) = oneshot::channel();
        let sent = self.queue.send(Pending { line, durable });
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

/// A line cut short by a crash must not glue itself to the next run's first line.
fn ensure_ends_with_newline(path: &Path, file: &mut File) -> io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let bytes = std::fs::read(path)?;
    if bytes.last() != Some(&b'\n') {
        file.write_all(b"\n")?;
        file.sync_data()?;
    }
    Ok(())
}

fn group_commit(mut file: File, receiver: std_mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(256);
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    while let Ok(first) = receiver.recv() {
        batch.push(first);
        while let Ok(more) = receiver.try_recv() {
            batch.push(more);
        }
        buffer.clear();
        for pending in &batch {
            buffer.extend_from_slice(&pending.line);
        }
        let result = file
            .write_all(&buffer)
            .and_then(|()| file.sync_data())
            .map_err(|e| e.to_string());
        for pending in batch.drain(..) {
            let _ = pending.durable.send(result.clone());
        }
    }
}

/// Reads every complete JSON line of a journal. A last line cut short by a crash, or any line
/// that is not JSON, is skipped and counted.
pub fn read_lines(path: &Path) -> Result<(Vec<serde_json::Value>, usize), JournalError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let (records, unreadable) = read_lines(&path).unwrap();
        assert_eq!(unreadable, 0);
        assert_eq!(records.len(), 100);
        assert_eq!(records[42], json!({"op": 42}));
    }

    #[tokio::test]
    async fn a_torn_last_line_is_skipped_and_does_not_corrupt_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        std::fs::write(&path, b"{\"op\":1}\n{\"op\":2,\"resu").unwrap();
        let journal = JournalFile::open(&path).unwrap();
        journal.append(&json!({"op": 3})).await.unwrap();
        let (records, unreadable) = read_lines(&path).unwrap();
        assert_eq!(records, vec![json!({"op": 1}), json!({"op": 3})]);
        assert_eq!(unreadable, 1);
    }
}
