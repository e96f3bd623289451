//! `flotilla status`: flags and wiring. Every selected release is read and judged by the engine's
//! preview (the same read-and-judge path as `plan --diff`), classified and shown by
//! `report::status`, with the requests it sent counted per cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

use super::Environment;
use super::error::Error;
use super::logging::LogSink;
use super::net::NetworkArgs;
use super::plan::SelectionArgs;
use super::project_ids;
use super::values;
use crate::cce::credentials;
use crate::cce::error::ApiError;
use crate::cce::model::{Chart, Release, UpdateReleaseBody};
use crate::engine::api::{ReleaseAddress, ReleaseApi};
use crate::engine::preview::preview;
use crate::error::Exit;
use crate::plan::resolved::ClusterTarget;
use crate::report::status::{Cost, StatusDocument, render_markdown, render_text};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes with --detailed-exitcode:\n  0  every release in sync (or unknown)\n  1  a release could not be read (an error reaching the API)\n  2  a release drifted, is missing or is unhealthy\n\nExamples:\n  flotilla status plans/fleet-upgrade.yaml\n  flotilla status plans/fleet-upgrade.yaml --wave prod --format markdown --detailed-exitcode"
)]
pub struct StatusArgs {
    /// The plan file (`-`: standard input).
    pub plan: PathBuf,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Mask every values key and every value this regular expression finds, in every output
    /// (repeatable).
    #[arg(long = "redact", value_name = "REGEX", value_parser = values::redact_pattern)]
    pub redact: Vec<regex::Regex>,
    /// Output format: a table, JSON (schema/status.schema.json) or Markdown for a CI summary.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
    /// Exit 0 when every release is in sync, 2 when one drifted, is missing or is unhealthy,
    /// 1 when one could not be read (as `terraform plan -detailed-exitcode`). Without it the
    /// exit is 0 unless the command itself failed.
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub net: NetworkArgs,
}

/// The API, with every request counted against its cluster's name.
pub(crate) struct Counting<A> {
    inner: A,
    counts: Mutex<BTreeMap<String, u64>>,
}

impl<A> Counting<A> {
    pub(crate) fn new(inner: A) -> Self {
        Counting {
            inner,
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    fn count(&self, cluster: &ClusterTarget) {
        // A poisoned lock only means another count panicked: the tally is still a number.
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(cluster.name.clone()).or_default() += 1;
    }

    pub(crate) fn cost(&self) -> Cost {
        let per_cluster = self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Cost {
            total: per_cluster.values().sum(),
            per_cluster,
        }
    }
}

impl<A: ReleaseApi> ReleaseApi for Counting<A> {
    async fn update_release(
        &self,
        at: ReleaseAddress<'_>,
        body: &UpdateReleaseBody,
    ) -> Result<Release, ApiError> {
        self.count(at.cluster);
        self.inner.update_release(at, body).await
    }

    async fn show_release(&self, at: ReleaseAddress<'_>) -> Result<Release, ApiError> {
        self.count(at.cluster);
        self.inner.show_release(at).await
    }

    async fn release_history(&self, at: ReleaseAddress<'_>) -> Result<Vec<Release>, ApiError> {
        self.count(at.cluster);
        self.inner.release_history(at).await
    }

    async fn show_chart(&self, cluster: &ClusterTarget, chart_id: &str) -> Result<Chart, ApiError> {
        self.count(cluster);
        self.inner.show_chart(cluster, chart_id).await
    }
}

/// Loads and selects the plan, finds credentials (none: exit 2, nothing sent), reads and judges
/// every release, prints the status.
pub fn run(args: StatusArgs, _env: &Environment, logs: &LogSink) -> Result<Exit, Error> {
    let plan = super::load_plan_redacting(&args.plan, &args.redact)?;
    logs.mask_with(plan.redactor.clone());
    let mut plan = args.selection.apply_to(&plan, &args.plan)?;
    args.net.retarget(&mut plan)?;
    let credentials = credentials::resolve(&args.net.credential_sources())?;
    let project_ids::ReadConnection {
        client, runtime, ..
    } = project_ids::connect_for_reads(&args.net, &mut plan, credentials)?;
    let client = Counting::new(client);
    let never = CancellationToken::new();
    let read = runtime.block_on(preview(&plan, &client, &never));
    if let Some(refusal) = read.credentials_refused {
        return Err(Error::CredentialsRefused { refusal });
    }
    let doc = StatusDocument::new(&plan, read.previews, client.cost());
    let out = match args.format {
        StatusFormat::Text => render_text(&doc),
        StatusFormat::Markdown => render_markdown(&doc),
        StatusFormat::Json => super::json_output("status", &doc)?,
    };
    print!("{out}");
    if !args.detailed_exitcode {
        return Ok(Exit::Success);
    }
    Ok(match doc.detailed_exit_code() {
        0 => Exit::Success,
        1 => Exit::Failed,
        _ => Exit::Invalid,
    })
}
