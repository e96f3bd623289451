//! The published plan schema as an editor sees it: every plan in `plans/` and every plan the
//! documentation shows is valid against `schema/plan.schema.json` before `${VAR}` substitution,
//! by a second, independent JSON Schema validator (boon); and a variable's value is still held
//! to the field's own rule by flotilla.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::e2e_support::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The published schema, compiled by boon (not by the jsonschema crate flotilla uses).
struct IndependentValidator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl IndependentValidator {
    fn new() -> Self {
        let text = std::fs::read_to_string(repo().join("schema/plan.schema.json")).unwrap();
        let schema: Value = serde_json::from_str(&text).unwrap();
        let id = schema["$id"].as_str().unwrap().to_owned();
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler.add_resource(&id, schema).unwrap();
        let index = compiler.compile(&id, &mut schemas).unwrap();
        IndependentValidator { schemas, index }
    }

    /// `Err` with boon's own account of every violation.
    fn validate(&self, plan: &Value) -> Result<(), String> {
        self.schemas
            .validate(plan, self.index)
            .map_err(|error| format!("{error:#}"))
    }
}

/// The plan as an editor's YAML parser reads it: comments ignored, `${VAR}` left as written.
fn as_written(yaml: &str) -> Value {
    serde_saphyr::from_str(yaml).unwrap()
}

