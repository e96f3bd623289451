//! `flotilla report`: render a journal or a JSON report after the fact, and merge shards' reports
//! as their waves' gate.

use std::path::{Path, PathBuf};

use super::Environment;
use super::error::Error;
use crate::error::Exit;
use crate::journal::JournalState;
use crate::report::model::RunReport;
use crate::report::render::{self, ReportFormat};
use crate::report::write;

#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  flotilla report .flotilla/journal/magento-v2-3f9a1c2b4d5e.jsonl\n  flotilla report report.json --format md >> \"$GITHUB_STEP_SUMMARY\"\n  flotilla report merge canary-*.json -o canary.json   # the gate of wave canary"
)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub merge: Option<ReportCommand>,
    /// A journal (`.jsonl`) or a JSON report written by `--report-json`.
    pub input: Option<PathBuf>,
    /// How to render it.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
}

#[derive(Debug, clap::Subcommand)]
pub enum ReportCommand {
    /// Merge the JSON reports of `--shard` jobs into one report, as the gate of their wave(s):
    /// each wave's failure budget over all its shards, then the wave's soak when it passed.
    #[command(
        after_help = "Exit codes: 0 every wave merged passed its gate (its soak waited out); 1 a wave failed it (over its max_failures or the run's, an operation not run, a shard's report missing); 2 the reports cannot be merged; 130 a shard was interrupted."
    )]
    Merge {
        /// JSON reports written by `apply --report-json`.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Where to write the merged report (stdout when absent).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Do not wait out the last wave's soak after it passed (e.g. for a final summary).
        #[arg(long)]
        no_soak: bool,
    },
}

/// A JSON report is one JSON object; a journal is JSON lines.
pub(super) fn load(path: &Path) -> Result<RunReport, Error> {
    load_telling(path).map(|(report, _)| report)
}

/// As [`load`], with what a person should be told first about a journal's run that died: its
/// report is the journal's best account, not the run's own.
fn load_telling(path: &Path) -> Result<(RunReport, Option<String>), Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Input {
        path: path.to_owned(),
        source,
    })?;
    if let Ok(report) = serde_json::from_slice::<RunReport>(&bytes) {
        return Ok((report, None));
    }
    let state = JournalState::read(path).map_err(Error::Journal)?;
    if state.plans.is_empty() {
        return Err(Error::Usage(format!(
            "{}: neither a flotilla journal nor a JSON report",
            path.display()
        )));
    }
    let report = state.to_report();
    let died = state
        .newest
        .as_ref()
        .is_some_and(|run| !run.planned.is_empty() && run.end.is_none());
    let note = died.then(|| {
        let (in_flight, not_started) = crate::journal::report::died_counts(&report);
        format!(
            "{}: the journal records no end of its newest run: it was killed or crashed. \
             {in_flight} operation(s) were in flight (their PUT may have been applied; \
             `apply --resume` reconciles them), {not_started} never started",
            path.display()
        )
    });
    Ok((report, note))
}

pub fn run(args: ReportArgs, env: &Environment) -> Result<Exit, Error> {
    match (args.merge, args.input) {
        (
            Some(ReportCommand::Merge {
                reports,
                output,
                no_soak,
            }),
            _,
        ) => {
            let mut loaded = Vec::with_capacity(reports.len());
            for path in &reports {
                let report = write::read_json(path).map_err(Error::ReportInput)?;
                loaded.push((path.display().to_string(), report));
            }
            let merged = write::merge(loaded).map_err(Error::ReportInput)?;
            let text = render::render(&merged, ReportFormat::Json, env.terminal_width);
            // Written before the gate waits, so that a cancelled soak still leaves the report.
            match output {
                Some(path) => {
                    write::write_atomically(&path, text.as_bytes()).map_err(Error::ReportOutput)?
                }
                None => print!("{text}"),
            }
            Ok(judge(&merged, no_soak))
        }
        (None, Some(input)) => {
            let (report, note) = load_telling(&input)?;
            if let Some(note) = note {
                eprintln!("note: {}", crate::terminal::escape_control(&note));
            }
            print!(
                "{}",
                render::render(&report, args.format, env.terminal_width)
            );
            Ok(report.verdict().into())
        }
        (None, None) => Err(Error::Usage(
            "report needs a journal or a JSON report, or `report merge`".into(),
        )),
    }
}

/// The gate of a merged report: says on stderr how each wave fared, waits out the soak of a
/// wave that passed (unless `no_soak`), and gives the exit code. A report without waves (older
/// than the gate) exits with its verdict, as before.
fn judge(merged: &RunReport, no_soak: bool) -> Exit {
    let Some(gate) = write::gate(merged) else {
        return merged.verdict().into();
    };
    for wave in &gate.waves {
        eprintln!("gate: {wave}");
    }
    for problem in &gate.problems {
        eprintln!("gate: failed: {problem}");
    }
    if merged.interrupted {
        return Exit::Interrupted;
    }
    if !gate.passed() {
        eprintln!("gate: failed: the next wave must not start");
        return Exit::Failed;
    }
    if let Some(soak) = &gate.soak {
        if no_soak {
            eprintln!(
                "gate: --no-soak: the soak of {} after wave `{}` is not waited out",
                crate::plan::resolved::duration_text::format(soak.duration),
                soak.after_wave
            );
        } else {
            eprintln!("gate: {soak}");
            std::thread::sleep(soak.duration);
            eprintln!("gate: soak over: wave `{}` may start", soak.next_wave);
        }
    }
    Exit::Success
}
