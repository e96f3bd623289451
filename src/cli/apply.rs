//! `flotilla apply`: the dispatcher. It owns the world — signals, timers, the terminal, files —
//! and drives the engine, which talks back through events on a channel.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::dispatch::{Interrupts, watch_run};
use super::error::Error;
use super::logging::LogSink;
use super::net::NetworkArgs;
use super::plan::SelectionArgs;
use super::project_ids::{self, IamLookup, IamOverrides};
use super::{Environment, values};
use crate::cce::client::Client;
use crate::cce::credentials::{self, Credentials};
use crate::engine::{self, EngineOptions};
use crate::error::Exit;
use crate::journal::{
    FileJournal, JournalFile, JournalState, Record, default_journal_path, journals_of_other_hashes,
};
use crate::plan::resolved::{ExpandedPlan, FailureBudget, Rate, RolloutOverrides};
use crate::plan::select::Shard;
use crate::report::model::WaveGate;
use crate::report::progress::{Progress, ProgressMode};
use crate::report::render::{self, ReportFormat};
use crate::report::{convert, write};
use crate::sim::{RunningSim, SimConfig, Simulator};

pub const APPLY_EXAMPLES: &str = "\
Examples:
  flotilla apply plans/demo.yaml --simulate
  flotilla apply plans/fleet-upgrade.yaml --wave gold --shard 2/4 --rate 5 --report-json gold-2.json
  flotilla apply plans/fleet-upgrade.yaml --select env=prod --dry-run
  flotilla apply plans/fleet-upgrade.yaml --resume";

#[derive(Debug, clap::Args)]
#[command(after_help = APPLY_EXAMPLES)]
pub struct ApplyArgs {
    /// The plan file (`-`: standard input).
    pub plan: PathBuf,

    #[command(flatten)]
    pub net: NetworkArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Mask every values key and every value this regular expression finds, in every output
    /// (repeatable).
    #[arg(long = "redact", value_name = "REGEX", value_parser = values::redact_pattern)]
    pub redact: Vec<regex::Regex>,
    /// Send every PUT with `parameters.dry_run: true`: the service validates, nothing changes.
    #[arg(long)]
    pub dry_run: bool,
    /// Send every PUT, even where the release already is as planned.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub output: OutputArgs,

    /// The journal file [default: .flotilla/journal/<plan name>-<short hash>.jsonl].
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
    /// Continue the run recorded in the journal: done operations are left alone, in-flight
    /// ones are reconciled before anything is resent.
    #[arg(long)]
    pub resume: bool,
    /// Resume even though the plan changed since the journal was written.
    #[arg(long, requires = "resume")]
    pub force_resume: bool,

    #[command(flatten)]
    pub simulate: SimulateArgs,
}

/// What a run shows while it runs, and the report files it writes.
#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// How to show progress: bars on a terminal, plain lines in CI.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Write the JSON report here (schema/report.schema.json); `-`: standard output (the table
    /// then goes to stderr).
    #[arg(long, value_name = "PATH")]
    pub report_json: Option<PathBuf>,
    /// Write a JUnit XML report here (`-`: standard output).
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary here (also appended to $GITHUB_STEP_SUMMARY when set).
    #[arg(long, value_name = "PATH")]
    pub summary_md: Option<PathBuf>,
}

/// Flags that override the plan's `rollout`.
#[derive(Debug, Default, clap::Args)]
#[command(next_help_heading = "Rollout overrides")]
pub struct LimitArgs {
    /// Operations in flight, all clusters together.
    #[arg(long, value_parser = values::concurrency, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Operations in flight on one cluster.
    #[arg(long, value_parser = values::per_cluster, value_name = "N")]
    pub per_cluster: Option<usize>,
    /// Requests per second per endpoint, every request counted, or `unlimited`.
    #[arg(long, value_parser = values::rate, value_name = "RATE")]
    pub rate: Option<Rate>,
    /// Requests that may go at once before the rate applies.
    #[arg(long, value_parser = values::burst, value_name = "N")]
    pub burst: Option<u32>,
    /// Attempts per request in all, the first included.
    #[arg(long, value_parser = values::attempts, value_name = "N")]
    pub retry_attempts: Option<u32>,
    /// Failures tolerated before the run halts: a count or a percentage (`10%`).
    #[arg(long, value_parser = values::budget, value_name = "BUDGET")]
    pub max_failures: Option<FailureBudget>,
    /// Time-out of one request.
    #[arg(long, value_parser = values::positive_duration, value_name = "DURATION")]
    pub request_timeout: Option<Duration>,
    /// Do not wait for releases to reach DEPLOYED.
    #[arg(long)]
    pub no_wait: bool,
    /// Do not GET each release before its PUT.
    #[arg(long)]
    pub no_preflight: bool,
}

