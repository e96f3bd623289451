//! Loading and expanding plans through the library API: defaults, waves, order, selectors,
//! shards, and the 100,000-operation budget.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use flotilla::cce::model::Action;
use flotilla::plan::resolved::{ExpandedPlan, FailureBudget};
use flotilla::plan::select::{Selector, Shard, filter};
use flotilla::plan::{LoadError, load_path, load_source};
use proptest::prelude::*;

fn no_vars(_: &str) -> Option<String> {
    None
}

fn load(text: &str) -> Result<ExpandedPlan, LoadError> {
    load_source(Path::new("test.yaml"), text.as_bytes(), &no_vars)
}

const FLEET: &str = r#"
version: 1
target: { region: cn-north-4, project_id: p1 }
clusters:
  c1: { id: 00000000-0000-0000-0000-000000000001, labels: { env: staging } }
  p1: { id: 00000000-0000-0000-0000-000000000002, labels: { env: prod } }
  p2: { id: 00000000-0000-0000-0000-000000000003, labels: { env: prod }, region: eu-west-101, project_id: p2 }
  dev: { id: 00000000-0000-0000-0000-000000000004, labels: { env: dev }, endpoint: "http://127.0.0.1:9999/" }
defaults:
  chart_id: af4b699e-018c-11ec-b8b0-0255ac100b05
  parameters: { no_hooks: true, dry_run: false }
  values: { imagePullPolicy: IfNotPresent, image: { repo: r, tag: v1 }, replicas: 2 }
rollout:
  concurrency: 4
  waves:
    - { name: canary, select: { clusters: [c1] }, soak: 2m }
    - { name: prod, select: { labels: { env: prod } }, max_failures: "10%" }
releases:
  - name: web
    namespace: shop
    selector: { labels: {} }
    values: { image: { tag: v2 }, dbPassword: hunter2 }
  - name: db
    namespace: data
    clusters: [p2, p1]
    action: rollback
    parameters: { release_version: 3 }
    rollback_on_failure: true
"#;

#[test]
fn defaults_deep_merge_into_each_release_body() {
    let plan = load(FLEET).expect("valid");
    let web = plan.operations().find(|o| o.release == "web").unwrap();
    let body = serde_json::to_value(&*web.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "chart_id": "af4b699e-018c-11ec-b8b0-0255ac100b05",
            "action": "upgrade",
            "parameters": {"dry_run": false, "no_hooks": true},
            "values": {"imagePullPolicy": "IfNotPresent", "image": {"repo": "r", "tag": "v2"}, "replicas": 2, "dbPassword": "hunter2"}
        })
    );
    let db = plan.operations().find(|o| o.release == "db").unwrap();
    assert_eq!(db.action, Action::Rollback);
    assert!(db.rollback_on_failure);
    let params = db.body.parameters.as_ref().unwrap();
    assert_eq!(params.release_version, Some(3));
    assert_eq!(params.no_hooks, Some(true));
}

#[test]
fn operations_of_one_release_share_one_body() {
    let plan = load(FLEET).unwrap();
    let webs: Vec<_> = plan.operations().filter(|o| o.release == "web").collect();
    assert_eq!(webs.len(), 4);
    assert!(
        webs.windows(2)
            .all(|w| std::sync::Arc::ptr_eq(&w[0].body, &w[1].body))
    );
}

#[test]
fn clusters_resolve_endpoint_region_and_project() {
    let plan = load(FLEET).unwrap();
    let cluster = |name: &str| {
        plan.operations()
            .find(|o| o.cluster.name == name)
            .unwrap()
            .cluster
            .clone()
    };
    assert_eq!(
        cluster("c1").endpoint,
        "https://cce.cn-north-4.myhuaweicloud.com"
    );
    assert_eq!(cluster("c1").project_id.as_deref(), Some("p1"));
    assert_eq!(
        cluster("p2").endpoint,
        "https://cce.eu-west-101.myhuaweicloud.eu"
    );
    assert_eq!(cluster("p2").region, "eu-west-101");
    assert_eq!(cluster("p2").project_id.as_deref(), Some("p2"));
    assert_eq!(cluster("dev").endpoint, "http://127.0.0.1:9999");
}

