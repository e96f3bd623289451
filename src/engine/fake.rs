//! The release API for the engine's tests under paused time: the simulator's store holds the
//! releases and decides what every request does to them; this fake adds what the tests need on
//! top — latency per cluster, an optional token-bucket gateway, faults scripted per call, stale
//! reads, and a log of every call with its instant — and helpers to build plans.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::api::{ReleaseAddress, ReleaseApi};
use crate::cce::error::{ApiError, FailureKind};
use crate::cce::model::{
    Action, Chart, Release, ReleaseParameters, ReleaseStatus, UpdateReleaseBody,
};
use crate::plan::resolved::{
    ClusterTarget, ExpandedPlan, FailureBudget, Operation, Rate, RetryPolicy, Rollout, WaitPolicy,
    Wave,
};
use crate::sim::store::{Rejection, ReleaseKey, Store, codes};
use crate::sim::{ReleaseSnapshot, RevisionSnapshot};

/// A scripted answer for one call, taken in order before the default behaviour.
#[derive(Clone, Debug)]
pub enum Fault {
    /// An HTTP error before anything is applied.
    Http(u16, &'static str),
    /// Apply the PUT, then answer 500.
    AppliedThen500,
    /// Apply the PUT, then never answer.
    AppliedThenHang,
    /// The connection is cut before anything is applied.
    ResetBeforeApply,
    /// No fault: the call is answered as usual, so that a script can fault a later one.
    Pass,
    /// Refused with this status because the release is busy (the service's
    /// `Update release is forbidden`), nothing applied, whatever the release looks like.
    Busy(u16),
    /// Another pipeline's change (this body) lands just before the call: the call then meets
    /// the release as that change left it, busy.
    ChangedFirst(Box<UpdateReleaseBody>),
}

/// What the tests script for one release.
#[derive(Debug, Default)]
pub struct Script {
    pub put_faults: VecDeque<Fault>,
    pub get_faults: VecDeque<Fault>,
    /// GETs answer the previous revision (as if settled) until this instant.
    pub stale_reads_until: Option<Instant>,
    /// Applied in order to the answers of successful PUTs, one each: e.g. fields left out.
    pub put_answers: VecDeque<AnswerEdit>,
    /// Applied in order to the answers of successful GETs of the release, one each.
    pub get_answers: VecDeque<AnswerEdit>,
}

/// What a script does to one answer before the engine reads it.
pub type AnswerEdit = fn(&mut Release);

/// An answer that gives nothing but what `keep` copies back from the full one.
pub fn only(release: &mut Release, keep: impl FnOnce(&Release, &mut Release)) {
    let full = std::mem::take(release);
    keep(&full, release);
}

#[derive(Clone, Debug)]
pub struct Call {
    pub at: Instant,
    pub done: Option<Instant>,
    pub method: &'static str,
    pub cluster_id: String,
    pub release: String,
    pub body: Option<UpdateReleaseBody>,
}

#[derive(Debug)]
pub struct Bucket {
    pub rate: f64,
    pub burst: f64,
    pub tokens: f64,
    pub last: Instant,
    pub message: String,
    pub retry_after: Option<Duration>,
}

#[derive(Debug)]
pub struct FakeState {
    /// The releases and charts, and what requests do to them.
    pub store: Store,
    pub scripts: HashMap<ReleaseKey, Script>,
    pub calls: Vec<Call>,
    pub latency: HashMap<String, Duration>,
    pub default_latency: Duration,
    pub bucket: Option<Bucket>,
    pub throttled: usize,
    /// ShowAutopilotChart answers 404 for these, whatever the store holds.
    pub unresolvable_charts: HashSet<String>,
    /// Every ShowAutopilotChart call: (endpoint, chart id). Not in `calls`.
    pub chart_lookups: Vec<(String, String)>,
    /// ShowAutopilotReleaseHistory calls. Not in `calls`.
    pub history_lookups: usize,
}

#[derive(Debug)]
pub struct FakeApi {
    pub state: Mutex<FakeState>,
}

/// Every fake release lives in this namespace.
const NAMESPACE: &str = "default";

fn key(at: &ReleaseAddress<'_>) -> ReleaseKey {
    ReleaseKey::new(&at.cluster.id, at.namespace, at.name)
}

fn http(status: u16, code: &str, message: String) -> ApiError {
    ApiError {
        status: Some(status),
        code: Some(code.to_owned()),
        message: Some(message),
        request_id: Some("req-fake".to_owned()),
        ..ApiError::new(FailureKind::Http)
    }
}

fn scripted(status: u16, code: &str) -> ApiError {
    http(status, code, format!("fake {status}"))
}

fn refused(rejection: Rejection) -> ApiError {
    http(rejection.status, rejection.code, rejection.message)
}

/// The store renders `values` and `parameters` as JSON-encoded strings, as the service does;
/// the client reads them back as objects. So does this.
fn as_the_client_reads_it(release: Release) -> Release {
    serde_json::to_value(&release)
        .and_then(serde_json::from_value)
        .expect("a release survives its own JSON")
}

impl FakeApi {
    /// Releases settle 2 s after a change; every call takes 10 ms; the chart [`FAKE_CHART_ID`]
    /// is known.
    pub fn new() -> Arc<Self> {
        let mut store = Store::new(Duration::from_secs(2));
        store.insert_chart(Chart {
            id: FAKE_CHART_ID.to_owned(),
            name: FAKE_CHART_NAME.to_owned(),
            version: FAKE_CHART_VERSION.to_owned(),
            ..Chart::default()
        });
        Arc::new(FakeApi {
            state: Mutex::new(FakeState {
                store,
                scripts: HashMap::new(),
                calls: Vec::new(),
                latency: HashMap::new(),
                default_latency: Duration::from_millis(10),
                bucket: None,
                throttled: 0,
                unresolvable_charts: HashSet::new(),
                chart_lookups: Vec::new(),
                history_lookups: 0,
            }),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// Seeds every release the plan targets that does not exist yet: revision 1, DEPLOYED,
    /// `imageTag: v1`, on the plan's chart (for `chart-1`: [`FAKE_CHART_NAME`]
    /// [`FAKE_CHART_VERSION`]).
    pub fn seed(&self, plan: &ExpandedPlan) {
        let mut s = self.lock();
        let new: Vec<ReleaseKey> = plan
            .operations()
            .map(|op| ReleaseKey::new(&op.cluster.id, &op.namespace, &op.release))
            .filter(|key| s.store.release(key).is_none())
            .collect();
        s.store.seed(plan);
        for key in new {
            s.store.edit_release(&key, |release| {
                for revision in &mut release.history {
                    revision.values = image_tag("v1");
                }
            });
        }
    }

    /// One seeded release, as the simulator's state shows it.
    pub fn release(&self, cluster_id: &str, name: &str) -> ReleaseSnapshot {
        self.lock()
            .store
            .release(&ReleaseKey::new(cluster_id, NAMESPACE, name))
            .expect("seeded release")
    }

    /// Rewrites one seeded release (see [`Store::edit_release`]).
    pub fn edit_release<T>(
        &self,
        cluster_id: &str,
        name: &str,
        edit: impl FnOnce(&mut ReleaseSnapshot) -> T,
    ) -> T {
        self.lock()
            .store
            .edit_release(&ReleaseKey::new(cluster_id, NAMESPACE, name), edit)
            .expect("seeded release")
    }

    /// Rewrites every release.
    pub fn edit_every_release(&self, mut edit: impl FnMut(&mut ReleaseSnapshot)) {
        let mut s = self.lock();
        let keys: Vec<ReleaseKey> = s
            .store
            .snapshot()
            .releases
            .iter()
            .map(|r| ReleaseKey::new(&r.cluster_id, &r.namespace, &r.name))
            .collect();
        for key in keys {
            s.store.edit_release(&key, &mut edit);
        }
    }

    /// Scripts faults for one release's calls.
    pub fn script<T>(&self, cluster_id: &str, name: &str, f: impl FnOnce(&mut Script) -> T) -> T {
        let mut s = self.lock();
        f(s.scripts
            .entry(ReleaseKey::new(cluster_id, NAMESPACE, name))
            .or_default())
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn puts(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == "PUT")
            .collect()
    }

    /// Starts a call: logs it and returns its latency and whether the gateway throttles it.
    fn begin(
        &self,
        at: &ReleaseAddress<'_>,
        method: &'static str,
        body: Option<&UpdateReleaseBody>,
    ) -> (usize, Duration, Option<ApiError>) {
        let now = Instant::now();
        let mut s = self.lock();
        let latency = s
            .latency
            .get(&at.cluster.id)
            .copied()
            .unwrap_or(s.default_latency);
        s.calls.push(Call {
            at: now,
            done: None,
            method,
            cluster_id: at.cluster.id.clone(),
            release: at.name.to_owned(),
            body: body.cloned(),
        });
        let id = s.calls.len() - 1;
        let mut throttle = None;
        if let Some(bucket) = s.bucket.as_mut() {
            let elapsed = (now - bucket.last).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * bucket.rate).min(bucket.burst);
            bucket.last = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
            } else {
                throttle = Some(ApiError {
                    status: Some(429),
                    code: Some("APIG.0308".to_owned()),
                    message: Some(bucket.message.clone()),
                    retry_after: bucket.retry_after,
                    ..ApiError::new(FailureKind::Http)
                });
            }
        }
        if throttle.is_some() {
            s.throttled += 1;
        }
        (id, latency, throttle)
    }

    fn end(&self, id: usize) {
        self.lock().calls[id].done = Some(Instant::now());
    }

    fn apply(
        &self,
        at: &ReleaseAddress<'_>,
        body: &UpdateReleaseBody,
    ) -> Result<Release, ApiError> {
        let outcome = self
            .lock()
            .store
            .update(&key(at), body, false)
            .map_err(refused)?;
        outcome
            .release
            .map(as_the_client_reads_it)
            .ok_or_else(|| scripted(500, "CCE.01500001"))
    }

    /// Applies the next scripted edit of this kind, if any, to a successful answer.
    fn edit_answer(
        &self,
        at: &ReleaseAddress<'_>,
        release: &mut Release,
        queue: impl FnOnce(&mut Script) -> &mut VecDeque<AnswerEdit>,
    ) {
        let edit = self
            .lock()
            .scripts
            .get_mut(&key(at))
            .and_then(|script| queue(script).pop_front());
        if let Some(edit) = edit {
            edit(release);
        }
    }

    /// A GET while reads lag: the revision before the current one, as if it had settled.
    fn stale_read(&self, at: &ReleaseAddress<'_>) -> Option<Release> {
        let mut s = self.lock();
        let now = Instant::now();
        let lagging = s
            .scripts
            .get(&key(at))
            .and_then(|script| script.stale_reads_until)
            .is_some_and(|until| now < until);
        if !lagging {
            return None;
        }
        let mut history = s.store.history(&key(at)).ok()?;
        let current = history.len().checked_sub(2)?;
        let mut previous = as_the_client_reads_it(history.swap_remove(current));
        previous.status = Some(ReleaseStatus::Deployed);
        Some(previous)
    }
}

impl ReleaseApi for FakeApi {
    async fn update_release(
        &self,
        at: ReleaseAddress<'_>,
        body: &UpdateReleaseBody,
    ) -> Result<Release, ApiError> {
        let (id, latency, throttle) = self.begin(&at, "PUT", Some(body));
        tokio::time::sleep(latency).await;
        let answer = if let Some(error) = throttle {
            Err(error)
        } else {
            let fault = self
                .lock()
                .scripts
                .get_mut(&key(&at))
                .and_then(|script| script.put_faults.pop_front());
            match fault {
                None | Some(Fault::Pass) => self.apply(&at, body).map(|mut release| {
                    self.edit_answer(&at, &mut release, |script| &mut script.put_answers);
                    release
                }),
                Some(Fault::Busy(status)) => Err(http(
                    status,
                    codes::RELEASE_BUSY,
                    format!("{} (scripted)", crate::cce::error::BUSY_PHRASE),
                )),
                Some(Fault::ChangedFirst(other)) => {
                    let _ = self.apply(&at, &other);
                    self.apply(&at, body)
                }
                Some(Fault::Http(status, code)) => Err(scripted(status, code)),
                Some(Fault::ResetBeforeApply) => Err(ApiError::new(FailureKind::ConnectionLost)),
                Some(Fault::AppliedThen500) => {
                    let _ = self.apply(&at, body);
                    Err(scripted(500, "CCE.01500001"))
                }
                Some(Fault::AppliedThenHang) => {
                    let _ = self.apply(&at, body);
                    std::future::pending::<()>().await;
                    unreachable!()
                }
            }
        };
        self.end(id);
        answer
    }

