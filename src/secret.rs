//! Secrets: a wrapper that never prints its content, and the rules for which keys, values and variables are secret.

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

/// Words that make a key or a variable name look secret wherever they appear in it, compared in
/// lower case with `_`, `-` and `.` dropped: `DB_PASSWORD`, `clientSecret`, `connection_string`.
const SECRET_SUBSTRINGS: [&str; 7] = [
    "password",
    "passwd",
    "secret",
    "token",
    "key",
    "credential",
    "connectionstring",
];

/// Short words that make a name look secret only as a whole word of it (`dbPass`, `DB_PWD`,
/// `basicAuth`, `dsn`), so that `bypass`, `author` or `compass` stay readable.
const SECRET_WORDS: [&str; 7] = ["pass", "pwd", "pw", "dsn", "auth", "cred", "creds"];

/// A `values` key or a variable name that looks secret: it contains `password`, `passwd`,
/// `secret`, `token`, `key`, `credential` or `connectionString`, or has `pass`, `pwd`, `pw`,
/// `dsn`, `auth`, `cred` or `creds` as one of its words; any case, any separator.
pub fn is_secret_key(key: &str) -> bool {
    let squashed: String = key
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_SUBSTRINGS
        .iter()
        .any(|needle| squashed.contains(needle))
        || name_words(key).any(|word| SECRET_WORDS.contains(&word.as_str()))
}

/// The words of a name, lower-cased: split at anything not a letter or digit, and where a lower
/// case letter or digit is followed by an upper case one (`dbPassURL` → `db`, `pass`, `url`).
fn name_words(name: &str) -> impl Iterator<Item = String> + '_ {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            words.push(std::mem::take(&mut word));
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower {
            words.push(std::mem::take(&mut word));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    words.push(word);
    words.into_iter().filter(|w| !w.is_empty())
}

/// A string that is a secret whatever its key: it holds a PEM private key block, a JWT, a
/// URL with a password in it (`postgres://app:hunter2@db`), or a word that looks like a
/// generated token (see [`looks_like_token`]).
pub fn looks_secret_value(text: &str) -> bool {
    if text.contains("-----BEGIN") && text.contains("PRIVATE KEY") {
        return true;
    }
    if has_url_password(text) || has_secret_parameter(text) {
        return true;
    }
    text.split(|c: char| c.is_whitespace() || "\"',;()<>[]{}".contains(c))
        .any(|word| looks_like_jwt(word) || looks_like_token(word))
}

/// `header.payload.signature` in base64url, the header starting `eyJ` (`{"` encoded).
fn looks_like_jwt(word: &str) -> bool {
    let mut parts = word.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let base64url = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    header.starts_with("eyJ")
        && header.len() >= 10
        && payload.len() >= 4
        && base64url(header)
        && base64url(payload)
        && base64url(signature)
}

/// `scheme://user:password@host`: a URL that carries its password.
fn has_url_password(text: &str) -> bool {
    text.match_indices("://").any(|(at, _)| {
        let authority = text[at + 3..]
            .split(|c: char| c == '/' || c.is_whitespace())
            .next()
            .unwrap_or("");
        authority.rsplit_once('@').is_some_and(|(user_info, _)| {
            user_info
                .split_once(':')
                .is_some_and(|(_, p)| !p.is_empty())
        })
    })
}

/// `…?user=app&password=x` (a JDBC URL, a query string) or `Server=db;Password=x` (a connection
/// string): a `name=value` parameter whose name looks secret, with a value.
fn has_secret_parameter(text: &str) -> bool {
    text.split(|c: char| c.is_whitespace() || "?&;".contains(c))
        .filter_map(|parameter| parameter.split_once('='))
        .any(|(name, value)| !value.is_empty() && is_secret_key(name))
}

