//! Secrets: a wrapper that never prints its content, and the rule for `values` keys that look secret.

use std::fmt;

/// Printed in place of every secret.
pub const MASK: &str = "******";

/// A credential or other secret string. `Debug` and `Display` print [`MASK`]; only
/// [`Secret::expose`] gives the content, and only signing and headers should call it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// A `values` key whose name contains `password`, `secret`, `token` or `key` (any case) holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    ["password", "secret", "token", "key"]
        .iter()
        .any(|needle| lower.contains(needle))
}

/// A copy of `value` in which every entry under a secret-looking key, at any depth, is [`MASK`].
pub fn redact(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(redact_map(map)),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// [`redact`] for a map of values, as releases keep theirs.
pub fn redact_map(
    map: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    map.iter()
        .map(|(k, v)| {
            let v = if is_secret_key(k) {
                serde_json::Value::String(MASK.to_owned())
            } else {
                redact(v)
            };
            (k.clone(), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_never_prints_its_content() {
        let s = Secret::new("SKEXAMPLE");
        assert_eq!(format!("{s} {s:?}"), "****** ******");
        assert_eq!(s.expose(), "SKEXAMPLE");
    }

    #[test]
    fn secret_keys_are_recognised_in_any_case() {
        for key in [
            "dbPassword",
            "API_KEY",
            "apiKey",
            "token",
            "clientSecret",
            "monkey",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["imageTag", "replicas", "host"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn redact_masks_nested_secret_keys() {
        let v = json!({"imageTag": "v1", "db": {"password": "hunter2", "user": "u"}, "list": [{"token": 1}]});
        assert_eq!(
            redact(&v),
            json!({"imageTag": "v1", "db": {"password": MASK, "user": "u"}, "list": [{"token": MASK}]})
        );
    }
}
