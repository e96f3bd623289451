//! `${VAR}`, `${VAR:-default}` and `${VAR:?message}` in plan strings, taken from a variable lookup
//! (the environment).

use serde_json::Value;

use crate::secret::{Redactor, is_secret_key};

use super::source::push_pointer;

/// A string that could not be interpolated, at the JSON pointer of its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterpolationProblem {
    pub pointer: String,
    pub message: String,
}

/// What interpolating a plan did.
#[derive(Debug, Default)]
pub struct Interpolation {
    pub problems: Vec<InterpolationProblem>,
    /// Every variable used, as `pointer:NAME=value`, in document order; not those under a
    /// secret-looking key nor those whose own name looks secret (`DB_PASSWORD`) or that
    /// `secrets.variables` names: the plan's identity covers what the environment put in it,
    /// and no hash of it is a hash of a secret.
    pub substituted: Vec<String>,
    /// Where each variable's value went: which string, which bytes of it, from which variable.
    pub spans: Vec<SubstitutedSpan>,
}

/// The bytes `range` of the string at `pointer` (after interpolation) came from `variable`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubstitutedSpan {
    pub pointer: String,
    pub range: std::ops::Range<usize>,
    pub variable: String,
    /// The variable's name looks secret, or `secrets.variables` names it.
    pub secret: bool,
}

impl Interpolation {
    /// Adds to `redactor` what the secret variables put in the plan: each value, masked
    /// wherever it appears, and each whole string that holds one, masked where it is shown
    /// whole (a value too short to be searched for is still masked there).
    pub fn secret_values_into(&self, tree: &Value, redactor: &mut Redactor) {
        for span in self.spans.iter().filter(|s| s.secret) {
            let Some(text) = tree.pointer(&span.pointer).and_then(Value::as_str) else {
                continue;
            };
            if let Some(value) = text.get(span.range.clone()) {
                redactor.add_literal(value);
            }
            redactor.add_exact(text);
        }
    }
}

/// Replaces variables in every string of `value` (keys stay as written).
pub fn interpolate_tree(value: &mut Value, vars: &dyn Fn(&str) -> Option<String>) -> Interpolation {
    interpolate_tree_with(value, vars, &Redactor::default(), &[])
}

/// [`interpolate_tree`] under a plan's own secret rules: `rules` for keys, `secret_variables`
/// for the variables `secrets.variables` names.
pub fn interpolate_tree_with(
    value: &mut Value,
    vars: &dyn Fn(&str) -> Option<String>,
    rules: &Redactor,
    secret_variables: &[String],
) -> Interpolation {
    let mut done = Interpolation::default();
    let walker = Walker {
        vars,
        rules,
        secret_variables,
    };
    walker.walk(value, "", false, &mut done);
    done
}

struct Walker<'a> {
    vars: &'a dyn Fn(&str) -> Option<String>,
    rules: &'a Redactor,
    secret_variables: &'a [String],
}

impl Walker<'_> {
    fn is_secret_variable(&self, name: &str) -> bool {
        is_secret_key(name) || self.secret_variables.iter().any(|v| v == name)
    }

    /// `secret`: the value sits under a secret-looking key, so messages do not quote it.
    fn walk(&self, value: &mut Value, pointer: &str, secret: bool, done: &mut Interpolation) {
        match value {
            Value::String(s) if s.contains('$') => {
                let mut read = |name: &str, value: &str, range: std::ops::Range<usize>| {
                    let secret_variable = self.is_secret_variable(name);
                    if !secret && !secret_variable {
                        done.substituted.push(format!("{pointer}:{name}={value}"));
                    }
                    done.spans.push(SubstitutedSpan {
                        pointer: pointer.to_owned(),
                        range,
                        variable: name.to_owned(),
                        secret: secret_variable,
                    });
                };
                match expand(s, self.vars, secret, &mut read) {
                    Ok(expanded) => *s = expanded,
                    Err(message) => done.problems.push(InterpolationProblem {
                        pointer: pointer.to_owned(),
                        message,
                    }),
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let child = push_pointer(pointer, &i.to_string());
                    self.walk(item, &child, secret, done);
                }
            }
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    let child = push_pointer(pointer, k);
                    let secret = secret || self.rules.is_secret_key(k);
                    self.walk(v, &child, secret, done);
                }
            }
            _ => {}
        }
    }
}

