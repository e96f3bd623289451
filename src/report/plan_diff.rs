//! `plan --diff` as it is shown: what `apply` would do to each release (`change`, `unchanged`,
//! `unknown`, `missing` or `error`, an error with the service's code and request id as every
//! report shows them), why, and the `values` keys it would add, change or remove, secrets
//! redacted; as text, or added to the plan's JSON document.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::cce::diff::{ChangeKind, KeyChange};
use crate::cce::model::Release;
use crate::engine::converge::{Convergence, Decision};
use crate::engine::outcome::OperationError;
use crate::engine::preview::Preview;
use crate::plan::resolved::ExpandedPlan;
use crate::report::model::ErrorReport;
use crate::report::plan::operation_line;
use crate::secret::Redactor;
use crate::terminal::push_line;

/// What `plan --diff` found for one operation.
#[derive(Clone, Debug, PartialEq)]
pub enum OperationDiff {
    /// The release was read and compared.
    Compared(Compared),
    /// The release does not exist (404): `apply` would fail this operation.
    Missing { error: ErrorReport },
    /// The release could not be read.
    Error { error: ErrorReport },
}

/// An error of flotilla's own, with no answer behind it.
fn own(message: &str) -> ErrorReport {
    ErrorReport::from(OperationError::message(message))
}

impl OperationDiff {
    /// `change`, `unchanged`, `unknown`, `missing` or `error`.
    pub fn label(&self) -> &'static str {
        match self {
            OperationDiff::Compared(c) => c.label.as_str(),
            OperationDiff::Missing { .. } => "missing",
            OperationDiff::Error { .. } => "error",
        }
    }
}

