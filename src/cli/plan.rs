//! `flotilla plan`: flags and wiring. The listing is rendered by `report::plan`; with `--diff`,
//! every release is read and judged by `engine::preview` and shown by `report::plan_diff`.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::Environment;
use super::logging::LogSink;
use super::net::NetworkArgs;
use super::values;
use crate::cce::client::Client;
use crate::cce::credentials;
use crate::engine::preview::preview;
use crate::error::{Error, Exit};
use crate::plan::resolved::ExpandedPlan;
use crate::plan::select::{self, Selector, Shard};
use crate::report::plan::{render_json, render_text};
use crate::report::plan_diff::{self, OperationDiff};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flotilla plan plans/demo.yaml\n  flotilla plan plans/demo.yaml --select env=prod --shard 1/4 --format json\n  flotilla plan plans/fleet-upgrade.yaml --diff        # GETs every release: needs credentials"
)]
pub struct PlanArgs {
    /// The plan file.
    pub plan: PathBuf,
    /// Keep only operations matching KEY=VALUE: cluster=NAME, namespace=NS, release=NAME, or a
    /// cluster label such as env=prod. Repeatable; all must match.
    #[arg(long = "select", value_name = "EXPR")]
    pub select: Vec<Selector>,
    /// Keep the K-th of N shards (whole clusters, deterministic), so that N jobs split a fleet.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Mask every values key and every value this regular expression finds, in every output
    /// (repeatable).
    #[arg(long = "redact", value_name = "REGEX", value_parser = values::redact_pattern)]
    pub redact: Vec<regex::Regex>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// GET every targeted release and show what apply would do: `change`, `unchanged` or
    /// `unknown` per operation, why, and the values keys it would add, change or remove
    /// (secrets redacted). Needs credentials; sends only GETs.
    #[arg(long)]
    pub diff: bool,
    #[command(flatten)]
    pub net: NetworkArgs,
}

pub fn run(args: PlanArgs, _env: &Environment, logs: &LogSink) -> Result<Exit, Error> {
    let plan = super::load_plan_redacting(&args.plan, &args.redact)?;
    logs.mask_with(plan.redactor.clone());
    let filtered =
        select::filter(&plan, &args.select, args.shard).map_err(|e| Error::Usage(e.to_string()))?;
    if args.diff {
        return run_diff(&args, filtered);
    }
    if args.net.endpoint.is_some() || args.net.token_file.is_some() || args.net.ca_cert.is_some() {
        return Err(Error::Usage(
            "--endpoint, --token-file and --ca-cert only apply with --diff (plan sends nothing otherwise)"
                .to_owned(),
        ));
    }
    let out = match args.format {
        Format::Text => render_text(&args.plan, &filtered, &args.select, args.shard),
        Format::Json => {
            let doc = render_json(&args.plan, &filtered, &args.select, args.shard);
            let mut s = serde_json::to_string_pretty(&doc)
                .map_err(|e| Error::Other(format!("cannot encode the plan as JSON: {e}")))?;
            s.push('\n');
            crate::terminal::escape_control_in_json(&s).into_owned()
        }
    };
    print!("{out}");
    Ok(Exit::Success)
}

/// `plan --diff`: checks the network flags, finds credentials (none: exit 2, nothing sent),
/// retargets and checks every endpoint, then reads every release. Exit 1 when a release is
/// missing or could not be read.
fn run_diff(args: &PlanArgs, mut plan: ExpandedPlan) -> Result<Exit, Error> {
    args.net.retarget(&mut plan)?;
    let credentials = credentials::resolve(&args.net.credential_sources())?;
    let client = Client::new(args.net.client_config(&plan), credentials)
        .map_err(|e| Error::Usage(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    let never = CancellationToken::new();
    let previews = runtime.block_on(preview(&plan, &client, &never));
    let diffs: Vec<OperationDiff> = previews.into_iter().map(OperationDiff::from).collect();
    let out = match args.format {
        Format::Text => plan_diff::render_text(&plan, &diffs),
        Format::Json => {
            let mut doc = render_json(&args.plan, &plan, &args.select, args.shard);
            plan_diff::add_to_json(&mut doc, &plan, &diffs);
            let mut s = serde_json::to_string_pretty(&doc)
                .map_err(|e| Error::Other(format!("cannot encode the diff as JSON: {e}")))?;
            s.push('\n');
            crate::terminal::escape_control_in_json(&s).into_owned()
        }
    };
    print!("{out}");
    Ok(if plan_diff::all_read(&diffs) {
        Exit::Success
    } else {
        Exit::Failed
    })
}
