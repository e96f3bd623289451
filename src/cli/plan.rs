//! `flotilla plan`: flags and wiring. The listing is rendered by `report::plan`; with `--diff`,
//! every release is read and judged by `engine::preview` and shown by `report::plan_diff`.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::Environment;
use super::error::Error;
use super::logging::LogSink;
use super::net::NetworkArgs;
use super::project_ids::{self, IamOverrides};
use super::values;
use crate::cce::credentials;
use crate::engine::preview::preview;
use crate::error::Exit;
use crate::plan::resolved::ExpandedPlan;
use crate::plan::select::{self, Selection, Selector, Shard};
use crate::report::plan::{add_project_ids_to_json, render_json, render_project_ids, render_text};
use crate::report::plan_diff::{self, OperationDiff};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flotilla plan plans/demo.yaml\n  flotilla plan plans/demo.yaml --wave prod --shard 1/4 --format json\n  flotilla plan plans/fleet-upgrade.yaml --diff        # GETs every release: needs credentials"
)]
pub struct PlanArgs {
    /// The plan file (`-`: standard input).
    pub plan: PathBuf,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Mask every values key and every value this regular expression finds, in every output
    /// (repeatable).
    #[arg(long = "redact", value_name = "REGEX", value_parser = values::redact_pattern)]
    pub redact: Vec<regex::Regex>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// GET every targeted release and show what apply would do: `change`, `unchanged` or
    /// `unknown` per operation, why, the values keys it would add, change or remove (secrets
    /// redacted), and the revision a rollback to `previous` or `-N` resolves to on each release.
    /// Needs credentials; sends only GETs.
    #[arg(long)]
    pub diff: bool,
    #[command(flatten)]
    pub net: NetworkArgs,
}

/// `--wave`, `--select` and `--shard`, shared by `plan` and `apply` so that `plan` shows exactly
/// what an `apply` with the same flags would run.
#[derive(Debug, Default, clap::Args)]
pub struct SelectionArgs {
    /// Keep only the operations of wave NAME (repeatable). One CI job (or one matrix of shard
    /// jobs) per wave, each after the previous wave's `report merge`, keeps waves in order.
    #[arg(long = "wave", value_name = "NAME")]
    pub waves: Vec<String>,
    /// Keep only operations matching KEY=VALUE: cluster=NAME, namespace=NS, release=NAME, or a
    /// cluster label such as env=prod. Repeatable; all must match.
    #[arg(long = "select", value_name = "EXPR")]
    pub select: Vec<Selector>,
    /// Keep the K-th of N shards: whole clusters, dealt deterministically within the wave kept,
    /// so that N jobs split it. Refused over more than one wave: add --wave NAME.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Shard operations of several waves anyway. Shards then do not wait for each other: one
    /// may start a later wave while another is on an earlier one, and each wave's soak and
    /// max_failures hold only within a shard.
    #[arg(long, requires = "shard")]
    pub shard_across_waves: bool,
}

impl SelectionArgs {
    pub fn selection(&self) -> Selection {
        Selection {
            waves: self.waves.clone(),
            selectors: self.select.clone(),
            shard: self.shard,
            shard_across_waves: self.shard_across_waves,
        }
    }

    /// What the selection keeps of `plan`, read from `path`; a refusal is a usage error.
    pub fn apply_to(
        &self,
        plan: &ExpandedPlan,
        path: &std::path::Path,
    ) -> Result<ExpandedPlan, Error> {
        select::select(plan, &self.selection()).map_err(|e| Error::Explained(e.explain(path)))
    }
}

pub fn run(args: PlanArgs, _env: &Environment, logs: &LogSink) -> Result<Exit, Error> {
    let plan = super::load_plan_redacting(&args.plan, &args.redact)?;
    logs.mask_with(plan.redactor.clone());
    let filtered = args.selection.apply_to(&plan, &args.plan)?;
    if args.diff {
        return run_diff(&args, filtered);
    }
    if args.net.endpoint.is_some() || args.net.token_file.is_some() || args.net.ca_cert.is_some() {
        return Err(Error::Usage(
            "--endpoint, --token-file and --ca-cert only apply with --diff (plan sends nothing otherwise)"
                .to_owned(),
        ));
    }
    // Where each project id would come from: the credentials are looked up (nothing is sent),
    // and IAM only named, not asked.
    args.net.check()?;
    let found = credentials::resolve_with_origin(&args.net.credential_sources()).ok();
    let lookups = found.as_ref().map_or_else(Vec::new, |(credentials, _)| {
        project_ids::lookups(
            &filtered,
            credentials,
            &IamOverrides::from_process(args.net.iam_endpoint.as_deref()),
        )
    });
    let rows = project_ids::sources(
        &filtered,
        &project_ids::set_in_plan(&filtered),
        found.as_ref().map(|(c, origin)| (c, *origin)),
        &lookups,
        false,
    );
    let out = match args.format {
        Format::Text => {
            render_text(&args.plan, &filtered, &args.selection.selection())
                + &render_project_ids(&rows)
        }
        Format::Json => {
            let mut doc = render_json(&args.plan, &filtered, &args.selection.selection());
            add_project_ids_to_json(&mut doc, &rows);
            super::json_output("plan", &doc)?
        }
    };
    print!("{out}");
    Ok(Exit::Success)
}

/// `plan --diff`: checks the network flags, finds credentials (none: exit 2, nothing sent),
/// retargets and checks every endpoint, finds the project ids IAM must give (a wrong answer:
/// exit 2, no release read), then reads every release. Exit 1 when a release is missing or
/// could not be read; exit 2, with no diff, at the first refusal of the credentials.
fn run_diff(args: &PlanArgs, mut plan: ExpandedPlan) -> Result<Exit, Error> {
    args.net.retarget(&mut plan)?;
    let (credentials, origin) = credentials::resolve_with_origin(&args.net.credential_sources())?;
    let in_plan = project_ids::set_in_plan(&plan);
    let connection = project_ids::connect_for_reads(&args.net, &mut plan, credentials.clone())?;
    let (client, runtime, lookups) = (&connection.client, &connection.runtime, &connection.lookups);
    let never = CancellationToken::new();
    let rows = project_ids::sources(&plan, &in_plan, Some((&credentials, origin)), lookups, true);
    let read = runtime.block_on(preview(&plan, client, &never));
    if let Some(refusal) = read.credentials_refused {
        return Err(Error::CredentialsRefused { refusal });
    }
    let diffs: Vec<OperationDiff> = read.previews.into_iter().map(OperationDiff::from).collect();
    let out = match args.format {
        Format::Text => plan_diff::render_text(&plan, &diffs) + &render_project_ids(&rows),
        Format::Json => {
            let mut doc = render_json(&args.plan, &plan, &args.selection.selection());
            plan_diff::add_to_json(&mut doc, &plan, &diffs);
            add_project_ids_to_json(&mut doc, &rows);
            super::json_output("diff", &doc)?
        }
    };
    print!("{out}");
    Ok(if plan_diff::all_read(&diffs) {
        Exit::Success
    } else {
        Exit::Failed
    })
}
