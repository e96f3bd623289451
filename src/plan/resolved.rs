//! The plan as the engine consumes it: defaults merged, variables interpolated, settings
//! resolved, and releases expanded into operations grouped by wave in execution order.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::cce::model::{Action, UpdateReleaseBody};

/// A validated, expanded plan.
#[derive(Clone, Debug, Serialize)]
pub struct ExpandedPlan {
    /// `name` from the plan, or the file stem when it has none.
    pub name: String,
    /// The plan's identity, and its one hash: lowercase hex SHA-256 of the file and of what its
    /// variables put in it (see `plan::plan_hash`). `plan` shows it, it names the default
    /// journal, the journal and the reports record it, and `--resume` and `report merge`
    /// compare it.
    pub hash: String,
    pub rollout: Rollout,
    /// In execution order; operations no wave selects form a final implicit wave.
    pub waves: Vec<Wave>,
    /// What is secret in this plan: the built-in rules, `secrets`, the values of secret
    /// variables, and any `--redact` the command line adds. Every output that shows a value
    /// goes through it.
    #[serde(skip)]
    pub redactor: crate::secret::Redactor,
}

/// The first 12 hex digits of a hash: enough to tell plans apart in a name or a message.
pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

impl ExpandedPlan {
    pub fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.waves.iter().flat_map(|w| w.operations.iter())
    }

    pub fn operation_count(&self) -> usize {
        self.waves.iter().map(|w| w.operations.len()).sum()
    }

    /// The name of wave number `wave` (an [`Operation::wave`]), or `""` for none.
    pub fn wave_name(&self, wave: usize) -> &str {
        self.waves.get(wave).map_or("", |w| w.name.as_str())
    }

    /// The plan as a rehearsal `factor` times faster (`--time-scale`): every duration it waits
    /// for (soaks, polls, wait and request time-outs, retry back-offs) divided by `factor`, and
    /// every rate multiplied by it, so that the same requests go out in the same order and
    /// proportions, only sooner.
    pub fn speed_up(&mut self, factor: f64) {
        let faster = |d: &mut Duration| *d = d.div_f64(factor);
        let r = &mut self.rollout;
        faster(&mut r.request_timeout);
        faster(&mut r.retry.backoff);
        faster(&mut r.retry.max_backoff);
        faster(&mut r.wait.timeout);
        faster(&mut r.wait.poll);
        if let Rate::PerSecond(rate) = &mut r.rate {
            *rate *= factor;
        }
        for wave in &mut self.waves {
            faster(&mut wave.soak);
        }
    }

    /// Sends every cluster's requests to `endpoint` (a `--endpoint` override or a simulator).
    pub fn retarget(&mut self, endpoint: &str) {
        self.retarget_each(|_| endpoint.to_owned());
    }

    /// Points each cluster at the endpoint `endpoint_of` gives for it (as the plan has it).
    pub fn retarget_each(&mut self, endpoint_of: impl Fn(&ClusterTarget) -> String) {
        self.rebuild_clusters(|cluster| {
            Some(ClusterTarget {
                endpoint: endpoint_of(cluster),
                ..cluster.clone()
            })
        });
    }

    /// Replaces each cluster with what `rebuild` makes of it (`None` keeps it), once per
    /// cluster, so that its operations keep sharing one target.
    fn rebuild_clusters(
        &mut self,
        mut rebuild: impl FnMut(&ClusterTarget) -> Option<ClusterTarget>,
    ) {
        let mut rebuilt: std::collections::HashMap<String, Option<Arc<ClusterTarget>>> =
            std::collections::HashMap::new();
        for op in self.waves.iter_mut().flat_map(|w| w.operations.iter_mut()) {
            let cluster = rebuilt
                .entry(op.cluster.name.clone())
                .or_insert_with(|| rebuild(&op.cluster).map(Arc::new));
            if let Some(cluster) = cluster {
                op.cluster = Arc::clone(cluster);
            }
        }
    }

    /// Each endpoint the plan's clusters use, once, in plan order, with the regions of the
    /// clusters that use it.
    pub fn endpoints(&self) -> Vec<(String, Vec<String>)> {
        let mut found: Vec<(String, Vec<String>)> = Vec::new();
        for op in self.operations() {
            let cluster = &op.cluster;
            match found.iter_mut().find(|(url, _)| *url == cluster.endpoint) {
                Some((_, regions)) if !regions.contains(&cluster.region) => {
                    regions.push(cluster.region.clone());
                }
                Some(_) => {}
                None => found.push((cluster.endpoint.clone(), vec![cluster.region.clone()])),
            }
        }
        found
    }

    /// Gives every cluster without a project id the one `project_id_of` finds for it (found
    /// through IAM per region), keeping one shared target per cluster.
    pub fn fill_project_ids(
        &mut self,
        mut project_id_of: impl FnMut(&ClusterTarget) -> Option<String>,
    ) {
        self.rebuild_clusters(|cluster| {
            cluster.project_id.is_none().then(|| ClusterTarget {
                project_id: project_id_of(cluster),
                ..cluster.clone()
            })
        });
    }

    /// The first 12 hex digits of [`Self::hash`], as shown to people.
    pub fn short_hash(&self) -> &str {
        short(&self.hash)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Wave {
    pub name: String,
    /// True for the final wave of operations that no declared wave selects.
    pub implicit: bool,
    /// Wait after this wave ends, before the next one starts.
    #[serde(with = "duration_text")]
    pub soak: Duration,
    /// This wave's own budget; the overall one in [`Rollout::max_failures`] applies too.
    pub max_failures: Option<FailureBudget>,
    pub operations: Vec<Operation>,
}

/// One release on one cluster: one PUT.
#[derive(Clone, Debug, Serialize)]
pub struct Operation {
    /// Position in execution order over the whole plan, from 0; stable for a given plan file.
    pub index: usize,
    /// Index into [`ExpandedPlan::waves`].
    pub wave: usize,
    pub cluster: Arc<ClusterTarget>,
    pub namespace: String,
    pub release: String,
    pub action: Action,
    /// The exact body of the PUT (shared by every cluster of one release).
    pub body: Arc<UpdateReleaseBody>,
    pub rollback_on_failure: bool,
    /// A rollback's target as the plan wrote it relative to the release's current revision
    /// (`previous`, `-N`); the body's `release_version` is then unset until the engine resolves
    /// it per operation at run time.
    pub relative_version: Option<RelativeRevision>,
    /// The revision the release must be at for the PUT to be sent (`flotilla undo`: the
    /// revision the undone run left); at another one the operation is skipped unless forced.
    pub expected_revision: Option<i64>,
}

impl Operation {
    /// Whether the release must be read before the PUT even with preflight off: to resolve a
    /// relative revision, or to check the revision it is expected at.
    pub fn reads_before_put(&self) -> bool {
        self.relative_version.is_some() || self.expected_revision.is_some()
    }
}

/// `release_version: previous` or `-N`: so many revisions back from the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum RelativeRevision {
    /// The revision before the current one.
    Previous,
    /// N revisions back (N >= 1).
    Back(u32),
}

