//! Answers that leave fields out: a PUT accepted whatever its answer lacks, a revision needed
//! before a change is judged and to prove it landed, a missing status that keeps a wait going.

use super::*;
use crate::cce::model::Release;
use crate::engine::fake::only;

fn nothing(release: &mut Release) {
    *release = Release::default();
}

fn no_revision(release: &mut Release) {
    release.version = None;
}

fn no_status(release: &mut Release) {
    release.status = None;
}

fn no_revision_no_values(release: &mut Release) {
    only(release, |full, kept| {
        kept.status = full.status.clone();
        kept.chart_name = full.chart_name.clone();
        kept.chart_version = full.chart_version.clone();
    });
}

fn gets(api: &FakeApi) -> usize {
    api.calls().iter().filter(|c| c.method == "GET").count()
}

#[tokio::test(start_paused = true)]
async fn a_put_whose_answer_gives_nothing_is_still_an_accepted_change() {
    let (c, p, api) = seeded_on_one_cluster(1);
    api.script(&c.id, "app-0", |s| s.put_answers.push_back(nothing));
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    let r = &report.results[0];
    assert_eq!(r.put_attempts, 1);
    assert_eq!(api.release(&c.id, "app-0").applied_puts, 1);
    assert_eq!(
        r.version_after,
        Some(2),
        "proven by the wait's own reads: {r:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_preflight_answer_without_its_revision_is_read_again_before_anything_is_judged() {
    let (c, p, api) = seeded_on_one_cluster(1);
    api.script(&c.id, "app-0", |s| {
        s.get_answers
            .extend([no_revision as AnswerEdit, no_status, nothing]);
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    let r = &report.results[0];
    assert_eq!(r.version_before, Some(1));
    assert_eq!(api.release(&c.id, "app-0").applied_puts, 1);
    let puts = api.puts();
    let first_put = api
        .calls()
        .iter()
        .position(|call| call.method == "PUT")
        .unwrap();
    assert_eq!(
        first_put,
        4,
        "three answers that could not be judged, then one that could: {:?}",
        api.calls()
    );
    assert_eq!(puts.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_preflight_that_never_learns_the_revision_sends_nothing() {
    let (c, p, api) = seeded_on_one_cluster(1);
    api.script(&c.id, "app-0", |s| {
        s.get_answers.extend([no_revision as AnswerEdit; 200]);
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let r = &report.results[0];
    assert_eq!(r.outcome, Outcome::Failed);
    let message = &r.error.as_ref().unwrap().message;
    assert!(
        message.contains("could not confirm") && message.contains("nothing sent"),
        "{message}"
    );
    assert!(api.puts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn polls_without_a_revision_never_prove_the_change() {
    let mut rollout = rollout();
    rollout.wait.timeout = Duration::from_secs(10);
    let (c, p, api) = seeded_with(rollout, 1, "v2");
    api.script(&c.id, "app-0", |s| {
        // The preflight's answer is whole; every poll after the PUT lacks its revision.
        s.get_answers.push_back(|_| {});
        s.get_answers.extend([no_revision as AnswerEdit; 100]);
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let r = &report.results[0];
    assert_eq!(r.outcome, Outcome::Failed, "{r:#?}");
    let message = &r.error.as_ref().unwrap().message;
    assert!(
        message.contains("timed out") && message.contains("no revision (version)"),
        "{message}"
    );
    assert_eq!(api.release(&c.id, "app-0").applied_puts, 1);
}

#[tokio::test(start_paused = true)]
async fn a_missing_status_keeps_the_wait_going() {
    let (c, p, api) = seeded_on_one_cluster(1);
    api.script(&c.id, "app-0", |s| {
        s.get_answers.push_back(|_| {});
        s.get_answers.extend([no_status as AnswerEdit; 5]);
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    // The release settled after 2 s, at the second poll; five more polls lacked the status.
    assert!(gets(&api) >= 7, "{:?}", api.calls());
}

#[tokio::test(start_paused = true)]
async fn without_any_revision_a_deployed_release_is_confirmed_by_its_content() {
    let mut rollout = rollout();
    rollout.preflight = false;
    let (c, p, api) = seeded_with(rollout, 1, "v2");
    api.script(&c.id, "app-0", |s| {
        s.put_answers.push_back(nothing);
        s.get_answers.extend([no_revision as AnswerEdit; 100]);
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    assert_eq!(api.release(&c.id, "app-0").applied_puts, 1);
}

#[tokio::test(start_paused = true)]
async fn without_any_revision_or_values_the_change_could_not_be_confirmed() {
    let mut rollout = rollout();
    rollout.preflight = false;
    let (c, p, api) = seeded_with(rollout, 1, "v2");
    api.script(&c.id, "app-0", |s| {
        s.put_answers.push_back(nothing);
        s.get_answers
            .extend([no_revision_no_values as AnswerEdit; 100]);
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    let r = &report.results[0];
    assert_eq!(r.outcome, Outcome::Failed, "never a silent success: {r:#?}");
    assert!(
        r.error
            .as_ref()
            .unwrap()
            .message
            .starts_with("could not confirm the change"),
        "{r:#?}"
    );
    assert_eq!(api.release(&c.id, "app-0").applied_puts, 1);
}

#[tokio::test(start_paused = true)]
async fn a_reconciling_read_without_its_revision_is_read_again_not_resent() {
    let (c, p, api) = seeded_on_one_cluster(1);
    api.script(&c.id, "app-0", |s| {
        s.put_faults.push_back(Fault::AppliedThen500);
        // The preflight's answer is whole; the first two reconciling reads lack the revision.
        s.get_answers.push_back(|_| {});
        s.get_answers.extend([no_revision as AnswerEdit, nothing]);
    });
    let (report, _) = run_plan(&p, api.clone(), EngineOptions::default()).await;
    ok(&report);
    let r = &report.results[0];
    assert!(r.reconciled, "{r:#?}");
    assert_eq!(api.puts().len(), 1);
    assert_eq!(api.release(&c.id, "app-0").applied_puts, 1);
}
