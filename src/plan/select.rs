//! Narrowing an expanded plan: `--wave` names, `--select` expressions and `--shard K/N`.
//!
//! Shards split whole clusters: the clusters left after the waves and selectors are sorted by
//! name and dealt round-robin, the first to shard 1, the second to shard 2, and so on. The same
//! plan and selection give every CI job the same split, and the N shards together hold every
//! operation exactly once.
//!
//! Shards run side by side, each at its own pace, so a shard that held part of several waves
//! could start a later wave while another shard is still on an earlier one. A shard is
//! therefore taken within one wave (`--wave NAME --shard K/N`), and the CI job graph orders the
//! waves, with `report merge` as each wave's gate; sharding across waves must be asked for.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::resolved::{ExpandedPlan, Operation, Wave};

/// One `--select` expression; all given must match an operation to keep it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// `cluster=NAME`
    Cluster(String),
    /// `namespace=NS`
    Namespace(String),
    /// `release=NAME`
    Release(String),
    /// Any other `KEY=VALUE`: the cluster's label KEY equals VALUE.
    Label { key: String, value: String },
}

impl Selector {
    pub fn matches(&self, op: &Operation) -> bool {
        match self {
            Selector::Cluster(name) => op.cluster.name == *name,
            Selector::Namespace(ns) => op.namespace == *ns,
            Selector::Release(name) => op.release == *name,
            Selector::Label { key, value } => op.cluster.labels.get(key) == Some(value),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error(
        "`{0}` is not a selector: write KEY=VALUE, e.g. cluster=prod-1, namespace=shop, release=web or env=prod"
    )]
    Selector(String),
    #[error("`{0}` is not a shard: write K/N with 1 <= K <= N, e.g. 2/4")]
    Shard(String),
    /// A selection that keeps nothing is a typo far more often than a wish to do nothing.
    #[error("--select {0}")]
    NoMatch(String),
    #[error("--wave {name}: the plan has no wave `{name}` (its waves: {known}){suggestion}")]
    UnknownWave {
        name: String,
        known: String,
        suggestion: String,
    },
    /// `--wave` and `--select` each keep something, but no operation is kept by both.
    #[error("{0}: no operation of the wave(s) matches the selection")]
    NothingInWaves(String),
    /// `--shard` over operations of more than one wave, without the opt-out.
    #[error("{}", explain_shard_across_waves(Path::new("PLAN"), *shard, waves).join("\n"))]
    ShardAcrossWaves { shard: Shard, waves: Vec<String> },
}

impl SelectError {
    /// The error about the plan at `plan`, one line each: a shard refused over several waves
    /// shows the command lines that do what was meant, with the plan's path.
    pub fn explain(&self, plan: &Path) -> Vec<String> {
        match self {
            SelectError::ShardAcrossWaves { shard, waves } => {
                explain_shard_across_waves(plan, *shard, waves)
            }
            other => vec![other.to_string()],
        }
    }
}

/// Why `--shard` is refused over several waves, and the `--wave` form that does what was meant.
fn explain_shard_across_waves(plan: &Path, shard: Shard, waves: &[String]) -> Vec<String> {
    let first = waves.first().map_or("FIRST", String::as_str);
    let second = waves.get(1).map_or("NEXT", String::as_str);
    let quoted: Vec<String> = waves.iter().map(|w| format!("`{w}`")).collect();
    let plan = plan.display();
    let k = shard.index;
    vec![
        format!(
            "--shard {shard}: the operations selected are in {} waves ({}). Shards run side by \
             side, each at its own pace, so one shard could start wave `{second}` while another \
             is still on wave `{first}`, and each wave's soak and max_failures would hold only \
             inside one shard. Shard one wave at a time, each wave's jobs after the previous \
             wave's gate:",
            waves.len(),
            quoted.join(", "),
        ),
        format!(
            "  flotilla apply {plan} --wave {first} --shard {shard} --report-json {first}-{k}.json"
        ),
        format!(
            "  flotilla report merge {first}-*.json -o {first}.json   # the gate of wave \
             `{first}`: its failure budget over all its shards, then its soak"
        ),
        format!("  flotilla apply {plan} --wave {second} --shard {shard} ..."),
        "(--shard-across-waves shards the whole plan anyway, without waiting between waves)"
            .to_owned(),
    ]
}

/// What a command keeps of a plan: `--wave`, `--select` and `--shard`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Wave names (`--wave`, repeatable); empty keeps every wave.
    pub waves: Vec<String>,
    pub selectors: Vec<Selector>,
    pub shard: Option<Shard>,
    /// `--shard-across-waves`: shard operations of several waves anyway.
    pub shard_across_waves: bool,
}

