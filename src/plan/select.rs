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

/// The operations of `plan` that every selector matches and that fall in `shard`. Waves keep
/// their settings and emptied waves are dropped. Operations keep their index in the whole plan:
/// the journal and `report merge` know an operation by it, so a shard's or a selection's index
/// must name the same release as the whole plan's.
pub fn filter(plan: &ExpandedPlan, selectors: &[Selector], shard: Option<Shard>) -> ExpandedPlan {
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
    ExpandedPlan {
        name: plan.name.clone(),
        hash: plan.hash.clone(),
        rollout: plan.rollout.clone(),
        waves,
    }
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

    #[test]
    fn shards_parse_only_in_range() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "1/0", "a/b", "3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
