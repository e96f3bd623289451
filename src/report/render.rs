//! Renderings of a [`RunReport`]: terminal table, summary line, JUnit XML and Markdown.

use crate::terminal::escape_control;
use std::fmt::Write as _;
use std::time::Duration;

use comfy_table::{ContentArrangement, LineStyle, Table, TableStyle};
use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestRerun, TestSuite};

use super::model::{AttemptKind, AttemptReport, OperationReport, Outcome, RunReport, Summary};

/// The formats a report is rendered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Junit,
    Md,
}

/// `report` in `format`; the table is fitted to `terminal_width` when there is one.
pub fn render(report: &RunReport, format: ReportFormat, terminal_width: Option<u16>) -> String {
    match format {
        ReportFormat::Table => table(report, terminal_width),
        ReportFormat::Json => {
            let mut text = serde_json::to_string_pretty(report).expect("reports serialise");
            text.push('\n');
            text
        }
        ReportFormat::Junit => junit(report),
        ReportFormat::Md => markdown(report),
    }
}

/// `N succeeded, N unchanged, N failed, N skipped, N cancelled in 12.3s`: always the same
/// fields in the same order, zeros included, so that a script can parse it.
pub fn summary_line(summary: &Summary, duration_ms: u64) -> String {
    format!(
        "{} succeeded, {} unchanged, {} failed, {} skipped, {} cancelled in {:.1}s",
        summary.succeeded,
        summary.unchanged,
        summary.failed,
        summary.skipped,
        summary.cancelled,
        duration_ms as f64 / 1000.0
    )
}

fn revisions(op: &OperationReport) -> String {
    match (op.version_before, op.version_after) {
        (Some(b), Some(a)) => format!("{b}→{a}"),
        (Some(b), None) if op.outcome == Outcome::Unchanged => b.to_string(),
        (Some(b), None) => format!("{b}→"),
        (None, Some(a)) => format!("→{a}"),
        (None, None) => String::new(),
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// What the error column says: the error, and the rollback's fate with its PUTs. Nothing else:
/// a reason or a remark is the note column's.
fn problem(op: &OperationReport) -> String {
    let mut text = op
        .error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    if let Some(rollback) = &op.rollback {
        // Its PUTs are counted here, never in the change's attempts.
        let puts = op.rollback_put_attempts().unwrap_or_default();
        let _ = write!(
            text,
            "{}rollback {} ({puts} PUT{})",
            if text.is_empty() { "" } else { "; " },
            rollback.outcome.as_str(),
            if puts == 1 { "" } else { "s" }
        );
        if let Some(error) = &rollback.error {
            let _ = write!(text, ": {error}");
        }
    }
    text
}

/// What the note column says: why an operation was skipped or cancelled, or the remark on it
/// (why it was unchanged, that the journal showed it done). Why a PUT was sent (`change: …`) is
/// in the JSON report; the table keeps to what needs a look.
fn remark(op: &OperationReport) -> String {
    match &op.skip_reason {
        Some(reason) => reason.clone(),
        None => op
            .note
            .as_deref()
            .filter(|note| !note.starts_with("change:"))
            .unwrap_or_default()
            .to_owned(),
    }
}

/// The Markdown attempts column: the change's PUTs, then the rollback's, marked as such (`1 +
/// 1 rollback`): a rollback's PUT is not a second apply. The terminal table, narrower, says the
/// rollback's in its error column.
fn attempts_cell(op: &OperationReport) -> String {
    match op.rollback_put_attempts() {
        Some(rollback) => format!("{} + {rollback} rollback", op.put_attempts()),
        None => op.put_attempts().to_string(),
    }
}

/// Lines above and below the header and at the bottom, none between rows.
const TABLE_STYLE: TableStyle = TableStyle::new()
    .top_border(LineStyle::none().fill('─').junction('─'))
    .header_separator(LineStyle::none().fill('─').junction('─'))
    .bottom_border(LineStyle::none().fill('─').junction('─'));

/// The per-release table, fitted to `width` columns when given.
pub fn table(report: &RunReport, width: Option<u16>) -> String {
    table_of(&report.operations, report, width)
}

/// The table of `operations` (some of `report`'s), then the report's summary line.
fn table_of<'r>(
    operations: impl IntoIterator<Item = &'r OperationReport>,
    report: &RunReport,
    width: Option<u16>,
) -> String {
    let mut table = Table::new();
    table.load_style(TABLE_STYLE).set_header(vec![
        "cluster",
        "namespace",
        "release",
        "action",
        "result",
        "revision",
        "status",
        "attempts",
        "duration",
        "error",
        "note",
    ]);
    match width {
        Some(width) => table
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width),
        None => table.set_content_arrangement(ContentArrangement::Disabled),
    };
    for op in operations {
        // Every cell may hold input: none may drive the terminal or break the table's lines.
        let cells = [
            op.cluster.name.clone(),
            op.namespace.clone(),
            op.name.clone(),
            op.action.clone(),
            op.outcome.as_str().to_owned(),
            revisions(op),
            op.final_status.clone().unwrap_or_default(),
            op.put_attempts().to_string(),
            seconds(op.duration_ms),
            problem(op),
            remark(op),
        ];
        table.add_row(cells.map(|cell| escape_control(&cell).into_owned()));
    }
    let mut text = format!(
        "{table}\n{}\n",
        summary_line(&report.summary, report.duration_ms)
    );
    if let Some(refused) = refused_line(report) {
        text.push_str(&refused);
        text.push('\n');
    }
    if let Some(missing) = missing_shards_line(report) {
        text.push_str(&missing);
        text.push('\n');
    }
    text
}

