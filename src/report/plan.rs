//! The plan as `flotilla plan` shows it: the operations a plan expands to, wave by wave, with the
//! exact request bodies (secrets redacted), as text or as a stable JSON document.

use std::path::Path;

use serde_json::{Value, json};

use crate::cce::address::{ClusterAddress, release_path};
use crate::cce::iam::ProjectIdSource;
use crate::plan::resolved::{ExpandedPlan, Operation, Rate, Wave, duration_text};
use crate::plan::select::Selection;
use crate::secret::Redactor;
use crate::terminal::push_line;

/// Version of the `--format json` document; bumped only on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// The path `apply` sends the operation's PUT to, encoded as the client encodes it.
pub fn request_path(op: &Operation) -> String {
    release_path(
        ClusterAddress::from(&*op.cluster),
        &op.namespace,
        &op.release,
        "",
    )
}

/// `  #3    prod-1 (cluster id)  shop/web  upgrade`: how an operation is named in every listing.
pub fn operation_line(op: &Operation) -> String {
    format!(
        "  #{:<4} {} ({})  {}/{}  {}",
        op.index, op.cluster.name, op.cluster.id, op.namespace, op.release, op.action
    )
}

/// The body as JSON with every secret masked, by the plan's rules.
/// A relative `release_version` shows as the plan wrote it: it is resolved per release only at
/// run time (`plan --diff` shows what it resolves to).
fn redacted_body(op: &Operation, redactor: &Redactor) -> Value {
    let mut body = serde_json::to_value(&*op.body).unwrap_or(Value::Null);
    if let (Some(relative), Some(object)) = (op.relative_version, body.as_object_mut()) {
        let parameters = object
            .entry("parameters")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(parameters) = parameters.as_object_mut() {
            parameters.insert(
                "release_version".to_owned(),
                Value::String(relative.to_string()),
            );
        }
    }
    redactor.redact(&body)
}

fn wave_json(w: &Wave, redactor: &Redactor) -> Value {
    json!({
        "name": w.name,
        "implicit": w.implicit,
        "soak": duration_text::format(w.soak),
        "max_failures": w.max_failures,
        "operations": w.operations.iter().map(|op| operation_json(op, redactor)).collect::<Vec<_>>(),
    })
}

fn operation_json(op: &Operation, redactor: &Redactor) -> Value {
    json!({
        "index": op.index,
        "cluster": {
            "name": op.cluster.name,
            "id": op.cluster.id,
            "labels": op.cluster.labels,
            "region": op.cluster.region,
            "endpoint": op.cluster.endpoint,
            "project_id": op.cluster.project_id,
        },
        "namespace": op.namespace,
        "release": op.release,
        "action": op.action,
        "rollback_on_failure": op.rollback_on_failure,
        "request": {
            "method": "PUT",
            "url": format!("{}{}", op.cluster.endpoint, request_path(op)),
            "body": redacted_body(op, redactor),
        },
    })
}

/// The `--format json` document (shape documented in `docs/src/commands.md`).
pub fn render_json(path: &Path, plan: &ExpandedPlan, selection: &Selection) -> Value {
    json!({
        "format_version": FORMAT_VERSION,
        "plan": {
            "path": path.display().to_string(),
            "name": plan.name,
            "sha256": plan.hash,
        },
        "selection": {
            "wave": selection.waves,
            "select": selection.selectors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "shard": selection.shard.map(|s| s.to_string()),
            "shard_across_waves": selection.shard_across_waves,
        },
        "rollout": plan.rollout,
        "operation_count": plan.operation_count(),
        "waves": plan.waves.iter().map(|w| wave_json(w, &plan.redactor)).collect::<Vec<_>>(),
    })
}

