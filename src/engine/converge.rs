//! Convergence: whether an operation's PUT would change the release at all, decided from the
//! preflight GET (and the chart and history lookups), so that a re-run sends only what differs.
//!
//! Pure functions: the caller does the lookups and hands their results in.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cce::diff::{ChangeKind, KeyChange, values_diff};
use crate::cce::model::{Action, Chart, Release, ReleaseStatus, UpdateReleaseBody};
use crate::plan::resolved::RelativeRevision;
use crate::secret::MASK;

/// The label `plan --diff` and the report give an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Convergence {
    /// The PUT would change the release.
    Change,
    /// The release is already as planned: no PUT needed.
    Unchanged,
    /// Only keys the API masks could differ: sent only with `--force`.
    Unknown,
}

impl Convergence {
    pub fn as_str(self) -> &'static str {
        match self {
            Convergence::Change => "change",
            Convergence::Unchanged => "unchanged",
            Convergence::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Convergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What comparing the plan with the release concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Something differs (or cannot be compared at all): send the PUT. `masked_keys` are the
    /// keys that could not be compared besides.
    Change {
        reasons: Vec<String>,
        masked_keys: Vec<String>,
    },
    /// Chart, values and status are as planned.
    Unchanged,
    /// Everything comparable is as planned; these keys are masked (`******`) by the API.
    Unknown { masked_keys: Vec<String> },
}

impl Decision {
    pub fn label(&self) -> Convergence {
        match self {
            Decision::Change { .. } => Convergence::Change,
            Decision::Unchanged => Convergence::Unchanged,
            Decision::Unknown { .. } => Convergence::Unknown,
        }
    }

    /// Whether the PUT is sent: a change always, an unknown only when forced.
    pub fn sends(&self, force: bool) -> bool {
        match self {
            Decision::Change { .. } => true,
            Decision::Unchanged => force,
            Decision::Unknown { .. } => force,
        }
    }

