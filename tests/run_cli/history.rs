//! The sent history a pass reads before evaluating (src/app/run/history.rs): what went out
//! earlier counts toward today's cap on a rerun, for each patient their own sends only, on
//! both ledgers; and a sent row whose instant does not read stops the pass rather than being
//! forgotten.

use std::path::Path;
use std::process::Command;

use crate::common::fixtures;
use crate::workspace::{output, Run, Workspace};

/// `steprule run` of tests/fixtures/run/history.step at `now` (Asia/Tokyo), to the outbox.
fn command_at(ws: &Workspace, patients: &Path, now: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
    command
        .arg("run")
        .arg(fixtures().join("run/history.step"))
        .arg("--patients")
        .arg(patients)
        .args(["--now", now])
        .arg("--ledger")
        .arg(ws.ledger())
        .arg("--outbox")
        .arg(ws.outbox())
        .current_dir(ws.path())
        .env("NO_COLOR", "1")
        .env_remove("LINE_CHANNEL_ACCESS_TOKEN");
    command
}

/// [`command_at`], which must succeed.
fn run_at(ws: &Workspace, patients: &Path, now: &str) -> Run {
    let run = output(command_at(ws, patients, now));
    assert_eq!(run.code, 0, "{} at {now}:\n{}", ws.kind(), run.stderr);
    run
}

/// Patients booked at 09:30: booking_confirm is due at once, second_note an hour later.
fn booked(ws: &Workspace, ids: &[&str]) -> std::path::PathBuf {
    let path = ws.path().join("booked.csv");
    let mut csv = String::from("id,line_user_id,stage,stage_entered_at\n");
    for (i, id) in ids.iter().enumerate() {
        csv.push_str(&format!("{id},U{i:032},booked,2026-11-25 09:30\n"));
    }
    std::fs::write(&path, csv).unwrap();
    path
}

#[test]
fn what_went_out_earlier_today_counts_toward_the_cap_of_its_own_patient_only() {
    for ws in Workspace::on_both_ledgers("history_cap") {
        // Many patients, so that the history holds many; H3000 is booked only on the rerun
        // (the ledger has nothing of theirs) and its id starts as H300's does.
        let ids: Vec<String> = (0..300).map(|i| format!("H{i}")).collect();
        let mut early: Vec<&str> = ids.iter().map(String::as_str).collect();
        let first = run_at(&ws, &booked(&ws, &early), "2026-11-25 10:00");
        assert_eq!(first.count("sent"), 300, "{}", first.stderr);
        early.push("H3000");
        let rerun = run_at(&ws, &booked(&ws, &early), "2026-11-25 10:00");
        assert_eq!(rerun.count("already sent"), 300, "{}", rerun.stderr);
        assert_eq!(
            rerun.count("sent"),
            1,
            "only the new patient: {}",
            rerun.stderr
        );
        // At 10:45 every second_note is due; each patient was sent one today, so the cap
        // holds them all back (forgetting a patient's history would send theirs).
        let later = run_at(&ws, &booked(&ws, &early), "2026-11-25 10:45");
        assert_eq!(later.count("sent"), 0, "{}: {}", ws.kind(), later.stderr);
        let lines = std::fs::read_to_string(ws.outbox())
            .unwrap()
            .lines()
            .count();
        assert_eq!(lines, 301, "{}", ws.kind());
    }
}

/// The ledger's one `sent_at` rewritten as `to` (SQLite).
fn rewrite_sent_at(ledger: &Path, to: impl rusqlite::ToSql) {
    let conn = rusqlite::Connection::open(ledger).unwrap();
    let changed = conn
        .execute("UPDATE sends SET sent_at = ?1 WHERE status = 'sent'", [to])
        .unwrap();
    assert_eq!(changed, 1);
}

/// The ledger (SQLite) put back as version 14 wrote it: its sends' instants as text.
pub(crate) fn as_version_fourteen(ledger: &Path) {
    let sql = std::fs::read_to_string(fixtures().join("ledger/as_version_14.sql")).unwrap();
    let conn = rusqlite::Connection::open(ledger).unwrap();
    conn.execute_batch(&format!("BEGIN; {sql} COMMIT;"))
        .unwrap();
}

fn user_version(ledger: &Path) -> i64 {
    let conn = rusqlite::Connection::open(ledger).unwrap();
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap()
}

