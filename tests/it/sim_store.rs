//! The store's release semantics and state machine, under paused tokio time.

use std::time::Duration;

use crate::sim_support::{fleet, values_of};
use flotilla::cce::model::{Action, ReleaseParameters, ReleaseStatus, UpdateReleaseBody};
use flotilla::sim::store::{ReleaseKey, Store, codes, plausible_chart};
use serde_json::{Value, json};

fn seeded(settle: Duration) -> Store {
    let mut store = Store::new(settle);
    store.seed(&fleet());
    store
}

fn key(cluster: &str, name: &str) -> ReleaseKey {
    ReleaseKey::new(cluster, "web", name)
}

fn upgrade(values: Value) -> UpdateReleaseBody {
    UpdateReleaseBody {
        chart_id: Some("chart-fe".into()),
        action: Action::Upgrade,
        parameters: None,
        values: match values {
            Value::Object(map) => Some(map),
            _ => None,
        },
    }
}

fn rollback(to: Option<i64>) -> UpdateReleaseBody {
    UpdateReleaseBody {
        chart_id: None,
        action: Action::Rollback,
        parameters: Some(ReleaseParameters {
            release_version: to,
            ..Default::default()
        }),
        values: None,
    }
}

fn as_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

#[tokio::test(start_paused = true)]
async fn seeded_release_is_revision_one_deployed_with_the_plan_chart() {
    let mut store = seeded(Duration::from_secs(2));
    let release = store.show(&key("c1", "frontend")).unwrap();
    assert_eq!(release.version, Some(1));
    assert_eq!(release.status(), ReleaseStatus::Deployed);
    assert_eq!(release.cluster_name, "name-of-c1");
    let chart = store.chart("chart-fe").unwrap();
    assert_eq!(release.chart_name, Some(chart.name.clone()));
    assert_eq!(release.chart_version, Some(chart.version.clone()));
    assert_eq!(chart.name, "frontend");
    assert!(chart.version.split('.').count() == 3, "{}", chart.version);
}

