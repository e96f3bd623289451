//! The simulator's state and release semantics: clusters, charts, releases with their revision
//! history, and what upgrade, rollback, create, delete and settling do to them.

use std::collections::HashMap;
use std::time::Duration;

use indexmap::IndexMap;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::cce::model::{
    Action, Chart, Release, ReleaseParameters, ReleaseStatus, UpdateReleaseBody,
};
use crate::plan::resolved::{ExpandedPlan, Operation};
use crate::secret;

/// The simulator's own error codes (besides the gateway's `APIG.*`), as documented in
/// `docs/src/simulator.md`.
pub mod codes {
    /// The request body or an action is invalid.
    pub const BAD_REQUEST: &str = "CCE.01400001";
    /// A rollback names a revision the release does not have.
    pub const NO_SUCH_REVISION: &str = "CCE.01400002";
    pub const CLUSTER_NOT_FOUND: &str = "CCE.01404001";
    pub const RELEASE_NOT_FOUND: &str = "CCE.01404002";
    pub const CHART_NOT_FOUND: &str = "CCE.01404003";
    /// A PUT or DELETE while the release is `PENDING_*` (HTTP 400 by default, `--busy-status`).
    pub const RELEASE_BUSY: &str = "CCE.01409001";
    /// A create for a release that already exists.
    pub const RELEASE_EXISTS: &str = "CCE.01409002";
}

/// Why the store refused a request: the HTTP status and the `{"error_code", "error_msg"}` body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, codes::BAD_REQUEST, message)
    }
}

/// The refusal of a change to a busy release, with the phrase the service's refusal contains
/// (and that flotilla, like the Terraform provider, recognises whatever the status).
fn busy_message(name: &str, status: &ReleaseStatus) -> String {
    format!(
        "{}: release {name} is {status}; wait until its operation ends",
        crate::cce::error::BUSY_PHRASE
    )
}

/// A release's address in the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseKey {
    pub cluster_id: String,
    pub namespace: String,
    pub name: String,
}

impl ReleaseKey {
    pub fn new(cluster_id: &str, namespace: &str, name: &str) -> Self {
        ReleaseKey {
            cluster_id: cluster_id.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// What a change request did: the answer's release, and whether the store changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub release: Option<Release>,
    pub applied: bool,
}

/// `CreateAutopilotReleaseReqBody`, as the SDK sends it.
#[derive(Clone, Debug, Deserialize)]
pub struct CreateReleaseBody {
    pub chart_id: String,
    pub name: String,
    pub namespace: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub parameters: Option<ReleaseParameters>,
    #[serde(default)]
    pub values: Option<Map<String, Value>>,
}

/// One revision of a release, as `/_sim/state` and the `--state` file show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevisionSnapshot {
    pub version: i64,
    /// `install`, `upgrade` or `rollback`.
    pub action: String,
    pub chart_id: String,
    pub chart_name: String,
    pub chart_version: String,
    pub status: ReleaseStatus,
    #[serde(default)]
    pub status_description: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub values: Map<String, Value>,
    #[serde(default)]
    pub parameters: ReleaseParameters,
    pub create_at: String,
    pub update_at: String,
    /// For a `PENDING_*` revision: the status it settles to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settles_to: Option<ReleaseStatus>,
    /// For a `PENDING_*` revision: milliseconds left until it settles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settles_in_ms: Option<u64>,
}

/// One release with its whole history (oldest revision first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseSnapshot {
    pub cluster_id: String,
    pub cluster_name: String,
    pub namespace: String,
    pub name: String,
    /// The current revision's status and number.
    pub status: ReleaseStatus,
    pub version: i64,
    /// PUTs that changed this release (dry runs and rejected PUTs excluded).
    pub applied_puts: u64,
    pub history: Vec<RevisionSnapshot>,
}

impl ReleaseSnapshot {
    pub fn current(&self) -> Option<&RevisionSnapshot> {
        self.history.last()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    pub id: String,
    pub name: String,
}

/// Everything the simulator holds: `GET /_sim/state`, [`super::RunningSim::state`] and the
/// `--state` file all have this shape (the first two with secret-looking values masked).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SimStateSnapshot {
    #[serde(default)]
    pub clusters: Vec<ClusterSnapshot>,
    #[serde(default)]
    pub charts: Vec<Chart>,
    /// Sorted by cluster id, namespace, name.
    #[serde(default)]
    pub releases: Vec<ReleaseSnapshot>,
    /// Every PUT and create that changed a release since the state began. Deleting a release
    /// does not lower it, so a release deleted and created again still shows its first change.
    #[serde(default)]
    pub applied_puts: u64,
}