impl Selection {
    /// Nothing to narrow: the whole plan.
    pub fn is_everything(&self) -> bool {
        self.waves.is_empty() && self.selectors.is_empty() && self.shard.is_none()
    }

    /// The flags as written, e.g. `--wave gold --select env=prod --shard 1/4`.
    pub fn flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = self.waves.iter().map(|w| format!("--wave {w}")).collect();
        flags.extend(self.selectors.iter().map(|s| format!("--select {s}")));
        if let Some(shard) = self.shard {
            flags.push(format!("--shard {shard}"));
        }
        if self.shard_across_waves {
            flags.push("--shard-across-waves".to_owned());
        }
        flags
    }
}

impl FromStr for Selector {
    type Err = SelectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SelectError::Selector(s.to_owned());
        let (key, value) = s.split_once('=').ok_or_else(bad)?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || value.is_empty() {
            return Err(bad());
        }
        Ok(match key {
            "cluster" => Selector::Cluster(value.to_owned()),
            "namespace" => Selector::Namespace(value.to_owned()),
            "release" => Selector::Release(value.to_owned()),
            _ => Selector::Label {
                key: key.to_owned(),
                value: value.to_owned(),
            },
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Cluster(v) => write!(f, "cluster={v}"),
            Selector::Namespace(v) => write!(f, "namespace={v}"),
            Selector::Release(v) => write!(f, "release={v}"),
            Selector::Label { key, value } => write!(f, "{key}={value}"),
        }
    }
}

/// `--shard K/N`: the K-th (from 1) of N shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl FromStr for Shard {
    type Err = SelectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SelectError::Shard(s.to_owned());
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Why `selectors` keep no operation of `plan`, if they keep none: the first selector that
/// alone matches nothing, with what it could have meant; or the combination.
fn no_match(plan: &ExpandedPlan, selectors: &[Selector]) -> Option<SelectError> {
    if selectors.is_empty()
        || plan
            .operations()
            .any(|op| selectors.iter().all(|s| s.matches(op)))
    {
        return None;
    }
    let Some(alone) = selectors
        .iter()
        .find(|s| !plan.operations().any(|op| s.matches(op)))
    else {
        let all: Vec<String> = selectors.iter().map(ToString::to_string).collect();
        return Some(SelectError::NoMatch(format!(
            "{}: each matches some operations, but no operation matches them all",
            all.join(" --select ")
        )));
    };
    // Every value the plan has for what `alone` selects on.
    let known = |of: &dyn Fn(&Operation) -> Vec<&str>| -> Vec<String> {
        let mut known: Vec<String> = plan.operations().flat_map(of).map(str::to_owned).collect();
        known.sort_unstable();
        known.dedup();
        known
    };
    let (problem, word, candidates) = match alone {
        Selector::Cluster(v) => (
            format!("no cluster is named `{v}`"),
            v,
            known(&|op| vec![op.cluster.name.as_str()]),
        ),
        Selector::Namespace(v) => (
            format!("no release is in namespace `{v}`"),
            v,
            known(&|op| vec![op.namespace.as_str()]),
        ),
        Selector::Release(v) => (
            format!("no release is named `{v}`"),
            v,
            known(&|op| vec![op.release.as_str()]),
        ),
        Selector::Label { key, value } => {
            let keys = known(&|op| op.cluster.labels.keys().map(String::as_str).collect());
            if keys.contains(key) {
                (
                    format!("no cluster has label `{key}={value}`"),
                    value,
                    known(&|op| {
                        op.cluster
                            .labels
                            .get(key)
                            .map(String::as_str)
                            .into_iter()
                            .collect()
                    }),
                )
            } else {
                let mut keys = keys;
                keys.extend(["cluster", "namespace", "release"].map(String::from));
                (format!("no cluster has a label `{key}`"), key, keys)
            }
        }
    };
    Some(SelectError::NoMatch(format!(
        "{alone}: {problem}{}",
        super::diagnostic::suggestion_suffix(word, candidates.iter().map(String::as_str))
    )))
}

