//! Narrowing an expanded plan: `--select` expressions and `--shard K/N`.
//!
//! Shards split whole clusters: the clusters left after the selectors are sorted by name and
//! dealt round-robin, the first to shard 1, the second to shard 2, and so on. The same plan and
//! selectors give every CI job the same split, and the N shards together hold every operation
//! exactly once.

use std::collections::HashMap;
use std::fmt;
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
    if let Some(error) = no_match(plan, selectors) {
        return Err(error);
    }
    let keep_selected = |op: &Operation| selectors.iter().all(|s| s.matches(op));
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
    for wave in &plan.waves {
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
        file_hash: plan.file_hash.clone(),
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

    #[test]
    fn shards_parse_only_in_range() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "1/0", "a/b", "3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