#[test]
fn waves_take_clusters_in_order_and_the_rest_form_an_implicit_wave() {
    let plan = load(FLEET).unwrap();
    let names: Vec<_> = plan
        .waves
        .iter()
        .map(|w| (w.name.as_str(), w.implicit, w.operations.len()))
        .collect();
    assert_eq!(
        names,
        [
            ("canary", false, 1),
            ("prod", false, 4),
            ("(implicit)", true, 1)
        ]
    );
    assert_eq!(plan.waves[0].soak, std::time::Duration::from_secs(120));
    assert_eq!(
        plan.waves[1].max_failures,
        Some(FailureBudget::Percent(10.0))
    );
    assert_eq!(plan.waves[2].operations[0].cluster.name, "dev");
    for (i, op) in plan.operations().enumerate() {
        assert_eq!(op.index, i);
        assert_eq!(
            plan.waves[op.wave]
                .operations
                .iter()
                .filter(|o| o.index == i)
                .count(),
            1
        );
    }
}

#[test]
fn a_plan_without_waves_is_one_implicit_wave() {
    let text = FLEET.replace("  waves:\n    - { name: canary, select: { clusters: [c1] }, soak: 2m }\n    - { name: prod, select: { labels: { env: prod } }, max_failures: \"10%\" }\n", "");
    let plan = load(&text).unwrap();
    assert_eq!(plan.waves.len(), 1);
    assert!(plan.waves[0].implicit);
    assert_eq!(plan.operation_count(), 6);
}

#[test]
fn operations_in_a_wave_alternate_across_clusters() {
    let plan = load(FLEET).unwrap();
    let prod: Vec<_> = plan.waves[1]
        .operations
        .iter()
        .map(|o| format!("{}:{}", o.cluster.name, o.release))
        .collect();
    // Clusters in declaration order (p1, p2), releases in plan order, dealt round-robin.
    assert_eq!(prod, ["p1:web", "p2:web", "p1:db", "p2:db"]);
}

#[test]
fn interpolation_uses_the_given_lookup_and_reports_missing_variables_with_position() {
    let text = FLEET.replace("tag: v2 }", "tag: \"${TAG}\" }");
    let vars = |name: &str| (name == "TAG").then(|| "v9".to_owned());
    let plan = load_source(Path::new("t.yaml"), text.as_bytes(), &vars).unwrap();
    let web = plan.operations().find(|o| o.release == "web").unwrap();
    assert_eq!(web.body.values.as_ref().unwrap()["image"]["tag"], "v9");

    let err = load(&text).unwrap_err();
    let d = &err.diagnostics()[0];
    assert_eq!((d.line(), d.col()), (Some(22), Some(29)), "{err}");
    assert!(d.message.contains("`TAG`"), "{err}");
    assert!(err.to_string().starts_with("test.yaml:22:29: "), "{err}");
}

