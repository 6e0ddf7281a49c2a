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

#[test]
fn without_priority_the_cap_drops_the_reminder_rather_than_send_it_on_the_day() {
    // The same day without `priority`: newsletter 12:00 and fluoride 17:00 take 12-01's two
    // slots; the reminder's next chance, 12-02 09:00, is on the appointment day: dropped.
    let run = plan("priority_off.step", "priority.csv", "2026-12-01 08:00", "2");
    assert_eq!(
        sends(&run),
        [
            "2026-12-01T12:00:00+09:00 R1 newsletter",
            "2026-12-01T17:00:00+09:00 R1 fluoride",
        ]
    );
    let why = explain(
        "priority_off.step",
        "priority.csv",
        "R1",
        "2026-12-01 08:00",
    );
    assert_says(
        &why,
        "reminder    dropped by the cap: no free day before it expired (was due 2026-12-01 (火) 18:00)",
    );
}

#[test]
fn a_day_before_reminder_booked_late_is_not_sent_on_the_appointment_day() {
    // A1 books at 11-26 21:15 for 11-27 17:00. The reminder was due 11-26 18:00, before the
    // booking existed; the next chance is 09:00 on 11-27 (quiet hours), the appointment day:
    // not sent. A3's appointment is on 11-28: its reminder goes out 11-27 18:00 as timed.
    // A2 visited 11-26 19:30; `after 0m at 19:00` would be 19:00 that day, before the visit:
    // it moves to 19:00 the next day.
    let run = plan("anchor_day.step", "anchor_day.csv", "2026-11-26 21:15", "3");
    assert_eq!(
        sends(&run),
        [
            "2026-11-27T18:00:00+09:00 A3 remind",
            "2026-11-27T19:00:00+09:00 A2 thanks",
        ]
    );
    let why = explain(
        "anchor_day.step",
        "anchor_day.csv",
        "A1",
        "2026-11-26 21:15",
    );
    assert_says(
        &why,
        "remind  not sent: it would go out at 2026-11-27 (金) 09:00, on the day of appointment_at (2026-11-27 (金) 17:00)",
    );
    let why = explain(
        "anchor_day.step",
        "anchor_day.csv",
        "A2",
        "2026-11-26 21:15",
    );
    assert_says(
        &why,
        "thanks  sends hello at 2026-11-27 (金) 19:00 (moved to the next day: 2026-11-26 (木) 19:00 is before stage_entered_at at 2026-11-26 (木) 19:30)",
    );
}

#[test]
fn even_on_the_day_lets_a_late_reminder_out_before_the_appointment() {
    // With `even on the day`, A1's overdue reminder goes out when quiet hours end, 11-27
    // 09:00, still before the 17:00 appointment.
    let run = plan(
        "anchor_day_ok.step",
        "anchor_day.csv",
        "2026-11-26 21:15",
        "3",
    );
    assert_eq!(
        sends(&run),
        [
            "2026-11-27T09:00:00+09:00 A1 remind",
            "2026-11-27T18:00:00+09:00 A3 remind",
            "2026-11-27T19:00:00+09:00 A2 thanks",
        ]
    );
    let why = explain(
        "anchor_day_ok.step",
        "anchor_day.csv",
        "A1",
        "2026-11-26 21:15",
    );
    assert_says(
        &why,
        "remind  sends reminder at 2026-11-27 (金) 09:00 (overdue since 2026-11-26 (木) 18:00; goes out on the next run, until 2026-11-27 (金) 17:00)",
    );
}

