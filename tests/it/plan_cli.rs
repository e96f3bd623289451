//! `flotilla validate` and `flotilla plan` run as the real binary: exit codes, positioned
//! diagnostics for every bad-plan fixture, and the text and JSON listings.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;

/// What `plans/fleet-upgrade.yaml` requires (`${VAR:?...}`), as CI would set it.
const FLEET_VARIABLES: [(&str, &str); 4] = [
    ("IMAGE_TAG", "3.1.0"),
    ("PAYMENTS_DB_PASSWORD", "from-a-ci-secret"),
    ("CN_NORTH_4_PROJECT_ID", "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"),
    ("CN_EAST_3_PROJECT_ID", "1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f"),
];

fn flotilla() -> Command {
    let mut cmd = Command::cargo_bin("flotilla").unwrap();
    cmd.env_remove("IMAGE_TAG").timeout(Duration::from_secs(10));
    cmd
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/plans/bad")
        .join(name)
}

/// Each bad fixture and the `LINE:COL` (with a message fragment) of every problem it must report.
const BAD: &[(&str, &[(&str, &str)])] = &[
    ("syntax-error.yaml", &[("4:9", "YAML syntax error")]),
    ("not-utf8.yaml", &[("2:10", "not valid UTF-8")]),
    ("tab-indented.yaml", &[("3:2", "tabs")]),
    ("duplicate-key.yaml", &[("5:3", "duplicate key `a`")]),
    ("alias-bomb.yaml", &[("7:12", "alias")]),
    ("deep-nesting.yaml", &[("3:78", "deeper than 64")]),
    ("not-a-mapping.yaml", &[("1:1", "must be a mapping")]),
    (
        "missing-variable.yaml",
        &[("11:17", "`FLOTILLA_TEST_SURELY_UNSET_TAG` is not set")],
    ),
    (
        "unknown-keys-and-enums.yaml",
        &[
            ("4:50", "unknown key `lables`; did you mean `labels`?"),
            ("7:11", "did you mean `upgrade`?"),
            (
                "9:3",
                "unknown key `concurency`; did you mean `concurrency`?",
            ),
            ("10:22", "minimum of 1"),
            ("10:25", "did you mean `backoff`?"),
            ("11:20", "is not a duration"),
            ("16:32", "did you mean `Always`?"),
            ("17:19", "did you mean `no_hooks`?"),
        ],
    ),
    (
        "bad-names-and-region.yaml",
        &[
            ("4:3", "key `Prod_1` is not a DNS-1123 label"),
            ("4:17", "is not a UUID-like id"),
            ("7:11", "`Web` is not a DNS-1123 label"),
            ("8:16", "`shop/../../admin` is not a DNS-1123 label"),
            ("11:5", "exactly one of `cluster`, `clusters` or `selector`"),
        ],
    ),
    (
        "semantic.yaml",
        &[
            ("6:17", "is also the id of cluster `prod-1`"),
            ("10:17", "150% is out of range"),
            ("11:39", "max_backoff (5s) is less than backoff (10s)"),
            ("14:27", "matches no cluster"),
            ("15:15", "wave name `canary` is already used"),
            ("20:11", "already targeted by releases[0] (line 17)"),
            ("25:16", "unknown cluster `prod-one`"),
            ("28:15", "matches no cluster"),
            ("32:13", "has no `parameters.release_version`"),
        ],
    ),
    (
        "unknown-region.yaml",
        &[
            ("2:19", "unknown region `cn-nort-4` for cluster `a`"),
            ("5:58", "unknown region `mars-north-1` for cluster `b`"),
            ("8:11", "has no `chart_id`"),
        ],
    ),
];