impl RelativeRevision {
    /// How many revisions back, 1 for `previous`.
    pub fn back(self) -> u32 {
        match self {
            RelativeRevision::Previous => 1,
            RelativeRevision::Back(n) => n,
        }
    }

    /// The plan's own words: `previous`, `-N`, a revision number is not one of these. `None`
    /// when `value` is no relative form.
    pub fn parse(value: &serde_json::Value) -> Option<Self> {
        let back = match value {
            serde_json::Value::String(s) if s == "previous" => return Some(Self::Previous),
            serde_json::Value::String(s) => s.strip_prefix('-')?.parse::<u32>().ok()?,
            serde_json::Value::Number(n) => u32::try_from(n.as_i64()?.checked_neg()?).ok()?,
            _ => return None,
        };
        (back >= 1).then_some(Self::Back(back))
    }
}

/// As a plan writes it.
impl std::fmt::Display for RelativeRevision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelativeRevision::Previous => f.write_str("previous"),
            RelativeRevision::Back(n) => write!(f, "-{n}"),
        }
    }
}

/// A cluster as requests address it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ClusterTarget {
    pub name: String,
    pub id: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub region: String,
    /// Base URL, e.g. `https://cce.cn-north-4.myhuaweicloud.com` (no trailing slash).
    pub endpoint: String,
    /// The IAM endpoint the plan names for this cluster (its own `iam_endpoint`, else
    /// `target.iam_endpoint`; no trailing slash), where its region's project id is asked for
    /// when the credentials carry none.
    pub iam_endpoint: Option<String>,
    pub project_id: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Rollout {
    /// Operations in flight, all clusters together.
    pub concurrency: usize,
    /// Operations in flight on one cluster.
    pub per_cluster: usize,
    pub rate: Rate,
    pub burst: u32,
    pub retry: RetryPolicy,
    #[serde(with = "duration_text")]
    pub request_timeout: Duration,
    pub preflight: bool,
    pub wait: WaitPolicy,
    /// Overall budget: exceeded -> the run halts.
    pub max_failures: FailureBudget,
}

