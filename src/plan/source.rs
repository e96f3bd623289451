//! Reading a plan's YAML safely: size, encoding and budget checks, then a tree of JSON values with
//! the source position of every node, addressed by JSON pointer.

use std::collections::HashMap;
use std::path::Path;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

use super::diagnostic::{Diagnostic, LoadError, Pos, SourceLines};

/// Plans larger than this are refused before parsing.
pub const MAX_PLAN_BYTES: u64 = 16 * 1024 * 1024;

/// Deeper nesting than this is refused (it protects the stack of every recursive walk).
pub const MAX_DEPTH: usize = 64;

/// Where one node of the document is.
#[derive(Clone, Copy, Debug)]
struct NodePos {
    /// The node's own start.
    value: Pos,
    /// For a mapping entry, where its key starts.
    key: Option<Pos>,
}

/// JSON pointer -> source position, for every node of the document.
#[derive(Debug, Default)]
pub struct Positions {
    nodes: HashMap<String, NodePos>,
}

impl Positions {
    /// Where the node at `pointer` starts; for a node that does not exist (a missing key),
    /// its nearest existing ancestor.
    pub fn value(&self, pointer: &str) -> Pos {
        self.lookup(pointer, |n| n.value)
    }

    /// Where the key of the entry at `pointer` starts (its value's start for array items).
    pub fn key(&self, pointer: &str) -> Pos {
        self.lookup(pointer, |n| n.key.unwrap_or(n.value))
    }

    fn lookup(&self, pointer: &str, pick: impl Fn(&NodePos) -> Pos) -> Pos {
        let mut p = pointer;
        loop {
            if let Some(node) = self.nodes.get(p) {
                return pick(node);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Pos::START,
            }
        }
    }
}

/// A parsed plan document: its JSON value and where each node came from.
#[derive(Debug)]
pub struct Document {
    pub value: Value,
    pub positions: Positions,
}

/// Appends `segment` to a JSON pointer, escaped.
pub fn push_pointer(base: &str, segment: &str) -> String {
    let mut out = String::with_capacity(base.len() + segment.len() + 1);
    out.push_str(base);
    out.push('/');
    for c in segment.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// A plan of `size` bytes, over [`MAX_PLAN_BYTES`]: refused before it is parsed.
pub fn too_large(path: &Path, size: u64) -> LoadError {
    LoadError::single(Diagnostic::file(
        path,
        format!(
            "the plan is {size} bytes, more than the limit of {MAX_PLAN_BYTES} ({} MiB)",
            MAX_PLAN_BYTES / (1024 * 1024)
        ),
    ))
}

/// Checks the bytes are a UTF-8, non-empty plan.
pub fn decode<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, LoadError> {
    if bytes.len() as u64 > MAX_PLAN_BYTES {
        return Err(too_large(path, bytes.len() as u64));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        // Valid up to here by construction; lines counted as the YAML parser counts them.
        let valid = String::from_utf8_lossy(valid);
        let line = super::diagnostic::yaml_lines(&valid).count();
        let col = super::diagnostic::yaml_lines(&valid)
            .last()
            .map_or(0, |l| l.chars().count())
            + 1;
        let lossy = String::from_utf8_lossy(bytes);
        LoadError::single(Diagnostic::at(
            path,
            &lossy,
            Pos { line, col },
            format!(
                "the plan is not valid UTF-8 (byte offset {})",
                e.valid_up_to()
            ),
        ))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let has_content = super::diagnostic::yaml_lines(text).any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#') && t != "---" && t != "..."
    });
    if !has_content {
        return Err(LoadError::single(Diagnostic::file(
            path,
            "the plan is empty: expected a mapping with `version: 1`",
        )));
    }
    Ok(text)
}

