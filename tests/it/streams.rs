//! `-` on the command line: a plan read from standard input, a report written to standard output.

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;

use crate::e2e_support::*;

fn demo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml")
}

#[test]
fn a_plan_is_read_from_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = flotilla(dir.path())
        .args(["validate", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let plan = std::fs::read(demo()).unwrap();
    child.stdin.take().unwrap().write_all(&plan).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("-: ok: plan `shop-v2-4`, 21 operation(s)"),
        "{stdout}"
    );

    // A problem is placed in `-`, line and column.
    let mut child = flotilla(dir.path())
        .args(["plan", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"version: 1\nclusters: {}\nreleases: []\nbogus: 1\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("-:4:1"), "{stderr}");
}

#[test]
fn a_report_goes_to_standard_output_and_the_table_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let out = flotilla(dir.path())
        .arg("apply")
        .arg(demo())
        .args(["--simulate", "--time-scale", "100", "--progress", "never"])
        .args(["--report-json", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is the JSON report alone: {e}"));
    assert_valid_report(&report);
    assert_eq!(report["summary"]["succeeded"], 21);
    assert!(stderr.contains("21 succeeded, 0 unchanged"), "{stderr}");
    assert!(!dir.path().join("-").exists(), "no file named `-`");

    let both = flotilla(dir.path())
        .arg("apply")
        .arg(demo())
        .args(["--simulate", "--report-json", "-", "--junit", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert_eq!(both.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("already goes to standard output"),
        "{stderr}"
    );
}