/// Settings given on the command line that replace the plan's `rollout` (`None`/`false`: the
/// plan's own).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RolloutOverrides {
    pub concurrency: Option<usize>,
    pub per_cluster: Option<usize>,
    pub rate: Option<Rate>,
    pub burst: Option<u32>,
    pub retry_attempts: Option<u32>,
    pub max_failures: Option<FailureBudget>,
    pub request_timeout: Option<Duration>,
    pub no_wait: bool,
    pub no_preflight: bool,
}

impl Rollout {
    /// The plan's rollout with `overrides` applied.
    pub fn override_with(&mut self, overrides: &RolloutOverrides) {
        let o = overrides;
        self.concurrency = o.concurrency.unwrap_or(self.concurrency);
        self.per_cluster = o.per_cluster.unwrap_or(self.per_cluster);
        self.rate = o.rate.unwrap_or(self.rate);
        self.burst = o.burst.unwrap_or(self.burst);
        self.retry.attempts = o.retry_attempts.unwrap_or(self.retry.attempts);
        self.max_failures = o.max_failures.unwrap_or(self.max_failures);
        self.request_timeout = o.request_timeout.unwrap_or(self.request_timeout);
        self.wait.enabled &= !o.no_wait;
        self.preflight &= !o.no_preflight;
    }
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            concurrency: 16,
            per_cluster: 2,
            rate: Rate::PerSecond(10.0),
            burst: 10,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            preflight: true,
            wait: WaitPolicy::default(),
            max_failures: FailureBudget::Count(0),
        }
    }
}

/// Requests per second to one endpoint, every request counted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    PerSecond(f64),
    Unlimited,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    #[serde(with = "duration_text")]
    pub backoff: Duration,
    #[serde(with = "duration_text")]
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WaitPolicy {
    pub enabled: bool,
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    #[serde(with = "duration_text")]
    pub poll: Duration,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy {
            enabled: true,
            timeout: Duration::from_secs(600),
            poll: Duration::from_secs(5),
        }
    }
}

/// How many failures a wave or a run tolerates before it halts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FailureBudget {
    Count(u32),
    /// 0 to 100, of the operations in scope.
    Percent(f64),
}

/// As a plan writes it: `3` or `10%`.
impl std::fmt::Display for FailureBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureBudget::Count(n) => write!(f, "{n}"),
            FailureBudget::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// As a plan writes it: a number, or `"unlimited"`.
impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Rate::PerSecond(n) => serializer.serialize_f64(*n),
            Rate::Unlimited => serializer.serialize_str("unlimited"),
        }
    }
}

/// As a plan writes it: a count (`3`), or a share as text (`"10%"`).
impl Serialize for FailureBudget {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FailureBudget::Count(n) => serializer.serialize_u32(*n),
            FailureBudget::Percent(_) => serializer.collect_str(self),
        }
    }
}

/// As [`Serialize`] writes it, for the reports that carry a budget to `report merge`.
impl<'de> serde::Deserialize<'de> for FailureBudget {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Written {
            Count(u32),
            Share(String),
        }
        match Written::deserialize(deserializer)? {
            Written::Count(n) => Ok(FailureBudget::Count(n)),
            Written::Share(text) => text
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<f64>().ok())
                .filter(|p| (0.0..=100.0).contains(p))
                .map(FailureBudget::Percent)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "{text:?} is not a failure budget (a count, or a percentage such as \"10%\")"
                    ))
                }),
        }
    }
}

