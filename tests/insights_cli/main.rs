//! `steprule insights fetch` through the real binary against the fake LINE server's insight
//! endpoints (tests/support/fake_line/insight.rs), and `report`'s `opened` from what it cached.
//! Rules: tests/fixtures/report/clinic.step (Asia/Tokyo, so the clinic's days are LINE's).
//!
//! The clinic's ledger, written by `run --custom-aggregation` against the fake (clinic time):
//! - 2026-10-05 10:00: 30 booked patients → booking_confirm (unit `booking_confirm`, LINE's
//!   half-month October 1st–15th); 10 first visits → thanks, split between its arms (units
//!   `thanks__thanks_a`, `thanks__thanks_b`).
//! - 2026-10-20 10:00: 24 booked → booking_confirm (October 16th–31st).
//! - 2026-11-10 10:00: 5 booked → booking_confirm (November 1st–15th).
//!
//! LINE's answers: booking_confirm opened by 21 users in October's first half and 20 in its
//! second; the thanks arms are withheld (null: below 20). So October's booking_confirm is
//! opened 21 + 20 = 41 of 54 sends (75.9%), and each thanks arm is "suppressed".
//!
//! One test binary, its tests grouped by theme: here the figures through fetch and report;
//! `budget`: LINE's 60 requests an hour, across runs and processes; `answers`: LINE failing,
//! refusing or answering nonsense, and the token never shown.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "../common/mod.rs"]
mod common;
#[path = "../support/fake_line/mod.rs"]
mod fake_line;

mod answers;
mod budget;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::NaiveDate;
use common::{fixtures, steprule, Run};
use fake_line::{FakeLine, Faults, InsightAnswer, TOKEN};
use serde_json::{json, Value};
use steprule::ledger::{Ledger, UnitUse};

fn rules() -> PathBuf {
    fixtures().join("report/clinic.step")
}

const HEADER: &str =
    "id,line_user_id,name,stage,stage_entered_at,birth_date,tags,opted_out,appointment_at\n";

/// `steprule run --custom-aggregation` at `now` on LINE for `ids` entering `stage` at `entered`.
fn run(dir: &Path, fake: &FakeLine, now: &str, stage: &str, entered: &str, ids: &[String]) {
    run_with(dir, fake, now, (stage, entered), ids, true);
}

/// `steprule run` at `now` on LINE, with `--custom-aggregation` when `units`.
fn run_with(
    dir: &Path,
    fake: &FakeLine,
    now: &str,
    (stage, entered): (&str, &str),
    ids: &[String],
    units: bool,
) {
    let patients = dir.join(format!("patients-{}.csv", now.replace([' ', ':'], "-")));
    let mut csv = String::from(HEADER);
    for (i, id) in ids.iter().enumerate() {
        let user = id.bytes().fold(0u128, |a, b| a * 256 + u128::from(b));
        csv.push_str(&format!(
            "{id},U{user:032x},テスト {i},{stage},{entered},1980-01-01,,false,\n"
        ));
    }
    std::fs::write(&patients, csv).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_steprule"))
        .arg("run")
        .arg(rules())
        .arg("--patients")
        .arg(&patients)
        .args(["--now", now, "--ledger", "ledger.db"])
        .args(units.then_some("--custom-aggregation"))
        .args(["--line-api-base", &fake.base_url()])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("sent {}", ids.len())), "{stderr}");
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i:02}")).collect()
}

/// The ledger described at the top, in `dir`, with LINE's answers set on `fake`.
fn clinic(dir: &Path, fake: &FakeLine) {
    run(
        dir,
        fake,
        "2026-10-05 10:00",
        "booked",
        "2026-10-05 09:30",
        &ids("B", 30),
    );
    run(
        dir,
        fake,
        "2026-10-05 10:00",
        "first_visit",
        "2026-10-04 09:00",
        &ids("F", 10),
    );
    run(
        dir,
        fake,
        "2026-10-20 10:00",
        "booked",
        "2026-10-20 09:30",
        &ids("C", 24),
    );
    run(
        dir,
        fake,
        "2026-11-10 10:00",
        "booked",
        "2026-11-10 09:30",
        &ids("D", 5),
    );
    let opened = |n: u64| {
        InsightAnswer::Json(json!({"overview": {"uniqueImpression": n,
        "uniqueClick": null, "uniqueMediaPlayed": null, "uniqueMediaPlayed100Percent": null},
        "messages": [], "clicks": []}))
    };
    fake.set_unit_answer("booking_confirm", "20261001", opened(21));
    fake.set_unit_answer("booking_confirm", "20261016", opened(20));
    fake.set_unit_answer("booking_confirm", "20261101", opened(3));
    fake.set_followers_answer(
        "20261031",
        InsightAnswer::Json(
            json!({"status": "ready", "followers": 130, "targetedReaches": 120, "blocks": 10}),
        ),
    );
}