    async fn show_release(&self, at: ReleaseAddress<'_>) -> Result<Release, ApiError> {
        let (id, latency, throttle) = self.begin(&at, "GET", None);
        tokio::time::sleep(latency).await;
        let answer = if let Some(error) = throttle {
            Err(error)
        } else {
            let fault = self
                .lock()
                .scripts
                .get_mut(&key(&at))
                .and_then(|script| script.get_faults.pop_front());
            match fault {
                Some(Fault::Http(status, code)) => Err(scripted(status, code)),
                Some(Fault::Pass) | None => {
                    let read = match self.stale_read(&at) {
                        Some(stale) => Ok(stale),
                        None => self
                            .lock()
                            .store
                            .show(&key(&at))
                            .map(as_the_client_reads_it)
                            .map_err(refused),
                    };
                    read.map(|mut release| {
                        self.edit_answer(&at, &mut release, |script| &mut script.get_answers);
                        release
                    })
                }
                Some(_) => Err(ApiError::new(FailureKind::ConnectionLost)),
            }
        };
        self.end(id);
        answer
    }

    async fn release_history(&self, at: ReleaseAddress<'_>) -> Result<Vec<Release>, ApiError> {
        let latency = self.lock().default_latency;
        tokio::time::sleep(latency).await;
        let mut s = self.lock();
        s.history_lookups += 1;
        s.store
            .history(&key(&at))
            .map(|history| history.into_iter().map(as_the_client_reads_it).collect())
            .map_err(refused)
    }