/// The operations of `plan` that every selector matches and that fall in `shard`. Waves keep
/// their settings and emptied waves are dropped. Operations keep their index in the whole plan:
/// the journal and `report merge` know an operation by it, so a shard's or a selection's index
/// must name the same release as the whole plan's. Selectors that keep nothing are an error; a
/// shard may be empty (more shards than clusters).
pub fn filter(
    plan: &ExpandedPlan,
    selectors: &[Selector],
    shard: Option<Shard>,
) -> Result<ExpandedPlan, SelectError> {
    filter_waves(plan, &|_| true, selectors, shard)
}

/// What `selection` keeps of `plan`, as [`filter`] does within the waves it names. A shard must
/// lie within one wave unless `shard_across_waves` says otherwise: see the module's comment.
pub fn select(plan: &ExpandedPlan, selection: &Selection) -> Result<ExpandedPlan, SelectError> {
    for name in &selection.waves {
        if !plan.waves.iter().any(|w| w.name == *name) {
            let known: Vec<&str> = plan.waves.iter().map(|w| w.name.as_str()).collect();
            return Err(SelectError::UnknownWave {
                name: name.clone(),
                known: known.join(", "),
                suggestion: super::diagnostic::suggestion_suffix(name, known.iter().copied()),
            });
        }
    }
    let in_waves = |wave: &Wave| selection.waves.is_empty() || selection.waves.contains(&wave.name);
    let whole = filter_waves(plan, &in_waves, &selection.selectors, None)?;
    if whole.waves.is_empty() && !selection.waves.is_empty() {
        return Err(SelectError::NothingInWaves(selection.flags().join(" ")));
    }
    let Some(shard) = selection.shard else {
        return Ok(whole);
    };
    if whole.waves.len() > 1 && !selection.shard_across_waves {
        return Err(SelectError::ShardAcrossWaves {
            shard,
            waves: whole.waves.iter().map(|w| w.name.clone()).collect(),
        });
    }
    filter_waves(plan, &in_waves, &selection.selectors, Some(shard))
}

