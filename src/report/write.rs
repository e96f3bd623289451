//! Writing report files atomically, and merging the JSON reports of shards.

use std::io::Write as _;
use std::path::Path;

use super::model::{RunReport, Summary};
use super::render::{self, ReportFormat};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a flotilla JSON report: {message}")]
    Unreadable { path: String, message: String },
    #[error(
        "{path}: report of plan {found} (hash {found_hash:.12}), expected plan {expected} (hash {expected_hash:.12})"
    )]
    DifferentPlan {
        path: String,
        found: String,
        found_hash: String,
        expected: String,
        expected_hash: String,
    },
    #[error("nothing to merge")]
    Empty,
    /// The reports are not one split of the plan: a shard twice, or shards of different splits.
    #[error("{0}")]
    NotOneSplit(String),
}

/// Writes `report` to every file asked for, each as `(flag, format, path)`, and appends its
/// Markdown to `step_summary` (GitHub's `GITHUB_STEP_SUMMARY`) when given. A file that fails does
/// not keep the others from being written; the error names the flag of each that failed. A
/// step summary that cannot be appended to is only a warning: it is not a report the run owes.
pub fn write_reports(
    report: &RunReport,
    files: &[(&str, ReportFormat, &Path)],
    terminal_width: Option<u16>,
    step_summary: Option<&Path>,
) -> Result<(), String> {
    let mut markdown = None;
    let mut failures = Vec::new();
    for &(flag, format, path) in files {
        let text = render::render(report, format, terminal_width);
        if let Err(e) = write_atomically(path, text.as_bytes()) {
            failures.push(format!("{flag} {e}"));
        }
        if format == ReportFormat::Md {
            markdown = Some(text);
        }
    }
    if let Some(summary) = step_summary {
        let markdown = markdown.unwrap_or_else(|| render::markdown(report));
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(summary)
            .and_then(|mut file| file.write_all(markdown.as_bytes()));
        if let Err(e) = appended {
            tracing::warn!("could not append to GITHUB_STEP_SUMMARY: {e}");
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("writing the reports: {}", failures.join("; ")))
    }
}

/// Writes `contents` to `path` as [`crate::atomic_file::write`] does: whole (a temporary file
/// and a rename), or straight through for a stream such as `/dev/stdout`.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), ReportError> {
    crate::atomic_file::write(path, contents).map_err(|source| ReportError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Reads a JSON report written by `--report-json`.
pub fn read_json(path: &Path) -> Result<RunReport, ReportError> {
    let bytes = std::fs::read(path).map_err(|source| ReportError::Io {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ReportError::Unreadable {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Merges the reports of the shards of one plan: operations in plan order, summary recounted,
/// times spanning all of them. Each shard may come once; shards not given are listed as
/// missing, so that a merged report never passes for the whole plan without all of it.
pub fn merge(reports: Vec<(String, RunReport)>) -> Result<RunReport, ReportError> {
    let missing_shards = check_split(&reports)?;
    let mut reports = reports.into_iter();
    let (_, mut merged) = reports.next().ok_or(ReportError::Empty)?;
    for (path, report) in reports {
        if report.plan.hash != merged.plan.hash {
            return Err(ReportError::DifferentPlan {
                path,
                found: report.plan.name,
                found_hash: report.plan.hash,
                expected: merged.plan.name,
                expected_hash: merged.plan.hash,
            });
        }
        if report.started_at < merged.started_at {
            merged.started_at = report.started_at;
        }
        if report.finished_at > merged.finished_at {
            merged.finished_at = report.finished_at;
        }
        merged.duration_ms = merged.duration_ms.max(report.duration_ms);
        merged.halted = merged.halted.or(report.halted);
        merged.interrupted |= report.interrupted;
        merged.credentials_refused = merged.credentials_refused.or(report.credentials_refused);
        merged.operations.extend(report.operations);
    }
    merged.operations.sort_by_key(|op| op.index);
    merged.plan.shard = None;
    merged.missing_shards = missing_shards;
    merged.summary = Summary::of(&merged.operations);
    Ok(merged)
}

/// The shards of `reports` form at most one split `1/N … N/N` of the plan, each shard once;
/// returns the shards of that split that are not there. A single unsharded report is the whole
/// plan; with others it would count their operations twice.
fn check_split(reports: &[(String, RunReport)]) -> Result<Vec<String>, ReportError> {
    use crate::plan::select::Shard;
    let mut seen: std::collections::BTreeMap<u32, &str> = std::collections::BTreeMap::new();
    let mut split: Option<(u32, &str)> = None;
    for (path, report) in reports {
        let Some(text) = &report.plan.shard else {
            if reports.len() > 1 {
                return Err(ReportError::NotOneSplit(format!(
                    "{path}: a whole run of the plan, or a merged report (no --shard); merged with other reports it would count their operations twice"
                )));
            }
            // One report already whole, or merged: what it lacked, it still lacks.
            return Ok(report.missing_shards.clone());
        };
        let shard: Shard = text.parse().map_err(|_| ReportError::Unreadable {
            path: path.clone(),
            message: format!("shard {text:?} is not K/N"),
        })?;
        let (count, first) = *split.get_or_insert((shard.count, path));
        if count != shard.count {
            return Err(ReportError::NotOneSplit(format!(
                "{path} is shard {text}, {first} is of a split into {count}: not one split of the plan"
            )));
        }
        if let Some(other) = seen.insert(shard.index, path) {
            return Err(ReportError::NotOneSplit(format!(
                "{other} and {path} are both shard {text}"
            )));
        }
    }
    let Some((count, _)) = split else {
        return Ok(Vec::new());
    };
    Ok((1..=count)
        .filter(|k| !seen.contains_key(k))
        .map(|k| format!("{k}/{count}"))
        .collect())
}