/// A ledger of version 14 whose `sent_at` was written in another RFC 3339 form (an offset,
/// milliseconds) is upgraded with that instant, which still counts toward the cap.
#[test]
fn an_old_sent_at_in_another_rfc3339_form_is_upgraded_and_still_counts_toward_the_cap() {
    let ws = Workspace::new();
    let patients = booked(&ws, &["R1"]);
    run_at(&ws, &patients, "2026-11-25 10:00");
    as_version_fourteen(&ws.ledger());
    // The same instant (10:00 in Tokyo) with an offset, as a hand or another tool writes it.
    rewrite_sent_at(&ws.ledger(), "2026-11-25T10:00:00.000+09:00");
    let later = run_at(&ws, &patients, "2026-11-25 10:45");
    assert_eq!(later.count("sent"), 0, "{}", later.stderr);
    assert!(user_version(&ws.ledger()) > 14);
}

#[test]
fn a_sent_at_that_is_no_instant_stops_the_pass_naming_the_ledger_and_column() {
    let ws = Workspace::new();
    let patients = booked(&ws, &["R1"]);
    run_at(&ws, &patients, "2026-11-25 10:00");
    // Seconds past chrono's calendar: what the table takes that is no instant.
    rewrite_sent_at(&ws.ledger(), i64::MAX);
    let run = output(command_at(&ws, &patients, "2026-11-25 10:45"));
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("`sent_at` is not an instant")
            && run.stderr.contains(&ws.ledger().display().to_string()),
        "{}",
        run.stderr
    );
    // Neither the cell nor the patient is quoted, and nothing went out.
    assert!(
        !run.stderr.contains(&i64::MAX.to_string()),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("R1"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(ws.outbox())
            .unwrap()
            .lines()
            .count(),
        1
    );
}

/// A ledger of version 14 with a `sent_at` that is no instant: the upgrade stops before the
/// pass, names the ledger and column (not the text nor the patient), sends nothing and leaves
/// the ledger as it was, so that the instant can be put back and the run made again.
#[test]
fn an_old_sent_at_that_is_no_instant_stops_the_upgrade_and_changes_nothing() {
    let ws = Workspace::new();
    let patients = booked(&ws, &["R1"]);
    run_at(&ws, &patients, "2026-11-25 10:00");
    as_version_fourteen(&ws.ledger());
    rewrite_sent_at(&ws.ledger(), "yesterday, R1 at ten");
    let run = output(command_at(&ws, &patients, "2026-11-25 10:45"));
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("`sent_at` is not an instant")
            && run.stderr.contains("nothing was changed")
            && run.stderr.contains(&ws.ledger().display().to_string()),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("yesterday"), "{}", run.stderr);
    assert!(!run.stderr.contains("R1"), "{}", run.stderr);
    assert_eq!(user_version(&ws.ledger()), 14);
    let outbox = std::fs::read_to_string(ws.outbox()).unwrap();
    assert_eq!(outbox.lines().count(), 1);
    // Put back, the upgrade goes through and the send still counts.
    rewrite_sent_at(&ws.ledger(), "2026-11-25T01:00:00Z");
    let again = run_at(&ws, &patients, "2026-11-25 10:45");
    assert_eq!(again.count("sent"), 0, "{}", again.stderr);
    assert!(user_version(&ws.ledger()) > 14);
}

/// The history is read beside the export (SQLite): a read that fails must stop the pass before
/// its first batch, not leave every patient with no history. With none, the rerun would claim
/// every old patient's second note (the cap forgotten) and every new patient's confirmation.
#[test]
fn a_history_that_fails_to_read_beside_the_export_stops_the_pass_before_any_claim() {
    let ws = Workspace::new();
    let old: Vec<String> = (0..300).map(|i| format!("H{i}")).collect();
    let mut ids: Vec<&str> = old.iter().map(String::as_str).collect();
    let first = run_at(&ws, &booked(&ws, &ids), "2026-11-25 10:00");
    assert_eq!(first.count("sent"), 300, "{}", first.stderr);
    let conn = rusqlite::Connection::open(ws.ledger()).unwrap();
    let changed = conn
        .execute(
            // Seconds past chrono's calendar: no instant.
            "UPDATE sends SET sent_at = 9223372036854775807
             WHERE patient = 'H150' AND status = 'sent'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let new: Vec<String> = (0..500).map(|i| format!("N{i}")).collect();
    ids.extend(new.iter().map(String::as_str));
    let run = output(command_at(&ws, &booked(&ws, &ids), "2026-11-25 10:45"));
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("`sent_at` is not an instant"),
        "{}",
        run.stderr
    );
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM sends", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 300, "nothing claimed: {}", run.stderr);
    let lines = std::fs::read_to_string(ws.outbox())
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, 300, "{}", run.stderr);
}
