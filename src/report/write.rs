//! Writing report files atomically, merging the JSON reports of shards, and judging a merged
//! report as its waves' gate.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use super::model::{FORMAT_VERSION, Outcome, RunReport, Summary, WaveGate};
use super::render::{self, ReportFormat};
use crate::plan::resolved::{FailureBudget, duration_text};

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
        let written = if is_stdout(path) {
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .map_err(|e| e.to_string())
        } else {
            write_atomically(path, text.as_bytes()).map_err(|e| e.to_string())
        };
        if let Err(e) = written {
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

/// `-`: a report file flag's way of saying standard output.
pub fn is_stdout(path: &Path) -> bool {
    path == Path::new("-")
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
/// times spanning all of them. Reports of one wave selection (`--wave`) form one split, each
/// shard once; shards not given are listed as missing, so that a merged report never passes for
/// the whole of what it covers without all of it. Reports of other waves may be merged along
/// (a merged canary gate with the shards of the next wave, say), never two covering one wave.
///
/// The merged report carries no single shard's settings: `settings.shard` gives way to
/// `settings.shards`, every shard merged, and `settings.wave` names every wave merged when the
/// reports' differ. One that lacks a shard is marked `incomplete`.
pub fn merge(reports: Vec<(String, RunReport)>) -> Result<RunReport, ReportError> {
    check_one_run(&reports)?;
    let Split {
        missing: missing_shards,
        present: shards,
        waves,
    } = check_split(&reports)?;
    let same_waves_setting = reports
        .windows(2)
        .all(|pair| pair[0].1.settings.get("wave") == pair[1].1.settings.get("wave"));
    let mut reports = reports.into_iter();
    let (_, mut merged) = reports.next().ok_or(ReportError::Empty)?;
    // `check_one_run` has already refused reports of another plan.
    for (_, report) in reports {
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
        merged.plan.max_failures = merged.plan.max_failures.or(report.plan.max_failures);
        merged.operations.extend(report.operations);
    }
    merged.operations.sort_by_key(|op| op.index);
    // Read in this build's shape (a version 1 report too), and written in it.
    merged.format_version = FORMAT_VERSION;
    merged.plan.shard = None;
    if let Some(settings) = merged.settings.as_object_mut() {
        settings.remove("shard");
        settings.insert("shards".into(), shards.into());
        if !same_waves_setting {
            let names: Vec<&str> = waves.iter().map(|w| w.name.as_str()).collect();
            settings.insert("wave".into(), names.into());
        }
    }
    merged.plan.waves = waves;
    merged.incomplete = !missing_shards.is_empty();
    merged.missing_shards = missing_shards;
    merged.summary = Summary::of(&merged.operations);
    Ok(merged)
}

/// What the shards of a merge are: those missing and those given (`K/N`, with the waves in
/// brackets for a wave selection), and the waves of all of them in plan order.
struct Split {
    missing: Vec<String>,
    present: Vec<String>,
    waves: Vec<WaveGate>,
}

/// The reports of one wave selection: its waves (empty: the whole plan, or a report older than
/// the waves it carries) and its reports.
struct Group<'a> {
    waves: &'a [WaveGate],
    reports: Vec<&'a (String, RunReport)>,
}

impl Group<'_> {
    fn names(&self) -> Vec<&str> {
        self.waves.iter().map(|w| w.name.as_str()).collect()
    }

    /// Where the group starts in the plan: its first operation's index.
    fn first_index(&self) -> usize {
        self.reports
            .iter()
            .flat_map(|(_, r)| r.operations.iter().map(|op| op.index))
            .min()
            .unwrap_or(usize::MAX)
    }
}

/// Settings every report of one merge must share: shards selected differently, or some
/// rehearsed (`--simulate`) and some real, do not add up to one run of the plan.
const SHARED_SETTINGS: &[&str] = &["simulate", "time_scale", "dry_run", "select"];