/// Expands one string. `$${` is a literal `${`; a `$` not followed by `{` stays as it is.
/// `${VAR:-default}` takes the default when VAR is unset or empty; `${VAR:?message}` is an error
/// carrying `message` when VAR is unset or empty, so that a plan can insist on being given it.
pub fn interpolate(text: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    expand(text, vars, false, &mut |_, _, _| {})
}

/// [`interpolate`]; with `secret`, a message names the problem without quoting the text.
/// `read` hears of each variable used, with the value it gave (or its default's) and where
/// that value went in the result.
fn expand(
    text: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    secret: bool,
    read: &mut dyn FnMut(&str, &str, std::ops::Range<usize>),
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(literal) = after.strip_prefix("${") {
            out.push_str("${");
            rest = literal;
            continue;
        }
        let Some(body_start) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body_start.find('}') else {
            return Err(if secret {
                "unterminated `${` in a secret value (not shown)".to_owned()
            } else {
                format!("unterminated `${{` in `{text}`")
            });
        };
        let body = &body_start[..end];
        let (name, fallback) = split_reference(body);
        let default = match fallback {
            Fallback::Default(default) => Some(default),
            Fallback::Required(_) | Fallback::None => None,
        };
        // How a message names this reference: not at all inside a secret value.
        let reference = |shown: &str| {
            if secret {
                "a `${...}` in a secret value (not shown)".to_owned()
            } else {
                format!("`{shown}`")
            }
        };
        if default.is_some_and(|d| d.contains("${")) {
            return Err(format!(
                "{}: a default cannot hold another `${{...}}`; set the variable, or write the default out",
                reference(&format!("${{{body}}}..."))
            ));
        }
        if !is_variable_name(name) {
            return Err(format!(
                "{} is not a variable reference: names are letters, digits and `_`, not starting with a digit",
                reference(&format!("${{{body}}}"))
            ));
        }
        // `:-` and `:?` treat an empty value as unset, as POSIX shells do; plain `${VAR}` does not.
        let treats_empty_as_unset = !matches!(fallback, Fallback::None);
        let value = match (
            vars(name).filter(|v| !treats_empty_as_unset || !v.is_empty()),
            default,
        ) {
            (Some(v), _) => v,
            (None, Some(d)) => d.to_owned(),
            (None, None) => {
                if let Fallback::Required(message) = fallback {
                    return Err(required_message(name, message));
                }
                return Err(format!(
                    "environment variable `{name}` is not set (write `${{{name}:-default}}` for a default, or `${{{name}:?why it is needed}}` to say it is required)"
                ));
            }
        };
        let start = out.len();
        out.push_str(&value);
        read(name, &value, start..out.len());
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What a reference does when its variable is unset (or, for the two forms, empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fallback<'a> {
    /// `${VAR}`: unset is an error; empty is taken as it is.
    None,
    /// `${VAR:-default}`: the default.
    Default(&'a str),
    /// `${VAR:?message}`: an error that carries the plan author's message.
    Required(&'a str),
}

/// Splits the body of `${...}` at its first `:-` or `:?`, whichever comes first.
fn split_reference(body: &str) -> (&str, Fallback<'_>) {
    let operator = [":-", ":?"]
        .into_iter()
        .filter_map(|op| body.find(op).map(|at| (at, op)))
        .min();
    match operator {
        Some((at, ":-")) => (&body[..at], Fallback::Default(&body[at + 2..])),
        Some((at, _)) => (&body[..at], Fallback::Required(&body[at + 2..])),
        None => (body, Fallback::None),
    }
}

/// The error of a `${VAR:?message}` whose variable is unset or empty: the author's message, or
/// the shell's own words when there is none.
fn required_message(name: &str, message: &str) -> String {
    let message = message.trim();
    if message.is_empty() {
        format!("environment variable `{name}` is required and is not set (or empty)")
    } else {
        format!("environment variable `{name}` is required and is not set (or empty): {message}")
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(name: &str) -> Option<String> {
        match name {
            "TAG" => Some("v2".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_and_defaults_are_replaced() {
        assert_eq!(interpolate("app:${TAG}", &vars).unwrap(), "app:v2");
        assert_eq!(interpolate("${MISSING:-v1}", &vars).unwrap(), "v1");
        assert_eq!(interpolate("${TAG:-v1}", &vars).unwrap(), "v2");
        assert_eq!(interpolate("${EMPTY:-v1}", &vars).unwrap(), "v1");
        assert_eq!(interpolate("${EMPTY}", &vars).unwrap(), "");
        assert_eq!(interpolate("${MISSING:-}", &vars).unwrap(), "");
        assert_eq!(
            interpolate("cost $5 $${TAG}", &vars).unwrap(),
            "cost $5 ${TAG}"
        );
    }

    #[test]
    fn a_required_variable_is_an_error_when_unset_or_empty_with_the_plans_message() {
        assert_eq!(
            interpolate("app:${TAG:?set IMAGE_TAG}", &vars).unwrap(),
            "app:v2"
        );
        let unset = interpolate("${MISSING:?the image tag CI built}", &vars).unwrap_err();
        assert_eq!(
            unset,
            "environment variable `MISSING` is required and is not set (or empty): the image tag CI built"
        );
        let empty = interpolate("${EMPTY:?needed}", &vars).unwrap_err();
        assert!(empty.contains("`EMPTY` is required"), "{empty}");
        let bare = interpolate("${MISSING:?}", &vars).unwrap_err();
        assert_eq!(
            bare,
            "environment variable `MISSING` is required and is not set (or empty)"
        );
        // The message may hold `:-`, and a default may hold `:?`: the first operator counts.
        assert!(
            interpolate("${MISSING:?a:-b}", &vars)
                .unwrap_err()
                .ends_with(": a:-b")
        );
        assert_eq!(interpolate("${MISSING:-a:?b}", &vars).unwrap(), "a:?b");
    }

    #[test]
    fn a_required_variable_is_reported_at_its_pointer_and_recorded_when_set() {
        let mut tree =
            json!({"tag": "${TAG:?tag}", "pw": {"password": "${NOPE:?the db password}"}});
        let done = interpolate_tree(&mut tree, &vars);
        assert_eq!(done.substituted, ["/tag:TAG=v2"]);
        assert_eq!(done.problems.len(), 1);
        assert_eq!(done.problems[0].pointer, "/pw/password");
        assert!(done.problems[0].message.ends_with(": the db password"));
    }

    #[test]
    fn missing_variables_and_bad_syntax_are_errors_naming_the_variable() {
        let e = interpolate("x-${MISSING}", &vars).unwrap_err();
        assert!(e.contains("`MISSING`"), "{e}");
        assert!(
            interpolate("${TAG", &vars)
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(
            interpolate("${1A}", &vars)
                .unwrap_err()
                .contains("not a variable")
        );
    }

    #[test]
    fn a_problem_under_a_secret_looking_key_does_not_quote_the_value() {
        let mut tree = json!({
            "values": {
                "dbPassword": "hunter2${",
                "db_secret": { "inner": "s3cret${bad name}" },
                "imageTag": "v1${"
            }
        });
        let problems = interpolate_tree(&mut tree, &vars).problems;
        assert_eq!(problems.len(), 3);
        for problem in &problems {
            assert!(!problem.message.contains("hunter2"), "{problem:?}");
            assert!(!problem.message.contains("s3cret"), "{problem:?}");
        }
        assert!(problems.iter().any(|p| p.message.contains("`v1${`")));
    }

    #[test]
    fn a_variable_in_a_default_is_refused_not_sent_as_text() {
        let err = interpolate("${TAG:-${OTHER}}", &vars).unwrap_err();
        assert!(err.contains("a default cannot hold another"), "{err}");
        let err = expand("${TAG:-${OTHER}}", &vars, true, &mut |_, _, _| {}).unwrap_err();
        assert!(!err.contains("OTHER"), "{err}");
    }

    #[test]
    fn substitutions_are_recorded_except_under_secret_keys() {
        let mut v = json!({
            "tag": "${TAG}-${TAG}",
            "plain": "no $ here",
            "escaped": "$${TAG}",
            "apiToken": "${TAG}",
            "env": [{"name": "SECRET_KEY", "value": "${SECRET_KEY:-s3cret}"}],
            "d": "${NOPE:-x}"
        });
        let done = interpolate_tree(&mut v, &vars);
        assert_eq!(
            done.substituted,
            ["/tag:TAG=v2", "/tag:TAG=v2", "/d:NOPE=x"]
        );
    }

    #[test]
    fn the_tree_walk_reports_each_problem_with_its_pointer() {
        let mut v = json!({"a": ["${TAG}", "${NOPE}"], "b/c": {"d": "${ALSO_NOPE}"}, "${KEY}": 1});
        let problems = interpolate_tree(&mut v, &vars).problems;
        assert_eq!(v["a"][0], "v2");
        let pointers: Vec<_> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/a/1", "/b~1c/d"]);
    }
}

#[cfg(test)]
mod provenance_tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "TAG" => Some("v2".into()),
            "DB_PASS" => Some("hunter2-db".into()),
            "PLAIN_NAME" => Some("s3cr3t-value".into()),
            "PIN" => Some("42".into()),
            _ => None,
        }
    }

    #[test]
    fn each_substitution_remembers_its_variable_and_where_it_went() {
        let mut tree = json!({"url": "postgres://app@db/${TAG}?p=${DB_PASS}"});
        let done = interpolate_tree(&mut tree, &env);
        let url = tree["url"].as_str().unwrap();
        let spans: Vec<_> = done
            .spans
            .iter()
            .map(|s| (s.variable.as_str(), &url[s.range.clone()], s.secret))
            .collect();
        assert_eq!(
            spans,
            [("TAG", "v2", false), ("DB_PASS", "hunter2-db", true)]
        );
    }

    #[test]
    fn secret_variables_under_innocent_keys_are_masked_and_left_out_of_the_hash() {
        let mut tree = json!({
            "connection": "${DB_PASS}",
            "innocent": "${PLAIN_NAME}",
            "short": "${PIN}",
            "pinned": "pin=${PIN}",
            "tag": "${TAG}"
        });
        let listed = ["PLAIN_NAME".to_owned(), "PIN".to_owned()];
        let done = interpolate_tree_with(&mut tree, &env, &Redactor::default(), &listed);
        assert_eq!(done.substituted, ["/tag:TAG=v2"]);
        let mut redactor = Redactor::default();
        done.secret_values_into(&tree, &mut redactor);
        assert_eq!(
            redactor.redact(&tree),
            json!({
                "connection": crate::secret::MASK,
                "innocent": crate::secret::MASK,
                "short": crate::secret::MASK,
                "pinned": crate::secret::MASK,
                "tag": "v2"
            })
        );
        assert_eq!(redactor.mask_text("got hunter2-db"), "got ******");
    }

    #[test]
    fn a_plans_key_patterns_keep_values_under_them_out_of_the_hash() {
        let mut tree = json!({"internalUrl": "${TAG}"});
        let mut rules = Redactor::default();
        rules.add_key_pattern(regex::Regex::new("^internal").unwrap());
        let done = interpolate_tree_with(&mut tree, &env, &rules, &[]);
        assert!(done.substituted.is_empty());
    }
}