    async fn show_chart(&self, cluster: &ClusterTarget, chart_id: &str) -> Result<Chart, ApiError> {
        let latency = {
            let mut s = self.lock();
            s.chart_lookups
                .push((cluster.endpoint.clone(), chart_id.to_owned()));
            s.default_latency
        };
        tokio::time::sleep(latency).await;
        let s = self.lock();
        if s.unresolvable_charts.contains(chart_id) {
            return Err(scripted(404, codes::CHART_NOT_FOUND));
        }
        s.store.chart(chart_id).map_err(refused)
    }
}

/// The chart every fake plan's upgrades name, and what it resolves to.
pub const FAKE_CHART_ID: &str = "chart-1";
pub const FAKE_CHART_NAME: &str = "app";
pub const FAKE_CHART_VERSION: &str = "1.0.0";

/// Values of just an `imageTag`.
pub fn image_tag(tag: &str) -> Map<String, Value> {
    let mut values = Map::new();
    values.insert("imageTag".into(), json!(tag));
    values
}

/// A copy of `base` as revision `version`, still settling into DEPLOYED for `settles_in`.
pub fn pending_revision(
    base: &RevisionSnapshot,
    version: i64,
    status: ReleaseStatus,
    settles_in: Duration,
) -> RevisionSnapshot {
    RevisionSnapshot {
        version,
        status,
        settles_to: Some(ReleaseStatus::Deployed),
        settles_in_ms: Some(settles_in.as_millis().try_into().unwrap_or(u64::MAX)),
        ..base.clone()
    }
}

/// A cluster `name` in `region` (its endpoint is per region).
pub fn cluster(name: &str, region: &str) -> Arc<ClusterTarget> {
    Arc::new(ClusterTarget {
        name: name.to_owned(),
        id: format!("id-{name}"),
        labels: Default::default(),
        region: region.to_owned(),
        endpoint: format!("https://cce.{region}.example"),
        iam_endpoint: None,
        project_id: None,
    })
}

/// Builds a plan: waves of (cluster, release, imageTag) in order.
pub fn plan(rollout: Rollout, waves: Vec<Vec<(Arc<ClusterTarget>, String, &str)>>) -> ExpandedPlan {
    let mut index = 0;
    let mut bodies: HashMap<String, Arc<UpdateReleaseBody>> = HashMap::new();
    let waves = waves
        .into_iter()
        .enumerate()
        .map(|(wave, ops)| Wave {
            name: format!("wave-{wave}"),
            implicit: false,
            soak: Duration::ZERO,
            max_failures: None,
            operations: ops
                .into_iter()
                .map(|(cluster, release, tag)| {
                    let body = bodies
                        .entry(tag.to_owned())
                        .or_insert_with(|| {
                            Arc::new(UpdateReleaseBody {
                                chart_id: Some(FAKE_CHART_ID.into()),
                                action: Action::Upgrade,
                                parameters: Some(ReleaseParameters::default()),
                                values: Some(image_tag(tag)),
                            })
                        })
                        .clone();
                    let op = Operation {
                        index,
                        wave,
                        cluster,
                        namespace: NAMESPACE.into(),
                        release,
                        action: Action::Upgrade,
                        body,
                        rollback_on_failure: false,
                        relative_version: None,
                        expected_revision: None,
                    };
                    index += 1;
                    op
                })
                .collect(),
        })
        .collect();
    ExpandedPlan {
        name: "test".into(),
        hash: "0".repeat(64),
        rollout,
        waves,
        redactor: Default::default(),
    }
}

/// The tests' rollout: unlimited rate, preflight and wait on, 5 attempts, a budget no test hits.
pub fn rollout() -> Rollout {
    Rollout {
        concurrency: 8,
        per_cluster: 2,
        rate: Rate::Unlimited,
        burst: 10,
        retry: RetryPolicy {
            attempts: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
        },
        request_timeout: Duration::from_secs(30),
        preflight: true,
        wait: WaitPolicy {
            enabled: true,
            timeout: Duration::from_secs(60),
            poll: Duration::from_secs(1),
        },
        max_failures: FailureBudget::Count(1000),
    }
}

/// Runs `plan` against `api` and collects every event the engine sent.
pub async fn run_plan(
    plan: &ExpandedPlan,
    api: Arc<FakeApi>,
    options: super::EngineOptions,
) -> (super::RunReport, Vec<super::Event>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let collector = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            events.push(e);
        }
        events
    });
    let report = super::run(plan, api, options, tx).await;
    (report, collector.await.unwrap())
}
