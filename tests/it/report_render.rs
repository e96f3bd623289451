//! The report's four renderings, snapshotted, and the JSON document checked against its schema.

use flotilla::engine::Verdict;
use flotilla::report::model::*;
use flotilla::report::{render, write};

fn op(index: usize, cluster: &str, name: &str, wave: &str, outcome: Outcome) -> OperationReport {
    OperationReport {
        index,
        cluster: ClusterInfo {
            name: cluster.into(),
            id: format!("0f6b1c2e-5dc7-11ee-bf71-0255ac10000{index}"),
        },
        namespace: "shop".into(),
        name: name.into(),
        action: "upgrade".into(),
        wave: wave.into(),
        outcome,
        final_status: None,
        version_before: None,
        version_after: None,
        release_version: None,
        attempts: vec![],
        change_sent: false,
        change_applied: false,
        reconciled: false,
        rollback: None,
        duration_ms: 0,
        error: None,
        skip_reason: None,
        note: None,
    }
}

fn put(status: Option<u16>, code: Option<&str>, delay_ms: u64) -> AttemptReport {
    let kind = match status {
        Some(200) => AttemptKind::Ok,
        Some(429) => AttemptKind::Throttled,
        Some(_) => AttemptKind::ServerError,
        None => AttemptKind::TimedOut,
    };
    AttemptReport {
        request: "put".into(),
        kind,
        status,
        code: code.map(Into::into),
        request_id: code.map(|_| "req-0041".into()),
        throttled: status == Some(429),
        message: match kind {
            AttemptKind::Ok => None,
            AttemptKind::Throttled => {
                Some("HTTP 429: The throttling threshold has been reached".into())
            }
            _ => Some("timed out waiting for the answer".into()),
        },
        delay_ms,
    }
}

fn sample() -> RunReport {
    let mut ok = op(0, "canary-1", "magento", "canary", Outcome::Succeeded);
    ok.version_before = Some(1);
    ok.version_after = Some(2);
    ok.final_status = Some("DEPLOYED".into());
    ok.attempts = vec![put(Some(200), None, 0)];
    ok.duration_ms = 2150;

    let mut flaky = op(1, "prod-eu-1", "magento", "prod", Outcome::Succeeded);
    flaky.version_before = Some(4);
    flaky.version_after = Some(5);
    flaky.final_status = Some("DEPLOYED".into());
    flaky.attempts = vec![
        put(Some(429), Some("APIG.0308"), 0),
        put(None, None, 800),
        AttemptReport {
            request: "get".into(),
            kind: AttemptKind::Ok,
            status: Some(200),
            code: None,
            request_id: None,
            throttled: false,
            message: None,
            delay_ms: 0,
        },
    ];
    flaky.reconciled = true;
    flaky.duration_ms = 4321;

    let mut failed = op(2, "prod-eu-2", "mysql", "prod", Outcome::Failed);
    failed.version_before = Some(7);
    failed.version_after = Some(8);
    failed.final_status = Some("FAILED".into());
    failed.attempts = vec![put(Some(200), None, 0)];
    failed.change_sent = true;
    failed.change_applied = true;
    failed.error = Some(ErrorReport {
        code: Some("FLOTILLA.DEPLOY_FAILED".into()),
        message: "release reached FAILED".into(),
        request_id: Some("req-0042".into()),
    });
    failed.rollback = Some(RollbackReport {
        outcome: Outcome::Succeeded,
        attempts: vec![put(Some(200), None, 0)],
        to_version: Some(7),
        final_status: Some("DEPLOYED".into()),
        error: None,
    });
    failed.duration_ms = 9000;

    let mut skipped = op(3, "prod-us-1", "mysql", "prod", Outcome::Skipped);
    skipped.skip_reason = Some("halted: wave prod exceeded max_failures 0".into());
    let mut cancelled = op(4, "prod-us-2", "mysql", "prod", Outcome::Cancelled);
    cancelled.skip_reason = Some("interrupted".into());
    let mut unchanged = op(5, "prod-us-3", "redis", "prod", Outcome::Unchanged);
    unchanged.version_before = Some(3);
    unchanged.version_after = Some(3);
    unchanged.note = Some("chart and values already as planned".into());

    let operations = vec![ok, flaky, failed, skipped, cancelled, unchanged];
    RunReport {
        format_version: FORMAT_VERSION,
        flotilla_version: "0.1.0".into(),
        plan: PlanInfo {
            name: "magento-v2".into(),
            hash: "a".repeat(64),
            shard: Some("1/2".into()),
            waves: Vec::new(),
            max_failures: None,
        },
        started_at: "2026-11-26T10:00:00Z".into(),
        finished_at: "2026-11-26T10:00:12.3Z".into(),
        duration_ms: 12_300,
        settings: serde_json::json!({"concurrency": 16}),
        summary: Summary::of(&operations),
        halted: Some("wave prod exceeded max_failures 0".into()),
        interrupted: false,
        credentials_refused: None,
        missing_shards: Vec::new(),
        incomplete: false,
        operations,
    }
}