impl LimitArgs {
    pub fn overrides(&self) -> RolloutOverrides {
        RolloutOverrides {
            concurrency: self.concurrency,
            per_cluster: self.per_cluster,
            rate: self.rate,
            burst: self.burst,
            retry_attempts: self.retry_attempts,
            max_failures: self.max_failures,
            request_timeout: self.request_timeout,
            no_wait: self.no_wait,
            no_preflight: self.no_preflight,
        }
    }
}

/// Running against the built-in simulator.
#[derive(Debug, Default, clap::Args)]
#[command(next_help_heading = "Simulation")]
pub struct SimulateArgs {
    /// Run against a simulator started in-process on a free loopback port, seeded from the
    /// plan, with signature checks on under throwaway credentials.
    #[arg(long, conflicts_with_all = ["endpoint", "iam_endpoint", "token_file"])]
    pub simulate: bool,
    /// Simulated latency per request.
    #[arg(long, requires = "simulate", value_parser = values::duration, value_name = "D")]
    pub sim_latency: Option<Duration>,
    /// Up to this much extra latency, drawn per request.
    #[arg(long, requires = "simulate", value_parser = values::duration, value_name = "D")]
    pub sim_jitter: Option<Duration>,
    /// How long a release stays PENDING_* after a change [default: 2s].
    #[arg(long, requires = "simulate", value_parser = values::duration, value_name = "D")]
    pub sim_settle: Option<Duration>,
    /// Throttle at this many requests per second (429 APIG.0308 beyond).
    #[arg(long, requires = "simulate", value_parser = values::per_second, value_name = "RPS")]
    pub sim_throttle: Option<f64>,
    /// Share of deploys that end FAILED.
    #[arg(long, requires = "simulate", value_parser = values::probability, value_name = "P")]
    pub sim_deploy_fail_rate: Option<f64>,
    /// Share of requests answered 500/502/503 before anything is applied.
    #[arg(long, requires = "simulate", value_parser = values::probability, value_name = "P")]
    pub sim_error_rate: Option<f64>,
    /// Share of requests applied, then answered 500 or cut.
    #[arg(long, requires = "simulate", value_parser = values::probability, value_name = "P")]
    pub sim_ambiguous_rate: Option<f64>,
    /// Share of requests applied, then never answered.
    #[arg(long, requires = "simulate", value_parser = values::probability, value_name = "P")]
    pub sim_hang_rate: Option<f64>,
    /// Share of connections cut before anything is applied.
    #[arg(long, requires = "simulate", value_parser = values::probability, value_name = "P")]
    pub sim_reset_rate: Option<f64>,
    /// Share of answer fields the simulator leaves out or null, as the SDK models allow.
    #[arg(long, requires = "simulate", value_parser = values::probability, value_name = "P")]
    pub sim_null_fields: Option<f64>,
    /// Rehearse F times faster: soaks, polls, waits, time-outs, back-offs, settling and
    /// latency divided by F, rates and the throttle multiplied by F. The report records F.
    #[arg(long, requires = "simulate", value_parser = values::time_scale, value_name = "F")]
    pub time_scale: Option<f64>,
    /// Seed of the simulator's fault draws, to replay a run.
    #[arg(long, requires = "simulate", value_name = "N")]
    pub sim_rng_seed: Option<u64>,
    /// Write the simulator's request log (JSON lines) here.
    #[arg(long, requires = "simulate", value_name = "PATH")]
    pub sim_request_log: Option<PathBuf>,
    /// Give every release the simulator seeds at least N revisions (1 to 1000; a rollback in
    /// the plan gets the revisions it needs anyway).
    #[arg(long, requires = "simulate", value_parser = values::seed_revisions, value_name = "N")]
    pub sim_seed_revisions: Option<u32>,
    /// Load the simulator's releases from this file (`flotilla sim --state`; missing: none)
    /// and write them back at the end, so that a rehearsal can go on (e.g. with `undo`).
    #[arg(long, requires = "simulate", value_name = "PATH")]
    pub sim_state: Option<PathBuf>,
}

