//! A plan's own secret rules (`secrets: { keys, variables }`): read before interpolation, so that
//! the hash, the diagnostics and every output use them, and checked with the plan's positions.

use serde_json::Value;

use crate::secret::Redactor;

use super::source::Positions;

/// The rules as far as they can be read from the tree before it is validated: each pattern
/// that compiles, and each variable name given as a string. What is wrong with them is
/// [`check`]'s to report.
pub fn early_rules(tree: &Value) -> (Redactor, Vec<String>) {
    let mut redactor = Redactor::default();
    let strings = |pointer: &str| {
        tree.pointer(pointer)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for pattern in strings("/secrets/keys") {
        if let Ok(regex) = regex::Regex::new(&pattern) {
            redactor.add_key_pattern(regex);
        }
    }
    (redactor, strings("/secrets/variables"))
}

/// A pattern of `secrets.keys` that is not a regular expression: where, and why.
pub struct PatternProblem {
    pub pos: super::Pos,
    pub message: String,
}

/// Every pattern of `secrets.keys` that does not compile.
pub fn check(keys: &[String], positions: &Positions) -> Vec<PatternProblem> {
    keys.iter()
        .enumerate()
        .filter_map(|(i, pattern)| {
            let error = regex::Regex::new(pattern).err()?;
            Some(PatternProblem {
                pos: positions.value(&format!("/secrets/keys/{i}")),
                message: format!(
                    "secrets.keys: `{pattern}` is not a regular expression: {}",
                    first_line(&error.to_string())
                ),
            })
        })
        .collect()
}

/// The regex crate explains an error over several lines, drawing under the pattern; the last
/// line says what is wrong.
fn first_line(explanation: &str) -> String {
    explanation
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(explanation)
        .trim()
        .trim_start_matches("error: ")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::plan::load_source;

    const PLAN: &str = r#"version: 1
target: { region: cn-north-4, project_id: p1 }
secrets:
  keys: ["^internal", "(unclosed"]
  variables: [RELEASE_NOTE]
clusters:
  c1: { id: 00000000-0000-0000-0000-000000000001 }
releases:
  - name: web
    namespace: shop
    cluster: c1
    chart_id: af4b699e-018c-11ec-b8b0-0255ac100b05
    values: { note: "${RELEASE_NOTE}", internalUrl: "http://10.0.0.1", tag: v1 }
"#;

    #[test]
    fn a_bad_pattern_is_reported_at_its_line_and_column() {
        let err =
            load_source(Path::new("p.yaml"), PLAN.as_bytes(), &|_| Some("x".into())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("p.yaml:4:23: secrets.keys: `(unclosed` is not a regular expression"),
            "{text}"
        );
    }

    #[test]
    fn a_plans_rules_reach_the_plan_and_its_secret_variables_not_the_hash() {
        let plan_text = PLAN.replace(", \"(unclosed\"", "");
        let load = |note: &'static str| {
            load_source(Path::new("p.yaml"), plan_text.as_bytes(), &move |name| {
                (name == "RELEASE_NOTE").then(|| note.to_owned())
            })
            .unwrap()
        };
        let (one, two) = (load("first-note"), load("second-note"));
        assert_eq!(
            one.hash, two.hash,
            "a secret variable must not change the hash"
        );
        let body = serde_json::to_value(&*one.waves[0].operations[0].body).unwrap();
        let shown = one.redactor.redact(&body).to_string();
        assert!(!shown.contains("first-note"), "{shown}");
        assert!(!shown.contains("10.0.0.1"), "{shown}");
        assert!(shown.contains("\"tag\":\"v1\""), "{shown}");
    }
}
