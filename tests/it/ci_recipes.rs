//! The CI recipes under examples/ci/ stay true: each is valid YAML, and every `flotilla` command
//! in them parses with the real command line (every subcommand and flag exists).

use std::path::Path;

use clap::Parser;
use flotilla::cli::Cli;
use serde_json::Value;

/// Every string in a YAML document, depth first.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Splits a shell line into words, honouring single and double quotes.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// Placeholders a CI system fills in, replaced by plausible values.
fn substitute(word: &str) -> String {
    word.replace("${{ matrix.k }}", "1")
        .replace("$PLAN", "plans/fleet-upgrade.yaml")
        .replace("$SHARD", "1")
}

/// The `flotilla ...` commands in a script: one per line or per pipeline/list segment.
fn commands(script: &str) -> Vec<Vec<String>> {
    let joined = script.replace("\\\n", " ");
    let mut found = Vec::new();
    for line in joined.lines() {
        for segment in line.split(&['|', ';'][..]).flat_map(|s| s.split("&&")) {
            let segment = segment.split(">>").next().unwrap_or(segment);
            let segment = segment.split(" > ").next().unwrap_or(segment);
            let words = words(&substitute(segment));
            // A lone `flotilla` is a name (a cache key), not a command.
            if words.len() > 1 && words[0] == "flotilla" {
                found.push(words);
            }
        }
    }
    found
}

fn check_file(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let doc: Value = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", path.display()));
    let mut all = Vec::new();
    strings(&doc, &mut all);
    let mut checked = 0;
    for script in &all {
        for command in commands(script) {
            if command.get(1).map(String::as_str) == Some("install") {
                continue;
            }
            Cli::try_parse_from(&command).unwrap_or_else(|e| {
                panic!(
                    "{}: `{}` does not parse:\n{e}",
                    path.display(),
                    command.join(" ")
                )
            });
            checked += 1;
        }
    }
    // The Kubernetes CronJob runs the binary with `args:`.
    if let Some(containers) = doc
        .pointer("/spec/jobTemplate/spec/template/spec/containers")
        .and_then(Value::as_array)
    {
        for container in containers {
            let args: Vec<String> = std::iter::once("flotilla".to_owned())
                .chain(
                    container["args"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a.as_str().map(str::to_owned)),
                )
                .collect();
            Cli::try_parse_from(&args).unwrap_or_else(|e| {
                panic!(
                    "{}: args `{}` do not parse:\n{e}",
                    path.display(),
                    args.join(" ")
                )
            });
            checked += 1;
        }
    }
    checked
}

#[test]
fn every_flotilla_command_in_the_ci_recipes_exists_with_its_flags() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    for file in files {
        let checked = check_file(&file);
        assert!(
            checked >= 1,
            "{}: no flotilla command found",
            file.display()
        );
    }
}

#[test]
fn the_recipe_checker_catches_an_unknown_flag() {
    let bad = commands("flotilla apply plans/demo.yaml --no-such-flag\n");
    assert_eq!(bad.len(), 1);
    assert!(Cli::try_parse_from(&bad[0]).is_err());
    let good = commands("flotilla report merge report-*.json -o report.json && echo done\n");
    assert!(Cli::try_parse_from(&good[0]).is_ok());
}
