//! The command line: raw flags (clap) per subcommand, each validated into settings and dispatched.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use self::error::Error;
use crate::engine::Verdict;
use crate::error::Exit;

/// Upgrade and roll back Helm releases across a fleet of Huawei Cloud CCE Autopilot clusters.
#[derive(Debug, Parser)]
#[command(name = "flotilla", version, about, long_about = None)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    every operation succeeded, or there was nothing to do
  1    an operation failed, was skipped by a halt, or was cancelled
  2    the plan, usage or credentials were invalid, and nothing was sent; or an
       endpoint refused the credentials, and the run stopped at that first refusal
  130  interrupted (SIGINT or SIGTERM)";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check plans against the schema and for semantic mistakes; never touches the network.
    Validate(validate::ValidateArgs),
    /// Upgrade or roll back every release of a plan, wave by wave, within the rate limit.
    Apply(Box<apply::ApplyArgs>),
    /// Show the operations a plan expands to, wave by wave, with the exact request bodies.
    Plan(plan::PlanArgs),
    /// Print the plan's JSON Schema.
    #[command(after_help = "Example:\n  flotilla schema > plan.schema.json")]
    Schema,
    /// Render a journal or a JSON report after the fact, or merge the reports of shards.
    Report(report::ReportArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  flotilla completions bash > /etc/bash_completion.d/flotilla"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Run a local CCE Autopilot release API simulator, with gateway throttling and faults.
    Sim(Box<sim::SimArgs>),
    /// Roll back what a run changed (from its report or journal), each release to its revision
    /// before the run, the run's last wave first.
    Undo(Box<undo::UndoArgs>),
    /// Show each release's state against the plan: in sync, drifted, missing, unhealthy, unknown
    /// or unreachable (GETs only).
    Status(Box<status::StatusArgs>),
    /// Show each release's last revisions, to choose a `release_version` for a rollback plan.
    History(Box<history::HistoryArgs>),
}

/// The one place a run's verdict becomes the process's exit code (errors: [`Error::exit`]).
impl From<Verdict> for Exit {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Succeeded => Exit::Success,
            Verdict::Failed => Exit::Failed,
            Verdict::Interrupted => Exit::Interrupted,
            Verdict::CredentialsRefused => Exit::Invalid,
        }
    }
}

/// What to do after an endpoint refused the credentials, for every message that says so.
pub const CHECK_CREDENTIALS: &str = "Check the AK/SK or token (expired?), the project id of that \
     endpoint's region and the IAM permissions.";

/// Facts about the world the command runs in, found once here and passed down.
#[derive(Clone, Debug)]
pub struct Environment {
    pub stdout_is_terminal: bool,
    pub stderr_is_terminal: bool,
    /// Running under CI (`CI` set to anything but `false`/`0`).
    pub ci: bool,
    /// Columns of the terminal, when there is one.
    pub terminal_width: Option<u16>,
    /// `GITHUB_STEP_SUMMARY`: where GitHub Actions collects a job's Markdown summary.
    pub github_step_summary: Option<std::path::PathBuf>,
}

/// Narrower than this, fitting the table would leave columns a few characters wide.
const MIN_TABLE_WIDTH: u16 = 60;

impl Environment {
    pub fn detect() -> Self {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        let stdout_is_terminal = std::io::stdout().is_terminal();
        let terminal_width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .or_else(|| {
                stdout_is_terminal
                    .then(|| comfy_table::Table::new().width())
                    .flatten()
            })
            // A terminal that reports no width (or a tiny one) gets the table unfitted.
            .filter(|&width| width >= MIN_TABLE_WIDTH);
        Environment {
            stdout_is_terminal,
            stderr_is_terminal: std::io::stderr().is_terminal(),
            ci,
            terminal_width,
            github_step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
                .filter(|s| !s.is_empty())
                .map(Into::into),
        }
    }
}

pub mod apply;
pub mod dispatch;
pub mod error;
pub mod history;
pub mod logging;
pub mod net;
pub mod plan;
pub mod project_ids;
pub mod report;
pub mod sim;
pub mod status;
pub mod undo;
pub mod validate;
pub mod values;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => Exit::Invalid.into(),
            };
        }
    };
    let env = Environment::detect();
    let logs = logging::init(cli.verbose, env.stderr_is_terminal);
    match run(cli, &env, &logs) {
        Ok(exit) => exit.into(),
        Err(err) => {
            if !matches!(err, Error::InvalidPlan { .. }) {
                // An error may quote input: it must not drive the terminal, nor forge a line.
                let lines = err.lines();
                let mut lines = lines.iter().map(|l| crate::terminal::escape_control(l));
                eprintln!("error: {}", lines.next().unwrap_or_default());
                for line in lines {
                    eprintln!("{line}");
                }
            }
            for cause in err.causes() {
                tracing::debug!("caused by: {cause}");
            }
            err.exit().into()
        }
    }
}

/// Loads the plan a subcommand runs; every problem goes to stderr as `file:line:col`, and the
/// error only counts them (exit 2).
fn load_plan(path: &std::path::Path) -> Result<crate::plan::resolved::ExpandedPlan, Error> {
    crate::plan::load_path(path).map_err(|err| {
        eprintln!("{err}");
        Error::InvalidPlan {
            count: err.diagnostics().len(),
        }
    })
}

/// [`load_plan`], then `--redact`'s patterns added to the plan's secret rules.
fn load_plan_redacting(
    path: &std::path::Path,
    redact: &[regex::Regex],
) -> Result<crate::plan::resolved::ExpandedPlan, Error> {
    let mut plan = load_plan(path)?;
    for pattern in redact {
        plan.redactor.add_pattern(pattern.clone());
    }
    Ok(plan)
}

pub fn run(cli: Cli, env: &Environment, logs: &logging::LogSink) -> Result<Exit, Error> {
    match cli.command {
        Command::Apply(args) => apply::run(*args, env, logs),
        Command::Validate(args) => validate::run(args, env),
        Command::Plan(args) => plan::run(args, env, logs),
        Command::Report(args) => report::run(args, env),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "flotilla",
                &mut std::io::stdout(),
            );
            Ok(Exit::Success)
        }
        Command::Sim(args) => sim::run(*args, env),
        Command::Undo(args) => undo::run(*args, env, logs),
        Command::Status(args) => status::run(*args, env, logs),
        Command::History(args) => history::run(*args, env, logs),
        Command::Schema => {
            print!("{}", crate::plan::schema::SCHEMA_TEXT);
            Ok(Exit::Success)
        }
    }
}

/// A JSON document as a read-only command prints it: pretty, ending in a newline, with control
/// characters escaped so that no answer's text can drive the terminal.
fn json_output(what: &'static str, doc: &impl serde::Serialize) -> Result<String, Error> {
    let mut s =
        serde_json::to_string_pretty(doc).map_err(|source| Error::Encode { what, source })?;
    s.push('\n');
    Ok(crate::terminal::escape_control_in_json(&s).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_subcommand_help_carries_an_example() {
        let cli = Cli::command();
        for sub in cli.get_subcommands().filter(|s| s.get_name() != "help") {
            let help = sub
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                help.contains("Example"),
                "`flotilla {} --help` has no example",
                sub.get_name()
            );
        }
    }

    #[test]
    fn a_refused_credential_exits_2_like_invalid_credentials() {
        assert_eq!(Exit::from(Verdict::CredentialsRefused), Exit::Invalid);
        assert_eq!(Exit::from(Verdict::Failed), Exit::Failed);
        assert!(EXIT_CODES_HELP.contains("refused the credentials"));
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
