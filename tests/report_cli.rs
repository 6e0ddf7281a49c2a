//! `steprule report` on a ledger written by `run` against the fake LINE server
//! (tests/support/fake_line) and by the ledger's API as `serve` stores events, with every
//! figure worked out by hand below. Rules: tests/fixtures/report/clinic.step (Asia/Tokyo).
//!
//! The runs (clinic time; each send is recorded when LINE accepts it, a second or so after
//! `--now`):
//! - 2026-09-30 23:59: M0 booked → booking_confirm on LINE, September 30th (the previous month).
//! - 2026-10-01 00:00: M1 and X1 booked → booking_confirm, October 1st, the clinic's midnight.
//! - 2026-10-05 10:00: B1, B2, B3 booked → booking_confirm; F1, F2, F3 and X1 (now a first
//!   visit) → thanks, split between thanks_a and thanks_b.
//! - 2026-10-20 10:00, no token: O1 booked → booking_confirm to the outbox (reported apart).
//!
//! Then, as serve would store them: B1 clicks its link twice (counted once), B2 clicks 15
//! days later (too late) and blocks the account (put down to booking_confirm); B3 books five
//! days later (credited to booking_confirm), X1 books the next day (credited to thanks, its
//! last touch, not to booking_confirm), F1 books 20 days later (outside the 14 days); F2
//! comes back 57 days later (inside the 90 revisit days). A send of `old_step`, a step the
//! rules no longer have, is still reported.
//!
//! October on LINE: booking_confirm sent 5, clicked 1, booked 1, blocked 1; thanks sent 4
//! over its two arms, booked 1 (X1's arm), revisited 1 (F2's arm); reminder sent 0, rates null.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;
#[path = "support/fake_line/mod.rs"]
mod fake_line;
#[path = "report_cli/on_postgres.rs"]
mod on_postgres;
#[path = "support/postgres.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use common::{fixtures, steprule, Run};
use fake_line::{FakeLine, Faults, TOKEN};
use serde_json::{json, Value};
use steprule::ledger::{
    Claim, EventKind, Ledger, NewEvent, ReadLedger, SendDetails, SendKey, SendRef, Settlement,
    SinkKind,
};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn rules() -> PathBuf {
    fixtures().join("report/clinic.step")
}

const HEADER: &str =
    "id,line_user_id,name,stage,stage_entered_at,birth_date,tags,opted_out,appointment_at\n";

