//! The journal: a crash-safe JSON-lines record of every operation, read back by `--resume` and
//! by `flotilla report`.
//!
//! # Format
//!
//! Version 3, which this build writes: the first line is the header,
//! `{"format":"flotilla-journal","version":3,"flotilla_version":"0.1.0"}` ([`Header`]), then one
//! [`Record`] per line, tagged by `record`: `run` when a run starts (with every operation it was
//! given), `intent` before a PUT leaves (durable before it leaves), `finished` when an operation
//! ends, `end` when the run ends. Each run appends to the file; a run that is not a resume starts
//! its record afresh.
//!
//! Versions 1 (no header: its first line is a record) and 2, written by earlier builds, have
//! version 3's records without the planned operations, the waves' gates, the time of `finished`
//! and `end`; this build reads them. A run appended to one keeps its header and writes version
//! 3's records, whose new fields the older build ignores and whose `end` line it skips as
//! unreadable. A journal of a newer version, of an older one than [`OLDEST_READABLE_VERSION`],
//! or with another `format`, is refused, by reading and by appending alike, with an error
//! naming its version and this build's.
//!
//! The records are the journal's own types ([`record`]), converted from and to the engine's:
//! changing the engine's types cannot change the file. A change to the records' shape is a new
//! [`FORMAT_VERSION`].
//!
//! # Modules
//!
//! [`file`]: the file, its lock and its group-commit writer thread; [`record`]: the records and
//! the format version; [`resume`]: the state `--resume` continues from; [`report`]: the journal
//! as a run report; [`port`]: the engine's journal port on the file.

pub mod file;
pub mod port;
pub mod record;
pub mod report;
pub mod resume;

pub use file::{
    JournalError, JournalFile, default_journal_path, journals_of_other_hashes, read_lines,
};
pub use port::FileJournal;
pub use record::{FORMAT_MARKER, FORMAT_VERSION, Header, OLDEST_READABLE_VERSION, Record};
pub use resume::{JournalState, ResumeError};
