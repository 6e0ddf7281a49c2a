//! `steprule plan` and `steprule explain` on hand-made patient files. Each expected send is
//! worked out by hand from the rules in tests/fixtures/plan (times Asia/Tokyo).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;
#[path = "plan_cli/on_postgres.rs"]
mod on_postgres;
#[path = "support/postgres.rs"]
mod pg;

use common::{fixtures, steprule, Run};

fn plan_in(rules: &str, patients: &str, now: &str, days: &str, extra: &[&str]) -> Run {
    let dir = fixtures().join("plan");
    let mut args = vec![
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
    ];
    args.extend_from_slice(extra);
    steprule(&dir, &args)
}

fn plan(patients: &str, now: &str, days: &str) -> Run {
    plan_in("clinic.step", patients, now, days, &[])
}

/// `at patient step template variant` for each JSON line.
fn sends(run: &Run) -> Vec<String> {
    assert!(
        run.code == 0 || run.code == 3,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    run.stdout
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            let text = |key: &str| row[key].as_str().unwrap_or("-").to_owned();
            format!(
                "{} {} {} {} {}",
                text("at"),
                text("patient"),
                text("step"),
                text("template"),
                text("variant")
            )
        })
        .collect()
}

/// `plan ARGS` in tests/fixtures/plan.
fn plan_fixture(args: &[&str]) -> Run {
    steprule(&fixtures().join("plan"), &[&["plan"], args].concat())
}

/// `plan` of the sample clinic (rules/clinic.step) on a patient file, as JSON. The rules are
/// read from a copy, so that a ledger the README's `run` left beside them is not read.
fn plan_sample(patients: &str, now: &str, days: &str, extra: &[&str]) -> Run {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(
        root.join("rules/clinic.step"),
        copy.path().join("clinic.step"),
    )
    .unwrap();
    std::os::unix::fs::symlink(root.join("rules/templates"), copy.path().join("templates"))
        .unwrap();
    let rules = copy.path().join("clinic.step");
    let mut args = vec![
        "plan",
        rules.to_str().unwrap(),
        "--patients",
        patients,
        "--now",
        now,
        "--days",
        days,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    steprule(root, &args)
}

/// Asserts that `explain` (rules, patients, patient, now) says `line`.
fn assert_explains(args: (&str, &str, &str, &str), line: &str) {
    let why = explain(args.0, args.1, args.2, args.3);
    assert!(why.stdout.contains(line), "`{line}` in:\n{}", why.stdout);
}

fn explain(rules: &str, patients: &str, patient: &str, now: &str) -> Run {
    steprule(
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
    )
}

#[test]
fn quiet_hours_move_sends_to_the_morning() {
    // Q1 books at 23:10, Q2 at 06:45: both confirmations wait for 09:00.
    let run = plan("quiet_hours.csv", "2026-11-20 23:00", "1");
    assert_eq!(
        sends(&run),
        [
            "2026-11-21T09:00:00+09:00 Q1 confirm hello -",
            "2026-11-21T09:00:00+09:00 Q2 confirm hello -",
        ]
    );
    assert_explains(("clinic.step", "quiet_hours.csv", "Q1", "2026-11-20 23:00"), "confirm   sends hello at 2026-11-21 (土) 09:00 (held by quiet hours from 2026-11-20 (金) 23:10)");
}

#[test]
fn after_downtime_recent_sends_go_out_and_old_ones_expire() {
    // Back at 11-22 12:00. D1's thanks was due 11-21 10:00: its 24 h ended 11-22 10:00.
    // D2's was due 11-22 10:00: two hours late, still within 24 h, so it goes out now.
    let run = plan("downtime.csv", "2026-11-22 12:00", "1");
    assert_eq!(sends(&run), ["2026-11-22T12:00:00+09:00 D2 thanks hello -"]);
    assert_explains(
        ("clinic.step", "downtime.csv", "D1", "2026-11-22 12:00"),
        "thanks    expired at 2026-11-22 (日) 10:00 (was due 2026-11-21 (土) 10:00)",
    );
    assert_explains(
        ("clinic.step", "downtime.csv", "D2", "2026-11-22 12:00"),
        "(overdue since 2026-11-22 (日) 10:00",
    );
}

#[test]
fn months_are_calendar_months_at_month_ends() {
    // 3 months after Nov 30 is Feb 28, or Feb 29 in a leap year.
    let run = plan("month_end.csv", "2027-02-01 00:00", "30");
    let got = sends(&run);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("2027-02-28T10:00:00+09:00 M1 checkup"),
        "{got:?}"
    );
    let run = plan("month_end.csv", "2028-02-01 00:00", "30");
    let got = sends(&run);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("2028-02-29T10:00:00+09:00 M2 checkup"),
        "{got:?}"
    );
}

