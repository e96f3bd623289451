//! One operation's state machine: preflight GET, PUT with retries and reconciliation, wait, and
//! the rollback of a failed upgrade.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::api::{ReleaseAddress, ReleaseApi};
use super::charts::ChartCache;
use super::converge::{self, DesiredChart, Landed, RollbackTarget};
use super::event::{Event, RequestEvent};
use super::gate::{Gate, Pass};
use super::journal::{Journal, JournalError, PutIntent};
use super::outcome::{Attempt, OperationError, OperationResult, Outcome, Phase, RollbackResult};
use super::pace::{Pacer, RateChange};
use super::preview::Preview;
use super::retry::{self, Decision, RequestKind};
use crate::cce::error::{ApiError, ErrorClass, FailureKind};
use crate::cce::model::{Action, Release, ReleaseParameters, ReleaseStatus, UpdateReleaseBody};
use crate::plan::resolved::{Operation, Rollout};

/// What an interrupted or resumed operation knew before this run.
#[derive(Clone, Debug, PartialEq)]
pub enum PriorState {
    /// Succeeded in an earlier run: not touched, not even with a GET. The earlier result, when
    /// given, is reported (marked `from_journal`).
    AlreadySucceeded(Option<Box<OperationResult>>),
    /// A PUT may have been sent: reconcile with a GET before sending anything.
    InFlight { version_before: Option<i64> },
}

/// A client-side bound on one call, beyond the client's own `request_timeout`, so that an API
/// that never answers cannot hold an operation forever.
const CALL_GUARD: Duration = Duration::from_secs(1);

/// Shared by every operation of a run.
pub(crate) struct Context<'a, A> {
    pub api: &'a A,
    pub rollout: &'a Rollout,
    pub events: &'a mpsc::Sender<Event>,
    pub cancel: &'a CancellationToken,
    pub journal: Option<&'a dyn Journal>,
    pub dry_run: bool,
    /// Send every PUT, whatever the release looks like (no convergence decision).
    pub force: bool,
    /// Charts looked up this run, shared by every operation.
    pub charts: &'a ChartCache,
    pub seed: u64,
    pub run_start: Instant,
}

impl<'a, A> Context<'a, A> {
    /// Journals the intent of `op`'s change, its PUT (not a rollback's), when there is a journal:
    /// the scheduler ahead of the start and the operation itself must write the same line.
    pub(crate) fn journal_change(
        &self,
        op: &'a Operation,
        body: &UpdateReleaseBody,
        version_before: Option<i64>,
    ) -> Option<Announced<'a>> {
        self.journal.map(|journal| {
            journal.before_put(PutIntent {
                operation: op,
                version_before,
                release_version: converge::rollback_version(body),
                rollback: false,
                dry_run: self.dry_run,
            })
        })
    }
}

/// Why an ambiguous change is not resent when the release cannot show whether it landed.
const CANNOT_TELL: &str =
    "no revision from before it, and only masked keys or an unknown chart could tell";

enum End {
    Succeeded,
    /// Already as planned: nothing sent.
    Unchanged,
    /// Not at the revision it was expected at: nothing sent; why.
    Skipped(String),
    Failed(OperationError),
    Cancelled,
}

/// An operation ended before its step completed.
enum Stop {
    Failed(OperationError),
    Cancelled,
}

impl From<Stop> for End {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Failed(error) => End::Failed(error),
            Stop::Cancelled => End::Cancelled,
        }
    }
}

/// A GET that did not produce a release.
enum ReadError {
    Api(ApiError),
    Cancelled,
}

enum Reconciled {
    Applied(Release),
    Unchanged(Release),
    /// Without `version_before`, only keys the API masks (or an unknown chart or rollback
    /// target) could tell.
    Unknown,
}

/// How polling ended; a release reached is in `last_seen`.
enum PollEnd {
    Reached,
    TimedOut,
    Failed(ApiError),
    Cancelled,
}

enum PutEnd {
    /// Applied; the revision the PUT answered with, when it answered.
    Applied(Option<i64>),
    /// Refused because the release is busy with another operation: nothing applied; the
    /// caller waits for it to settle before sending again.
    Busy,
    Failed(OperationError),
    Cancelled,
}

pub(crate) struct OperationRun<'c, 'a, A> {
    ctx: &'c Context<'a, A>,
    op: &'a Operation,
    body: &'c UpdateReleaseBody,
    /// The body with the revision `previous` or `-N` resolved to on this release.
    resolved: Option<Arc<UpdateReleaseBody>>,
    /// The release's history as read to resolve that revision, kept for the judgement.
    history: Option<Vec<Release>>,
    pacer: &'c Pacer,
    /// The endpoint's credential gate: every request passes it, and its `stop` token (the run's
    /// cancel, or a refusal of the credentials) ends every wait of this operation.
    gate: &'c Gate,
    /// Leave for the request being sent, answered once it comes back.
    pass: Option<Pass<'c>>,
    endpoint: &'a str,
    result: OperationResult,
    draws: u32,
    /// Boxed: every future of the operation holds this struct, and a release is large.
    last_seen: Option<Box<Release>>,
}

/// An intent the scheduler journaled ahead of the operation's start: resolves once durable.
pub(crate) type Announced<'a> = BoxFuture<'a, Result<(), JournalError>>;

impl<'c, 'a, A: ReleaseApi> OperationRun<'c, 'a, A> {
    pub(crate) fn new(
        ctx: &'c Context<'a, A>,
        op: &'a Operation,
        body: &'c UpdateReleaseBody,
        pacer: &'c Pacer,
        gate: &'c Gate,
    ) -> Self {
        let mut result = OperationResult::new(op, Outcome::Failed, ctx.dry_run);
        result.started_at = Instant::now() - ctx.run_start;
        OperationRun {
            ctx,
            op,
            body,
            resolved: None,
            history: None,
            pacer,
            gate,
            pass: None,
            endpoint: &op.cluster.endpoint,
            result,
            draws: 0,
            last_seen: None,
        }
    }