#[test]
fn summary_counts_every_outcome() {
    let report = sample();
    assert_eq!(
        report.summary,
        Summary {
            total: 6,
            succeeded: 2,
            unchanged: 1,
            failed: 1,
            skipped: 1,
            cancelled: 1
        }
    );
    assert_eq!(
        render::summary_line(&report.summary, report.duration_ms),
        "2 succeeded, 1 unchanged, 1 failed, 1 skipped, 1 cancelled in 12.3s"
    );
    // Zeros are shown too: the line always has the same fields.
    assert_eq!(
        render::summary_line(&Summary::default(), 0),
        "0 succeeded, 0 unchanged, 0 failed, 0 skipped, 0 cancelled in 0.0s"
    );
}

#[test]
fn table_snapshot() {
    insta::assert_snapshot!(render::table(&sample(), Some(140)));
}

#[test]
fn table_fits_a_narrow_terminal() {
    let text = render::table(&sample(), Some(80));
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "too wide: {line}");
    }
}

#[test]
fn markdown_snapshot_lists_failures_first() {
    let md = render::markdown(&sample());
    let failures = md.find("### Failures").expect("failures section");
    let all = md.find("All operations").expect("all operations");
    assert!(failures < all);
    insta::assert_snapshot!(md);
}

#[test]
fn junit_snapshot_parses_back_with_one_suite_per_wave() {
    let xml = render::junit(&sample());
    let parsed = quick_junit::Report::deserialize_from_str(&xml).expect("valid JUnit");
    let suites: Vec<_> = parsed
        .test_suites
        .iter()
        .map(|s| (s.name.to_string(), s.test_cases.len()))
        .collect();
    assert_eq!(
        suites,
        vec![("canary".to_string(), 1), ("prod".to_string(), 5)]
    );
    let prod = &parsed.test_suites[1];
    assert_eq!(prod.failures, 1);
    let flaky = &prod.test_cases[0];
    assert!(matches!(
        &flaky.status,
        quick_junit::TestCaseStatus::Success { flaky_runs } if flaky_runs.len() == 2
    ));
    assert!(xml.contains("req-0042"));
    insta::assert_snapshot!(xml);
}

#[test]
fn json_report_matches_its_schema_and_round_trips() {
    let report = sample();
    let value = serde_json::to_value(&report).unwrap();
    crate::e2e_support::assert_valid_report(&value);
    let back: RunReport = serde_json::from_value(value).unwrap();
    assert_eq!(back, report);
    insta::assert_json_snapshot!(report);
}

#[test]
fn merge_joins_shards_in_plan_order_and_recounts() {
    let whole = sample();
    let mut a = whole.clone();
    let mut b = whole.clone();
    a.operations.retain(|op| op.index % 2 == 0);
    b.operations.retain(|op| op.index % 2 == 1);
    a.plan.shard = Some("1/2".into());
    b.plan.shard = Some("2/2".into());
    let merged = write::merge(vec![("b.json".into(), b), ("a.json".into(), a)]).unwrap();
    assert_eq!(merged.operations, whole.operations);
    assert_eq!(merged.summary, whole.summary);
    assert_eq!(merged.plan.shard, None);
    assert!(merged.missing_shards.is_empty());
}

