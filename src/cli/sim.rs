//! `flotilla sim`: run the release API simulator until SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rand::RngExt;

use super::error::Error;
use super::{Environment, values};
use crate::error::Exit;
use crate::secret::Secret;
use crate::sim::{ErrorStyle, SimAuth, SimConfig, Simulator};

const EXAMPLES: &str = "\
Examples:
  flotilla sim --seed plans/demo.yaml
  flotilla sim --seed plans/demo.yaml --throttle 20 --error-rate 0.05 --ambiguous-rate 0.02 --rng-seed 7
  flotilla sim --seed plans/demo.yaml --listen 127.0.0.1:8001 --listen 127.0.0.1:8002 --throttle 5
  FLOTILLA_SIM_AK=AK... FLOTILLA_SIM_SK=SK... flotilla sim --listen 127.0.0.1:8443 --state sim-state.json";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port. Repeatable: each address is an endpoint
    /// with its own throttle (one per region, say), all serving the same releases.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,
    /// Create every release this plan targets, DEPLOYED, with the revisions its rollbacks need
    /// (repeatable).
    #[arg(long, value_name = "PLAN")]
    pub seed: Vec<PathBuf>,
    /// Give every seeded release at least N revisions (1 to 1000).
    #[arg(long, default_value_t = 1, value_parser = values::seed_revisions, value_name = "N")]
    pub seed_revisions: u32,
    /// Load the state from this JSON file at start (missing: empty) and write it on shutdown.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Access key: requests must be signed with SDK-HMAC-SHA256.
    #[arg(long, env = "FLOTILLA_SIM_AK", hide_env_values = true, requires = "sk",
          conflicts_with = "token", value_parser = secret_value, value_name = "AK")]
    pub ak: Option<Secret>,
    /// Secret key matching --ak.
    #[arg(long, env = "FLOTILLA_SIM_SK", hide_env_values = true, requires = "ak",
          value_parser = secret_value, value_name = "SK")]
    pub sk: Option<Secret>,
    /// With --ak: X-Project-Id must be this project id.
    #[arg(long, requires = "ak", value_name = "ID")]
    pub project_id: Option<String>,
    /// Its IAM lists project ID for REGION (GET /v3/projects?name=REGION), repeatable: a
    /// second one for a region makes several. With --ak, release requests must then name one
    /// of these projects in X-Project-Id.
    #[arg(long = "project", value_name = "REGION=ID", value_parser = crate::sim::iam::parse_project)]
    pub projects: Vec<crate::sim::SimProject>,
    /// Requests must carry this X-Auth-Token.
    #[arg(long, env = "FLOTILLA_SIM_TOKEN", hide_env_values = true,
          value_parser = secret_value, value_name = "TOKEN")]
    pub token: Option<Secret>,
    /// How long a change stays PENDING_* (e.g. 500ms, 2s, 1m).
    #[arg(long, default_value = "2s", value_parser = values::duration, value_name = "D")]
    pub settle: Duration,
    /// Probability that a deploy ends FAILED (an imageTag starting with `fail-` always does).
    #[arg(long, default_value_t = 0.0, value_parser = values::probability, value_name = "P")]
    pub deploy_fail_rate: f64,
    /// Latency added to every API answer.
    #[arg(long, default_value = "0s", value_parser = values::duration, value_name = "D")]
    pub latency: Duration,
    /// Up to this much more latency, drawn per request.
    #[arg(long, default_value = "0s", value_parser = values::duration, value_name = "D")]
    pub jitter: Duration,
    /// Requests per second per credential; more get 429 APIG.0308.
    #[arg(long, value_parser = values::per_second, value_name = "RPS")]
    pub throttle: Option<f64>,
    /// Leave the Retry-After header out of 429 answers.
    #[arg(long)]
    pub no_retry_after: bool,
    /// Probability of a 500/502/503 before anything is applied.
    #[arg(long, default_value_t = 0.0, value_parser = values::probability, value_name = "P")]
    pub error_rate: f64,
    /// Probability of applying the change, then answering 500 or cutting the connection.
    #[arg(long, default_value_t = 0.0, value_parser = values::probability, value_name = "P")]
    pub ambiguous_rate: f64,
    /// Probability of applying the change, then never answering.
    #[arg(long, default_value_t = 0.0, value_parser = values::probability, value_name = "P")]
    pub hang_rate: f64,
    /// Probability of cutting the connection before anything is applied.
    #[arg(long, default_value_t = 0.0, value_parser = values::probability, value_name = "P")]
    pub reset_rate: f64,
    /// Probability that each field of a release or chart in an answer is null or left out
    /// (seeded by --rng-seed), as the SDK models allow.
    #[arg(long, default_value_t = 0.0, value_parser = values::probability, value_name = "P")]
    pub null_fields: f64,
    /// Seed of the fault dice; the same seed and request order replay the same faults
    /// (default: random, printed at start).
    #[arg(long, value_name = "N")]
    pub rng_seed: Option<u64>,
    /// Write one JSON line per request to this file.
    #[arg(long, value_name = "FILE")]
    pub request_log: Option<PathBuf>,
    /// The shape of error bodies: snake (error_code/error_msg), camel (errorCode/errorMsg) or
    /// nested ({"error":{"code","message"}}).
    #[arg(
        long,
        value_enum,
        default_value = "snake",
        hide_possible_values = true,
        value_name = "STYLE"
    )]
    pub error_style: ErrorStyle,
    /// The status a change to a busy (PENDING_*) release is refused with, its message saying
    /// "Update release is forbidden": 400, 403 or 409.
    #[arg(long, default_value = "400", value_parser = crate::sim::errors::parse_busy_status, value_name = "STATUS")]
    pub busy_status: u16,
    /// Run F times faster: settling, latency and jitter divided by F, the throttle multiplied
    /// by F (for a plan rehearsed with the same factor).
    #[arg(long, value_parser = values::time_scale, value_name = "F")]
    pub time_scale: Option<f64>,
}