#[test]
fn unless_stops_followups_and_cancelled_reminders() {
    // U2 has a next booking: no followup. U4 cancelled: no reminder.
    let run = plan("unless.csv", "2026-11-20 10:00", "8");
    assert_eq!(
        sends(&run),
        [
            "2026-11-20T10:00:00+09:00 U3 confirm hello -",
            "2026-11-20T10:00:00+09:00 U4 confirm hello -",
            "2026-11-21T10:00:00+09:00 U1 thanks hello -",
            "2026-11-21T10:00:00+09:00 U2 thanks hello -",
            "2026-11-25T18:00:00+09:00 U3 remind reminder -",
            "2026-11-27T10:00:00+09:00 U1 followup hello -",
        ]
    );
    assert_explains(("clinic.step", "unless.csv", "U2", "2026-11-20 10:00"), "followup  stopped at 2026-11-27 (金) 10:00 by unless: `next_booking_at` (next_booking_at is 2026-12-05 10:00)");
}

#[test]
fn every_sends_each_occurrence_in_the_window() {
    // Entered Jan 1 09:00; every 30 days: Jan 31, Mar 2, Apr 1 — at 12:00.
    let run = plan("every.csv", "2026-03-01 00:00", "35");
    assert_eq!(
        sends(&run),
        [
            "2026-03-02T12:00:00+09:00 E1 news hello -",
            "2026-04-01T12:00:00+09:00 E1 news hello -",
        ]
    );
}

#[test]
fn cap_moves_extra_sends_to_the_next_morning_or_drops_them() {
    // Cap 1 per day. 11-21: thanks 10:00 fits; survey (11:00, within 3d) moves to 11-22 09:00;
    // recap (12:00, 24 h) also moves to 11-22 09:00, loses to survey (file order), and its
    // next chance, 11-23 09:00, is after it expires.
    let run = plan_in("capped.step", "capped.csv", "2026-11-20 08:00", "4", &[]);
    assert_eq!(
        sends(&run),
        [
            "2026-11-21T10:00:00+09:00 C1 thanks hello -",
            "2026-11-22T09:00:00+09:00 C1 survey hello -",
        ]
    );
    assert_explains(
        ("capped.step", "capped.csv", "C1", "2026-11-20 08:00"),
        "recap   dropped by the cap: no free day before it expired (was due 2026-11-21 (土) 12:00)",
    );
}

#[test]
fn variants_are_deterministic_per_patient() {
    let first = sends(&plan("variants.csv", "2026-11-25 09:00", "1"));
    let again = sends(&plan("variants.csv", "2026-11-25 09:00", "1"));
    assert_eq!(first, again);
    // FNV-1a 64 of (id, 0xff, "checkup") mod 100, worked out outside steprule:
    // V1 22, V2 59, V3 88, V4 29, V5 94, V6 95; below 50 is checkup_a.
    assert_eq!(
        first,
        [
            "2026-11-25T10:00:00+09:00 V1 checkup checkup_a checkup_a",
            "2026-11-25T10:00:00+09:00 V2 checkup checkup_b checkup_b",
            "2026-11-25T10:00:00+09:00 V3 checkup checkup_b checkup_b",
            "2026-11-25T10:00:00+09:00 V4 checkup checkup_a checkup_a",
            "2026-11-25T10:00:00+09:00 V5 checkup checkup_b checkup_b",
            "2026-11-25T10:00:00+09:00 V6 checkup checkup_b checkup_b",
        ]
    );
}

