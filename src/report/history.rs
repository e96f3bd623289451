//! `flotilla history` as it is shown: each release's last revisions (revision, status, chart
//! version, update time, description), newest first, as a table or JSON.

use serde::Serialize;

use crate::cce::model::Release;
use crate::report::model::ErrorReport;
use crate::terminal::escape_control;

/// One revision of a release, as ShowAutopilotReleaseHistory gave it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Revision {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart_version: Option<String>,
    pub updated: String,
    pub description: String,
}

/// One release's history, or why it could not be read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReleaseHistory {
    pub wave: String,
    pub cluster: String,
    pub namespace: String,
    pub release: String,
    pub revisions: Vec<Revision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

/// The last `keep` of `history` (any order), newest first: by revision, a revision the answer
/// left out counted as oldest.
pub fn last_revisions(history: &[Release], keep: usize) -> Vec<Revision> {
    let mut sorted: Vec<&Release> = history.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.version));
    sorted
        .into_iter()
        .take(keep)
        .map(|r| Revision {
            revision: r.version,
            status: r.status_text(),
            chart_version: r.chart_version.clone(),
            updated: r.update_at.clone(),
            description: r.description.clone(),
        })
        .collect()
}

pub fn render_text(histories: &[ReleaseHistory]) -> String {
    let mut out = String::new();
    for h in histories {
        out.push_str(&format!(
            "{} {}/{} (wave {})\n",
            escape_control(&h.cluster),
            escape_control(&h.namespace),
            escape_control(&h.release),
            escape_control(&h.wave)
        ));
        if let Some(error) = &h.error {
            out.push_str(&format!(
                "  error: {}\n",
                escape_control(&error.to_string())
            ));
            continue;
        }
        if h.revisions.is_empty() {
            out.push_str("  (no revisions)\n");
        }
        for r in &h.revisions {
            let revision = r.revision.map_or_else(|| "?".to_owned(), |v| v.to_string());
            out.push_str(&format!(
                "  revision {revision}  {}  chart {}  {}  {}\n",
                escape_control(&r.status),
                escape_control(r.chart_version.as_deref().unwrap_or("-")),
                escape_control(&r.updated),
                escape_control(&r.description)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(version: Option<i64>) -> Release {
        serde_json::from_value(serde_json::json!({
            "name": "web", "namespace": "default", "status": "DEPLOYED",
            "version": version, "chart_version": "1.0.0", "description": "Upgrade complete"
        }))
        .expect("a release")
    }

    #[test]
    fn the_last_revisions_newest_first() {
        let history: Vec<Release> = [1, 3, 2, 4].into_iter().map(|v| release(Some(v))).collect();
        let kept: Vec<Option<i64>> = last_revisions(&history, 3)
            .into_iter()
            .map(|r| r.revision)
            .collect();
        assert_eq!(kept, [Some(4), Some(3), Some(2)]);
    }

    #[test]
    fn a_revision_left_out_counts_as_oldest() {
        let history = vec![release(None), release(Some(1))];
        let kept = last_revisions(&history, 5);
        assert_eq!(kept[0].revision, Some(1));
        assert_eq!(kept[1].revision, None);
    }
}