#[tokio::test(start_paused = true)]
async fn upgrade_is_pending_for_the_settle_time_then_deployed() {
    let mut store = seeded(Duration::from_secs(2));
    let k = key("c1", "frontend");
    let outcome = store
        .update(&k, &upgrade(json!({"imageTag": "v2"})), false)
        .unwrap();
    assert!(outcome.applied);
    let answered = outcome.release.unwrap();
    assert_eq!(answered.version, Some(2));
    assert_eq!(answered.status(), ReleaseStatus::PendingUpgrade);

    tokio::time::advance(Duration::from_millis(1999)).await;
    assert_eq!(
        store.show(&k).unwrap().status(),
        ReleaseStatus::PendingUpgrade
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    let settled = store.show(&k).unwrap();
    assert_eq!(settled.status(), ReleaseStatus::Deployed);
    assert_eq!(values_of(&as_json(&settled)), json!({"imageTag": "v2"}));
}

#[tokio::test(start_paused = true)]
async fn a_put_while_pending_is_refused_with_409_and_changes_nothing() {
    let mut store = seeded(Duration::from_secs(2));
    let k = key("c1", "frontend");
    store
        .update(&k, &upgrade(json!({"imageTag": "v2"})), false)
        .unwrap();
    let refused = store
        .update(&k, &upgrade(json!({"imageTag": "v3"})), false)
        .unwrap_err();
    assert_eq!((refused.status, refused.code), (409, codes::RELEASE_BUSY));
    let state = store.snapshot();
    let release = state.release("c1", "web", "frontend").unwrap();
    assert_eq!(release.applied_puts, 1);
    assert_eq!(release.version, 2);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(
        store
            .update(&k, &upgrade(json!({"imageTag": "v3"})), false)
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn upgrade_merges_values_unless_reset_values() {
    let mut store = seeded(Duration::ZERO);
    let k = key("c1", "frontend");
    store
        .update(
            &k,
            &upgrade(json!({"imageTag": "v2", "db": {"host": "a", "port": 1}})),
            false,
        )
        .unwrap();
    store
        .update(
            &k,
            &upgrade(json!({"replicas": 3, "db": {"host": "b"}})),
            false,
        )
        .unwrap();
    let merged = values_of(&as_json(&store.show(&k).unwrap()));
    assert_eq!(
        merged,
        json!({"imageTag": "v2", "db": {"host": "b", "port": 1}, "replicas": 3})
    );
    let mut reset = upgrade(json!({"imageTag": "v9"}));
    reset.parameters = Some(ReleaseParameters {
        reset_values: Some(true),
        ..Default::default()
    });
    store.update(&k, &reset, false).unwrap();
    assert_eq!(
        values_of(&as_json(&store.show(&k).unwrap())),
        json!({"imageTag": "v9"})
    );
}

#[tokio::test(start_paused = true)]
async fn image_tag_starting_with_fail_always_fails_and_bad_luck_fails_too() {
    let mut store = seeded(Duration::from_secs(1));
    let k = key("c1", "frontend");
    store
        .update(&k, &upgrade(json!({"imageTag": "fail-v2"})), false)
        .unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    let failed = store.show(&k).unwrap();
    assert_eq!(failed.status(), ReleaseStatus::Failed);
    assert!(failed.status_description.contains("fail-v2"));

    let other = key("c1", "backend");
    store
        .update(&other, &upgrade(json!({"imageTag": "v2"})), true)
        .unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(store.show(&other).unwrap().status(), ReleaseStatus::Failed);
}

#[tokio::test(start_paused = true)]
async fn rollback_makes_a_new_revision_with_the_target_values() {
    let mut store = seeded(Duration::from_secs(1));
    let k = key("c1", "frontend");
    store
        .update(&k, &upgrade(json!({"imageTag": "v2"})), false)
        .unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    let answered = store.update(&k, &rollback(Some(1)), false).unwrap();
    let release = answered.release.unwrap();
    assert_eq!(release.version, Some(3));
    assert_eq!(release.status(), ReleaseStatus::PendingRollback);
    assert_eq!(values_of(&as_json(&release)), json!({}));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(store.show(&k).unwrap().status(), ReleaseStatus::Deployed);
    let history = store.history(&k).unwrap();
    assert_eq!(
        history.iter().map(|r| r.version).collect::<Vec<_>>(),
        vec![Some(1), Some(2), Some(3)]
    );
    assert_eq!(history[2].description, "Rollback to 1");
}

#[tokio::test(start_paused = true)]
async fn rollback_to_a_missing_revision_or_without_one_is_400() {
    let mut store = seeded(Duration::ZERO);
    let k = key("c1", "frontend");
    for body in [rollback(Some(7)), rollback(None)] {
        let refused = store.update(&k, &body, false).unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (400, codes::NO_SUCH_REVISION)
        );
    }
    assert_eq!(store.snapshot().applied_puts, 0);
}

#[tokio::test(start_paused = true)]
async fn dry_run_changes_nothing_and_is_not_counted() {
    let mut store = seeded(Duration::ZERO);
    let k = key("c1", "frontend");
    let mut body = upgrade(json!({"imageTag": "v2"}));
    body.parameters = Some(ReleaseParameters {
        dry_run: Some(true),
        ..Default::default()
    });
    let outcome = store.update(&k, &body, false).unwrap();
    assert!(!outcome.applied);
    assert_eq!(outcome.release.unwrap().version, Some(1));
    let state = store.snapshot();
    let release = state.release("c1", "web", "frontend").unwrap();
    assert_eq!((release.version, release.applied_puts), (1, 0));
    assert_eq!(release.status, ReleaseStatus::Deployed);
}

#[tokio::test(start_paused = true)]
async fn unknown_cluster_or_release_is_404() {
    let mut store = seeded(Duration::ZERO);
    let e = store.show(&key("nope", "frontend")).unwrap_err();
    assert_eq!((e.status, e.code), (404, codes::CLUSTER_NOT_FOUND));
    let e = store.show(&key("c1", "nope")).unwrap_err();
    assert_eq!((e.status, e.code), (404, codes::RELEASE_NOT_FOUND));
    let e = store
        .update(&key("c1", "nope"), &upgrade(json!({})), false)
        .unwrap_err();
    assert_eq!(e.status, 404);
    assert_eq!(store.list("nope", None, None).unwrap_err().status, 404);
    assert_eq!(
        store.chart("nope").unwrap_err().code,
        codes::CHART_NOT_FOUND
    );
}

#[tokio::test(start_paused = true)]
async fn secret_looking_values_are_masked_in_answers_but_kept_in_the_store() {
    let mut store = seeded(Duration::ZERO);
    let k = key("c1", "frontend");
    store
        .update(
            &k,
            &upgrade(json!({"dbPassword": "hunter2", "imageTag": "v2"})),
            false,
        )
        .unwrap();
    let shown = values_of(&as_json(&store.show(&k).unwrap()));
    assert_eq!(shown, json!({"dbPassword": "******", "imageTag": "v2"}));
    let raw = store.snapshot();
    let current = raw
        .release("c1", "web", "frontend")
        .unwrap()
        .current()
        .unwrap();
    assert_eq!(current.values["dbPassword"], json!("hunter2"));
    let masked = raw.redacted(&Default::default());
    let current = masked
        .release("c1", "web", "frontend")
        .unwrap()
        .current()
        .unwrap();
    assert_eq!(current.values["dbPassword"], json!("******"));
}

#[tokio::test(start_paused = true)]
async fn snapshot_round_trips_through_a_new_store_with_pending_changes_still_settling() {
    let mut store = seeded(Duration::from_secs(2));
    let k = key("c2", "frontend");
    store
        .update(&k, &upgrade(json!({"imageTag": "fail-x"})), false)
        .unwrap();
    tokio::time::advance(Duration::from_millis(500)).await;
    let snapshot = store.snapshot();
    let text = serde_json::to_string(&snapshot).unwrap();
    let mut restored =
        Store::from_snapshot(serde_json::from_str(&text).unwrap(), Duration::from_secs(2));
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!(
        restored.show(&k).unwrap().status(),
        ReleaseStatus::PendingUpgrade
    );
    tokio::time::advance(Duration::from_millis(1500)).await;
    assert_eq!(restored.show(&k).unwrap().status(), ReleaseStatus::Failed);
}

#[tokio::test(start_paused = true)]
async fn list_filters_by_namespace_and_chart_and_upgrade_to_a_new_chart_needs_it_known() {
    let mut store = seeded(Duration::ZERO);
    assert_eq!(store.list("c1", None, None).unwrap().len(), 2);
    assert_eq!(
        store
            .list("c1", Some("web"), Some("chart-be"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.list("c1", Some("other"), None).unwrap().len(), 0);
    let mut body = upgrade(json!({}));
    body.chart_id = Some("chart-fe-2".into());
    // A chart the store does not know is refused, as the service refuses it: no invented chart.
    let refused = store
        .update(&key("c1", "frontend"), &body, false)
        .unwrap_err();
    assert_eq!(
        (refused.status, refused.code),
        (404, codes::CHART_NOT_FOUND)
    );
    assert!(store.chart("chart-fe-2").is_err());
    assert_eq!(store.snapshot().applied_puts, 0);
    store.insert_chart(plausible_chart(
        "chart-fe-2",
        "frontend",
        "2024-01-01T00:00:00Z",
    ));
    let release = store
        .update(&key("c1", "frontend"), &body, false)
        .unwrap()
        .release
        .unwrap();
    let chart = store.chart("chart-fe-2").unwrap();
    assert_eq!(
        (
            release.chart_name.as_deref().unwrap_or(""),
            release.chart_version.as_deref().unwrap_or("")
        ),
        (chart.name.as_str(), chart.version.as_str())
    );
    assert_eq!(chart.name, "frontend");
}

/// `applied_puts` proves that no release was changed twice: deleting a release and creating it
/// again must not hide its first change, and a restart from the state file keeps the count.
#[tokio::test(start_paused = true)]
async fn the_applied_count_never_goes_down() {
    let mut store = seeded(Duration::ZERO);
    let k = key("c1", "frontend");
    store
        .update(&k, &upgrade(json!({"imageTag": "v2"})), false)
        .unwrap();
    assert_eq!(store.snapshot().applied_puts, 1);
    store.delete(&k).unwrap();
    assert_eq!(
        store.snapshot().applied_puts,
        1,
        "a delete does not lower it"
    );
    let again: flotilla::sim::store::CreateReleaseBody = serde_json::from_value(json!({
        "chart_id": store.snapshot().charts[0].id,
        "name": "frontend",
        "namespace": k.namespace,
    }))
    .unwrap();
    store.create(&k.cluster_id, again, false).unwrap();
    assert_eq!(store.snapshot().applied_puts, 2);
    let mut restored = Store::from_snapshot(store.snapshot(), Duration::ZERO);
    assert_eq!(restored.snapshot().applied_puts, 2);
}