impl FailureBudget {
    /// True when `failures` out of `total` operations exceed the budget.
    pub fn exceeded(&self, failures: usize, total: usize) -> bool {
        match *self {
            FailureBudget::Count(max) => failures > max as usize,
            FailureBudget::Percent(pct) => (failures as f64) > (pct / 100.0) * total as f64,
        }
    }
}

/// Durations print as the plan writes them: `500ms`, `30s`, `5m`, `1h`.
pub mod duration_text {
    use std::time::Duration;

    pub fn format(d: Duration) -> String {
        let ms = d.as_millis();
        if ms == 0 {
            "0s".to_owned()
        } else if ms.is_multiple_of(3_600_000) {
            format!("{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) {
            format!("{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    }

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_budgets_serialize_as_a_plan_writes_them() {
        use serde_json::{json, to_value};
        assert_eq!(to_value(Rate::PerSecond(2.5)).unwrap(), json!(2.5));
        assert_eq!(to_value(Rate::Unlimited).unwrap(), json!("unlimited"));
        assert_eq!(to_value(FailureBudget::Count(3)).unwrap(), json!(3));
        assert_eq!(
            to_value(FailureBudget::Percent(12.5)).unwrap(),
            json!("12.5%")
        );
        // Reports carry budgets to `report merge`, which reads them back.
        for budget in [FailureBudget::Count(3), FailureBudget::Percent(12.5)] {
            let written = to_value(budget).unwrap();
            assert_eq!(
                serde_json::from_value::<FailureBudget>(written).unwrap(),
                budget
            );
        }
        assert!(serde_json::from_value::<FailureBudget>(json!("120%")).is_err());
    }

    #[test]
    fn relative_revisions_parse_from_the_words_a_plan_writes() {
        use serde_json::json;
        assert_eq!(
            RelativeRevision::parse(&json!("previous")),
            Some(RelativeRevision::Previous)
        );
        assert_eq!(
            RelativeRevision::parse(&json!(-2)),
            Some(RelativeRevision::Back(2))
        );
        assert_eq!(
            RelativeRevision::parse(&json!("-3")),
            Some(RelativeRevision::Back(3))
        );
        for absolute in [json!(3), json!(0), json!("-0"), json!("prev"), json!(1.5)] {
            assert_eq!(RelativeRevision::parse(&absolute), None, "{absolute}");
        }
        assert_eq!(RelativeRevision::Previous.back(), 1);
        assert_eq!(RelativeRevision::Back(4).to_string(), "-4");
        assert_eq!(RelativeRevision::Previous.to_string(), "previous");
    }

    #[test]
    fn budgets_are_exceeded_past_their_limit_not_at_it() {
        assert!(FailureBudget::Count(0).exceeded(1, 10));
        assert!(!FailureBudget::Count(0).exceeded(0, 10));
        assert!(!FailureBudget::Count(2).exceeded(2, 10));
        assert!(!FailureBudget::Percent(10.0).exceeded(1, 10));
        assert!(FailureBudget::Percent(10.0).exceeded(2, 10));
        assert!(!FailureBudget::Percent(100.0).exceeded(10, 10));
    }

    #[test]
    fn a_plan_sped_up_waits_less_and_sends_faster_in_the_same_proportions() {
        let mut plan = crate::plan::load_source(
            std::path::Path::new("t.yaml"),
            br#"version: 1
target: { region: cn-north-4 }
clusters: { c: { id: 00000001-0000-4000-8000-000000000000 } }
defaults: { chart_id: af4b699e-018c-11ec-b8b0-0255ac100b05 }
rollout:
  rate: 20
  request_timeout: 30s
  retry: { backoff: 600ms, max_backoff: 30s }
  wait: { timeout: 15m, poll: 10s }
  waves: [ { name: one, select: { labels: {} }, soak: 5m } ]
releases: [ { name: web, namespace: shop, cluster: c } ]
"#,
            &|_| None,
        )
        .unwrap();
        plan.speed_up(60.0);
        let r = &plan.rollout;
        assert_eq!(r.rate, Rate::PerSecond(1200.0));
        assert_eq!(r.request_timeout, Duration::from_millis(500));
        assert_eq!(r.retry.backoff, Duration::from_millis(10));
        assert_eq!(r.retry.max_backoff, Duration::from_millis(500));
        assert_eq!(r.wait.timeout, Duration::from_secs(15));
        assert_eq!(r.wait.poll, Duration::from_nanos(166_666_667));
        assert_eq!(plan.waves[0].soak, Duration::from_secs(5));
        // What is not time stays as planned.
        assert_eq!(r.retry.attempts, 5);
        assert_eq!(r.burst, 10);

        plan.rollout.rate = Rate::Unlimited;
        plan.speed_up(2.0);
        assert_eq!(plan.rollout.rate, Rate::Unlimited);
    }

    /// Each endpoint once, in plan order, with its regions; and each cluster pointed at the
    /// endpoint standing for its own (as `apply --simulate` does).
    #[test]
    fn endpoints_are_listed_once_and_each_cluster_retargeted_by_its_own() {
        let mut plan = crate::plan::load_source(
            std::path::Path::new("t.yaml"),
            br#"version: 1
target: { region: cn-north-4 }
clusters:
  a: { id: 00000001-0000-4000-8000-000000000000 }
  b: { id: 00000002-0000-4000-8000-000000000000, region: cn-east-3 }
  c: { id: 00000003-0000-4000-8000-000000000000 }
  d: { id: 00000004-0000-4000-8000-000000000000, region: eu-private, endpoint: https://cce.example.com }
defaults: { chart_id: af4b699e-018c-11ec-b8b0-0255ac100b05 }
releases: [ { name: web, namespace: shop, selector: { labels: {} } } ]
"#,
            &|_| None,
        )
        .unwrap();
        let endpoints = plan.endpoints();
        let listed: Vec<(&str, Vec<&str>)> = endpoints
            .iter()
            .map(|(url, regions)| (url.as_str(), regions.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            listed,
            [
                (
                    "https://cce.cn-north-4.myhuaweicloud.com",
                    vec!["cn-north-4"]
                ),
                ("https://cce.cn-east-3.myhuaweicloud.com", vec!["cn-east-3"]),
                ("https://cce.example.com", vec!["eu-private"]),
            ]
        );
        plan.retarget_each(|cluster| format!("http://sim/{}", cluster.region));
        let pointed: Vec<(&str, &str)> = plan
            .operations()
            .map(|op| (op.cluster.name.as_str(), op.cluster.endpoint.as_str()))
            .collect();
        assert_eq!(
            pointed,
            [
                ("a", "http://sim/cn-north-4"),
                ("b", "http://sim/cn-east-3"),
                ("c", "http://sim/cn-north-4"),
                ("d", "http://sim/eu-private"),
            ]
        );
    }

    #[test]
    fn overrides_replace_only_what_they_name() {
        let plan = Rollout::default();
        let mut kept = plan.clone();
        kept.override_with(&RolloutOverrides::default());
        assert_eq!(kept, plan);

        let mut overridden = plan.clone();
        overridden.override_with(&RolloutOverrides {
            concurrency: Some(3),
            per_cluster: Some(1),
            rate: Some(Rate::Unlimited),
            burst: Some(7),
            retry_attempts: Some(9),
            max_failures: Some(FailureBudget::Percent(10.0)),
            request_timeout: Some(Duration::from_secs(5)),
            no_wait: true,
            no_preflight: true,
        });
        assert_eq!(
            (
                overridden.concurrency,
                overridden.per_cluster,
                overridden.burst
            ),
            (3, 1, 7)
        );
        assert_eq!(overridden.rate, Rate::Unlimited);
        assert_eq!(overridden.retry.attempts, 9);
        assert_eq!(overridden.max_failures, FailureBudget::Percent(10.0));
        assert_eq!(overridden.request_timeout, Duration::from_secs(5));
        assert!(!overridden.wait.enabled && !overridden.preflight);
        // What the flags do not name stays the plan's.
        assert_eq!(overridden.retry.backoff, plan.retry.backoff);
        assert_eq!(overridden.wait.timeout, plan.wait.timeout);
    }

    #[test]
    fn durations_print_in_their_largest_whole_unit() {
        assert_eq!(duration_text::format(Duration::from_millis(500)), "500ms");
        assert_eq!(duration_text::format(Duration::from_secs(30)), "30s");
        assert_eq!(duration_text::format(Duration::from_secs(300)), "5m");
        assert_eq!(duration_text::format(Duration::from_secs(3600)), "1h");
    }
}