/// `steprule insights fetch` at `now` with LINE's token (unless `token` says otherwise).
fn fetch(dir: &Path, fake: &FakeLine, now: &str, token: Option<&str>, extra: &[&str]) -> Run {
    let output = fetch_command(dir, fake, now, token, extra)
        .output()
        .unwrap();
    to_run(output)
}

fn fetch_command(
    dir: &Path,
    fake: &FakeLine,
    now: &str,
    token: Option<&str>,
    extra: &[&str],
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
    command
        .args(["insights", "fetch"])
        .arg(rules())
        .args(["--ledger", "ledger.db", "--now", now])
        .args(["--line-api-base", &fake.base_url()])
        .args(extra)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("LINE_CHANNEL_ACCESS_TOKEN");
    if let Some(token) = token {
        command.env("LINE_CHANNEL_ACCESS_TOKEN", token);
    }
    command
}

fn to_run(output: Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn report(dir: &Path, args: &[&str]) -> Run {
    let rules = rules();
    steprule(
        dir,
        &[
            &["report", rules.to_str().unwrap(), "--ledger", "ledger.db"],
            args,
        ]
        .concat(),
    )
}

fn step<'a>(document: &'a Value, step: &str, variant: Option<&str>) -> &'a Value {
    document["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["step"] == step && r["variant"].as_str() == variant)
        .unwrap_or_else(|| panic!("no {step}/{variant:?}: {document:#}"))
}

fn aggregation_requests(fake: &FakeLine) -> Vec<(String, String, String)> {
    fake.insight_requests()
        .into_iter()
        .filter(|r| r.endpoint == "aggregation")
        .map(|r| (r.unit.unwrap(), r.from.unwrap(), r.to.unwrap()))
        .collect()
}

/// A ledger at `dir/ledger.db` with `n` units used in October's first half.
fn ledger_with_units(dir: &Path, n: usize) {
    let mut ledger = Ledger::open(&dir.join("ledger.db")).unwrap();
    let day = |text: &str| text.parse::<NaiveDate>().unwrap();
    let uses: Vec<UnitUse> = (0..n)
        .map(|i| UnitUse {
            unit: format!("u{i:03}"),
            half_first: day("2026-10-01"),
            step: format!("s{i:03}"),
            variant: None,
            first_day: day("2026-10-03"),
            last_day: day("2026-10-03"),
            sends: 25,
        })
        .collect();
    ledger.begin().unwrap();
    ledger.record_unit_uses(&uses).unwrap();
    ledger.commit().unwrap();
}

