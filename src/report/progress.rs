//! What a person watching a run sees: progress bars on a terminal, one line per finished
//! operation plus a heartbeat without one (CI), or nothing.

use crate::terminal::escape_control;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::model::{OperationReport, Outcome};
use super::render::same_group;
use crate::engine::Event;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Bars on a terminal, plain lines otherwise (and under CI).
    Auto,
    /// Progress bars (plain lines when stderr is not a terminal).
    Bars,
    /// One line per finished operation, and a heartbeat every 10 s.
    Plain,
    /// Nothing until the final report.
    Never,
}

impl ProgressMode {
    /// `Auto` decided from the facts about the terminal. Bars cannot be drawn without one, and
    /// would hide every line with them: plain lines instead.
    pub fn resolve(self, stderr_is_terminal: bool, ci: bool) -> ProgressMode {
        match self {
            ProgressMode::Auto if stderr_is_terminal && !ci => ProgressMode::Bars,
            ProgressMode::Auto => ProgressMode::Plain,
            ProgressMode::Bars if !stderr_is_terminal => ProgressMode::Plain,
            other => other,
        }
    }
}

/// How often the plain display prints a heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// Running counts shown on the bars and in heartbeats.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub total: usize,
    pub done: usize,
    pub ok: usize,
    pub failed: usize,
    pub skipped: usize,
    pub cancelled: usize,
    /// The latest sample of what requests are doing.
    pub activity: ActivitySample,
}

impl Counts {
    pub fn record(&mut self, outcome: Outcome) {
        self.done += 1;
        match outcome {
            Outcome::Succeeded | Outcome::Unchanged => self.ok += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Cancelled => self.cancelled += 1,
        }
    }

    fn describe(&self) -> String {
        let mut text = format!(
            "ok {} · failed {} · retrying {} · throttled {} · {:.1} req/s",
            self.ok,
            self.failed,
            self.activity.retrying,
            self.activity.throttled,
            self.activity.request_rate
        );
        if let Some(rate) = self.activity.paced_rate {
            text.push_str(&format!(" · paced at {rate:.1}/s"));
        }
        if let Some(paused) = self.activity.paused_for {
            text.push_str(&format!(" · paused {:.0}s", paused.as_secs_f64().ceil()));
        }
        text
    }
}

/// The display. All output goes to stderr, so stdout stays for the report.
pub struct Progress {
    mode: ProgressMode,
    multi: MultiProgress,
    overall: ProgressBar,
    wave: ProgressBar,
    counts: Counts,
    /// Operations a halt or an interrupt kept from starting, not yet told: the plain display
    /// tells them in one line per wave and reason, once the group ends.
    not_started: RefCell<Option<NotStarted>>,
}

/// Operations of one wave that never started, for one reason: the first, and how many.
struct NotStarted {
    first: OperationReport,
    count: usize,
}

impl NotStarted {
    /// `wave prod: 108 operation(s) skipped (run halted: …)`, or the one operation's own line.
    fn line(&self) -> String {
        if self.count == 1 {
            return finished_line(&self.first);
        }
        format!(
            "wave {}: {} operation(s) {} ({})",
            self.first.wave,
            self.count,
            self.first.outcome.as_str(),
            self.first.skip_reason.as_deref().unwrap_or_default()
        )
    }
}

impl Progress {
    /// `mode` must already be resolved (not `Auto`).
    pub fn new(mode: ProgressMode, total: usize) -> Self {
        let target = match mode {
            ProgressMode::Bars => ProgressDrawTarget::stderr_with_hz(10),
            _ => ProgressDrawTarget::hidden(),
        };
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template(
            "{prefix:>8.bold} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {msg}",
        )
        .expect("static template")
        .progress_chars("━╸─");
        let overall = multi.add(
            ProgressBar::new(total as u64)
                .with_style(style.clone())
                .with_prefix("overall"),
        );
        let wave = multi.add(ProgressBar::new(0).with_style(style).with_prefix("wave"));
        Progress {
            mode,
            multi,
            overall,
            wave,
            counts: Counts {
                total,
                ..Counts::default()
            },
            not_started: RefCell::new(None),
        }
    }

    /// Where log lines go so that they never tear the bars.
    pub fn multi(&self) -> &MultiProgress {
        &self.multi
    }

    pub fn wave_started(&mut self, name: &str, operations: usize) {
        self.wave.set_prefix(escape_control(name).into_owned());
        self.wave.set_length(operations as u64);
        self.wave.set_position(0);
        self.wave.reset_elapsed();
        if self.mode == ProgressMode::Plain {
            self.line(&format!("wave {name}: {operations} operation(s)"));
        }
    }