impl SimStateSnapshot {
    pub fn release(
        &self,
        cluster_id: &str,
        namespace: &str,
        name: &str,
    ) -> Option<&ReleaseSnapshot> {
        self.releases
            .iter()
            .find(|r| r.cluster_id == cluster_id && r.namespace == namespace && r.name == name)
    }

    /// The same snapshot with every secret `redactor` finds masked.
    pub fn redacted(mut self, redactor: &secret::Redactor) -> Self {
        for release in &mut self.releases {
            for revision in &mut release.history {
                revision.values = redactor.redact_map(&revision.values);
            }
        }
        self
    }
}

/// A change still settling: when, and into what.
#[derive(Clone, Debug)]
struct Pending {
    until: Instant,
    outcome: ReleaseStatus,
    outcome_description: String,
    settled_at: String,
}

#[derive(Clone, Debug)]
struct ReleaseRecord {
    cluster_name: String,
    history: Vec<RevisionSnapshot>,
    applied_puts: u64,
    pending: Option<Pending>,
}

impl ReleaseRecord {
    fn current(&self) -> &RevisionSnapshot {
        self.history
            .last()
            .expect("a release always has at least one revision")
    }

    /// Applies a finished settle; called before every read and write.
    fn settle(&mut self, now: Instant) {
        if let Some(pending) = &self.pending
            && now >= pending.until
        {
            let pending = self.pending.take().expect("checked above");
            if let Some(revision) = self.history.last_mut() {
                revision.status = pending.outcome;
                revision.status_description = pending.outcome_description;
                revision.update_at = pending.settled_at;
            }
        }
    }

    fn status(&self) -> ReleaseStatus {
        self.current().status.clone()
    }

    /// The record a snapshot describes; `None` for a release without revisions. A last revision
    /// with `settles_to` is pending for `settles_in_ms` more (0 when absent) from `now`.
    fn from_snapshot(release: ReleaseSnapshot, now: Instant) -> Option<Self> {
        if release.history.is_empty() {
            return None;
        }
        let mut history = release.history;
        let mut pending = None;
        if let Some(last) = history.last_mut()
            && let Some(outcome) = last.settles_to.take()
        {
            let left = Duration::from_millis(last.settles_in_ms.take().unwrap_or(0));
            pending = Some(Pending {
                until: now + left,
                outcome_description: settled_description(&outcome, &last.values),
                outcome,
                settled_at: wall_after(left),
            });
        }
        for revision in &mut history {
            revision.settles_to = None;
            revision.settles_in_ms = None;
        }
        Some(ReleaseRecord {
            cluster_name: release.cluster_name,
            history,
            applied_puts: release.applied_puts,
            pending,
        })
    }

    /// The record as a snapshot shows it (values unmasked), settled as of `now`.
    fn snapshot(&mut self, key: &ReleaseKey, now: Instant) -> ReleaseSnapshot {
        self.settle(now);
        let mut history = self.history.clone();
        if let (Some(pending), Some(last)) = (&self.pending, history.last_mut()) {
            last.settles_to = Some(pending.outcome.clone());
            last.settles_in_ms = Some(
                pending
                    .until
                    .saturating_duration_since(now)
                    .as_millis()
                    .try_into()
                    .unwrap_or(u64::MAX),
            );
        }
        ReleaseSnapshot {
            cluster_id: key.cluster_id.clone(),
            cluster_name: self.cluster_name.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            status: self.status(),
            version: self.current().version,
            applied_puts: self.applied_puts,
            history,
        }
    }
}

/// The in-memory store. Every method settles what is due before it reads, so time only needs
/// to pass (tokio time, pausable in tests) for `PENDING_*` releases to become final.
#[derive(Debug)]
pub struct Store {
    settle: Duration,
    clusters: IndexMap<String, String>,
    charts: IndexMap<String, Chart>,
    releases: HashMap<ReleaseKey, ReleaseRecord>,
    /// See [`SimStateSnapshot::applied_puts`].
    applied_puts: u64,
}

impl Store {
    /// An empty store; changes take `settle` to become final.
    pub fn new(settle: Duration) -> Self {
        Store {
            settle,
            clusters: IndexMap::new(),
            charts: IndexMap::new(),
            releases: HashMap::with_capacity(1024),
            applied_puts: 0,
        }
    }

