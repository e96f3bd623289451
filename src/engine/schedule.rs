//! The run: waves in order with soak between them, operations started in plan order within the
//! `concurrency` and `per_cluster` caps, failure budgets, halting and cancellation, and the halt
//! at the first refusal of the credentials.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::api::ReleaseApi;
use super::charts::ChartCache;
use super::event::Event;
use super::gate::{FirstRefusal, Gate};
use super::journal::Journal;
use super::operation::{Announced, Context, OperationRun, PriorState, dry_run_body};
use super::outcome::{CredentialRefusal, OperationResult, Outcome, RunReport, RunSummary};
use super::pace::Pacer;
use crate::cce::model::UpdateReleaseBody;
use crate::plan::resolved::{ExpandedPlan, Operation, Wave};

/// Run-wide settings; everything else comes from the plan's (already overridden) `rollout`.
#[derive(Clone, Default)]
pub struct EngineOptions {
    /// Send every PUT with `parameters.dry_run: true`; never wait. A dry run still makes the
    /// convergence decision (reported in `convergence` and `note`) but sends every PUT anyway.
    pub dry_run: bool,
    /// Send every PUT regardless of the release's state: no convergence decision, no chart or
    /// history lookups. Without it, an operation whose release is already as planned (or
    /// differs only in keys the API masks) sends no PUT and ends `unchanged`.
    pub force: bool,
    /// What an earlier run of this plan left, by [`Operation::index`].
    pub resume: HashMap<usize, PriorState>,
    /// Cancel to stop: no new operation or request starts, in-flight requests finish.
    pub cancel: CancellationToken,
    pub journal: Option<Arc<dyn Journal>>,
    /// Seeds the retry jitter, so a run can be replayed.
    pub seed: u64,
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("dry_run", &self.dry_run)
            .field("force", &self.force)
            .field("resume", &self.resume.len())
            .field("cancelled", &self.cancel.is_cancelled())
            .field("journal", &self.journal.is_some())
            .field("seed", &self.seed)
            .finish()
    }
}

/// Runs `plan` to its end and reports every operation, in plan order.
pub async fn run<A: ReleaseApi>(
    plan: &ExpandedPlan,
    api: Arc<A>,
    options: EngineOptions,
    events: mpsc::Sender<Event>,
) -> RunReport {
    let run_start = Instant::now();
    let started_at = jiff::Timestamp::now();
    let rollout = &plan.rollout;
    let total = plan.operation_count();

    // One pacer and one credential gate per endpoint, shared by every request to it.
    let mut pacer_of_endpoint: HashMap<&str, usize> = HashMap::new();
    let mut pacers: Vec<Pacer> = Vec::new();
    let mut gates: Vec<Gate> = Vec::new();
    let first_refusal = FirstRefusal::default();
    for op in plan.operations() {
        pacer_of_endpoint
            .entry(op.cluster.endpoint.as_str())
            .or_insert_with(|| {
                pacers.push(Pacer::new(rollout.rate, rollout.burst, run_start));
                gates.push(Gate::new(
                    &op.cluster.endpoint,
                    &options.cancel,
                    &first_refusal,
                ));
                pacers.len() - 1
            });
    }
    // A dry run's body is built once per distinct body, not once per operation.
    let mut dry_bodies: HashMap<usize, Arc<UpdateReleaseBody>> = HashMap::new();
    if options.dry_run {
        for op in plan.operations() {
            dry_bodies
                .entry(body_key(&op.body))
                .or_insert_with(|| dry_run_body(&op.body));
        }
    }

    let charts = ChartCache::new();
    let ctx = Context {
        api: api.as_ref(),
        force: options.force,
        charts: &charts,
        rollout,
        events: &events,
        cancel: &options.cancel,
        journal: options.journal.as_deref(),
        dry_run: options.dry_run,
        seed: options.seed,
        run_start,
    };
    let mut state = RunState {
        results: Vec::with_capacity(total),
        summary: RunSummary::default(),
        total,
        halted: None,
        cancel_reported: false,
        refused: None,
    };
    let _ = events
        .send(Event::RunStarted {
            operations: total,
            waves: plan.waves.len(),
            dry_run: options.dry_run,
        })
        .await;

    let mut ran_before: Option<&Wave> = None;
    for (wave_number, wave) in plan.waves.iter().enumerate() {
        if let Some(previous) = ran_before.filter(|w| !w.soak.is_zero())
            && state.halted.is_none()
            && !options.cancel.is_cancelled()
        {
            let _ = events
                .send(Event::Soaking {
                    after_wave: wave_number - 1,
                    duration: previous.soak,
                })
                .await;
            tokio::select! {
                biased;
                () = options.cancel.cancelled() => {}
                () = tokio::time::sleep(previous.soak) => {}
            }
        }
        let mut wave_run = WaveRun {
            ctx: &ctx,
            wave,
            wave_number,
            pacers: &pacers,
            gates: &gates,
            first_refusal: &first_refusal,
            pacer_of_endpoint: &pacer_of_endpoint,
            dry_bodies: &dry_bodies,
            resume: &options.resume,
            summary: RunSummary::default(),
        };
        let first_result = state.results.len();
        let ran = wave_run.run(&mut state).await;
        let wave_summary = wave_run.summary;
        if ran {
            let _ = events
                .send(Event::WaveFinished {
                    wave: wave_number,
                    summary: wave_summary,
                })
                .await;
            // A soak watches what a wave changed: after a wave that sent no change (every
            // release already as planned, or done by the run a resume continues) there is
            // nothing to watch, and the next wave starts at once.
            ran_before = sent_a_change(&state.results[first_result..]).then_some(wave);
        }
    }

    if let Some(journal) = &options.journal
        && let Err(error) = journal.sync().await
    {
        tracing::error!(
            "{error}: the last operations' end lines may be missing; a resume reconciles them with a GET"
        );
    }
    let duration = Instant::now() - run_start;
    let _ = events
        .send(Event::RunFinished {
            summary: state.summary,
            duration,
        })
        .await;
    RunReport {
        plan_name: plan.name.clone(),
        plan_hash: plan.hash.clone(),
        dry_run: options.dry_run,
        started_at,
        finished_at: jiff::Timestamp::now(),
        duration,
        results: state.results,
        summary: state.summary,
        halted: state.halted,
        cancelled: options.cancel.is_cancelled(),
        credentials_refused: state.refused,
    }
}

