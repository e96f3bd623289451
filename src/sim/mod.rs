//! The simulator: a local CCE Autopilot release API with gateway throttling and faults, run by
//! `flotilla sim`, by `apply --simulate` and by tests, in-process.
//!
//! [`Simulator::start`] binds, seeds and serves; [`RunningSim`] tells where, shows the state and
//! the request log, and shuts down (flushing the log and writing the `--state` file). A simulator
//! has one endpoint per listening address, each with its own throttle, as each region of the
//! cloud has its own gateway; all of them serve the same releases.

mod answers;
pub mod auth;
mod delay;
pub mod errors;
pub mod faults;
pub mod iam;
pub mod log;
mod server;
pub mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use rand::RngExt as _;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use auth::SimAuth;
pub use errors::ErrorStyle;
pub use faults::{Fault, FaultRates};
pub use iam::{IamFault, SimProject};
pub use log::LogEntry;
pub use store::{ReleaseSnapshot, RevisionSnapshot, SimStateSnapshot, Store};

use crate::plan::resolved::ExpandedPlan;
use auth::Authenticator;
use faults::{FaultDice, Throttle};
use log::RequestLog;
use server::Shared;

/// Everything `flotilla sim` can be told. `Default` is a quiet simulator on a free loopback port:
/// no authentication, 2 s settle, no faults, seed 0, log kept in memory only.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// One endpoint per address, each with its own throttle (at least one; port 0: a free port).
    pub listen: Vec<SocketAddr>,
    pub auth: SimAuth,
    /// How long `PENDING_*` lasts after a change.
    pub settle: Duration,
    pub deploy_fail_rate: f64,
    pub latency: Duration,
    /// Up to this much more latency, drawn per request.
    pub jitter: Duration,
    /// Requests per second per credential; `None`: no throttling.
    pub throttle: Option<f64>,
    /// Send `Retry-After` with 429s.
    pub retry_after: bool,
    pub error_rate: f64,
    pub ambiguous_rate: f64,
    pub hang_rate: f64,
    pub reset_rate: f64,
    pub rng_seed: u64,
    /// Write the request log here (JSON lines).
    pub request_log: Option<PathBuf>,
    /// Keep the request log in memory for [`RunningSim::request_log`].
    pub retain_log: bool,
    /// Load the state from this file at start (missing: empty) and write it at shutdown.
    pub state_file: Option<PathBuf>,
    /// The least revisions each seeded release starts with (`--seed-revisions`); a seed plan's
    /// rollback of a release gives it as many more as it needs (see
    /// [`store::revisions_needed`]).
    pub seed_revisions: u32,
    /// A pinned "now" for the `X-Sdk-Date` window, e.g. to replay recorded signatures.
    pub clock: Option<jiff::Timestamp>,
    /// `--null-fields`: the probability that each field of a release or chart in an answer is
    /// `null` or left out (drawn from `rng_seed`, apart from the fault dice).
    pub null_fields: f64,
    /// The shape of every error answer's body.
    pub error_style: ErrorStyle,
    /// The status a change to a busy (`PENDING_*`) release is refused with: 400, 403 or 409.
    pub busy_status: u16,
    /// The projects its IAM lists (`GET /v3/projects`). With AK/SK authentication and any
    /// project, every release request must carry one of their ids as `X-Project-Id`, as the
    /// real gateway requires a project.
    pub projects: Vec<SimProject>,
    /// A wrong answer its IAM gives instead of the project list (tests).
    pub iam_fault: Option<IamFault>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            auth: SimAuth::None,
            settle: Duration::from_secs(2),
            deploy_fail_rate: 0.0,
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            throttle: None,
            retry_after: true,
            error_rate: 0.0,
            ambiguous_rate: 0.0,
            hang_rate: 0.0,
            reset_rate: 0.0,
            rng_seed: 0,
            request_log: None,
            retain_log: true,
            state_file: None,
            seed_revisions: 1,
            clock: None,
            null_fields: 0.0,
            error_style: ErrorStyle::default(),
            busy_status: errors::DEFAULT_BUSY_STATUS,
            projects: Vec::new(),
            iam_fault: None,
        }
    }
}