impl From<Preview> for OperationDiff {
    fn from(preview: Preview) -> Self {
        match preview {
            Preview::Judged {
                current,
                assessment,
                resolved_version,
            } => {
                let masked_keys = match &assessment.decision {
                    Decision::Change { masked_keys, .. } | Decision::Unknown { masked_keys } => {
                        masked_keys.clone()
                    }
                    Decision::Unchanged => Vec::new(),
                };
                OperationDiff::Compared(Compared {
                    label: assessment.decision.label(),
                    why: why(&assessment.decision),
                    release_version: resolved_version,
                    current: current_of(&current),
                    masked_keys,
                    values: assessment.changes,
                })
            }
            Preview::Missing(error) => OperationDiff::Missing {
                error: ErrorReport::from(OperationError::from_api("release not found", &error)),
            },
            Preview::Unresolved(error) => OperationDiff::Error {
                error: ErrorReport::from(error),
            },
            Preview::Unreadable(error) => OperationDiff::Error {
                error: ErrorReport::from(OperationError::from_api("reading the release", &error)),
            },
            Preview::Cancelled => OperationDiff::Error {
                error: own("interrupted before the release was read"),
            },
            Preview::NotRead => OperationDiff::Error {
                error: own("not read: an endpoint refused the credentials"),
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Compared {
    pub label: Convergence,
    /// Why, in one line (key names only).
    pub why: String,
    /// The revision a relative `release_version` (`previous`, `-N`) resolved to here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_version: Option<i64>,
    pub current: Current,
    /// Keys masked by the API, not compared.
    pub masked_keys: Vec<String>,
    /// The `values` keys the PUT would add, change or remove (removal only with
    /// `reset_values`, or for a rollback), and masked ones (`unknown`); secrets redacted.
    pub values: Vec<KeyChange>,
}

/// The release as the GET answered.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Current {
    /// `None` when the answer gave none.
    pub revision: Option<i64>,
    pub status: String,
    pub chart_name: String,
    pub chart_version: String,
}

fn current_of(release: &Release) -> Current {
    Current {
        revision: release.version,
        status: release.status_text(),
        chart_name: release.chart_name.clone().unwrap_or_default(),
        chart_version: release.chart_version.clone().unwrap_or_default(),
    }
}

/// The decision's note without its `label: ` prefix.
fn why(decision: &Decision) -> String {
    let note = decision.note();
    let label = decision.label();
    note.strip_prefix(label.as_str())
        .and_then(|rest| rest.strip_prefix(": "))
        .map_or_else(|| note.clone(), str::to_owned)
}

/// Counts by label, in a fixed order.
pub fn tally(diffs: &[OperationDiff]) -> Vec<(&'static str, usize)> {
    ["change", "unchanged", "unknown", "missing", "error"]
        .into_iter()
        .map(|label| (label, diffs.iter().filter(|d| d.label() == label).count()))
        .collect()
}

/// True when every release could be read.
pub fn all_read(diffs: &[OperationDiff]) -> bool {
    diffs
        .iter()
        .all(|d| matches!(d, OperationDiff::Compared(_)))
}

/// The text listing: per wave, per operation, the label, the release now, why, and the keys.
pub fn render_text(plan: &ExpandedPlan, diffs: &[OperationDiff]) -> String {
    let by_index: HashMap<usize, &OperationDiff> = plan
        .operations()
        .zip(diffs)
        .map(|(op, d)| (op.index, d))
        .collect();
    let mut out = String::new();
    push_line(
        &mut out,
        &format!(
            "plan {} (sha256 {}): {} operation(s) compared with the live releases",
            plan.name,
            plan.short_hash(),
            plan.operation_count()
        ),
    );
    for (w, wave) in plan.waves.iter().enumerate() {
        push_line(&mut out, "");
        push_line(
            &mut out,
            &format!("wave {}/{}: {}", w + 1, plan.waves.len(), wave.name),
        );
        for op in &wave.operations {
            let Some(diff) = by_index.get(&op.index) else {
                continue;
            };
            push_line(
                &mut out,
                &format!("{}: {}", operation_line(op), diff.label()),
            );
            match diff {
                OperationDiff::Compared(c) => {
                    push_line(
                        &mut out,
                        &format!(
                            "         now: revision {} {}, chart {} {}",
                            c.current.revision.map_or_else(
                                || crate::cce::model::NOT_GIVEN_REVISION.to_owned(),
                                |r| r.to_string()
                            ),
                            c.current.status,
                            or_none(&c.current.chart_name),
                            or_none(&c.current.chart_version)
                        ),
                    );
                    if let (Some(to), Some(relative)) = (c.release_version, op.relative_version) {
                        push_line(
                            &mut out,
                            &format!(
                                "         rolls back to: revision {to} (release_version: {relative})"
                            ),
                        );
                    }
                    push_line(
                        &mut out,
                        &format!("         why: {}", plan.redactor.mask_text(&c.why)),
                    );
                    for change in &c.values {
                        push_line(
                            &mut out,
                            &format!(
                                "         {}",
                                key_line(&redacted_change(change, &plan.redactor))
                            ),
                        );
                    }
                }
                OperationDiff::Missing { error } => {
                    push_line(
                        &mut out,
                        &format!(
                            "         the release does not exist: apply would fail ({})",
                            plan.redactor.mask_text(&error.to_string())
                        ),
                    );
                }
                OperationDiff::Error { error } => {
                    push_line(
                        &mut out,
                        &format!("         {}", plan.redactor.mask_text(&error.to_string())),
                    );
                }
            }
        }
    }
    let counts: Vec<String> = tally(diffs)
        .into_iter()
        .map(|(label, n)| format!("{n} {label}"))
        .collect();
    push_line(&mut out, "");
    push_line(&mut out, &counts.join(", "));
    out
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "(none)" } else { s }
}

fn shown(v: &Option<Value>) -> String {
    v.as_ref().map_or_else(String::new, |v| {
        serde_json::to_string(v).unwrap_or_default()
    })
}

/// `+ key: new`, `~ key: old -> new`, `- key: old`, `? key: ****** (masked by the API)`.
fn key_line(change: &KeyChange) -> String {
    match change.kind {
        ChangeKind::Added => format!("+ {}: {}", change.key, shown(&change.new)),
        ChangeKind::Changed => format!(
            "~ {}: {} -> {}",
            change.key,
            shown(&change.old),
            shown(&change.new)
        ),
        ChangeKind::Removed => format!("- {}: {}", change.key, shown(&change.old)),
        ChangeKind::Unknown => format!("? {}: masked by the API, cannot be compared", change.key),
    }
}

/// Adds a `diff` object to every operation of the `plan --format json` document, and a
/// `diff_summary` with the counts by label.
pub fn add_to_json(doc: &mut Value, plan: &ExpandedPlan, diffs: &[OperationDiff]) {
    let by_index: HashMap<usize, &OperationDiff> = plan
        .operations()
        .zip(diffs)
        .map(|(op, d)| (op.index, d))
        .collect();
    if let Some(waves) = doc.get_mut("waves").and_then(Value::as_array_mut) {
        for wave in waves {
            let Some(ops) = wave.get_mut("operations").and_then(Value::as_array_mut) else {
                continue;
            };
            for op in ops {
                let index = op.get("index").and_then(Value::as_u64);
                let diff = index.and_then(|i| by_index.get(&(i as usize)));
                if let (Some(object), Some(diff)) = (op.as_object_mut(), diff) {
                    object.insert("diff".to_owned(), diff_json(diff, &plan.redactor));
                }
            }
        }
    }
    if let Some(object) = doc.as_object_mut() {
        let summary: serde_json::Map<String, Value> = tally(diffs)
            .into_iter()
            .map(|(label, n)| (label.to_owned(), json!(n)))
            .collect();
        object.insert("diff_summary".to_owned(), Value::Object(summary));
    }
}

fn diff_json(diff: &OperationDiff, redactor: &Redactor) -> Value {
    match diff {
        OperationDiff::Compared(c) => {
            let mut shown = json!({
                "label": c.label,
                "why": redactor.mask_text(&c.why),
                "current": c.current,
                "masked_keys": c.masked_keys,
                "values": c.values.iter().map(|change| redacted_change(change, redactor)).collect::<Vec<_>>(),
            });
            if let (Some(to), Some(object)) = (c.release_version, shown.as_object_mut()) {
                object.insert("release_version".to_owned(), json!(to));
            }
            shown
        }
        OperationDiff::Missing { error } => error_json("missing", error, redactor),
        OperationDiff::Error { error } => error_json("error", error, redactor),
    }
}

/// `error` is the error as the text shows it (code, message, request id), with the code and the
/// request id on their own as well, for a program to read.
fn error_json(label: &str, error: &ErrorReport, redactor: &Redactor) -> Value {
    let mut shown = json!({"label": label, "error": redactor.mask_text(&error.to_string())});
    if let Some(object) = shown.as_object_mut() {
        if let Some(code) = &error.code {
            object.insert("code".to_owned(), json!(code));
        }
        if let Some(id) = &error.request_id {
            object.insert("request_id".to_owned(), json!(id));
        }
    }
    shown
}

/// A change as the plan's own rules allow it to be shown: both sides masked when any key on
/// its path is secret by them, or when the new value is a secret (then the old one, say the
/// password it replaces, is one too), else each side redacted. The built-in rules were applied
/// where the change was found.
fn redacted_change(change: &KeyChange, redactor: &Redactor) -> KeyChange {
    let new_is_secret = match &change.new {
        Some(Value::String(text)) => text == crate::secret::MASK || redactor.is_secret_text(text),
        _ => false,
    };
    let secret = new_is_secret
        || change
            .key
            .split('.')
            .any(|segment| redactor.is_secret_key(segment));
    let side = |value: &Option<Value>| value.as_ref().map(|v| redactor.shown(v, secret));
    KeyChange {
        key: change.key.clone(),
        kind: change.kind,
        old: side(&change.old),
        new: side(&change.new),
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;
    use crate::secret::MASK;

    fn change(key: &str, old: Option<Value>, new: Option<Value>) -> KeyChange {
        KeyChange {
            key: key.to_owned(),
            kind: ChangeKind::Changed,
            old,
            new,
        }
    }

    #[test]
    fn the_old_value_of_a_secret_is_masked_with_the_new_one() {
        let mut redactor = Redactor::default();
        redactor.add_literal("new-db-password");
        redactor.add_key_pattern(regex::Regex::new("^internal").unwrap());
        let shown = redacted_change(
            &change(
                "connection",
                Some(json!("old-db-password")),
                Some(json!("new-db-password")),
            ),
            &redactor,
        );
        assert_eq!(
            (shown.old, shown.new),
            (Some(json!(MASK)), Some(json!(MASK)))
        );
        // Masked already where the change was found (a PEM key under an innocent key).
        let shown = redacted_change(
            &change("sslCert", Some(json!("old pem")), Some(json!(MASK))),
            &redactor,
        );
        assert_eq!(shown.old, Some(json!(MASK)));
        let shown = redacted_change(
            &change("svc.internalUrl", Some(json!("a")), Some(json!("b"))),
            &redactor,
        );
        assert_eq!(
            (shown.old, shown.new),
            (Some(json!(MASK)), Some(json!(MASK)))
        );
        let shown = redacted_change(
            &change("image.tag", Some(json!("v1")), Some(json!("v2"))),
            &redactor,
        );
        assert_eq!(
            (shown.old, shown.new),
            (Some(json!("v1")), Some(json!("v2")))
        );
    }
}