/// Whether any of a wave's operations sent its change in this run.
fn sent_a_change(results: &[OperationResult]) -> bool {
    results.iter().any(|r| r.put_sent && !r.from_journal)
}

struct RunState {
    results: Vec<OperationResult>,
    summary: RunSummary,
    total: usize,
    halted: Option<String>,
    cancel_reported: bool,
    /// The first refusal of the credentials, once the run halted for it.
    refused: Option<CredentialRefusal>,
}

struct WaveRun<'r, 'a, A> {
    ctx: &'r Context<'a, A>,
    wave: &'a Wave,
    wave_number: usize,
    pacers: &'r [Pacer],
    /// By the same index as `pacers`.
    gates: &'r [Gate],
    first_refusal: &'r FirstRefusal,
    pacer_of_endpoint: &'r HashMap<&'a str, usize>,
    dry_bodies: &'r HashMap<usize, Arc<UpdateReleaseBody>>,
    resume: &'r HashMap<usize, PriorState>,
    summary: RunSummary,
}

impl<'r, 'a, A: ReleaseApi> WaveRun<'r, 'a, A> {
    /// Runs one wave; returns whether it started at all (it does not after a halt or a cancel).
    async fn run(&mut self, state: &mut RunState) -> bool {
        let ops = &self.wave.operations;
        let base = state.results.len();
        // Results of this wave by position; filled as operations end.
        let mut slots: Vec<Option<OperationResult>> = (0..ops.len()).map(|_| None).collect();

        if self.stopped(state).await {
            for (position, op) in ops.iter().enumerate() {
                let result = match self.prior(op) {
                    Some(PriorState::AlreadySucceeded(_)) => self.journal_result(op),
                    _ => self.not_run(op, state),
                };
                self.finish(position, result, &mut slots, state).await;
            }
            state.results.extend(slots.into_iter().flatten());
            debug_assert_eq!(state.results.len(), base + ops.len());
            return false;
        }

        // Per-cluster queues in plan order; `ready` holds (next position, cluster) for every
        // cluster with room and work, so the next startable operation is found in O(log n).
        let mut cluster_of_id: HashMap<&str, usize> = HashMap::new();
        let mut queues: Vec<VecDeque<usize>> = Vec::new();
        let mut pacer_of_cluster: Vec<usize> = Vec::new();
        let mut previously_succeeded = Vec::new();
        for (position, op) in ops.iter().enumerate() {
            if let Some(PriorState::AlreadySucceeded(_)) = self.prior(op) {
                previously_succeeded.push(position);
                continue;
            }
            let cluster = *cluster_of_id
                .entry(op.cluster.id.as_str())
                .or_insert_with(|| {
                    queues.push(VecDeque::new());
                    pacer_of_cluster.push(self.pacer_of_endpoint[op.cluster.endpoint.as_str()]);
                    queues.len() - 1
                });
            queues[cluster].push_back(position);
        }
        let _ = self
            .ctx
            .events
            .send(Event::WaveStarted {
                wave: self.wave_number,
                name: self.wave.name.clone(),
                operations: ops.len() - previously_succeeded.len(),
            })
            .await;
        for position in previously_succeeded {
            let result = self.journal_result(&ops[position]);
            self.finish(position, result, &mut slots, state).await;
        }

        let mut ready: BTreeSet<(usize, usize)> = queues
            .iter()
            .enumerate()
            .filter_map(|(cluster, queue)| queue.front().map(|&position| (position, cluster)))
            .collect();
        let per_cluster = self.ctx.rollout.per_cluster.max(1);
        let concurrency = self.ctx.rollout.concurrency.max(1);
        let mut in_flight_on: Vec<usize> = vec![0; queues.len()];
        let mut running = FuturesUnordered::new();
        let mut announced = Announcements::new(if self.announces_ahead() { ops.len() } else { 0 });

        loop {
            while running.len() < concurrency && !self.stopped(state).await {
                let Some((position, cluster)) = ready.pop_first() else {
                    break;
                };
                queues[cluster].pop_front();
                in_flight_on[cluster] += 1;
                if in_flight_on[cluster] < per_cluster
                    && let Some(&next) = queues[cluster].front()
                {
                    ready.insert((next, cluster));
                }
                let op = &ops[position];
                let _ = self
                    .ctx
                    .events
                    .send(Event::OperationStarted {
                        index: op.index,
                        wave: self.wave_number,
                    })
                    .await;
                let pacer = &self.pacers[pacer_of_cluster[cluster]];
                let gate = &self.gates[pacer_of_cluster[cluster]];
                let body: &UpdateReleaseBody = if self.ctx.dry_run {
                    &self.dry_bodies[&body_key(&op.body)]
                } else {
                    &op.body
                };
                let prior = self.prior(op);
                let run = OperationRun::new(self.ctx, op, body, pacer, gate);
                let intent = announced.take(position);
                running.push(
                    run.run(prior, intent)
                        .map(move |result| (position, cluster, result)),
                );
            }
            if !self.stopped(state).await {
                self.announce_ahead(&ready, &mut announced, concurrency);
            }
            let Some((position, cluster, result)) = running.next().await else {
                break;
            };
            in_flight_on[cluster] -= 1;
            if in_flight_on[cluster] + 1 == per_cluster
                && let Some(&next) = queues[cluster].front()
            {
                ready.insert((next, cluster));
            }
            self.finish(position, result, &mut slots, state).await;
        }

        // Whatever did not start: skipped after a halt, cancelled after a signal.
        for position in 0..ops.len() {
            if slots[position].is_none() {
                let result = self.not_run(&ops[position], state);
                self.finish(position, result, &mut slots, state).await;
            }
        }
        state.results.extend(slots.into_iter().flatten());
        debug_assert_eq!(state.results.len(), base + ops.len());
        true
    }