/// `steprule run` at `now` over `rows` (id, stage, entered) on `ledger` (a file in `dir` or a
/// URL), on LINE when `fake` is given.
fn run(dir: &Path, ledger: &str, now: &str, rows: &[(&str, &str, &str)], fake: Option<&FakeLine>) {
    let patients = dir.join(format!("patients-{}.csv", now.replace([' ', ':'], "-")));
    let mut csv = String::from(HEADER);
    for (i, (id, stage, entered)) in rows.iter().enumerate() {
        csv.push_str(&format!(
            "{id},U{:032x},テスト {i},{stage},{entered},1980-01-01,,false,\n",
            id.bytes().fold(0u128, |a, b| a * 256 + u128::from(b))
        ));
    }
    std::fs::write(&patients, csv).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
    command
        .arg("run")
        .arg(rules())
        .arg("--patients")
        .arg(&patients)
        .args(["--now", now, "--ledger", ledger, "--outbox", "outbox.jsonl"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("STEPRULE_LEDGER_URL")
        .env_remove("LINE_CHANNEL_ACCESS_TOKEN");
    if let Some(fake) = fake {
        command
            .env("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
            .args(["--line-api-base", &fake.base_url()]);
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("sent {}", rows.len())),
        "{now}: {stderr}"
    );
}

/// A delivered send's occurrence and arm, read back from the ledger.
fn send_of(ledger: &Path, patient: &str, step: &str) -> (String, Option<String>) {
    let conn = rusqlite::Connection::open(ledger).unwrap();
    conn.query_row(
        "SELECT occurrence, variant FROM sends WHERE patient = ?1 AND step = ?2 AND status = 'sent'",
        [patient, step],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .unwrap()
}

fn event(
    ledger: &mut dyn ReadLedger,
    id: &str,
    kind: EventKind,
    when: &str,
    patient: &str,
    send: Option<&SendRef>,
) {
    let new = NewEvent {
        id,
        kind,
        at: at(when),
        line_user: Some("U0123456789abcdef0123456789abcdef"),
        patient: Some(patient),
        send,
        detail: None,
    };
    assert!(ledger.record_event(&new, at(when)).unwrap());
}

/// The ledger described at the top, in `dir`.
fn clinic_ledger(dir: &Path) -> PathBuf {
    let path = dir.join("ledger.db");
    clinic_history(dir, "ledger.db", &mut || {
        Box::new(Ledger::open(&path).unwrap())
    });
    path
}

/// The history described at the top, on `ledger` (a file in `dir` or a URL): the runs, then
/// the events and the send of a removed step written through `open`'s ledger.
fn clinic_history(dir: &Path, ledger: &str, open: &mut dyn FnMut() -> Box<dyn ReadLedger>) {
    let fake = FakeLine::start(Faults::default());
    let run = |dir, now, rows: &[_], fake| run(dir, ledger, now, rows, fake);
    let booked = |id| (id, "booked", "2026-09-30 23:58");
    run(dir, "2026-09-30 23:59", &[booked("M0")], Some(&fake));
    run(
        dir,
        "2026-10-01 00:00",
        &[booked("M1"), booked("X1")],
        Some(&fake),
    );
    let day = |id, stage| {
        (
            id,
            stage,
            if stage == "booked" {
                "2026-10-05 09:30"
            } else {
                "2026-10-04 09:00"
            },
        )
    };
    let october = [
        day("B1", "booked"),
        day("B2", "booked"),
        day("B3", "booked"),
        day("F1", "first_visit"),
        day("F2", "first_visit"),
        day("F3", "first_visit"),
        day("X1", "first_visit"),
    ];
    run(dir, "2026-10-05 10:00", &october, Some(&fake));
    assert_eq!(fake.accepted(), 10);
    run(
        dir,
        "2026-10-20 10:00",
        &[("O1", "booked", "2026-10-20 09:30")],
        None,
    );

    let mut ledger = open();
    let ledger = &mut *ledger;
    let send = |ledger: &dyn ReadLedger, patient: &str, step: &str| {
        let sends = ledger.patient_sends(patient).unwrap();
        let sent = sends.iter().find(|s| s.step == step).unwrap();
        SendRef {
            sink: SinkKind::Line,
            patient: patient.into(),
            step: step.into(),
            occurrence: sent.occurrence.unwrap(),
        }
    };
    let (b1, b2) = (
        send(ledger, "B1", "booking_confirm"),
        send(ledger, "B2", "booking_confirm"),
    );
    event(
        ledger,
        "c1",
        EventKind::Click,
        "2026-10-06T00:00:00Z",
        "B1",
        Some(&b1),
    );
    event(
        ledger,
        "c2",
        EventKind::Click,
        "2026-10-07T00:00:00Z",
        "B1",
        Some(&b1),
    );
    event(
        ledger,
        "c3",
        EventKind::Click,
        "2026-10-20T02:00:00Z",
        "B2",
        Some(&b2),
    );
    event(
        ledger,
        "u1",
        EventKind::Unfollow,
        "2026-10-06T03:00:00Z",
        "B2",
        Some(&b2),
    );
    event(
        ledger,
        "b1",
        EventKind::Booked,
        "2026-10-10T00:00:00Z",
        "B3",
        None,
    );
    event(
        ledger,
        "b2",
        EventKind::Booked,
        "2026-10-06T00:00:00Z",
        "X1",
        None,
    );
    event(
        ledger,
        "b3",
        EventKind::Booked,
        "2026-10-25T00:00:00Z",
        "F1",
        None,
    );
    event(
        ledger,
        "v1",
        EventKind::Revisited,
        "2026-12-01T00:00:00Z",
        "F2",
        None,
    );
    // A step since removed from the rules, delivered on October 3rd.
    let key = SendKey {
        sink: SinkKind::Line,
        patient: "Z1",
        step: "old_step",
        occurrence: at("2026-10-03T01:00:00Z"),
    };
    let details = SendDetails {
        template: "old_step",
        variant: None,
        due_at: key.occurrence,
        expires_at: at("2026-10-04T01:00:00Z"),
        outbox_from: None,
    };
    let Claim::New { retry_key } = ledger.claim(&key, &details, key.occurrence).unwrap() else {
        panic!("claimed twice")
    };
    let sent = Settlement::Sent {
        request_id: Some("r".into()),
        note: None,
    };
    ledger
        .settle(&key, &retry_key, 1, &sent, key.occurrence)
        .unwrap();
}

fn report(dir: &Path, args: &[&str]) -> Run {
    let rules = rules();
    let rules = rules.to_str().unwrap();
    steprule(
        dir,
        &[&["report", rules, "--ledger", "ledger.db"], args].concat(),
    )
}

fn json_report(dir: &Path, args: &[&str]) -> Value {
    let run = report(dir, &[&["--format", "json"], args].concat());
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

fn row<'a>(document: &'a Value, section: &str, step: &str, variant: Option<&str>) -> &'a Value {
    document[section]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["step"] == step && r["variant"].as_str() == variant)
        .unwrap_or_else(|| panic!("no {step}/{variant:?} in {section}: {document:#}"))
}

#[test]
fn the_kpis_of_a_month_are_those_worked_out_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = clinic_ledger(dir.path());
    let october = json_report(dir.path(), &["--month", "2026-10"]);
    assert_eq!(
        october["period"],
        json!({"from": "2026-10-01", "to": "2026-10-31", "timezone": "Asia/Tokyo"})
    );
    assert_eq!(
        row(&october, "steps", "booking_confirm", None),
        &json!({
            "step": "booking_confirm", "variant": null, "stage": "booked",
            "sent": 5, "opened": null, "clicked": 1, "booked": 1, "revisited": 0, "blocked": 1,
            "open_rate": null, "ctr": 0.2, "booking_rate": 0.2, "revisit_rate": 0.0,
            "block_rate": 0.2
        })
    );
    // thanks: four sends over two arms; X1's booking and F2's visit go to their own arms.
    let (_, x1_arm) = send_of(&ledger, "X1", "thanks");
    let (_, f2_arm) = send_of(&ledger, "F2", "thanks");
    let mut sent = 0;
    for arm in ["thanks_a", "thanks_b"] {
        let figures = row(&october, "steps", "thanks", Some(arm));
        assert_eq!(figures["stage"], "first_visit");
        sent += figures["sent"].as_u64().unwrap();
        let booked = u64::from(x1_arm.as_deref() == Some(arm));
        let revisited = u64::from(f2_arm.as_deref() == Some(arm));
        assert_eq!(figures["booked"], booked, "{arm}");
        assert_eq!(figures["revisited"], revisited, "{arm}");
        assert_eq!(figures["clicked"], 0);
    }
    assert_eq!(sent, 4);
    let reminder = row(&october, "steps", "reminder", None);
    assert_eq!(reminder["stage"], Value::Null, "two stages: none named");
    assert_eq!(reminder["sent"], 0);
    for rate in [
        "open_rate",
        "ctr",
        "booking_rate",
        "revisit_rate",
        "block_rate",
    ] {
        assert_eq!(reminder[rate], Value::Null, "{rate}: null, never NaN");
    }
    let old = row(&october, "steps", "old_step", None);
    assert_eq!(
        (old["sent"].as_u64(), &old["stage"]),
        (Some(1), &Value::Null)
    );
    // The outbox send is apart, and in no LINE figure.
    let outbox = october["outbox"].as_array().unwrap();
    assert_eq!(outbox.len(), 1, "{october:#}");
    assert_eq!(
        (&outbox[0]["step"], &outbox[0]["sent"]),
        (&json!("booking_confirm"), &json!(1))
    );
    // The A/B arms, on bookings (the ledger has some).
    let experiment = &october["experiments"][0];
    assert_eq!(
        (&experiment["step"], &experiment["metric"]),
        (&json!("thanks"), &json!("booked"))
    );
    let mut keys: Vec<&String> = experiment.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["arms", "metric", "p_value", "required_n", "step", "verdict"]
    );
    assert_eq!(
        experiment["verdict"], "underpowered",
        "two patients per arm"
    );
    let mut arm_keys: Vec<&String> = experiment["arms"][0].as_object().unwrap().keys().collect();
    arm_keys.sort();
    assert_eq!(arm_keys, ["ci_high", "ci_low", "n", "rate", "variant", "x"]);
    let n: u64 = experiment["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["n"].as_u64().unwrap())
        .sum();
    assert_eq!(n, 4);
}