fn shard(k: u32, n: u32) -> RunReport {
    let mut report = sample();
    report
        .operations
        .retain(|op| op.index % n as usize == (k - 1) as usize);
    report.plan.shard = Some(format!("{k}/{n}"));
    report
}

/// Shards selected differently, or some rehearsed and some real, are not one run: refused, and a
/// report of another plan is named as such whatever else differs.
#[test]
fn merge_refuses_shards_of_different_runs() {
    let mut rehearsed = shard(2, 2);
    rehearsed.settings["simulate"] = serde_json::json!(true);
    let error = write::merge(vec![
        ("1.json".into(), shard(1, 2)),
        ("2.json".into(), rehearsed),
    ])
    .unwrap_err()
    .to_string();
    assert!(error.contains("2.json: `simulate` is true"), "{error}");

    let mut narrower = shard(2, 2);
    narrower.settings["select"] = serde_json::json!(["release=storefront"]);
    let error = write::merge(vec![
        ("1.json".into(), shard(1, 2)),
        ("2.json".into(), narrower),
    ])
    .unwrap_err()
    .to_string();
    assert!(error.contains("`select`"), "{error}");

    let mut other_plan = shard(2, 2);
    other_plan.plan.hash = "0".repeat(64);
    other_plan.plan.shard = Some("1/2".into());
    let error = write::merge(vec![
        ("1.json".into(), shard(1, 2)),
        ("2.json".into(), other_plan),
    ])
    .unwrap_err();
    assert!(
        matches!(error, write::ReportError::DifferentPlan { .. }),
        "{error}"
    );
}

/// A CI gate on a merged report must not pass with a shard's report missing.
#[test]
fn merge_lists_missing_shards_and_does_not_count_as_success() {
    let merged = write::merge(vec![("1.json".into(), shard(1, 3))]).unwrap();
    assert_eq!(merged.missing_shards, ["2/3", "3/3"]);
    assert_eq!(merged.verdict(), Verdict::Failed);
    assert!(render::markdown(&merged).contains("2/3, 3/3"));
    assert!(render::table(&merged, Some(120)).contains("2/3, 3/3"));
    let junit = quick_junit::Report::deserialize_from_str(&render::junit(&merged)).unwrap();
    let missing = junit
        .test_suites
        .iter()
        .find(|s| s.name.as_str() == "missing shards");
    assert_eq!(missing.expect("a suite for them").test_cases.len(), 2);
    // Merging the merge again does not forget what it lacks.
    let again = write::merge(vec![("merged.json".into(), merged)]).unwrap();
    assert_eq!(again.missing_shards, ["2/3", "3/3"]);
    assert!(again.incomplete);
}