/// The human-readable listing.
pub fn render_text(path: &Path, plan: &ExpandedPlan, selection: &Selection) -> String {
    let mut out = String::new();
    let r = &plan.rollout;
    push_line(
        &mut out,
        &format!(
            "plan {} ({}, sha256 {}): {} operation(s) in {} wave(s)",
            plan.name,
            path.display(),
            plan.short_hash(),
            plan.operation_count(),
            plan.waves.len()
        ),
    );
    if !selection.is_everything() {
        push_line(
            &mut out,
            &format!("selection: {}", selection.flags().join(" ")),
        );
    }
    let rate = match r.rate {
        Rate::PerSecond(n) => format!("{n}/s"),
        Rate::Unlimited => "unlimited".to_owned(),
    };
    push_line(
        &mut out,
        &format!(
            "rollout: concurrency {}, per cluster {}, rate {rate} (burst {}), retry {} attempt(s) backoff {}..{}, request timeout {}, preflight {}, wait {}, max failures {}",
            r.concurrency,
            r.per_cluster,
            r.burst,
            r.retry.attempts,
            duration_text::format(r.retry.backoff),
            duration_text::format(r.retry.max_backoff),
            duration_text::format(r.request_timeout),
            if r.preflight { "on" } else { "off" },
            if r.wait.enabled {
                format!(
                    "until DEPLOYED (timeout {}, poll {})",
                    duration_text::format(r.wait.timeout),
                    duration_text::format(r.wait.poll)
                )
            } else {
                "off".to_owned()
            },
            r.max_failures
        ),
    );
    if plan.waves.is_empty() {
        push_line(&mut out, "");
        push_line(&mut out, "nothing selected");
    }
    for (w, wave) in plan.waves.iter().enumerate() {
        let mut settings = vec![format!("{} operation(s)", wave.operations.len())];
        if !wave.soak.is_zero() {
            settings.push(format!("soak {}", duration_text::format(wave.soak)));
        }
        if let Some(b) = wave.max_failures {
            settings.push(format!("max failures {b}"));
        }
        let kind = if wave.implicit {
            " (implicit: operations no declared wave selects)"
        } else {
            ""
        };
        push_line(&mut out, "");
        push_line(
            &mut out,
            &format!(
                "wave {}/{}: {}{kind}, {}",
                w + 1,
                plan.waves.len(),
                wave.name,
                settings.join(", ")
            ),
        );
        for op in &wave.operations {
            let rollback = if op.rollback_on_failure {
                ", rollback on failure"
            } else {
                ""
            };
            push_line(&mut out, &format!("{}{rollback}", operation_line(op)));
            push_line(
                &mut out,
                &format!("         PUT {}{}", op.cluster.endpoint, request_path(op)),
            );
            let body =
                serde_json::to_string(&redacted_body(op, &plan.redactor)).unwrap_or_default();
            push_line(&mut out, &format!("         {body}"));
        }
    }
    out
}

/// Where one cluster's project id comes from (`flotilla plan`), and what it is when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterProjectId {
    pub cluster: String,
    pub region: String,
    pub source: ProjectIdSource,
    pub project_id: Option<String>,
    /// The IAM endpoint asked, or to be asked.
    pub iam_endpoint: Option<String>,
}

/// `project ids:` and one line per source (and region, for IAM), naming its clusters.
pub fn render_project_ids(rows: &[ClusterProjectId]) -> String {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for row in rows {
        let said = match (row.source, &row.iam_endpoint) {
            (ProjectIdSource::Iam, Some(endpoint)) => format!(
                "IAM at {endpoint} for region {}: {}",
                row.region,
                row.project_id.as_deref().unwrap_or("?")
            ),
            (ProjectIdSource::IamWhenSending, Some(endpoint)) => format!(
                "IAM at {endpoint} for region {}, asked by apply and plan --diff (plan alone sends nothing)",
                row.region
            ),
            (source, _) => source.describe().to_owned(),
        };
        match groups.iter_mut().find(|(s, _)| *s == said) {
            Some((_, clusters)) => clusters.push(&row.cluster),
            None => groups.push((said, vec![&row.cluster])),
        }
    }
    let mut out = String::new();
    if groups.is_empty() {
        return out;
    }
    push_line(&mut out, "");
    push_line(&mut out, "project ids:");
    for (said, clusters) in groups {
        push_line(&mut out, &format!("  {}: {said}", clusters.join(", ")));
    }
    out
}

/// Adds `project_id_source` (and a project id IAM gave) to every operation's cluster of a
/// `--format json` document.
pub fn add_project_ids_to_json(doc: &mut Value, rows: &[ClusterProjectId]) {
    let Some(waves) = doc.get_mut("waves").and_then(Value::as_array_mut) else {
        return;
    };
    for op in waves
        .iter_mut()
        .filter_map(|w| w.get_mut("operations").and_then(Value::as_array_mut))
        .flatten()
    {
        let Some(cluster) = op.get_mut("cluster").and_then(Value::as_object_mut) else {
            continue;
        };
        let name = cluster.get("name").and_then(Value::as_str).unwrap_or("");
        let Some(row) = rows.iter().find(|r| r.cluster == name) else {
            continue;
        };
        if row.project_id.is_some() {
            cluster.insert("project_id".to_owned(), json!(row.project_id));
        }
        cluster.insert("project_id_source".to_owned(), json!(row.source.as_str()));
    }
}