/// A word that looks generated rather than written: at least 20 characters of the base64 and
/// base64url alphabets, mixing at least two of upper case, lower case and digits, with high
/// entropy and changing between those classes often (random text does; `myApplication2024`
/// does not). Hexadecimal (digests, commit ids, UUIDs), version numbers, image references and
/// host names do not count: they are what a reader needs to see, and none is a secret alone.
pub fn looks_like_token(word: &str) -> bool {
    let chars: Vec<char> = word.chars().collect();
    if chars.len() < 20
        || !chars
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || "+/=_-".contains(*c))
    {
        return false;
    }
    if chars.iter().all(|c| c.is_ascii_hexdigit() || *c == '-') {
        return false;
    }
    let class = |c: char| {
        if c.is_ascii_uppercase() {
            Some(0u8)
        } else if c.is_ascii_lowercase() {
            Some(1)
        } else if c.is_ascii_digit() {
            Some(2)
        } else {
            None
        }
    };
    let classes: Vec<u8> = chars.iter().filter_map(|c| class(*c)).collect();
    let kinds = [0u8, 1, 2].iter().filter(|k| classes.contains(k)).count();
    if kinds < 2 {
        return false;
    }
    let switches = classes.windows(2).filter(|w| w[0] != w[1]).count();
    let switch_ratio = switches as f64 / (classes.len().max(2) - 1) as f64;
    shannon_entropy(&chars) >= 3.5 && switch_ratio >= 0.3
}

