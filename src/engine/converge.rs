//! Convergence: whether an operation's PUT would change the release at all, decided from the
//! preflight GET (and the chart and history lookups), so that a re-run sends only what differs.
//!
//! Pure functions: the caller does the lookups and hands their results in.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cce::diff::{ChangeKind, KeyChange, values_diff};
use crate::cce::model::{Action, Chart, Release, ReleaseStatus, UpdateReleaseBody};
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
            if runs_other_chart(current, &chart.name, &chart.version) {
                reasons.push(format!(
                    "chart {} {} -> {} {}",
                    shown_name(&current.chart_name),
                    shown_name(&current.chart_version),
                    chart.name,
                    chart.version
                ));
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
    let changes: Vec<KeyChange> = values_diff(&current.values, desired)
        .into_iter()
        // Without reset_values an upgrade keeps the keys it does not name.
        .filter(|c| reset || c.kind != ChangeKind::Removed)
        .collect();
    push_values_reason(&changes, &mut reasons);
    let status = current.status();
    if status != ReleaseStatus::Deployed {
        reasons.push(format!(
            "status {} (not DEPLOYED)",
            shown_name(status.as_str())
        ));
    }
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
    if runs_other_chart(current, &target.chart_name, &target.chart_version) {
        reasons.push(format!(
            "chart {} {} -> {} {}",
            shown_name(&current.chart_name),
            shown_name(&current.chart_version),
            shown_name(&target.chart_name),
            shown_name(&target.chart_version)
        ));
    }
    let changes = if target.version == current.version {
        // The same revision: the same content, masked or not.
        Vec::new()
    } else {
        whole_values_diff(&current.values, &target.values)
    };
    push_values_reason(&changes, &mut reasons);
    let status = current.status();
    if status != ReleaseStatus::Deployed {
        reasons.push(format!(
            "status {} (not DEPLOYED)",
            shown_name(status.as_str())
        ));
    }
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
                    runs_other_chart(current, &chart.name, &chart.version)
                }
                DesiredChart::Unresolved { .. } => return Landed::CannotTell,
            };
            (differs, assess_upgrade(body, chart, current).changes)
        }
        Action::Rollback => {
            let RollbackTarget::Found(revision) = target else {
                return Landed::CannotTell;
            };
            let differs = runs_other_chart(current, &revision.chart_name, &revision.chart_version);
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

/// Whether `current` runs a chart other than `name` at `version`.
fn runs_other_chart(current: &Release, name: &str, version: &str) -> bool {
    name != current.chart_name || version != current.chart_version
}

/// The revision a rollback body names, if any.
pub fn rollback_version(body: &UpdateReleaseBody) -> Option<i64> {
    body.parameters.as_ref().and_then(|p| p.release_version)
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

fn shown_name(s: &str) -> &str {
    if s.is_empty() { "(none)" } else { s }
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
mod tests {
    use super::*;
    use crate::cce::model::ReleaseParameters;
    use serde_json::json;

    fn chart(name: &str, version: &str) -> Chart {
        Chart {
            id: "c1".into(),
            name: name.into(),
            version: version.into(),
            ..Chart::default()
        }
    }

    fn release(version: i64, chart: (&str, &str), status: &str, values: Value) -> Release {
        Release {
            name: "web".into(),
            chart_name: chart.0.into(),
            chart_version: chart.1.into(),
            status: Some(ReleaseStatus::from(status)),
            values,
            version,
            ..Release::default()
        }
    }

    fn upgrade(values: Value, reset_values: Option<bool>) -> UpdateReleaseBody {
        UpdateReleaseBody {
            chart_id: Some("c1".into()),
            action: Action::Upgrade,
            parameters: Some(ReleaseParameters {
                reset_values,
                ..ReleaseParameters::default()
            }),
            values: values.as_object().cloned(),
        }
    }

    fn reasons(d: &Decision) -> Vec<String> {
        match d {
            Decision::Change { reasons, .. } => reasons.clone(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn whether_a_change_landed_ignores_status_and_never_guesses() {
        let web = chart("web", "1.2.0");
        let body = upgrade(json!({"imageTag": "v2", "password": "s3cret"}), None);
        let now = |status: &str, tag: &str, password: &str| {
            release(
                4,
                ("web", "1.2.0"),
                status,
                json!({"imageTag": tag, "password": password, "other": 1}),
            )
        };
        let landed = |current: &Release, chart: DesiredChart<'_>| {
            change_landed(&body, chart, RollbackTarget::NotGiven, current)
        };
        let resolved = DesiredChart::Resolved(&web);
        assert_eq!(
            landed(&now("DEPLOYED", "v2", "s3cret"), resolved),
            Landed::Yes
        );
        assert_eq!(
            landed(&now("FAILED", "v2", "s3cret"), resolved),
            Landed::Yes,
            "a change that landed and failed is not sent again"
        );
        assert_eq!(
            landed(&now("DEPLOYED", "v1", "s3cret"), resolved),
            Landed::No
        );
        assert_eq!(
            landed(&now("DEPLOYED", "v2", MASK), resolved),
            Landed::CannotTell,
            "only a masked key could differ"
        );
        assert_eq!(landed(&now("DEPLOYED", "v1", MASK), resolved), Landed::No);
        let older = chart("web", "1.1.0");
        assert_eq!(
            landed(
                &now("DEPLOYED", "v2", "s3cret"),
                DesiredChart::Resolved(&older)
            ),
            Landed::No
        );
        let unresolved = DesiredChart::Unresolved {
            chart_id: "c1",
            error: "404",
        };
        assert_eq!(
            landed(&now("DEPLOYED", "v2", "s3cret"), unresolved),
            Landed::CannotTell
        );
    }

    #[test]
    fn a_rollback_landed_only_when_the_target_revision_is_known_and_matches() {
        let body = UpdateReleaseBody {
            chart_id: None,
            action: Action::Rollback,
            parameters: Some(ReleaseParameters {
                release_version: Some(2),
                ..ReleaseParameters::default()
            }),
            values: None,
        };
        let target = release(2, ("web", "1.1.0"), "SUPERSEDED", json!({"imageTag": "v1"}));
        let rolled_back = release(4, ("web", "1.1.0"), "DEPLOYED", json!({"imageTag": "v1"}));
        let not_yet = release(3, ("web", "1.2.0"), "DEPLOYED", json!({"imageTag": "v2"}));
        let found = RollbackTarget::Found(&target);
        let none = DesiredChart::Kept;
        assert_eq!(change_landed(&body, none, found, &rolled_back), Landed::Yes);
        assert_eq!(change_landed(&body, none, found, &not_yet), Landed::No);
        for unknown in [
            RollbackTarget::NotGiven,
            RollbackTarget::Missing(2),
            RollbackTarget::Unreadable("500"),
        ] {
            assert_eq!(
                change_landed(&body, none, unknown, &rolled_back),
                Landed::CannotTell
            );
        }
    }

    #[test]
    fn upgrade_decisions_table() {
        let web = chart("web", "1.2.0");
        // (case, desired values, reset_values, chart, current release, label, reason fragment)
        type Case<'c> = (
            &'c str,
            Value,
            Option<bool>,
            DesiredChart<'c>,
            Release,
            Convergence,
            &'c str,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "identical",
                json!({"imageTag": "v2", "image": {"repo": "r"}}),
                None,
                DesiredChart::Resolved(&web),
                release(
                    3,
                    ("web", "1.2.0"),
                    "DEPLOYED",
                    json!({"imageTag": "v2", "image": {"repo": "r", "pull": "Always"}, "other": 1}),
                ),
                Convergence::Unchanged,
                "",
            ),
            (
                "no chart named: the release keeps its own",
                json!({"imageTag": "v2"}),
                None,
                DesiredChart::Kept,
                release(
                    3,
                    ("anything", "9.9.9"),
                    "DEPLOYED",
                    json!({"imageTag": "v2"}),
                ),
                Convergence::Unchanged,
                "",
            ),
            (
                "chart version differs",
                json!({"imageTag": "v2"}),
                None,
                DesiredChart::Resolved(&web),
                release(3, ("web", "1.1.0"), "DEPLOYED", json!({"imageTag": "v2"})),
                Convergence::Change,
                "chart web 1.1.0 -> web 1.2.0",
            ),
            (
                "chart name differs",
                json!({}),
                None,
                DesiredChart::Resolved(&web),
                release(3, ("webx", "1.2.0"), "DEPLOYED", json!({})),
                Convergence::Change,
                "chart webx 1.2.0 -> web 1.2.0",
            ),
            (
                "chart lookup failed",
                json!({}),
                None,
                DesiredChart::Unresolved {
                    chart_id: "c1",
                    error: "HTTP 404",
                },
                release(3, ("web", "1.2.0"), "DEPLOYED", json!({})),
                Convergence::Change,
                "chart c1 could not be resolved: HTTP 404",
            ),
            (
                "value changed",
                json!({"imageTag": "v3"}),
                None,
                DesiredChart::Resolved(&web),
                release(3, ("web", "1.2.0"), "DEPLOYED", json!({"imageTag": "v2"})),
                Convergence::Change,
                "values: imageTag changed",
            ),
            (
                "nested value changed, deep",
                json!({"resources": {"requests": {"cpu": "1"}}}),
                None,
                DesiredChart::Resolved(&web),
                release(
                    3,
                    ("web", "1.2.0"),
                    "DEPLOYED",
                    json!({"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}),
                ),
                Convergence::Change,
                "values: resources.requests.cpu changed",
            ),
            (
                "value added",
                json!({"replicas": 2}),
                None,
                DesiredChart::Resolved(&web),
                release(3, ("web", "1.2.0"), "DEPLOYED", Value::Null),
                Convergence::Change,
                "values: replicas added",
            ),
            (
                "status failed",
                json!({"imageTag": "v2"}),
                None,
                DesiredChart::Resolved(&web),
                release(3, ("web", "1.2.0"), "FAILED", json!({"imageTag": "v2"})),
                Convergence::Change,
                "status FAILED (not DEPLOYED)",
            ),
            (
                "reset_values set",
                json!({"imageTag": "v2"}),
                Some(true),
                DesiredChart::Resolved(&web),
                release(
                    3,
                    ("web", "1.2.0"),
                    "DEPLOYED",
                    json!({"imageTag": "v2", "extra": 1}),
                ),
                Convergence::Change,
                "values: extra removed",
            ),
            (
                "reset_values false counts as not set",
                json!({"imageTag": "v2"}),
                Some(false),
                DesiredChart::Resolved(&web),
                release(
                    3,
                    ("web", "1.2.0"),
                    "DEPLOYED",
                    json!({"imageTag": "v2", "extra": 1}),
                ),
                Convergence::Unchanged,
                "",
            ),
            (
                "masked secret only: unknown",
                json!({"imageTag": "v2", "dbPassword": "hunter2"}),
                None,
                DesiredChart::Resolved(&web),
                release(
                    3,
                    ("web", "1.2.0"),
                    "DEPLOYED",
                    json!({"imageTag": "v2", "dbPassword": MASK}),
                ),
                Convergence::Unknown,
                "",
            ),
            (
                "masked secret and a real difference: change",
                json!({"imageTag": "v3", "dbPassword": "hunter2"}),
                None,
                DesiredChart::Resolved(&web),
                release(
                    3,
                    ("web", "1.2.0"),
                    "DEPLOYED",
                    json!({"imageTag": "v2", "dbPassword": MASK}),
                ),
                Convergence::Change,
                "values: imageTag changed",
            ),
        ];
        for (case, values, reset, chart, current, label, fragment) in cases {
            let body = upgrade(values, reset);
            let a = assess(&body, chart, RollbackTarget::NotGiven, &current);
            assert_eq!(a.decision.label(), label, "{case}: {:?}", a.decision);
            if !fragment.is_empty() {
                assert!(
                    reasons(&a.decision).iter().any(|r| r == fragment),
                    "{case}: {:?}",
                    a.decision
                );
            }
        }
    }

    #[test]
    fn masked_keys_are_named_and_sent_only_when_forced() {
        let web = chart("web", "1.2.0");
        let body = upgrade(
            json!({"db": {"password": "pw-s3cret"}, "apiKey": "key-s3cret"}),
            None,
        );
        let current = release(
            3,
            ("web", "1.2.0"),
            "DEPLOYED",
            json!({"db": {"password": MASK}, "apiKey": MASK}),
        );
        let a = assess_upgrade(&body, DesiredChart::Resolved(&web), &current);
        assert_eq!(
            a.decision,
            Decision::Unknown {
                masked_keys: vec!["db.password".into(), "apiKey".into()]
            }
        );
        assert!(!a.decision.sends(false));
        assert!(a.decision.sends(true));
        let note = a.decision.note();
        assert!(
            note.contains("db.password, apiKey") && note.contains("--force"),
            "{note}"
        );
        assert!(!note.contains("s3cret"), "{note}");
        assert!(!format!("{:?}", a.changes).contains("s3cret"));
    }

    #[test]
    fn a_change_with_masked_keys_says_so() {
        let web = chart("web", "1.2.0");
        let body = upgrade(json!({"imageTag": "v3", "apiKey": "k"}), None);
        let current = release(
            3,
            ("web", "1.2.0"),
            "DEPLOYED",
            json!({"imageTag": "v2", "apiKey": MASK}),
        );
        let a = assess_upgrade(&body, DesiredChart::Resolved(&web), &current);
        assert!(a.decision.sends(false));
        assert_eq!(
            a.decision.note(),
            "change: values: imageTag changed; secret keys apiKey masked by the API, not compared"
        );
    }

    #[test]
    fn upgrade_keeps_keys_the_plan_does_not_name_unless_reset() {
        let body = upgrade(json!({"a": 1}), None);
        let current = release(1, ("w", "1"), "DEPLOYED", json!({"a": 1, "b": 2}));
        let a = assess_upgrade(&body, DesiredChart::Kept, &current);
        assert!(a.changes.is_empty());
        let body = upgrade(json!({"a": 1}), Some(true));
        let a = assess_upgrade(&body, DesiredChart::Kept, &current);
        assert_eq!(a.changes.len(), 1);
        assert_eq!(a.changes[0].kind, ChangeKind::Removed);
    }

    #[test]
    fn rollback_decisions_table() {
        let target = release(
            2,
            ("web", "1.1.0"),
            "DEPLOYED",
            json!({"imageTag": "v1", "a": {"b": 1}}),
        );
        let masked_target = release(
            2,
            ("web", "1.1.0"),
            "DEPLOYED",
            json!({"imageTag": "v1", "token": MASK}),
        );
        let cases: Vec<(&str, Release, RollbackTarget<'_>, Convergence, &str)> = vec![
            (
                "already at the target's content",
                release(
                    4,
                    ("web", "1.1.0"),
                    "DEPLOYED",
                    json!({"imageTag": "v1", "a": {"b": 1}}),
                ),
                RollbackTarget::Found(&target),
                Convergence::Unchanged,
                "",
            ),
            (
                "values differ",
                release(
                    3,
                    ("web", "1.1.0"),
                    "DEPLOYED",
                    json!({"imageTag": "v2", "a": {"b": 1}}),
                ),
                RollbackTarget::Found(&target),
                Convergence::Change,
                "values: imageTag changed",
            ),
            (
                "a key the target does not have is removed",
                release(
                    3,
                    ("web", "1.1.0"),
                    "DEPLOYED",
                    json!({"imageTag": "v1", "a": {"b": 1}, "c": 0}),
                ),
                RollbackTarget::Found(&target),
                Convergence::Change,
                "values: c removed",
            ),
            (
                "chart differs",
                release(
                    3,
                    ("web", "1.2.0"),
                    "DEPLOYED",
                    json!({"imageTag": "v1", "a": {"b": 1}}),
                ),
                RollbackTarget::Found(&target),
                Convergence::Change,
                "chart web 1.2.0 -> web 1.1.0",
            ),
            (
                "failed with the target's content",
                release(
                    4,
                    ("web", "1.1.0"),
                    "FAILED",
                    json!({"imageTag": "v1", "a": {"b": 1}}),
                ),
                RollbackTarget::Found(&target),
                Convergence::Change,
                "status FAILED (not DEPLOYED)",
            ),
            (
                "masked on both sides: unknown",
                release(
                    4,
                    ("web", "1.1.0"),
                    "DEPLOYED",
                    json!({"imageTag": "v1", "token": MASK}),
                ),
                RollbackTarget::Found(&masked_target),
                Convergence::Unknown,
                "",
            ),
            (
                "the target is the current revision: masks do not matter",
                release(
                    2,
                    ("web", "1.1.0"),
                    "DEPLOYED",
                    json!({"imageTag": "v1", "token": MASK}),
                ),
                RollbackTarget::Found(&masked_target),
                Convergence::Unchanged,
                "",
            ),
            (
                "no release_version",
                release(4, ("web", "1.1.0"), "DEPLOYED", json!({})),
                RollbackTarget::NotGiven,
                Convergence::Change,
                "no parameters.release_version to compare with",
            ),
            (
                "revision not in the history",
                release(4, ("web", "1.1.0"), "DEPLOYED", json!({})),
                RollbackTarget::Missing(9),
                Convergence::Change,
                "revision 9 is not in the release's history",
            ),
            (
                "history unreadable",
                release(4, ("web", "1.1.0"), "DEPLOYED", json!({})),
                RollbackTarget::Unreadable("HTTP 503"),
                Convergence::Change,
                "the release's history could not be read: HTTP 503",
            ),
        ];
        let body = UpdateReleaseBody {
            chart_id: None,
            action: Action::Rollback,
            parameters: Some(ReleaseParameters {
                release_version: Some(2),
                ..ReleaseParameters::default()
            }),
            values: None,
        };
        assert_eq!(rollback_version(&body), Some(2));
        for (case, current, target, label, fragment) in cases {
            let a = assess(&body, DesiredChart::Kept, target, &current);
            assert_eq!(a.decision.label(), label, "{case}: {:?}", a.decision);
            if !fragment.is_empty() {
                assert!(
                    reasons(&a.decision).iter().any(|r| r == fragment),
                    "{case}: {:?}",
                    a.decision
                );
            }
        }
    }

    #[test]
    fn rollback_masked_on_one_side_is_unknown_not_changed() {
        let target = release(
            2,
            ("w", "1"),
            "DEPLOYED",
            json!({"dbPassword": "plain-in-history"}),
        );
        let current = release(3, ("w", "1"), "DEPLOYED", json!({"dbPassword": MASK}));
        let a = assess_rollback(&current, RollbackTarget::Found(&target));
        assert_eq!(
            a.decision,
            Decision::Unknown {
                masked_keys: vec!["dbPassword".into()]
            }
        );
    }
}