    /// A store holding what a snapshot (e.g. a `--state` file) holds. Pending revisions settle
    /// after what was left of their time.
    pub fn from_snapshot(snapshot: SimStateSnapshot, settle: Duration) -> Self {
        let mut store = Store::new(settle);
        store.applied_puts = snapshot.applied_puts;
        let now = Instant::now();
        for cluster in snapshot.clusters {
            store.clusters.insert(cluster.id, cluster.name);
        }
        for chart in snapshot.charts {
            store.charts.insert(chart.id.clone(), chart);
        }
        for release in snapshot.releases {
            if release.history.is_empty() {
                continue;
            }
            let key = ReleaseKey::new(&release.cluster_id, &release.namespace, &release.name);
            store
                .clusters
                .entry(release.cluster_id.clone())
                .or_insert_with(|| release.cluster_name.clone());
            if let Some(record) = ReleaseRecord::from_snapshot(release, now) {
                store.releases.insert(key, record);
            }
        }
        store
    }

    /// Creates every release the plan targets, at revision 1 `DEPLOYED` with the plan's chart,
    /// unless it exists already; registers the plan's clusters and charts.
    pub fn seed(&mut self, plan: &ExpandedPlan) {
        self.seed_revisions(plan, |_| 1);
    }

    /// [`Store::seed`] with a history: each new release gets at least `minimum` revisions, and
    /// as many as the plan's rollback of it needs (see [`revisions_needed`]), at most
    /// [`MAX_SEEDED_REVISIONS`].
    pub fn seed_with_history(&mut self, plan: &ExpandedPlan, minimum: u32) {
        self.seed_revisions(plan, |op| {
            revisions_needed(op)
                .max(minimum)
                .clamp(1, MAX_SEEDED_REVISIONS)
        });
    }

    fn seed_revisions(&mut self, plan: &ExpandedPlan, revisions: impl Fn(&Operation) -> u32) {
        let now = wall_now();
        for op in plan.operations() {
            self.clusters
                .entry(op.cluster.id.clone())
                .or_insert_with(|| op.cluster.name.clone());
            let chart_id = op
                .body
                .chart_id
                .clone()
                .unwrap_or_else(|| derived_chart_id(&op.release));
            let chart = self
                .charts
                .entry(chart_id.clone())
                .or_insert_with(|| plausible_chart(&chart_id, &op.release, &now))
                .clone();
            let key = ReleaseKey::new(&op.cluster.id, &op.namespace, &op.release);
            self.releases.entry(key).or_insert_with(|| ReleaseRecord {
                cluster_name: op.cluster.name.clone(),
                history: seeded_history(&chart, revisions(op)),
                applied_puts: 0,
                pending: None,
            });
        }
    }

    fn record(&mut self, key: &ReleaseKey) -> Result<&mut ReleaseRecord, Rejection> {
        if !self.clusters.contains_key(&key.cluster_id) {
            return Err(cluster_not_found(&key.cluster_id));
        }
        let record = self
            .releases
            .get_mut(key)
            .ok_or_else(|| release_not_found(key))?;
        record.settle(Instant::now());
        Ok(record)
    }

    /// ShowAutopilotRelease.
    pub fn show(&mut self, key: &ReleaseKey) -> Result<Release, Rejection> {
        let record = self.record(key)?;
        Ok(render(key, record, record.current()))
    }

    /// ShowAutopilotReleaseHistory: every revision, oldest first.
    pub fn history(&mut self, key: &ReleaseKey) -> Result<Vec<Release>, Rejection> {
        let record = self.record(key)?;
        Ok(record
            .history
            .iter()
            .map(|revision| render(key, record, revision))
            .collect())
    }