    /// Runs the operation to its end. `announced` is its intent when the scheduler journaled
    /// it ahead; the PUT waits for it rather than journaling another.
    pub(crate) async fn run(
        mut self,
        prior: Option<&PriorState>,
        announced: Option<Announced<'a>>,
    ) -> OperationResult {
        let started = Instant::now();
        let end = self.drive(prior, announced).await;
        let refused = matches!(end, End::Cancelled)
            .then(|| self.refused_by_endpoint())
            .flatten();
        let mut result = self.result;
        if let Some(seen) = &self.last_seen {
            result.final_status = seen.status.clone();
            if result.put_applied || result.dry_run {
                result.version_after = seen.version;
            }
        }
        match end {
            End::Succeeded => result.outcome = Outcome::Succeeded,
            End::Unchanged => result.outcome = Outcome::Unchanged,
            End::Skipped(reason) => {
                result.outcome = Outcome::Skipped;
                result.skip_reason = Some(reason);
            }
            End::Failed(error) => {
                result.outcome = Outcome::Failed;
                result.error = Some(error);
            }
            End::Cancelled => match refused {
                // Stopped by its endpoint's refusal of the credentials, not by a signal.
                Some(refusal) if !result.put_sent => {
                    result.outcome = Outcome::Skipped;
                    result.skip_reason = Some(format!("not started: {refusal}"));
                }
                Some(refusal) => {
                    // The PUT may have landed: a resume reconciles a cancelled one first.
                    result.outcome = Outcome::Cancelled;
                    result.skip_reason = Some(format!("stopped after its PUT: {refusal}"));
                }
                None => {
                    result.outcome = Outcome::Cancelled;
                    result.skip_reason = Some(interrupted_reason(&result));
                }
            },
        }
        result.duration = Instant::now() - started;
        result
    }

    /// The endpoint's refusal of the credentials, when that (and not the run's cancel) is what
    /// stopped this operation.
    fn refused_by_endpoint(&self) -> Option<String> {
        if self.ctx.cancel.is_cancelled() {
            return None;
        }
        self.gate.refusal_summary()
    }

    /// A PUT that may have been applied leaves the release in a state no GET has seen: the
    /// report must not show the state from before it as the final one.
    fn forget_what_was_seen(&mut self) {
        self.last_seen = None;
    }