/// Why a run stopped at a refusal of its credentials, next to its counts.
fn refused_line(report: &RunReport) -> Option<String> {
    report
        .credentials_refused
        .as_ref()
        .map(|refusal| format!("halted: {refusal}; operations not sent are skipped (exit 2)"))
}

/// A merged report without every shard says so next to its counts.
fn missing_shards_line(report: &RunReport) -> Option<String> {
    is_incomplete(report).then(|| {
        format!(
            "incomplete: shards missing: {} (their operations are not in this report)",
            report.missing_shards.join(", ")
        )
    })
}

/// A merged report that lacks a shard's report.
fn is_incomplete(report: &RunReport) -> bool {
    report.incomplete || !report.missing_shards.is_empty()
}

/// Beyond this many operations the end-of-run table lists only those that need a look.
pub const TERMINAL_TABLE_ROWS: usize = 200;

/// The end-of-run table: every operation for a small run; for a large one only those that did
/// not succeed, and a line saying where the rest are.
pub fn terminal_table(report: &RunReport, width: Option<u16>) -> String {
    if report.operations.len() <= TERMINAL_TABLE_ROWS {
        return table(report, width);
    }
    let shown: Vec<&OperationReport> = report
        .operations
        .iter()
        .filter(|op| !op.outcome.is_success())
        .collect();
    let hidden = report.operations.len() - shown.len();
    let note = format!(
        "({hidden} operations that succeeded are not listed; every one is in --report-json and `flotilla report JOURNAL`)\n"
    );
    if shown.is_empty() {
        return format!(
            "{note}{}\n",
            summary_line(&report.summary, report.duration_ms)
        );
    }
    format!("{}{note}", table_of(shown, report, width))
}

