//! The convergence decisions, function by function: whether a change landed, and the upgrade
//! and rollback decision tables.

use super::*;
use crate::cce::model::ReleaseParameters;
use crate::plan::resolved::RelativeRevision;
use serde_json::json;

fn chart(name: &str, version: &str) -> Chart {
    Chart {
        id: "c1".into(),
        name: name.into(),
        version: version.into(),
        ..Chart::default()
    }
}

fn release(version: i64, chart: (&str, &str), status: &str, values: Value) -> Release {
    Release {
        name: "web".into(),
        chart_name: Some(chart.0.into()),
        chart_version: Some(chart.1.into()),
        status: Some(ReleaseStatus::from(status)),
        values,
        version: Some(version),
        ..Release::default()
    }
}

fn upgrade(values: Value, reset_values: Option<bool>) -> UpdateReleaseBody {
    UpdateReleaseBody {
        chart_id: Some("c1".into()),
        action: Action::Upgrade,
        parameters: Some(ReleaseParameters {
            reset_values,
            ..ReleaseParameters::default()
        }),
        values: values.as_object().cloned(),
    }
}

fn reasons(d: &Decision) -> Vec<String> {
    match d {
        Decision::Change { reasons, .. } => reasons.clone(),
        _ => Vec::new(),
    }
}

#[test]
fn whether_a_change_landed_ignores_status_and_never_guesses() {
    let web = chart("web", "1.2.0");
    let body = upgrade(json!({"imageTag": "v2", "password": "s3cret"}), None);
    let now = |status: &str, tag: &str, password: &str| {
        release(
            4,
            ("web", "1.2.0"),
            status,
            json!({"imageTag": tag, "password": password, "other": 1}),
        )
    };
    let landed = |current: &Release, chart: DesiredChart<'_>| {
        change_landed(&body, chart, RollbackTarget::NotGiven, current)
    };
    let resolved = DesiredChart::Resolved(&web);
    assert_eq!(
        landed(&now("DEPLOYED", "v2", "s3cret"), resolved),
        Landed::Yes
    );
    assert_eq!(
        landed(&now("FAILED", "v2", "s3cret"), resolved),
        Landed::Yes,
        "a change that landed and failed is not sent again"
    );
    assert_eq!(
        landed(&now("DEPLOYED", "v1", "s3cret"), resolved),
        Landed::No
    );
    assert_eq!(
        landed(&now("DEPLOYED", "v2", MASK), resolved),
        Landed::CannotTell,
        "only a masked key could differ"
    );
    assert_eq!(landed(&now("DEPLOYED", "v1", MASK), resolved), Landed::No);
    let older = chart("web", "1.1.0");
    assert_eq!(
        landed(
            &now("DEPLOYED", "v2", "s3cret"),
            DesiredChart::Resolved(&older)
        ),
        Landed::No
    );
    let unresolved = DesiredChart::Unresolved {
        chart_id: "c1",
        error: "404",
    };
    assert_eq!(
        landed(&now("DEPLOYED", "v2", "s3cret"), unresolved),
        Landed::CannotTell
    );
}

#[test]
fn a_rollback_landed_only_when_the_target_revision_is_known_and_matches() {
    let body = UpdateReleaseBody {
        chart_id: None,
        action: Action::Rollback,
        parameters: Some(ReleaseParameters {
            release_version: Some(2),
            ..ReleaseParameters::default()
        }),
        values: None,
    };
    let target = release(2, ("web", "1.1.0"), "SUPERSEDED", json!({"imageTag": "v1"}));
    let rolled_back = release(4, ("web", "1.1.0"), "DEPLOYED", json!({"imageTag": "v1"}));
    let not_yet = release(3, ("web", "1.2.0"), "DEPLOYED", json!({"imageTag": "v2"}));
    let found = RollbackTarget::Found(&target);
    let none = DesiredChart::Kept;
    assert_eq!(change_landed(&body, none, found, &rolled_back), Landed::Yes);
    assert_eq!(change_landed(&body, none, found, &not_yet), Landed::No);
    for unknown in [
        RollbackTarget::NotGiven,
        RollbackTarget::Missing(2),
        RollbackTarget::Unreadable("500"),
    ] {
        assert_eq!(
            change_landed(&body, none, unknown, &rolled_back),
            Landed::CannotTell
        );
    }
}