/// `--resume` compares plan hashes: a variable that now says something else is a different plan,
/// a secret that changed is not (no hash ever covers a secret), and a plan without variables
/// hashes as its file.
#[test]
fn the_plan_hash_covers_what_variables_put_in_except_secrets() {
    let text = FLEET.replace(
        "tag: v2 }",
        "tag: \"${TAG}\", dbPassword: \"${PASSWORD}\" }",
    );
    let plan = |tag: &str, password: &str| {
        let vars = |name: &str| match name {
            "TAG" => Some(tag.to_owned()),
            "PASSWORD" => Some(password.to_owned()),
            _ => None,
        };
        load_source(Path::new("t.yaml"), text.as_bytes(), &vars).unwrap()
    };
    let hash = |tag: &str, password: &str| plan(tag, password).hash;
    assert_eq!(hash("2.5.0", "a"), hash("2.5.0", "a"));
    assert_ne!(hash("2.5.0", "a"), hash("2.6.0", "a"));
    assert_eq!(hash("2.5.0", "a"), hash("2.5.0", "b"));
    // One hash everywhere: the journal is named after the plan's hash, so a plan whose
    // variables changed has its own journal (and `--resume` points at the other one).
    let journal = |tag: &str, password: &str| {
        flotilla::journal::default_journal_path(&plan(tag, password), None, &[], false)
    };
    assert_ne!(journal("2.5.0", "a"), journal("2.6.0", "a"));
    assert_eq!(
        journal("2.5.0", "a"),
        journal("2.5.0", "b"),
        "a secret is not in the hash"
    );
    let name = journal("2.6.0", "a").display().to_string();
    assert!(name.contains(&hash("2.6.0", "a")[..12]), "{name}");

    use sha2::Digest as _;
    let file_hash = hex::encode(sha2::Sha256::digest(FLEET.as_bytes()));
    assert_eq!(load(FLEET).unwrap().hash, file_hash);
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let text = FLEET
        .replace("concurrency: 4", "concurrency: 0")
        .replace("namespace: data", "namespace: Data")
        .replace("[c1]", "[c1x]");
    let err = load(&text).unwrap_err();
    // Schema problems are all reported (semantic checks wait for a well-formed plan).
    assert_eq!(err.diagnostics().len(), 2, "{err}");
    let text = FLEET
        .replace("[c1]", "[c1x]")
        .replace("[p2, p1]", "[p2, p3]");
    let err = load(&text).unwrap_err();
    let lines: Vec<_> = err
        .diagnostics()
        .iter()
        .map(|d| d.line().unwrap())
        .collect();
    assert_eq!(lines, [16, 25], "{err}");
    assert!(
        err.diagnostics()[0].message.contains("did you mean `c1`?"),
        "{err}"
    );
}

#[test]
fn selectors_keep_matching_operations_and_their_indexes_in_the_whole_plan() {
    let plan = load(FLEET).unwrap();
    let selectors: Vec<Selector> = vec!["env=prod".parse().unwrap(), "release=db".parse().unwrap()];
    let narrowed = filter(&plan, &selectors, None).unwrap();
    assert_eq!(narrowed.waves.len(), 1);
    assert_eq!(narrowed.waves[0].name, "prod");
    assert_eq!(
        narrowed.waves[0].max_failures,
        Some(FailureBudget::Percent(10.0))
    );
    let index_in_plan = |cluster: &str| {
        plan.operations()
            .find(|o| o.cluster.name == cluster && o.release == "db")
            .unwrap()
            .index
    };
    let ops: Vec<_> = narrowed
        .operations()
        .map(|o| (o.index, o.wave, o.cluster.name.as_str()))
        .collect();
    assert_eq!(
        ops,
        [
            (index_in_plan("p1"), 0, "p1"),
            (index_in_plan("p2"), 0, "p2")
        ]
    );
    assert_ne!(ops[0].0, 0, "not renumbered from 0");
    let none = filter(&plan, &["namespace=nope".parse().unwrap()], None);
    assert!(
        none.unwrap_err()
            .to_string()
            .contains("no release is in namespace `nope`"),
        "a selection that keeps nothing is refused"
    );
}

/// `report merge` and the journal know an operation by its index: shards must not reuse one.
#[test]
fn shards_split_the_plan_s_indexes_without_overlap() {
    let plan = load(FLEET).unwrap();
    let mut seen: Vec<usize> = (1..=3)
        .flat_map(|k| {
            let shard: flotilla::plan::select::Shard = format!("{k}/3").parse().unwrap();
            filter(&plan, &[], Some(shard))
                .unwrap()
                .operations()
                .map(|o| o.index)
                .collect::<Vec<_>>()
        })
        .collect();
    seen.sort_unstable();
    let all: Vec<usize> = (0..plan.operation_count()).collect();
    assert_eq!(seen, all);
}