/// Parses YAML text into a [`Document`]. Syntax errors, duplicate keys, alias bombs and deep
/// nesting come back as positioned diagnostics.
pub fn parse(path: &Path, text: &str) -> Result<Document, LoadError> {
    gate(path, text)?;
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        let m = e.marker();
        LoadError::single(Diagnostic::at(
            path,
            text,
            Pos {
                line: m.line(),
                col: m.col() + 1,
            },
            format!("YAML syntax error: {}", e.info()),
        ))
    })?;
    let mut docs = docs.into_iter();
    let Some(root) = docs.next() else {
        return Err(LoadError::single(Diagnostic::file(
            path,
            "the plan is empty",
        )));
    };
    if let Some(second) = docs.next() {
        return Err(LoadError::single(Diagnostic::at(
            path,
            text,
            marker_pos(&second),
            "the plan must be a single YAML document",
        )));
    }
    let mut positions = Positions::default();
    let mut problems = Vec::new();
    let lines = SourceLines::new(text);
    let mut builder = Builder {
        path,
        text,
        lines: &lines,
        positions: &mut positions,
        problems: &mut problems,
    };
    let value = builder.convert(&root, String::new(), None, 0);
    if !problems.is_empty() {
        return Err(LoadError::new(problems));
    }
    if !value.is_object() {
        return Err(LoadError::single(Diagnostic::at(
            path,
            text,
            marker_pos(&root),
            "the plan must be a mapping with `version: 1`, `clusters` and `releases`",
        )));
    }
    Ok(Document { value, positions })
}

/// A first pass with serde-saphyr and a strict budget: it refuses duplicate keys, alias
/// expansion bombs, deep nesting and event floods before the tree is built, with positions.
fn gate(path: &Path, text: &str) -> Result<(), LoadError> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_events: 4_000_000,
            max_nodes: 2_000_000,
            max_aliases: 10_000,
            max_anchors: 10_000,
            max_documents: 1,
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        alias_limits: alias_limits(),
        with_snippet: false,
    };
    let Err(err) = serde_saphyr::from_str_with_options::<serde::de::IgnoredAny>(text, options)
    else {
        return Ok(());
    };
    let message = gate_message(&err.to_string());
    let diagnostic = match err.location() {
        Some(loc) if loc.line() > 0 => Diagnostic::at(
            path,
            text,
            Pos {
                line: loc.line() as usize,
                col: (loc.column() as usize).max(1),
            },
            message,
        ),
        _ => Diagnostic::file(path, message),
    };
    Err(LoadError::single(diagnostic))
}

/// serde-saphyr's message, reworded where it speaks of its own API, without the trailing
/// position (the diagnostic prints it first).
fn gate_message(raw: &str) -> String {
    let message = raw.find(" at line ").map_or(raw, |i| &raw[..i]);
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!("duplicate key `{key}`");
    }
    if message.starts_with("budget breached") {
        return if message.contains("Depth") {
            format!("the plan nests deeper than {MAX_DEPTH} levels")
        } else {
            format!("the plan is too large or repetitive to parse safely ({message})")
        };
    }
    if message.starts_with("alias replay limit exceeded") {
        return "aliases expand to too many nodes (an alias bomb?)".to_owned();
    }
    if let Some(rest) = message.strip_prefix("non-finite float ") {
        let number = rest.split(" rejected").next().unwrap_or(rest);
        return format!("{number} is not a finite number (too large, or .inf/.nan)");
    }
    format!("YAML syntax error: {message}")
}

/// Plans have little use for aliases: a few hundred thousand replayed events is plenty, and
/// it caps what the tree builder's own alias expansion can produce.
fn alias_limits() -> serde_saphyr::options::AliasLimits {
    let mut limits = serde_saphyr::options::AliasLimits::default();
    limits.max_total_replayed_events = 200_000;
    limits.max_replay_stack_depth = 16;
    limits
}

/// The digits of a plain integer literal (`+` allowed) starting at character `start` of `text`;
/// `None` when the scalar there is written otherwise (`1e19`, `1.5`, a tag).
fn integer_literal_at(text: &str, start: usize) -> Option<&str> {
    let (offset, _) = text.char_indices().nth(start)?;
    let rest = &text[offset..];
    let unsigned = rest.strip_prefix('+').unwrap_or(rest);
    let digits_end = unsigned
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(unsigned.len());
    let after = unsigned[digits_end..].chars().next();
    let ends_plainly =
        after.is_none_or(|c| c.is_whitespace() || matches!(c, ',' | '}' | ']' | '#'));
    (digits_end > 0 && ends_plainly).then(|| &unsigned[..digits_end])
}