/// Bits per character of `chars` as a sample of their own distribution.
fn shannon_entropy(chars: &[char]) -> f64 {
    let mut counts = std::collections::HashMap::<char, usize>::new();
    for c in chars {
        *counts.entry(*c).or_default() += 1;
    }
    let n = chars.len() as f64;
    counts
        .values()
        .map(|&count| {
            let p = count as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Which keys and values are secret: the built-in rules ([`is_secret_key`],
/// [`looks_secret_value`], a `value` beside a secret-looking `name`), and those a plan or the
/// command line adds: key patterns (`secrets.keys`), patterns for keys and values both
/// (`--redact`), and the values of secret variables, masked wherever they appear.
#[derive(Clone, Default)]
pub struct Redactor {
    key_patterns: Vec<regex::Regex>,
    text_patterns: Vec<regex::Regex>,
    literals: Vec<String>,
    exact: Vec<String>,
}

/// Patterns are shown; the secret values it knows are only counted.
impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("key_patterns", &self.key_patterns)
            .field("text_patterns", &self.text_patterns)
            .field("secret_values", &(self.literals.len() + self.exact.len()))
            .finish()
    }
}

/// Secret variable values shorter than this are masked only where a whole string equals them:
/// `1`, `on` or `true` cannot be searched for inside other text without masking everything.
const MIN_LITERAL_CHARS: usize = 6;

impl Redactor {
    /// A key whose name this pattern finds (anywhere in it) is secret.
    pub fn add_key_pattern(&mut self, pattern: regex::Regex) {
        self.key_patterns.push(pattern);
    }

    /// A key whose name, or a string whose text, this pattern finds is secret (`--redact`).
    pub fn add_pattern(&mut self, pattern: regex::Regex) {
        self.key_patterns.push(pattern.clone());
        self.text_patterns.push(pattern);
    }

    /// A value known to be secret (a secret variable's): masked wherever it appears.
    pub fn add_literal(&mut self, value: &str) {
        if !value.is_empty() && !self.literals.iter().any(|known| known == value) {
            self.literals.push(value.to_owned());
        }
    }

    /// A string known to hold a secret (one a secret variable went into): masked where it is
    /// shown whole.
    pub fn add_exact(&mut self, text: &str) {
        if !text.is_empty() && !self.exact.iter().any(|known| known == text) {
            self.exact.push(text.to_owned());
        }
    }

    /// Adds every rule of `other` (a simulator seeded from several plans masks what each does).
    pub fn merge(&mut self, other: &Redactor) {
        self.key_patterns.extend(other.key_patterns.iter().cloned());
        self.text_patterns
            .extend(other.text_patterns.iter().cloned());
        for literal in &other.literals {
            self.add_literal(literal);
        }
        for exact in &other.exact {
            self.add_exact(exact);
        }
    }

    pub fn is_secret_key(&self, key: &str) -> bool {
        is_secret_key(key) || self.key_patterns.iter().any(|p| p.is_match(key))
    }

    /// A string to be masked whole wherever it is shown.
    pub fn is_secret_text(&self, text: &str) -> bool {
        looks_secret_value(text)
            || self.text_patterns.iter().any(|p| p.is_match(text))
            || self.exact.iter().any(|known| known == text)
            || self.literals.iter().any(|literal| {
                if literal.chars().count() < MIN_LITERAL_CHARS {
                    text == literal
                } else {
                    text.contains(literal.as_str())
                }
            })
    }

    /// A copy of `value` with every secret masked: entries under secret-looking keys, secret
    /// strings under any key, and the `value` of a `{name: DB_PASSWORD, value: ...}` pair.
    pub fn redact(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::Object(map) => Value::Object(self.redact_map(map)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.redact(v)).collect()),
            Value::String(text) if self.is_secret_text(text) => Value::String(MASK.to_owned()),
            other => other.clone(),
        }
    }

    /// [`Redactor::redact`] for a map of values, as releases keep theirs.
    pub fn redact_map(
        &self,
        map: &serde_json::Map<String, serde_json::Value>,
    ) -> serde_json::Map<String, serde_json::Value> {
        let secret_pair = map
            .get("name")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|name| self.is_secret_key(name));
        map.iter()
            .map(|(k, v)| {
                let v = if self.is_secret_key(k) || (secret_pair && k == "value") {
                    serde_json::Value::String(MASK.to_owned())
                } else {
                    self.redact(v)
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// A value as it may be shown: [`MASK`] when it sits under a secret key (`secret`), else
    /// redacted.
    pub fn shown(&self, value: &serde_json::Value, secret: bool) -> serde_json::Value {
        if secret {
            serde_json::Value::String(MASK.to_owned())
        } else {
            self.redact(value)
        }
    }

    /// Free text (a message, a log line) with every JWT and token-looking word, every secret
    /// variable's value and every `--redact` match replaced by [`MASK`].
    pub fn mask_text<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        let mut out = mask_secret_words(text);
        for literal in &self.literals {
            if literal.chars().count() >= MIN_LITERAL_CHARS && out.contains(literal.as_str()) {
                out = std::borrow::Cow::Owned(out.replace(literal.as_str(), MASK));
            }
        }
        for pattern in &self.text_patterns {
            if pattern.is_match(&out) {
                out = std::borrow::Cow::Owned(pattern.replace_all(&out, MASK).into_owned());
            }
        }
        out
    }
}

/// `text` with every word that is a JWT or looks like a token (see [`looks_like_token`]) replaced
/// by [`MASK`]; a word is a run of the base64 alphabets and `.`.
fn mask_secret_words(text: &str) -> std::borrow::Cow<'_, str> {
    let in_word = |c: char| c.is_ascii_alphanumeric() || "+/=_-.".contains(c);
    let mut secret_words = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (in_word(c), start) {
            (true, None) => start = Some(i),
            (false, Some(from)) => {
                // A full stop after a word ends the sentence, not the word.
                let word = text[from..i].trim_end_matches('.');
                if looks_like_jwt(word) || word.split('.').any(looks_like_token) {
                    secret_words.push(from..from + word.len());
                }
                start = None;
            }
            _ => {}
        }
    }
    if secret_words.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for word in secret_words {
        out.push_str(&text[last..word.start]);
        out.push_str(MASK);
        last = word.end;
    }
    out.push_str(&text[last..]);
    std::borrow::Cow::Owned(out)
}

/// A copy of `value` in which every secret (see [`Redactor::redact`], built-in rules) is [`MASK`].
pub fn redact(value: &serde_json::Value) -> serde_json::Value {
    Redactor::default().redact(value)
}

/// [`redact`] for a map of values, as releases keep theirs.
pub fn redact_map(
    map: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    Redactor::default().redact_map(map)
}

