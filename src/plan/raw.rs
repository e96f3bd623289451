//! The plan as written: serde types mirroring the schema, read from the validated JSON tree.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cce::model::Action;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    pub version: u32,
    pub name: Option<String>,
    #[serde(default)]
    pub target: RawTarget,
    pub clusters: IndexMap<String, RawCluster>,
    #[serde(default)]
    pub defaults: RawSettings,
    #[serde(default)]
    pub rollout: RawRollout,
    #[serde(default)]
    pub secrets: RawSecrets,
    pub releases: Vec<RawRelease>,
}

/// `secrets`: the plan's own secret rules.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecrets {
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub variables: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub iam_endpoint: Option<String>,
    pub project_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub id: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub iam_endpoint: Option<String>,
    pub project_id: Option<String>,
}

/// Settings that `defaults` gives and a release may override.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub chart_id: Option<String>,
    pub action: Option<Action>,
    pub parameters: Option<Map<String, Value>>,
    pub values: Option<Map<String, Value>>,
    pub rollback_on_failure: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelease {
    pub name: String,
    pub namespace: String,
    pub cluster: Option<String>,
    pub clusters: Option<Vec<String>>,
    pub selector: Option<RawSelector>,
    pub chart_id: Option<String>,
    pub action: Option<Action>,
    pub parameters: Option<Map<String, Value>>,
    pub values: Option<Map<String, Value>>,
    pub rollback_on_failure: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSelector {
    pub clusters: Option<Vec<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRollout {
    pub concurrency: Option<usize>,
    pub per_cluster: Option<usize>,
    pub rate: Option<RawRate>,
    pub burst: Option<u32>,
    #[serde(default)]
    pub retry: RawRetry,
    pub request_timeout: Option<String>,
    pub preflight: Option<bool>,
    #[serde(default)]
    pub wait: RawWait,
    pub max_failures: Option<RawBudget>,
    #[serde(default)]
    pub waves: Vec<RawWave>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawRate {
    PerSecond(f64),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawBudget {
    Count(u32),
    Percent(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub attempts: Option<u32>,
    pub backoff: Option<String>,
    pub max_backoff: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWait {
    pub enabled: Option<bool>,
    pub timeout: Option<String>,
    pub poll: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWave {
    pub name: String,
    pub select: RawSelector,
    pub soak: Option<String>,
    pub max_failures: Option<RawBudget>,
}