#[test]
fn months_begin_at_the_clinics_midnight() {
    let dir = tempfile::tempdir().unwrap();
    clinic_ledger(dir.path());
    // M0 went out at 23:59 on September 30th (Tokyo), M1 and X1 at 00:00 on October 1st.
    let september = json_report(dir.path(), &["--month", "2026-09"]);
    assert_eq!(row(&september, "steps", "booking_confirm", None)["sent"], 1);
    let first_day = json_report(dir.path(), &["--from", "2026-10-01", "--to", "2026-10-01"]);
    assert_eq!(row(&first_day, "steps", "booking_confirm", None)["sent"], 2);
    // The default period is the last full month before --now's day in Tokyo.
    let default = json_report(dir.path(), &["--now", "2026-11-01 00:30"]);
    assert_eq!(default["period"]["from"], "2026-10-01");
}

#[test]
fn the_table_groups_by_stage_with_changes_against_the_month_before() {
    let dir = tempfile::tempdir().unwrap();
    clinic_ledger(dir.path());
    let run = report(dir.path(), &["--month", "2026-10"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let table = &run.stdout;
    assert!(
        table.starts_with(
            "report 2026-10-01 to 2026-10-31 (Asia/Tokyo); ▲▼ against 2026-09-01 to 2026-09-30"
        ),
        "{table}"
    );
    let booked = table.find("stage booked").unwrap();
    let first_visit = table.find("stage first_visit").unwrap();
    let none = table.find("stage —").unwrap();
    assert!(booked < first_visit && first_visit < none, "{table}");
    let line = table
        .lines()
        .find(|l| l.trim_start().starts_with("booking_confirm"))
        .unwrap();
    // 5 sent against 1 in September; CTR 20% (1), new this month, so ▲20.0 points.
    assert!(line.contains("5 ▲4"), "{line}");
    assert!(line.contains("not measured"), "{line}");
    assert!(line.contains("20.0% (1) ▲20.0"), "{line}");
    assert!(table.contains("old_step (not in the rules)"), "{table}");
    assert!(table.contains("outbox and --dry-run sends"), "{table}");
    // Every row of the KPI table has its `opened` column at the same place.
    let kpis = &table[..table.find("A/B tests").unwrap()];
    let columns: Vec<usize> = kpis
        .lines()
        .filter_map(|l| l.find("not measured").map(|at| l[..at].chars().count()))
        .collect();
    assert_eq!(columns.len(), 5, "{table}");
    assert!(columns.windows(2).all(|w| w[0] == w[1]), "aligned: {table}");
}

#[test]
fn two_reports_on_one_ledger_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    clinic_ledger(dir.path());
    let first = report(dir.path(), &["--month", "2026-10", "--format", "json"]);
    let second = report(
        dir.path(),
        &["--month", "2026-10", "--format", "json", "--out", "r.json"],
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.stdout, "", "--out writes the file, not stdout");
    assert_eq!(
        first.stdout.as_bytes(),
        std::fs::read(dir.path().join("r.json")).unwrap()
    );
}

#[test]
fn hostile_periods_and_a_missing_ledger_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    clinic_ledger(dir.path());
    let refused = |args: &[&str], expected: &str| {
        let run = report(dir.path(), args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout, "");
    };
    refused(&["--month", "2026-13"], "there is no month 13");
    refused(&["--month", "2026-10", "--mde", "0"], "--mde takes");
    refused(
        &["--from", "2026-10-31", "--to", "2026-10-01"],
        "is after --to",
    );
    refused(
        &["--from", "2000-01-01", "--to", "2099-12-31"],
        "at most 3660",
    );
    let rules = rules();
    let missing = steprule(
        dir.path(),
        &["report", rules.to_str().unwrap(), "--ledger", "nowhere.db"],
    );
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("no ledger at nowhere.db"),
        "{}",
        missing.stderr
    );
    assert!(
        !dir.path().join("nowhere.db").exists(),
        "a report creates no ledger"
    );
}