    pub fn soaking(&mut self, wave: &str, soak: Duration) {
        if soak.is_zero() {
            return;
        }
        let text = format!("wave {wave} done; soaking {:.0?} before the next", soak);
        match self.mode {
            ProgressMode::Plain => self.line(&text),
            ProgressMode::Bars => self.wave.set_message(escape_control(&text).into_owned()),
            _ => {}
        }
    }

    pub fn set_activity(&mut self, sample: ActivitySample) {
        self.counts.activity = sample;
        self.overall
            .set_message(escape_control(&self.counts.describe()).into_owned());
    }

    /// `describe` is called only when the display prints the operation, so that a quiet run
    /// of thousands of operations per second does not build reports it throws away.
    pub fn operation_finished(
        &mut self,
        outcome: Outcome,
        describe: impl FnOnce() -> OperationReport,
    ) {
        self.counts.record(outcome);
        self.overall.inc(1);
        self.wave.inc(1);
        if self.mode != ProgressMode::Plain {
            return;
        }
        let op = describe();
        if !op.never_started() {
            self.line(&finished_line(&op));
            return;
        }
        let mut pending = self.not_started.borrow_mut();
        match pending.as_mut() {
            Some(group) if same_group(&group.first, &op) => group.count += 1,
            _ => {
                let told = pending.replace(NotStarted {
                    first: op,
                    count: 1,
                });
                drop(pending);
                if let Some(told) = told {
                    self.print(&told.line());
                }
            }
        }
    }

    /// Tells the operations that never started and are not told yet.
    fn tell_not_started(&self) {
        let pending = self.not_started.borrow_mut().take();
        if let Some(group) = pending {
            self.print(&group.line());
        }
    }

    pub fn note(&self, text: &str) {
        match self.mode {
            ProgressMode::Bars => {
                let _ = self.multi.println(escape_control(text));
            }
            ProgressMode::Plain => self.line(text),
            _ => {}
        }
    }

    /// The plain mode's heartbeat: called every [`HEARTBEAT`].
    pub fn heartbeat(&self) {
        if self.mode == ProgressMode::Plain {
            // Not a break in the operations not started: they are told together after it.
            self.print(&format!(
                "{}/{} done: {}",
                self.counts.done,
                self.counts.total,
                self.counts.describe()
            ));
        }
    }

    /// One line of the plain display, after the operations not started that come before it.
    fn line(&self, text: &str) {
        self.tell_not_started();
        self.print(text);
    }

    /// Prints one line; whatever input it shows cannot drive the terminal.
    fn print(&self, text: &str) {
        let elapsed = self.overall.elapsed().as_secs_f64();
        let text = escape_control(text);
        let _ = writeln!(std::io::stderr().lock(), "[{elapsed:>7.1}s] {text}");
    }

    pub fn finish(&self) {
        self.tell_not_started();
        self.wave.finish_and_clear();
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// A throttle pause at least this long gets a line of its own: the run looks stalled otherwise.
pub const LONG_PAUSE: Duration = Duration::from_secs(5);

/// What the display shows between finished operations, derived from the engine's events.
/// Every method takes the current time, so that tests need no clock.
#[derive(Debug, Default)]
pub struct Activity {
    retrying: HashSet<usize>,
    throttled: usize,
    requests_since_sample: usize,
    last_sample: Option<Instant>,
    request_rate: f64,
    endpoints: HashMap<String, EndpointPacing>,
}

#[derive(Debug, Default)]
struct EndpointPacing {
    rate: Option<f64>,
    paused_until: Option<Instant>,
    /// The end of the last long pause that got its own line.
    noted_until: Option<Instant>,
}

/// The display's activity figures at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ActivitySample {
    /// Operations backing off before a retry.
    pub retrying: usize,
    /// 429 answers so far.
    pub throttled: usize,
    /// Requests per second since the last sample.
    pub request_rate: f64,
    /// The lowest rate an endpoint is paced at, once a 429 has changed one.
    pub paced_rate: Option<f64>,
    /// How much longer a 429 keeps the longest-paused endpoint from sending.
    pub paused_for: Option<Duration>,
}

impl Activity {
    /// Takes in one event; returns a line worth printing on its own: a throttle that pauses an
    /// endpoint for [`LONG_PAUSE`] or more, once per pause.
    pub fn observe(&mut self, event: &Event, now: Instant) -> Option<String> {
        match event {
            Event::Request(request) => {
                self.requests_since_sample += 1;
                self.throttled += usize::from(request.throttled);
                if request.retry_in.is_some() {
                    self.retrying.insert(request.index);
                } else {
                    self.retrying.remove(&request.index);
                }
            }
            Event::OperationFinished(result) => {
                self.retrying.remove(&result.index);
            }
            Event::RateChanged {
                endpoint,
                rate,
                paused_for,
            } => {
                let pacing = self.endpoints.entry(endpoint.clone()).or_default();
                if rate.is_some() {
                    pacing.rate = *rate;
                }
                if let Some(pause) = *paused_for {
                    let until = now + pause;
                    pacing.paused_until = Some(pacing.paused_until.map_or(until, |u| u.max(until)));
                    let noted = pacing.noted_until.is_some_and(|noted| noted > now);
                    if pause >= LONG_PAUSE && !noted {
                        pacing.noted_until = Some(until);
                        let rate = rate.map_or(String::new(), |r| format!(", then {r:.1} req/s"));
                        return Some(format!(
                            "{endpoint} throttled (429): no request to it for {:.0}s{rate}",
                            pause.as_secs_f64().ceil()
                        ));
                    }
                }
            }
            _ => {}
        }
        None
    }