fn secret_value(text: &str) -> Result<Secret, String> {
    if text.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(Secret::new(text))
    }
}

impl SimArgs {
    /// The simulator's settings, and the seed used.
    pub fn config(&self) -> SimConfig {
        let auth = match (&self.ak, &self.sk, &self.token) {
            (Some(ak), Some(sk), _) => SimAuth::AkSk {
                ak: ak.clone(),
                sk: sk.clone(),
                project_id: self.project_id.clone(),
            },
            (_, _, Some(token)) => SimAuth::Token(token.clone()),
            _ => SimAuth::None,
        };
        let mut config = SimConfig {
            listen: self.listen.clone(),
            auth,
            settle: self.settle,
            deploy_fail_rate: self.deploy_fail_rate,
            latency: self.latency,
            jitter: self.jitter,
            throttle: self.throttle,
            retry_after: !self.no_retry_after,
            error_rate: self.error_rate,
            ambiguous_rate: self.ambiguous_rate,
            hang_rate: self.hang_rate,
            reset_rate: self.reset_rate,
            rng_seed: self.rng_seed.unwrap_or_else(|| rand::rng().random()),
            request_log: self.request_log.clone(),
            retain_log: false,
            state_file: self.state.clone(),
            seed_revisions: self.seed_revisions,
            clock: None,
            null_fields: self.null_fields,
            error_style: self.error_style,
            busy_status: self.busy_status,
            projects: self.projects.clone(),
            iam_fault: None,
        };
        if let Some(factor) = self.time_scale {
            config.speed_up(factor);
        }
        config
    }
}

pub fn run(args: SimArgs, _env: &Environment) -> Result<Exit, Error> {
    let mut plans = Vec::with_capacity(args.seed.len());
    for path in &args.seed {
        let plan = crate::plan::load_path(path).map_err(|source| Error::SimulatorSeed {
            path: path.clone(),
            source,
        })?;
        plans.push(plan);
    }
    let config = args.config();
    config.check().map_err(Error::SimulatorConfig)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    runtime.block_on(serve(config, plans))
}

async fn serve(
    config: SimConfig,
    plans: Vec<crate::plan::resolved::ExpandedPlan>,
) -> Result<Exit, Error> {
    let seed_refs: Vec<&_> = plans.iter().collect();
    let auth_off = config.auth.is_none();
    let rng_seed = config.rng_seed;
    let projects: Vec<String> = config
        .projects
        .iter()
        .map(|p| format!("{}={}", p.region, p.id))
        .collect();
    let sim = Simulator::start(config, &seed_refs)
        .await
        .map_err(|source| Error::Simulator {
            context: "",
            source,
        })?;
    {
        // One write for every line, so that a reader of the first line gets them all at once.
        let lines: String = sim
            .base_urls()
            .iter()
            .map(|url| format!("listening on {url}\n"))
            .collect();
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(lines.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| Error::io("writing to stdout", e))?;
    }
    if auth_off {
        eprintln!("authentication is off: every request is accepted (use --ak/--sk or --token)");
    }
    if !projects.is_empty() {
        eprintln!(
            "IAM (GET /v3/projects) lists {} project(s): {}",
            projects.len(),
            projects.join(", ")
        );
    }
    let releases = sim.state().releases.len();
    eprintln!(
        "{releases} release(s) loaded; rng seed {rng_seed} (replay with --rng-seed {rng_seed})"
    );
    wait_for_stop_signal()
        .await
        .map_err(|e| Error::io("listening for signals", e))?;
    eprintln!("stopping");
    sim.shutdown().await.map_err(|source| Error::Simulator {
        context: "",
        source,
    })?;
    Ok(Exit::Success)
}

#[cfg(unix)]
async fn wait_for_stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_stop_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_given_as_flags_do_not_show_in_debug_output() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "flotilla",
            "sim",
            "--ak",
            "AKVISIBLE",
            "--sk",
            "SKVISIBLE",
        ])
        .unwrap();
        let debug = format!("{cli:?}");
        assert!(
            !debug.contains("AKVISIBLE") && !debug.contains("SKVISIBLE"),
            "{debug}"
        );
    }
}