fn marker_pos(node: &MarkedYaml<'_>) -> Pos {
    Pos {
        line: node.span.start.line(),
        col: node.span.start.col() + 1,
    }
}

struct Builder<'a> {
    path: &'a Path,
    text: &'a str,
    lines: &'a SourceLines<'a>,
    positions: &'a mut Positions,
    problems: &'a mut Vec<Diagnostic>,
}

impl Builder<'_> {
    fn problem(&mut self, pos: Pos, message: impl Into<String>) {
        self.problems
            .push(Diagnostic::in_lines(self.path, self.lines, pos, message));
    }

    fn convert(
        &mut self,
        node: &MarkedYaml<'_>,
        pointer: String,
        key: Option<Pos>,
        depth: usize,
    ) -> Value {
        let pos = marker_pos(node);
        if depth > MAX_DEPTH {
            self.problem(pos, format!("nesting deeper than {MAX_DEPTH} levels"));
            return Value::Null;
        }
        let value = match &node.data {
            YamlData::Value(scalar) => self.scalar(scalar, node.span.start.index(), pos),
            YamlData::Representation(text, _, _) => Value::String(text.to_string()),
            YamlData::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let child = push_pointer(&pointer, &i.to_string());
                    out.push(self.convert(item, child, None, depth + 1));
                }
                Value::Array(out)
            }
            YamlData::Mapping(entries) => {
                let mut out = Map::with_capacity(entries.len());
                for (k, v) in entries.iter() {
                    let key_pos = marker_pos(k);
                    let Some(name) = self.key_text(k, key_pos) else {
                        continue;
                    };
                    if out.contains_key(&name) {
                        self.problem(key_pos, format!("duplicate key `{name}`"));
                        continue;
                    }
                    let child = push_pointer(&pointer, &name);
                    let converted = self.convert(v, child, Some(key_pos), depth + 1);
                    out.insert(name, converted);
                }
                Value::Object(out)
            }
            YamlData::Tagged(tag, _) => {
                self.problem(pos, format!("unsupported YAML tag `{tag}`"));
                Value::Null
            }
            YamlData::Alias(_) | YamlData::BadValue => Value::Null,
        };
        self.positions
            .nodes
            .insert(pointer, NodePos { value: pos, key });
        value
    }

    /// `start`: the scalar's first character, counted in characters from the start of the text.
    fn scalar(&mut self, scalar: &Scalar<'_>, start: usize, pos: Pos) -> Value {
        match scalar {
            Scalar::Null => Value::Null,
            Scalar::Boolean(b) => Value::Bool(*b),
            Scalar::Integer(i) => Value::Number((*i).into()),
            // The parser reads an integer past i64 as a float; sent as one, it would not be the
            // number the plan wrote.
            Scalar::FloatingPoint(f) if f.into_inner().abs() >= i64::MAX as f64 => {
                let literal = integer_literal_at(self.text, start);
                match literal.map(|digits| (digits, digits.parse::<u64>())) {
                    Some((_, Ok(n))) => Value::Number(n.into()),
                    Some((digits, Err(_))) => {
                        self.problem(
                            pos,
                            format!("the integer {digits} is too large to send exactly: quote it to send it as text"),
                        );
                        Value::Null
                    }
                    None => Number::from_f64(f.into_inner()).map_or(Value::Null, Value::Number),
                }
            }
            Scalar::FloatingPoint(f) => match Number::from_f64(f.into_inner()) {
                Some(n) => Value::Number(n),
                None => {
                    self.problem(pos, "not a finite number");
                    Value::Null
                }
            },
            Scalar::String(s) => Value::String(s.to_string()),
        }
    }

    fn key_text(&mut self, key: &MarkedYaml<'_>, pos: Pos) -> Option<String> {
        match &key.data {
            YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
            YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
            YamlData::Value(Scalar::Boolean(b)) => Some(b.to_string()),
            YamlData::Value(Scalar::FloatingPoint(f)) => Some(f.to_string()),
            YamlData::Value(Scalar::Null) => Some("null".to_owned()),
            YamlData::Representation(text, _, _) => Some(text.to_string()),
            _ => {
                self.problem(pos, "mapping keys must be plain strings");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Document {
        parse(Path::new("t.yaml"), text).expect("parses")
    }

    fn first_error(text: &str) -> Diagnostic {
        let err = decode(Path::new("t.yaml"), text.as_bytes())
            .and_then(|t| parse(Path::new("t.yaml"), t))
            .expect_err("must fail");
        err.diagnostics()[0].clone()
    }

    #[test]
    fn positions_map_json_pointers_to_yaml_nodes() {
        let doc = parse_ok(
            "version: 1\nrollout:\n  retry: { attempts: 3 }\nreleases:\n  - name: a\n    namespace: b\n",
        );
        assert_eq!(doc.positions.value("/version"), Pos { line: 1, col: 10 });
        assert_eq!(doc.positions.key("/version"), Pos { line: 1, col: 1 });
        assert_eq!(
            doc.positions.value("/rollout/retry/attempts"),
            Pos { line: 3, col: 22 }
        );
        assert_eq!(
            doc.positions.key("/rollout/retry/attempts"),
            Pos { line: 3, col: 12 }
        );
        assert_eq!(doc.positions.value("/releases/0"), Pos { line: 5, col: 5 });
        assert_eq!(
            doc.positions.value("/releases/0/namespace"),
            Pos { line: 6, col: 16 }
        );
        // A missing node falls back to its nearest ancestor.
        assert_eq!(
            doc.positions.value("/releases/0/values/x"),
            Pos { line: 5, col: 5 }
        );
        assert_eq!(doc.value["rollout"]["retry"]["attempts"], 3);
    }

    #[test]
    fn pointer_segments_are_escaped() {
        let doc = parse_ok("a/b:\n  c~d: 1\n");
        assert_eq!(push_pointer("", "a/b"), "/a~1b");
        assert_eq!(doc.positions.value("/a~1b/c~0d"), Pos { line: 2, col: 8 });
    }

    #[test]
    fn a_lone_carriage_return_breaks_lines_in_diagnostics_as_in_yaml() {
        // Found by fuzzing: the parser counts a lone CR as a line break, so the diagnostic's
        // line must be found the same way.
        let d = first_error(")\rv:");
        assert_eq!(d.pos.map(|p| p.line), Some(2), "{d}");
        assert_eq!(d.source_line.as_deref(), Some("v:"), "{d}");
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_position() {
        let d = first_error("version: 1\nname: a\nname: b\n");
        assert_eq!(d.pos.map(|p| p.line), Some(3), "{d}");
        assert!(d.message.contains("duplicate"), "{d}");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        // How fast it is refused is measured by the benchmark, not asserted here.
        let d = first_error(&text);
        assert!(d.message.contains("alias"), "{d}");
        assert!(d.pos.is_some(), "{d}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("a: {}{}\n", "[".repeat(500), "]".repeat(500));
        let d = first_error(&text);
        assert!(d.pos.is_some(), "{d}");
    }

    #[test]
    fn non_utf8_empty_and_tabs_are_refused() {
        let bad = b"version: 1\nname: \xff\n";
        let err = decode(Path::new("t.yaml"), bad).expect_err("not utf-8");
        assert_eq!(err.diagnostics()[0].pos, Some(Pos { line: 2, col: 7 }));
        let err = decode(Path::new("t.yaml"), b"# only a comment\n\n").expect_err("empty");
        assert!(err.diagnostics()[0].message.contains("empty"));
        let d = first_error("version: 1\nrollout:\n\tconcurrency: 2\n");
        assert_eq!(d.pos.map(|p| p.line), Some(3), "{d}");
    }
}