#[test]
fn a_fetch_then_a_months_report_shows_the_opens_worked_out_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeLine::start(Faults::default());
    clinic(dir.path(), &fake);
    // What run recorded: each unit's sends per half-month of LINE's calendar.
    let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let day = |text: &str| text.parse::<NaiveDate>().unwrap();
    let recorded: Vec<(String, String, u64)> = ledger
        .unit_halves(day("2026-10-01"), day("2026-11-16"))
        .unwrap()
        .into_iter()
        .map(|h| (h.unit, h.half_first.to_string(), h.sends))
        .collect();
    let thanks: u64 = recorded
        .iter()
        .filter(|r| r.0.starts_with("thanks__"))
        .map(|r| r.2)
        .sum();
    assert_eq!(thanks, 10, "{recorded:?}");
    for (first, sends) in [("2026-10-01", 30), ("2026-10-16", 24), ("2026-11-01", 5)] {
        let unit = ("booking_confirm".to_owned(), first.to_owned(), sends);
        assert!(recorded.contains(&unit), "{recorded:?}");
    }
    drop(ledger);
    let fetched = fetch(dir.path(), &fake, "2026-11-20 09:00", Some(TOKEN), &[]);
    assert_eq!(fetched.code, 0, "{}{}", fetched.stdout, fetched.stderr);
    // booking_confirm's three half-months and each thanks arm's one; November 1st–15th ended
    // five days ago, so it is asked first, and October's answers are final.
    let asked = aggregation_requests(&fake);
    assert_eq!(asked.len(), 5, "{asked:?}");
    assert_eq!(
        asked[0],
        (
            "booking_confirm".into(),
            "20261101".into(),
            "20261115".into()
        )
    );
    assert!(asked.contains(&(
        "booking_confirm".into(),
        "20261016".into(),
        "20261031".into()
    )));
    assert!(fake.insight_protocol_errors().is_empty());
    // Friends: every day from the first send (October 5th) to yesterday.
    let days = fake
        .insight_requests()
        .iter()
        .filter(|r| r.endpoint == "followers")
        .count();
    assert_eq!(days, 46);
    assert!(
        fetched.stdout.contains("5 fetched (") && fetched.stdout.contains("4 final"),
        "{}",
        fetched.stdout
    );

    let october = report(dir.path(), &["--month", "2026-10", "--format", "json"]);
    assert_eq!(october.code, 0, "{}", october.stderr);
    let october: Value = serde_json::from_str(&october.stdout).unwrap();
    let booking = step(&october, "booking_confirm", None);
    assert_eq!(booking["sent"], 54);
    assert_eq!(booking["opened"], 41);
    assert_eq!(booking["open_rate"], json!(41.0 / 54.0));
    let ledger = dir.path().join("ledger.db");
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    for arm in ["thanks_a", "thanks_b"] {
        let sent: u64 = conn
            .query_row(
                "SELECT count(*) FROM sends WHERE step = 'thanks' AND variant = ?1",
                [arm],
                |row| row.get(0),
            )
            .unwrap();
        let figures = step(&october, "thanks", Some(arm));
        // An arm nobody was given had no unit: not measured.
        let (opened, rate) = if sent > 0 {
            (json!("suppressed"), json!("suppressed"))
        } else {
            (Value::Null, Value::Null)
        };
        assert_eq!(
            (&figures["opened"], &figures["open_rate"]),
            (&opened, &rate),
            "{arm}"
        );
    }
    let reminder = step(&october, "reminder", None);
    assert_eq!(
        (&reminder["opened"], &reminder["open_rate"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(
        october["line_account"],
        json!({"day": "2026-10-31", "followers": 130, "targeted_reaches": 120, "blocks": 10,
               "followers_change": null, "blocks_change": null})
    );

    let table = report(dir.path(), &["--month", "2026-10"]);
    assert!(table.stdout.contains("75.9% (41)"), "{}", table.stdout);
    assert!(
        table.stdout.contains("suppressed (<20)"),
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .contains("LINE account on 2026-10-31: 130 friends, 10 blocked, 120 reachable"),
        "{}",
        table.stdout
    );
    assert!(!table.stdout.contains("opened:"), "{}", table.stdout);
    // A week is not whole half-months: not measured, and the footer says what to do.
    let week = report(dir.path(), &["--from", "2026-10-05", "--to", "2026-10-11"]);
    assert!(!week.stdout.contains("(41)"), "{}", week.stdout);
    assert!(week.stdout.contains("use --month"), "{}", week.stdout);
    // November's first half is still changing: measured, with the note.
    let november = report(dir.path(), &["--from", "2026-11-01", "--to", "2026-11-15"]);
    assert!(november.stdout.contains("60.0% (3)"), "{}", november.stdout);
    assert!(
        november.stdout.contains("keep changing for 14 days"),
        "{}",
        november.stdout
    );
}

#[test]
fn sends_without_a_unit_leave_opened_not_measured_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeLine::start(Faults::default());
    clinic(dir.path(), &fake);
    // Three more October sends, delivered without --custom-aggregation: LINE's 41 opens are
    // of 54 of booking_confirm's 57 sends, so no open rate is given.
    let late = ("booked", "2026-10-25 09:30");
    run_with(
        dir.path(),
        &fake,
        "2026-10-25 10:00",
        late,
        &ids("E", 3),
        false,
    );
    let fetched = fetch(dir.path(), &fake, "2026-11-20 09:00", Some(TOKEN), &[]);
    assert_eq!(fetched.code, 0, "{}", fetched.stderr);
    let table = report(dir.path(), &["--month", "2026-10"]);
    assert!(!table.stdout.contains("(41)"), "{}", table.stdout);
    assert!(
        table.stdout.contains("carried no aggregation unit"),
        "{}",
        table.stdout
    );
    let json = report(dir.path(), &["--month", "2026-10", "--format", "json"]);
    let october: Value = serde_json::from_str(&json.stdout).unwrap();
    let booking = step(&october, "booking_confirm", None);
    assert_eq!(
        (booking["sent"].as_u64(), &booking["opened"]),
        (Some(57), &Value::Null)
    );
}

#[test]
fn a_second_fetch_the_same_day_asks_only_for_what_can_still_change() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeLine::start(Faults::default());
    clinic(dir.path(), &fake);
    let first = fetch(dir.path(), &fake, "2026-11-20 09:00", Some(TOKEN), &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let before = fake.insight_requests().len();
    let second = fetch(
        dir.path(),
        &fake,
        "2026-11-20 15:00",
        Some(TOKEN),
        &["--format", "json"],
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    let again: Vec<_> = fake.insight_requests()[before..].to_vec();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].from.as_deref(), Some("20261101"));
    let summary: Value = serde_json::from_str(&second.stdout).unwrap();
    assert_eq!(summary["unit_figures"]["cached"], 4);
    assert_eq!(summary["unit_figures"]["fetched"], 1);
    assert_eq!(summary["followers"]["cached"], 46);
    assert_eq!(summary["requests"], 1);
}