#[test]
fn opted_out_and_unlinked_patients_get_nothing_and_explain_says_why() {
    let run = plan("opted_out.csv", "2026-11-20 10:00", "8");
    assert_eq!(
        sends(&run),
        [
            "2026-11-21T10:00:00+09:00 O3 thanks hello -",
            "2026-11-27T10:00:00+09:00 O3 followup hello -",
        ]
    );
    assert_explains(
        ("clinic.step", "opted_out.csv", "O1", "2026-11-20 10:00"),
        "thanks    not sent: the patient opted out",
    );
    assert_explains(
        ("clinic.step", "opted_out.csv", "O2", "2026-11-20 10:00"),
        "not sent: no LINE user id",
    );
}

#[test]
fn bad_rows_are_skipped_and_bad_cells_leave_out_the_steps_that_need_them() {
    // B2's stage_entered_at and B4's stage cannot be read: both are still read, but `thanks`
    // (first_visit, 1d after stage_entered_at) needs both fields, so only B1 and B5 get it.
    // The row without an id is skipped.
    let run = plan("bad_rows.csv", "2026-11-20 10:00", "2");
    assert_eq!(
        run.code, 3,
        "exit code 3: rows were skipped or cells unreadable"
    );
    assert_eq!(
        sends(&run),
        [
            "2026-11-21T10:00:00+09:00 B1 thanks hello -",
            "2026-11-21T10:00:00+09:00 B5 thanks hello -",
        ]
    );
    for line in [
        ":3: column `stage_entered_at`",
        ":4: the id is empty",
        ":5: column `stage`: unknown stage `first_vist`; did you mean `first_visit`?",
    ] {
        assert!(run.stderr.contains(line), "{line} in {}", run.stderr);
    }
    for line in [
        ":3: column `stage_entered_at`: not a date or date-time",
        "unknown for this patient, so steps that need `stage_entered_at` are not evaluated",
        ":4: the id is empty (column `id`) (row skipped)",
        "step `thanks`: not evaluated for 2 patient(s) with an unreadable cell it needs \
         (e.g. stage_entered_at)",
        "step `news`: not evaluated for 1 patient(s)",
    ] {
        assert!(run.stderr.contains(line), "{line} in {}", run.stderr);
    }
    assert!(
        run.stderr
            .contains("4 patients read, 1 rows skipped, 2 with unreadable cells"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("秘密"),
        "names never appear in messages"
    );
}

#[test]
fn shift_jis_export_with_a_header_mapping() {
    // The reservation system's own export (Shift_JIS, Japanese headers and stage names),
    // against the sample clinic's rules, at 2026-11-25 09:00 for 3 days:
    // S001 booked for 11-27 10:30: what_to_bring was due 11-24 12:00, still within 24 h → now;
    //      visit_reminder 11-26 18:00.
    // S002 first visit 11-21 11:00: survey 11-25 12:00 (thanks and care notes have expired).
    // S003 has a next booking on 12-10: nothing in these 3 days.
    // S004 opted out and has no LINE id.
    // S005 booked 11-24 20:15: booking_confirm overdue → now; the rest is after the window.
    let run = plan_sample(
        "tests/fixtures/patients/shift_jis.csv",
        "2026-11-25 09:00",
        "3",
        &[
            "--mapping",
            "tests/fixtures/patients/shift_jis_mapping.toml",
        ],
    );
    assert_eq!(
        sends(&run),
        [
            "2026-11-25T09:00:00+09:00 S001 what_to_bring what_to_bring -",
            "2026-11-25T09:00:00+09:00 S005 booking_confirm booking_confirm -",
            "2026-11-25T12:00:00+09:00 S002 survey survey -",
            "2026-11-26T18:00:00+09:00 S001 visit_reminder visit_reminder -",
        ]
    );
}

#[test]
fn table_ends_with_daily_and_monthly_totals_against_the_quota() {
    let run = plan_fixture(&[
        "clinic.step",
        "--patients",
        "unless.csv",
        "--now",
        "2026-11-20 10:00",
        "--days",
        "14",
        "--quota",
        "10",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("plan_table_unless", run.stdout);
}

#[test]
fn explain_has_one_line_per_step() {
    let run = explain("clinic.step", "unless.csv", "U3", "2026-11-20 10:00");
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("explain_u3", run.stdout);
}

#[test]
fn explain_unknown_patient_is_a_usage_error() {
    let run = explain("clinic.step", "unless.csv", "NOPE", "2026-11-20 10:00");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no patient with id `NOPE`"),
        "{}",
        run.stderr
    );
}

#[test]
fn rules_with_errors_are_not_evaluated() {
    let run = plan_fixture(&[
        "../check/unknown_stage.step",
        "--patients",
        "unless.csv",
        "--now",
        "2026-11-20 10:00",
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("steprule::unknown-stage"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn a_failing_rhai_condition_is_reported_per_step_not_a_crash() {
    // R2 and R4 have no `visits`: parse_int fails for them, only for them.
    let run = plan_in(
        "scripted.step",
        "scripted.csv",
        "2026-11-20 10:00",
        "3",
        &[],
    );
    assert_eq!(sends(&run), ["2026-11-21T10:00:00+09:00 R1 loyal hello -"]);
    assert!(
        run.stderr.contains(
            "warning: step `loyal`: the rhai condition failed for 2 patient(s), e.g. the patient \
             on line 3:"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn explain_says_which_rhai_field_is_empty_and_how_to_give_it_a_value() {
    // R2's `visits` cell is empty: parse_int(()) fails; the reason names the field (never a
    // value) and shows both ways to default it.
    assert_explains(
        ("scripted.step", "scripted.csv", "R2", "2026-11-20 10:00"),
        "loyal  not sent: the rhai condition failed: no function parse_int (()) (line 1, column \
         2); patient.visits is empty for this patient (or not a column of the export) (rhai's \
         `()`): give it a value when empty, `(patient.visits ?? 0)`, or read it as a number with \
         `num(patient.visits, 0)`",
    );
    let run = plan_in(
        "scripted.step",
        "scripted.csv",
        "2026-11-20 10:00",
        "3",
        &[],
    );
    assert!(
        run.stderr.contains(
            "e.g. the patient on line 3: no function parse_int (()) (line 1, column 2); \
             patient.visits is empty"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn num_gives_an_empty_cell_its_default_in_a_rhai_condition() {
    // R1 has 12 visits; R3 has 3; R2 and R4 are empty, so 0: only R1, and nothing fails.
    let run = plan_in(
        "scripted_num.step",
        "scripted.csv",
        "2026-11-20 10:00",
        "3",
        &[],
    );
    assert_eq!(sends(&run), ["2026-11-21T10:00:00+09:00 R1 loyal hello -"]);
    assert!(!run.stderr.contains("failed"), "{}", run.stderr);
    assert_explains(
        (
            "scripted_num.step",
            "scripted.csv",
            "R2",
            "2026-11-20 10:00",
        ),
        "loyal  not sent: condition false: `rhai { num(patient.visits, 0) >= 10 }`",
    );
}

#[test]
fn jsonl_export_is_planned_like_csv() {
    // rules/clinic.step at 2026-11-25 09:00 for 2 days:
    // J001 booked 11-24 18:30 → confirmation overdue (within 24 h) → now; what_to_bring is
    //      3 days before 11-29 11:00 → 11-26 12:00.
    // J002 first visit 11-21 → survey 4 days later at 12:00 (thanks, care notes expired).
    // 3003 opted out. J004 regular with a booking 11-26 14:00 → reminder 11-25 18:00 (its
    //      health news and flu steps fall outside the window or expired).
    // J005 booked 11-25 08:00, inside quiet hours → confirmation at 09:00.
    let run = plan_sample(
        "tests/fixtures/patients/patients.jsonl",
        "2026-11-25 09:00",
        "2",
        &[],
    );
    assert_eq!(
        sends(&run),
        [
            "2026-11-25T09:00:00+09:00 J001 booking_confirm booking_confirm -",
            "2026-11-25T09:00:00+09:00 J005 booking_confirm booking_confirm -",
            "2026-11-25T12:00:00+09:00 J002 survey survey -",
            "2026-11-25T18:00:00+09:00 J004 next_visit_reminder next_visit_reminder -",
            "2026-11-26T12:00:00+09:00 J001 what_to_bring what_to_bring -",
        ]
    );
}

#[test]
fn csv_format_has_a_header_and_one_row_per_send() {
    let run = plan_fixture(&[
        "clinic.step",
        "--patients",
        "every.csv",
        "--now",
        "2026-03-01 00:00",
        "--days",
        "35",
        "--format",
        "csv",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        [
            "at,patient,step,template,variant,occurrence,expires,recipient,ledger",
            "2026-03-02T12:00:00+09:00,E1,news,hello,,2026-03-02T09:00:00+09:00,2026-03-04T12:00:00+09:00,export,",
            "2026-04-01T12:00:00+09:00,E1,news,hello,,2026-04-01T09:00:00+09:00,2026-04-03T12:00:00+09:00,export,",
        ]
    );
}

#[test]
fn from_and_to_choose_the_window() {
    // Only U1's followup (11-27 10:00) and U3's reminder (11-25 18:00) fall in 11-25..11-28.
    let run = plan_fixture(&[
        "clinic.step",
        "--patients",
        "unless.csv",
        "--now",
        "2026-11-20 10:00",
        "--from",
        "2026-11-25",
        "--to",
        "2026-11-28",
        "--format",
        "json",
    ]);
    assert_eq!(
        sends(&run),
        [
            "2026-11-25T18:00:00+09:00 U3 remind reminder -",
            "2026-11-27T10:00:00+09:00 U1 followup hello -",
        ]
    );
    let empty = plan_fixture(&[
        "clinic.step",
        "--patients",
        "unless.csv",
        "--from",
        "2026-11-25",
        "--to",
        "2026-11-25",
    ]);
    assert_eq!(empty.code, 2);
    assert!(
        empty.stderr.contains("the window is empty"),
        "{}",
        empty.stderr
    );
}

#[test]
fn the_shortest_every_sends_every_hour_of_a_seven_day_plan() {
    // H1 entered 02-28 09:00; `every 1h` is due on every hour, from now (03-01 00:00) to the
    // last hour of the window (03-07 23:00): 7 × 24 sends, none lost to a limit.
    let run = plan_in(
        "durations.step",
        "durations.csv",
        "2026-03-01 00:00",
        "7",
        &[],
    );
    let hourly: Vec<String> = sends(&run)
        .into_iter()
        .filter(|send| send.contains(" H1 "))
        .collect();
    assert_eq!(hourly.len(), 7 * 24, "{hourly:?}");
    assert_eq!(hourly[0], "2026-03-01T00:00:00+09:00 H1 hourly hello -");
    assert_eq!(hourly[1], "2026-03-01T01:00:00+09:00 H1 hourly hello -");
    assert_eq!(
        hourly.last().unwrap(),
        "2026-03-07T23:00:00+09:00 H1 hourly hello -"
    );
}

#[test]
fn the_longest_within_really_waits() {
    // `after 0m … within 100y`: A1 entered the stage 99 years and 364 days ago, so the send
    // still goes out now; A2 entered two days earlier, and its 100 years are over.
    let run = plan_in(
        "durations.step",
        "durations.csv",
        "2026-03-01 00:00",
        "1",
        &[],
    );
    let longest: Vec<String> = sends(&run)
        .into_iter()
        .filter(|send| send.contains(" longest "))
        .collect();
    assert_eq!(longest, ["2026-03-01T00:00:00+09:00 A1 longest hello -"]);
    assert_explains(
        ("durations.step", "durations.csv", "A2", "2026-03-01 00:00"),
        "longest  expired at 2026-02-28 (土) 00:00 (was due 1926-02-28 (日) 00:00)",
    );
}

#[test]
fn hostile_rhai_conditions_neither_leak_names_nor_break_json() {
    // `loud` prints the name, `by_name` fails parsing it as a number, `padded` tries to grow
    // it to a gigabyte. Only `loud` sends; the failures are reported without the name.
    let run = plan_in(
        "hostile_scripts.step",
        "hostile_scripts.csv",
        "2026-11-20 10:00",
        "7",
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for line in run.stdout.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("stdout is JSON lines");
    }
    assert_eq!(sends(&run), ["2026-11-21T10:00:00+09:00 R1 loud hello -"]);
    for warning in [
        "step `by_name`: the rhai condition failed for 1 patient(s), e.g. the patient on line \
         2: cannot parse an integer (line 1, column 2)",
        "step `padded`: the rhai condition failed for 1 patient(s), e.g. the patient on line \
         2: length of string too large",
    ] {
        assert!(run.stderr.contains(warning), "{warning} in {}", run.stderr);
    }
    let why = explain(
        "hostile_scripts.step",
        "hostile_scripts.csv",
        "R1",
        "2026-11-20 10:00",
    );
    assert!(
        why.stdout.contains(
            "by_name  not sent: the rhai condition failed: cannot parse an integer (line 1, column 2)"
        ),
        "{}",
        why.stdout
    );
    for output in [&run.stdout, &run.stderr, &why.stdout, &why.stderr] {
        assert!(!output.contains("山田"), "the name leaked: {output}");
    }
}

#[test]
fn a_window_with_more_occurrences_than_the_evaluator_takes_says_so() {
    // `every 1h` over 500 days is 12,000 occurrences for H1, past the evaluator's 10,000 per
    // patient and step: the plan stops at the bound and says where, instead of going quiet.
    let run = plan_in(
        "durations.step",
        "durations.csv",
        "2026-03-01 00:00",
        "500",
        &[],
    );
    assert!(
        run.stderr
            .contains("warning: step `hourly`: too many occurrences in the window"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_column_named_age_is_ignored_with_one_warning_and_rhai_uses_the_computed_age() {
    let run = plan_in(
        "shadowed_age.step",
        "shadowed_age.csv",
        "2026-11-20 10:00",
        "2",
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(sends(&run), ["2026-11-21T10:00:00+09:00 S1 senior hello -"]);
    assert_eq!(
        run.stderr.matches("column `age` is ignored").count(),
        1,
        "{}",
        run.stderr
    );
}

/// A ledger in a scratch folder where O2 (no LINE id in opted_out.csv) linked LINE and O3's
/// LINE user (`Uo3`) blocked the account, as `steprule serve` records them.
fn ledger_with_a_link_and_a_block(dir: &std::path::Path) -> std::path::PathBuf {
    use steprule::ledger::{FriendChange, Ledger};
    let at = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let path = dir.join("ledger.db");
    let mut ledger = Ledger::open(&path).unwrap();
    ledger
        .link("Ulinked-o2", "O2", at("2026-11-19T01:00:00Z"))
        .unwrap();
    ledger
        .set_friend("Uo3", FriendChange::Blocked, at("2026-11-19T03:00:00Z"))
        .unwrap();
    path
}

#[test]
fn plan_with_a_ledger_shows_linked_and_blocked_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_with_a_link_and_a_block(dir.path());
    let ledger = ledger.to_str().unwrap();
    let run = plan_in(
        "clinic.step",
        "opted_out.csv",
        "2026-11-20 10:00",
        "8",
        &["--ledger", ledger],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let recipients: Vec<String> = run
        .stdout
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            format!("{} {} {}", row["patient"], row["step"], row["recipient"])
        })
        .collect();
    assert_eq!(
        recipients,
        [
            r#""O2" "thanks" "linked""#,
            r#""O3" "thanks" "blocked""#,
            r#""O2" "followup" "linked""#,
            r#""O3" "followup" "blocked""#,
        ]
    );
    assert!(
        run.stderr
            .contains("2 of them go to patients who blocked the account"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("Ulinked"), "never a LINE user id");

    let table = plan_fixture(&[
        "clinic.step",
        "--patients",
        "opted_out.csv",
        "--now",
        "2026-11-20 10:00",
        "--days",
        "8",
        "--ledger",
        ledger,
    ]);
    let out = &table.stdout;
    assert!(
        out.lines().next().unwrap().ends_with("recipient  ledger"),
        "{out}"
    );
    assert!(
        out.contains("2026-11-21 10:00  O3       thanks    hello     -        blocked"),
        "{out}"
    );
    assert!(
        out.contains("2 send(s) to patients who blocked the account are not counted below"),
        "{out}"
    );
    // Only O2's two sends count toward the days and the month.
    assert!(out.contains("2026-11-21 (土)        1"), "{out}");
    assert!(out.contains("2026-11        2"), "{out}");
}

#[test]
fn plan_reads_runs_ledger_by_default_and_never_creates_one() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("plan");
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    for file in ["clinic.step", "opted_out.csv"] {
        std::fs::copy(source.join(file), dir.path().join(file)).unwrap();
    }
    for entry in std::fs::read_dir(source.join("templates")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            dir.path().join("templates").join(entry.file_name()),
        )
        .unwrap();
    }
    let args = [
        "plan",
        "clinic.step",
        "--patients",
        "opted_out.csv",
        "--now",
        "2026-11-20 10:00",
        "--days",
        "8",
        "--format",
        "csv",
    ];
    // No ledger: as before, and none is created.
    let before = steprule(dir.path(), &args);
    assert_eq!(before.code, 0, "{}", before.stderr);
    assert_eq!(before.stdout.lines().count(), 1 + 2, "{}", before.stdout);
    assert!(!dir.path().join(".steprule").exists());
    assert_eq!(
        before
            .stderr
            .matches("no ledger (none beside the rules, and no --ledger)")
            .count(),
        1,
        "said once: {}",
        before.stderr
    );
    // A ledger given by name must exist.
    let missing = steprule(dir.path(), &[&args[..], &["--ledger", "nope.db"]].concat());
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("no ledger at nope.db"),
        "{}",
        missing.stderr
    );
    assert!(!dir.path().join("nope.db").exists());

    std::fs::create_dir(dir.path().join(".steprule")).unwrap();
    ledger_with_a_link_and_a_block(&dir.path().join(".steprule"));
    let after = steprule(dir.path(), &args);
    assert_eq!(after.code, 0, "{}", after.stderr);
    let rows: Vec<&str> = after.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{}", after.stdout);
    assert!(rows
        .iter()
        .any(|r| r.contains(",O2,thanks,") && r.ends_with(",linked,")));
    assert!(rows
        .iter()
        .any(|r| r.contains(",O3,thanks,") && r.ends_with(",blocked,")));
}

#[test]
fn explain_says_when_the_patient_linked_or_blocked_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_with_a_link_and_a_block(dir.path());
    let explain_with_ledger = |patient: &str| {
        let run = steprule(
            &fixtures().join("plan"),
            &[
                "explain",
                "clinic.step",
                "--patients",
                "opted_out.csv",
                "--patient",
                patient,
                "--now",
                "2026-11-20 10:00",
                "--ledger",
                ledger.to_str().unwrap(),
            ],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.stdout
    };
    let o2 = explain_with_ledger("O2");
    assert!(
        o2.contains("LINE linked on 2026-11-19 (木) 10:00 (the export has no LINE id)"),
        "{o2}"
    );
    assert!(
        o2.contains("thanks    sends hello at 2026-11-21 (土) 10:00\n"),
        "{o2}"
    );
    let o3 = explain_with_ledger("O3");
    assert!(
        o3.contains(
            "the patient blocked the account on 2026-11-19 (木) 12:00: sends are not pushed \
             unless they follow again first"
        ),
        "{o3}"
    );
    assert!(
        o3.contains(
            "thanks    sends hello at 2026-11-21 (土) 10:00 — not pushed: the patient blocked \
             the account"
        ),
        "{o3}"
    );
    // Without the ledger, as before.
    assert_explains(
        ("clinic.step", "opted_out.csv", "O2", "2026-11-20 10:00"),
        "not sent: no LINE user id",
    );
}

#[test]
fn a_promo_step_goes_only_to_patients_who_consented() {
    // C1 はい and C5 ＴＲＵＥ consent; C2 (empty), C3 (no) and C4 (neither) do not. The care
    // step goes to everyone.
    let run = plan_in("consent.step", "consent.csv", "2026-11-30 10:00", "30", &[]);
    assert_eq!(
        sends(&run),
        [
            "2026-12-01T12:00:00+09:00 C1 newsletter hello -",
            "2026-12-01T12:00:00+09:00 C5 newsletter hello -",
            "2026-12-28T10:00:00+09:00 C1 closure hello -",
            "2026-12-28T10:00:00+09:00 C2 closure hello -",
            "2026-12-28T10:00:00+09:00 C3 closure hello -",
            "2026-12-28T10:00:00+09:00 C4 closure hello -",
            "2026-12-28T10:00:00+09:00 C5 closure hello -",
        ]
    );
}

#[test]
fn explain_says_a_promo_step_waits_for_consent_and_why() {
    let at = "2026-11-30 10:00";
    for (patient, cell) in [
        ("C2", "is empty"),
        ("C3", "says no"),
        ("C4", "is neither yes nor no"),
    ] {
        assert_explains(
            ("consent.step", "consent.csv", patient, at),
            &format!(
                "newsletter  promo step: not sent, no marketing consent (consent field \
                 `marketing_ok` {cell})"
            ),
        );
    }
    assert_explains(
        ("consent.step", "consent.csv", "C1", at),
        "newsletter  sends hello at 2026-12-01 (火) 12:00",
    );
}
