//! What a person watching a run sees: progress bars on a terminal, one line per finished
//! operation plus a heartbeat without one (CI), or nothing.

use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::model::{OperationReport, Outcome};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Bars on a terminal, plain lines otherwise (and under CI).
    Auto,
    /// Progress bars.
    Bars,
    /// One line per finished operation, and a heartbeat every 10 s.
    Plain,
    /// Nothing until the final report.
    Never,
}

impl ProgressMode {
    /// `Auto` decided from the facts about the terminal.
    pub fn resolve(self, stderr_is_terminal: bool, ci: bool) -> ProgressMode {
        match self {
            ProgressMode::Auto if stderr_is_terminal && !ci => ProgressMode::Bars,
            ProgressMode::Auto => ProgressMode::Plain,
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
    /// Operations currently backing off before a retry.
    pub retrying: usize,
    /// 429 answers so far.
    pub throttled: usize,
    /// Requests per second over the last few seconds.
    pub request_rate: f64,
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
        format!(
            "ok {} · failed {} · retrying {} · throttled {} · {:.1} req/s",
            self.ok, self.failed, self.retrying, self.throttled, self.request_rate
        )
    }
}

/// The display. All output goes to stderr, so stdout stays for the report.
pub struct Progress {
    mode: ProgressMode,
    multi: MultiProgress,
    overall: ProgressBar,
    wave: ProgressBar,
    counts: Counts,
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
        }
    }

    /// Where log lines go so that they never tear the bars.
    pub fn multi(&self) -> &MultiProgress {
        &self.multi
    }

    pub fn wave_started(&mut self, name: &str, operations: usize) {
        self.wave.set_prefix(name.to_owned());
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
            ProgressMode::Bars => self.wave.set_message(text),
            _ => {}
        }
    }

    pub fn set_activity(&mut self, retrying: usize, throttled: usize, request_rate: f64) {
        self.counts.retrying = retrying;
        self.counts.throttled = throttled;
        self.counts.request_rate = request_rate;
        self.overall.set_message(self.counts.describe());
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
        if self.mode == ProgressMode::Plain {
            self.line(&finished_line(&describe()));
        }
    }

    pub fn note(&self, text: &str) {
        match self.mode {
            ProgressMode::Bars => {
                let _ = self.multi.println(text);
            }
            ProgressMode::Plain => self.line(text),
            _ => {}
        }
    }

    /// The plain mode's heartbeat: called every [`HEARTBEAT`].
    pub fn heartbeat(&self) {
        if self.mode == ProgressMode::Plain {
            self.line(&format!(
                "{}/{} done: {}",
                self.counts.done,
                self.counts.total,
                self.counts.describe()
            ));
        }
    }

    fn line(&self, text: &str) {
        let elapsed = self.overall.elapsed().as_secs_f64();
        let _ = writeln!(std::io::stderr().lock(), "[{elapsed:>7.1}s] {text}");
    }

    pub fn finish(&self) {
        self.wave.finish_and_clear();
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
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
