//! `steprule report --patients FILE`: the export read as `run` reads it (mapping, encoding,
//! bad rows), and per stage the patients, how many `run` could reach on LINE (the export's
//! `line_user_id`, else a link in the ledger) and how many of those blocked the account.
//!
//! The export below (tests/fixtures/report/clinic.step: stages booked, first_visit):
//! - P1 booked, its own LINE user U…01, who blocked the account → linked, blocked.
//! - P2 booked, no LINE user in the export, linked in the ledger to U…02 → linked.
//! - P3 booked, neither → not linked.
//! - P4 first_visit, U…04 → linked.
//! - P5 without a stage → counted under `null`.
//! - line 7: a stage the rules do not have → reported with its line and skipped.
//! - P7 first_visit, no LINE user, but the LINE user U…07 who blocked is linked to P7 →
//!   linked, blocked.
//!
//! So booked 3 / 2 / 1, first_visit 2 / 2 / 1, no stage 1 / 0 / 0.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;

use chrono::{DateTime, Utc};
use common::{fixtures, steprule, Run};
use serde_json::{json, Value};
use steprule::ledger::{FriendChange, Ledger};

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn user(n: u32) -> String {
    format!("U{n:032x}")
}

const NAMES: [&str; 7] = [
    "山田 太郎",
    "佐藤 花子",
    "鈴木 一郎",
    "高橋 次郎",
    "田中 三郎",
    "伊藤 四郎",
    "渡辺 五郎",
];

/// The export and the ledger described at the top, in `dir`.
fn clinic(dir: &Path) {
    let header =
        "id,line_user_id,name,stage,stage_entered_at,birth_date,tags,opted_out,appointment_at\n";
    let rows = [
        ("P1", user(1), "booked"),
        ("P2", String::new(), "booked"),
        ("P3", String::new(), "booked"),
        ("P4", user(4), "first_visit"),
        ("P5", String::new(), ""),
        ("P6", String::new(), "discharged"),
        ("P7", String::new(), "first_visit"),
    ];
    let mut csv = String::from(header);
    for (i, (id, line_user, stage)) in rows.iter().enumerate() {
        csv.push_str(&format!(
            "{id},{line_user},{},{stage},2026-10-01 09:00,1980-01-01,,false,\n",
            NAMES[i]
        ));
    }
    std::fs::write(dir.join("patients.csv"), csv).unwrap();
    let mut ledger = Ledger::open(&dir.join("ledger.db")).unwrap();
    let when = at("2026-10-02T00:00:00Z");
    ledger.link(&user(2), "P2", when).unwrap();
    ledger.link(&user(7), "P7", when).unwrap();
    ledger
        .set_friend(&user(1), FriendChange::Blocked, when)
        .unwrap();
    ledger
        .set_friend(&user(7), FriendChange::Blocked, when)
        .unwrap();
    // Blocked, but the patient's sends go to the export's LINE user: not counted.
    ledger
        .set_friend(&user(99), FriendChange::Blocked, when)
        .unwrap();
    ledger
        .link(&user(99), "P4", at("2026-10-01T00:00:00Z"))
        .unwrap();
}

fn report(dir: &Path, args: &[&str]) -> Run {
    let rules = fixtures().join("report/clinic.step");
    let base = [
        "report",
        rules.to_str().unwrap(),
        "--ledger",
        "ledger.db",
        "--month",
        "2026-10",
    ];
    steprule(dir, &[&base[..], args].concat())
}

fn assert_no_names(run: &Run) {
    for name in NAMES {
        assert!(
            !run.stdout.contains(name) && !run.stderr.contains(name),
            "a patient's name was printed: {}{}",
            run.stdout,
            run.stderr
        );
    }
}

