//! `flotilla report`: render a journal or a JSON report after the fact, and merge shards' reports.

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
    after_help = "Examples:\n  flotilla report .flotilla/journal/magento-v2-3f9a1c2b4d5e.jsonl\n  flotilla report report.json --format md >> \"$GITHUB_STEP_SUMMARY\"\n  flotilla report merge report-*.json -o report.json"
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
    /// Merge the JSON reports of `--shard` jobs of one plan into one report.
    Merge {
        /// JSON reports written by `apply --report-json`.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Where to write the merged report (stdout when absent).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// A JSON report is one JSON object; a journal is JSON lines.
pub(super) fn load(path: &Path) -> Result<RunReport, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Input {
        path: path.to_owned(),
        source,
    })?;
    if let Ok(report) = serde_json::from_slice::<RunReport>(&bytes) {
        return Ok(report);
    }
    let state = JournalState::read(path).map_err(Error::Journal)?;
    if state.plans.is_empty() {
        return Err(Error::Usage(format!(
            "{}: neither a flotilla journal nor a JSON report",
            path.display()
        )));
    }
    Ok(state.to_report())
}

pub fn run(args: ReportArgs, env: &Environment) -> Result<Exit, Error> {
    match (args.merge, args.input) {
        (Some(ReportCommand::Merge { reports, output }), _) => {
            let mut loaded = Vec::with_capacity(reports.len());
            for path in &reports {
                let report = write::read_json(path).map_err(Error::ReportInput)?;
                loaded.push((path.display().to_string(), report));
            }
            let merged = write::merge(loaded).map_err(Error::ReportInput)?;
            let text = render::render(&merged, ReportFormat::Json, env.terminal_width);
            match output {
                Some(path) => {
                    write::write_atomically(&path, text.as_bytes()).map_err(Error::ReportOutput)?
                }
                None => print!("{text}"),
            }
            Ok(merged.verdict().into())
        }
        (None, Some(input)) => {
            let report = load(&input)?;
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