#[test]
fn the_rules_attribution_window_decides_what_a_send_is_credited_with() {
    let dir = tempfile::tempdir().unwrap();
    clinic_ledger(dir.path());
    // B3 books five days after its booking_confirm: credited within 14 days, not within 3.
    let booked =
        |document: &Value| row(document, "steps", "booking_confirm", None)["booked"].clone();
    assert_eq!(
        booked(&json_report(dir.path(), &["--month", "2026-10"])),
        json!(1)
    );
    let rules = std::fs::read_to_string(rules()).unwrap();
    let short = dir.path().join("short.step");
    std::fs::write(
        &short,
        rules.replace(
            "dates appointment_at",
            "dates appointment_at\nattribution 3d",
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        fixtures().join("report/templates"),
        dir.path().join("templates"),
    )
    .unwrap();
    let run = steprule(
        dir.path(),
        &[
            "report",
            "short.step",
            "--ledger",
            "ledger.db",
            "--month",
            "2026-10",
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let document: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(booked(&document), json!(0));
}

#[test]
fn an_ab_arms_pushes_are_counted_under_a_unit_of_their_own() {
    // With --custom-aggregation each push names its step and arm, so that LINE's statistics
    // tell the arms apart: the unit of each patient's `thanks` is `thanks__<its arm>`.
    let fake = FakeLine::start(Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let patients = ["F1", "F2", "F3", "F4"];
    let mut csv = String::from(HEADER);
    for (i, id) in patients.iter().enumerate() {
        csv.push_str(&format!(
            "{id},U{:032x},テスト {i},first_visit,2026-10-04 09:00,1980-01-01,,false,\n",
            i + 1
        ));
    }
    std::fs::write(dir.path().join("patients.csv"), csv).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_steprule"))
        .arg("run")
        .arg(rules())
        .args(["--patients", "patients.csv", "--now", "2026-10-05 10:00"])
        .args(["--ledger", "ledger.db", "--custom-aggregation"])
        .args(["--line-api-base", &fake.base_url()])
        .env("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("sent 4"), "{stderr}");
    for (i, id) in patients.iter().enumerate() {
        let (_, arm) = send_of(&dir.path().join("ledger.db"), id, "thanks");
        let unit = format!("thanks__{}", arm.unwrap());
        assert_eq!(
            fake.deliveries_to(&format!("U{:032x}", i + 1), &unit),
            1,
            "{id}: {unit}"
        );
    }
}