#[test]
fn every_bad_fixture_exits_2_with_each_positioned_problem() {
    for (name, expected) in BAD {
        let path = fixture(name);
        // `flotilla()` kills a run after 10 s, so a hang fails the exit-code check.
        let out = flotilla().arg("validate").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        let reported: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with(path.to_str().unwrap()) && !l.ends_with("problem(s) found"))
            .collect();
        assert_eq!(reported.len(), expected.len(), "{name}:\n{stderr}");
        for ((pos, fragment), line) in expected.iter().zip(&reported) {
            let prefix = format!("{}:{pos}: ", path.display());
            assert!(
                line.starts_with(&prefix),
                "{name}: expected {prefix}… got {line}"
            );
            assert!(
                line.contains(fragment),
                "{name}: expected `{fragment}` in {line}"
            );
        }
        // The source line and a caret follow each positioned problem.
        assert!(
            stderr.contains("\n    ") && stderr.contains('^'),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn the_corpus_table_covers_every_fixture() {
    let mut files: Vec<String> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    // empty.yaml has no position to report; it has its own test below.
    let mut listed: Vec<String> = BAD.iter().map(|(n, _)| (*n).to_owned()).collect();
    listed.push("empty.yaml".to_owned());
    listed.sort();
    assert_eq!(files, listed);
}

#[test]
fn empty_missing_and_oversized_files_exit_2_with_a_clear_message() {
    let out = flotilla()
        .arg("validate")
        .arg(fixture("empty.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the plan is empty"));

    let out = flotilla()
        .args(["validate", "no/such/plan.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no/such/plan.yaml: cannot read the plan")
    );

    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(16 * 1024 * 1024 + 1).unwrap();
    let started = Instant::now();
    let out = flotilla().arg("validate").arg(&big).output().unwrap();
    // Refused before reading: a generous bound that only a hang would break.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than the limit"));
}

#[test]
fn validate_reports_each_valid_plan_and_exits_0() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = flotilla()
        .envs(FLEET_VARIABLES)
        .arg("validate")
        .arg(root.join("plans/demo.yaml"))
        .arg(root.join("plans/rollback.yaml"))
        .arg(root.join("plans/fleet-upgrade.yaml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.contains(": ok: plan")).count(),
        3,
        "{stdout}"
    );
}

#[test]
fn plan_json_is_versioned_filtered_sharded_and_redacted() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml");
    let out = flotilla()
        .arg("plan")
        .arg(&demo)
        .args([
            "--format",
            "json",
            "--select",
            "release=checkout",
            "--select",
            "env=prod",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["plan"]["name"], "shop-v2-4");
    assert_eq!(doc["waves"].as_array().unwrap().len(), 1);
    let ops = doc["waves"][0]["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 6);
    assert_eq!(doc["operation_count"], 6);
    // Indexes are the whole plan's: the canary wave's operations came before these.
    let indexes: Vec<u64> = ops.iter().map(|op| op["index"].as_u64().unwrap()).collect();
    assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{indexes:?}");
    assert_ne!(indexes[0], 0, "{indexes:?}");
    assert_eq!(ops[0]["request"]["method"], "PUT");
    assert_eq!(
        ops[0]["request"]["body"]["values"]["paymentApiKey"],
        "******"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("demo-not-a-real-key"));

    // Shards are taken within one wave: each wave's shards hold all of it, and only it.
    let mut operations_per_shard = Vec::new();
    for wave in ["canary", "prod"] {
        for k in 1..=3 {
            let out = flotilla()
                .arg("plan")
                .arg(&demo)
                .args([
                    "--format",
                    "json",
                    "--wave",
                    wave,
                    "--shard",
                    &format!("{k}/3"),
                ])
                .output()
                .unwrap();
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(doc["selection"]["wave"], serde_json::json!([wave]));
            let waves = doc["waves"].as_array().unwrap();
            assert!(waves.iter().all(|w| w["name"] == wave), "{doc}");
            operations_per_shard.push(doc["operation_count"].as_u64().unwrap());
        }
    }
    assert_eq!(operations_per_shard.iter().sum::<u64>(), 21);
}

/// `plan --shard` shows what `apply --shard` would run, so it refuses what apply refuses.
#[test]
fn a_shard_across_waves_is_refused_with_the_wave_form_unless_asked_for() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml");
    for command in ["plan", "apply"] {
        let out = flotilla()
            .arg(command)
            .arg(&demo)
            .args(["--shard", "2/3"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert!(out.stdout.is_empty(), "{command}: nothing is run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr
                .contains("--shard 2/3: the operations selected are in 2 waves (`canary`, `prod`)"),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "flotilla apply {} --wave canary --shard 2/3",
                demo.display()
            )),
            "{stderr}"
        );
    }
    let out = flotilla()
        .arg("plan")
        .arg(&demo)
        .args(["--shard", "2/3", "--shard-across-waves"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("selection: --shard 2/3 --shard-across-waves"),
        "{text}"
    );
}

#[test]
fn plan_text_shows_waves_bodies_and_the_implicit_wave() {
    let rollback = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/rollback.yaml");
    let out = flotilla().arg("plan").arg(&rollback).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("wave 1/2: canary"), "{text}");
    assert!(
        text.contains("PUT https://cce.cn-north-4.myhuaweicloud.com/autopilot/cam/v3/clusters/"),
        "{text}"
    );
    assert!(
        text.contains(r#"{"action":"rollback","parameters":{"release_version":17}}"#),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("p.yaml");
    std::fs::write(
        &plan,
        "version: 1\ntarget: { region: cn-north-4 }\nclusters:\n  a: { id: 0f6b1c2e-5dc7-11ee-bf71-0255ac100b03 }\n  b: { id: a870253f-5dc7-11ee-bf71-0255ac100b03 }\nrollout:\n  waves: [ { name: first, select: { clusters: [a] } } ]\nreleases:\n  - { name: web, namespace: shop, selector: { labels: {} }, action: rollback, parameters: { release_version: 2 } }\n",
    )
    .unwrap();
    let out = flotilla().arg("plan").arg(&plan).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("wave 2/2: (implicit) (implicit: operations no declared wave selects)"),
        "{text}"
    );

    let out = flotilla()
        .arg("plan")
        .arg(&plan)
        .args(["--shard", "3/2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn interpolated_variables_come_from_the_environment() {
    let fleet = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/fleet-upgrade.yaml");
    let out = flotilla()
        .envs(FLEET_VARIABLES)
        .env("IMAGE_TAG", "3.1.0")
        .arg("plan")
        .arg(&fleet)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["waves"][0]["operations"][0]["request"]["body"]["values"]["imageTag"],
        "3.1.0"
    );
    assert_eq!(
        doc["waves"][0]["operations"][0]["request"]["body"]["values"]["database"]["password"],
        "******"
    );
}

/// The fleet plan is for unattended runs: a required variable left unset (or empty) stops it at
/// validation with the variable's position and the plan's reason, instead of sending a default.
#[test]
fn a_required_variable_left_unset_is_exit_2_at_its_position() {
    let fleet = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/fleet-upgrade.yaml");
    for unset in [None, Some("")] {
        let mut command = flotilla();
        command.envs(FLEET_VARIABLES).arg("plan").arg(&fleet);
        match unset {
            None => command.env_remove("PAYMENTS_DB_PASSWORD"),
            Some(empty) => command.env("PAYMENTS_DB_PASSWORD", empty),
        };
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = fleet_line_of(&fleet, "PAYMENTS_DB_PASSWORD:?");
        assert!(
            stderr.contains(&format!("fleet-upgrade.yaml:{line}:"))
                && stderr.contains(
                    "`PAYMENTS_DB_PASSWORD` is required and is not set (or empty): the payments database password"
                ),
            "{stderr}"
        );
    }
}

/// The 1-based line of `plan` that holds `needle`.
fn fleet_line_of(plan: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(plan).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn schema_command_prints_the_embedded_schema() {
    let out = flotilla().arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

#[test]
fn a_secret_written_inline_on_a_line_with_a_problem_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("inline-secret.yaml");
    std::fs::write(
        &plan,
        concat!(
            "version: 1\n",
            "target: { region: cn-north-4 }\n",
            "clusters: { c: { id: 0f6b1c2e-5dc7-11ee-bf71-0255ac100b03 } }\n",
            "releases:\n",
            "  - { name: web, namespace: Bad_NS, chart_id: af4b699e-018c-11ec-b8b0-0255ac100b05,",
            " clusters: [c], values: { dbPassword: hunter2-s3cret, imageTag: v1 } }\n",
        ),
    )
    .unwrap();
    let out = flotilla().arg("validate").arg(&plan).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("inline-secret.yaml:5:"), "{stderr}");
    assert!(
        stderr.contains("dbPassword: **************, imageTag: v1"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