#[test]
fn upgrade_decisions_table() {
    let web = chart("web", "1.2.0");
    // (case, desired values, reset_values, chart, current release, label, reason fragment)
    type Case<'c> = (
        &'c str,
        Value,
        Option<bool>,
        DesiredChart<'c>,
        Release,
        Convergence,
        &'c str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "identical",
            json!({"imageTag": "v2", "image": {"repo": "r"}}),
            None,
            DesiredChart::Resolved(&web),
            release(
                3,
                ("web", "1.2.0"),
                "DEPLOYED",
                json!({"imageTag": "v2", "image": {"repo": "r", "pull": "Always"}, "other": 1}),
            ),
            Convergence::Unchanged,
            "",
        ),
        (
            "no chart named: the release keeps its own",
            json!({"imageTag": "v2"}),
            None,
            DesiredChart::Kept,
            release(
                3,
                ("anything", "9.9.9"),
                "DEPLOYED",
                json!({"imageTag": "v2"}),
            ),
            Convergence::Unchanged,
            "",
        ),
        (
            "chart version differs",
            json!({"imageTag": "v2"}),
            None,
            DesiredChart::Resolved(&web),
            release(3, ("web", "1.1.0"), "DEPLOYED", json!({"imageTag": "v2"})),
            Convergence::Change,
            "chart web 1.1.0 -> web 1.2.0",
        ),
        (
            "chart name differs",
            json!({}),
            None,
            DesiredChart::Resolved(&web),
            release(3, ("webx", "1.2.0"), "DEPLOYED", json!({})),
            Convergence::Change,
            "chart webx 1.2.0 -> web 1.2.0",
        ),
        (
            "chart lookup failed",
            json!({}),
            None,
            DesiredChart::Unresolved {
                chart_id: "c1",
                error: "HTTP 404",
            },
            release(3, ("web", "1.2.0"), "DEPLOYED", json!({})),
            Convergence::Change,
            "chart c1 could not be resolved: HTTP 404",
        ),
        (
            "value changed",
            json!({"imageTag": "v3"}),
            None,
            DesiredChart::Resolved(&web),
            release(3, ("web", "1.2.0"), "DEPLOYED", json!({"imageTag": "v2"})),
            Convergence::Change,
            "values: imageTag changed",
        ),
        (
            "nested value changed, deep",
            json!({"resources": {"requests": {"cpu": "1"}}}),
            None,
            DesiredChart::Resolved(&web),
            release(
                3,
                ("web", "1.2.0"),
                "DEPLOYED",
                json!({"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}),
            ),
            Convergence::Change,
            "values: resources.requests.cpu changed",
        ),
        (
            "value added",
            json!({"replicas": 2}),
            None,
            DesiredChart::Resolved(&web),
            release(3, ("web", "1.2.0"), "DEPLOYED", json!({})),
            Convergence::Change,
            "values: replicas added",
        ),
        (
            "status failed",
            json!({"imageTag": "v2"}),
            None,
            DesiredChart::Resolved(&web),
            release(3, ("web", "1.2.0"), "FAILED", json!({"imageTag": "v2"})),
            Convergence::Change,
            "status FAILED (not DEPLOYED)",
        ),
        (
            "reset_values set",
            json!({"imageTag": "v2"}),
            Some(true),
            DesiredChart::Resolved(&web),
            release(
                3,
                ("web", "1.2.0"),
                "DEPLOYED",
                json!({"imageTag": "v2", "extra": 1}),
            ),
            Convergence::Change,
            "values: extra removed",
        ),
        (
            "reset_values false counts as not set",
            json!({"imageTag": "v2"}),
            Some(false),
            DesiredChart::Resolved(&web),
            release(
                3,
                ("web", "1.2.0"),
                "DEPLOYED",
                json!({"imageTag": "v2", "extra": 1}),
            ),
            Convergence::Unchanged,
            "",
        ),
        (
            "masked secret only: unknown",
            json!({"imageTag": "v2", "dbPassword": "hunter2"}),
            None,
            DesiredChart::Resolved(&web),
            release(
                3,
                ("web", "1.2.0"),
                "DEPLOYED",
                json!({"imageTag": "v2", "dbPassword": MASK}),
            ),
            Convergence::Unknown,
            "",
        ),
        (
            "masked secret and a real difference: change",
            json!({"imageTag": "v3", "dbPassword": "hunter2"}),
            None,
            DesiredChart::Resolved(&web),
            release(
                3,
                ("web", "1.2.0"),
                "DEPLOYED",
                json!({"imageTag": "v2", "dbPassword": MASK}),
            ),
            Convergence::Change,
            "values: imageTag changed",
        ),
    ];
    for (case, values, reset, chart, current, label, fragment) in cases {
        let body = upgrade(values, reset);
        let a = assess(&body, chart, RollbackTarget::NotGiven, &current);
        assert_eq!(a.decision.label(), label, "{case}: {:?}", a.decision);
        if !fragment.is_empty() {
            assert!(
                reasons(&a.decision).iter().any(|r| r == fragment),
                "{case}: {:?}",
                a.decision
            );
        }
    }
}

