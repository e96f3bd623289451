//! Every masking case of a plan, through every output: `plan` (text and JSON), `plan --diff`,
//! `apply` against a simulator and `apply --simulate` with every report file; no secret value
//! appears anywhere, while ordinary values stay readable.

use std::path::Path;
use std::time::Duration;

use crate::e2e_support::*;

const PEM_LINE: &str = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun";
const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
const TOKEN: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// The plan, with `{run}` in every secret so that two runs send different secrets.
fn plan_yaml(endpoint: &str, run: u32) -> String {
    format!(
        r#"version: 1
name: secretive
target: {{ region: cn-north-4, endpoint: "{endpoint}" }}
secrets:
  keys: ["^internal"]
  variables: [RELEASE_NOTE]
clusters:
  c1: {{ id: 00000000-0000-0000-0000-000000000001 }}
defaults:
  chart_id: {CHART_ID}
  action: upgrade
rollout:
  rate: unlimited
  wait: {{ enabled: true, timeout: 20s, poll: 20ms }}
releases:
  - name: web
    namespace: apps
    cluster: c1
    values:
      imageTag: "2.0.{run}"
      passwd: PW-passwd-{run}
      pwd: PW-pwd-{run}
      credentials: PW-credentials-{run}
      auth: PW-auth-{run}
      dsn: "postgres://app:PW-dsn-{run}@db/shop"
      connectionString: "Server=db;Password=PW-conn-{run}"
      sslCert: |
        -----BEGIN RSA PRIVATE KEY-----
        {PEM_LINE}{run}
        -----END RSA PRIVATE KEY-----
      header: "Bearer {JWT}{run}"
      blob: "{TOKEN}{run}"
      databaseUrl: "mysql://shop:PW-url-{run}@db:3306/shop"
      env:
        - {{ name: DB_PASSWORD, value: PW-env-{run} }}
        - {{ name: LOG_LEVEL, value: debug }}
      connection: "${{DB_PASS}}"
      note: "${{RELEASE_NOTE}}"
      internalUrl: "http://PW-internal-{run}"
      custom: "sk_live_PWcustom{run}"
      clusterRef: "0c3f6b1e-7d4a-4e2b-9f1a-2b3c4d5e6f70"
      host: "cce.ap-southeast-1.myhuaweicloud.com"
"#
    )
}

/// What must never be shown, for run `run`.
fn secrets(run: u32) -> Vec<String> {
    let mut all: Vec<String> = [
        "passwd",
        "pwd",
        "credentials",
        "auth",
        "dsn",
        "conn",
        "url",
        "env",
        "dbpass",
        "note",
        "internal",
    ]
    .iter()
    .map(|case| format!("PW-{case}-{run}"))
    .collect();
    all.push(format!("PWcustom{run}"));
    all.push(PEM_LINE[..40].to_owned());
    all.push(JWT.rsplit('.').next().unwrap()[..20].to_owned());
    all.push(TOKEN[..20].to_owned());
    all
}

/// What must stay readable.
const READABLE: [&str; 3] = [
    "0c3f6b1e-7d4a-4e2b-9f1a-2b3c4d5e6f70",
    "cce.ap-southeast-1.myhuaweicloud.com",
    "debug",
];