/// Every operation of the shards given succeeded, yet a shard is missing: no format may show
/// the merge as a success, and it carries no one shard's settings.
#[test]
fn a_merge_missing_a_shard_is_incomplete_in_every_format() {
    let given = |k: u32| {
        let mut report = shard(k, 4);
        for op in &mut report.operations {
            op.outcome = Outcome::Succeeded;
            op.error = None;
            op.skip_reason = None;
        }
        report.summary = Summary::of(&report.operations);
        report.halted = None;
        report.settings["shard"] = serde_json::json!(format!("{k}/4"));
        report
    };
    let merged = write::merge(vec![
        ("3.json".into(), given(3)),
        ("1.json".into(), given(1)),
    ])
    .unwrap();
    assert!(merged.summary.all_succeeded(), "{:?}", merged.summary);
    assert_eq!(merged.verdict(), Verdict::Failed);

    let json = serde_json::to_value(&merged).unwrap();
    assert_eq!(json["incomplete"], true);
    assert_eq!(json["missing_shards"], serde_json::json!(["2/4", "4/4"]));
    assert_eq!(json["plan"].get("shard"), None);
    assert_eq!(
        json["settings"].get("shard"),
        None,
        "no one shard's settings"
    );
    assert_eq!(
        json["settings"]["shards"],
        serde_json::json!(["1/4", "3/4"])
    );
    // The schema knows `incomplete`.
    crate::e2e_support::assert_valid_report(&json);

    let markdown = render::markdown(&merged);
    let headline = markdown.lines().find(|l| l.contains("succeeded")).unwrap();
    assert!(headline.starts_with("❌ **incomplete:** "), "{headline}");
    assert!(!markdown.contains('✅'), "{markdown}");

    let table = render::table(&merged, Some(120));
    assert!(
        table.contains("incomplete: shards missing: 2/4, 4/4"),
        "{table}"
    );

    let junit = quick_junit::Report::deserialize_from_str(&render::junit(&merged)).unwrap();
    assert_eq!(junit.failures, 2, "one failed test case per missing shard");

    // A complete merge is none of this.
    let whole = write::merge((1..=4).map(|k| (format!("{k}.json"), given(k))).collect()).unwrap();
    assert!(!whole.incomplete);
    assert_eq!(whole.verdict(), Verdict::Succeeded);
    assert_eq!(
        serde_json::to_value(&whole).unwrap().get("incomplete"),
        None
    );
    assert!(render::markdown(&whole).contains("✅ 6 succeeded"));
    assert_eq!(
        whole.settings["shards"],
        serde_json::json!(["1/4", "2/4", "3/4", "4/4"])
    );
}

#[test]
fn merge_refuses_a_shard_twice_a_whole_run_with_shards_and_mixed_splits() {
    let twice = write::merge(vec![
        ("a.json".into(), shard(1, 2)),
        ("b.json".into(), shard(1, 2)),
    ]);
    assert_eq!(
        twice.unwrap_err().to_string(),
        "a.json and b.json are both shard 1/2"
    );
    let mut unsharded = sample();
    unsharded.plan.shard = None;
    let whole = write::merge(vec![
        ("w.json".into(), unsharded),
        ("b.json".into(), shard(2, 2)),
    ]);
    assert!(
        whole
            .unwrap_err()
            .to_string()
            .contains("count their operations twice")
    );
    let mixed = write::merge(vec![
        ("a.json".into(), shard(1, 2)),
        ("b.json".into(), shard(2, 3)),
    ]);
    assert!(mixed.unwrap_err().to_string().contains("not one split"));
}

#[test]
fn merge_refuses_reports_of_different_plans() {
    let a = shard(1, 2);
    let mut b = shard(2, 2);
    b.plan.hash = "b".repeat(64);
    let err = write::merge(vec![("a.json".into(), a), ("b.json".into(), b)]).unwrap_err();
    assert!(err.to_string().contains("b.json"), "{err}");
}

#[test]
fn atomic_write_replaces_the_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/report.json");
    write::write_atomically(&path, b"first").unwrap();
    write::write_atomically(&path, b"second").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file left behind");
}

#[test]
fn a_large_run_lists_only_the_operations_that_need_a_look() {
    let mut report = sample();
    let template = report.operations[0].clone();
    report.operations = (0..render::TERMINAL_TABLE_ROWS + 50)
        .map(|index| OperationReport {
            index,
            ..template.clone()
        })
        .collect();
    report.operations[7].outcome = Outcome::Failed;
    report.summary = Summary::of(&report.operations);
    let text = render::terminal_table(&report, Some(140));
    assert_eq!(text.matches("canary-1").count(), 1, "{text}");
    assert!(
        text.contains("249 operations that succeeded are not listed"),
        "{text}"
    );
    assert!(
        text.contains("249 succeeded, 0 unchanged, 1 failed, 0 skipped, 0 cancelled in 12.3s"),
        "{text}"
    );
    let small = render::terminal_table(&sample(), Some(140));
    assert_eq!(small, render::table(&sample(), Some(140)));
}

