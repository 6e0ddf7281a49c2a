//! Issue 11's timing rules, run as a marketer runs them (`plan`, `explain`, `check`) on the
//! fixtures in tests/fixtures/plan and tests/fixtures/check. Every expected send is worked out
//! by hand next to its test; times are Asia/Tokyo.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{fixtures, steprule, Run};

/// `plan RULES --patients PATIENTS --now NOW --days DAYS --format json` in tests/fixtures/plan.
fn plan(rules: &str, patients: &str, now: &str, days: &str) -> Run {
    steprule(
        &fixtures().join("plan"),
        &[
            "plan",
            rules,
            "--patients",
            patients,
            "--now",
            now,
            "--days",
            days,
            "--format",
            "json",
        ],
    )
}

/// `at patient step` for each JSON line of a plan.
fn sends(run: &Run) -> Vec<String> {
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            let text = |key: &str| row[key].as_str().unwrap_or("-").to_owned();
            format!("{} {} {}", text("at"), text("patient"), text("step"))
        })
        .collect()
}

/// What `explain` prints for one patient of tests/fixtures/plan.
fn explain(rules: &str, patients: &str, patient: &str, now: &str) -> String {
    let run = steprule(
        &fixtures().join("plan"),
        &[
            "explain",
            rules,
            "--patients",
            patients,
            "--patient",
            patient,
            "--now",
            now,
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
}

#[track_caller]
fn assert_says(text: &str, line: &str) {
    assert!(text.contains(line), "`{line}` in:\n{text}");
}

#[test]
fn the_cap_keeps_a_high_priority_reminder_before_earlier_sends() {
    // R1 on 12-01: newsletter 12:00 (1d after entering regular on 11-30 10:00), fluoride 17:00
    // (3mo after the 09-01 15:00 visit), reminder 18:00 (1d before the 12-02 10:00
    // appointment). Cap 2 a day: the high-priority reminder first, then the earlier normal
    // one (newsletter); fluoride, sendable 24 h to 12-02 17:00, moves to 12-02 09:00.
    let run = plan("priority.step", "priority.csv", "2026-12-01 08:00", "2");
    assert_eq!(
        sends(&run),
        [
            "2026-12-01T12:00:00+09:00 R1 newsletter",
            "2026-12-01T18:00:00+09:00 R1 reminder",
            "2026-12-02T09:00:00+09:00 R1 fluoride",
        ]
    );
    let why = explain("priority.step", "priority.csv", "R1", "2026-12-01 08:00");
    assert_says(
        &why,
        "fluoride    sends hello at 2026-12-02 (水) 09:00 (moved by the cap: 2026-12-01 was full)",
    );
    assert_says(&why, "reminder    sends reminder at 2026-12-01 (火) 18:00");
}

#[test]
fn check_warns_when_the_cap_can_drop_a_reminder() {
    let run = steprule(
        &fixtures().join("check"),
        &["check", "reminder_capped.step"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("reminder_capped_is_a_warning", run.stderr);
    let denied = steprule(
        &fixtures().join("check"),
        &["check", "--deny-warnings", "reminder_capped.step"],
    );
    assert_eq!(denied.code, 1, "{}", denied.stderr);
}