fn fleet_text(clusters: usize, releases: usize) -> String {
    let mut t = String::from("version: 1\ntarget: { region: cn-north-4 }\nclusters:\n");
    for c in 0..clusters {
        let env = if c % 10 == 0 { "canary" } else { "prod" };
        let _ = writeln!(
            t,
            "  c{c}: {{ id: {c:08x}-0000-4000-8000-000000000000, labels: {{ env: {env}, zone: z{} }} }}",
            c % 3
        );
    }
    t.push_str("defaults:\n  chart_id: af4b699e-018c-11ec-b8b0-0255ac100b05\n  values: { imageTag: v2, db: { host: h } }\n");
    // Cluster c3 is the first prod cluster in zone z0, so both waves select operations.
    if clusters >= 4 {
        t.push_str("rollout:\n  waves:\n    - { name: canary, select: { labels: { env: canary } } }\n    - { name: z0, select: { labels: { zone: z0 } } }\n");
    }
    t.push_str("releases:\n");
    for r in 0..releases {
        let _ = writeln!(
            t,
            "  - {{ name: r{r}, namespace: ns{}, selector: {{ labels: {{}} }}, values: {{ replicas: {r} }} }}",
            r % 7
        );
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn shards_partition_the_operations_exactly(clusters in 1usize..40, releases in 1usize..4, count in 1u32..8) {
        let plan = load(&fleet_text(clusters, releases)).unwrap();
        let all: BTreeSet<(String, String, String)> = plan
            .operations()
            .map(|o| (o.cluster.name.clone(), o.namespace.clone(), o.release.clone()))
            .collect();
        let mut seen = BTreeSet::new();
        let mut total = 0;
        for index in 1..=count {
            let shard = filter(&plan, &[], Some(Shard { index, count })).unwrap();
            let clusters_here: BTreeSet<_> = shard.operations().map(|o| o.cluster.name.clone()).collect();
            for op in shard.operations() {
                total += 1;
                seen.insert((op.cluster.name.clone(), op.namespace.clone(), op.release.clone()));
            }
            // Whole clusters: every operation of a cluster in this shard is here.
            for name in &clusters_here {
                prop_assert_eq!(
                    shard.operations().filter(|o| &o.cluster.name == name).count(),
                    plan.operations().filter(|o| &o.cluster.name == name).count()
                );
            }
        }
        prop_assert_eq!(total, all.len());
        prop_assert_eq!(seen, all);
    }
}

#[test]
fn a_hundred_thousand_operation_plan_loads() {
    // Its speed is measured by the benchmark (B5), not asserted here.
    let text = fleet_text(1000, 100);
    let plan = load(&text).unwrap();
    assert_eq!(plan.operation_count(), 100_000);
    assert_eq!(plan.waves.len(), 3);
}

/// The variables `plans/fleet-upgrade.yaml` requires (`${VAR:?...}`), as CI would set them.
fn fleet_variables(name: &str) -> Option<String> {
    match name {
        "IMAGE_TAG" => Some("3.1.0".into()),
        "PAYMENTS_DB_PASSWORD" => Some("from-a-ci-secret".into()),
        "CN_NORTH_4_PROJECT_ID" => Some("0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e".into()),
        "CN_EAST_3_PROJECT_ID" => Some("1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f".into()),
        _ => None,
    }
}

#[test]
fn every_example_plan_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let bytes = std::fs::read(&path).unwrap();
            let plan =
                load_source(&path, &bytes, &fleet_variables).unwrap_or_else(|e| panic!("{e}"));
            assert!(plan.operation_count() > 0, "{}", path.display());
            count += 1;
        }
    }
    assert!(count >= 3);
}

