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

/// `line` of plan source with the value of every secret-looking key on it (see
/// [`is_secret_key`]) masked character for character, so that a diagnostic can show the line
/// and its caret still points where it did. Handles block (`key: value`) and flow
/// (`{ key: value, ... }`) mappings, quoted and plain keys and values, and comments.
pub fn mask_line(line: &str) -> std::borrow::Cow<'_, str> {
    let chars: Vec<char> = line.chars().collect();
    let mut masked = chars.clone();
    let mut changed = false;
    let mut depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let key_end = match c {
            '"' | '\'' => {
                let close = quoted_end(&chars, i);
                if chars.get(close + 1) == Some(&':') && ends_key(&chars, close + 1) {
                    Some((i + 1, close, close + 1))
                } else {
                    i = close + 1;
                    continue;
                }
            }
            ':' if ends_key(&chars, i) => {
                let start = chars[..i]
                    .iter()
                    .rposition(|c| c.is_whitespace() || "{}[],".contains(*c))
                    .map_or(0, |p| p + 1);
                Some((start, i, i))
            }
            '{' | '[' => {
                depth += 1;
                None
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                None
            }
            '#' if i == 0 || chars[i - 1].is_whitespace() => break,
            _ => None,
        };
        if let Some((start, end, colon)) = key_end {
            let key: String = chars[start..end].iter().collect();
            if is_secret_key(&key) {
                let (from, to) = value_span(&chars, colon + 1, depth);
                for slot in &mut masked[from..to] {
                    *slot = '*';
                }
                changed |= from < to;
                i = to.max(colon + 1);
                continue;
            }
        }
        i += 1;
    }
    if changed {
        std::borrow::Cow::Owned(masked.into_iter().collect())
    } else {
        std::borrow::Cow::Borrowed(line)
    }
}

/// A `:` that ends a mapping key: followed by a space or the end of the line.
fn ends_key(chars: &[char], colon: usize) -> bool {
    chars.get(colon + 1).is_none_or(|c| c.is_whitespace())
}

/// The index of the quote closing the one at `open` (the last index if it is never closed).
fn quoted_end(chars: &[char], open: usize) -> usize {
    let quote = chars[open];
    let mut j = open + 1;
    while j < chars.len() {
        match chars[j] {
            '\\' if quote == '"' => j += 1,
            '\'' if quote == '\'' && chars.get(j + 1) == Some(&'\'') => j += 1,
            c if c == quote => return j,
            _ => {}
        }
        j += 1;
    }
    chars.len().saturating_sub(1)
}

/// The value after a key's `:` (from `after`), as `[from, to)`: a quoted scalar, a flow
/// collection, or a plain scalar ending at a comment, the line's end or, inside a flow
/// collection, at `,` `}` or `]`.
fn value_span(chars: &[char], after: usize, depth: usize) -> (usize, usize) {
    let Some(from) = (after..chars.len()).find(|&j| !chars[j].is_whitespace()) else {
        return (after, after);
    };
    match chars[from] {
        '"' | '\'' => (from, quoted_end(chars, from) + 1),
        '{' | '[' => {
            let mut nested = 0usize;
            let mut j = from;
            while j < chars.len() {
                match chars[j] {
                    '"' | '\'' => j = quoted_end(chars, j),
                    '{' | '[' => nested += 1,
                    '}' | ']' => {
                        nested -= 1;
                        if nested == 0 {
                            return (from, j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            (from, chars.len())
        }
        '#' => (from, from),
        _ => {
            let mut to = from;
            while to < chars.len() {
                let c = chars[to];
                if depth > 0 && ",}]".contains(c) {
                    break;
                }
                if c == '#' && chars[to - 1].is_whitespace() {
                    break;
                }
                to += 1;
            }
            while to > from && chars[to - 1].is_whitespace() {
                to -= 1;
            }
            (from, to)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_in_a_plan_line_are_masked_in_place() {
        for (line, want) in [
            ("  dbPassword: hunter2", "  dbPassword: *******"),
            (
                "  dbPassword: hunter2  # rotate",
                "  dbPassword: *******  # rotate",
            ),
            (
                "values: { imageTag: v1, apiKey: \"s3cr,et\", replicas: 2 }",
                "values: { imageTag: v1, apiKey: *********, replicas: 2 }",
            ),
            ("- { name: web, token: abc }", "- { name: web, token: *** }"),
            ("  \"Secret-Name\": 'it''s'", "  \"Secret-Name\": *******"),
            (
                "  password: { a: 1, b: [2] }",
                "  password: ****************",
            ),
            ("  tokens: [x, y]", "  tokens: ******"),
            (
                "  imageTag: v1  # the password: is elsewhere",
                "  imageTag: v1  # the password: is elsewhere",
            ),
            ("  password:", "  password:"),
            (
                "  url: http://x:80/password:y",
                "  url: http://x:80/password:y",
            ),
        ] {
            assert_eq!(mask_line(line), want, "{line}");
            assert_eq!(mask_line(line).chars().count(), line.chars().count());
        }
        assert!(matches!(
            mask_line("  imageTag: v1"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

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
