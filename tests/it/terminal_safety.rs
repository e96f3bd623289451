//! Input that tries to drive the terminal or forge lines (`\e[2J\e[31mPWNED`, `abc\r\nX-Evil: 1`)
//! in a region, a project id, a release name, a label and a value, through `validate`, `plan`
//! and `apply --simulate`: every output shows it escaped, none carries a raw control character.

use std::time::Duration;

use crate::e2e_support::*;

/// YAML double-quoted escapes: `\e` is ESC, `\r\n` CR LF, `\x7f` DEL, `\x9b` the C1 CSI.
const CLEAR: &str = r"\e[2J\e[31mPWNED";
const FORGE: &str = r"abc\r\nX-Evil: 1";

fn plan(region: &str, project_id: &str, release: &str, label: &str, value: &str) -> String {
    format!(
        r#"version: 1
name: hostile
target: {{ region: "{region}", endpoint: "{NOWHERE}", project_id: "{project_id}" }}
clusters:
  c1: {{ id: 00000000-0000-0000-0000-000000000001, labels: {{ env: "{label}" }} }}
defaults:
  chart_id: {CHART_ID}
  action: upgrade
rollout:
  rate: unlimited
  wait: {{ enabled: true, timeout: 20s, poll: 20ms }}
releases:
  - name: "{release}"
    namespace: apps
    cluster: c1
    values: {{ msg: "{value}", other: "{FORGE}\x7f\x9b31m", "key{CLEAR}": 1 }}
"#
    )
}

/// No control character but the line breaks a rendering makes itself, and no forged line.
fn assert_safe(name: &str, content: &str) {
    let raw: Vec<char> = content
        .chars()
        .filter(|&c| c != '\n' && (c.is_control() || ('\u{202a}'..='\u{2069}').contains(&c)))
        .collect();
    assert!(
        raw.is_empty(),
        "{name} holds raw control characters {raw:?}:\n{content}"
    );
    assert!(
        !content.lines().any(|line| line.starts_with("X-Evil")),
        "{name} has a forged line:\n{content}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_escaped_in_every_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.yaml");
    std::fs::write(&path, plan(CLEAR, FORGE, FORGE, CLEAR, "v")).unwrap();
    for args in [
        vec!["validate"],
        vec!["plan"],
        vec!["plan", "--format", "json"],
        vec!["apply", "--simulate", "--progress", "plain"],
    ] {
        let mut command = flotilla(dir.path());
        command.args(&args[..1]).arg(&path).args(&args[1..]);
        let output = output_within(Duration::from_secs(30), command).await;
        let name = args.join(" ");
        assert_eq!(exit_code(&output), Some(2), "{name}");
        let stderr = text(&output.stderr);
        assert_safe(&format!("{name} stderr"), &stderr);
        assert_safe(&format!("{name} stdout"), &text(&output.stdout));
        // Each of the four is reported, escaped so that a person can see what was written.
        for (problem, shown) in [
            ("is not a region name", r"`\e[2J\e[31mPWNED`"),
            ("is not a project id", r"`abc\r\nX-Evil: 1`"),
            ("is not a DNS-1123 label", r"`abc\r\nX-Evil: 1`"),
            ("is not a label value", r"`\e[2J\e[31mPWNED`"),
        ] {
            assert!(
                stderr
                    .lines()
                    .any(|line| line.contains(problem) && line.contains(shown)),
                "{name}: {problem} {shown}:\n{stderr}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_are_escaped_in_plans_runs_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.yaml");
    std::fs::write(&path, plan("cn-north-4", "p1", "web", "prod", CLEAR)).unwrap();
    let mut outputs = Vec::new();
    for args in [
        vec!["validate"],
        vec!["plan"],
        vec!["plan", "--format", "json"],
        vec![
            "apply",
            "--simulate",
            "--sim-settle",
            "10ms",
            "--progress",
            "plain",
            "--report-json",
            "report.json",
            "--junit",
            "junit.xml",
            "--summary-md",
            "summary.md",
        ],
    ] {
        let mut command = flotilla(dir.path());
        command
            .arg("-vvv")
            .args(&args[..1])
            .arg(&path)
            .args(&args[1..]);
        command.env("RUST_LOG", "trace");
        let output = output_within(Duration::from_secs(60), command).await;
        let name = args.join(" ");
        assert_eq!(
            exit_code(&output),
            Some(0),
            "{name}: {}",
            text(&output.stderr)
        );
        outputs.push((format!("{name} stdout"), text(&output.stdout)));
        outputs.push((format!("{name} stderr"), text(&output.stderr)));
    }
    for file in ["report.json", "junit.xml", "summary.md"] {
        let content = std::fs::read_to_string(dir.path().join(file)).unwrap();
        outputs.push((file.to_owned(), content));
    }
    for (name, content) in &outputs {
        assert_safe(name, content);
    }
    // The plan shows the values, escaped rather than dropped.
    let shown = &outputs[2].1;
    assert!(
        shown.contains("PWNED") && shown.contains("X-Evil"),
        "{shown}"
    );
    let json: serde_json::Value = serde_json::from_str(&outputs[4].1).unwrap();
    let values = &json["waves"][0]["operations"][0]["request"]["body"]["values"];
    assert_eq!(values["msg"], "\u{1b}[2J\u{1b}[31mPWNED");
    assert_eq!(values["other"], "abc\r\nX-Evil: 1\u{7f}\u{9b}31m");
}