#[test]
fn masked_keys_are_named_and_sent_only_when_forced() {
    let web = chart("web", "1.2.0");
    let body = upgrade(
        json!({"db": {"password": "pw-s3cret"}, "apiKey": "key-s3cret"}),
        None,
    );
    let current = release(
        3,
        ("web", "1.2.0"),
        "DEPLOYED",
        json!({"db": {"password": MASK}, "apiKey": MASK}),
    );
    let a = assess_upgrade(&body, DesiredChart::Resolved(&web), &current);
    assert_eq!(
        a.decision,
        Decision::Unknown {
            masked_keys: vec!["db.password".into(), "apiKey".into()]
        }
    );
    assert!(!a.decision.sends(false));
    assert!(a.decision.sends(true));
    let note = a.decision.note();
    assert!(
        note.contains("db.password, apiKey") && note.contains("--force"),
        "{note}"
    );
    assert!(!note.contains("s3cret"), "{note}");
    assert!(!format!("{:?}", a.changes).contains("s3cret"));
}

#[test]
fn a_change_with_masked_keys_says_so() {
    let web = chart("web", "1.2.0");
    let body = upgrade(json!({"imageTag": "v3", "apiKey": "k"}), None);
    let current = release(
        3,
        ("web", "1.2.0"),
        "DEPLOYED",
        json!({"imageTag": "v2", "apiKey": MASK}),
    );
    let a = assess_upgrade(&body, DesiredChart::Resolved(&web), &current);
    assert!(a.decision.sends(false));
    assert_eq!(
        a.decision.note(),
        "change: values: imageTag changed; secret keys apiKey masked by the API, not compared"
    );
}

#[test]
fn upgrade_keeps_keys_the_plan_does_not_name_unless_reset() {
    let body = upgrade(json!({"a": 1}), None);
    let current = release(1, ("w", "1"), "DEPLOYED", json!({"a": 1, "b": 2}));
    let a = assess_upgrade(&body, DesiredChart::Kept, &current);
    assert!(a.changes.is_empty());
    let body = upgrade(json!({"a": 1}), Some(true));
    let a = assess_upgrade(&body, DesiredChart::Kept, &current);
    assert_eq!(a.changes.len(), 1);
    assert_eq!(a.changes[0].kind, ChangeKind::Removed);
}

