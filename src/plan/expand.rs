//! Semantic checks and expansion: from the plan as written to operations grouped by wave, in
//! execution order. Every problem is collected; nothing stops at the first.
//!
//! Execution order within a wave: clusters are taken in the order the plan declares them, and
//! operations are dealt round-robin across them: the first release of every cluster, then the
//! second of every cluster, and so on (releases in the order the plan lists them). Consecutive
//! operations therefore land on different clusters whenever the wave has more than one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::diagnostic::{Diagnostic, SourceLines, suggestion_suffix};
use super::raw::{RawBudget, RawPlan, RawRate, RawSelector};
use super::resolved::{
    ClusterTarget, ExpandedPlan, FailureBudget, Operation, Rate, RelativeRevision, RetryPolicy,
    Rollout, WaitPolicy, Wave,
};
use super::source::{Positions, push_pointer};
use crate::cce::model::{Action, ReleaseParameters, UpdateReleaseBody};
use crate::cce::region;

/// The name of the wave of operations that no declared wave selects.
pub const IMPLICIT_WAVE: &str = "(implicit)";

/// Where diagnostics go and how nodes are found.
pub struct Context<'a> {
    pub path: &'a std::path::Path,
    pub lines: &'a SourceLines<'a>,
    pub positions: &'a Positions,
    pub problems: Vec<Diagnostic>,
}

impl Context<'_> {
    fn at_value(&mut self, pointer: &str, message: impl Into<String>) {
        let pos = self.positions.value(pointer);
        self.problems
            .push(Diagnostic::in_lines(self.path, self.lines, pos, message));
    }

    fn at_key(&mut self, pointer: &str, message: impl Into<String>) {
        let pos = self.positions.key(pointer);
        self.problems
            .push(Diagnostic::in_lines(self.path, self.lines, pos, message));
    }
}

/// `500ms`, `30s`, `5m`, `1h` (the schema has checked the shape).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let (digits, unit_ms) = if let Some(d) = text.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = text.strip_suffix('s') {
        (d, 1_000)
    } else if let Some(d) = text.strip_suffix('m') {
        (d, 60_000)
    } else if let Some(d) = text.strip_suffix('h') {
        (d, 3_600_000)
    } else {
        return None;
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(unit_ms).map(Duration::from_millis)
}