#[test]
fn each_stage_counts_its_patients_those_on_line_and_those_who_blocked() {
    let dir = tempfile::tempdir().unwrap();
    clinic(dir.path());
    let run = report(
        dir.path(),
        &["--patients", "patients.csv", "--format", "json"],
    );
    // A row's stage cannot be read: reported by its line, left out of every stage's count,
    // and the exit code says so (as for `plan`).
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("patients.csv:7: column `stage`: not one of the stages"),
        "{}",
        run.stderr
    );
    assert_no_names(&run);
    let document: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        document["stages"],
        json!([
            {"stage": "booked", "patients": 3, "linked": 2, "blocked": 1},
            {"stage": "first_visit", "patients": 2, "linked": 2, "blocked": 1},
            {"stage": null, "patients": 1, "linked": 0, "blocked": 0},
        ])
    );
    // The keys, in their order, then LINE's account figures, then `stages`.
    let top_level: Vec<usize> = [
        "period",
        "steps",
        "outbox",
        "experiments",
        "recommendations",
        "line_account",
        "stages",
    ]
    .iter()
    .map(|key| run.stdout.find(&format!("\n  \"{key}\":")).unwrap())
    .collect();
    assert!(top_level.windows(2).all(|w| w[0] < w[1]), "{}", run.stdout);
    assert_eq!(document.as_object().unwrap().len(), 7);
    // Without the export the document is the issue's, key for key.
    let plain = report(dir.path(), &["--format", "json"]);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    let plain: Value = serde_json::from_str(&plain.stdout).unwrap();
    assert!(plain.get("stages").is_none(), "{plain:#}");
}

#[test]
fn the_table_and_the_page_show_the_reach_per_stage() {
    let dir = tempfile::tempdir().unwrap();
    clinic(dir.path());
    let table = report(dir.path(), &["--patients", "patients.csv"]);
    assert_eq!(table.code, 3, "{}", table.stderr);
    assert_no_names(&table);
    let section = &table.stdout[table
        .stdout
        .find("patients now in each stage")
        .unwrap_or_else(|| panic!("{}", table.stdout))..];
    let cells = |stage: &str| -> Vec<String> {
        section
            .lines()
            .find(|l| l.split_whitespace().next() == Some(stage))
            .unwrap_or_else(|| panic!("no {stage}: {section}"))
            .split_whitespace()
            .skip(1)
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(cells("booked"), ["3", "2", "1"]);
    assert_eq!(cells("first_visit"), ["2", "2", "1"]);
    assert_eq!(cells("—"), ["1", "0", "0"]);
    assert!(
        section.contains("1 rows of the export skipped"),
        "{section}"
    );

    let page = report(
        dir.path(),
        &["--patients", "patients.csv", "--format", "html"],
    );
    assert_eq!(page.code, 3, "{}", page.stderr);
    assert_no_names(&page);
    let html = &page.stdout;
    assert!(html.contains("ステージ別の到達状況"), "{html}");
    assert!(html.contains("読めなかった1行は数えていません"), "{html}");
    // Nothing was sent: the page says so, and the reach is still there.
    assert!(html.contains("まだありません"), "{html}");
    assert!(
        html.contains("<td class=\"name\">booked</td><td>3</td><td>2</td><td>1</td>"),
        "{html}"
    );
}

#[test]
fn the_export_is_read_with_runs_mapping_and_encoding() {
    // The reservation system's Shift_JIS export with Japanese headers and stage names, as
    // `run` reads it with --mapping: two booked, one first visit, one follow-up (all with a
    // LINE user), one regular without.
    let dir = tempfile::tempdir().unwrap();
    drop(Ledger::open(&dir.path().join("ledger.db")).unwrap());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = steprule(
        dir.path(),
        &[
            "report",
            root.join("rules/clinic.step").to_str().unwrap(),
            "--ledger",
            "ledger.db",
            "--month",
            "2026-10",
            "--format",
            "json",
            "--patients",
            fixtures().join("patients/shift_jis.csv").to_str().unwrap(),
            "--mapping",
            fixtures()
                .join("patients/shift_jis_mapping.toml")
                .to_str()
                .unwrap(),
            "--encoding",
            "shift_jis",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let document: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        document["stages"],
        json!([
            {"stage": "booked", "patients": 2, "linked": 2, "blocked": 0},
            {"stage": "first_visit", "patients": 1, "linked": 1, "blocked": 0},
            {"stage": "follow_up", "patients": 1, "linked": 1, "blocked": 0},
            {"stage": "regular", "patients": 1, "linked": 0, "blocked": 0},
        ])
    );
    // A missing export is an error before anything is written.
    let missing = report(
        dir.path(),
        &["--patients", "nowhere.csv", "--out", "r.json"],
    );
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(!dir.path().join("r.json").exists());
}
