//! What a PUT's `values` would change in a release's current values, secrets redacted.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::secret::{MASK, is_secret_key, redact};

/// How one key changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Changed,
    Removed,
    /// The service masks the current value (`******`): whether it changes cannot be told.
    Unknown,
}

/// One key the operation would add, change or remove. `old` and `new` are safe to display:
/// any value under a secret-looking key is [`MASK`], at any depth.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyChange {
    /// Dotted path from the top of `values`, e.g. `image.tag`.
    pub key: String,
    pub kind: ChangeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// The keys `desired` adds, changes or removes relative to `current` (a release's `values`;
/// anything but an object counts as empty, so callers first ask whether an answer gave values
/// at all: convergence never compares against values an answer did not give). Nested objects are compared key by key; arrays and
/// scalars as a whole. Keys come in `desired`'s order, then removed keys in `current`'s order.
pub fn values_diff(current: &Value, desired: &Map<String, Value>) -> Vec<KeyChange> {
    let empty = Map::new();
    let current = current.as_object().unwrap_or(&empty);
    let mut changes = Vec::new();
    diff_maps(current, desired, "", false, &mut changes);
    changes
}

fn diff_maps(
    current: &Map<String, Value>,
    desired: &Map<String, Value>,
    prefix: &str,
    secret_above: bool,
    changes: &mut Vec<KeyChange>,
) {
    for (key, new) in desired {
        let path = join(prefix, key);
        let secret = secret_above || is_secret_key(key);
        match current.get(key) {
            None => changes.push(KeyChange {
                key: path,
                kind: ChangeKind::Added,
                old: None,
                new: Some(shown(new, secret)),
            }),
            Some(Value::String(masked))
                if masked == MASK && new != &Value::String(masked.clone()) =>
            {
                changes.push(KeyChange {
                    key: path,
                    kind: ChangeKind::Unknown,
                    old: Some(Value::String(MASK.to_owned())),
                    new: Some(shown(new, secret)),
                })
            }
            Some(Value::Object(old_map)) if new.is_object() => {
                let new_map = new.as_object().expect("checked above");
                diff_maps(old_map, new_map, &path, secret, changes);
            }
            Some(old) if !same_value(old, new) => changes.push(KeyChange {
                key: path,
                kind: ChangeKind::Changed,
                old: Some(shown(old, secret)),
                new: Some(shown(new, secret)),
            }),
            Some(_) => {}
        }
    }
    for (key, old) in current {
        if !desired.contains_key(key) {
            let secret = secret_above || is_secret_key(key);
            changes.push(KeyChange {
                key: join(prefix, key),
                kind: ChangeKind::Removed,
                old: Some(shown(old, secret)),
                new: None,
            });
        }
    }
}

/// Equal as values: `1` and `1.0` are the same number whichever way a backend writes it back,
/// or a release would be upgraded again on every run.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// A value as it may be displayed: entirely masked under a secret key, else with nested
/// secret keys masked.
fn shown(value: &Value, secret: bool) -> Value {
    if secret {
        Value::String(MASK.to_owned())
    } else {
        redact(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn diff(current: Value, desired: Value) -> Vec<KeyChange> {
        values_diff(&current, desired.as_object().unwrap())
    }

    fn change(key: &str, kind: ChangeKind, old: Option<Value>, new: Option<Value>) -> KeyChange {
        KeyChange {
            key: key.into(),
            kind,
            old,
            new,
        }
    }

    #[test]
    fn added_changed_removed_and_unchanged_keys() {
        let changes = diff(
            json!({"imageTag": "v1", "replicas": 2, "old": true, "same": [1, 2]}),
            json!({"imageTag": "v2", "replicas": 2, "same": [1, 2], "fresh": {"a": 1}}),
        );
        assert_eq!(
            changes,
            vec![
                change(
                    "imageTag",
                    ChangeKind::Changed,
                    Some(json!("v1")),
                    Some(json!("v2"))
                ),
                change("fresh", ChangeKind::Added, None, Some(json!({"a": 1}))),
                change("old", ChangeKind::Removed, Some(json!(true)), None),
            ]
        );
    }

    /// A backend may write `3` back as `3.0` (or the other way round): no change either way.
    #[test]
    fn numbers_equal_in_value_are_unchanged() {
        let current = json!({"replicas": 3, "ratio": 1.0, "ports": [80, 443.0], "big": 12345678901234567890u64});
        let desired = json!({"replicas": 3.0, "ratio": 1, "ports": [80.0, 443], "big": 1.2345678901234567e19});
        assert!(diff(current, desired).is_empty());
        assert_eq!(diff(json!({"n": 3}), json!({"n": 4})).len(), 1);
    }

    #[test]
    fn nested_objects_are_compared_key_by_key() {
        let changes = diff(
            json!({"image": {"repo": "r", "tag": "v1", "pullPolicy": "Always"}}),
            json!({"image": {"repo": "r", "tag": "v2"}}),
        );
        assert_eq!(
            changes,
            vec![
                change(
                    "image.tag",
                    ChangeKind::Changed,
                    Some(json!("v1")),
                    Some(json!("v2"))
                ),
                change(
                    "image.pullPolicy",
                    ChangeKind::Removed,
                    Some(json!("Always")),
                    None
                ),
            ]
        );
    }

    #[test]
    fn masked_current_values_are_unknown_not_changed() {
        let changes = diff(
            json!({"password": MASK, "other": MASK, "gone": MASK}),
            json!({"password": "hunter2", "other": "plain"}),
        );
        assert_eq!(
            changes,
            vec![
                change(
                    "password",
                    ChangeKind::Unknown,
                    Some(json!(MASK)),
                    Some(json!(MASK))
                ),
                change(
                    "other",
                    ChangeKind::Unknown,
                    Some(json!(MASK)),
                    Some(json!("plain"))
                ),
                change("gone", ChangeKind::Removed, Some(json!(MASK)), None),
            ]
        );
    }

    #[test]
    fn secrets_never_appear_in_any_displayed_value() {
        let changes = diff(
            json!({"db": {"password": "old-pw", "host": "h"}, "apiKey": "old-key", "tokens": {"a": "t1"}}),
            json!({"db": {"password": "new-pw", "host": "h2"}, "apiKey": "new-key", "tokens": {"a": "t2"}, "auth": {"clientSecret": "cs"}}),
        );
        let printed = serde_json::to_string(&changes).unwrap();
        for secret in [
            "old-pw", "new-pw", "old-key", "new-key", "t1", "t2", "\"cs\"",
        ] {
            assert!(!printed.contains(secret), "{secret} leaked: {printed}");
        }
        // The secret keys are still reported as changed, just not shown.
        let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            ["db.password", "db.host", "apiKey", "tokens.a", "auth"]
        );
    }

    #[test]
    fn a_release_without_values_gets_everything_added() {
        let changes = diff(Value::Null, json!({"a": 1}));
        assert_eq!(
            changes,
            vec![change("a", ChangeKind::Added, None, Some(json!(1)))]
        );
        assert!(diff(json!({"a": 1}), json!({"a": 1})).is_empty());
    }
}