#[test]
fn the_fleet_plan_refuses_to_run_without_the_variables_it_requires() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/fleet-upgrade.yaml");
    let bytes = std::fs::read(&path).unwrap();
    let without_tag = |name: &str| match name {
        "IMAGE_TAG" => Some(String::new()),
        other => fleet_variables(other),
    };
    let error = load_source(&path, &bytes, &without_tag)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("fleet-upgrade.yaml:")
            && error.contains(
                "`IMAGE_TAG` is required and is not set (or empty): the image tag CI built"
            ),
        "{error}"
    );
    let error = load_source(&path, &bytes, &no_vars)
        .unwrap_err()
        .to_string();
    for name in [
        "IMAGE_TAG",
        "PAYMENTS_DB_PASSWORD",
        "CN_NORTH_4_PROJECT_ID",
        "CN_EAST_3_PROJECT_ID",
    ] {
        assert!(error.contains(&format!("`{name}` is required")), "{error}");
    }
}

#[test]
fn the_demo_plan_is_a_realistic_simulator_fleet() {
    let plan = load_path(&Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml")).unwrap();
    let clusters: BTreeSet<_> = plan.operations().map(|o| o.cluster.name.clone()).collect();
    let releases: BTreeSet<_> = plan.operations().map(|o| o.release.clone()).collect();
    let regions: BTreeSet<_> = plan
        .operations()
        .map(|o| o.cluster.region.clone())
        .collect();
    assert!(clusters.len() >= 6);
    assert!(releases.len() >= 3);
    assert_eq!(regions.len(), 1);
    let waves: Vec<_> = plan.waves.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(waves, ["canary", "prod"]);
    assert!(plan.operations().all(|o| {
        o.body
            .values
            .as_ref()
            .is_some_and(|v| v.contains_key("imageTag"))
    }));
}

#[test]
fn a_problem_at_the_end_of_the_input_points_at_the_last_line() {
    // Found by fuzzing: the parser places an empty key at the end of the input on a line past
    // the last one; the diagnostic must point at a line the reader can see.
    let err = load("? ").unwrap_err();
    let d = err
        .diagnostics()
        .iter()
        .find(|d| d.message.contains("unknown key"))
        .expect("the empty key is reported");
    assert_eq!((d.line(), d.col()), (Some(1), Some(3)), "{err}");
    assert_eq!(d.source_line.as_deref(), Some("? "), "{err}");
}

/// Messages name the real problem: a quoted number is a string, a huge number is not finite,
/// and a duration's digits are limited.
#[test]
fn messages_say_what_is_wrong_with_odd_values() {
    let err = load(&FLEET.replacen("version: 1", "version: \"1\"", 1)).unwrap_err();
    assert!(err.to_string().contains("`\"1\"` (a string)"), "{err}");
    let err = load(&FLEET.replacen("version: 1", "version: 1e400", 1)).unwrap_err();
    assert!(
        err.to_string().contains("`1e400` is not a finite number"),
        "{err}"
    );
    let long = FLEET.replacen("rollout:", "rollout:\n  request_timeout: 99999999999s", 1);
    let err = load(&long).unwrap_err();
    assert!(err.to_string().contains("up to 9 digits"), "{err}");
}

/// `parameters.dry_run: true` in a plan would make apply wait for a change that never comes;
/// a `release_version` that is not an integer gets one error, not a second saying it is missing.
#[test]
fn a_plan_level_dry_run_and_a_fractional_revision_are_refused_clearly() {
    let dry = FLEET.replacen(
        "releases:",
        "releases:\n  - { name: dry, namespace: ns, cluster: c1, parameters: { dry_run: true } }",
        1,
    );
    let err = load(&dry).unwrap_err();
    assert!(
        err.to_string().contains("flotilla apply --dry-run"),
        "{err}"
    );
    // In `defaults` it is one problem, not one per release that takes the defaults.
    let err = load(&FLEET.replacen("dry_run: false", "dry_run: true", 1)).unwrap_err();
    assert_eq!(err.diagnostics().len(), 1, "{err}");
    assert!(err.to_string().contains("test.yaml:11:"), "{err}");

    let fractional = FLEET.replacen(
        "releases:",
        "releases:\n  - { name: back, namespace: ns, cluster: c1, action: rollback, parameters: { release_version: 1.5 } }",
        1,
    );
    let err = load(&fractional).unwrap_err();
    assert_eq!(err.diagnostics().len(), 1, "{err}");
    assert!(err.to_string().contains("release_version"), "{err}");
}

/// An integer past i64 reaches the parser as a float: it is sent as the integer the plan wrote,
/// or refused when no integer type holds it; a float literal stays a float.
#[test]
fn big_integers_are_sent_exactly_or_refused() {
    // Characters of more than one byte before the number must not shift where it is read.
    let big = FLEET.replacen(
        "tag: v2 }",
        "tag: v2, note: \"ünïcödé ✓\", big: 12345678901234567890, sci: 1e19 }",
        1,
    );
    let plan = load(&big).unwrap();
    let web = plan.operations().find(|o| o.release == "web").unwrap();
    let image = &web.body.values.as_ref().unwrap()["image"];
    assert_eq!(image["big"], serde_json::json!(12345678901234567890u64));
    assert_eq!(image["big"].to_string(), "12345678901234567890");
    assert!(image["sci"].is_f64());

    let huge = FLEET.replacen(
        "tag: v2 }",
        "tag: v2, huge: 123456789012345678901234567890 }",
        1,
    );
    let err = load(&huge).unwrap_err();
    assert!(
        err.to_string().contains("too large to send exactly"),
        "{err}"
    );
}

/// `release_version: previous`, `-N` or `"-N"`: resolved per cluster at run time, so the body
/// carries no revision yet; anything else that is not a revision number is refused where it
/// is written.
#[test]
fn relative_release_versions_load_and_bad_ones_are_refused_in_place() {
    use flotilla::plan::resolved::RelativeRevision;
    for (written, expected) in [
        ("previous", RelativeRevision::Previous),
        ("-2", RelativeRevision::Back(2)),
        ("\"-3\"", RelativeRevision::Back(3)),
    ] {
        let plan = load(&FLEET.replacen(
            "release_version: 3",
            &format!("release_version: {written}"),
            1,
        ))
        .unwrap_or_else(|e| panic!("{written}: {e}"));
        let db = plan.operations().find(|o| o.release == "db").unwrap();
        assert_eq!(db.relative_version, Some(expected), "{written}");
        assert_eq!(
            db.body.parameters.as_ref().unwrap().release_version,
            None,
            "{written}"
        );
    }
    let absolute = load(FLEET).unwrap();
    let db = absolute.operations().find(|o| o.release == "db").unwrap();
    assert_eq!(db.relative_version, None);

    // FLEET's `release_version: 3` is on line 27, column 36.
    for bad in ["0", "prev", "\"-0\"", "-x", "1.5"] {
        let err =
            load(&FLEET.replacen("release_version: 3", &format!("release_version: {bad}"), 1))
                .unwrap_err();
        assert_eq!(err.diagnostics().len(), 1, "{bad}: {err}");
        let text = err.to_string();
        assert!(text.contains("test.yaml:27:36"), "{bad}: {text}");
        assert!(text.contains("release_version"), "{bad}: {text}");
    }

    // Only a rollback goes back: an upgrade with a relative revision is a mistake.
    let upgrade = FLEET.replacen(
        "releases:",
        "releases:\n  - { name: up, namespace: ns, cluster: c1, parameters: { release_version: previous } }",
        1,
    );
    let err = load(&upgrade).unwrap_err();
    assert!(
        err.to_string()
            .contains("only means something to `action: rollback`"),
        "{err}"
    );
}