/// Every ```yaml block of `markdown` that is a plan (a mapping with `version`), numbered.
fn plan_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for (number, line) in markdown.lines().enumerate() {
        match &mut current {
            None if line.trim_start() == "```yaml" => current = Some(String::new()),
            Some(block) if line.trim_start().starts_with("```") => {
                let block = std::mem::take(block);
                current = None;
                let is_plan = serde_saphyr::from_str::<Value>(&block)
                    .is_ok_and(|tree| tree.get("version").is_some());
                if is_plan {
                    blocks.push((number + 1, block));
                }
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Every plan the project publishes: `plans/`, `docs/examples/plan.yaml`, and the plan blocks
/// of README and the book; each with where it is.
fn published_plans() -> Vec<(String, String)> {
    let mut plans = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("plans"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.push(repo().join("docs/examples/plan.yaml"));
    files.sort();
    for file in files {
        plans.push((
            file.display().to_string(),
            std::fs::read_to_string(&file).unwrap(),
        ));
    }
    let mut pages = vec![repo().join("README.md")];
    pages.extend(
        std::fs::read_dir(repo().join("docs/src"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "md")),
    );
    pages.sort();
    for page in pages {
        let markdown = std::fs::read_to_string(&page).unwrap();
        for (line, block) in plan_blocks(&markdown) {
            plans.push((format!("{}:{line}", page.display()), block));
        }
    }
    plans
}

#[test]
fn every_published_plan_is_valid_as_written_for_an_independent_validator() {
    let validator = IndependentValidator::new();
    let plans = published_plans();
    let names: Vec<&str> = plans.iter().map(|(name, _)| name.as_str()).collect();
    // The ones an editor is pointed at, at least: found, not skipped.
    for expected in [
        "plans/fleet-upgrade.yaml",
        "plans/rollback.yaml",
        "plans/demo.yaml",
        "README.md:",
        "docs/src/plan-reference.md:",
    ] {
        assert!(
            names.iter().any(|name| name.contains(expected)),
            "{expected} not among {names:#?}"
        );
    }
    let failures: Vec<String> = plans
        .iter()
        .filter_map(|(name, text)| {
            let problems = validator.validate(&as_written(text)).err()?;
            Some(format!("{name}:\n{problems}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The schema still refuses what no variable makes valid, and a reference where flotilla never
/// substitutes one (a key), or where a string is never valid (a number field).
#[test]
fn the_independent_validator_still_refuses_bad_plans() {
    let validator = IndependentValidator::new();
    let plan = |clusters: &str, extra: &str| {
        as_written(&format!(
            "version: 1\ntarget: {{ region: cn-north-4 }}\nclusters:\n{clusters}\n{extra}\
             releases:\n  - {{ name: web, namespace: shop, cluster: c1, chart_id: {CHART_ID} }}\n"
        ))
    };
    let good_cluster = format!("  c1: {{ id: {} }}", cluster_id(1));
    assert_eq!(validator.validate(&plan(&good_cluster, "")), Ok(()));
    let referenced = "  c1: { id: \"${CLUSTER_ID}\", project_id: \"${P:-abc}\", \
                      region: \"${R:?the region}\" }";
    let soak = "rollout: { max_failures: \"${MAX:-10%}\", rate: \"${RATE:-unlimited}\", \
                waves: [{ name: w, select: { clusters: [c1] }, soak: \"${SOAK:-1m}\" }] }\n";
    assert_eq!(validator.validate(&plan(referenced, soak)), Ok(()));
    for (clusters, extra) in [
        // Not a reference: written out, and invalid.
        (
            format!("  c1: {{ id: {}, project_id: \"bad id!\" }}", cluster_id(1)),
            "",
        ),
        // A literal `$${`, and a broken reference.
        ("  c1: { id: \"$${CLUSTER_ID}\" }".to_owned(), ""),
        ("  c1: { id: \"${CLUSTER_ID\" }".to_owned(), ""),
        // Keys are never substituted.
        (format!("  \"${{NAME}}\": {{ id: {} }}", cluster_id(1)), ""),
        // A number field: a variable gives a string.
        (
            good_cluster.clone(),
            "rollout: { concurrency: \"${N:-4}\" }\n",
        ),
    ] {
        let written = plan(&clusters, extra);
        assert!(
            validator.validate(&written).is_err(),
            "accepted: {written:#}"
        );
    }
}

/// A value that came from a variable is validated after substitution, by the field's own
/// rule, and the error points at the line and column where the reference is written.
#[test]
fn a_bad_value_from_a_variable_is_refused_where_the_reference_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "version: 1\ntarget: {{ region: cn-north-4 }}\nclusters:\n  c1:\n    id: {}\n    \
         project_id: ${{PROJECT:-0b1c2d}}\nreleases:\n  - {{ name: web, namespace: shop, \
         cluster: c1, chart_id: {CHART_ID} }}\n",
        cluster_id(1)
    );
    std::fs::write(dir.path().join("p.yaml"), &plan).unwrap();
    let good = flotilla(dir.path())
        .args(["validate", "p.yaml"])
        .output()
        .unwrap();
    assert_eq!(good.status.code(), Some(0), "{}", text(&good.stderr));
    let bad = flotilla(dir.path())
        .args(["validate", "p.yaml"])
        .env("PROJECT", "not a project/id")
        .output()
        .unwrap();
    let stderr = text(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("p.yaml:6:17"), "{stderr}");
    assert!(
        stderr.contains("`not a project/id` is not a project id"),
        "{stderr}"
    );
    // `$${` writes a literal `${`, which is no project id either.
    std::fs::write(
        dir.path().join("literal.yaml"),
        plan.replace("${PROJECT:-0b1c2d}", "\"$${PROJECT}\""),
    )
    .unwrap();
    let literal = flotilla(dir.path())
        .args(["validate", "literal.yaml"])
        .output()
        .unwrap();
    let stderr = text(&literal.stderr);
    assert_eq!(literal.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`${PROJECT}` is not a project id"),
        "{stderr}"
    );
}

/// README's example plan starts with the schema URL of this version, and flotilla takes the
/// plan as it is, that line included.
#[test]
fn readmes_plan_names_the_schema_of_this_version_and_is_accepted() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let blocks = plan_blocks(&readme);
    let [(_, plan)] = blocks.as_slice() else {
        panic!("README has one example plan: {blocks:?}");
    };
    let first = plan.lines().next().unwrap();
    let url = first
        .strip_prefix("# yaml-language-server: $schema=")
        .unwrap_or_else(|| panic!("the first line names the schema: {first}"));
    let version = env!("CARGO_PKG_VERSION");
    assert!(url.starts_with("https://"), "{url}");
    assert!(
        url.ends_with(&format!("/v{version}/schema/plan.schema.json")),
        "{url} is not the schema of v{version}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("readme.yaml"), plan).unwrap();
    let validated = flotilla(dir.path())
        .args(["validate", "readme.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        validated.status.code(),
        Some(0),
        "{}",
        text(&validated.stderr)
    );
}