/// `line` of plan source with the value of every secret-looking key on it, and every value
/// that is a secret whatever its key (see [`Redactor`]), masked character for character, so that a diagnostic can show the line
/// and its caret still points where it did. Handles block (`key: value`) and flow
/// (`{ key: value, ... }`, `{"key":"value"}`) mappings, quoted and plain keys and values, and
/// comments. A value written over several lines is [`secret_block_lines`]' business.
pub fn mask_line<'l>(line: &'l str, redactor: &Redactor) -> std::borrow::Cow<'l, str> {
    let chars: Vec<char> = line.chars().collect();
    let mut masked: Option<Vec<char>> = None;
    let mut depth = 0usize;
    // `{name: DB_PASSWORD, value: …}`: the value beside a secret-looking name is a secret too.
    let mut secret_name = false;
    let mut value_spans = Vec::new();
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
            let (from, to) = value_span(&chars, colon + 1, depth);
            let value: String = chars[from..to].iter().collect();
            let unquoted = |text: &str| text.trim_matches(['"', '\'']).to_owned();
            match unquoted(&key).as_str() {
                "name" => secret_name |= redactor.is_secret_key(&unquoted(value.trim())),
                "value" => value_spans.push((from, to)),
                _ => {}
            }
            if redactor.is_secret_key(&key)
                || redactor.is_secret_text(value.trim_matches(['"', '\'']))
            {
                if from < to {
                    masked.get_or_insert_with(|| chars.clone())[from..to].fill('*');
                }
                i = to.max(colon + 1);
                continue;
            }
        }
        i += 1;
    }
    if secret_name {
        for (from, to) in value_spans.into_iter().filter(|(from, to)| from < to) {
            masked.get_or_insert_with(|| chars.clone())[from..to].fill('*');
        }
    }
    match masked {
        Some(masked) => std::borrow::Cow::Owned(masked.into_iter().collect()),
        None => std::borrow::Cow::Borrowed(line),
    }
}

