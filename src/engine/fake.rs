//! An in-process fake of the release API for the engine's tests under paused time: releases
//! with revision histories that settle over time, scripted faults, an optional token-bucket
//! gateway, and a log of every call with its instant.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
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
use crate::secret::redact;

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
}

#[derive(Clone, Debug)]
pub struct Revision {
    pub version: i64,
    pub chart_name: String,
    pub chart_version: String,
    pub values: Value,
    /// Status once settled.
    pub settles_to: ReleaseStatus,
    pub pending: ReleaseStatus,
    pub settles_at: Instant,
}

#[derive(Debug, Default)]
pub struct FakeRelease {
    pub revisions: Vec<Revision>,
    pub applied_puts: u32,
    pub put_faults: VecDeque<Fault>,
    pub get_faults: VecDeque<Fault>,
    /// GETs answer the previous revision (as if settled) until this instant.
    pub stale_reads_until: Option<Instant>,
}

impl FakeRelease {
    pub fn current(&self) -> &Revision {
        self.revisions.last().expect("a release has a revision")
    }

    fn status_of(revision: &Revision, now: Instant) -> ReleaseStatus {
        if now < revision.settles_at {
            revision.pending.clone()
        } else {
            revision.settles_to.clone()
        }
    }
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

#[derive(Debug, Default)]
pub struct FakeState {
    pub releases: HashMap<(String, String, String), FakeRelease>,
    pub calls: Vec<Call>,
    pub latency: HashMap<String, Duration>,
    pub default_latency: Duration,
    /// Time a new revision stays PENDING_*.
    pub settle: Duration,
    pub bucket: Option<Bucket>,
    pub throttled: usize,
    /// ShowAutopilotChart answers, by chart id.
    pub charts: HashMap<String, Chart>,
    /// Every ShowAutopilotChart call: (endpoint, chart id). Not in `calls`.
    pub chart_lookups: Vec<(String, String)>,
    /// ShowAutopilotReleaseHistory calls. Not in `calls`.
    pub history_lookups: usize,
}

#[derive(Debug, Default)]
pub struct FakeApi {
    pub state: Mutex<FakeState>,
}

fn key(at: &ReleaseAddress<'_>) -> (String, String, String) {
    (
        at.cluster.id.clone(),
        at.namespace.to_owned(),
        at.name.to_owned(),
    )
}

fn http(status: u16, code: &str) -> ApiError {
    ApiError {
        status: Some(status),
        code: Some(code.to_owned()),
        message: Some(format!("fake {status}")),
        request_id: Some("req-fake".to_owned()),
        ..ApiError::new(FailureKind::Http)
    }
}

impl FakeApi {
    pub fn new() -> Arc<Self> {
        let api = FakeApi::default();
        {
            let mut s = api.lock();
            s.default_latency = Duration::from_millis(10);
            s.settle = Duration::from_secs(2);
            s.charts.insert(
                FAKE_CHART_ID.to_owned(),
                Chart {
                    id: FAKE_CHART_ID.to_owned(),
                    name: FAKE_CHART_NAME.to_owned(),
                    version: FAKE_CHART_VERSION.to_owned(),
                    ..Chart::default()
                },
            );
        }
        Arc::new(api)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// Seeds every release the plan targets at revision 1, DEPLOYED, `imageTag: v1`, with the
    /// chart `chart-1` names ([`FAKE_CHART_NAME`] [`FAKE_CHART_VERSION`]).
    pub fn seed(&self, plan: &ExpandedPlan) {
        let mut s = self.lock();
        let now = Instant::now();
        for op in plan.operations() {
            s.releases
                .entry((
                    op.cluster.id.clone(),
                    op.namespace.clone(),
                    op.release.clone(),
                ))
                .or_insert_with(|| FakeRelease {
                    revisions: vec![Revision {
                        version: 1,
                        chart_name: FAKE_CHART_NAME.to_owned(),
                        chart_version: FAKE_CHART_VERSION.to_owned(),
                        values: json!({"imageTag": "v1"}),
                        settles_to: ReleaseStatus::Deployed,
                        pending: ReleaseStatus::PendingInstall,
                        settles_at: now,
                    }],
                    ..FakeRelease::default()
                });
        }
    }

    /// Runs `f` on one seeded release.
    pub fn with_release<T>(
        &self,
        cluster_id: &str,
        name: &str,
        f: impl FnOnce(&mut FakeRelease) -> T,
    ) -> T {
        let mut s = self.lock();
        let release = s
            .releases
            .get_mut(&(cluster_id.to_owned(), "default".to_owned(), name.to_owned()))
            .expect("seeded release");
        f(release)
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
        let now = Instant::now();
        let mut guard = self.lock();
        let s = &mut *guard;
        let settle = s.settle;
        let Some(release) = s.releases.get_mut(&key(at)) else {
            return Err(http(404, "CCE.01404001"));
        };
        let current = release.current().clone();
        if FakeRelease::status_of(&current, now).is_pending() {
            return Err(http(409, "CCE.01409001"));
        }
        let params = body.parameters.clone().unwrap_or_default();
        if params.dry_run == Some(true) {
            return Ok(to_release(at, &current, now));
        }
        let (values, pending, chart_name, chart_version) = match body.action {
            Action::Upgrade => {
                let mut values = current.values.as_object().cloned().unwrap_or_default();
                for (k, v) in body.values.clone().unwrap_or_default() {
                    values.insert(k, v);
                }
                let (chart_name, chart_version) =
                    match body.chart_id.as_ref().and_then(|id| s.charts.get(id)) {
                        Some(chart) => (chart.name.clone(), chart.version.clone()),
                        None => (current.chart_name.clone(), current.chart_version.clone()),
                    };
                (
                    Value::Object(values),
                    ReleaseStatus::PendingUpgrade,
                    chart_name,
                    chart_version,
                )
            }
            Action::Rollback => {
                let Some(target) = params
                    .release_version
                    .and_then(|v| release.revisions.iter().find(|r| r.version == v))
                else {
                    return Err(http(400, "CCE.01400001"));
                };
                (
                    target.values.clone(),
                    ReleaseStatus::PendingRollback,
                    target.chart_name.clone(),
                    target.chart_version.clone(),
                )
            }
        };
        let fails = values["imageTag"]
            .as_str()
            .is_some_and(|t| t.starts_with("fail-"));
        let revision = Revision {
            version: current.version + 1,
            chart_name,
            chart_version,
            values,
            settles_to: if fails {
                ReleaseStatus::Failed
            } else {
                ReleaseStatus::Deployed
            },
            pending,
            settles_at: now + settle,
        };
        let answer = to_release(at, &revision, now);
        release.revisions.push(revision);
        release.applied_puts += 1;
        Ok(answer)
    }
}

fn to_release(at: &ReleaseAddress<'_>, revision: &Revision, now: Instant) -> Release {
    Release {
        name: at.name.to_owned(),
        namespace: at.namespace.to_owned(),
        cluster_id: at.cluster.id.clone(),
        version: revision.version,
        chart_name: revision.chart_name.clone(),
        chart_version: revision.chart_version.clone(),
        values: redact(&revision.values),
        status: Some(FakeRelease::status_of(revision, now)),
        ..Release::default()
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
                .releases
                .get_mut(&key(&at))
                .and_then(|r| r.put_faults.pop_front());
            match fault {
                None | Some(Fault::Pass) => self.apply(&at, body),
                Some(Fault::Http(status, code)) => Err(http(status, code)),
                Some(Fault::ResetBeforeApply) => Err(ApiError::new(FailureKind::ConnectionLost)),
                Some(Fault::AppliedThen500) => {
                    let _ = self.apply(&at, body);
                    Err(http(500, "CCE.01500001"))
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
        let now = Instant::now();
        let answer = if let Some(error) = throttle {
            Err(error)
        } else {
            let mut s = self.lock();
            match s.releases.get_mut(&key(&at)) {
                None => Err(http(404, "CCE.01404001")),
                Some(release) => match release.get_faults.pop_front() {
                    Some(Fault::Http(status, code)) => Err(http(status, code)),
                    Some(Fault::Pass) | None => {
                        let stale = release.stale_reads_until.is_some_and(|until| now < until)
                            && release.revisions.len() > 1;
                        if stale {
                            let previous = &release.revisions[release.revisions.len() - 2];
                            let mut old = to_release(&at, previous, now);
                            old.status = Some(ReleaseStatus::Deployed);
                            Ok(old)
                        } else {
                            Ok(to_release(&at, release.current(), now))
                        }
                    }
                    Some(_) => Err(ApiError::new(FailureKind::ConnectionLost)),
                },
            }
        };
        self.end(id);
        answer
    }

    async fn release_history(&self, at: ReleaseAddress<'_>) -> Result<Vec<Release>, ApiError> {
        let latency = self.lock().default_latency;
        tokio::time::sleep(latency).await;
        let now = Instant::now();
        let mut s = self.lock();
        s.history_lookups += 1;
        match s.releases.get(&key(&at)) {
            None => Err(http(404, "CCE.01404001")),
            Some(release) => Ok(release
                .revisions
                .iter()
                .map(|r| to_release(&at, r, now))
                .collect()),
        }
    }

    async fn show_chart(&self, cluster: &ClusterTarget, chart_id: &str) -> Result<Chart, ApiError> {
        let latency = {
            let mut s = self.lock();
            s.chart_lookups
                .push((cluster.endpoint.clone(), chart_id.to_owned()));
            s.default_latency
        };
        tokio::time::sleep(latency).await;
        self.lock()
            .charts
            .get(chart_id)
            .cloned()
            .ok_or_else(|| http(404, "CCE.01404002"))
    }
}

/// The chart every fake plan's upgrades name, and what it resolves to.
pub const FAKE_CHART_ID: &str = "chart-1";
pub const FAKE_CHART_NAME: &str = "app";
pub const FAKE_CHART_VERSION: &str = "1.0.0";

/// A cluster `name` in `region` (its endpoint is per region).
pub fn cluster(name: &str, region: &str) -> Arc<ClusterTarget> {
    Arc::new(ClusterTarget {
        name: name.to_owned(),
        id: format!("id-{name}"),
        labels: Default::default(),
        region: region.to_owned(),
        endpoint: format!("https://cce.{region}.example"),
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
                            let mut values = Map::new();
                            values.insert("imageTag".into(), json!(tag));
                            Arc::new(UpdateReleaseBody {
                                chart_id: Some(FAKE_CHART_ID.into()),
                                action: Action::Upgrade,
                                parameters: Some(ReleaseParameters::default()),
                                values: Some(values),
                            })
                        })
                        .clone();
                    let op = Operation {
                        index,
                        wave,
                        cluster,
                        namespace: "default".into(),
                        release,
                        action: Action::Upgrade,
                        body,
                        rollback_on_failure: false,
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
        file_hash: "0".repeat(64),
        rollout,
        waves,
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