/// JUnit XML: one testsuite per wave, one testcase per operation; retried successes are
/// marked flaky, the way nextest marks flaky tests.
pub fn junit(report: &RunReport) -> String {
    let mut junit = quick_junit::Report::new(
        escape_control(&format!("flotilla {}", report.plan.name)).into_owned(),
    );
    junit.set_time(Duration::from_millis(report.duration_ms));
    let mut waves: Vec<(String, TestSuite)> = Vec::new();
    for op in &report.operations {
        let suite = match waves.iter_mut().find(|(name, _)| *name == op.wave) {
            Some((_, suite)) => suite,
            None => {
                let name = escape_control(&op.wave).into_owned();
                waves.push((op.wave.clone(), TestSuite::new(name)));
                &mut waves.last_mut().expect("just pushed").1
            }
        };
        suite.add_test_case(test_case(op));
    }
    junit.add_test_suites(waves.into_iter().map(|(_, suite)| suite));
    // A CI server that gates on JUnit failures must see a shard whose report was not merged.
    if !report.missing_shards.is_empty() {
        let mut suite = TestSuite::new("missing shards");
        for shard in &report.missing_shards {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(
                "no report of this shard was merged: its operations are unaccounted for",
            );
            suite.add_test_case(TestCase::new(format!("shard {shard}"), status));
        }
        junit.add_test_suite(suite);
    }
    junit.to_string().expect("JUnit serialises to memory")
}

fn test_case(op: &OperationReport) -> TestCase {
    let failed_puts: Vec<_> = op
        .attempts
        .iter()
        .filter(|a| a.request == "put" && a.kind != AttemptKind::Ok)
        .collect();
    let status = match op.outcome {
        Outcome::Succeeded | Outcome::Unchanged => {
            let mut status = TestCaseStatus::success();
            for attempt in failed_puts {
                let mut rerun = TestRerun::new(NonSuccessKind::Failure);
                rerun.set_message(escape_control(&attempt_text(attempt)).into_owned());
                status.add_rerun(rerun);
            }
            status
        }
        Outcome::Failed => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(escape_control(&problem(op)).into_owned());
            if let Some(error) = &op.error {
                status.set_type(error.code.clone().unwrap_or_else(|| "error".into()));
                status.set_description(escape_control(&error.to_string()).into_owned());
            }
            status
        }
        Outcome::Skipped | Outcome::Cancelled => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(
                escape_control(&format!(
                    "{}: {}",
                    op.outcome.as_str(),
                    op.skip_reason.clone().unwrap_or_default()
                ))
                .into_owned(),
            );
            status
        }
    };
    // XML 1.0 cannot carry most control characters at all, and a CI page shows these names.
    let mut case = TestCase::new(
        escape_control(&format!("{}/{}/{}", op.cluster.name, op.namespace, op.name)).into_owned(),
        status,
    );
    case.set_classname(escape_control(&format!("{}.{}", op.wave, op.action)).into_owned());
    case.set_time(Duration::from_millis(op.duration_ms));
    let mut out: Vec<String> = op.note.iter().cloned().collect();
    if let Some(rollback) = &op.rollback {
        // The rollback's requests are its own, never reruns of the change.
        let requests: Vec<String> = rollback.attempts.iter().map(attempt_text).collect();
        out.push(format!(
            "rollback {}: {}",
            rollback.outcome.as_str(),
            if requests.is_empty() {
                "no request".to_owned()
            } else {
                requests.join(", ")
            }
        ));
    }
    if !out.is_empty() {
        case.set_system_out(escape_control(&out.join("\n")).into_owned());
    }
    case
}

/// `put 503 server_error CCE.01500001 (request id …)`: one attempt in a few words.
fn attempt_text(attempt: &AttemptReport) -> String {
    let mut text = attempt.request.clone();
    if let Some(status) = attempt.status {
        let _ = write!(text, " {status}");
    }
    let _ = write!(text, " {}", attempt.kind);
    if let Some(code) = &attempt.code {
        let _ = write!(text, " {code}");
    }
    if let Some(id) = &attempt.request_id {
        let _ = write!(text, " (request id {id})");
    }
    text
}

fn md_cell(text: &str) -> String {
    escape_control(&text.replace('|', "\\|").replace('\n', " ")).into_owned()
}