impl SimConfig {
    /// `count` endpoints, each on a free loopback port with its own throttle.
    pub fn with_endpoints(mut self, count: usize) -> Self {
        self.listen = vec![SocketAddr::from(([127, 0, 0, 1], 0)); count.max(1)];
        self
    }

    pub fn with_settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    pub fn with_auth(mut self, auth: SimAuth) -> Self {
        self.auth = auth;
        self
    }

    pub fn with_rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = seed;
        self
    }

    pub fn with_throttle(mut self, rps: f64) -> Self {
        self.throttle = Some(rps);
        self
    }

    pub fn with_request_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.request_log = Some(path.into());
        self
    }

    pub fn with_state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// Answers with each release and chart field `null` or left out with probability `p`.
    pub fn with_null_fields(mut self, p: f64) -> Self {
        self.null_fields = p;
        self
    }

    pub fn with_error_style(mut self, style: ErrorStyle) -> Self {
        self.error_style = style;
        self
    }

    pub fn with_busy_status(mut self, status: u16) -> Self {
        self.busy_status = status;
        self
    }

    pub fn with_clock(mut self, now: jiff::Timestamp) -> Self {
        self.clock = Some(now);
        self
    }

    /// Its IAM lists project `id` for `region` (a second one for a region makes "several").
    pub fn with_project(mut self, region: &str, id: &str) -> Self {
        self.projects.push(SimProject {
            region: region.to_owned(),
            id: id.to_owned(),
        });
        self
    }

    /// Its IAM answers `GET /v3/projects` wrongly, as `fault` says.
    pub fn with_iam_fault(mut self, fault: IamFault) -> Self {
        self.iam_fault = Some(fault);
        self
    }

    /// With `auth` AK/SK: a project for every region of `plans` whose clusters lack a project
    /// id, so that flotilla finds it through the simulator's IAM (`apply --simulate`). Its id is
    /// the first the plans give a cluster of that region, else one drawn from `rng`.
    pub fn with_projects_for(mut self, plans: &[&ExpandedPlan], rng: &mut impl rand::Rng) -> Self {
        let mut regions: Vec<(&str, Option<&str>)> = Vec::new();
        let mut needs: Vec<&str> = Vec::new();
        for op in plans.iter().flat_map(|p| p.operations()) {
            let cluster = &op.cluster;
            match regions.iter_mut().find(|(r, _)| *r == cluster.region) {
                Some((_, id)) => {
                    if id.is_none() {
                        *id = cluster.project_id.as_deref();
                    }
                }
                None => regions.push((&cluster.region, cluster.project_id.as_deref())),
            }
            if cluster.project_id.is_none() && !needs.contains(&cluster.region.as_str()) {
                needs.push(&cluster.region);
            }
        }
        for (region, id) in regions {
            if !needs.contains(&region) || self.projects.iter().any(|p| p.region == region) {
                continue;
            }
            let id = id.map_or_else(
                || {
                    (0..32)
                        .map(|_| char::from_digit(rng.random_range(0..16u32), 16).unwrap_or('0'))
                        .collect()
                },
                str::to_owned,
            );
            self.projects.push(SimProject {
                region: region.to_owned(),
                id,
            });
        }
        self
    }

    /// The simulator `factor` times faster (`--time-scale`): settling and latency divided by
    /// it, the throttle's rate multiplied by it, so that a rehearsal sped up as much behaves
    /// as it would at full length.
    pub fn speed_up(&mut self, factor: f64) {
        self.settle = self.settle.div_f64(factor);
        self.latency = self.latency.div_f64(factor);
        self.jitter = self.jitter.div_f64(factor);
        self.throttle = self.throttle.map(|rps| rps * factor);
    }

    pub fn fault_rates(&self) -> FaultRates {
        FaultRates {
            error: self.error_rate,
            ambiguous: self.ambiguous_rate,
            hang: self.hang_rate,
            reset: self.reset_rate,
            deploy_fail: self.deploy_fail_rate,
        }
    }

    /// Refuses rates outside `0..=1`, request fault rates adding past 1, a throttle ≤ 0, and
    /// no address to listen on.
    pub fn check(&self) -> Result<(), SimError> {
        self.fault_rates().check().map_err(SimError::Config)?;
        if !(0.0..=1.0).contains(&self.null_fields) {
            return Err(SimError::Config(format!(
                "null fields {} is not between 0 and 1",
                self.null_fields
            )));
        }
        if !errors::BUSY_STATUSES.contains(&self.busy_status) {
            return Err(SimError::Config(format!(
                "busy status {} is not one of 400, 403, 409",
                self.busy_status
            )));
        }
        if self.listen.is_empty() {
            return Err(SimError::Config("no address to listen on".to_owned()));
        }
        if let Some(rps) = self.throttle
            && !(rps.is_finite() && rps > 0.0)
        {
            return Err(SimError::Config(format!(
                "throttle {rps} is not a positive number of requests per second"
            )));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulator settings: {0}")]
    Config(String),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path}: {source}")]
    StateIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path}: {source}")]
    StateFormat {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    RequestLog(#[from] log::LogError),
    #[error("starting the latency timer: {0}")]
    Timer(#[source] std::io::Error),
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Loads the `--state` file, seeds every release the plans target (with the history their
    /// rollbacks need), binds and serves.
    pub async fn start(config: SimConfig, seed: &[&ExpandedPlan]) -> Result<RunningSim, SimError> {
        config.check()?;
        let mut store = match &config.state_file {
            Some(path) => load_state(path, config.settle)?,
            None => Store::new(config.settle),
        };
        // What the state views mask: the built-in rules and every seed plan's own.
        let mut redactor = crate::secret::Redactor::default();
        for plan in seed {
            store.seed_with_history(plan, config.seed_revisions);
            redactor.merge(&plan.redactor);
        }
        let log = Arc::new(RequestLog::open(
            config.request_log.as_deref(),
            config.retain_log,
        )?);
        let mut listeners = Vec::with_capacity(config.listen.len());
        for &wanted in &config.listen {
            let bind_error = |source| SimError::Bind {
                addr: wanted,
                source,
            };
            let listener = TcpListener::bind(wanted).await.map_err(bind_error)?;
            let addr = listener.local_addr().map_err(bind_error)?;
            listeners.push((listener, addr));
        }
        let dice = FaultDice::new(config.rng_seed, config.fault_rates(), config.jitter);
        let id_prefix = u64::from_be_bytes(
            Sha256::digest(config.rng_seed.to_be_bytes())[..8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        let delay = if config.latency.is_zero() && config.jitter.is_zero() {
            None
        } else {
            Some(Arc::new(
                delay::PreciseDelay::start().map_err(SimError::Timer)?,
            ))
        };
        let dice_idle = dice.is_idle();
        let store = Arc::new(Mutex::new(store));
        let dice = Arc::new(Mutex::new(dice));
        let auth = Arc::new(Authenticator::new(config.auth.clone(), config.clock));
        let next_seq = Arc::new(AtomicU64::new(0));
        let null_fields = Arc::new(answers::NullFields::new(
            config.null_fields,
            config.rng_seed,
        ));
        let (stop, stopped) = watch::channel(false);
        let mut endpoints = Vec::with_capacity(listeners.len());
        for (listener, addr) in listeners {
            let shared = Arc::new(Shared {
                endpoint: format!("http://{addr}"),
                store: Arc::clone(&store),
                dice_idle,
                dice: Arc::clone(&dice),
                throttle: config.throttle.map(|rps| Mutex::new(Throttle::new(rps))),
                auth: Arc::clone(&auth),
                log: Arc::clone(&log),
                latency: config.latency,
                delay: delay.clone(),
                retry_after: config.retry_after,
                error_style: config.error_style,
                busy_status: config.busy_status,
                next_seq: Arc::clone(&next_seq),
                id_prefix,
                redactor: redactor.clone(),
                null_fields: Arc::clone(&null_fields),
                projects: config.projects.clone(),
                iam_fault: config.iam_fault,
            });
            let server = tokio::spawn(server::accept_loop(
                listener,
                shared.clone(),
                stopped.clone(),
            ));
            endpoints.push(Endpoint {
                addr,
                shared,
                server: Some(server),
            });
        }
        let shared = Arc::clone(&endpoints[0].shared);
        let flusher = log
            .has_file()
            .then(|| tokio::spawn(flush_periodically(shared.clone(), stopped)));
        Ok(RunningSim {
            shared,
            endpoints,
            stop,
            flusher,
            state_file: config.state_file,
            rng_seed: config.rng_seed,
        })
    }
}

/// One simulated endpoint: a listener and its throttle.
struct Endpoint {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

fn load_state(path: &Path, settle: Duration) -> Result<Store, SimError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let snapshot: SimStateSnapshot =
                serde_json::from_slice(&bytes).map_err(|source| SimError::StateFormat {
                    path: path.to_owned(),
                    source,
                })?;
            Ok(Store::from_snapshot(snapshot, settle))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Store::new(settle)),
        Err(source) => Err(SimError::StateIo {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes the log file every quarter second, so that a killed simulator loses little.
async fn flush_periodically(
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), log::LogError> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => shared.log.flush()?,
            () = server::until_stopped(&mut stopped) => return Ok(()),
        }
    }
}

/// A simulator serving in the background. Dropping it stops the server without writing the
/// state file; [`RunningSim::shutdown`] stops it properly.
pub struct RunningSim {
    /// The first endpoint's: the state, the log and the rest are the same for all of them.
    shared: Arc<Shared>,
    /// At least one.
    endpoints: Vec<Endpoint>,
    stop: watch::Sender<bool>,
    flusher: Option<JoinHandle<Result<(), log::LogError>>>,
    state_file: Option<PathBuf>,
    rng_seed: u64,
}

impl std::fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSim")
            .field("addrs", &self.addrs())
            .finish()
    }
}

impl RunningSim {
    /// The first endpoint's address.
    pub fn addr(&self) -> SocketAddr {
        self.endpoints[0].addr
    }

    /// Every endpoint's address, in the order of [`SimConfig::listen`].
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.endpoints.iter().map(|e| e.addr).collect()
    }

    /// `http://127.0.0.1:PORT` of the first endpoint, no trailing slash: what a cluster's
    /// endpoint is set to.
    pub fn base_url(&self) -> String {
        self.endpoints[0].shared.endpoint.clone()
    }

    /// Every endpoint's base URL, in the order of [`SimConfig::listen`].
    pub fn base_urls(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .map(|e| e.shared.endpoint.clone())
            .collect()
    }

    /// The seed of its faults and jitter: the same seed replays the same run.
    pub fn rng_seed(&self) -> u64 {
        self.rng_seed
    }

    /// True when requests must be signed or carry a token.
    pub fn auth_enabled(&self) -> bool {
        !self.shared.auth.mode().is_none()
    }

    /// What `GET /_sim/state` answers: every release with its history and `applied_puts`,
    /// secret-looking values masked.
    pub fn state(&self) -> SimStateSnapshot {
        self.shared
            .store()
            .snapshot()
            .redacted(&self.shared.redactor)
    }

    /// Runs `f` on the store itself, e.g. to set up a state that requests cannot reach.
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut self.shared.store())
    }

    /// Every request so far, in the order they finished (empty when the log is not retained).
    pub fn request_log(&self) -> Vec<LogEntry> {
        self.shared.log.entries()
    }

    /// Stops serving (open connections are closed), flushes the request log and writes the
    /// `--state` file.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        let _ = self.stop.send(true);
        for endpoint in &mut self.endpoints {
            if let Some(server) = endpoint.server.take() {
                let _ = server.await;
            }
        }
        if let Some(flusher) = self.flusher.take()
            && let Ok(Err(e)) = flusher.await
        {
            return Err(e.into());
        }
        self.shared.log.flush()?;
        if let Some(path) = &self.state_file {
            let snapshot = self.shared.store().snapshot();
            write_state(path, &snapshot)?;
        }
        Ok(())
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Writes beside the target and renames, so a crash never leaves half a file.
fn write_state(path: &Path, snapshot: &SimStateSnapshot) -> Result<(), SimError> {
    let io_error = |source| SimError::StateIo {
        path: path.to_owned(),
        source,
    };
    let text = serde_json::to_vec_pretty(snapshot).map_err(|source| SimError::StateFormat {
        path: path.to_owned(),
        source,
    })?;
    // Owner-only: the state keeps secret values unmasked, so that it can be loaded again.
    crate::atomic_file::write(path, &text).map_err(io_error)
}