    fn address(&self) -> ReleaseAddress<'a> {
        ReleaseAddress {
            cluster: &self.op.cluster,
            namespace: &self.op.namespace,
            name: &self.op.release,
        }
    }

    fn next_draw(&mut self) -> f64 {
        self.draws += 1;
        retry::draw(self.ctx.seed, self.op.index, self.draws)
    }

    async fn drive(
        &mut self,
        prior: Option<&PriorState>,
        mut announced: Option<Announced<'a>>,
    ) -> End {
        let rollout = self.ctx.rollout;
        let mut version_before = None;
        let mut already_applied = None;
        if let Some(PriorState::InFlight {
            version_before: before,
        }) = prior
        {
            version_before = *before;
            self.result.version_before = *before;
            self.result.put_sent = true;
            match self.reconcile(Phase::Reconcile, *before).await {
                Ok(Reconciled::Applied(release)) => {
                    self.result.reconciled = true;
                    already_applied = Some(release.version);
                }
                Ok(Reconciled::Unchanged(release)) => {
                    let waited = !judgeable(&release);
                    if waited && let Err(stop) = self.settle_before_put(&mut version_before).await {
                        return stop.into();
                    }
                    // The change is still to be sent: a relative revision is resolved afresh.
                    if let Some(relative) = self.op.relative_version {
                        let current = self.as_settled(waited, release);
                        if let Err(end) = self.resolve_relative(relative, &current).await {
                            return end;
                        }
                    }
                }
                Ok(Reconciled::Unknown) => {
                    return End::Failed(OperationError::message(format!(
                        "interrupted run: cannot tell whether the change was applied ({CANNOT_TELL}); not resent"
                    )));
                }
                Err(stop) => return stop.into(),
            }
        } else if rollout.preflight || self.op.reads_before_put() {
            // With preflight off, a relative revision or an expected one is still read for.
            match self.get(Phase::Preflight).await {
                Ok(release) => {
                    version_before = release.version;
                    self.result.version_before = release.version;
                    // A release changing, or an answer without its status or revision, is
                    // read again until it can be judged: a change is only ever judged, and
                    // later proven, against a known revision.
                    let waited = !judgeable(&release);
                    if waited && let Err(stop) = self.settle_before_put(&mut version_before).await {
                        return stop.into();
                    }
                    let current = self.as_settled(waited, release);
                    if let Err(end) = self.prepare_change(&current).await {
                        return end;
                    }
                }
                Err(ReadError::Api(error)) if error.status == Some(404) => {
                    return End::Failed(OperationError::from_api("release not found", &error));
                }
                Err(ReadError::Api(error)) => {
                    return End::Failed(OperationError::from_api("preflight", &error));
                }
                Err(ReadError::Cancelled) => return End::Cancelled,
            }
        }

        let applied = match already_applied {
            Some(version) => version,
            None => {
                let mut puts = 0;
                loop {
                    let resolved = self.resolved.clone();
                    let body = resolved.as_deref().unwrap_or(self.body);
                    // After a busy release was waited out the change is journaled again, with
                    // the revision it is now judged against.
                    let durable = announced
                        .take()
                        .or_else(|| self.ctx.journal_change(self.op, body, version_before));
                    if let Some(durable) = durable
                        && let Err(error) = durable.await
                    {
                        return End::Failed(OperationError::message(format!(
                            "{error}; nothing sent"
                        )));
                    }
                    match self.put(body, version_before, Phase::Put, &mut puts).await {
                        PutEnd::Applied(release) => break release,
                        PutEnd::Busy => {
                            if let Err(end) = self.after_busy(&mut version_before).await {
                                return end;
                            }
                        }
                        PutEnd::Failed(error) => return End::Failed(error),
                        PutEnd::Cancelled => return End::Cancelled,
                    }
                }
            }
        };
        if !self.ctx.dry_run {
            self.result.put_applied = true;
        }
        if self.ctx.dry_run || !rollout.wait.enabled {
            return End::Succeeded;
        }

        let first_new = first_new_version(version_before, applied);
        let failure = match self.wait_for_change(Phase::Wait, first_new, true).await {
            Ok(()) => return End::Succeeded,
            Err(WaitFailure::Cancelled) => return End::Cancelled,
            Err(WaitFailure::Settled(error)) => (error, true),
            Err(WaitFailure::Other(error)) => (error, false),
        };
        let (error, settled_badly) = failure;
        let rollback_applies = self.op.rollback_on_failure
            && self.op.action == Action::Upgrade
            && settled_badly
            && !self.gate.stop().is_cancelled();
        if let (true, Some(to_version)) = (rollback_applies, version_before) {
            let rollback = self.roll_back(to_version).await;
            self.result.rollback = Some(rollback);
        }
        End::Failed(error)
    }

    /// Judges the settled release before its change, as the preflight does: an undo's expected
    /// revision, a relative `release_version` resolved on it, and (with preflight on, without
    /// `--force`) whether the PUT would change anything. `Err` ends the operation there.
    async fn prepare_change(&mut self, current: &Release) -> Result<(), End> {
        if let Some(expected) = self.op.expected_revision
            && current.version != Some(expected)
            && !self.ctx.force
        {
            return Err(End::Skipped(format!(
                "changed since the run being undone: at revision {}, not the {expected} that run left; not rolled back (--force rolls it back anyway)",
                current.revision_text()
            )));
        }
        if let Some(relative) = self.op.relative_version {
            self.resolve_relative(relative, current).await?;
        }
        if self.ctx.rollout.preflight && !self.ctx.force {
            let decision = self.converge(current).await.map_err(End::from)?;
            self.result.convergence = Some(decision.label());
            let note = decision.note();
            if decision.sends(false) {
                self.result.note = Some(note);
            } else if self.ctx.dry_run {
                // A dry run validates every request of the plan: it still sends.
                self.result.note = Some(format!("{note} (dry run: sent anyway)"));
            } else {
                self.result.note = Some(note);
                return Err(End::Unchanged);
            }
        }
        Ok(())
    }

    /// The service refused the change because the release is busy with another operation:
    /// nothing was applied. Waits (up to `wait.timeout`) for the release to settle, makes the
    /// revision it settled at `version_before`, and judges it again as the preflight would (it
    /// may now be as planned: `Err(End::Unchanged)`).
    async fn after_busy(&mut self, version_before: &mut Option<i64>) -> Result<(), End> {
        if let Err(stop) = self.settle_before_put(version_before).await {
            return Err(match stop {
                Stop::Failed(mut error) => {
                    error.message = format!(
                        "busy: the change was refused and not sent again; {}",
                        error.message
                    );
                    End::Failed(error)
                }
                stop => stop.into(),
            });
        }
        let Some(settled) = self.last_seen.as_deref().cloned() else {
            return Ok(());
        };
        if self.ctx.rollout.preflight || self.op.reads_before_put() {
            self.prepare_change(&settled).await?;
        }
        Ok(())
    }

    /// The release as the change is judged against: the one it settled as when the operation
    /// waited for it to leave `PENDING_*`, else `read` itself.
    fn as_settled(&self, waited: bool, read: Release) -> Release {
        match (waited, &self.last_seen) {
            (true, Some(settled)) => (**settled).clone(),
            _ => read,
        }
    }

    /// Resolves `previous` or `-N` against `current` and the release's history: the body the
    /// PUT sends names the revision it resolved to. Nothing is sent when it cannot be resolved.
    async fn resolve_relative(
        &mut self,
        relative: crate::plan::resolved::RelativeRevision,
        current: &Release,
    ) -> Result<(), End> {
        let history = match self
            .read(Phase::Preflight, |api, at| api.release_history(at))
            .await
        {
            Ok(history) => history,
            Err(ReadError::Cancelled) => return Err(End::Cancelled),
            Err(ReadError::Api(error)) => {
                return Err(End::Failed(OperationError::from_api(
                    &format!("release_version: {relative}: reading the release's history"),
                    &error,
                )));
            }
        };
        let Some(current_version) = current.version else {
            return Err(End::Failed(OperationError::message(format!(
                "release_version: {relative}: the release's answer gave no revision (version) to count back from; nothing sent"
            ))));
        };
        // An entry without its revision could be the one counted to: nothing is guessed.
        let Some(revisions) = history
            .iter()
            .map(|r| r.version)
            .collect::<Option<Vec<i64>>>()
        else {
            return Err(End::Failed(OperationError::message(format!(
                "release_version: {relative}: the release's history has an entry without its revision (version); nothing sent"
            ))));
        };
        let target = converge::resolve_relative(relative, current_version, &revisions)
            .map_err(|why| End::Failed(OperationError::message(format!("{why}; nothing sent"))))?;
        let mut body = self.body.clone();
        body.parameters
            .get_or_insert_with(ReleaseParameters::default)
            .release_version = Some(target);
        self.resolved = Some(Arc::new(body));
        self.result.release_version = Some(target);
        self.history = Some(history);
        Ok(())
    }

    /// Compares the plan with `current` (the settled preflight answer).
    async fn converge(&mut self, current: &Release) -> Result<converge::Decision, Stop> {
        Ok(self.assess(current).await?.decision)
    }

    /// Judges `current` against the plan, with the chart or history lookups that takes: the one
    /// judgement behind the preflight's convergence decision and `plan --diff`.
    async fn assess(&mut self, current: &Release) -> Result<converge::Assessment, Stop> {
        self.judge(Phase::Preflight, current, converge::assess)
            .await
    }

    /// Reads the release as the preflight does and judges it, changing nothing: what `apply`
    /// would find. Unlike the preflight it does not wait for a `PENDING_*` release to settle:
    /// the status is part of what it shows.
    pub(crate) async fn preview(mut self) -> Preview {
        let current = match self.get(Phase::Preflight).await {
            Ok(release) => release,
            Err(ReadError::Api(error)) if error.status == Some(404) => {
                return Preview::Missing(error);
            }
            Err(ReadError::Api(error)) => return Preview::Unreadable(error),
            Err(ReadError::Cancelled) => return Preview::Cancelled,
        };
        if let Some(relative) = self.op.relative_version {
            match self.resolve_relative(relative, &current).await {
                Ok(()) => {}
                Err(End::Failed(error)) => return Preview::Unresolved(error),
                Err(_) => return Preview::Cancelled,
            }
        }
        match self.assess(&current).await {
            Ok(assessment) => Preview::Judged {
                current: Box::new(current),
                assessment,
                resolved_version: self
                    .resolved
                    .as_ref()
                    .and_then(|b| converge::rollback_version(b)),
            },
            // Judging stops only when cancelled: a failed lookup is handed to the judgement.
            Err(_) => Preview::Cancelled,
        }
    }

    /// Looks up what judging `current` against the plan needs, the chart for an upgrade (once
    /// per run and endpoint) or the history for a rollback, and hands it to `judge`. A failed
    /// lookup is handed on as such: the judge decides what not knowing means.
    async fn judge<T>(
        &mut self,
        phase: Phase,
        current: &Release,
        judge: impl FnOnce(&UpdateReleaseBody, DesiredChart<'_>, RollbackTarget<'_>, &Release) -> T,
    ) -> Result<T, Stop> {
        let resolved = self.resolved.clone();
        let body: &UpdateReleaseBody = resolved.as_deref().unwrap_or(self.body);
        let no_target = RollbackTarget::NotGiven;
        match body.action {
            Action::Upgrade => {
                let Some(chart_id) = body.chart_id.as_deref() else {
                    return Ok(judge(body, DesiredChart::Kept, no_target, current));
                };
                let charts = self.ctx.charts;
                let endpoint = self.endpoint;
                let looked_up = charts
                    .get_or_fetch(endpoint, chart_id, || {
                        self.read(phase, |api, at| api.show_chart(at.cluster, chart_id))
                    })
                    .await;
                match looked_up {
                    Ok(chart) => Ok(judge(
                        body,
                        DesiredChart::Resolved(&chart),
                        no_target,
                        current,
                    )),
                    Err(ReadError::Cancelled) => Err(Stop::Cancelled),
                    Err(ReadError::Api(error)) => {
                        // The one display of an API error: code, message and request id.
                        let error = format!("ShowAutopilotChart: {error}");
                        let chart = DesiredChart::Unresolved {
                            chart_id,
                            error: &error,
                        };
                        Ok(judge(body, chart, no_target, current))
                    }
                }
            }
            Action::Rollback => {
                let kept = DesiredChart::Kept;
                match converge::rollback_version(body) {
                    None => Ok(judge(body, kept, no_target, current)),
                    Some(version) if current.version == Some(version) => {
                        Ok(judge(body, kept, RollbackTarget::Found(current), current))
                    }
                    Some(version) => {
                        let history = match self.history.take() {
                            Some(history) => Ok(history),
                            None => self.read(phase, |api, at| api.release_history(at)).await,
                        };
                        match history {
                            Ok(history) => {
                                let target = converge::rollback_target(&history, version);
                                Ok(judge(body, kept, target, current))
                            }
                            Err(ReadError::Cancelled) => Err(Stop::Cancelled),
                            Err(ReadError::Api(error)) => {
                                let error = format!("ShowAutopilotReleaseHistory: {error}");
                                Ok(judge(
                                    body,
                                    kept,
                                    RollbackTarget::Unreadable(&error),
                                    current,
                                ))
                            }
                        }
                    }
                }
            }
        }
    }

    /// Waits (up to `wait.timeout`) for a `PENDING_*` release to settle before changing it, and
    /// for an answer that gives its status and revision; that revision becomes `version_before`.
    async fn settle_before_put(&mut self, version_before: &mut Option<i64>) -> Result<(), Stop> {
        let deadline = Instant::now() + self.ctx.rollout.wait.timeout;
        match self.poll_until(Phase::Preflight, deadline, judgeable).await {
            PollEnd::Reached => {}
            PollEnd::TimedOut => {
                let message = match self.last_seen.as_deref() {
                    Some(seen) if seen.status.as_ref().is_some_and(ReleaseStatus::is_pending) => {
                        format!(
                            "release still {} after waiting {} before the change",
                            seen.status_text(),
                            self.wait_timeout_text()
                        )
                    }
                    _ => format!(
                        "could not confirm the release's state: its answers gave no status or revision (version) for {}; nothing sent",
                        self.wait_timeout_text()
                    ),
                };
                return Err(Stop::Failed(OperationError::message(message)));
            }
            PollEnd::Failed(error) => {
                return Err(Stop::Failed(OperationError::from_api(
                    "waiting before the change",
                    &error,
                )));
            }
            PollEnd::Cancelled => return Err(Stop::Cancelled),
        }
        let settled = self.last_seen.as_ref().and_then(|r| r.version);
        *version_before = settled;
        self.result.version_before = settled;
        Ok(())
    }

    /// Polls, up to `wait.timeout`, until the release is no longer `PENDING_*`: the service
    /// refuses to change a release mid-operation (409). `timed_out` ends the message of a wait
    /// that ran out; `failed` is the context of a GET that failed.
    async fn until_settled(
        &mut self,
        phase: Phase,
        timed_out: &str,
        failed: &str,
    ) -> Result<(), Stop> {
        let deadline = Instant::now() + self.ctx.rollout.wait.timeout;
        match self
            .poll_until(phase, deadline, |r| !r.status().is_pending())
            .await
        {
            PollEnd::Reached => Ok(()),
            PollEnd::TimedOut => Err(Stop::Failed(OperationError::message(format!(
                "release still {} after waiting {} {timed_out}",
                self.last_status_text(),
                self.wait_timeout_text()
            )))),
            PollEnd::Failed(error) => Err(Stop::Failed(OperationError::from_api(failed, &error))),
            PollEnd::Cancelled => Err(Stop::Cancelled),
        }
    }

    fn wait_timeout_text(&self) -> String {
        crate::plan::resolved::duration_text::format(self.ctx.rollout.wait.timeout)
    }

    fn last_status_text(&self) -> String {
        self.last_seen
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), |r| r.status_text())
    }

    /// Polls until the change shows: a settled status at `first_new` or later. Without
    /// `first_new` (no revision from before the change, and a PUT answer without one) no
    /// revision can prove it; a `DEPLOYED` release then counts only when `by_content` and its
    /// chart and values show the change (else: a "could not confirm" failure).
    async fn wait_for_change(
        &mut self,
        phase: Phase,
        first_new: Option<i64>,
        by_content: bool,
    ) -> Result<(), WaitFailure> {
        let deadline = Instant::now() + self.ctx.rollout.wait.timeout;
        let end = self
            .poll_until(phase, deadline, |r| change_shows(first_new, r))
            .await;
        match end {
            PollEnd::Reached => {
                let Some(release) = self.last_seen.clone() else {
                    return Ok(());
                };
                let status = release.status();
                if status == ReleaseStatus::Deployed {
                    if first_new.is_some() {
                        return Ok(());
                    }
                    return self.confirm_by_content(phase, &release, by_content).await;
                }
                let detail = if release.status_description.is_empty() {
                    String::new()
                } else {
                    format!(": {}", release.status_description)
                };
                let error = OperationError::message(format!(
                    "release {status} at revision {}{detail}",
                    release.revision_text()
                ));
                if status == ReleaseStatus::Deleted {
                    // A deleted release cannot be rolled back.
                    Err(WaitFailure::Other(error))
                } else {
                    Err(WaitFailure::Settled(error))
                }
            }
            PollEnd::TimedOut => {
                let unproven = first_new.is_some()
                    && self
                        .last_seen
                        .as_deref()
                        .is_some_and(|r| r.version.is_none() && r.status.is_some());
                let why = if unproven {
                    "; its answers gave no revision (version) to prove the change by"
                } else {
                    ""
                };
                Err(WaitFailure::Settled(OperationError::message(format!(
                    "timed out after {} waiting for the release; last status {}{why}",
                    self.wait_timeout_text(),
                    self.last_status_text()
                ))))
            }
            PollEnd::Failed(error) => Err(WaitFailure::Other(OperationError::from_api(
                "waiting for the release",
                &error,
            ))),
            PollEnd::Cancelled => Err(WaitFailure::Cancelled),
        }
    }

    /// A `DEPLOYED` release and no revision to prove the change by (no revision from before it,
    /// and a PUT answer without one): only its chart and values can show the change, and
    /// only for the operation's own change (`by_content`). Anything less is a "could not
    /// confirm" failure, never a success, and never a reason to roll back.
    async fn confirm_by_content(
        &mut self,
        phase: Phase,
        release: &Release,
        by_content: bool,
    ) -> Result<(), WaitFailure> {
        let cannot = |why: &str| {
            WaitFailure::Other(OperationError::message(format!(
                "could not confirm the change: the PUT was accepted and the release is DEPLOYED, but no answer gave a revision (version) to prove it by{why}"
            )))
        };
        if !by_content {
            return Err(cannot(""));
        }
        match self.judge(phase, release, converge::change_landed).await {
            Ok(Landed::Yes) => Ok(()),
            Ok(Landed::No) => Err(cannot(", and its chart or values do not show it")),
            Ok(Landed::CannotTell) => Err(cannot(
                ", and only masked keys or an unknown chart could show it",
            )),
            Err(Stop::Cancelled) => Err(WaitFailure::Cancelled),
            Err(Stop::Failed(error)) => Err(WaitFailure::Other(error)),
        }
    }

    async fn roll_back(&mut self, to_version: i64) -> RollbackResult {
        let mut rollback = RollbackResult {
            outcome: Outcome::Failed,
            to_version,
            final_status: None,
            version_after: None,
            error: None,
        };
        // After a wait that timed out the release is still PENDING_*: the rollback waits for
        // it to settle first.
        if self
            .last_seen
            .as_ref()
            .is_some_and(|r| r.status().is_pending())
        {
            let settled = self
                .until_settled(
                    Phase::RollbackWait,
                    "more to roll it back; not rolled back",
                    "waiting to roll back",
                )
                .await;
            match settled {
                Ok(()) => {}
                Err(Stop::Cancelled) => {
                    rollback.outcome = Outcome::Cancelled;
                    return rollback;
                }
                Err(Stop::Failed(error)) => {
                    rollback.error = Some(error);
                    return rollback;
                }
            }
        }
        let mut current = self.last_seen.as_ref().and_then(|r| r.version);
        let body = UpdateReleaseBody {
            chart_id: self.body.chart_id.clone(),
            action: Action::Rollback,
            parameters: Some(ReleaseParameters {
                release_version: Some(to_version),
                ..ReleaseParameters::default()
            }),
            values: None,
        };
        let mut puts = 0;
        let answer = loop {
            if let Some(journal) = self.ctx.journal {
                let intent = PutIntent {
                    operation: self.op,
                    version_before: current,
                    release_version: Some(to_version),
                    rollback: true,
                    dry_run: false,
                };
                if let Err(error) = journal.before_put(intent).await {
                    rollback.error =
                        Some(OperationError::message(format!("{error}; nothing sent")));
                    return rollback;
                }
            }
            match self
                .put(&body, current, Phase::RollbackPut, &mut puts)
                .await
            {
                PutEnd::Applied(answer) => break answer,
                PutEnd::Busy => {
                    // Busy with another operation: the rollback goes out once it has ended.
                    let settled = self
                        .until_settled(
                            Phase::RollbackWait,
                            "for the operation it is busy with to end (busy: not rolled back)",
                            "waiting for a busy release to roll it back",
                        )
                        .await;
                    match settled {
                        Ok(()) => current = self.last_seen.as_ref().and_then(|r| r.version),
                        Err(Stop::Cancelled) => {
                            rollback.outcome = Outcome::Cancelled;
                            return rollback;
                        }
                        Err(Stop::Failed(error)) => {
                            rollback.error = Some(error);
                            return rollback;
                        }
                    }
                }
                PutEnd::Failed(error) => {
                    rollback.error = Some(error);
                    return rollback;
                }
                PutEnd::Cancelled => {
                    rollback.outcome = Outcome::Cancelled;
                    return rollback;
                }
            }
        };
        let first_new = first_new_version(current, answer);
        // The content judge knows the upgrade, not the rollback: without a revision a rollback
        // cannot be proven.
        let waited = self
            .wait_for_change(Phase::RollbackWait, first_new, false)
            .await;
        if let Some(seen) = &self.last_seen {
            rollback.final_status = seen.status.clone();
            rollback.version_after = seen.version;
        }
        match waited {
            Ok(()) => rollback.outcome = Outcome::Succeeded,
            Err(WaitFailure::Cancelled) => rollback.outcome = Outcome::Cancelled,
            Err(WaitFailure::Settled(error) | WaitFailure::Other(error)) => {
                rollback.error = Some(error);
            }
        }
        rollback
    }

    /// The PUT with retries; an ambiguous failure is reconciled before anything is resent.
    /// `puts` counts the PUTs of this change across the waits for a busy release, so that
    /// they share one retry budget.
    async fn put(
        &mut self,
        body: &UpdateReleaseBody,
        version_before: Option<i64>,
        phase: Phase,
        puts: &mut u32,
    ) -> PutEnd {
        let policy = &self.ctx.rollout.retry;
        let reconcile_phase = if phase.is_rollback() {
            Phase::RollbackReconcile
        } else {
            Phase::Reconcile
        };
        let mut delay = Duration::ZERO;
        loop {
            let Ok(sent_at) = self.acquire().await else {
                return PutEnd::Cancelled;
            };
            *puts += 1;
            let puts = *puts;
            if phase == Phase::Put {
                self.result.put_attempts += 1;
                self.result.put_sent = true;
            }
            let answer = self.call(|api, at| api.update_release(at, body)).await;
            let error = match answer {
                Ok(release) => {
                    self.record(phase, sent_at, delay, None, None).await;
                    // A 200 is an accepted change, whatever its answer leaves out.
                    let version = release.version;
                    self.last_seen = Some(Box::new(release));
                    return PutEnd::Applied(version);
                }
                Err(error) => error,
            };
            let draw = self.next_draw();
            let decision = retry::decide_put(puts, &error, self.ctx.dry_run, policy, draw);
            self.record(phase, sent_at, delay, Some(&error), decision.retry_delay())
                .await;
            match decision {
                Decision::Fail => {
                    let context = if error.release_busy(true) {
                        format!(
                            "busy: the release was busy with another operation at each of the {puts} PUT attempts of the retry budget"
                        )
                    } else if puts > 1 {
                        format!("PUT failed after {puts} attempts")
                    } else {
                        "PUT failed".to_owned()
                    };
                    return PutEnd::Failed(OperationError::from_api(&context, &error));
                }
                Decision::AwaitSettled => return PutEnd::Busy,
                Decision::Retry { delay: next } => {
                    if self.sleep(next).await.is_err() {
                        return PutEnd::Cancelled;
                    }
                    delay = next;
                }
                Decision::Reconcile => {
                    match self.reconcile(reconcile_phase, version_before).await {
                        Ok(Reconciled::Applied(release)) => {
                            if phase == Phase::Put {
                                self.result.reconciled = true;
                            }
                            return PutEnd::Applied(release.version);
                        }
                        Ok(Reconciled::Unchanged(_)) => {
                            let draw = self.next_draw();
                            match retry::retry_or_fail(puts, policy, draw) {
                                Decision::Retry { delay: next } => {
                                    if self.sleep(next).await.is_err() {
                                        return PutEnd::Cancelled;
                                    }
                                    delay = next;
                                }
                                _ => {
                                    return PutEnd::Failed(OperationError::from_api(
                                        &format!(
                                            "PUT not applied after {puts} attempts (the last one ambiguous, the release unchanged)"
                                        ),
                                        &error,
                                    ));
                                }
                            }
                        }
                        Ok(Reconciled::Unknown) => {
                            return PutEnd::Failed(OperationError::from_api(
                                &format!("PUT outcome unknown ({CANNOT_TELL}); not resent"),
                                &error,
                            ));
                        }
                        Err(Stop::Cancelled) => return PutEnd::Cancelled,
                        Err(Stop::Failed(failure)) => return PutEnd::Failed(failure),
                    }
                }
            }
        }
    }

    /// GETs the release after an ambiguous PUT: was the change applied? `phase` is
    /// [`Phase::Reconcile`], or [`Phase::RollbackReconcile`] after a rollback's PUT. An answer
    /// without its revision is read again (as often as a GET is retried) before anything is
    /// concluded.
    async fn reconcile(
        &mut self,
        phase: Phase,
        version_before: Option<i64>,
    ) -> Result<Reconciled, Stop> {
        let mut rereads = 0;
        let release = loop {
            let release = match self.get(phase).await {
                Ok(release) => release,
                Err(ReadError::Cancelled) => return Err(Stop::Cancelled),
                Err(ReadError::Api(error)) => {
                    self.forget_what_was_seen();
                    return Err(Stop::Failed(OperationError::from_api(
                        "could not check whether the PUT was applied; not resent",
                        &error,
                    )));
                }
            };
            if release.version.is_some()
                || version_before.is_none()
                || rereads >= self.ctx.rollout.retry.attempts
            {
                break release;
            }
            rereads += 1;
            if self.sleep(self.ctx.rollout.wait.poll).await.is_err() {
                return Err(Stop::Cancelled);
            }
        };
        let pending = release
            .status
            .as_ref()
            .is_some_and(ReleaseStatus::is_pending);
        Ok(match (version_before, release.version) {
            (Some(before), Some(now)) if now > before => Reconciled::Applied(release),
            (Some(_), Some(_)) => Reconciled::Unchanged(release),
            // The release is busy with a change, and none but this one was asked for.
            _ if pending => Reconciled::Applied(release),
            // No revision to compare with: the release's content has to tell.
            _ => match self.judge(phase, &release, converge::change_landed).await? {
                Landed::Yes => Reconciled::Applied(release),
                Landed::No => Reconciled::Unchanged(release),
                Landed::CannotTell => Reconciled::Unknown,
            },
        })
    }

    /// Polls every `wait.poll` until `done` holds for the release, or `deadline`.
    async fn poll_until(
        &mut self,
        phase: Phase,
        deadline: Instant,
        done: impl Fn(&Release) -> bool,
    ) -> PollEnd {
        let poll = self.ctx.rollout.wait.poll;
        loop {
            let wake = (Instant::now() + poll).min(deadline);
            if self.sleep_until(wake).await.is_err() {
                return PollEnd::Cancelled;
            }
            let Ok(sent_at) = self.acquire().await else {
                return PollEnd::Cancelled;
            };
            match self.call(|api, at| api.show_release(at)).await {
                Ok(release) => {
                    self.result.polls += 1;
                    self.send_request_event(phase, None, None).await;
                    let reached = done(&release);
                    self.last_seen = Some(Box::new(release));
                    if reached {
                        return PollEnd::Reached;
                    }
                }
                Err(error) => {
                    let fatal = error.class() == ErrorClass::Fatal;
                    self.record(phase, sent_at, Duration::ZERO, Some(&error), None)
                        .await;
                    if fatal {
                        return PollEnd::Failed(error);
                    }
                    // Otherwise the next poll is the retry; the deadline bounds it.
                }
            }
            if Instant::now() >= deadline {
                return PollEnd::TimedOut;
            }
        }
    }

    /// One GET of the release with retries; the answer becomes `last_seen`.
    async fn get(&mut self, phase: Phase) -> Result<Release, ReadError> {
        let release = self.read(phase, |api, at| api.show_release(at)).await?;
        self.last_seen = Some(Box::new(release.clone()));
        Ok(release)
    }

    /// One GET (any of them) with retries, paced like every request.
    async fn read<T, F>(
        &mut self,
        phase: Phase,
        request: impl Fn(&'a A, ReleaseAddress<'a>) -> F,
    ) -> Result<T, ReadError>
    where
        F: Future<Output = Result<T, ApiError>>,
    {
        let policy = &self.ctx.rollout.retry;
        let mut gets = 0u32;
        let mut delay = Duration::ZERO;
        loop {
            let Ok(sent_at) = self.acquire().await else {
                return Err(ReadError::Cancelled);
            };
            gets += 1;
            match self.call(&request).await {
                Ok(answer) => {
                    if matches!(phase, Phase::Reconcile | Phase::RollbackReconcile) {
                        self.record(phase, sent_at, delay, None, None).await;
                    } else {
                        self.result.polls += 1;
                        self.send_request_event(phase, None, None).await;
                    }
                    return Ok(answer);
                }
                Err(error) => {
                    let draw = self.next_draw();
                    let decision =
                        retry::decide(RequestKind::Get, gets, error.class(), policy, draw);
                    self.record(phase, sent_at, delay, Some(&error), decision.retry_delay())
                        .await;
                    match decision {
                        Decision::Retry { delay: next } => {
                            if self.sleep(next).await.is_err() {
                                return Err(ReadError::Cancelled);
                            }
                            delay = next;
                        }
                        _ => return Err(ReadError::Api(error)),
                    }
                }
            }
        }
    }

    /// Passes the endpoint's credential gate, then takes a slot from its pacer; no new request
    /// once cancelled or once the endpoint refused the credentials.
    async fn acquire(&mut self) -> Result<Instant, ()> {
        let stop = self.gate.stop();
        if stop.is_cancelled() {
            return Err(());
        }
        self.pass = Some(self.gate.pass().await.map_err(|_| ())?);
        let permit = self.pacer.acquire(stop).await.map_err(|_| ())?;
        if let Some(change) = permit.rate_change {
            self.send_rate_change(change).await;
        }
        Ok(permit.sent_at)
    }

    /// One call, bounded by `request_timeout` (plus a little, the client bounds it first); its
    /// answer goes to the endpoint's credential gate.
    async fn call<T, F>(
        &mut self,
        request: impl FnOnce(&'a A, ReleaseAddress<'a>) -> F,
    ) -> Result<T, ApiError>
    where
        F: Future<Output = Result<T, ApiError>>,
    {
        let limit = self.ctx.rollout.request_timeout + CALL_GUARD;
        let answer = match tokio::time::timeout(limit, request(self.ctx.api, self.address())).await
        {
            Ok(answer) => answer,
            Err(_) => Err(ApiError::new(FailureKind::TimedOut)),
        };
        if let Some(pass) = self.pass.take() {
            pass.answered(answer.as_ref().map(|_| ()));
        }
        answer
    }

    async fn sleep(&self, delay: Duration) -> Result<(), ()> {
        self.sleep_until(Instant::now() + delay).await
    }

    async fn sleep_until(&self, at: Instant) -> Result<(), ()> {
        let stop = self.gate.stop();
        if stop.is_cancelled() {
            return Err(());
        }
        if at <= Instant::now() {
            return Ok(());
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => Err(()),
            () = tokio::time::sleep_until(at) => Ok(()),
        }
    }

    /// Records a reported attempt (and sends its event); throttles pause the endpoint.
    async fn record(
        &mut self,
        phase: Phase,
        sent_at: Instant,
        delay_before: Duration,
        error: Option<&ApiError>,
        retry_in: Option<Duration>,
    ) {
        if let Some(error) = error {
            tracing::debug!(
                release = %self.op.release,
                cluster = %self.op.cluster.name,
                ?phase,
                %error,
                ?retry_in,
                "request failed"
            );
        }
        if let Some(error) = error.filter(|e| e.is_throttle()) {
            let change = self.pacer.on_throttle(sent_at, error);
            self.send_rate_change(change).await;
        }
        self.result.attempts.push(Attempt::new(
            phase,
            error,
            delay_before,
            sent_at.saturating_duration_since(self.ctx.run_start),
        ));
        self.send_request_event(phase, error, retry_in).await;
    }

    async fn send_request_event(
        &self,
        phase: Phase,
        error: Option<&ApiError>,
        retry_in: Option<Duration>,
    ) {
        let event = RequestEvent {
            index: self.op.index,
            phase,
            method: phase.method(),
            ok: error.is_none(),
            status: match error {
                Some(e) => e.status,
                None => Some(200),
            },
            error_code: error.and_then(|e| e.code.clone()),
            throttled: error.is_some_and(ApiError::is_throttle),
            retry_in,
        };
        // A display that went away does not stop the run.
        let _ = self.ctx.events.send(Event::Request(event)).await;
    }

    async fn send_rate_change(&self, change: RateChange) {
        let _ = self
            .ctx
            .events
            .send(Event::RateChanged {
                endpoint: self.endpoint.to_owned(),
                rate: change.rate,
                paused_for: change.paused_for,
            })
            .await;
    }
}