#[test]
fn rollback_decisions_table() {
    let target = release(
        2,
        ("web", "1.1.0"),
        "DEPLOYED",
        json!({"imageTag": "v1", "a": {"b": 1}}),
    );
    let masked_target = release(
        2,
        ("web", "1.1.0"),
        "DEPLOYED",
        json!({"imageTag": "v1", "token": MASK}),
    );
    let cases: Vec<(&str, Release, RollbackTarget<'_>, Convergence, &str)> = vec![
        (
            "already at the target's content",
            release(
                4,
                ("web", "1.1.0"),
                "DEPLOYED",
                json!({"imageTag": "v1", "a": {"b": 1}}),
            ),
            RollbackTarget::Found(&target),
            Convergence::Unchanged,
            "",
        ),
        (
            "values differ",
            release(
                3,
                ("web", "1.1.0"),
                "DEPLOYED",
                json!({"imageTag": "v2", "a": {"b": 1}}),
            ),
            RollbackTarget::Found(&target),
            Convergence::Change,
            "values: imageTag changed",
        ),
        (
            "a key the target does not have is removed",
            release(
                3,
                ("web", "1.1.0"),
                "DEPLOYED",
                json!({"imageTag": "v1", "a": {"b": 1}, "c": 0}),
            ),
            RollbackTarget::Found(&target),
            Convergence::Change,
            "values: c removed",
        ),
        (
            "chart differs",
            release(
                3,
                ("web", "1.2.0"),
                "DEPLOYED",
                json!({"imageTag": "v1", "a": {"b": 1}}),
            ),
            RollbackTarget::Found(&target),
            Convergence::Change,
            "chart web 1.2.0 -> web 1.1.0",
        ),
        (
            "failed with the target's content",
            release(
                4,
                ("web", "1.1.0"),
                "FAILED",
                json!({"imageTag": "v1", "a": {"b": 1}}),
            ),
            RollbackTarget::Found(&target),
            Convergence::Change,
            "status FAILED (not DEPLOYED)",
        ),
        (
            "masked on both sides: unknown",
            release(
                4,
                ("web", "1.1.0"),
                "DEPLOYED",
                json!({"imageTag": "v1", "token": MASK}),
            ),
            RollbackTarget::Found(&masked_target),
            Convergence::Unknown,
            "",
        ),
        (
            "the target is the current revision: masks do not matter",
            release(
                2,
                ("web", "1.1.0"),
                "DEPLOYED",
                json!({"imageTag": "v1", "token": MASK}),
            ),
            RollbackTarget::Found(&masked_target),
            Convergence::Unchanged,
            "",
        ),
        (
            "no release_version",
            release(4, ("web", "1.1.0"), "DEPLOYED", json!({})),
            RollbackTarget::NotGiven,
            Convergence::Change,
            "no parameters.release_version to compare with",
        ),
        (
            "revision not in the history",
            release(4, ("web", "1.1.0"), "DEPLOYED", json!({})),
            RollbackTarget::Missing(9),
            Convergence::Change,
            "revision 9 is not in the release's history",
        ),
        (
            "history unreadable",
            release(4, ("web", "1.1.0"), "DEPLOYED", json!({})),
            RollbackTarget::Unreadable("HTTP 503"),
            Convergence::Change,
            "the release's history could not be read: HTTP 503",
        ),
    ];
    let body = UpdateReleaseBody {
        chart_id: None,
        action: Action::Rollback,
        parameters: Some(ReleaseParameters {
            release_version: Some(2),
            ..ReleaseParameters::default()
        }),
        values: None,
    };
    assert_eq!(rollback_version(&body), Some(2));
    for (case, current, target, label, fragment) in cases {
        let a = assess(&body, DesiredChart::Kept, target, &current);
        assert_eq!(a.decision.label(), label, "{case}: {:?}", a.decision);
        if !fragment.is_empty() {
            assert!(
                reasons(&a.decision).iter().any(|r| r == fragment),
                "{case}: {:?}",
                a.decision
            );
        }
    }
}

#[test]
fn rollback_masked_on_one_side_is_unknown_not_changed() {
    let target = release(
        2,
        ("w", "1"),
        "DEPLOYED",
        json!({"dbPassword": "plain-in-history"}),
    );
    let current = release(3, ("w", "1"), "DEPLOYED", json!({"dbPassword": MASK}));
    let a = assess_rollback(&current, RollbackTarget::Found(&target));
    assert_eq!(
        a.decision,
        Decision::Unknown {
            masked_keys: vec!["dbPassword".into()]
        }
    );
}

#[test]
fn previous_is_the_revision_before_the_current_one() {
    let history = [1, 2, 3, 4, 5];
    assert_eq!(
        resolve_relative(RelativeRevision::Previous, 5, &history),
        Ok(4)
    );
    assert_eq!(
        resolve_relative(RelativeRevision::Back(1), 5, &history),
        Ok(4)
    );
    assert_eq!(
        resolve_relative(RelativeRevision::Back(3), 5, &history),
        Ok(2)
    );
    // Per release: the same words name different revisions on different clusters.
    assert_eq!(
        resolve_relative(RelativeRevision::Previous, 2, &[1, 2]),
        Ok(1)
    );
}

#[test]
fn relative_revisions_skip_what_the_history_no_longer_has() {
    // Revisions 2 and 3 were pruned; the history order does not matter.
    let history = [6, 1, 4, 5];
    assert_eq!(
        resolve_relative(RelativeRevision::Previous, 6, &history),
        Ok(5)
    );
    assert_eq!(
        resolve_relative(RelativeRevision::Back(3), 6, &history),
        Ok(1)
    );
    // A current revision missing from the history (or later ones listed) changes nothing.
    assert_eq!(
        resolve_relative(RelativeRevision::Previous, 6, &[7, 5, 5]),
        Ok(5)
    );
}

#[test]
fn a_relative_revision_past_the_history_is_a_clear_error() {
    assert_eq!(
        resolve_relative(RelativeRevision::Previous, 1, &[1]),
        Err("release_version: previous: no revision before 1 in the release's history".to_owned())
    );
    assert_eq!(
        resolve_relative(RelativeRevision::Back(3), 3, &[1, 2, 3]),
        Err(
            "release_version: -3: the release's history has only 2 revision(s) before 3".to_owned()
        )
    );
    assert!(resolve_relative(RelativeRevision::Back(0), 3, &[1, 2, 3]).is_err());
}

