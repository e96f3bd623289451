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
/// (`{ key: value, ... }`, `{"key":"value"}`) mappings, quoted and plain keys and values, and
/// comments. A value written over several lines is [`secret_block_lines`]' business.
pub fn mask_line(line: &str) -> std::borrow::Cow<'_, str> {
    let chars: Vec<char> = line.chars().collect();
    let mut masked: Option<Vec<char>> = None;
    let mut depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // A quote opens a quoted scalar only where a token starts: `don't` is plain.
        let token_start = i == 0 || chars[i - 1].is_whitespace() || "{[,:".contains(chars[i - 1]);
        let key = match c {
            '"' | '\'' if token_start => {
                let close = quoted_end(&chars, i);
                let colon = skip_blanks(&chars, close + 1);
                // A quoted key may be followed by `:` at once, as in JSON.
                if chars.get(colon) == Some(&':') {
                    Some((i + 1, close, colon))
                } else {
                    i = close + 1;
                    continue;
                }
            }
            ':' if ends_key(&chars, i) => {
                let end = chars[..i]
                    .iter()
                    .rposition(|c| !c.is_whitespace())
                    .map_or(0, |p| p + 1);
                let start = chars[..end]
                    .iter()
                    .rposition(|c| c.is_whitespace() || "{}[],".contains(*c))
                    .map_or(0, |p| p + 1);
                Some((start, end, i))
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
        if let Some((start, end, colon)) = key {
            let key: String = chars[start..end].iter().collect();
            if is_secret_key(&key) {
                let (from, to) = value_span(&chars, colon + 1, depth);
                if from < to {
                    masked.get_or_insert_with(|| chars.clone())[from..to].fill('*');
                }
                i = to.max(colon + 1);
                continue;
            }
        }
        i += 1;
    }
    match masked {
        Some(masked) => std::borrow::Cow::Owned(masked.into_iter().collect()),
        None => std::borrow::Cow::Borrowed(line),
    }
}

/// Which lines of a plan belong to a value of a secret-looking key that goes on past the key's
/// own line: a block scalar (`password: |`), a nested mapping or list under the key, a quoted
/// value continued on the next lines. Each such line is more indented than its key.
pub fn secret_block_lines(lines: &[&str]) -> Vec<bool> {
    let mut inside = vec![false; lines.len()];
    // The keys still open: their indentation, and whether they or a key above them is secret.
    let mut open: Vec<(usize, bool)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let mut content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let mut indent = line.len() - content.len();
        while open
            .last()
            .is_some_and(|&(key_indent, _)| key_indent >= indent)
        {
            open.pop();
        }
        let in_secret = open.last().is_some_and(|&(_, secret)| secret);
        inside[i] = in_secret;
        // `- key: value`: the key sits where the item's content starts.
        while let Some(rest) = content.strip_prefix("- ") {
            let item = rest.trim_start();
            indent += content.len() - item.len();
            content = item;
        }
        if let Some(key) = leading_key(content) {
            open.push((indent, in_secret || is_secret_key(&key)));
        }
    }
    inside
}

/// The mapping key a line's content starts with, if it does.
fn leading_key(content: &str) -> Option<String> {
    let chars: Vec<char> = content.chars().collect();
    match chars.first()? {
        '"' | '\'' => {
            let close = quoted_end(&chars, 0);
            let colon = skip_blanks(&chars, close + 1);
            (chars.get(colon) == Some(&':')).then(|| chars[1..close].iter().collect())
        }
        '{' | '[' => None,
        _ => {
            let colon = (0..chars.len()).find(|&j| chars[j] == ':' && ends_key(&chars, j))?;
            let key: String = chars[..colon].iter().collect();
            Some(key.trim_end().to_owned())
        }
    }
}

/// `line` masked from its indentation on: a line inside a secret value.
pub fn mask_whole_line(line: &str) -> String {
    let content = line.trim_start();
    let mut masked = line[..line.len() - content.len()].to_owned();
    masked.extend(content.chars().map(|_| '*'));
    masked
}

fn skip_blanks(chars: &[char], from: usize) -> usize {
    (from..chars.len())
        .find(|&j| !chars[j].is_whitespace())
        .unwrap_or(chars.len())
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
            (r#"{"apiKey":"abc","n":1}"#, r#"{"apiKey":*****,"n":1}"#),
            ("  password : x", "  password : *"),
            ("  \"password\" : x", "  \"password\" : *"),
            ("{ note: don't, token: abc }", "{ note: don't, token: *** }"),
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
    fn a_secret_value_over_several_lines_is_found_line_by_line() {
        let text = [
            "values:",              // 0
            "  dbPassword: |",      // 1
            "    hunter2",          // 2
            "    more",             // 3
            "  imageTag: v1",       // 4
            "  db_secret:",         // 5
            "    user: admin",      // 6
            "    nested: { a: 1 }", // 7
            "  tokens:",            // 8
            "    - abc",            // 9
            "releases:",            // 10
            "  - name: web",        // 11
            "    apiKey: \"x",      // 12
            "      y\"",            // 13
            "    namespace: shop",  // 14
        ];
        let inside: Vec<usize> = secret_block_lines(&text)
            .iter()
            .enumerate()
            .filter_map(|(i, &inside)| inside.then_some(i))
            .collect();
        assert_eq!(inside, [2, 3, 6, 7, 9, 13]);
        assert_eq!(mask_whole_line("    hunter2"), "    *******");
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