fn with_run_env(command: &mut std::process::Command, run: u32) {
    command
        .env("DB_PASS", format!("PW-dbpass-{run}"))
        .env("RELEASE_NOTE", format!("PW-note-{run}"));
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_nothing_secret(outputs: &[(String, String)], runs: &[u32]) {
    for (name, content) in outputs {
        for run in runs {
            for secret in secrets(*run) {
                assert!(
                    !content.contains(&secret),
                    "{name} shows a secret ({secret}):\n{content}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_masking_case_reaches_any_output() {
    let redact = ["--redact", "sk_live_[A-Za-z0-9]+"];
    // The simulator is seeded from the plan as `apply` would load it.
    let mut seed = flotilla::plan::load_source(
        Path::new("seed.yaml"),
        plan_yaml(NOWHERE, 1).as_bytes(),
        // Run 1's variables, so that the simulator's own rules know run 1's secrets.
        &|name| match name {
            "DB_PASS" => Some("PW-dbpass-1".to_owned()),
            "RELEASE_NOTE" => Some("PW-note-1".to_owned()),
            _ => None,
        },
    )
    .unwrap();
    let sim = start_sim(signing_sim_config(Duration::from_millis(20)), &mut seed).await;
    let dir = tempfile::tempdir().unwrap();
    let mut outputs: Vec<(String, String)> = Vec::new();

    // Run 1 is applied, so that run 2's `plan --diff` has old secrets to show, or not.
    for run in [1, 2] {
        let plan = dir.path().join(format!("plan-{run}.yaml"));
        std::fs::write(&plan, plan_yaml(&sim.base_url(), run)).unwrap();
        let mut commands: Vec<(String, Vec<String>)> = vec![
            ("plan".into(), vec!["plan".into()]),
            (
                "plan --format json".into(),
                vec!["plan".into(), "--format".into(), "json".into()],
            ),
            ("plan --diff".into(), vec!["plan".into(), "--diff".into()]),
            (
                "plan --diff --format json".into(),
                vec![
                    "plan".into(),
                    "--diff".into(),
                    "--format".into(),
                    "json".into(),
                ],
            ),
        ];
        if run == 1 {
            commands.push((
                "apply".into(),
                [
                    "apply",
                    "--progress",
                    "plain",
                    "--report-json",
                    "report-1.json",
                    "--junit",
                    "junit-1.xml",
                    "--summary-md",
                    "summary-1.md",
                ]
                .map(str::to_owned)
                .to_vec(),
            ));
        } else {
            commands.push((
                "apply --simulate".into(),
                [
                    "apply",
                    "--simulate",
                    "--sim-settle",
                    "10ms",
                    "--progress",
                    "plain",
                    "--journal",
                    "sim-journal.jsonl",
                    "--report-json",
                    "report-2.json",
                    "--junit",
                    "junit-2.xml",
                    "--summary-md",
                    "summary-2.md",
                ]
                .map(str::to_owned)
                .to_vec(),
            ));
        }
        for (name, args) in commands {
            let mut command = flotilla_with_credentials(dir.path());
            command
                .arg("-vvv")
                .arg(&args[0])
                .arg(&plan)
                .args(&args[1..])
                .args(redact);
            command.env("RUST_LOG", "trace");
            with_run_env(&mut command, run);
            let output = output_within(Duration::from_secs(60), command).await;
            assert_eq!(
                exit_code(&output),
                Some(0),
                "{name} (run {run}): {}",
                text(&output.stderr)
            );
            outputs.push((format!("{name} {run} stdout"), text(&output.stdout)));
            outputs.push((format!("{name} {run} stderr"), text(&output.stderr)));
        }
    }
    for file in [
        "report-1.json",
        "junit-1.xml",
        "summary-1.md",
        "report-2.json",
        "junit-2.xml",
        "summary-2.md",
        "sim-journal.jsonl",
    ] {
        outputs.push((file.to_owned(), read(&dir.path().join(file))));
    }
    // The simulator's state as `GET /_sim/state` shows it masks what the seed plan's rules
    // find; `--redact` was flotilla's flag, not the simulator's.
    let state = serde_json::to_string(&sim.state()).unwrap();
    for secret in secrets(1).iter().filter(|s| !s.starts_with("PWcustom")) {
        assert!(
            !state.contains(secret),
            "the simulator's state shows {secret}: {state}"
        );
    }

    // The secrets were sent: run 1's reached the simulator.
    let stored = serde_json::to_string(&sim.with_store(|store| store.snapshot())).unwrap();
    for secret in secrets(1) {
        assert!(stored.contains(&secret), "{secret} was sent");
    }
    assert_nothing_secret(&outputs, &[1, 2]);
    let plan_text = &outputs[0].1;
    for readable in READABLE {
        assert!(
            plan_text.contains(readable),
            "{readable} is readable:\n{plan_text}"
        );
    }
    assert!(
        plan_text.contains("LOG_LEVEL") && plan_text.contains("2.0.1"),
        "{plan_text}"
    );
    // `plan --diff` of run 2 compares with run 1's values: the image tag change is shown.
    let diff_2 = outputs
        .iter()
        .find(|(name, _)| name == "plan --diff 2 stdout")
        .unwrap();
    assert!(diff_2.1.contains("\"2.0.1\" -> \"2.0.2\""), "{}", diff_2.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hash_does_not_change_with_a_secret_variable() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(&plan, plan_yaml(NOWHERE, 1)).unwrap();
    let mut hashes = Vec::new();
    for run in [1, 2] {
        let mut command = flotilla(dir.path());
        command.args(["plan", "--format", "json"]).arg(&plan);
        with_run_env(&mut command, run);
        let output = output_within(Duration::from_secs(30), command).await;
        let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        hashes.push(doc["plan"]["sha256"].as_str().unwrap().to_owned());
    }
    assert_eq!(hashes[0], hashes[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_pattern_is_refused_with_its_position_or_as_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        plan_yaml(NOWHERE, 1).replace(r#"keys: ["^internal"]"#, r#"keys: ["^internal", "(x"]"#),
    )
    .unwrap();
    let mut command = flotilla(dir.path());
    command.arg("validate").arg(&plan);
    with_run_env(&mut command, 1);
    let output = output_within(Duration::from_secs(30), command).await;
    assert_eq!(exit_code(&output), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("plan.yaml:5:23: secrets.keys: `(x` is not a regular expression"),
        "{stderr}"
    );

    std::fs::write(&plan, plan_yaml(NOWHERE, 1)).unwrap();
    let mut command = flotilla(dir.path());
    command.arg("plan").arg(&plan).args(["--redact", "(x"]);
    let output = output_within(Duration::from_secs(30), command).await;
    assert_eq!(exit_code(&output), Some(2));
    assert!(
        text(&output.stderr).contains("not a regular expression"),
        "{}",
        text(&output.stderr)
    );
}