    /// One line saying why, for people (no values, only key names).
    pub fn note(&self) -> String {
        match self {
            Decision::Change {
                reasons,
                masked_keys,
            } => {
                let mut note = format!("change: {}", reasons.join("; "));
                if !masked_keys.is_empty() {
                    note.push_str(&format!(
                        "; secret keys {} masked by the API, not compared",
                        masked_keys.join(", ")
                    ));
                }
                note
            }
            Decision::Unchanged => "unchanged: chart and values already as planned".to_owned(),
            Decision::Unknown { masked_keys } => format!(
                "unknown: secret keys {} masked by the API, everything else as planned; use --force to send",
                masked_keys.join(", ")
            ),
        }
    }
}

/// The chart an upgrade names, as far as it could be found out.
#[derive(Clone, Copy, Debug)]
pub enum DesiredChart<'a> {
    /// The body names no chart: the release keeps its own.
    Kept,
    /// ShowAutopilotChart answered.
    Resolved(&'a Chart),
    /// The lookup failed; why.
    Unresolved { chart_id: &'a str, error: &'a str },
}

/// The revision a rollback goes back to, as far as it could be found out.
#[derive(Clone, Copy, Debug)]
pub enum RollbackTarget<'a> {
    /// `parameters.release_version` is not set.
    NotGiven,
    /// The revision, from ShowAutopilotReleaseHistory (or the current one itself).
    Found(&'a Release),
    /// The history has no such revision.
    Missing(i64),
    /// The history could not be read; why.
    Unreadable(&'a str),
}

/// The decision, and the `values` keys the PUT would add, change or (with `reset_values`, or
/// for a rollback) remove; secret values are redacted in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    pub decision: Decision,
    pub changes: Vec<KeyChange>,
}

/// An upgrade is unchanged when the chart name and version match, every desired value key is
/// equal (nested objects key by key; keys the plan does not set are kept by an upgrade, so they
/// do not count), the status is `DEPLOYED`, and `reset_values` is not set.
pub fn assess_upgrade(
    body: &UpdateReleaseBody,
    chart: DesiredChart<'_>,
    current: &Release,
) -> Assessment {
    let mut reasons = Vec::new();
    match chart {
        DesiredChart::Kept => {}
        DesiredChart::Resolved(chart) => {
            match compare_chart(current, given(&chart.name), given(&chart.version)) {
                ChartMatch::Same => {}
                ChartMatch::Differs => reasons.push(format!(
                    "chart {} {} -> {} {}",
                    shown(current.chart_name.as_deref()),
                    shown(current.chart_version.as_deref()),
                    shown(given(&chart.name)),
                    shown(given(&chart.version))
                )),
                ChartMatch::Unknown(why) => reasons.push(format!("chart not compared: {why}")),
            }
        }
        DesiredChart::Unresolved { chart_id, error } => {
            reasons.push(format!("chart {chart_id} could not be resolved: {error}"));
        }
    }
    let reset = body
        .parameters
        .as_ref()
        .is_some_and(|p| p.reset_values == Some(true));
    let empty = Map::new();
    let desired = body.values.as_ref().unwrap_or(&empty);
    let changes: Vec<KeyChange> = if current.values_given() {
        values_diff(&current.values, desired)
            .into_iter()
            // Without reset_values an upgrade keeps the keys it does not name.
            .filter(|c| reset || c.kind != ChangeKind::Removed)
            .collect()
    } else {
        if !desired.is_empty() || reset {
            reasons.push(VALUES_NOT_GIVEN.to_owned());
        }
        Vec::new()
    };
    push_values_reason(&changes, &mut reasons);
    push_status_reason(current, &mut reasons);
    if reset {
        reasons.push("parameters.reset_values is set".to_owned());
    }
    let masked_keys = masked(&changes);
    Assessment {
        decision: decide(reasons, masked_keys),
        changes,
    }
}

/// A rollback is unchanged when the release's current chart and values already equal those of
/// the target revision, and it is `DEPLOYED`. (A release that settled `FAILED` with the target's
/// content is rolled back again: that is what the operator asked for.)
pub fn assess_rollback(current: &Release, target: RollbackTarget<'_>) -> Assessment {
    let target = match target {
        RollbackTarget::Found(target) => target,
        RollbackTarget::NotGiven => {
            return change("no parameters.release_version to compare with".to_owned());
        }
        RollbackTarget::Missing(version) => {
            return change(format!(
                "revision {version} is not in the release's history"
            ));
        }
        RollbackTarget::Unreadable(error) => {
            return change(format!("the release's history could not be read: {error}"));
        }
    };
    let mut reasons = Vec::new();
    match compare_chart(
        current,
        target.chart_name.as_deref(),
        target.chart_version.as_deref(),
    ) {
        ChartMatch::Same => {}
        ChartMatch::Differs => reasons.push(format!(
            "chart {} {} -> {} {}",
            shown(current.chart_name.as_deref()),
            shown(current.chart_version.as_deref()),
            shown(target.chart_name.as_deref()),
            shown(target.chart_version.as_deref())
        )),
        ChartMatch::Unknown(why) => reasons.push(format!("chart not compared: {why}")),
    }
    let changes = if target.version.is_some() && target.version == current.version {
        // The same revision: the same content, masked or not.
        Vec::new()
    } else if current.values_given() && target.values_given() {
        whole_values_diff(&current.values, &target.values)
    } else {
        reasons.push(VALUES_NOT_GIVEN.to_owned());
        Vec::new()
    };
    push_values_reason(&changes, &mut reasons);
    push_status_reason(current, &mut reasons);
    let masked_keys = masked(&changes);
    Assessment {
        decision: decide(reasons, masked_keys),
        changes,
    }
}

/// Dispatches on the body's action.
pub fn assess(
    body: &UpdateReleaseBody,
    chart: DesiredChart<'_>,
    target: RollbackTarget<'_>,
    current: &Release,
) -> Assessment {
    match body.action {
        Action::Upgrade => assess_upgrade(body, chart, current),
        Action::Rollback => assess_rollback(current, target),
    }
}

/// Whether a change that may or may not have been applied shows in the release, judged without
/// the revision from before it (preflight off, or a resumed run that never learnt it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Landed {
    /// Chart and values are as the change sets them: it landed, or there was nothing to change.
    Yes,
    /// Something comparable differs, so the change did not land: sending it is safe.
    No,
    /// Only masked keys differ, or the chart or rollback target is unknown.
    CannotTell,
}