    /// Journals the intents of the next operations to start, up to `limit` ahead, so that
    /// their fsync overlaps the requests in flight instead of delaying their PUT. Only with
    /// preflight off, where an intent is known before its operation starts (with preflight on
    /// it names the revision the GET finds). An intent whose PUT never leaves costs a resume
    /// one GET: the release's content shows the change did not land.
    fn announce_ahead(
        &self,
        ready: &BTreeSet<(usize, usize)>,
        announced: &mut Announcements<'a>,
        limit: usize,
    ) {
        if !self.announces_ahead() {
            return;
        }
        for &(position, _) in ready {
            if announced.len() >= limit {
                break;
            }
            let op = &self.wave.operations[position];
            // A resumed operation reconciles before anything is journaled; one that reads its
            // release first (a relative or an expected revision) knows its intent only then.
            if announced.contains(position) || self.prior(op).is_some() || op.reads_before_put() {
                continue;
            }
            if let Some(intent) = self.ctx.journal_change(op, &op.body, None) {
                announced.insert(position, intent);
            }
        }
    }

    /// Whether intents are journaled ahead: with a journal, and preflight off.
    fn announces_ahead(&self) -> bool {
        self.ctx.journal.is_some() && !self.ctx.rollout.preflight
    }

    /// What the journal of a resumed run says of `op`.
    fn prior(&self, op: &Operation) -> Option<&'r PriorState> {
        self.resume.get(&op.index)
    }

    /// True once the run halted or was cancelled (announcing the cancel once).
    async fn stopped(&self, state: &mut RunState) -> bool {
        if self.ctx.cancel.is_cancelled() {
            if !state.cancel_reported {
                state.cancel_reported = true;
                let _ = self.ctx.events.send(Event::Cancelled).await;
            }
            return true;
        }
        self.halt_if_refused(state).await;
        state.halted.is_some()
    }

    /// Halts the run at the first refusal of the credentials by any endpoint: that endpoint's
    /// gate already stopped every request to it, and no new operation starts anywhere, since
    /// one AK/SK usually serves every region and a later wave must not run past an earlier
    /// one's unfinished operations.
    async fn halt_if_refused(&self, state: &mut RunState) {
        if state.refused.is_some() {
            return;
        }
        let Some(refusal) = self.first_refusal.get() else {
            return;
        };
        state.refused = Some(refusal.clone());
        if state.halted.is_none() {
            // Its own event says it, once, with what the service answered.
            tracing::info!(%refusal, "halting");
            state.halted = Some(refusal.summary());
        }
        let _ = self
            .ctx
            .events
            .send(Event::CredentialsRefused(Box::new(refusal.clone())))
            .await;
    }

    fn not_run(&self, op: &Operation, state: &RunState) -> OperationResult {
        if self.ctx.cancel.is_cancelled() {
            OperationResult::not_run(
                op,
                Outcome::Cancelled,
                "interrupted before it started",
                self.ctx.dry_run,
            )
        } else {
            let reason = state.halted.as_deref().unwrap_or("halted");
            OperationResult::not_run(
                op,
                Outcome::Skipped,
                &format!("run halted: {reason}"),
                self.ctx.dry_run,
            )
        }
    }

    fn journal_result(&self, op: &Operation) -> OperationResult {
        match self.prior(op) {
            // Succeeded, or unchanged: the journal's word stands.
            Some(PriorState::AlreadySucceeded(Some(previous))) => (**previous).clone(),
            _ => OperationResult::new(op, Outcome::Succeeded, self.ctx.dry_run),
        }
        .into_done_earlier()
    }

    /// Records an operation's end: journal, event, budgets.
    async fn finish(
        &mut self,
        position: usize,
        result: OperationResult,
        slots: &mut [Option<OperationResult>],
        state: &mut RunState,
    ) {
        if !result.from_journal
            && let Some(journal) = self.ctx.journal
            && let Err(error) = journal.finished(&result)
            && state.halted.is_none()
        {
            self.halt(state, error.to_string()).await;
        }
        self.summary.add(&result);
        state.summary.add(&result);
        // Told before the halt it may cause: a reader sees the cause first.
        let _ = self
            .ctx
            .events
            .send(Event::OperationFinished(Box::new(result.clone())))
            .await;
        // Before the budgets: a refused operation's failure is the credentials', not the plan's.
        self.halt_if_refused(state).await;
        if result.outcome == Outcome::Failed {
            self.check_budgets(state).await;
        }
        slots[position] = Some(result);
    }

    async fn check_budgets(&mut self, state: &mut RunState) {
        if state.halted.is_some() {
            return;
        }
        let wave_total = self.wave.operations.len();
        if let Some(budget) = self.wave.max_failures
            && budget.exceeded(self.summary.failed, wave_total)
        {
            let reason = format!(
                "wave \"{}\" exceeded its failure budget: {} failed of {} (max {})",
                self.wave.name, self.summary.failed, wave_total, budget
            );
            self.halt(state, reason).await;
        } else if self
            .ctx
            .rollout
            .max_failures
            .exceeded(state.summary.failed, state.total)
        {
            let reason = format!(
                "the run exceeded its failure budget: {} failed of {} (max {})",
                state.summary.failed, state.total, self.ctx.rollout.max_failures
            );
            self.halt(state, reason).await;
        }
    }

    async fn halt(&self, state: &mut RunState, reason: String) {
        // The display says it too (`halted: ...`); at the default level a log line would repeat it.
        tracing::info!(%reason, "halting");
        state.halted = Some(reason.clone());
        let _ = self.ctx.events.send(Event::Halted { reason }).await;
    }
}

/// The intents journaled ahead of their operations, by position in the wave.
struct Announcements<'a> {
    by_position: Vec<Option<Announced<'a>>>,
    count: usize,
}

impl<'a> Announcements<'a> {
    /// Room for `operations` positions: none when nothing is announced.
    fn new(operations: usize) -> Self {
        Announcements {
            by_position: std::iter::repeat_with(|| None).take(operations).collect(),
            count: 0,
        }
    }

    fn len(&self) -> usize {
        self.count
    }

    fn contains(&self, position: usize) -> bool {
        self.by_position[position].is_some()
    }

    fn insert(&mut self, position: usize, intent: Announced<'a>) {
        self.count += usize::from(self.by_position[position].replace(intent).is_none());
    }

    fn take(&mut self, position: usize) -> Option<Announced<'a>> {
        let taken = self.by_position.get_mut(position).and_then(Option::take);
        self.count -= usize::from(taken.is_some());
        taken
    }
}

/// Identifies a body shared by several operations (one `Arc` per release in the plan).
fn body_key(body: &Arc<UpdateReleaseBody>) -> usize {
    Arc::as_ptr(body) as usize
}