/// [`filter`] over the waves `in_waves` keeps.
fn filter_waves(
    plan: &ExpandedPlan,
    in_waves: &dyn Fn(&Wave) -> bool,
    selectors: &[Selector],
    shard: Option<Shard>,
) -> Result<ExpandedPlan, SelectError> {
    if let Some(error) = no_match(plan, selectors) {
        return Err(error);
    }
    let keep_selected =
        |op: &Operation| in_waves(&plan.waves[op.wave]) && selectors.iter().all(|s| s.matches(op));
    let shard_of: Option<HashMap<&str, u32>> = shard.map(|shard| {
        let mut names: Vec<&str> = plan
            .operations()
            .filter(|op| keep_selected(op))
            .map(|op| op.cluster.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .enumerate()
            .map(|(i, name)| (name, (i as u32 % shard.count) + 1))
            .collect()
    });
    let in_shard = |op: &Operation| match (&shard_of, shard) {
        (Some(map), Some(shard)) => map.get(op.cluster.name.as_str()) == Some(&shard.index),
        _ => true,
    };

    let mut waves = Vec::new();
    for wave in plan.waves.iter().filter(|w| in_waves(w)) {
        let operations: Vec<Operation> = wave
            .operations
            .iter()
            .filter(|op| keep_selected(op) && in_shard(op))
            .map(|op| Operation {
                wave: waves.len(),
                ..op.clone()
            })
            .collect();
        if operations.is_empty() {
            continue;
        }
        waves.push(Wave {
            name: wave.name.clone(),
            implicit: wave.implicit,
            soak: wave.soak,
            max_failures: wave.max_failures,
            operations,
        });
    }
    Ok(ExpandedPlan {
        name: plan.name.clone(),
        hash: plan.hash.clone(),
        rollout: plan.rollout.clone(),
        waves,
        redactor: plan.redactor.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_known_keys_and_labels() {
        assert_eq!("cluster=a".parse(), Ok(Selector::Cluster("a".into())));
        assert_eq!(
            "namespace=shop".parse(),
            Ok(Selector::Namespace("shop".into()))
        );
        assert_eq!("release=web".parse(), Ok(Selector::Release("web".into())));
        assert_eq!(
            "env=prod".parse(),
            Ok(Selector::Label {
                key: "env".into(),
                value: "prod".into()
            })
        );
        assert!("env".parse::<Selector>().is_err());
        assert!("=x".parse::<Selector>().is_err());
        assert!("x=".parse::<Selector>().is_err());
    }

    fn plan() -> ExpandedPlan {
        crate::plan::load_source(
            std::path::Path::new("t.yaml"),
            br#"version: 1
target: { region: cn-north-4 }
clusters:
  prod-1: { id: 00000001-0000-4000-8000-000000000000, labels: { env: prod } }
  stage-1: { id: 00000002-0000-4000-8000-000000000000, labels: { env: staging } }
defaults: { chart_id: af4b699e-018c-11ec-b8b0-0255ac100b05 }
releases:
  - { name: web, namespace: shop, selector: { labels: {} } }
"#,
            &|_| None,
        )
        .unwrap()
    }

    fn select(text: &[&str]) -> Result<ExpandedPlan, SelectError> {
        let selectors: Vec<Selector> = text.iter().map(|s| s.parse().unwrap()).collect();
        filter(&plan(), &selectors, None)
    }

    #[test]
    fn a_selection_that_keeps_nothing_says_what_was_meant() {
        let message = |text: &[&str]| select(text).unwrap_err().to_string();
        assert_eq!(
            message(&["cluster=prod-2"]),
            "--select cluster=prod-2: no cluster is named `prod-2`; did you mean `prod-1`?"
        );
        assert_eq!(
            message(&["clustr=prod-1"]),
            "--select clustr=prod-1: no cluster has a label `clustr`; did you mean `cluster`?"
        );
        assert_eq!(
            message(&["env=prdo"]),
            "--select env=prdo: no cluster has label `env=prdo`; did you mean `prod`?"
        );
        assert!(
            message(&["env=prod", "cluster=stage-1"]).contains("no operation matches them all")
        );
        assert_eq!(select(&["env=prod"]).unwrap().operations().count(), 1);
    }

    #[test]
    fn an_empty_shard_is_not_an_error() {
        let shard = Shard { index: 3, count: 3 };
        assert_eq!(
            filter(&plan(), &[], Some(shard))
                .unwrap()
                .operations()
                .count(),
            0
        );
    }

    /// The module's [`select`](super::select), beside this module's own `select` helper.
    fn keep(plan: &ExpandedPlan, selection: &Selection) -> Result<ExpandedPlan, SelectError> {
        super::select(plan, selection)
    }

    /// Three waves: a canary and two prod waves, two clusters each.
    fn waved_plan() -> ExpandedPlan {
        crate::plan::load_source(
            std::path::Path::new("t.yaml"),
            br#"version: 1
target: { region: cn-north-4 }
clusters:
  stage-1: { id: 00000001-0000-4000-8000-000000000000, labels: { env: staging } }
  stage-2: { id: 00000002-0000-4000-8000-000000000000, labels: { env: staging } }
  gold-1: { id: 00000003-0000-4000-8000-000000000000, labels: { env: prod, tier: gold } }
  gold-2: { id: 00000004-0000-4000-8000-000000000000, labels: { env: prod, tier: gold } }
  silver-1: { id: 00000005-0000-4000-8000-000000000000, labels: { env: prod, tier: silver } }
  silver-2: { id: 00000006-0000-4000-8000-000000000000, labels: { env: prod, tier: silver } }
defaults: { chart_id: af4b699e-018c-11ec-b8b0-0255ac100b05 }
rollout:
  waves:
    - { name: staging, select: { labels: { env: staging } }, soak: 5m }
    - { name: gold, select: { labels: { tier: gold } }, max_failures: 0 }
    - { name: silver, select: { labels: { tier: silver } } }
releases:
  - { name: web, namespace: shop, selector: { labels: {} } }
"#,
            &|_| None,
        )
        .unwrap()
    }

    fn selection(waves: &[&str], shard: Option<&str>) -> Selection {
        Selection {
            waves: waves.iter().map(|w| (*w).to_owned()).collect(),
            shard: shard.map(|s| s.parse().unwrap()),
            ..Selection::default()
        }
    }

    fn clusters(plan: &ExpandedPlan) -> Vec<&str> {
        plan.operations()
            .map(|op| op.cluster.name.as_str())
            .collect()
    }

    #[test]
    fn a_wave_keeps_its_operations_settings_and_indexes() {
        let plan = waved_plan();
        let gold = keep(&plan, &selection(&["gold"], None)).unwrap();
        assert_eq!(gold.waves.len(), 1);
        assert_eq!(gold.waves[0].name, "gold");
        assert_eq!(gold.waves[0].max_failures, plan.waves[1].max_failures);
        assert_eq!(clusters(&gold), ["gold-1", "gold-2"]);
        let indexes: Vec<usize> = gold.operations().map(|op| op.index).collect();
        assert_eq!(indexes, [2, 3]);
        let two = keep(&plan, &selection(&["silver", "staging"], None)).unwrap();
        let names: Vec<&str> = two.waves.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(
            names,
            ["staging", "silver"],
            "plan order, whatever the flags' order"
        );
    }

    #[test]
    fn shards_of_a_wave_deal_only_that_waves_clusters() {
        let plan = waved_plan();
        let first = keep(&plan, &selection(&["gold"], Some("1/2"))).unwrap();
        let second = keep(&plan, &selection(&["gold"], Some("2/2"))).unwrap();
        assert_eq!(clusters(&first), ["gold-1"]);
        assert_eq!(clusters(&second), ["gold-2"]);
        // Sharding the whole plan would have dealt gold-2 and stage-1 together.
        let across = Selection {
            shard_across_waves: true,
            ..selection(&[], Some("2/2"))
        };
        assert_eq!(keep(&plan, &across).unwrap().waves.len(), 3);
    }

    #[test]
    fn a_shard_over_several_waves_is_refused_with_the_wave_form() {
        let plan = waved_plan();
        for flags in [
            selection(&[], Some("2/4")),
            selection(&["staging", "gold"], Some("2/4")),
        ] {
            let error = keep(&plan, &flags).unwrap_err();
            assert!(
                matches!(error, SelectError::ShardAcrossWaves { .. }),
                "{error}"
            );
            let message = error.explain(Path::new("plans/fleet.yaml")).join("\n");
            assert!(
                message.starts_with("--shard 2/4: the operations selected are in"),
                "{message}"
            );
            assert!(
                message.contains("flotilla apply plans/fleet.yaml --wave staging --shard 2/4"),
                "{message}"
            );
            assert!(
                message.contains("flotilla report merge staging-*.json"),
                "{message}"
            );
            assert!(message.contains("--shard-across-waves"), "{message}");
        }
        // One wave left by --select is one wave: nothing to order.
        let prod_gold = Selection {
            selectors: vec!["tier=gold".parse().unwrap()],
            ..selection(&[], Some("1/2"))
        };
        assert_eq!(clusters(&keep(&plan, &prod_gold).unwrap()), ["gold-1"]);
    }

    #[test]
    fn an_unknown_wave_or_an_empty_combination_is_refused() {
        let plan = waved_plan();
        let error = keep(&plan, &selection(&["gloD"], None)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "--wave gloD: the plan has no wave `gloD` (its waves: staging, gold, silver); did you mean `gold`?"
        );
        let nothing = Selection {
            selectors: vec!["env=staging".parse().unwrap()],
            ..selection(&["gold"], None)
        };
        assert_eq!(
            keep(&plan, &nothing).unwrap_err().to_string(),
            "--wave gold --select env=staging: no operation of the wave(s) matches the selection"
        );
    }

    #[test]
    fn shards_parse_only_in_range() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "1/0", "a/b", "3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