/// The status is left out: a change that landed may have failed to deploy, and sending it
/// again would apply it twice.
pub fn change_landed(
    body: &UpdateReleaseBody,
    chart: DesiredChart<'_>,
    target: RollbackTarget<'_>,
    current: &Release,
) -> Landed {
    let (chart_differs, changes) = match body.action {
        Action::Upgrade => {
            let differs = match chart {
                DesiredChart::Kept => false,
                DesiredChart::Resolved(chart) => {
                    match compare_chart(current, given(&chart.name), given(&chart.version)) {
                        ChartMatch::Same => false,
                        ChartMatch::Differs => true,
                        ChartMatch::Unknown(_) => return Landed::CannotTell,
                    }
                }
                DesiredChart::Unresolved { .. } => return Landed::CannotTell,
            };
            let desires_values = body.values.as_ref().is_some_and(|v| !v.is_empty())
                || body
                    .parameters
                    .as_ref()
                    .is_some_and(|p| p.reset_values == Some(true));
            if desires_values && !current.values_given() {
                return Landed::CannotTell;
            }
            (differs, assess_upgrade(body, chart, current).changes)
        }
        Action::Rollback => {
            let RollbackTarget::Found(revision) = target else {
                return Landed::CannotTell;
            };
            let differs = match compare_chart(
                current,
                revision.chart_name.as_deref(),
                revision.chart_version.as_deref(),
            ) {
                ChartMatch::Same => false,
                ChartMatch::Differs => true,
                ChartMatch::Unknown(_) => return Landed::CannotTell,
            };
            let same_revision = revision.version.is_some() && revision.version == current.version;
            let comparable = current.values_given() && revision.values_given();
            if !(same_revision || comparable) {
                return Landed::CannotTell;
            }
            (differs, assess_rollback(current, target).changes)
        }
    };
    if chart_differs || changes.iter().any(|c| c.kind != ChangeKind::Unknown) {
        Landed::No
    } else if changes.is_empty() {
        Landed::Yes
    } else {
        Landed::CannotTell
    }
}

/// How the chart a release runs compares with another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChartMatch {
    Same,
    /// A name or a version given on both sides differs.
    Differs,
    /// Nothing given differs, but something to compare is not given: why.
    Unknown(&'static str),
}

/// Whether `current` runs the chart `name` at `version`. A difference in what both sides give
/// is a difference; otherwise a side that gives no name or version cannot be compared.
fn compare_chart(current: &Release, name: Option<&str>, version: Option<&str>) -> ChartMatch {
    let differs = |a: Option<&str>, b: Option<&str>| matches!((a, b), (Some(a), Some(b)) if a != b);
    if differs(current.chart_name.as_deref(), name)
        || differs(current.chart_version.as_deref(), version)
    {
        return ChartMatch::Differs;
    }
    if current.chart_name.is_none() || current.chart_version.is_none() {
        return ChartMatch::Unknown("the release's answer gave no chart_name or chart_version");
    }
    if name.is_none() || version.is_none() {
        return ChartMatch::Unknown("the chart's answer gave no name or version");
    }
    ChartMatch::Same
}

/// A chart answer's name or version: empty is not given.
fn given(text: &str) -> Option<&str> {
    (!text.trim().is_empty()).then_some(text)
}

/// The revision a rollback to `version` goes to, as the history read shows it. A revision the
/// history lacks is `Missing` only when every entry gives its revision: an entry without one
/// could be it.
pub fn rollback_target(history: &[Release], version: i64) -> RollbackTarget<'_> {
    if let Some(revision) = history.iter().find(|r| r.version == Some(version)) {
        RollbackTarget::Found(revision)
    } else if history.iter().any(|r| r.version.is_none()) {
        RollbackTarget::Unreadable("an entry of the history gave no revision (version)")
    } else {
        RollbackTarget::Missing(version)
    }
}

/// Why values could not be compared.
const VALUES_NOT_GIVEN: &str = "values not compared: an answer gave no values object";

/// A status other than `DEPLOYED`, or none given, is a reason to send the change.
fn push_status_reason(current: &Release, reasons: &mut Vec<String>) {
    match &current.status {
        Some(ReleaseStatus::Deployed) => {}
        Some(status) => reasons.push(format!(
            "status {} (not DEPLOYED)",
            shown(Some(status.as_str()))
        )),
        None => reasons.push("status not given (not known to be DEPLOYED)".to_owned()),
    }
}

/// The revision a rollback body names, if any.
pub fn rollback_version(body: &UpdateReleaseBody) -> Option<i64> {
    body.parameters.as_ref().and_then(|p| p.release_version)
}

