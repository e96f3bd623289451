//! `flotilla validate`: schema and semantic checks of plan files, every problem reported with its position.

use std::path::PathBuf;

use super::Environment;
use super::error::Error;
use crate::error::Exit;
use crate::plan;
use crate::terminal::escape_control;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flotilla validate plans/*.yaml\n  IMAGE_TAG=2.5.0 flotilla validate plans/demo.yaml\n\nExit codes: 0 every plan is valid; 2 a problem was found (each printed as PATH:LINE:COL)."
)]
pub struct ValidateArgs {
    /// Plan files to check (`-`: standard input).
    #[arg(required = true)]
    pub plans: Vec<PathBuf>,
}

/// Checks every plan; valid ones get a one-line summary on stdout, problems go to stderr as
/// `PATH:LINE:COL: message` with the source line and a caret.
pub fn run(args: ValidateArgs, _env: &Environment) -> Result<Exit, Error> {
    let mut problems = 0;
    for path in &args.plans {
        match plan::load_path(path) {
            Ok(plan) => println!(
                "{}",
                escape_control(&format!(
                    "{}: ok: plan `{}`, {} operation(s) in {} wave(s)",
                    path.display(),
                    plan.name,
                    plan.operation_count(),
                    plan.waves.len()
                ))
            ),
            Err(err) => {
                problems += err.diagnostics().len();
                eprintln!("{err}");
                eprintln!(
                    "{}: {} problem(s) found",
                    escape_control(&path.to_string_lossy()),
                    err.diagnostics().len()
                );
            }
        }
    }
    if problems > 0 {
        Err(Error::InvalidPlan { count: problems })
    } else {
        Ok(Exit::Success)
    }
}