/// The validated settings of one `apply` (or of an `undo`, which runs as one).
pub(super) struct ApplySettings {
    pub(super) plan: ExpandedPlan,
    /// With `--simulate`: the simulator's checked settings and the credentials it expects.
    pub(super) simulator: Option<(SimConfig, Credentials)>,
    pub(super) journal_path: PathBuf,
    pub(super) shard: Option<Shard>,
    /// The waves selected, with what their gate (`report merge`) needs; the report carries them.
    pub(super) gate_waves: Vec<WaveGate>,
    pub(super) progress: ProgressMode,
}

impl ApplySettings {
    /// Everything that can be wrong with the plan and the flags is found here. What the journal
    /// holds is read once this run has locked it, still before anything is sent.
    fn from_args(args: &ApplyArgs, env: &Environment) -> Result<Self, Error> {
        let mut whole = super::load_plan_redacting(&args.plan, &args.redact)?;
        whole.rollout.override_with(&args.limits.overrides());
        if let Some(factor) = args.simulate.time_scale {
            whole.speed_up(factor);
        }
        let plan = args.selection.apply_to(&whole, &args.plan)?;
        let gate_waves = WaveGate::of_run(&whole, &args.selection.waves, &plan);
        let shard = args.selection.shard;
        let journal_path = args.journal.clone().unwrap_or_else(|| {
            default_journal_path(&plan, shard, &args.selection.waves, args.simulate.simulate)
        });
        check_report_paths(args, &journal_path)?;
        let simulator = simulator_settings(&args.simulate)?;
        if args.resume && args.journal.is_none() && !journal_path.exists() {
            let others = journals_of_other_hashes(
                &plan,
                shard,
                &args.selection.waves,
                args.simulate.simulate,
            );
            if let Some(newest) = others.last() {
                return Err(Error::Usage(format!(
                    "--resume: no journal of this plan (sha256 {}) at {}; {} is a journal of \
                     plan `{}` with another hash: the plan changed since it was written (its file, \
                     or what its variables put in it). To resume that run anyway, pass \
                     --journal {} --force-resume",
                    plan.short_hash(),
                    journal_path.display(),
                    others
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    plan.name,
                    newest.display()
                )));
            }
        }
        check_journal_to_resume(args.resume, &journal_path)?;
        Ok(ApplySettings {
            plan,
            simulator,
            journal_path,
            shard,
            gate_waves,
            progress: args.output.progress.resolve(env.stderr_is_terminal, env.ci),
        })
    }
}

/// With `--simulate`: the simulator's checked settings and the credentials it expects.
pub(super) fn simulator_settings(
    flags: &SimulateArgs,
) -> Result<Option<(SimConfig, Credentials)>, Error> {
    if !flags.simulate {
        return Ok(None);
    }
    let (config, credentials) = simulator_config(flags);
    config.check().map_err(Error::SimulatorConfig)?;
    Ok(Some((config, credentials)))
}

/// `--resume` needs a journal to continue from.
pub(super) fn check_journal_to_resume(resume: bool, journal: &Path) -> Result<(), Error> {
    if resume && !journal.exists() {
        return Err(Error::Usage(format!(
            "--resume: no journal at {} (pass --journal PATH to name it)",
            journal.display()
        )));
    }
    Ok(())
}

/// The report files asked for: the flag that names each, its format, its path.
fn report_paths(args: &ApplyArgs) -> impl Iterator<Item = (&'static str, ReportFormat, &Path)> {
    [
        (
            "--report-json",
            ReportFormat::Json,
            &args.output.report_json,
        ),
        ("--junit", ReportFormat::Junit, &args.output.junit),
        ("--summary-md", ReportFormat::Md, &args.output.summary_md),
    ]
    .into_iter()
    .filter_map(|(flag, format, path)| Some((flag, format, path.as_deref()?)))
}

/// A report that cannot be written is found before anything is sent, not after the run; so is
/// one that would overwrite the journal or another report.
pub(super) fn check_report_paths(args: &ApplyArgs, journal: &Path) -> Result<(), Error> {
    use crate::atomic_file::{check, destination};
    let mut taken = vec![("--journal", destination(journal))];
    let mut to_stdout: Option<&str> = None;
    for (flag, _, path) in report_paths(args) {
        if write::is_stdout(path) {
            if let Some(other) = to_stdout.replace(flag) {
                return Err(Error::Usage(format!(
                    "{flag} -: {other} already goes to standard output; one would run into the other"
                )));
            }
            continue;
        }
        let lands = destination(path);
        if let Some((other, _)) = taken.iter().find(|(_, file)| *file == lands) {
            return Err(Error::Usage(format!(
                "{flag} {}: the same file as {other}; one would overwrite the other",
                path.display()
            )));
        }
        check(path).map_err(|source| Error::ReportPath {
            flag,
            path: path.to_owned(),
            source,
        })?;
        taken.push((flag, lands));
    }
    Ok(())
}