    /// ListAutopilotReleases: a cluster's releases, optionally of one namespace or chart.
    pub fn list(
        &mut self,
        cluster_id: &str,
        namespace: Option<&str>,
        chart_id: Option<&str>,
    ) -> Result<Vec<Release>, Rejection> {
        if !self.clusters.contains_key(cluster_id) {
            return Err(cluster_not_found(cluster_id));
        }
        let now = Instant::now();
        let mut found: Vec<(&ReleaseKey, &mut ReleaseRecord)> = self
            .releases
            .iter_mut()
            .filter(|(key, record)| {
                key.cluster_id == cluster_id
                    && namespace.is_none_or(|ns| key.namespace == ns)
                    && chart_id.is_none_or(|c| record.current().chart_id == c)
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(b.0));
        Ok(found
            .into_iter()
            .map(|(key, record)| {
                record.settle(now);
                render(key, record, record.current())
            })
            .collect())
    }

    /// UpdateAutopilotRelease. `unlucky` is the fault dice's verdict for `--deploy-fail-rate`.
    pub fn update(
        &mut self,
        key: &ReleaseKey,
        body: &UpdateReleaseBody,
        unlucky: bool,
    ) -> Result<Outcome, Rejection> {
        let settle = self.settle;
        let params = body.parameters.clone().unwrap_or_default();
        // The cluster and release first (settled as of now), then the chart.
        self.record(key)?;
        // The chart an upgrade names must be one the store knows, as the service's must.
        let upgrade_chart = match (body.action, &body.chart_id) {
            (Action::Upgrade, Some(chart_id)) => match self.charts.get(chart_id) {
                Some(chart) => Some(chart.clone()),
                None => return Err(chart_not_found(chart_id)),
            },
            _ => None,
        };
        let record = self
            .releases
            .get_mut(key)
            .ok_or_else(|| release_not_found(key))?;
        let status = record.status();
        if status.is_pending() {
            return Err(Rejection::new(
                409,
                codes::RELEASE_BUSY,
                busy_message(&key.name, &status),
            ));
        }
        let current = record.current();
        let next_version = current.version + 1;
        let (action_name, chart_id, chart_name, chart_version, values, pending_status, description) =
            match body.action {
                Action::Upgrade => {
                    let (chart_id, chart_name, chart_version) = match &upgrade_chart {
                        Some(chart) => {
                            (chart.id.clone(), chart.name.clone(), chart.version.clone())
                        }
                        None => (
                            current.chart_id.clone(),
                            current.chart_name.clone(),
                            current.chart_version.clone(),
                        ),
                    };
                    let given = body.values.as_ref();
                    let values = if params.reset_values == Some(true) {
                        given.cloned().unwrap_or_default()
                    } else {
                        // Helm's --reuse-values: the plan's own merge rule.
                        let mut merged = current.values.clone();
                        if let Some(given) = given {
                            crate::plan::expand::deep_merge(&mut merged, given);
                        }
                        merged
                    };
                    (
                        "upgrade",
                        chart_id,
                        chart_name,
                        chart_version,
                        values,
                        ReleaseStatus::PendingUpgrade,
                        "Upgrade complete".to_owned(),
                    )
                }
                Action::Rollback => {
                    let Some(target) = params.release_version else {
                        return Err(Rejection::new(
                            400,
                            codes::NO_SUCH_REVISION,
                            "rollback needs parameters.release_version",
                        ));
                    };
                    let Some(revision) = record.history.iter().find(|r| r.version == target) else {
                        return Err(Rejection::new(
                            400,
                            codes::NO_SUCH_REVISION,
                            format!(
                                "release {} has no revision {target} (latest is {})",
                                key.name, current.version
                            ),
                        ));
                    };
                    (
                        "rollback",
                        revision.chart_id.clone(),
                        revision.chart_name.clone(),
                        revision.chart_version.clone(),
                        revision.values.clone(),
                        ReleaseStatus::PendingRollback,
                        format!("Rollback to {target}"),
                    )
                }
            };
        if params.dry_run == Some(true) {
            return Ok(Outcome {
                release: Some(render(key, record, record.current())),
                applied: false,
            });
        }
        let now = wall_now();
        let outcome = if unlucky || image_tag_fails(&values) {
            ReleaseStatus::Failed
        } else {
            ReleaseStatus::Deployed
        };
        record.pending = Some(Pending {
            until: Instant::now() + settle,
            outcome_description: settled_description(&outcome, &values),
            outcome,
            settled_at: wall_after(settle),
        });
        let mut stored_params = params;
        stored_params.dry_run = None;
        record.history.push(RevisionSnapshot {
            version: next_version,
            action: action_name.into(),
            chart_id,
            chart_name,
            chart_version,
            status: pending_status,
            status_description: String::new(),
            description,
            values,
            parameters: stored_params,
            create_at: now.clone(),
            update_at: now,
            settles_to: None,
            settles_in_ms: None,
        });
        record.applied_puts += 1;
        let release = render(key, record, record.current());
        self.applied_puts += 1;
        Ok(Outcome {
            release: Some(release),
            applied: true,
        })
    }

    /// CreateAutopilotRelease: revision 1, `PENDING_INSTALL`, then `DEPLOYED` (or `FAILED`).
    pub fn create(
        &mut self,
        cluster_id: &str,
        body: CreateReleaseBody,
        unlucky: bool,
    ) -> Result<Outcome, Rejection> {
        let cluster_name = self
            .clusters
            .get(cluster_id)
            .cloned()
            .ok_or_else(|| cluster_not_found(cluster_id))?;
        let chart = self
            .charts
            .get(&body.chart_id)
            .cloned()
            .ok_or_else(|| chart_not_found(&body.chart_id))?;
        let key = ReleaseKey::new(cluster_id, &body.namespace, &body.name);
        if self.releases.contains_key(&key) {
            return Err(Rejection::new(
                409,
                codes::RELEASE_EXISTS,
                format!("release {} already exists", body.name),
            ));
        }
        let params = body.parameters.unwrap_or_default();
        let values = body.values.unwrap_or_default();
        if params.dry_run == Some(true) {
            let record = ReleaseRecord {
                cluster_name,
                history: vec![new_revision(
                    &chart,
                    values,
                    params,
                    ReleaseStatus::PendingInstall,
                )],
                applied_puts: 0,
                pending: None,
            };
            return Ok(Outcome {
                release: Some(render(&key, &record, record.current())),
                applied: false,
            });
        }
        let outcome = if unlucky || image_tag_fails(&values) {
            ReleaseStatus::Failed
        } else {
            ReleaseStatus::Deployed
        };
        let mut revision = new_revision(&chart, values, params, ReleaseStatus::PendingInstall);
        if let Some(description) = body.description {
            revision.description = description;
        }
        let record = ReleaseRecord {
            cluster_name,
            pending: Some(Pending {
                until: Instant::now() + self.settle,
                outcome_description: settled_description(&outcome, &revision.values),
                outcome,
                settled_at: wall_after(self.settle),
            }),
            history: vec![revision],
            applied_puts: 1,
        };
        let release = render(&key, &record, record.current());
        self.releases.insert(key, record);
        self.applied_puts += 1;
        Ok(Outcome {
            release: Some(release),
            applied: true,
        })
    }

    /// DeleteAutopilotRelease: the release and its history are gone at once.
    pub fn delete(&mut self, key: &ReleaseKey) -> Result<Outcome, Rejection> {
        let record = self.record(key)?;
        let status = record.status();
        if status.is_pending() {
            return Err(Rejection::new(
                409,
                codes::RELEASE_BUSY,
                busy_message(&key.name, &status),
            ));
        }
        self.releases.remove(key);
        Ok(Outcome {
            release: None,
            applied: true,
        })
    }

    /// One release as [`Store::snapshot`] shows it (settled as of now, values unmasked).
    pub fn release(&mut self, key: &ReleaseKey) -> Option<ReleaseSnapshot> {
        let now = Instant::now();
        self.releases
            .get_mut(key)
            .map(|record| record.snapshot(key, now))
    }

    /// Rewrites one release, to set up a state that requests cannot reach (a longer history, a
    /// change still settling, values as another tool left them). `edit` gets the release as
    /// [`Store::release`] shows it; what it leaves is read back as a `--state` file's release
    /// would be (its address fields are ignored; a release left without revisions is removed).
    /// `None` when there is no such release.
    pub fn edit_release<R>(
        &mut self,
        key: &ReleaseKey,
        edit: impl FnOnce(&mut ReleaseSnapshot) -> R,
    ) -> Option<R> {
        let now = Instant::now();
        let mut release = self.releases.get_mut(key)?.snapshot(key, now);
        let answer = edit(&mut release);
        match ReleaseRecord::from_snapshot(release, now) {
            Some(record) => self.releases.insert(key.clone(), record),
            None => self.releases.remove(key),
        };
        Some(answer)
    }

    /// How long changes from now on take to become final; changes already settling keep theirs.
    pub fn set_settle(&mut self, settle: Duration) {
        self.settle = settle;
    }

    /// Adds a chart, or replaces the one with its id (e.g. with a new version); returns the
    /// chart it replaced.
    pub fn insert_chart(&mut self, chart: Chart) -> Option<Chart> {
        self.charts.insert(chart.id.clone(), chart)
    }

    /// ShowAutopilotChart.
    pub fn chart(&self, chart_id: &str) -> Result<Chart, Rejection> {
        self.charts
            .get(chart_id)
            .cloned()
            .ok_or_else(|| chart_not_found(chart_id))
    }

    /// ListAutopilotCharts.
    pub fn charts(&self) -> Vec<Chart> {
        self.charts.values().cloned().collect()
    }

    /// Everything, settled as of now, values unmasked (for the `--state` file).
    pub fn snapshot(&mut self) -> SimStateSnapshot {
        let now = Instant::now();
        let mut releases: Vec<ReleaseSnapshot> = self
            .releases
            .iter_mut()
            .map(|(key, record)| record.snapshot(key, now))
            .collect();
        releases.sort_by(|a, b| {
            (&a.cluster_id, &a.namespace, &a.name).cmp(&(&b.cluster_id, &b.namespace, &b.name))
        });
        SimStateSnapshot {
            clusters: self
                .clusters
                .iter()
                .map(|(id, name)| ClusterSnapshot {
                    id: id.clone(),
                    name: name.clone(),
                })
                .collect(),
            charts: self.charts(),
            applied_puts: self.applied_puts,
            releases,
        }
    }
}

fn chart_not_found(chart_id: &str) -> Rejection {
    Rejection::new(
        404,
        codes::CHART_NOT_FOUND,
        format!("chart {chart_id} not found"),
    )
}

fn release_not_found(key: &ReleaseKey) -> Rejection {
    Rejection::new(
        404,
        codes::RELEASE_NOT_FOUND,
        format!(
            "release {} not found in namespace {} of cluster {}",
            key.name, key.namespace, key.cluster_id
        ),
    )
}

fn cluster_not_found(cluster_id: &str) -> Rejection {
    Rejection::new(
        404,
        codes::CLUSTER_NOT_FOUND,
        format!("cluster {cluster_id} not found"),
    )
}

/// The most revisions a release is seeded with: more than any rollback names in practice, and
/// few enough that a typo (`release_version: 4100000`) cannot fill the memory; a rollback past
/// it is refused as one to a missing revision.
pub const MAX_SEEDED_REVISIONS: u32 = 1000;

/// How many revisions a release needs before `op` for its rollback to find its target and to
/// change something: `release_version: R` needs R + 1 (R is then an earlier revision, not the
/// current one), `previous` 2 and `-N` N + 1. Anything else needs the one every release has.
pub fn revisions_needed(op: &Operation) -> u32 {
    if op.action != Action::Rollback {
        return 1;
    }
    if let Some(relative) = op.relative_version {
        return relative.back().saturating_add(1);
    }
    op.body
        .parameters
        .as_ref()
        .and_then(|p| p.release_version)
        .and_then(|target| u32::try_from(target).ok())
        .map_or(1, |target| target.saturating_add(1))
}

/// Revisions 1 to `count` of a release on `chart`, all `DEPLOYED`: an install, then upgrades.
/// Each revision before the current one holds `seededRevision: N` in its values, so that a
/// rollback to it is a change (and shows which revision it went back to); the current one has
/// the empty values a release seeded without history has.
fn seeded_history(chart: &Chart, count: u32) -> Vec<RevisionSnapshot> {
    let current = i64::from(count.max(1));
    (1..=current)
        .map(|version| {
            let mut values = Map::new();
            if version < current {
                values.insert("seededRevision".to_owned(), Value::from(version));
            }
            let mut revision = new_revision(
                chart,
                values,
                ReleaseParameters::default(),
                ReleaseStatus::Deployed,
            );
            revision.version = version;
            if version > 1 {
                revision.action = "upgrade".into();
                revision.description = "Upgrade complete".into();
            }
            revision
        })
        .collect()
}

fn new_revision(
    chart: &Chart,
    values: Map<String, Value>,
    params: ReleaseParameters,
    status: ReleaseStatus,
) -> RevisionSnapshot {
    let now = wall_now();
    RevisionSnapshot {
        version: 1,
        action: "install".into(),
        chart_id: chart.id.clone(),
        chart_name: chart.name.clone(),
        chart_version: chart.version.clone(),
        status,
        status_description: String::new(),
        description: "Install complete".into(),
        values,
        parameters: ReleaseParameters {
            dry_run: None,
            ..params
        },
        create_at: now.clone(),
        update_at: now,
        settles_to: None,
        settles_in_ms: None,
    }
}

/// The release object of an answer: `values` and `parameters` as JSON-encoded strings, secret
/// keys masked.
fn render(key: &ReleaseKey, record: &ReleaseRecord, revision: &RevisionSnapshot) -> Release {
    let values = Value::Object(secret::redact_map(&revision.values));
    Release {
        chart_name: Some(revision.chart_name.clone()),
        chart_public: Some(false),
        chart_version: Some(revision.chart_version.clone()),
        cluster_id: key.cluster_id.clone(),
        cluster_name: record.cluster_name.clone(),
        create_at: revision.create_at.clone(),
        description: revision.description.clone(),
        name: key.name.clone(),
        namespace: key.namespace.clone(),
        parameters: Value::String(
            serde_json::to_string(&revision.parameters).unwrap_or_else(|_| "{}".into()),
        ),
        // Worded by the server: only a GET with `show_resources=true` answers it.
        resources: Value::Null,
        status: Some(revision.status.clone()),
        status_description: revision.status_description.clone(),
        update_at: revision.update_at.clone(),
        values: Value::String(values.to_string()),
        version: Some(revision.version),
    }
}

/// A deploy fails on purpose when the new `imageTag` starts with `fail-`.
fn image_tag_fails(values: &Map<String, Value>) -> bool {
    values
        .get("imageTag")
        .and_then(Value::as_str)
        .is_some_and(|tag| tag.starts_with("fail-"))
}

fn settled_description(outcome: &ReleaseStatus, values: &Map<String, Value>) -> String {
    match outcome {
        ReleaseStatus::Failed if image_tag_fails(values) => format!(
            "deploy failed: image tag {} could not be pulled",
            values.get("imageTag").and_then(Value::as_str).unwrap_or("")
        ),
        ReleaseStatus::Failed => "deploy failed: pods did not become ready (simulated)".into(),
        _ => String::new(),
    }
}

fn wall_now() -> String {
    Timestamp::from_second(Timestamp::now().as_second())
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string()
}

fn wall_after(delay: Duration) -> String {
    let then = Timestamp::now()
        .checked_add(delay)
        .unwrap_or_else(|_| Timestamp::now());
    Timestamp::from_second(then.as_second())
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string()
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// A stable UUID-shaped chart id for a release whose plan names no chart.
pub fn derived_chart_id(release: &str) -> String {
    let h = hex::encode(digest(&format!("flotilla-sim/chart/{release}")));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A chart that looks real: named after the release, with a version derived from its id.
pub fn plausible_chart(chart_id: &str, name: &str, created: &str) -> Chart {
    let d = digest(chart_id);
    let version = format!("{}.{}.{}", 1 + d[0] % 3, d[1] % 20, d[2] % 10);
    Chart {
        id: chart_id.to_owned(),
        name: name.to_owned(),
        version: version.clone(),
        description: format!("{name} chart (simulated)"),
        source: "simulator".into(),
        icon_url: String::new(),
        chart_url: format!("{name}-{version}.tgz"),
        create_at: created.to_owned(),
        update_at: created.to_owned(),
        public: Some(false),
        values: "{}".into(),
        translate: String::new(),
        instruction: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan on one cluster: `back` rolls back to `target`, `prev` to `previous`, `up` upgrades.
    fn rollback_plan(target: &str) -> ExpandedPlan {
        let text = format!(
            "version: 1\ntarget: {{ region: cn-north-4 }}\nclusters:\n  \
             c1: {{ id: 00000000-0000-0000-0000-000000000001 }}\nreleases:\n  \
             - {{ name: back, namespace: shop, cluster: c1, action: rollback, \
             parameters: {{ release_version: {target} }} }}\n  \
             - {{ name: prev, namespace: shop, cluster: c1, action: rollback, \
             parameters: {{ release_version: previous }} }}\n  \
             - {{ name: back3, namespace: shop, cluster: c1, action: rollback, \
             parameters: {{ release_version: -3 }} }}\n  \
             - {{ name: up, namespace: shop, cluster: c1, \
             chart_id: af4b699e-018c-11ec-b8b0-0255ac100b05 }}\n"
        );
        crate::plan::load_source(std::path::Path::new("p.yaml"), text.as_bytes(), &|_| None)
            .expect("a valid plan")
    }

    fn seeded_key(name: &str) -> ReleaseKey {
        ReleaseKey::new("00000000-0000-0000-0000-000000000001", "shop", name)
    }

    #[test]
    fn a_rollback_needs_one_revision_more_than_it_goes_back_to() {
        let plan = rollback_plan("41");
        let needed: Vec<(String, u32)> = plan
            .operations()
            .map(|op| (op.release.clone(), revisions_needed(op)))
            .collect();
        assert_eq!(
            needed,
            [
                ("back".to_owned(), 42),
                ("prev".to_owned(), 2),
                ("back3".to_owned(), 4),
                ("up".to_owned(), 1)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_seeded_history_lets_the_plans_rollbacks_change_something() {
        let mut store = Store::new(Duration::ZERO);
        store.seed_with_history(&rollback_plan("3"), 1);
        let versions = |store: &mut Store, name: &str| -> Vec<i64> {
            let release = store.release(&seeded_key(name)).expect("seeded");
            release.history.iter().map(|r| r.version).collect()
        };
        assert_eq!(versions(&mut store, "back"), [1, 2, 3, 4]);
        assert_eq!(versions(&mut store, "prev"), [1, 2]);
        assert_eq!(versions(&mut store, "back3"), [1, 2, 3, 4]);
        assert_eq!(versions(&mut store, "up"), [1]);
        let back = store.release(&seeded_key("back")).unwrap();
        assert_eq!(back.status, ReleaseStatus::Deployed);
        assert_eq!(back.applied_puts, 0);
        assert_eq!(back.history[0].action, "install");
        assert_eq!(back.history[3].action, "upgrade");
        assert!(back.history[3].values.is_empty());
        assert_eq!(back.history[2].values["seededRevision"], 3);

        let rollback = UpdateReleaseBody {
            chart_id: None,
            action: Action::Rollback,
            parameters: Some(ReleaseParameters {
                release_version: Some(3),
                ..ReleaseParameters::default()
            }),
            values: None,
        };
        let outcome = store.update(&seeded_key("back"), &rollback, false).unwrap();
        assert!(outcome.applied);
        let after = store.release(&seeded_key("back")).unwrap();
        assert_eq!(after.version, 5);
        assert_eq!(after.history[4].values["seededRevision"], 3);
    }

    #[test]
    fn every_release_gets_at_least_the_minimum_and_no_more_than_the_cap() {
        let mut store = Store::new(Duration::ZERO);
        store.seed_with_history(&rollback_plan("5000"), 6);
        let count =
            |store: &mut Store, name: &str| store.release(&seeded_key(name)).unwrap().history.len();
        assert_eq!(count(&mut store, "up"), 6);
        assert_eq!(count(&mut store, "prev"), 6);
        assert_eq!(count(&mut store, "back"), MAX_SEEDED_REVISIONS as usize);
        // A release the store holds already keeps its own history.
        store.seed_with_history(&rollback_plan("3"), 9);
        assert_eq!(count(&mut store, "up"), 6);
        // Without a history, one revision, as ever.
        let mut plain = Store::new(Duration::ZERO);
        plain.seed(&rollback_plan("3"));
        assert_eq!(count(&mut plain, "back"), 1);
    }

    /// A store with one release, `web` in namespace `default` of cluster `c1`, at revision 1.
    fn store_with_one_release() -> (Store, ReleaseKey) {
        let mut store = Store::from_snapshot(
            SimStateSnapshot {
                clusters: vec![ClusterSnapshot {
                    id: "c1".into(),
                    name: "one".into(),
                }],
                charts: vec![plausible_chart("chart-1", "web", "2024-01-01T00:00:00Z")],
                ..SimStateSnapshot::default()
            },
            Duration::ZERO,
        );
        let body = CreateReleaseBody {
            chart_id: "chart-1".into(),
            name: "web".into(),
            namespace: "default".into(),
            description: None,
            version: None,
            parameters: None,
            values: None,
        };
        store.create("c1", body, false).expect("created");
        (store, ReleaseKey::new("c1", "default", "web"))
    }

    #[tokio::test(start_paused = true)]
    async fn an_edited_release_settles_its_pending_change_to_the_millisecond() {
        let (mut store, key) = store_with_one_release();
        store
            .edit_release(&key, |release| {
                let mut next = release.history[0].clone();
                next.version = 2;
                next.status = ReleaseStatus::PendingUpgrade;
                next.settles_to = Some(ReleaseStatus::Failed);
                next.settles_in_ms = Some(5000);
                release.history.push(next);
            })
            .expect("the release exists");
        let upgrade = UpdateReleaseBody {
            chart_id: None,
            action: Action::Upgrade,
            parameters: None,
            values: None,
        };
        assert_eq!(store.update(&key, &upgrade, false).unwrap_err().status, 409);
        tokio::time::advance(Duration::from_millis(4999)).await;
        assert_eq!(
            store.show(&key).unwrap().status(),
            ReleaseStatus::PendingUpgrade
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        let settled = store.release(&key).unwrap();
        assert_eq!(
            (settled.version, &settled.status),
            (2, &ReleaseStatus::Failed)
        );
        assert_eq!(settled.current().unwrap().settles_to, None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_edit_that_leaves_no_revision_removes_the_release() {
        let (mut store, key) = store_with_one_release();
        store.edit_release(&key, |release| release.history.clear());
        assert_eq!(store.show(&key).unwrap_err().status, 404);
        assert!(store.release(&key).is_none());
        assert!(store.edit_release(&key, |_| ()).is_none());
    }
}