/// GitHub-flavoured Markdown: failures first, then the summary and every operation.
pub fn markdown(report: &RunReport) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## flotilla: {}\n", md_cell(&report.plan.name));
    // A merge missing a shard is not a success, however its operations went.
    let (icon, incomplete) = match (report.summary.all_succeeded(), is_incomplete(report)) {
        (_, true) => ("❌", "**incomplete:** "),
        (true, false) => ("✅", ""),
        (false, false) => ("❌", ""),
    };
    let _ = writeln!(
        md,
        "{icon} {incomplete}{}\n",
        summary_line(&report.summary, report.duration_ms)
    );
    if let Some(refusal) = &report.credentials_refused {
        let _ = writeln!(
            md,
            "**Credentials refused:** {}; the run halted, and operations not sent are skipped.\n",
            md_cell(&refusal.detail().to_string())
        );
    } else if let Some(reason) = &report.halted {
        let _ = writeln!(md, "**Halted:** {}\n", md_cell(reason));
    }
    if report.interrupted {
        let _ = writeln!(md, "**Interrupted** before the run finished.\n");
    }
    if let Some(missing) = missing_shards_line(report) {
        let _ = writeln!(md, "**{missing}**\n");
    }
    let problems: Vec<_> = report
        .operations
        .iter()
        .filter(|op| !op.outcome.is_success())
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(md, "### Failures\n");
        let _ = writeln!(
            md,
            "| cluster | namespace | release | result | error | note |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|");
        for row in failure_rows(&problems) {
            match row {
                FailureRow::One(op)
                | FailureRow::NotStarted {
                    first: op,
                    count: 1,
                } => {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} | {} |",
                        md_cell(&op.cluster.name),
                        md_cell(&op.namespace),
                        md_cell(&op.name),
                        op.outcome.as_str(),
                        md_cell(&problem(op)),
                        md_cell(&remark(op))
                    );
                }
                FailureRow::NotStarted { first, count } => {
                    let _ = writeln!(
                        md,
                        "| wave {}: {count} operation(s) | | | {} | | {} |",
                        md_cell(&first.wave),
                        first.outcome.as_str(),
                        md_cell(&remark(first))
                    );
                }
            }
        }
        md.push('\n');
    }
    let _ = writeln!(md, "<details><summary>All operations</summary>\n");
    let _ = writeln!(
        md,
        "| wave | cluster | namespace | release | action | result | revision | status | attempts | duration |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for op in &report.operations {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            md_cell(&op.wave),
            md_cell(&op.cluster.name),
            md_cell(&op.namespace),
            md_cell(&op.name),
            op.action,
            op.outcome.as_str(),
            revisions(op),
            op.final_status.as_deref().unwrap_or(""),
            attempts_cell(op),
            seconds(op.duration_ms)
        );
    }
    let _ = writeln!(md, "\n</details>");
    md
}

/// A row of the Markdown failures table: one operation, or the operations of one wave that a
/// halt or an interrupt kept from starting, for the same reason.
enum FailureRow<'r> {
    One(&'r OperationReport),
    NotStarted {
        first: &'r OperationReport,
        count: usize,
    },
}

/// The failures table's rows: operations that never started are told once per wave, outcome
/// and reason (a halt in the first wave would list every later operation otherwise).
fn failure_rows<'r>(problems: &[&'r OperationReport]) -> Vec<FailureRow<'r>> {
    let mut rows: Vec<FailureRow<'r>> = Vec::new();
    for &op in problems {
        if !op.never_started() {
            rows.push(FailureRow::One(op));
            continue;
        }
        let group = rows.iter_mut().find_map(|row| match row {
            FailureRow::NotStarted { first, count } if same_group(first, op) => Some(count),
            _ => None,
        });
        match group {
            Some(count) => *count += 1,
            None => rows.push(FailureRow::NotStarted {
                first: op,
                count: 1,
            }),
        }
    }
    rows
}

/// Two operations that never started for the same reason, in the same wave.
pub(crate) fn same_group(a: &OperationReport, b: &OperationReport) -> bool {
    a.wave == b.wave && a.outcome == b.outcome && a.skip_reason == b.skip_reason
}
