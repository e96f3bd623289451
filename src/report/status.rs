//! `flotilla status` as it is shown: each release's state on its cluster judged against the plan
//! (`in sync`, `drifted`, `missing`, `unhealthy`, `unknown`, `unreachable`), classified from the
//! engine's preview by a pure function, and rendered as a table, JSON or Markdown.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::converge::Convergence;
use crate::engine::preview::Preview;
use crate::plan::resolved::ExpandedPlan;
use crate::report::model::ErrorReport;
use crate::report::plan_diff::OperationDiff;
use crate::terminal::escape_control;

/// A release's state against the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    InSync,
    Drifted,
    Missing,
    Unhealthy,
    Unknown,
    Unreachable,
}

impl State {
    pub const ALL: [State; 6] = [
        State::InSync,
        State::Drifted,
        State::Missing,
        State::Unhealthy,
        State::Unknown,
        State::Unreachable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::InSync => "in sync",
            State::Drifted => "drifted",
            State::Missing => "missing",
            State::Unhealthy => "unhealthy",
            State::Unknown => "unknown",
            State::Unreachable => "unreachable",
        }
    }
}

/// Whether a release's status (verbatim) is one a healthy release does not have: `FAILED`,
/// `UNKNOWN` or `PENDING_*`.
fn is_unhealthy_status(status: &str) -> bool {
    status == "FAILED" || status == "UNKNOWN" || status.starts_with("PENDING_")
}

/// The state of one release from what `plan --diff` found: an unhealthy status first (whatever
/// its values say), then the convergence label; a release whose status the answer left out is
/// `unknown`, never `in sync`.
pub fn classify(diff: &OperationDiff) -> State {
    match diff {
        OperationDiff::Missing { .. } => State::Missing,
        OperationDiff::Error { .. } => State::Unreachable,
        OperationDiff::Compared(compared) => {
            let status = compared.current.status.as_str();
            if is_unhealthy_status(status) {
                State::Unhealthy
            } else if status != "DEPLOYED" {
                State::Unknown
            } else {
                match compared.label {
                    Convergence::Change => State::Drifted,
                    Convergence::Unchanged => State::InSync,
                    Convergence::Unknown => State::Unknown,
                }
            }
        }
    }
}

/// One release's line of `flotilla status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReleaseState {
    pub wave: String,
    pub cluster: String,
    pub namespace: String,
    pub release: String,
    pub state: State,
    /// The status verbatim, when the release was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart_version: Option<String>,
    /// `update_at` as the API gave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// What differs from the plan, in one line (key names only, never values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differs: Option<String>,
    /// The `values` keys that differ or could not be compared (masked); names only.
    pub keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

/// Requests sent, per cluster and in all.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Cost {
    pub total: u64,
    pub per_cluster: BTreeMap<String, u64>,
}

/// Every release's state, in plan order, and what reading them cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusDocument {
    pub format: &'static str,
    pub version: u32,
    pub releases: Vec<ReleaseState>,
    pub counts: BTreeMap<State, usize>,
    pub requests: Cost,
}

impl StatusDocument {
    /// Judges every preview (in `plan`'s operation order) into its release's state.
    pub fn new(plan: &ExpandedPlan, previews: Vec<Preview>, requests: Cost) -> Self {
        let releases: Vec<ReleaseState> = plan
            .operations()
            .zip(previews)
            .map(|(op, preview)| {
                let updated = match &preview {
                    Preview::Judged { current, .. } => {
                        Some(current.update_at.clone()).filter(|u| !u.is_empty())
                    }
                    _ => None,
                };
                let diff = OperationDiff::from(preview);
                let state = classify(&diff);
                let mut row = ReleaseState {
                    wave: plan.waves[op.wave].name.clone(),
                    cluster: op.cluster.name.clone(),
                    namespace: op.namespace.clone(),
                    release: op.release.clone(),
                    state,
                    status: None,
                    revision: None,
                    chart_name: None,
                    chart_version: None,
                    updated,
                    differs: None,
                    keys: Vec::new(),
                    error: None,
                };
                match diff {
                    OperationDiff::Compared(c) => {
                        row.status = Some(c.current.status);
                        row.revision = c.current.revision;
                        row.chart_name = Some(c.current.chart_name).filter(|s| !s.is_empty());
                        row.chart_version = Some(c.current.chart_version).filter(|s| !s.is_empty());
                        if state != State::InSync {
                            row.differs = Some(plan.redactor.mask_text(&c.why).into_owned())
                                .filter(|s| !s.is_empty());
                        }
                        row.keys = c.values.into_iter().map(|k| k.key).collect();
                        for masked in c.masked_keys {
                            if !row.keys.contains(&masked) {
                                row.keys.push(masked);
                            }
                        }
                    }
                    OperationDiff::Missing { mut error } | OperationDiff::Error { mut error } => {
                        // A service may quote what it was sent: masked as `plan --diff` masks it.
                        error.message = plan.redactor.mask_text(&error.message).into_owned();
                        row.error = Some(error);
                    }
                }
                row
            })
            .collect();
        let releases = grouped(plan, releases);
        let mut counts: BTreeMap<State, usize> = State::ALL.iter().map(|s| (*s, 0)).collect();
        for row in &releases {
            *counts.entry(row.state).or_default() += 1;
        }
        StatusDocument {
            format: "flotilla-status",
            version: 1,
            releases,
            counts,
            requests,
        }
    }