/// The revision `relative` (`previous`, `-N`) names on a release now at revision `current`
/// whose history holds `history` (in any order; the service may have pruned old ones): the
/// N-th revision before `current` that the history still has. A revision counts once however
/// often the history lists it.
pub fn resolve_relative(
    relative: RelativeRevision,
    current: i64,
    history: &[i64],
) -> Result<i64, String> {
    let mut earlier: Vec<i64> = history.iter().copied().filter(|&v| v < current).collect();
    earlier.sort_unstable_by(|a, b| b.cmp(a));
    earlier.dedup();
    let back = relative.back() as usize;
    match back.checked_sub(1).and_then(|i| earlier.get(i)) {
        Some(&target) => Ok(target),
        None if earlier.is_empty() => Err(format!(
            "release_version: {relative}: no revision before {current} in the release's history"
        )),
        None => Err(format!(
            "release_version: {relative}: the release's history has only {} revision(s) before {current}",
            earlier.len()
        )),
    }
}

fn change(reason: String) -> Assessment {
    Assessment {
        decision: Decision::Change {
            reasons: vec![reason],
            masked_keys: Vec::new(),
        },
        changes: Vec::new(),
    }
}

fn decide(reasons: Vec<String>, masked_keys: Vec<String>) -> Decision {
    if !reasons.is_empty() {
        Decision::Change {
            reasons,
            masked_keys,
        }
    } else if !masked_keys.is_empty() {
        Decision::Unknown { masked_keys }
    } else {
        Decision::Unchanged
    }
}

fn masked(changes: &[KeyChange]) -> Vec<String> {
    changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Unknown)
        .map(|c| c.key.clone())
        .collect()
}

/// "values: imageTag changed, replicaCount added": key names only, never values.
fn push_values_reason(changes: &[KeyChange], reasons: &mut Vec<String>) {
    let differing: Vec<String> = changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Unknown)
        .map(|c| {
            let kind = match c.kind {
                ChangeKind::Added => "added",
                ChangeKind::Changed => "changed",
                ChangeKind::Removed => "removed",
                ChangeKind::Unknown => "unknown",
            };
            format!("{} {kind}", c.key)
        })
        .collect();
    if !differing.is_empty() {
        reasons.push(format!("values: {}", differing.join(", ")));
    }
}

fn shown(s: Option<&str>) -> &str {
    match s {
        Some(s) if !s.is_empty() => s,
        _ => "(none)",
    }
}

/// Every difference between two whole value sets (a rollback replaces them all). A key masked
/// on either side cannot be compared: it is `Unknown`, even when both sides read `******`.
fn whole_values_diff(current: &Value, target: &Value) -> Vec<KeyChange> {
    let empty = Map::new();
    let target_map = target.as_object().unwrap_or(&empty);
    let current_map = current.as_object().unwrap_or(&empty);
    let mut changes: Vec<KeyChange> = values_diff(current, target_map)
        .into_iter()
        .map(|mut c| {
            // values_diff masks what it shows under secret keys; only a value the API itself
            // masked is unknown, so look the raw values up again.
            if c.kind == ChangeKind::Changed
                && (raw_at(current_map, &c.key).is_some_and(is_mask)
                    || raw_at(target_map, &c.key).is_some_and(is_mask))
            {
                c.kind = ChangeKind::Unknown;
            }
            c
        })
        .collect();
    both_masked("", current_map, target_map, &mut changes);
    changes
}

fn is_mask(v: &Value) -> bool {
    v.as_str() == Some(MASK)
}

/// The raw value at a dotted path (as [`values_diff`] names keys).
fn raw_at<'v>(map: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    let mut current = map;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let value = current.get(part)?;
        if parts.peek().is_none() {
            return Some(value);
        }
        current = value.as_object()?;
    }
    None
}

/// Keys masked on both sides: equal as text, unknowable as values.
fn both_masked(
    prefix: &str,
    current: &Map<String, Value>,
    target: &Map<String, Value>,
    changes: &mut Vec<KeyChange>,
) {
    for (key, new) in target {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (current.get(key), new) {
            (Some(old), new) if is_mask(old) && is_mask(new) => changes.push(KeyChange {
                key: path,
                kind: ChangeKind::Unknown,
                old: Some(Value::String(MASK.to_owned())),
                new: Some(Value::String(MASK.to_owned())),
            }),
            (Some(Value::Object(old)), Value::Object(new)) => {
                both_masked(&path, old, new, changes);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