#[test]
fn even_on_the_day_is_only_for_before_timings() {
    let run = steprule(&fixtures().join("check"), &["check", "on_the_day.step"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    insta::assert_snapshot!("even_on_the_day_only_before", run.stderr);
}

#[test]
fn allowed_warnings_are_not_reported_and_deny_warnings_passes() {
    // Without its `allow` clauses allowed.step has two same-instant warnings and a
    // quiet-hours-at one; `allowed_nothing_else` below shows they are really there.
    let run = steprule(
        &fixtures().join("check"),
        &["check", "--deny-warnings", "allowed.step"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("allowed.step: ok, 5 steps"),
        "{}",
        run.stderr
    );
}

#[test]
fn allowed_nothing_else() {
    // The same file with its `allow` clauses taken out: the three warnings come back.
    let text = std::fs::read_to_string(fixtures().join("check/allowed.step")).unwrap();
    let stripped = text
        .replace(" allow same-instant", "")
        .replace("\n    allow quiet-hours-at, same-instant", "");
    assert!(
        stripped
            .lines()
            .all(|line| line.starts_with('#') || !line.contains("allow")),
        "{stripped}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stripped.step"), stripped).unwrap();
    let templates = fixtures().join("check/templates");
    let run = steprule(
        dir.path(),
        &[
            "check",
            "--templates",
            templates.to_str().unwrap(),
            "stripped.step",
        ],
    );
    assert!(
        run.stderr.contains("stripped.step: 0 errors, 3 warnings"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unknown_name_in_allow_is_a_warning_with_a_suggestion() {
    let run = steprule(&fixtures().join("check"), &["check", "allow_unknown.step"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("allow_unknown_names", run.stderr);
    let denied = steprule(
        &fixtures().join("check"),
        &["check", "--deny-warnings", "allow_unknown.step"],
    );
    assert_eq!(denied.code, 1, "{}", denied.stderr);
}

/// `run RULES --patients PATIENTS --now NOW EXTRA…` in tests/fixtures/plan, with the ledger and
/// the outbox in `dir` (no token: the outbox).
fn run_in(dir: &std::path::Path, rules: &str, patients: &str, now: &str, extra: &[&str]) -> Run {
    let ledger = dir.join("ledger.db");
    let outbox = dir.join("outbox.jsonl");
    let mut args = vec![
        "run",
        rules,
        "--patients",
        patients,
        "--now",
        now,
        "--ledger",
        ledger.to_str().unwrap(),
        "--outbox",
        outbox.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    steprule(&fixtures().join("plan"), &args)
}

/// `status --patient ID --format json`: the patient's rows as (step, status, reason).
fn patient_rows(dir: &std::path::Path, patient: &str) -> Vec<(String, String, String)> {
    let ledger = dir.join("ledger.db");
    let run = steprule(
        dir,
        &[
            "status",
            "--ledger",
            ledger.to_str().unwrap(),
            "--patient",
            patient,
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let status: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let text = |row: &serde_json::Value, key: &str| row[key].as_str().unwrap_or("-").to_owned();
    status["patient"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (text(row, "step"), text(row, "status"), text(row, "reason")))
        .collect()
}

#[test]
fn sends_timed_before_start_are_shown_skipped_by_plan_and_explain() {
    // `start 2026-12-01`. S1 entered 11-28 15:00: thanks was due 11-29 10:00 (within 3d, so
    // still sendable at 12-01 09:00) — before the start: skipped. S1's survey (12-02 12:00)
    // and S2's thanks (12-01 10:00) and survey (12-04 12:00) are after it.
    let run = plan("start.step", "start.csv", "2026-12-01 09:00", "4");
    let recipients: Vec<String> = run
        .stdout
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            format!("{} {}", row["step"], row["recipient"])
        })
        .collect();
    assert_eq!(
        sends(&run),
        [
            "2026-12-01T09:00:00+09:00 S1 thanks",
            "2026-12-01T10:00:00+09:00 S2 thanks",
            "2026-12-02T12:00:00+09:00 S1 survey",
            "2026-12-04T12:00:00+09:00 S2 survey",
        ]
    );
    assert_eq!(
        recipients,
        [
            "\"thanks\" \"skipped\"",
            "\"thanks\" \"export\"",
            "\"survey\" \"export\"",
            "\"survey\" \"export\"",
        ]
    );
    let why = explain("start.step", "start.csv", "S1", "2026-12-01 09:00");
    assert_says(
        &why,
        "thanks  skipped: timed before the start (2026-12-01 (火) 00:00), it would go out at 2026-12-01 (火) 09:00",
    );
}

#[test]
fn run_records_sends_before_start_as_skipped_and_never_sends_them() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_in(
        dir.path(),
        "start.step",
        "start.csv",
        "2026-12-01 09:00",
        &[],
    );
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first
            .stderr
            .contains("due 1, sent 0, already sent 0, settled before 0, expired 0, failed 0, held 0, blocked 0, retrying later 0, skipped before start 1"),
        "{}",
        first.stderr
    );
    let outbox = std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap_or_default();
    assert_eq!(outbox, "", "nothing was sent");
    assert_eq!(
        patient_rows(dir.path(), "S1"),
        [("thanks".into(), "skipped".into(), "before start".into())]
    );
    // The next pass finds it settled; S2's thanks (10:00) goes out.
    let second = run_in(
        dir.path(),
        "start.step",
        "start.csv",
        "2026-12-01 10:00",
        &[],
    );
    assert!(
        second
            .stderr
            .contains("due 2, sent 1, already sent 0, settled before 1"),
        "{}",
        second.stderr
    );
    let outbox = std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap();
    assert_eq!(outbox.lines().count(), 1);
    assert!(outbox.contains("\"S2\""), "{outbox}");
}

#[test]
fn run_since_replaces_the_start_setting() {
    // `--since 2026-11-29` (midnight): S1's thanks, timed 11-29 10:00, is after it and goes out
    // (overdue, within its 3 days).
    let dir = tempfile::tempdir().unwrap();
    let run = run_in(
        dir.path(),
        "start.step",
        "start.csv",
        "2026-12-01 09:00",
        &["--since", "2026-11-29"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("due 1, sent 1,"), "{}", run.stderr);
    assert_eq!(
        patient_rows(dir.path(), "S1"),
        [("thanks".into(), "sent".into(), "-".into())]
    );
    let bad = run_in(
        dir.path(),
        "start.step",
        "start.csv",
        "2026-12-01 09:00",
        &["--since", "yesterday"],
    );
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--since"), "{}", bad.stderr);
}

#[test]
fn fixed_dates_send_on_their_day_with_the_usual_conditions() {
    // `closure` on 2026-12-28 at 10:00 for regular and first_visit patients: F1, F2, F3.
    // `teeth_week` (06-04 each year, not staff) is not in this window.
    let run = plan("fixed.step", "fixed.csv", "2026-12-20 09:00", "10");
    assert_eq!(
        sends(&run),
        [
            "2026-12-28T10:00:00+09:00 F1 closure",
            "2026-12-28T10:00:00+09:00 F2 closure",
            "2026-12-28T10:00:00+09:00 F3 closure",
        ]
    );
    // The ledger key is the day itself, whatever the `at`.
    assert!(
        run.stdout
            .lines()
            .all(|l| l.contains("\"occurrence\":\"2026-12-28T00:00:00+09:00\"")),
        "{}",
        run.stdout
    );
    // In June: only F1 (regular, not tagged staff), on 06-04 at 10:00 of each year.
    for (now, day) in [
        ("2027-06-01 09:00", "2027-06-04"),
        ("2028-06-01 09:00", "2028-06-04"),
    ] {
        let run = plan("fixed.step", "fixed.csv", now, "7");
        assert_eq!(sends(&run), [format!("{day}T10:00:00+09:00 F1 teeth_week")]);
    }
    let why = explain("fixed.step", "fixed.csv", "F3", "2027-06-01 09:00");
    assert_says(
        &why,
        "teeth_week  not sent: condition false: not `tag=staff`",
    );
    let why = explain("fixed.step", "fixed.csv", "F1", "2026-12-20 09:00");
    assert_says(&why, "teeth_week  sends hello at 2027-06-04 (金) 10:00");
}

#[test]
fn a_yearly_send_already_made_is_not_sent_again() {
    // Sent on 2027-06-04 at 10:00; a run the next day, still within its 3 days, finds it in
    // the ledger under the same key and sends nothing.
    let dir = tempfile::tempdir().unwrap();
    let first = run_in(
        dir.path(),
        "fixed.step",
        "fixed.csv",
        "2027-06-04 10:00",
        &[],
    );
    assert!(first.stderr.contains("due 1, sent 1,"), "{}", first.stderr);
    let again = run_in(
        dir.path(),
        "fixed.step",
        "fixed.csv",
        "2027-06-05 10:00",
        &[],
    );
    assert!(
        again.stderr.contains("due 1, sent 0, already sent 1,"),
        "{}",
        again.stderr
    );
}

#[test]
fn fixed_dates_that_do_not_exist_are_errors() {
    let run = steprule(&fixtures().join("check"), &["check", "fixed_dates.step"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    insta::assert_snapshot!("fixed_dates_that_do_not_exist", run.stderr);
}