/// Deep-merges `over` into `base`: mappings merge key by key, anything else in `over` wins.
pub fn deep_merge(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(Value::Object(b)), Value::Object(o)) => deep_merge(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Checks `raw` and expands it; `Err` when any problem was found (they are in `ctx.problems`).
pub fn expand(
    raw: &RawPlan,
    name: String,
    hash: String,
    ctx: &mut Context<'_>,
) -> Option<ExpandedPlan> {
    let clusters = resolve_clusters(raw, ctx);
    // Once for the defaults, not once for every release that takes them.
    refuse_dry_run(raw.defaults.parameters.as_ref(), "/defaults", ctx);
    let index_of: HashMap<&str, usize> = raw
        .clusters
        .keys()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let names: Vec<&str> = raw.clusters.keys().map(String::as_str).collect();
    let rollout = resolve_rollout(raw, ctx);

    // Waves: each cluster belongs to the first declared wave that selects it.
    let mut wave_of_cluster: Vec<Option<usize>> = vec![None; clusters.len()];
    let mut wave_selects_any: Vec<bool> = Vec::with_capacity(raw.rollout.waves.len());
    let mut wave_names: HashMap<&str, usize> = HashMap::new();
    for (w, wave) in raw.rollout.waves.iter().enumerate() {
        let pointer = format!("/rollout/waves/{w}");
        if let Some(first) = wave_names.insert(wave.name.as_str(), w) {
            ctx.at_value(
                &format!("{pointer}/name"),
                format!(
                    "wave name `{}` is already used by waves[{first}]",
                    wave.name
                ),
            );
        }
        let selected = select(
            &wave.select,
            &format!("{pointer}/select"),
            &raw.clusters,
            &index_of,
            &names,
            ctx,
        );
        wave_selects_any.push(!selected.is_empty());
        for c in selected {
            wave_of_cluster[c].get_or_insert(w);
        }
    }

    // Releases: targets, merged settings, one body each.
    let implicit = raw.rollout.waves.len();
    // [wave][cluster] -> release indexes, in release order.
    let mut queues: Vec<Vec<Vec<u32>>> = vec![Vec::new(); implicit + 1];
    let mut bodies: Vec<Arc<UpdateReleaseBody>> = Vec::with_capacity(raw.releases.len());
    let mut rollback_flags: Vec<bool> = Vec::with_capacity(raw.releases.len());
    let mut actions: Vec<Action> = Vec::with_capacity(raw.releases.len());
    let mut relative: Vec<Option<RelativeRevision>> = Vec::with_capacity(raw.releases.len());
    let mut seen: HashMap<(usize, &str, &str), usize> = HashMap::new();
    for (r, release) in raw.releases.iter().enumerate() {
        let pointer = format!("/releases/{r}");
        let targets = release_targets(release, &pointer, raw, &index_of, &names, ctx);
        let (body, action, rollback_on_failure, relative_version) =
            release_body(raw, r, &pointer, ctx);
        bodies.push(Arc::new(body));
        relative.push(relative_version);
        actions.push(action);
        rollback_flags.push(rollback_on_failure);
        for c in targets {
            let key = (c, release.namespace.as_str(), release.name.as_str());
            if let Some(first) = seen.insert(key, r) {
                let first_line = ctx.positions.value(&format!("/releases/{first}")).line;
                ctx.at_value(
                    &format!("{pointer}/name"),
                    format!(
                        "release `{}/{}` on cluster `{}` is already targeted by releases[{first}] (line {first_line})",
                        release.namespace, release.name, names[c]
                    ),
                );
                continue;
            }
            let w = wave_of_cluster[c].unwrap_or(implicit);
            let per_cluster = &mut queues[w];
            if per_cluster.is_empty() {
                per_cluster.resize(clusters.len(), Vec::new());
            }
            per_cluster[c].push(r as u32);
        }
    }

    for (w, wave) in raw.rollout.waves.iter().enumerate() {
        if wave_selects_any[w] && queues[w].iter().all(Vec::is_empty) {
            let reason = if (0..clusters.len()).any(|c| wave_of_cluster[c] == Some(w)) {
                "no release targets the clusters it selects"
            } else {
                "every cluster it selects is taken by an earlier wave"
            };
            ctx.at_value(
                &format!("/rollout/waves/{w}"),
                format!("wave `{}` selects no operation: {reason}", wave.name),
            );
        }
    }

    if !ctx.problems.is_empty() {
        return None;
    }

    let mut waves = Vec::new();
    let mut index = 0;
    for (w, per_cluster) in queues.into_iter().enumerate() {
        if per_cluster.iter().all(Vec::is_empty) {
            continue;
        }
        let wave_index = waves.len();
        let longest = per_cluster.iter().map(Vec::len).max().unwrap_or(0);
        let mut operations = Vec::with_capacity(per_cluster.iter().map(Vec::len).sum());
        for round in 0..longest {
            for (c, releases) in per_cluster.iter().enumerate() {
                let Some(&r) = releases.get(round) else {
                    continue;
                };
                let r = r as usize;
                let release = &raw.releases[r];
                operations.push(Operation {
                    index,
                    wave: wave_index,
                    cluster: Arc::clone(&clusters[c]),
                    namespace: release.namespace.clone(),
                    release: release.name.clone(),
                    action: actions[r],
                    body: Arc::clone(&bodies[r]),
                    rollback_on_failure: rollback_flags[r],
                    relative_version: relative[r],
                    expected_revision: None,
                });
                index += 1;
            }
        }
        let wave = match raw.rollout.waves.get(w) {
            Some(declared) => Wave {
                name: declared.name.clone(),
                implicit: false,
                soak: declared
                    .soak
                    .as_deref()
                    .and_then(parse_duration)
                    .unwrap_or(Duration::ZERO),
                max_failures: declared.max_failures.as_ref().and_then(budget),
                operations,
            },
            None => Wave {
                name: IMPLICIT_WAVE.to_owned(),
                implicit: true,
                soak: Duration::ZERO,
                max_failures: None,
                operations,
            },
        };
        waves.push(wave);
    }
    Some(ExpandedPlan {
        name,
        hash,
        rollout,
        waves,
        redactor: crate::secret::Redactor::default(),
    })
}

fn resolve_clusters(raw: &RawPlan, ctx: &mut Context<'_>) -> Vec<Arc<ClusterTarget>> {
    let mut by_id: HashMap<String, &str> = HashMap::new();
    let mut out = Vec::with_capacity(raw.clusters.len());
    for (name, cluster) in &raw.clusters {
        let pointer = push_pointer("/clusters", name);
        let canonical_id = cluster.id.to_ascii_lowercase().replace('-', "");
        if let Some(first) = by_id.insert(canonical_id, name) {
            ctx.at_value(
                &format!("{pointer}/id"),
                format!(
                    "cluster id `{}` is also the id of cluster `{first}`",
                    cluster.id
                ),
            );
        }
        let (region, region_pointer) = match (&cluster.region, &raw.target.region) {
            (Some(r), _) => (Some(r.clone()), format!("{pointer}/region")),
            (None, Some(r)) => (Some(r.clone()), "/target/region".to_owned()),
            (None, None) => (None, pointer.clone()),
        };
        let endpoint = cluster
            .endpoint
            .as_ref()
            .or(raw.target.endpoint.as_ref())
            .map(|e| e.trim_end_matches('/').to_owned());
        let region = match region {
            Some(r) => r,
            None => {
                ctx.at_key(
                    &pointer,
                    format!("cluster `{name}` has no region: set `target.region` or the cluster's `region`"),
                );
                String::new()
            }
        };
        let endpoint = match endpoint.or_else(|| region::endpoint_for(&region)) {
            Some(e) => e,
            None => {
                if !region.is_empty() {
                    ctx.at_value(
                        &region_pointer,
                        format!(
                            "unknown region `{region}` for cluster `{name}`: set `endpoint` to use a region flotilla does not know{}",
                            suggestion_suffix(&region, region::REGIONS)
                        ),
                    );
                }
                String::new()
            }
        };
        out.push(Arc::new(ClusterTarget {
            name: name.clone(),
            id: cluster.id.clone(),
            labels: cluster.labels.clone(),
            region,
            endpoint,
            iam_endpoint: cluster
                .iam_endpoint
                .as_ref()
                .or(raw.target.iam_endpoint.as_ref())
                .map(|e| e.trim_end_matches('/').to_owned()),
            project_id: cluster
                .project_id
                .clone()
                .or_else(|| raw.target.project_id.clone()),
        }));
    }
    out
}

fn budget(raw: &RawBudget) -> Option<FailureBudget> {
    match raw {
        RawBudget::Count(n) => Some(FailureBudget::Count(*n)),
        RawBudget::Percent(text) => text
            .strip_suffix('%')
            .and_then(|p| p.parse::<f64>().ok())
            .map(FailureBudget::Percent),
    }
}

fn check_budget(
    raw: Option<&RawBudget>,
    pointer: &str,
    ctx: &mut Context<'_>,
) -> Option<FailureBudget> {
    let raw = raw?;
    let parsed = budget(raw);
    if let Some(FailureBudget::Percent(p)) = parsed
        && !(0.0..=100.0).contains(&p)
    {
        ctx.at_value(
            pointer,
            format!("max_failures percentage {p}% is out of range 0% to 100%"),
        );
    }
    parsed
}

fn resolve_rollout(raw: &RawPlan, ctx: &mut Context<'_>) -> Rollout {
    let defaults = Rollout::default();
    let r = &raw.rollout;
    let duration = |text: &Option<String>, fallback: Duration| {
        text.as_deref().and_then(parse_duration).unwrap_or(fallback)
    };
    let retry = RetryPolicy {
        attempts: r.retry.attempts.unwrap_or(defaults.retry.attempts),
        backoff: duration(&r.retry.backoff, defaults.retry.backoff),
        max_backoff: duration(&r.retry.max_backoff, defaults.retry.max_backoff),
    };
    if retry.max_backoff < retry.backoff {
        let at = if r.retry.max_backoff.is_some() {
            "/rollout/retry/max_backoff"
        } else {
            "/rollout/retry/backoff"
        };
        ctx.at_value(
            at,
            format!(
                "max_backoff ({}) is less than backoff ({})",
                super::resolved::duration_text::format(retry.max_backoff),
                super::resolved::duration_text::format(retry.backoff)
            ),
        );
    }
    let wait = WaitPolicy {
        enabled: r.wait.enabled.unwrap_or(defaults.wait.enabled),
        timeout: duration(&r.wait.timeout, defaults.wait.timeout),
        poll: duration(&r.wait.poll, defaults.wait.poll),
    };
    if wait.poll.is_zero() {
        ctx.at_value("/rollout/wait/poll", "wait.poll must be more than 0");
    }
    if wait.enabled && wait.timeout.is_zero() {
        ctx.at_value(
            "/rollout/wait/timeout",
            "wait.timeout must be more than 0 while waiting is enabled",
        );
    } else if wait.enabled && wait.poll > wait.timeout {
        ctx.at_value(
            if r.wait.poll.is_some() { "/rollout/wait/poll" } else { "/rollout/wait/timeout" },
            format!(
                "wait.poll ({}) is longer than wait.timeout ({}): the release would be polled at most once",
                super::resolved::duration_text::format(wait.poll),
                super::resolved::duration_text::format(wait.timeout)
            ),
        );
    }
    let request_timeout = duration(&r.request_timeout, defaults.request_timeout);
    if request_timeout.is_zero() {
        ctx.at_value(
            "/rollout/request_timeout",
            "request_timeout must be more than 0",
        );
    }
    let max_failures = check_budget(r.max_failures.as_ref(), "/rollout/max_failures", ctx)
        .unwrap_or(defaults.max_failures);
    for (w, wave) in r.waves.iter().enumerate() {
        check_budget(
            wave.max_failures.as_ref(),
            &format!("/rollout/waves/{w}/max_failures"),
            ctx,
        );
    }
    Rollout {
        concurrency: r.concurrency.unwrap_or(defaults.concurrency),
        per_cluster: r.per_cluster.unwrap_or(defaults.per_cluster),
        rate: match &r.rate {
            None => defaults.rate,
            Some(RawRate::PerSecond(n)) => Rate::PerSecond(*n),
            Some(RawRate::Word(_)) => Rate::Unlimited,
        },
        burst: r.burst.unwrap_or(defaults.burst),
        retry,
        request_timeout,
        preflight: r.preflight.unwrap_or(defaults.preflight),
        wait,
        max_failures,
    }
}

/// The clusters a selector matches, in declaration order; unknown names and empty matches are
/// reported.
fn select(
    selector: &RawSelector,
    pointer: &str,
    clusters: &indexmap::IndexMap<String, super::raw::RawCluster>,
    index_of: &HashMap<&str, usize>,
    names: &[&str],
    ctx: &mut Context<'_>,
) -> Vec<usize> {
    let mut listed: Option<Vec<bool>> = None;
    let mut unknown = false;
    if let Some(list) = &selector.clusters {
        let mut mask = vec![false; clusters.len()];
        for (i, name) in list.iter().enumerate() {
            match index_of.get(name.as_str()) {
                Some(&c) => mask[c] = true,
                None => {
                    unknown = true;
                    ctx.at_value(
                        &format!("{pointer}/clusters/{i}"),
                        format!(
                            "unknown cluster `{name}`{}",
                            suggestion_suffix(name, names.iter().copied())
                        ),
                    );
                }
            }
        }
        listed = Some(mask);
    }
    let selected: Vec<usize> = clusters
        .values()
        .enumerate()
        .filter(|(c, cluster)| {
            listed.as_ref().is_none_or(|m| m[*c])
                && selector
                    .labels
                    .iter()
                    .all(|(k, v)| cluster.labels.get(k) == Some(v))
        })
        .map(|(c, _)| c)
        .collect();
    if selected.is_empty() && !unknown {
        ctx.at_value(pointer, "this selector matches no cluster");
    }
    selected
}

fn release_targets(
    release: &super::raw::RawRelease,
    pointer: &str,
    raw: &RawPlan,
    index_of: &HashMap<&str, usize>,
    names: &[&str],
    ctx: &mut Context<'_>,
) -> Vec<usize> {
    let unknown = |name: &str, at: String, ctx: &mut Context<'_>| {
        ctx.at_value(
            &at,
            format!(
                "unknown cluster `{name}`{}",
                suggestion_suffix(name, names.iter().copied())
            ),
        );
    };
    if let Some(name) = &release.cluster {
        return match index_of.get(name.as_str()) {
            Some(&c) => vec![c],
            None => {
                unknown(name, format!("{pointer}/cluster"), ctx);
                Vec::new()
            }
        };
    }
    if let Some(list) = &release.clusters {
        let mut out = Vec::with_capacity(list.len());
        let mut listed = vec![false; raw.clusters.len()];
        for (i, name) in list.iter().enumerate() {
            match index_of.get(name.as_str()) {
                Some(&c) if listed[c] => ctx.at_value(
                    &format!("{pointer}/clusters/{i}"),
                    format!("cluster `{name}` is listed twice"),
                ),
                Some(&c) => {
                    listed[c] = true;
                    out.push(c);
                }
                None => unknown(name, format!("{pointer}/clusters/{i}"), ctx),
            }
        }
        return out;
    }
    match &release.selector {
        Some(selector) => select(
            selector,
            &format!("{pointer}/selector"),
            &raw.clusters,
            index_of,
            names,
            ctx,
        ),
        None => Vec::new(),
    }
}