pub fn run(args: ApplyArgs, env: &Environment, logs: &LogSink) -> Result<Exit, Error> {
    let settings = ApplySettings::from_args(&args, env)?;
    run_with(args, settings, env, logs)
}

/// Runs an expanded plan whose settings are validated: `apply`'s, or an `undo`'s.
pub(super) fn run_with(
    args: ApplyArgs,
    settings: ApplySettings,
    env: &Environment,
    logs: &LogSink,
) -> Result<Exit, Error> {
    logs.mask_with(settings.plan.redactor.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    runtime.block_on(apply(args, settings, env, logs))
}

/// Where requests go and with which credentials.
struct Target {
    credentials: Credentials,
    simulator: Option<RunningSim>,
    /// With `--simulate`: each simulated endpoint, and the regions of the plan it stands for.
    simulated: Vec<(String, Vec<String>)>,
    /// The regions whose project id IAM must give before the first release request.
    lookups: Vec<IamLookup>,
}

async fn connect(
    args: &ApplyArgs,
    plan: &mut ExpandedPlan,
    simulator: Option<(SimConfig, Credentials)>,
) -> Result<Target, Error> {
    if let Some((config, credentials)) = simulator {
        // One simulated endpoint for each endpoint of the plan (each region's, or a cluster's
        // own), each with its own throttle, so that pacing and 429s are per region as in the
        // cloud.
        let endpoints = plan.endpoints();
        let config = config.with_endpoints(endpoints.len());
        // Its throwaway credentials carry no project id: its IAM gives one per region that
        // the plan does not, so that a rehearsal finds them as a real run would.
        let config = config.with_projects_for(&[&*plan], &mut rand::rng());
        let sim = Simulator::start(config, &[&*plan])
            .await
            .map_err(|source| Error::Simulator {
                context: "starting the simulator: ",
                source,
            })?;
        let urls = sim.base_urls();
        // `endpoints` lists every cluster's endpoint, and the simulator listens once for each.
        let simulated_url: std::collections::HashMap<&str, &String> = endpoints
            .iter()
            .map(|(url, _)| url.as_str())
            .zip(&urls)
            .collect();
        plan.retarget_each(|cluster| simulated_url[cluster.endpoint.as_str()].clone());
        let overrides = IamOverrides {
            flag: Some(sim.base_url()),
            environment: None,
        };
        let lookups = project_ids::lookups(plan, &credentials, &overrides);
        let simulated = urls
            .iter()
            .zip(endpoints)
            .map(|(url, (_, regions))| (url.clone(), regions))
            .collect();
        return Ok(Target {
            credentials,
            simulator: Some(sim),
            simulated,
            lookups,
        });
    }
    args.net.retarget(plan)?;
    let credentials = credentials::resolve(&args.net.credential_sources())?;
    let lookups = project_ids::lookups(
        plan,
        &credentials,
        &IamOverrides::from_process(args.net.iam_endpoint.as_deref()),
    );
    project_ids::check(&lookups, args.net.allow_insecure_http)?;
    Ok(Target {
        credentials,
        simulator: None,
        simulated: Vec::new(),
        lookups,
    })
}

/// `http://127.0.0.1:4001 (cn-north-4), http://127.0.0.1:4002 (cn-east-3)`.
fn simulated_endpoints_text(simulated: &[(String, Vec<String>)]) -> String {
    simulated
        .iter()
        .map(|(url, regions)| format!("{url} ({})", regions.join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The simulator's settings and the throwaway credentials that its signature checks expect.
fn simulator_config(flags: &SimulateArgs) -> (SimConfig, Credentials) {
    let mut rng = rand::rng();
    let (auth, credentials) = crate::sim::auth::throwaway_credentials(&mut rng);
    let mut config = SimConfig::default().with_auth(auth);
    config.retain_log = false;
    config.latency = flags.sim_latency.unwrap_or(config.latency);
    config.jitter = flags.sim_jitter.unwrap_or(config.jitter);
    config.settle = flags.sim_settle.unwrap_or(config.settle);
    config.throttle = flags.sim_throttle.or(config.throttle);
    config.deploy_fail_rate = flags.sim_deploy_fail_rate.unwrap_or(0.0);
    config.error_rate = flags.sim_error_rate.unwrap_or(0.0);
    config.ambiguous_rate = flags.sim_ambiguous_rate.unwrap_or(0.0);
    config.hang_rate = flags.sim_hang_rate.unwrap_or(0.0);
    config.reset_rate = flags.sim_reset_rate.unwrap_or(0.0);
    config.null_fields = flags.sim_null_fields.unwrap_or(0.0);
    config.rng_seed = flags.sim_rng_seed.unwrap_or_else(|| rng.random());
    config.request_log = flags.sim_request_log.clone();
    config.state_file = flags.sim_state.clone();
    config.seed_revisions = flags.sim_seed_revisions.unwrap_or(config.seed_revisions);
    if let Some(factor) = flags.time_scale {
        config.speed_up(factor);
    }
    (config, credentials)
}

fn settings_json(args: &ApplyArgs, plan: &ExpandedPlan) -> serde_json::Value {
    serde_json::json!({
        "rollout": plan.rollout,
        "dry_run": args.dry_run,
        "force": args.force,
        "resume": args.resume,
        "wave": args.selection.waves,
        "select": args.selection.select.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "shard": args.selection.shard.map(|s| s.to_string()),
        "shard_across_waves": args.selection.shard_across_waves,
        "simulate": args.simulate.simulate,
        "time_scale": args.simulate.time_scale,
    })
}

async fn apply(
    args: ApplyArgs,
    settings: ApplySettings,
    env: &Environment,
    logs: &LogSink,
) -> Result<Exit, Error> {
    let ApplySettings {
        mut plan,
        simulator,
        journal_path,
        shard,
        gate_waves,
        progress: progress_mode,
    } = settings;
    // Installed before anything else, so that even an early signal ends in a report and 130.
    let mut interrupts = Interrupts::new();
    let target = connect(&args, &mut plan, simulator).await?;
    let client = Client::new(
        args.net
            .client_config(&plan, project_ids::any_https(&target.lookups)),
        target.credentials,
    )?;
    // Nothing has been sent yet: a journal that cannot be opened, or that another run holds,
    // is bad input, like a bad plan.
    let journal_file = JournalFile::open(&journal_path).map_err(Error::Journal)?;
    // Read once this run holds the journal's lock, so that no other run can add to it.
    let resume = if args.resume {
        Some(JournalState::read_for_resume(
            &journal_path,
            &plan.hash,
            args.force_resume,
            args.simulate.simulate,
        )?)
    } else {
        None
    };
    // Once per region, before the first release request, for the clusters with something left
    // to do (a resume may have none): a wrong answer ends the run here, nothing sent.
    let lookups = project_ids::with_work_left(
        target.lookups,
        |index| {
            resume.as_ref().is_none_or(|state| {
                !matches!(
                    state.prior_state(index),
                    Some(engine::PriorState::AlreadySucceeded(_))
                )
            })
        },
        &plan,
    );
    let found = project_ids::discover(&mut plan, &client, &lookups).await?;
    let settings_value = settings_json(&args, &plan);
    journal_file
        .append(&Record::run_started(
            &plan,
            shard,
            &gate_waves,
            resume.is_some(),
            settings_value.clone(),
        ))
        .await
        .map_err(Error::JournalWrite)?;

    let mut progress = Progress::new(progress_mode, plan.operation_count());
    if progress_mode == ProgressMode::Bars {
        logs.attach(progress.multi().clone());
    }
    if let Some(sim) = &target.simulator {
        progress.note(&format!(
            "simulator listening on {} (signature checks on, throwaway credentials; \
             replay its faults with --sim-rng-seed {})",
            simulated_endpoints_text(&target.simulated),
            sim.rng_seed()
        ));
        if let Some(factor) = args.simulate.time_scale {
            progress.note(&format!(
                "time runs {factor}x faster (--time-scale): soaks, polls, waits, time-outs and \
                 settling are divided by {factor}, rates multiplied by it"
            ));
        }
    }
    for (lookup, project_id) in lookups.iter().zip(&found) {
        progress.note(&format!(
            "project id of region {} found through IAM at {}: {project_id} (for {})",
            lookup.region,
            lookup.iam_endpoint,
            lookup.clusters.join(", ")
        ));
    }
    if args.selection.shard_across_waves && plan.waves.len() > 1 {
        // Loud whatever the progress mode: this run may break the plan's wave order.
        let names: Vec<&str> = plan.waves.iter().map(|w| w.name.as_str()).collect();
        let warning = format!(
            "warning: --shard-across-waves: this shard runs part of {} waves ({}) at its own pace; \
             other shards do not wait for it, nor it for them, so a later wave may start before \
             an earlier one has passed, and each wave's soak and max_failures hold only within \
             this shard",
            names.len(),
            names.join(", ")
        );
        progress.note(&warning);
        if progress_mode == ProgressMode::Never {
            eprintln!("{warning}");
        }
    }
    if progress_mode != ProgressMode::Never {
        progress.note(&format!(
            "plan {}: {} operation(s) in {} wave(s); journal {}",
            plan.name,
            plan.operation_count(),
            plan.waves.len(),
            journal_path.display()
        ));
    }

    let plan = Arc::new(plan);
    let journal = Arc::new(FileJournal::new(journal_file, Arc::clone(&plan)));
    let cancel = CancellationToken::new();
    let options = EngineOptions {
        dry_run: args.dry_run,
        force: args.force,
        resume: resume
            .as_ref()
            .map(JournalState::resume_states)
            .unwrap_or_default(),
        cancel: cancel.clone(),
        journal: Some(Arc::clone(&journal) as Arc<dyn engine::Journal>),
        seed: rand::rng().random(),
    };
    if let Some(state) = &resume {
        if state.unreadable > 0 {
            progress.note(&format!(
                "journal {}: skipped {} unreadable line(s), such as one cut short by a crash",
                journal_path.display(),
                state.unreadable
            ));
        }
        wait_out_the_dead_run(state, &plan, &progress, &cancel, &mut interrupts).await;
    }
    let (events_tx, events) = mpsc::channel(4096);
    let engine_plan = Arc::clone(&plan);
    let api = Arc::new(client);
    let engine_task =
        tokio::spawn(async move { engine::run(&engine_plan, api, options, events_tx).await });

    watch_run(events, &mut progress, &plan, &cancel, &mut interrupts).await;
    let outcome = engine_task.await.map_err(Error::EngineStopped)?;
    // The end makes the journal tell the run as its report does; without it, the journal
    // tells a run that died (see `flotilla report`).
    let ended = journal.run_ended(&outcome).await;
    progress.finish();
    logs.detach();
    if let Err(error) = ended {
        tracing::warn!("{error}: the journal does not record the end of the run");
    }

    let mut report = convert::run_report(
        &outcome,
        &plan,
        shard.map(|s| s.to_string()),
        settings_value,
    );
    report.plan.waves = gate_waves;
    // A report asked for on standard output has it to itself: the table goes to stderr then.
    let table = render::terminal_table(&report, env.terminal_width);
    if report_paths(&args).any(|(_, _, path)| write::is_stdout(path)) {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    if let Some(refusal) = &outcome.credentials_refused {
        eprintln!(
            "error: {refusal}; the run stopped at this first refusal. {} Then `apply --resume` \
             continues the run.",
            super::CHECK_CREDENTIALS
        );
    }
    let files: Vec<_> = report_paths(&args).collect();
    let written = write::write_reports(
        &report,
        &files,
        env.terminal_width,
        env.github_step_summary.as_deref(),
    );
    // The simulator's request log and state file are written whatever became of the reports.
    if let Some(sim) = target.simulator {
        sim.shutdown().await.map_err(|source| Error::Simulator {
            context: "stopping the simulator: ",
            source,
        })?;
    }
    written.map_err(|message| Error::Reports {
        message,
        run: outcome.verdict().into(),
    })?;
    Ok(outcome.verdict().into())
}

/// Waits out the requests a killed run may still have in flight (see
/// [`JournalState::wait_for_dead_run`]), unless interrupted.
async fn wait_out_the_dead_run(
    state: &JournalState,
    plan: &ExpandedPlan,
    progress: &Progress,
    cancel: &CancellationToken,
    interrupts: &mut Interrupts,
) {
    let Some(remaining) =
        state.wait_for_dead_run(jiff::Timestamp::now(), plan.rollout.request_timeout)
    else {
        return;
    };
    progress.note(&format!(
        "waiting {:.1}s for requests the interrupted run may still have in flight",
        remaining.as_secs_f64()
    ));
    tokio::select! {
        () = tokio::time::sleep(remaining) => {}
        () = interrupts.next() => cancel.cancel(),
    }
}