/// Refuses reports of different plans, or of runs with different [`SHARED_SETTINGS`], before
/// anything else is compared.
fn check_one_run(reports: &[(String, RunReport)]) -> Result<(), ReportError> {
    let Some((first_path, first)) = reports.first() else {
        return Ok(());
    };
    let setting = |report: &RunReport, key: &str| {
        report
            .settings
            .get(key)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    };
    for (path, report) in &reports[1..] {
        if report.plan.hash != first.plan.hash {
            return Err(ReportError::DifferentPlan {
                path: path.clone(),
                found: report.plan.name.clone(),
                found_hash: report.plan.hash.clone(),
                expected: first.plan.name.clone(),
                expected_hash: first.plan.hash.clone(),
            });
        }
        for key in SHARED_SETTINGS {
            let (theirs, ours) = (setting(report, key), setting(first, key));
            if theirs != ours {
                return Err(ReportError::NotOneSplit(format!(
                    "{path}: `{key}` is {theirs} where {first_path} has {ours}; the reports of one \
                     merge must come from runs with the same {}",
                    SHARED_SETTINGS.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// Groups `reports` by the waves they cover, and checks that each group is at most one split
/// `1/N … N/N`, each shard once, and that no two groups cover one wave. Returns the shards
/// missing from each split (`K/N`, with the wave names in brackets for a wave selection), and the
/// waves of all groups in plan order.
fn check_split(reports: &[(String, RunReport)]) -> Result<Split, ReportError> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    for entry in reports {
        let waves = entry.1.plan.waves.as_slice();
        let same = |g: &Group<'_>| {
            g.waves
                .iter()
                .map(|w| &w.name)
                .eq(waves.iter().map(|w| &w.name))
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some(group) => group.reports.push(entry),
            None => groups.push(Group {
                waves,
                reports: vec![entry],
            }),
        }
    }
    for (i, a) in groups.iter().enumerate() {
        for b in &groups[i + 1..] {
            let (names_a, names_b) = (a.names(), b.names());
            if names_a.is_empty()
                || names_b.is_empty()
                || names_a.iter().any(|n| names_b.contains(n))
            {
                let covers = |names: &[&str]| {
                    if names.is_empty() {
                        "the whole plan".to_owned()
                    } else {
                        format!("wave(s) {}", names.join(", "))
                    }
                };
                return Err(ReportError::NotOneSplit(format!(
                    "{} covers {} and {} covers {}: merged, they would count operations twice",
                    a.reports[0].0,
                    covers(&names_a),
                    b.reports[0].0,
                    covers(&names_b)
                )));
            }
        }
    }
    groups.sort_by_key(Group::first_index);
    let mut missing = Vec::new();
    let mut present = Vec::new();
    let mut waves = Vec::new();
    for group in &groups {
        let label = if group.waves.is_empty() {
            String::new()
        } else {
            format!(" ({})", group.names().join(", "))
        };
        missing.extend(
            missing_in_split(&group.reports)?
                .into_iter()
                .map(|shard| format!("{shard}{label}")),
        );
        let mut given = Vec::new();
        for (_, report) in &group.reports {
            match &report.plan.shard {
                Some(shard) => given.push(format!("{shard}{label}")),
                // A merged report: the shards it merged.
                None => given.extend(
                    report
                        .settings
                        .get("shards")
                        .and_then(serde_json::Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.as_str().map(ToOwned::to_owned)),
                ),
            }
        }
        given.sort_by_key(|label| shard_number(label));
        present.extend(given);
        waves.extend(group.waves.iter().cloned());
    }
    Ok(Split {
        missing,
        present,
        waves,
    })
}

/// K of `K/N` or `K/N (waves)`.
fn shard_number(label: &str) -> u32 {
    label
        .split_once('/')
        .and_then(|(k, _)| k.parse().ok())
        .unwrap_or(u32::MAX)
}

/// One group's reports form at most one split `1/N … N/N`, each shard once; returns the shards
/// of that split that are not there. A single unsharded report is the whole group; with others
/// it would count their operations twice.
fn missing_in_split(reports: &[&(String, RunReport)]) -> Result<Vec<String>, ReportError> {
    use crate::plan::select::Shard;
    let mut seen: std::collections::BTreeMap<u32, &str> = std::collections::BTreeMap::new();
    let mut split: Option<(u32, &str)> = None;
    for (path, report) in reports.iter().copied() {
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

/// What the gate of a merged report decided: each wave judged over all its shards together.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    pub waves: Vec<WaveVerdict>,
    /// What failed the gate beyond one wave: missing shards, an interruption, the run's budget.
    pub problems: Vec<String>,
    /// The soak to wait out before the next wave may start: only when the gate passed.
    pub soak: Option<Soak>,
}

impl Gate {
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.waves.iter().all(|w| w.failure.is_none())
    }
}

/// One wave at its gate.
#[derive(Clone, Debug, PartialEq)]
pub struct WaveVerdict {
    pub name: String,
    pub total: usize,
    pub failed: usize,
    /// Skipped by a halt or cancelled: never run.
    pub not_run: usize,
    pub max_failures: Option<FailureBudget>,
    /// Why the wave failed its gate; none when it passed.
    pub failure: Option<String>,
}

impl std::fmt::Display for WaveVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let budget = self
            .max_failures
            .map(|b| format!(" (max {b})"))
            .unwrap_or_default();
        match &self.failure {
            None => write!(
                f,
                "wave `{}` passed: {} of {} failed{budget}",
                self.name, self.failed, self.total
            ),
            Some(why) => write!(f, "wave `{}` failed: {why}", self.name),
        }
    }
}

/// A wave's soak, waited out by its gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soak {
    pub after_wave: String,
    pub next_wave: String,
    pub duration: Duration,
}

impl std::fmt::Display for Soak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "soaking {} after wave `{}` before wave `{}` may start (the plan's soak)",
            duration_text::format(self.duration),
            self.after_wave,
            self.next_wave
        )
    }
}

