//! `flotilla undo`: rolls back what a run changed, each release to its revision before the run,
//! through the same engine and dispatcher as `apply` (journaled, resumable, rate-limited).

use super::plan::SelectionArgs;
use std::path::PathBuf;

use super::Environment;
use super::apply::{
    ApplyArgs, ApplySettings, LimitArgs, OutputArgs, SimulateArgs, check_report_paths,
};
use super::error::Error;
use super::logging::LogSink;
use super::net::NetworkArgs;
use crate::error::Exit;
use crate::journal::default_journal_path;
use crate::plan::resolved::short;
use crate::report::undo::{self, UndoPlan, WaveOrder};

pub const UNDO_EXAMPLES: &str = "\
Examples:
  flotilla undo report.json --plan plans/fleet-upgrade.yaml
  flotilla undo .flotilla/journal/shop-v2-4-3f9a1c2b4d5e.jsonl --plan plans/demo.yaml --keep-order
  flotilla undo report.json --plan plans/fleet-upgrade.yaml --resume
  flotilla undo report.json --plan plans/demo.yaml --simulate --sim-state sim-state.json";

#[derive(Debug, clap::Args)]
#[command(after_help = UNDO_EXAMPLES)]
pub struct UndoArgs {
    /// The run to undo: its JSON report (`--report-json`) or its journal.
    pub run: PathBuf,
    /// The plan the run used: it gives the clusters' endpoints, regions and projects (a report
    /// names clusters only), the rollout, and each wave's soak and failure budget.
    #[arg(long, value_name = "PLAN")]
    pub plan: PathBuf,
    /// Undo the waves in the order the run took them (canary first); by default the run's last
    /// wave is undone first.
    #[arg(long)]
    pub keep_order: bool,
    /// Roll back a release even though it changed since the run (its revision is no longer
    /// the one the run left), and even where it already looks rolled back.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub net: NetworkArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    /// The undo's journal [default: .flotilla/journal/undo-<plan name>-<short hash>.jsonl].
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
    /// Continue an interrupted undo from its journal.
    #[arg(long)]
    pub resume: bool,
    /// Resume even though the undo's journal names another undo.
    #[arg(long, requires = "resume")]
    pub force_resume: bool,

    #[command(flatten)]
    pub simulate: SimulateArgs,
}

pub fn run(args: UndoArgs, env: &Environment, logs: &LogSink) -> Result<Exit, Error> {
    let run = super::report::load(&args.run)?;
    let plan = super::load_plan(&args.plan)?;
    let order = if args.keep_order {
        WaveOrder::Kept
    } else {
        WaveOrder::Reversed
    };
    if run.was_simulated() && !args.simulate.simulate {
        return Err(Error::Usage(format!(
            "{}: the run was a rehearsal against the simulator (--simulate): it changed nothing \
             real, so there is nothing to undo outside the simulator (undo it with --simulate \
             --sim-state FILE to rehearse the undo)",
            args.run.display()
        )));
    }
    let UndoPlan {
        plan: mut undo_plan,
        not_undone,
    } = undo::plan_undo(&run, &plan, order).map_err(|source| Error::Undo {
        path: args.run.clone(),
        source,
    })?;
    if run.plan.hash != plan.hash {
        eprintln!(
            "note: {} differs from the plan the run used (sha256 {} now, {} then); only its clusters, rollout and waves are used",
            args.plan.display(),
            short(&plan.hash),
            short(&run.plan.hash)
        );
    }
    for skipped in &not_undone {
        eprintln!("not undone: {}: {}", skipped.operation, skipped.reason);
    }
    if undo_plan.operation_count() == 0 {
        println!(
            "{}: nothing to undo: the run changed no release{}",
            args.run.display(),
            if not_undone.is_empty() {
                ""
            } else {
                " that undo can roll back"
            }
        );
        return Ok(exit_for(Exit::Success, &not_undone));
    }
    if args.simulate.simulate && args.simulate.sim_state.is_none() {
        return Err(Error::Usage(
            "undo --simulate needs --sim-state FILE: the simulator must hold the releases as the run left them"
                .to_owned(),
        ));
    }
    undo_plan.rollout.override_with(&args.limits.overrides());
    if let Some(factor) = args.simulate.time_scale {
        undo_plan.speed_up(factor);
    }

    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(|| default_journal_path(&undo_plan, None, &[], args.simulate.simulate));
    let simulator = super::apply::simulator_settings(&args.simulate)?;
    super::apply::check_journal_to_resume(args.resume, &journal_path)?;
    let progress = args.output.progress.resolve(env.stderr_is_terminal, env.ci);
    let apply_args = ApplyArgs {
        plan: args.plan,
        net: args.net,
        limits: args.limits,
        selection: SelectionArgs::default(),
        redact: Vec::new(),
        dry_run: false,
        force: args.force,
        output: args.output,
        journal: args.journal,
        resume: args.resume,
        force_resume: args.force_resume,
        simulate: args.simulate,
    };
    check_report_paths(&apply_args, &journal_path)?;
    let settings = ApplySettings {
        plan: undo_plan,
        simulator,
        journal_path,
        shard: None,
        gate_waves: Vec::new(),
        progress,
    };
    let exit = super::apply::run_with(apply_args, settings, env, logs)?;
    Ok(exit_for(exit, &not_undone))
}

/// A run with changes undo could not roll back is not undone: exit 1, unless worse already.
fn exit_for(exit: Exit, not_undone: &[undo::NotUndone]) -> Exit {
    if exit == Exit::Success && !not_undone.is_empty() {
        Exit::Failed
    } else {
        exit
    }
}