    /// `terraform plan -detailed-exitcode`'s meaning: 0 all in sync, 2 something to act on
    /// (drifted, missing, unhealthy), 1 an error reaching the API. `unknown` alone is 0: it
    /// cannot be proven either way.
    pub fn detailed_exit_code(&self) -> u8 {
        if self.count(State::Unreachable) > 0 {
            1
        } else if self.count(State::Drifted)
            + self.count(State::Missing)
            + self.count(State::Unhealthy)
            > 0
        {
            2
        } else {
            0
        }
    }

    pub fn count(&self, state: State) -> usize {
        self.counts.get(&state).copied().unwrap_or(0)
    }

    /// `3 in sync, 1 drifted, …`, every state named.
    pub fn counts_line(&self) -> String {
        State::ALL
            .iter()
            .map(|s| format!("{} {}", self.count(*s), s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `requests sent: 7 (canary-1 3, prod-1 4)`.
    pub fn cost_line(&self) -> String {
        let per: Vec<String> = self
            .requests
            .per_cluster
            .iter()
            .map(|(cluster, n)| format!("{} {n}", escape_control(cluster)))
            .collect();
        format!(
            "requests sent: {} ({})",
            self.requests.total,
            per.join(", ")
        )
    }
}

/// `rows` (in plan order) grouped by wave, then by cluster in the order clusters first appear,
/// each cluster's releases kept in plan order.
fn grouped(plan: &ExpandedPlan, rows: Vec<ReleaseState>) -> Vec<ReleaseState> {
    let wave_order: BTreeMap<&str, usize> = plan
        .waves
        .iter()
        .enumerate()
        .map(|(i, w)| (w.name.as_str(), i))
        .collect();
    let mut cluster_order: BTreeMap<String, usize> = BTreeMap::new();
    for row in &rows {
        let next = cluster_order.len();
        cluster_order.entry(row.cluster.clone()).or_insert(next);
    }
    let mut keyed: Vec<(usize, usize, ReleaseState)> = rows
        .into_iter()
        .map(|row| {
            let wave = wave_order
                .get(row.wave.as_str())
                .copied()
                .unwrap_or(usize::MAX);
            let cluster = cluster_order
                .get(&row.cluster)
                .copied()
                .unwrap_or(usize::MAX);
            (wave, cluster, row)
        })
        .collect();
    keyed.sort_by_key(|(wave, cluster, _)| (*wave, *cluster));
    keyed.into_iter().map(|(_, _, row)| row).collect()
}

fn shown(row: &ReleaseState) -> (String, String) {
    let status = row.status.as_deref().unwrap_or("-");
    let revision = row
        .revision
        .map_or_else(|| "-".to_owned(), |r| r.to_string());
    let chart = match (&row.chart_name, &row.chart_version) {
        (Some(n), Some(v)) => format!("{n} {v}"),
        (Some(n), None) => n.clone(),
        (None, Some(v)) => v.clone(),
        (None, None) => "-".to_owned(),
    };
    let updated = row.updated.as_deref().unwrap_or("-");
    (
        format!("{status} rev {revision}, chart {chart}, updated {updated}"),
        detail(row),
    )
}

fn detail(row: &ReleaseState) -> String {
    if let Some(error) = &row.error {
        return error.to_string();
    }
    row.differs.clone().unwrap_or_default()
}

/// The table: wave, then cluster, then one line per release; counts and cost at the end.
pub fn render_text(doc: &StatusDocument) -> String {
    let mut out = String::new();
    let mut wave: Option<&str> = None;
    let mut cluster: Option<&str> = None;
    for row in &doc.releases {
        if wave != Some(row.wave.as_str()) {
            out.push_str(&format!("wave {}\n", escape_control(&row.wave)));
            wave = Some(&row.wave);
            cluster = None;
        }
        if cluster != Some(row.cluster.as_str()) {
            out.push_str(&format!("  cluster {}\n", escape_control(&row.cluster)));
            cluster = Some(&row.cluster);
        }
        let (now, detail) = shown(row);
        let now = if row.status.is_some() {
            format!("  ({})", escape_control(&now))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "    {}/{}: {}{now}\n",
            escape_control(&row.namespace),
            escape_control(&row.release),
            row.state.as_str(),
        ));
        if !detail.is_empty() {
            out.push_str(&format!("      {}\n", escape_control(&detail)));
        }
    }
    out.push_str(&format!("{}\n{}\n", doc.counts_line(), doc.cost_line()));
    out
}

/// A Markdown table for a CI step summary.
pub fn render_markdown(doc: &StatusDocument) -> String {
    let cell = |s: &str| escape_control(s).replace('|', "\\|");
    let mut out = String::from(
        "## flotilla status\n\n| wave | cluster | release | state | status | revision | chart | updated | detail |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in &doc.releases {
        let chart = format!(
            "{} {}",
            row.chart_name.as_deref().unwrap_or(""),
            row.chart_version.as_deref().unwrap_or("")
        );
        out.push_str(&format!(
            "| {} | {} | {}/{} | {} | {} | {} | {} | {} | {} |\n",
            cell(&row.wave),
            cell(&row.cluster),
            cell(&row.namespace),
            cell(&row.release),
            row.state.as_str(),
            cell(row.status.as_deref().unwrap_or("")),
            row.revision.map(|r| r.to_string()).unwrap_or_default(),
            cell(chart.trim()),
            cell(row.updated.as_deref().unwrap_or("")),
            cell(&detail(row)),
        ));
    }
    out.push_str(&format!("\n{}\n\n{}\n", doc.counts_line(), doc.cost_line()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::plan_diff::{Compared, Current};

    fn compared(status: &str, label: Convergence) -> OperationDiff {
        OperationDiff::Compared(Compared {
            label,
            why: String::new(),
            release_version: None,
            current: Current {
                revision: Some(2),
                status: status.to_owned(),
                chart_name: "nginx".to_owned(),
                chart_version: "1.0.0".to_owned(),
            },
            masked_keys: Vec::new(),
            values: Vec::new(),
        })
    }

    fn error() -> ErrorReport {
        ErrorReport {
            code: Some("CCE.01".to_owned()),
            message: "boom".to_owned(),
            request_id: None,
        }
    }

    #[test]
    fn a_deployed_release_as_planned_is_in_sync_and_a_changed_one_drifted() {
        assert_eq!(
            classify(&compared("DEPLOYED", Convergence::Unchanged)),
            State::InSync
        );
        assert_eq!(
            classify(&compared("DEPLOYED", Convergence::Change)),
            State::Drifted
        );
        assert_eq!(
            classify(&compared("DEPLOYED", Convergence::Unknown)),
            State::Unknown
        );
    }

    #[test]
    fn an_unhealthy_status_wins_over_the_values() {
        for status in ["FAILED", "UNKNOWN", "PENDING_UPGRADE", "PENDING_INSTALL"] {
            assert_eq!(
                classify(&compared(status, Convergence::Unchanged)),
                State::Unhealthy
            );
            assert_eq!(
                classify(&compared(status, Convergence::Change)),
                State::Unhealthy
            );
        }
    }

    #[test]
    fn a_status_left_out_is_unknown_never_in_sync() {
        let diff = compared(crate::cce::model::NOT_GIVEN_STATUS, Convergence::Unchanged);
        assert_eq!(classify(&diff), State::Unknown);
    }

    #[test]
    fn missing_and_unreadable_releases() {
        assert_eq!(
            classify(&OperationDiff::Missing { error: error() }),
            State::Missing
        );
        assert_eq!(
            classify(&OperationDiff::Error { error: error() }),
            State::Unreachable
        );
    }
}