/// Judges a merged report as the gate of the waves it covers: each wave's failure budget over
/// all its shards together (not per shard), the run's budget over every operation merged, no
/// operation left unrun, no shard missing, nothing interrupted. `None` for a report that carries
/// no waves (written before reports did): its verdict is all there is to judge.
pub fn gate(report: &RunReport) -> Option<Gate> {
    if report.plan.waves.is_empty() {
        return None;
    }
    let mut problems = Vec::new();
    if !report.missing_shards.is_empty() {
        problems.push(format!(
            "shard(s) {} missing: their operations are not in the reports merged",
            report.missing_shards.join(", ")
        ));
    }
    if report.interrupted {
        problems.push("a shard was interrupted".to_owned());
    }
    let waves: Vec<WaveVerdict> = report
        .plan
        .waves
        .iter()
        .map(|wave| judge_wave(report, wave))
        .collect();
    let failed = report.summary.failed;
    if let Some(budget) = report.plan.max_failures
        && budget.exceeded(failed, report.summary.total)
    {
        problems.push(format!(
            "the run's max_failures {budget}: {failed} of {} failed",
            report.summary.total
        ));
    }
    let mut gate = Gate {
        waves,
        problems,
        soak: None,
    };
    if gate.passed()
        && let Some(last) = report.plan.waves.last()
        && let Some(next) = &last.next_wave
        && last.soak_ms > 0
    {
        gate.soak = Some(Soak {
            after_wave: last.name.clone(),
            next_wave: next.clone(),
            duration: Duration::from_millis(last.soak_ms),
        });
    }
    Some(gate)
}

fn judge_wave(report: &RunReport, wave: &WaveGate) -> WaveVerdict {
    let operations = || report.operations.iter().filter(|op| op.wave == wave.name);
    let total = operations().count();
    let failed = operations()
        .filter(|op| op.outcome == Outcome::Failed)
        .count();
    let not_run = operations()
        .filter(|op| matches!(op.outcome, Outcome::Skipped | Outcome::Cancelled))
        .count();
    let failure = if not_run > 0 {
        Some(format!(
            "{not_run} of {total} operation(s) not run (skipped by a halt, or cancelled)"
        ))
    } else if let Some(budget) = wave.max_failures
        && budget.exceeded(failed, total)
    {
        Some(format!(
            "{failed} of {total} failed, over its max_failures {budget}"
        ))
    } else {
        None
    };
    WaveVerdict {
        name: wave.name.clone(),
        total,
        failed,
        not_run,
        max_failures: wave.max_failures,
        failure,
    }
}
