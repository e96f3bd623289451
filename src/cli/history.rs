//! `flotilla history`: flags and wiring. Each selected release's history is read with
//! ShowAutopilotReleaseHistory (one GET each, retries as the client does them) and shown by
//! `report::history`.

use std::collections::HashMap;
use std::path::PathBuf;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Environment;
use super::error::Error;
use super::logging::LogSink;
use super::net::NetworkArgs;
use super::plan::SelectionArgs;
use super::project_ids;
use crate::cce::client::Client;
use crate::cce::credentials;
use crate::cce::error::ApiError;
use crate::cce::model::Release;
use crate::engine::outcome::OperationError;
use crate::engine::pace::Pacer;
use crate::engine::retry::{self, RequestKind};
use crate::error::Exit;
use crate::plan::resolved::{ExpandedPlan, Operation};
use crate::report::history::{ReleaseHistory, last_revisions, render_text};
use crate::report::model::ErrorReport;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HistoryFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flotilla history plans/fleet-upgrade.yaml --select release=storefront\n  flotilla history plans/fleet-upgrade.yaml -n 10 --format json"
)]
pub struct HistoryArgs {
    /// The plan file (`-`: standard input).
    pub plan: PathBuf,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// How many of each release's latest revisions to show.
    #[arg(short = 'n', long = "revisions", value_name = "N", default_value_t = 5)]
    pub revisions: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = HistoryFormat::Text)]
    pub format: HistoryFormat,
    #[command(flatten)]
    pub net: NetworkArgs,
}

/// Reads every selected release's history, `rollout.concurrency` at a time. Exit 1 when one
/// could not be read; 2, with nothing sent, on a bad plan, flag or missing credentials.
pub fn run(args: HistoryArgs, _env: &Environment, logs: &LogSink) -> Result<Exit, Error> {
    let plan = super::load_plan(&args.plan)?;
    logs.mask_with(plan.redactor.clone());
    let mut plan = args.selection.apply_to(&plan, &args.plan)?;
    args.net.retarget(&mut plan)?;
    let credentials = credentials::resolve(&args.net.credential_sources())?;
    let project_ids::ReadConnection {
        client, runtime, ..
    } = project_ids::connect_for_reads(&args.net, &mut plan, credentials)?;
    let client = &client;
    let plan_ref = &plan;
    let now = tokio::time::Instant::now();
    let pacers: HashMap<&str, Pacer> = runtime.block_on(async {
        plan.operations()
            .map(|op| {
                let pacer = Pacer::new(plan.rollout.rate, plan.rollout.burst, now);
                (op.cluster.endpoint.as_str(), pacer)
            })
            .collect()
    });
    let pacers = &pacers;
    let keep = args.revisions;
    let histories: Vec<ReleaseHistory> = runtime.block_on(
        futures::stream::iter(plan.operations())
            .map(|op| async move {
                let read =
                    read_history(client, &pacers[op.cluster.endpoint.as_str()], op, plan_ref).await;
                let (revisions, error) = match read {
                    Ok(history) => (last_revisions(&history, keep), None),
                    Err(error) => {
                        let e = OperationError::from_api("reading the history", &error);
                        (Vec::new(), Some(ErrorReport::from(e)))
                    }
                };
                ReleaseHistory {
                    wave: plan_ref.waves[op.wave].name.clone(),
                    cluster: op.cluster.name.clone(),
                    namespace: op.namespace.clone(),
                    release: op.release.clone(),
                    revisions,
                    error,
                }
            })
            .buffered(plan.rollout.concurrency.max(1))
            .collect(),
    );
    let out = match args.format {
        HistoryFormat::Text => render_text(&histories),
        HistoryFormat::Json => {
            let doc = serde_json::json!({
                "format": "flotilla-history",
                "version": 1,
                "releases": histories,
            });
            super::json_output("history", &doc)?
        }
    };
    print!("{out}");
    Ok(if histories.iter().any(|h| h.error.is_some()) {
        Exit::Failed
    } else {
        Exit::Success
    })
}

/// One release's history, paced by its endpoint's share of the plan's rate and retried as the
/// engine retries a GET (a throttled or failed read is sent again after a back-off, never sooner
/// than `Retry-After`).
async fn read_history(
    client: &Client,
    pacer: &Pacer,
    op: &Operation,
    plan: &ExpandedPlan,
) -> Result<Vec<Release>, ApiError> {
    let never = CancellationToken::new();
    let mut attempts = 0;
    loop {
        // Nothing cancels `never`: the permit always comes.
        let _ = pacer.acquire(&never).await;
        let sent_at = tokio::time::Instant::now();
        attempts += 1;
        let error = match client
            .release_history((&*op.cluster).into(), &op.namespace, &op.release)
            .await
        {
            Ok(history) => return Ok(history),
            Err(error) => error,
        };
        if error.status == Some(429) {
            pacer.on_throttle(sent_at, &error);
        }
        let draw = retry::draw(0, op.index, attempts);
        let decision = retry::decide(
            RequestKind::Get,
            attempts,
            error.class(),
            &plan.rollout.retry,
            draw,
        );
        match decision.retry_delay() {
            Some(delay) => {
                let delay = error.retry_after.map_or(delay, |after| after.max(delay));
                tokio::time::sleep(delay).await;
            }
            None => return Err(error),
        }
    }
}
