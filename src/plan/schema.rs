//! The plan's JSON Schema, embedded in the binary: the single source of truth for the plan's shape.
//! Validation against it reports every error, each mapped back to its YAML position.
//!
//! The published schema describes the plan as written, so a field checked by a pattern, an
//! enum or a type with a string form also accepts a `${VAR}` reference (`$defs/interpolated`).
//! flotilla validates the plan after substitution, against the same schema without those
//! alternatives ([`SCHEMA`]): what a variable gives is held to the field's own rule.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use super::diagnostic::{Pos, suggestion_suffix};
use super::source::{Positions, push_pointer};

/// The published schema (`flotilla schema`, `schema/plan.schema.json`): the plan as written.
pub const SCHEMA_TEXT: &str = include_str!("../../schema/plan.schema.json");

/// Where the published schema lets a field hold a variable reference instead of its value.
const INTERPOLATED_REF: &str = "#/$defs/interpolated";

/// The published schema as JSON (parsed once).
pub static PUBLISHED: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(SCHEMA_TEXT).expect("the embedded schema is valid JSON (tested)")
});

/// The schema a plan is held to after `${VAR}` substitution: the published one without its
/// variable references (parsed once).
pub static SCHEMA: LazyLock<Value> = LazyLock::new(|| without_references(&PUBLISHED));

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    jsonschema::draft202012::new(&SCHEMA).expect("the embedded schema compiles (tested)")
});

/// The schema's node for the setting at `path` under `rollout` (`["retry", "attempts"]`).
fn rollout_setting(path: &[&str]) -> &'static Value {
    path.iter()
        .fold(&SCHEMA["properties"]["rollout"], |node, key| {
            &node["properties"][*key]
        })
}

/// The inclusive `minimum` and `maximum` the schema sets on a whole-number rollout setting: a
/// flag that overrides the setting is held to the same bounds as the plan.
pub fn rollout_count_range(path: &[&str]) -> (u64, u64) {
    let node = rollout_setting(path);
    let bound = |key: &str| {
        node[key]
            .as_u64()
            .unwrap_or_else(|| panic!("the schema gives rollout {path:?} an integer {key}"))
    };
    (bound("minimum"), bound("maximum"))
}

/// The largest number the schema allows for a rollout setting that is a number or a word
/// (`rate`: a number, or `unlimited`).
pub fn rollout_number_maximum(path: &[&str]) -> f64 {
    rollout_setting(path)["anyOf"][0]["maximum"]
        .as_f64()
        .unwrap_or_else(|| panic!("the schema gives rollout {path:?} a numeric maximum"))
}

/// `schema` without the alternatives that accept a variable reference: each `anyOf` loses
/// its `{"$ref": "#/$defs/interpolated"}`, and one left with a single alternative becomes that
/// alternative, so that the schema reads (and its errors point) as the field's own rule.
pub fn without_references(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (key, value) in map {
                if key == "anyOf"
                    && let Value::Array(alternatives) = value
                {
                    let kept: Vec<Value> = alternatives
                        .iter()
                        .filter(|a| a.get("$ref").and_then(Value::as_str) != Some(INTERPOLATED_REF))
                        .map(without_references)
                        .collect();
                    match <[Value; 1]>::try_from(kept) {
                        Ok([Value::Object(only)]) => out.extend(only),
                        Ok([only]) => {
                            out.insert(key.clone(), Value::Array(vec![only]));
                        }
                        Err(kept) => {
                            out.insert(key.clone(), Value::Array(kept));
                        }
                    }
                } else {
                    out.insert(key.clone(), without_references(value));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(without_references).collect()),
        other => other.clone(),
    }
}

/// A schema violation at a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaProblem {
    pub pos: Pos,
    pub message: String,
}