/// `parameters.dry_run: true` in a plan would make apply wait for a change the service never
/// makes; `--dry-run` is the way to rehearse.
fn refuse_dry_run(parameters: Option<&Map<String, Value>>, pointer: &str, ctx: &mut Context<'_>) {
    if parameters.and_then(|p| p.get("dry_run")) == Some(&Value::Bool(true)) {
        ctx.at_value(
            &format!("{pointer}/parameters/dry_run"),
            "`dry_run: true` in a plan would wait for a change the service never makes: use `flotilla apply --dry-run`, which also skips the wait",
        );
    }
}

/// The merged body of release `r`, its action, its rollback_on_failure, and its rollback
/// target when the plan gives it relative to the current revision (then not in the body).
fn release_body(
    raw: &RawPlan,
    r: usize,
    pointer: &str,
    ctx: &mut Context<'_>,
) -> (UpdateReleaseBody, Action, bool, Option<RelativeRevision>) {
    let release = &raw.releases[r];
    let defaults = &raw.defaults;
    let action = release
        .action
        .or(defaults.action)
        .unwrap_or(Action::Upgrade);
    let chart_id = release
        .chart_id
        .clone()
        .or_else(|| defaults.chart_id.clone());

    let mut parameters = defaults.parameters.clone().unwrap_or_default();
    if let Some(own) = &release.parameters {
        for (k, v) in own {
            parameters.insert(k.clone(), v.clone());
        }
    }
    let had_parameters = defaults.parameters.is_some() || release.parameters.is_some();
    // `previous` and `-N` are resolved per cluster at run time; the API takes only a number.
    let relative_version = parameters
        .get("release_version")
        .and_then(RelativeRevision::parse);
    if relative_version.is_some() {
        parameters.remove("release_version");
    }
    let (parameters, parameters_read): (ReleaseParameters, bool) =
        match serde_json::from_value(Value::Object(parameters)) {
            Ok(p) => (p, true),
            Err(e) => {
                ctx.at_value(
                    &format!("{pointer}/parameters"),
                    format!("invalid parameters: {e}"),
                );
                (ReleaseParameters::default(), false)
            }
        };
    refuse_dry_run(release.parameters.as_ref(), pointer, ctx);

    let values = match (&defaults.values, &release.values) {
        (None, None) => None,
        (Some(d), None) => Some(d.clone()),
        (None, Some(own)) => Some(own.clone()),
        (Some(d), Some(own)) => {
            let mut merged = d.clone();
            deep_merge(&mut merged, own);
            Some(merged)
        }
    };

    let action_pointer = if release.action.is_some() {
        format!("{pointer}/action")
    } else {
        format!("{pointer}/name")
    };
    match action {
        // A `release_version` that did not parse was reported as such already.
        Action::Upgrade if relative_version.is_some() => ctx.at_value(
            &release_version_pointer(release, pointer),
            format!(
                "release `{}` upgrades, but `release_version: {}` only means something to `action: rollback`",
                release.name,
                relative_version.map(|v| v.to_string()).unwrap_or_default()
            ),
        ),
        Action::Rollback
            if parameters_read
                && parameters.release_version.is_none()
                && relative_version.is_none() =>
        {
            ctx.at_value(
            &action_pointer,
            format!(
                "release `{}` rolls back but has no `parameters.release_version` (the revision to roll back to: a number, `previous` or `-N`)",
                release.name
            ),
            );
        }
        Action::Upgrade if chart_id.is_none() => ctx.at_value(
            &action_pointer,
            format!(
                "release `{}` upgrades but has no `chart_id`: set it on the release or in `defaults`",
                release.name
            ),
        ),
        _ => {}
    }

    let body = UpdateReleaseBody {
        chart_id,
        action,
        parameters: had_parameters.then_some(parameters),
        values,
    };
    let rollback_on_failure = release
        .rollback_on_failure
        .or(defaults.rollback_on_failure)
        .unwrap_or(false);
    (body, action, rollback_on_failure, relative_version)
}

/// Where a release's `release_version` is written: its own parameters, or the defaults'.
fn release_version_pointer(release: &super::raw::RawRelease, pointer: &str) -> String {
    if release
        .parameters
        .as_ref()
        .is_some_and(|p| p.contains_key("release_version"))
    {
        format!("{pointer}/parameters/release_version")
    } else {
        "/defaults/parameters/release_version".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), None);
    }

    #[test]
    fn values_deep_merge_with_the_release_winning() {
        let mut base = json!({"image": {"repo": "r", "tag": "v1"}, "replicas": 2, "keep": true});
        let over = json!({"image": {"tag": "v2"}, "replicas": 3, "new": [1]});
        deep_merge(base.as_object_mut().unwrap(), over.as_object().unwrap());
        assert_eq!(
            base,
            json!({"image": {"repo": "r", "tag": "v2"}, "replicas": 3, "keep": true, "new": [1]})
        );
    }
}