/// Which lines of a plan belong to a value of a secret-looking key that goes on past the key's
/// own line: a block scalar (`password: |`), a nested mapping or list under the key, a quoted
/// value continued on the next lines. Each such line is more indented than its key. A line
/// without a key that is itself a secret (a line of a PEM private key, a token) is one too.
pub fn secret_block_lines(lines: &[&str], redactor: &Redactor) -> Vec<bool> {
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
        match leading_key(content) {
            Some(key) => open.push((indent, in_secret || redactor.is_secret_key(&key))),
            None => inside[i] = in_secret || redactor.is_secret_text(content),
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
            (
                "    env: [{ name: DB_PASSWORD, value: plainvalueX }]",
                "    env: [{ name: DB_PASSWORD, value: *********** }]",
            ),
            (
                "- { name: LOG_LEVEL, value: debug }",
                "- { name: LOG_LEVEL, value: debug }",
            ),
        ] {
            let redactor = Redactor::default();
            assert_eq!(mask_line(line, &redactor), want, "{line}");
            assert_eq!(
                mask_line(line, &redactor).chars().count(),
                line.chars().count()
            );
        }
        assert!(matches!(
            mask_line("  imageTag: v1", &Redactor::default()),
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
        let inside: Vec<usize> = secret_block_lines(&text, &Redactor::default())
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

#[cfg(test)]
mod wider_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_wider_key_words_look_secret_and_their_lookalikes_do_not() {
        for key in [
            "passwd",
            "pwd",
            "DB_PWD",
            "credentials",
            "awsCredential",
            "auth",
            "basicAuth",
            "AUTH_HEADER",
            "dsn",
            "sentryDsn",
            "connectionString",
            "connection_string",
            "DB_PASS",
            "dbPass",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "author", "bypass", "compass", "imageTag", "host", "replicas", "name", "value",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n-----END RSA PRIVATE KEY-----\n";
    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";

    #[test]
    fn pem_keys_jwts_tokens_and_url_passwords_are_secret_under_any_key() {
        for value in [
            PEM,
            JWT,
            &format!("Bearer {JWT}"),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "c2VjcmV0LXBhc3N3b3Jk",
            "postgres://app:hunter2@db.internal:5432/shop",
            "jdbc:mysql://db:3306/shop?user=app&password=qwerty77",
            "Server=db;Database=shop;Password=qwerty77",
        ] {
            assert!(looks_secret_value(value), "{value}");
        }
    }

    #[test]
    fn ordinary_values_stay_readable() {
        for value in [
            "v1.2.3",
            "1.27.3-r0",
            "nginx:1.25.3-alpine",
            "swr.ap-southeast-1.myhuaweicloud.com/shop/web:2024.06.01-build17",
            "0c3f6b1e-7d4a-4e2b-9f1a-2b3c4d5e6f70",
            "sha256:9b2a4c1e0d3f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
            "3f1c2a9e8d7b6c5a4f3e2d1c0b9a8f7e6d5c4b3a",
            "cce.ap-southeast-1.myhuaweicloud.com",
            "https://cce.ap-southeast-1.myhuaweicloud.com/api/v3",
            "myApplicationName2024Prod",
            "ap-southeast-1",
            "PT30S",
            "staging-cluster-eu-west-01",
            "The quick brown fox jumps over the lazy dog",
            "-----BEGIN CERTIFICATE-----",
            "jdbc:mysql://db:3306/shop?user=app&useSSL=true",
            "https://example.com/search?q=deploy&page=2",
            "password=",
        ] {
            assert!(!looks_secret_value(value), "{value}");
        }
    }

    #[test]
    fn a_value_beside_a_secret_looking_name_is_masked() {
        let env = json!({"env": [
            {"name": "DB_PASSWORD", "value": "hunter2"},
            {"name": "LOG_LEVEL", "value": "debug"}
        ]});
        assert_eq!(
            redact(&env),
            json!({"env": [
                {"name": "DB_PASSWORD", "value": MASK},
                {"name": "LOG_LEVEL", "value": "debug"}
            ]})
        );
    }

    #[test]
    fn secret_strings_are_masked_under_innocent_keys() {
        let values = json!({"sslCert": PEM, "header": JWT, "image": {"tag": "v1.2.3"}});
        assert_eq!(
            redact(&values),
            json!({"sslCert": MASK, "header": MASK, "image": {"tag": "v1.2.3"}})
        );
    }

    #[test]
    fn a_plans_own_rules_add_keys_patterns_and_values() {
        let mut redactor = Redactor::default();
        redactor.add_key_pattern(regex::Regex::new("^internal").unwrap());
        redactor.add_pattern(regex::Regex::new("sk_live_[a-z0-9]+").unwrap());
        redactor.add_literal("hunter2-from-env");
        redactor.add_literal("ab");
        let values = json!({
            "internalUrl": "http://x",
            "stripe": "sk_live_abc123",
            "sk_live_key_name": 1,
            "note": "uses hunter2-from-env inside",
            "short": "ab",
            "shortInside": "abc",
            "plain": "v1"
        });
        assert_eq!(
            redactor.redact(&values),
            json!({
                "internalUrl": MASK,
                "stripe": MASK,
                "sk_live_key_name": MASK,
                "note": MASK,
                "short": MASK,
                "shortInside": "abc",
                "plain": "v1"
            })
        );
        assert!(!format!("{redactor:?}").contains("hunter2"));
        assert_eq!(
            redactor.mask_text("failed: hunter2-from-env and sk_live_zz9 rejected"),
            "failed: ****** and ****** rejected"
        );
        assert_eq!(
            Redactor::default().mask_text(&format!("got `{JWT}`; key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY. request 3f1c2a9e8d7b6c5a4f3e2d1c0b9a8f7e6d5c4b3a, APIG.0301")),
            "got `******`; key ******. request 3f1c2a9e8d7b6c5a4f3e2d1c0b9a8f7e6d5c4b3a, APIG.0301"
        );
    }

    #[test]
    fn plan_lines_holding_secret_values_are_masked_under_any_key() {
        let redactor = Redactor::default();
        let line = format!("  header: {JWT}");
        assert_eq!(
            mask_line(&line, &redactor),
            format!("  header: {}", "*".repeat(JWT.len()))
        );
        let text = [
            "values:",
            "  sslCert: |",
            "    -----BEGIN RSA PRIVATE KEY-----",
            "    MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
            "    -----END RSA PRIVATE KEY-----",
            "  imageTag: v1",
        ];
        let inside = secret_block_lines(&text, &redactor);
        assert_eq!(inside, [false, false, true, true, false, false]);
    }
}