/// A release as an answer that gives only its status (`DEPLOYED`): no revision, chart or values.
fn bare_deployed() -> Release {
    Release {
        status: Some(ReleaseStatus::Deployed),
        ..Release::default()
    }
}

#[test]
fn what_an_answer_does_not_give_is_never_judged_unchanged() {
    let web = chart("web", "1.2.0");
    let body = upgrade(json!({"imageTag": "v1"}), None);
    let mut current = release(3, ("web", "1.2.0"), "DEPLOYED", json!({"imageTag": "v1"}));
    assert_eq!(
        assess_upgrade(&body, DesiredChart::Resolved(&web), &current).decision,
        Decision::Unchanged
    );
    type Blank = fn(&mut Release);
    let cases: [(&str, Blank, &str); 4] = [
        (
            "no chart name",
            |r| r.chart_name = None,
            "chart not compared",
        ),
        (
            "no values",
            |r| r.values = Value::Null,
            "values not compared",
        ),
        ("no status", |r| r.status = None, "status not given"),
        ("nothing", |r| *r = bare_deployed(), "chart not compared"),
    ];
    for (name, blank, reason) in cases {
        let mut blanked = current.clone();
        blank(&mut blanked);
        let decision = assess_upgrade(&body, DesiredChart::Resolved(&web), &blanked).decision;
        let Decision::Change { reasons, .. } = &decision else {
            panic!("{name}: {decision:?}");
        };
        assert!(
            reasons.iter().any(|r| r.contains(reason)),
            "{name}: {reasons:?}"
        );
        assert_eq!(
            change_landed(
                &body,
                DesiredChart::Resolved(&web),
                RollbackTarget::NotGiven,
                &blanked
            ),
            if name == "no status" {
                Landed::Yes
            } else {
                Landed::CannotTell
            },
            "{name}: a landing is never guessed from what is not given"
        );
    }
    // A chart answer without name or version cannot be compared either.
    let nameless = chart("", "1.2.0");
    assert_eq!(
        change_landed(
            &body,
            DesiredChart::Resolved(&nameless),
            RollbackTarget::NotGiven,
            &current
        ),
        Landed::CannotTell
    );
    // A difference in what both sides give is a difference, whatever else is missing.
    current.chart_version = None;
    let other = chart("api", "1.2.0");
    assert_eq!(
        change_landed(
            &body,
            DesiredChart::Resolved(&other),
            RollbackTarget::NotGiven,
            &current
        ),
        Landed::No
    );
}

#[test]
fn a_rollback_target_is_missing_only_when_every_entry_gives_its_revision() {
    let one = release(1, ("web", "1.0.0"), "DEPLOYED", json!({}));
    let two = release(2, ("web", "1.1.0"), "DEPLOYED", json!({}));
    let history = vec![one.clone(), two.clone()];
    assert!(
        matches!(rollback_target(&history, 1), RollbackTarget::Found(r) if r.version == Some(1))
    );
    assert!(matches!(
        rollback_target(&history, 7),
        RollbackTarget::Missing(7)
    ));
    let mut unnumbered = two;
    unnumbered.version = None;
    let history = vec![one, unnumbered];
    assert!(matches!(
        rollback_target(&history, 1),
        RollbackTarget::Found(_)
    ));
    assert!(matches!(
        rollback_target(&history, 2),
        RollbackTarget::Unreadable(_)
    ));
    // A rollback judged against an unreadable target is a change, never unchanged.
    let current = release(2, ("web", "1.1.0"), "DEPLOYED", json!({}));
    let decision = assess_rollback(&current, rollback_target(&history, 2)).decision;
    assert_eq!(decision.label(), Convergence::Change, "{decision:?}");
}

#[test]
fn values_that_are_not_an_object_are_not_compared() {
    let web = chart("web", "1.2.0");
    let body = upgrade(json!({"imageTag": "v1"}), None);
    for values in [json!("imageTag=v1"), json!([1]), json!(7)] {
        let current = release(3, ("web", "1.2.0"), "DEPLOYED", values.clone());
        let landed = change_landed(
            &body,
            DesiredChart::Resolved(&web),
            RollbackTarget::NotGiven,
            &current,
        );
        assert_eq!(landed, Landed::CannotTell, "{values}");
        let decision = assess_upgrade(&body, DesiredChart::Resolved(&web), &current).decision;
        assert_eq!(decision.label(), Convergence::Change, "{values}");
    }
}