    pub fn sample(&mut self, now: Instant) -> ActivitySample {
        if let Some(last) = self.last_sample {
            let elapsed = now.duration_since(last).as_secs_f64();
            if elapsed > 0.0 {
                self.request_rate = self.requests_since_sample as f64 / elapsed;
            }
        }
        self.last_sample = Some(now);
        self.requests_since_sample = 0;
        let paced_rate = self
            .endpoints
            .values()
            .filter_map(|p| p.rate)
            .min_by(f64::total_cmp);
        let paused_for = self
            .endpoints
            .values()
            .filter_map(|p| p.paused_until)
            .filter(|&until| until > now)
            .max()
            .map(|until| until - now);
        ActivitySample {
            retrying: self.retrying.len(),
            throttled: self.throttled,
            request_rate: self.request_rate,
            paced_rate,
            paused_for,
        }
    }
}

/// One finished operation, as the plain display prints it.
pub fn finished_line(op: &OperationReport) -> String {
    let mut line = format!(
        "{:<9} {}/{}/{} {}",
        op.outcome.as_str(),
        op.cluster.name,
        op.namespace,
        op.name,
        op.action
    );
    if let (Some(before), Some(after)) = (op.version_before, op.version_after) {
        line.push_str(&format!(" {before}→{after}"));
    }
    if let Some(status) = &op.final_status {
        line.push(' ');
        line.push_str(status);
    }
    line.push_str(&format!(" ({:.1}s)", op.duration_ms as f64 / 1000.0));
    if let Some(error) = &op.error {
        line.push_str(&format!(": {error}"));
    } else if let Some(reason) = &op.skip_reason {
        line.push_str(&format!(": {reason}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_mode_uses_bars_only_on_a_terminal_outside_ci() {
        assert_eq!(ProgressMode::Auto.resolve(true, false), ProgressMode::Bars);
        assert_eq!(ProgressMode::Auto.resolve(true, true), ProgressMode::Plain);
        assert_eq!(
            ProgressMode::Auto.resolve(false, false),
            ProgressMode::Plain
        );
        assert_eq!(
            ProgressMode::Never.resolve(true, false),
            ProgressMode::Never
        );
        assert_eq!(ProgressMode::Bars.resolve(true, true), ProgressMode::Bars);
        assert_eq!(
            ProgressMode::Bars.resolve(false, false),
            ProgressMode::Plain
        );
    }

    fn request(index: usize, throttled: bool, retry_in: Option<Duration>) -> Event {
        Event::Request(crate::engine::RequestEvent {
            index,
            phase: crate::engine::Phase::Put,
            method: crate::engine::Method::Put,
            ok: !throttled,
            status: Some(if throttled { 429 } else { 200 }),
            error_code: None,
            throttled,
            retry_in,
        })
    }

    fn rate_changed(endpoint: &str, rate: Option<f64>, paused_for: Option<Duration>) -> Event {
        Event::RateChanged {
            endpoint: endpoint.to_owned(),
            rate,
            paused_for,
        }
    }

    #[test]
    fn activity_counts_requests_retries_and_throttles() {
        let start = Instant::now();
        let mut activity = Activity::default();
        activity.sample(start);
        activity.observe(&request(0, true, Some(Duration::from_secs(1))), start);
        activity.observe(&request(1, false, None), start);
        activity.observe(&request(2, false, None), start);
        let sample = activity.sample(start + Duration::from_secs(2));
        assert_eq!(
            (sample.retrying, sample.throttled, sample.request_rate),
            (1, 1, 1.5)
        );
        // The retried request succeeds: nothing backs off any more.
        activity.observe(&request(0, false, None), start);
        assert_eq!(activity.sample(start + Duration::from_secs(3)).retrying, 0);
    }

    #[test]
    fn activity_shows_the_slowest_endpoint_and_the_pause_left() {
        let start = Instant::now();
        let mut activity = Activity::default();
        assert_eq!(
            activity.sample(start).paced_rate,
            None,
            "no 429, no pacing shown"
        );
        activity.observe(
            &rate_changed("https://a", Some(70.0), Some(Duration::from_secs(2))),
            start,
        );
        activity.observe(&rate_changed("https://b", Some(140.0), None), start);
        let sample = activity.sample(start + Duration::from_millis(500));
        assert_eq!(sample.paced_rate, Some(70.0));
        assert_eq!(sample.paused_for, Some(Duration::from_millis(1500)));
        // A pause without a rate (an unlimited endpoint) keeps the rate last reported.
        activity.observe(
            &rate_changed("https://a", None, Some(Duration::from_secs(1))),
            start + Duration::from_secs(3),
        );
        let sample = activity.sample(start + Duration::from_secs(5));
        assert_eq!((sample.paced_rate, sample.paused_for), (Some(70.0), None));
    }

    #[test]
    fn a_long_throttle_pause_is_noted_once_while_it_lasts() {
        let start = Instant::now();
        let mut activity = Activity::default();
        let long = rate_changed("https://a", Some(70.0), Some(Duration::from_secs(60)));
        let note = activity
            .observe(&long, start)
            .expect("a 60 s pause is noted");
        assert_eq!(
            note,
            "https://a throttled (429): no request to it for 60s, then 70.0 req/s"
        );
        // Every request in flight may bring its own 429 for the same pause.
        assert_eq!(
            activity.observe(&long, start + Duration::from_secs(1)),
            None
        );
        // Once the pause is over, a new long one is news again.
        assert!(
            activity
                .observe(&long, start + Duration::from_secs(61))
                .is_some()
        );
        let short = rate_changed("https://b", Some(70.0), Some(Duration::from_secs(1)));
        assert_eq!(
            activity.observe(&short, start),
            None,
            "a short pause shows only in the counts"
        );
        // A long pause that arrives during a short one is still news.
        let long_b = rate_changed("https://b", Some(49.0), Some(Duration::from_secs(30)));
        assert!(
            activity
                .observe(&long_b, start + Duration::from_millis(500))
                .is_some()
        );
    }

    #[test]
    fn counts_describe_pacing_only_when_there_is_some() {
        let mut counts = Counts::default();
        assert!(!counts.describe().contains("paced"));
        counts.activity.paced_rate = Some(105.04);
        counts.activity.paused_for = Some(Duration::from_millis(2100));
        assert!(
            counts
                .describe()
                .ends_with(" · paced at 105.0/s · paused 3s"),
            "{}",
            counts.describe()
        );
    }

    fn not_started(wave: &str, reason: &str) -> OperationReport {
        OperationReport {
            index: 0,
            cluster: super::super::model::ClusterInfo {
                name: "c1".into(),
                id: "id-1".into(),
            },
            namespace: "shop".into(),
            name: "web".into(),
            action: "upgrade".into(),
            wave: wave.into(),
            outcome: Outcome::Skipped,
            final_status: None,
            version_before: None,
            version_after: None,
            release_version: None,
            attempts: Vec::new(),
            change_sent: false,
            change_applied: false,
            reconciled: false,
            rollback: None,
            duration_ms: 0,
            error: None,
            skip_reason: Some(reason.into()),
            note: None,
        }
    }

    #[test]
    fn operations_kept_from_starting_are_one_line_per_wave_and_reason() {
        let halted = not_started("prod", "run halted: budget");
        assert!(halted.never_started());
        let group = NotStarted {
            first: halted.clone(),
            count: 108,
        };
        assert_eq!(
            group.line(),
            "wave prod: 108 operation(s) skipped (run halted: budget)"
        );
        // One alone is told as itself.
        let alone = NotStarted {
            first: halted.clone(),
            count: 1,
        };
        assert_eq!(alone.line(), finished_line(&halted));
        assert!(!same_group(
            &halted,
            &not_started("late", "run halted: budget")
        ));
        assert!(!same_group(&halted, &not_started("prod", "interrupted")));
        // An operation that read its release (an undo's revision check) is no part of it.
        let mut read = halted;
        read.version_before = Some(4);
        assert!(!read.never_started());
    }

    #[test]
    fn counts_sort_outcomes() {
        let mut counts = Counts::default();
        for outcome in [
            Outcome::Succeeded,
            Outcome::Unchanged,
            Outcome::Failed,
            Outcome::Skipped,
            Outcome::Cancelled,
        ] {
            counts.record(outcome);
        }
        assert_eq!(
            (
                counts.done,
                counts.ok,
                counts.failed,
                counts.skipped,
                counts.cancelled
            ),
            (5, 2, 1, 1, 1)
        );
    }
}