/// Every schema violation of `instance`, positioned with `positions`.
pub fn check(instance: &Value, positions: &Positions) -> Vec<SchemaProblem> {
    let mut out = Vec::new();
    for error in VALIDATOR.iter_errors(instance) {
        let pointer = error.instance_path().as_str().to_owned();
        let keyword_pointer = keyword_location(&error);
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let allowed = sibling_properties(&keyword_pointer);
                let allowed_names: Vec<&str> = allowed.iter().map(String::as_str).collect();
                for key in unexpected {
                    let at = push_pointer(&pointer, key);
                    out.push(SchemaProblem {
                        pos: positions.key(&at),
                        message: format!(
                            "unknown key `{key}`{}",
                            suggestion_suffix(key, allowed_names.iter().copied())
                        ),
                    });
                }
            }
            ValidationErrorKind::PropertyNames { error: inner } => {
                let key = inner.instance().as_str().unwrap_or_default().to_owned();
                let described = described_node(&keyword_location(inner));
                out.push(SchemaProblem {
                    pos: positions.key(&push_pointer(&pointer, &key)),
                    message: match described {
                        Some(d) => format!("key `{key}` is not {d}{}", where_(&pointer)),
                        None => format!("key `{key}`: {inner}{}", where_(&pointer)),
                    },
                });
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                out.push(SchemaProblem {
                    pos: positions.key(&pointer),
                    message: format!("missing required key `{name}`{}", where_(&pointer)),
                });
            }
            ValidationErrorKind::Enum { options } => {
                let given = error.instance();
                let choices: Vec<&str> = options
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let suffix = given
                    .as_str()
                    .map(|g| suggestion_suffix(g, choices.iter().copied()))
                    .unwrap_or_default();
                out.push(SchemaProblem {
                    pos: positions.value(&pointer),
                    message: format!(
                        "{} is not one of {}{suffix}",
                        show(given),
                        choices
                            .iter()
                            .map(|c| format!("`{c}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            ValidationErrorKind::Type { .. } => {
                let expected = schema_node(parent_pointer(&keyword_pointer))
                    .and_then(|n| n.get("type"))
                    .map(|t| match t {
                        Value::Array(ts) => ts
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" or "),
                        other => other.as_str().unwrap_or("?").to_owned(),
                    })
                    .unwrap_or_else(|| "another type".to_owned());
                out.push(SchemaProblem {
                    pos: positions.value(&pointer),
                    message: format!(
                        "expected {} {expected}, found {}{}",
                        article(&expected),
                        type_name(error.instance()),
                        where_(&pointer)
                    ),
                });
            }
            ValidationErrorKind::OneOfNotValid { .. }
            | ValidationErrorKind::OneOfMultipleValid { .. }
                if keyword_pointer.starts_with("/$defs/release/") =>
            {
                out.push(SchemaProblem {
                    pos: positions.value(&pointer),
                    message: "a release needs exactly one of `cluster`, `clusters` or `selector`"
                        .to_owned(),
                });
            }
            ValidationErrorKind::Pattern { .. }
            | ValidationErrorKind::AnyOf { .. }
            | ValidationErrorKind::OneOfNotValid { .. }
            | ValidationErrorKind::OneOfMultipleValid { .. }
            | ValidationErrorKind::Constant { .. } => {
                let described = described_node(&keyword_pointer);
                let is_key = error.instance().is_string()
                    && matches!(error.kind(), ValidationErrorKind::Pattern { .. })
                    && keyword_pointer.contains("/propertyNames/");
                out.push(SchemaProblem {
                    pos: if is_key {
                        positions.key(&push_pointer(
                            &pointer,
                            error.instance().as_str().unwrap_or_default(),
                        ))
                    } else {
                        positions.value(&pointer)
                    },
                    message: match described {
                        Some(d) if d.starts_with(|c: char| c.is_ascii_lowercase()) => {
                            format!("{} is not {d}{}", show(error.instance()), where_(&pointer))
                        }
                        Some(d) => format!(
                            "invalid value {}{}: {d}",
                            show(error.instance()),
                            where_(&pointer)
                        ),
                        None => format!("{error}{}", where_(&pointer)),
                    },
                });
            }
            _ => out.push(SchemaProblem {
                pos: positions.value(&pointer),
                message: format!("{error}{}", where_(&pointer)),
            }),
        }
    }
    out
}

/// The schema location of the failing keyword, as a JSON pointer into [`SCHEMA`].
fn keyword_location(error: &jsonschema::ValidationError<'_>) -> String {
    if let Some(uri) = error.absolute_keyword_location()
        && let Some(fragment) = uri.fragment()
    {
        return percent_encoding::percent_decode_str(fragment.as_str())
            .decode_utf8_lossy()
            .into_owned();
    }
    error.schema_path().as_str().to_owned()
}

fn parent_pointer(pointer: &str) -> &str {
    pointer.rfind('/').map_or("", |i| &pointer[..i])
}

fn schema_node(pointer: &str) -> Option<&'static Value> {
    SCHEMA.pointer(pointer)
}

/// The names of the `properties` beside a failing `additionalProperties`.
fn sibling_properties(keyword_pointer: &str) -> Vec<String> {
    schema_node(parent_pointer(keyword_pointer))
        .and_then(|n| n.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// The description of the nearest `$defs` entry (or schema node) holding the failing keyword.
fn described_node(keyword_pointer: &str) -> Option<&'static str> {
    let mut p = parent_pointer(keyword_pointer);
    loop {
        if let Some(node) = schema_node(p)
            && let Some(d) = node.get("description").and_then(Value::as_str)
        {
            return Some(d);
        }
        if p.is_empty() {
            return None;
        }
        p = parent_pointer(p);
    }
}

/// " (at `a.b[0]`)"-style context naming the field, for messages where the value alone is unclear.
fn where_(pointer: &str) -> String {
    if pointer.is_empty() {
        return " (at the top level)".to_owned();
    }
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    format!(" (at `{out}`)")
}

fn show(value: &Value) -> String {
    match value {
        // Quoted when it reads as another type, so that `"1"` is not taken for the number 1.
        Value::String(s) if serde_json::from_str::<Value>(s).is_ok_and(|v| !v.is_string()) => {
            format!("`\"{s}\"` (a string)")
        }
        Value::String(s) => format!("`{s}`"),
        Value::Object(_) => "this mapping".to_owned(),
        Value::Array(_) => "this list".to_owned(),
        other => format!("`{other}`"),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_bounds_are_read_from_the_schema() {
        assert_eq!(rollout_count_range(&["concurrency"]), (1, 10_000));
        assert_eq!(rollout_count_range(&["per_cluster"]), (1, 10_000));
        assert_eq!(rollout_count_range(&["burst"]), (1, 1_000_000));
        assert_eq!(rollout_count_range(&["retry", "attempts"]), (1, 100));
        assert_eq!(rollout_number_maximum(&["rate"]), 1_000_000.0);
    }

    /// Every property in the schema has a description and every fixed-shape object refuses
    /// unknown keys; `values` is the one documented exception (charts take any keys).
    #[test]
    fn schema_describes_every_property_and_refuses_unknown_keys() {
        fn visit(node: &Value, at: &str, problems: &mut Vec<String>) {
            match node {
                Value::Object(map) => {
                    if let Some(Value::Object(props)) = map.get("properties") {
                        let closed = map.get("additionalProperties") == Some(&Value::Bool(false));
                        if !closed && !at.ends_with("/$defs/values") {
                            problems.push(format!("{at}: additionalProperties is not false"));
                        }
                        for (name, prop) in props {
                            if prop.get("description").is_none() {
                                problems.push(format!("{at}/properties/{name}: no description"));
                            }
                        }
                    }
                    for (k, v) in map {
                        visit(v, &format!("{at}/{k}"), problems);
                    }
                }
                Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        visit(v, &format!("{at}/{i}"), problems);
                    }
                }
                _ => {}
            }
        }
        let mut problems = Vec::new();
        visit(&SCHEMA, "", &mut problems);
        assert!(problems.is_empty(), "{problems:#?}");
        let _ = &*VALIDATOR;
    }

    /// What flotilla validates after substitution is the published schema without a single
    /// variable reference, each field back to its own rule.
    #[test]
    fn the_substituted_schema_has_no_variable_references_left() {
        let text = SCHEMA.to_string();
        assert!(!text.contains(INTERPOLATED_REF), "{text}");
        assert!(PUBLISHED.to_string().contains(INTERPOLATED_REF));
        let project_id = &SCHEMA["$defs"]["project_id"];
        assert_eq!(project_id["type"], "string");
        assert_eq!(project_id["pattern"], "^[A-Za-z0-9-]{1,64}$");
        assert!(project_id.get("anyOf").is_none());
        let rate = &SCHEMA["properties"]["rollout"]["properties"]["rate"]["anyOf"];
        assert_eq!(rate.as_array().map(Vec::len), Some(2));
        let action = &SCHEMA["$defs"]["release"]["properties"]["action"];
        assert_eq!(action["enum"], serde_json::json!(["upgrade", "rollback"]));
        assert!(action.get("description").is_some());
    }

    /// A string the published schema takes for a variable reference is one that flotilla's
    /// interpolation substitutes without a problem, and the other way round.
    mod interpolated_pattern {
        use proptest::prelude::*;

        use super::super::PUBLISHED;
        use crate::plan::interpolate::interpolate_tree;

        fn pattern() -> regex::Regex {
            let text = PUBLISHED["$defs"]["interpolated"]["pattern"]
                .as_str()
                .expect("a pattern");
            regex::Regex::new(text).expect("the pattern compiles")
        }

        /// Substituted with every variable set: a reference, and no problem.
        fn substitutes(text: &str) -> bool {
            let mut tree = serde_json::Value::String(text.to_owned());
            let done = interpolate_tree(&mut tree, &|_| Some("value".to_owned()));
            done.problems.is_empty() && !done.spans.is_empty()
        }

        #[test]
        fn examples() {
            let pattern = pattern();
            for text in [
                "${A}",
                "${CN_EAST_3_PROJECT_ID:-0b1c}",
                "${A:?the project id}",
                "${A:?a ${b}",
                "x-${A}-${B:-}",
                "x$${A}${B}",
                "cost $5 ${A}",
                "${A:-a:?b}",
                "${A:-x$}",
            ] {
                assert!(pattern.is_match(text), "{text}");
                assert!(substitutes(text), "{text}");
            }
            for text in [
                "plain",
                "$${A}",
                "$$${A}",
                "${A",
                "${1A}",
                "${A:x}",
                "${A:-${B}}",
                "${A:-$${B}}",
                "${}",
                "${A} ${",
                "${A} ${1B}",
            ] {
                assert!(!pattern.is_match(text), "{text}");
                assert!(!substitutes(text), "{text}");
            }
        }

        proptest! {
            #[test]
            fn agrees_with_interpolation(text in "[$${}:?\\-Ab1_ ]{0,14}") {
                prop_assert_eq!(pattern().is_match(&text), substitutes(&text), "{:?}", text);
            }
        }
    }

    #[test]
    fn field_context_reads_like_a_yaml_path() {
        assert_eq!(
            where_("/releases/2/values/a~1b"),
            " (at `releases[2].values.a/b`)"
        );
    }
}
