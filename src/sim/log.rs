//! The request log: one entry per request whatever its answer, kept in memory and/or written as
//! JSON lines to `--request-log`, buffered and flushed in the background and at shutdown.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// One request, as the log records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Arrival order, from 0, over every endpoint of the simulator.
    pub seq: u64,
    /// The simulated endpoint the request came to, `http://127.0.0.1:PORT` (one per region or
    /// endpoint of the plan with `apply --simulate`, one per `--listen` with `flotilla sim`).
    #[serde(default)]
    pub endpoint: String,
    /// The `X-Request-Id` of the answer (also set when no answer was sent).
    pub request_id: String,
    /// Arrival and finish, RFC 3339 UTC with microseconds.
    pub arrived: String,
    pub finished: String,
    /// Milliseconds since the simulator started (monotonic, tokio time).
    pub arrived_ms: f64,
    pub finished_ms: f64,
    pub method: String,
    /// The path as received (percent-encoded), without the query.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// `ak:<8 hex>`, `token:<8 hex>` (SHA-256 prefixes) or `anonymous`.
    pub credential: String,
    /// The HTTP status answered; `None` when the connection was cut or the request hangs.
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The fault injected (`throttle`, `reset`, `error`, `ambiguous_error`, `ambiguous_cut`, `hang`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// Whether the request changed the simulator's state.
    pub applied: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("request log {path}: {source}")]
pub struct LogError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

#[derive(Debug, Default)]
struct Buffers {
    /// Entries not yet written to the file.
    unwritten: Vec<LogEntry>,
    /// Every entry, when the log is kept in memory.
    retained: Vec<LogEntry>,
}

/// The log's buffers and file.
#[derive(Debug)]
pub struct RequestLog {
    started: Instant,
    retain: bool,
    buffers: Mutex<Buffers>,
    file: Option<(PathBuf, Mutex<BufWriter<File>>)>,
}

impl RequestLog {
    /// Creates (truncates) the file when there is one. `retain` keeps every entry in memory.
    pub fn open(path: Option<&Path>, retain: bool) -> Result<Self, LogError> {
        let file = match path {
            Some(path) => {
                let file = File::create(path).map_err(|source| LogError {
                    path: path.to_owned(),
                    source,
                })?;
                Some((
                    path.to_owned(),
                    Mutex::new(BufWriter::with_capacity(256 * 1024, file)),
                ))
            }
            None => None,
        };
        Ok(RequestLog {
            started: Instant::now(),
            retain,
            buffers: Mutex::new(Buffers {
                unwritten: Vec::with_capacity(if file.is_some() { 4096 } else { 0 }),
                retained: Vec::with_capacity(if retain { 4096 } else { 0 }),
            }),
            file,
        })
    }

    /// False when entries would go nowhere: the caller need not build them.
    pub fn is_recording(&self) -> bool {
        self.retain || self.file.is_some()
    }

    pub fn has_file(&self) -> bool {
        self.file.is_some()
    }

    /// A point in time, as the log records arrival and finish.
    pub fn stamp(&self) -> Stamp {
        Stamp {
            wall: Timestamp::now(),
            since_start_ms: self.started.elapsed().as_secs_f64() * 1000.0,
        }
    }

    pub fn record(&self, entry: LogEntry) {
        let mut buffers = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        match (self.retain, self.file.is_some()) {
            (true, true) => {
                buffers.retained.push(entry.clone());
                buffers.unwritten.push(entry);
            }
            (true, false) => buffers.retained.push(entry),
            (false, true) => buffers.unwritten.push(entry),
            (false, false) => {}
        }
    }

    /// A copy of every entry so far (empty unless the log is retained in memory).
    pub fn entries(&self) -> Vec<LogEntry> {
        self.buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retained
            .clone()
    }

    /// Writes the unwritten entries to the file and flushes it.
    pub fn flush(&self) -> Result<(), LogError> {
        let Some((path, writer)) = &self.file else {
            return Ok(());
        };
        let entries = {
            let mut buffers = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
            // The next period likely sees as many requests: growing from empty again would
            // copy the entries over and over under the lock the requests wait for.
            let capacity = buffers.unwritten.len();
            std::mem::replace(&mut buffers.unwritten, Vec::with_capacity(capacity))
        };
        let mut writer = writer.lock().unwrap_or_else(|e| e.into_inner());
        let fail = |source| LogError {
            path: path.clone(),
            source,
        };
        for entry in &entries {
            serde_json::to_writer(&mut *writer, entry).map_err(|e| fail(e.into()))?;
            writer.write_all(b"\n").map_err(fail)?;
        }
        writer.flush().map_err(fail)
    }
}

/// A wall-clock and monotonic instant.
#[derive(Clone, Copy, Debug)]
pub struct Stamp {
    pub wall: Timestamp,
    pub since_start_ms: f64,
}

impl Stamp {
    pub fn rfc3339(&self) -> String {
        format!("{:.6}", self.wall)
    }
}