/// A shard stopped by a refused credential makes the merged report say so, and exit 2.
#[test]
fn a_refused_credential_in_any_shard_is_the_merged_reports_verdict() {
    let refusal = flotilla::engine::CredentialRefusal {
        endpoint: "https://cce.cn-north-4.myhuaweicloud.com".into(),
        failure: flotilla::cce::error::CredentialFailure::Authentication,
        status: 401,
        code: Some("APIG.0301".into()),
        message: Some("Incorrect IAM authentication information".into()),
        request_id: Some("req-1".into()),
    };
    let mut refused = shard(2, 2);
    refused.credentials_refused = Some(refusal.clone());
    let merged = write::merge(vec![
        ("1.json".into(), shard(1, 2)),
        ("2.json".into(), refused),
    ])
    .unwrap();
    assert_eq!(merged.credentials_refused, Some(refusal));
    assert_eq!(merged.verdict(), Verdict::CredentialsRefused);
    let table = render::table(&merged, None);
    assert!(
        table.contains("halted: credentials refused by https://cce.cn-north-4.myhuaweicloud.com"),
        "{table}"
    );
    assert!(render::markdown(&merged).contains("**Credentials refused:** refused by https://cce"));
    let value = serde_json::to_value(&merged).unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schema/report.schema.json")).unwrap();
    assert!(jsonschema::is_valid(&schema, &value), "{value:#}");
    // An interrupt still wins: 130 says the run did not get to finish.
    let mut interrupted = merged.clone();
    interrupted.interrupted = true;
    assert_eq!(interrupted.verdict(), Verdict::Interrupted);
}

// ---------------------------------------------------------------- the gate of `report merge`

/// Shard `k` of 2 of wave `gold` (`max_failures` given), holding `outcomes` in turn, indexes
/// interleaved with the other shard's; the plan's next wave is `silver`, after a 2m soak.
fn gold_shard(k: usize, budget: Option<FailureBudget>, outcomes: &[Outcome]) -> RunReport {
    let mut report = sample();
    report.operations = outcomes
        .iter()
        .enumerate()
        .map(|(i, outcome)| op(i * 2 + k - 1, &format!("gold-{k}"), "web", "gold", *outcome))
        .collect();
    report.summary = Summary::of(&report.operations);
    report.halted = None;
    report.plan.shard = Some(format!("{k}/2"));
    report.plan.max_failures = Some(FailureBudget::Count(100));
    report.plan.waves = vec![WaveGate {
        name: "gold".into(),
        max_failures: budget,
        soak_ms: 120_000,
        next_wave: Some("silver".into()),
    }];
    report
}

fn gate_of(shards: Vec<RunReport>) -> write::Gate {
    let named = shards
        .into_iter()
        .enumerate()
        .map(|(i, r)| (format!("gold-{}.json", i + 1), r))
        .collect();
    write::gate(&write::merge(named).unwrap()).expect("the reports carry their waves")
}

use Outcome::{Failed, Skipped, Succeeded};
use flotilla::plan::resolved::FailureBudget;

#[test]
fn a_waves_budget_holds_over_all_its_shards_not_per_shard() {
    // One failure in each shard: within a budget of 1 in each, not in the wave's.
    let budget = Some(FailureBudget::Count(1));
    let gate = gate_of(vec![
        gold_shard(1, budget, &[Succeeded, Failed]),
        gold_shard(2, budget, &[Failed, Succeeded]),
    ]);
    assert!(!gate.passed());
    assert_eq!(
        gate.waves[0].to_string(),
        "wave `gold` failed: 2 of 4 failed, over its max_failures 1"
    );
    assert_eq!(gate.soak, None, "a failed wave is not soaked");

    let budget = Some(FailureBudget::Percent(50.0));
    let gate = gate_of(vec![
        gold_shard(1, budget, &[Succeeded, Failed]),
        gold_shard(2, budget, &[Failed, Succeeded]),
    ]);
    assert!(gate.passed(), "{gate:?}");
    assert_eq!(
        gate.waves[0].to_string(),
        "wave `gold` passed: 2 of 4 failed (max 50%)"
    );
    assert_eq!(
        gate.soak.expect("a passed wave soaks").to_string(),
        "soaking 2m after wave `gold` before wave `silver` may start (the plan's soak)"
    );
}