enum WaitFailure {
    /// The release settled badly (FAILED, UNKNOWN) or never settled: a rollback may help.
    Settled(OperationError),
    /// Anything else (DELETED, a fatal GET error).
    Other(OperationError),
    Cancelled,
}

/// Whether a preflight answer can be judged: it gives its revision and a status that is not
/// `PENDING_*`. Anything else is read again.
fn judgeable(release: &Release) -> bool {
    release.version.is_some()
        && release
            .status
            .as_ref()
            .is_some_and(|status| !status.is_pending())
}

/// Whether an answer shows the change settled: a settled status, at `first_new` or later when
/// that is known. An answer without its status or revision shows nothing: the wait goes on.
fn change_shows(first_new: Option<i64>, release: &Release) -> bool {
    let settled = release.status.as_ref().is_some_and(is_settled);
    let new_enough = match first_new {
        Some(first) => release.version.is_some_and(|version| version >= first),
        None => true,
    };
    settled && new_enough
}

/// DEPLOYED, FAILED, UNKNOWN and DELETED end a wait; PENDING_*, DELETING and unknown states do not.
fn is_settled(status: &ReleaseStatus) -> bool {
    matches!(
        status,
        ReleaseStatus::Deployed
            | ReleaseStatus::Failed
            | ReleaseStatus::Unknown
            | ReleaseStatus::Deleted
    )
}

/// The first revision that counts as this change: past `version_before`, or, without it, the
/// revision the PUT answered with.
fn first_new_version(version_before: Option<i64>, answered: Option<i64>) -> Option<i64> {
    match version_before {
        Some(before) => Some(before + 1),
        None => answered,
    }
}

/// Why a cancelled operation stopped, and, when its change had been sent, whether it applied:
/// an interrupt after the PUT left is not an operation that did nothing.
fn interrupted_reason(result: &OperationResult) -> String {
    if !result.put_sent || result.dry_run {
        return "interrupted".to_owned();
    }
    if result.put_applied {
        let at = result
            .version_after
            .map_or_else(String::new, |version| format!(" (revision {version})"));
        format!(
            "interrupted after its change was sent: the change applied{at}, but the release was not seen to settle"
        )
    } else {
        "interrupted after its change was sent: whether it applied is not known (--resume reads the release before sending anything)".to_owned()
    }
}

/// The PUT body of a dry run: the same body with `parameters.dry_run: true`.
pub fn dry_run_body(body: &UpdateReleaseBody) -> Arc<UpdateReleaseBody> {
    let mut body = body.clone();
    let mut parameters = body.parameters.take().unwrap_or_default();
    parameters.dry_run = Some(true);
    body.parameters = Some(parameters);
    Arc::new(body)
}