#[test]
fn a_gate_fails_on_the_runs_budget_an_operation_not_run_or_a_missing_shard() {
    let mut shard_one = gold_shard(1, None, &[Failed, Succeeded]);
    shard_one.plan.max_failures = Some(FailureBudget::Count(0));
    let gate = gate_of(vec![shard_one, gold_shard(2, None, &[Succeeded])]);
    assert!(gate.waves[0].failure.is_none());
    assert_eq!(gate.problems, ["the run's max_failures 0: 1 of 3 failed"]);

    let gate = gate_of(vec![
        gold_shard(1, None, &[Succeeded, Skipped]),
        gold_shard(2, None, &[Succeeded]),
    ]);
    assert_eq!(
        gate.waves[0].failure.as_deref(),
        Some("1 of 3 operation(s) not run (skipped by a halt, or cancelled)")
    );

    let gate = gate_of(vec![gold_shard(1, None, &[Succeeded])]);
    assert_eq!(
        gate.problems,
        ["shard(s) 2/2 (gold) missing: their operations are not in the reports merged"]
    );
}

#[test]
fn the_last_wave_is_not_soaked_and_a_report_without_waves_has_no_gate() {
    let mut last = gold_shard(1, None, &[Succeeded]);
    last.plan.shard = None;
    last.plan.waves[0].next_wave = None;
    let gate = write::gate(&write::merge(vec![("last.json".into(), last)]).unwrap()).unwrap();
    assert!(gate.passed());
    assert_eq!(gate.soak, None);
    assert!(write::gate(&sample()).is_none());
}

#[test]
fn gates_of_different_waves_merge_and_one_wave_twice_is_refused() {
    let gold = write::merge(vec![
        ("gold-1.json".into(), gold_shard(1, None, &[Succeeded])),
        ("gold-2.json".into(), gold_shard(2, None, &[Succeeded])),
    ])
    .unwrap();
    let mut silver = gold_shard(1, None, &[Succeeded]);
    silver.plan.shard = Some("1/1".into());
    silver.plan.waves[0].name = "silver".into();
    silver.plan.waves[0].next_wave = None;
    for op in &mut silver.operations {
        op.index += 10;
        op.wave = "silver".into();
    }
    let both = write::merge(vec![
        ("silver-1.json".into(), silver),
        ("gold.json".into(), gold.clone()),
    ])
    .unwrap();
    let names: Vec<&str> = both.plan.waves.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["gold", "silver"], "in plan order");
    assert!(write::gate(&both).unwrap().passed());

    let twice = write::merge(vec![
        ("gold.json".into(), gold),
        ("gold-1.json".into(), gold_shard(1, None, &[Succeeded])),
    ]);
    assert!(
        twice
            .unwrap_err()
            .to_string()
            .contains("count their operations twice"),
    );
}

#[test]
fn a_version_1_report_still_reads_and_a_merge_writes_version_2() {
    let mut v1 = serde_json::to_value(sample()).unwrap();
    v1["format_version"] = serde_json::json!(1);
    v1["plan"]["shard"] = serde_json::Value::Null;
    let attempt = &mut v1["operations"][1]["attempts"][0];
    let object = attempt.as_object_mut().unwrap();
    for key in ["kind", "code", "request_id", "throttled", "message"] {
        object.remove(key);
    }
    object.insert("error_code".into(), serde_json::json!("APIG.0308"));
    v1["operations"][2]["rollback"]
        .as_object_mut()
        .unwrap()
        .remove("attempts");
    let read: RunReport = serde_json::from_value(v1).unwrap();
    let attempt = &read.operations[1].attempts[0];
    assert_eq!(attempt.code.as_deref(), Some("APIG.0308"));
    assert_eq!(attempt.kind, AttemptKind::Unrecorded);
    let merged = write::merge(vec![("v1.json".into(), read)]).unwrap();
    assert_eq!(merged.format_version, FORMAT_VERSION);
    assert_eq!(FORMAT_VERSION, 2);
}
