//! `explain` and `plan` read what `run` left in the ledger. One run at NOW (2026-11-25 10:00)
//! with `--since 2026-11-25 00:00`, LINE refusing R1 (worked out by hand from patients.csv):
//! R1's booking_confirm (09:30) failed; R2's booking_confirm (its time 11-24 12:00) and R3's
//! visit_reminder (11-24 18:00) are before the start, so skipped; R4's thanks (10:00) and R8's
//! booking_confirm (09:00 after quiet hours) were sent at 10:00.

use std::collections::HashSet;
use std::process::Command;

use crate::common::fixtures;
use crate::fake_line::{FakeLine, Faults, TOKEN};
use crate::workspace::{fixture_patients, fixture_user_id, output, Run, Workspace};

/// The workspace after that run.
fn after_the_run() -> (Workspace, FakeLine) {
    let fake = FakeLine::start(Faults {
        reject_to: HashSet::from([fixture_user_id("R1")]),
        ..Faults::none()
    });
    let ws = Workspace::new();
    let run = ws.run(
        &fixture_patients(),
        Some((TOKEN, &fake)),
        &["--since", "2026-11-25 00:00"],
    );
    assert_eq!(run.code, 4, "R1's refusal is a failed send\n{}", run.stderr);
    assert_eq!(
        (run.count("sent"), run.count("failed")),
        (2, 1),
        "{}",
        run.stderr
    );
    (ws, fake)
}

/// `steprule COMMAND` on the run fixtures' rules and patients, with the workspace's ledger.
fn read(ws: &Workspace, command: &str, extra: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steprule"));
    cmd.arg(command)
        .arg(fixtures().join("run/clinic.step"))
        .arg("--patients")
        .arg(fixture_patients())
        .arg("--ledger")
        .arg(ws.ledger())
        .args(extra)
        .current_dir(ws.path())
        .env("NO_COLOR", "1");
    output(cmd)
}

fn explain(ws: &Workspace, patient: &str, now: &str) -> String {
    let run = read(ws, "explain", &["--patient", patient, "--now", now]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
}

#[test]
fn explain_shows_what_the_ledger_has_instead_of_expired_or_due() {
    let (ws, _fake) = after_the_run();
    // Two days on, every booking_confirm above has expired: without the ledger explain said
    // "expired" for the sent one too, and at 11:00 that day "goes out on the next run".
    let r8 = explain(&ws, "R8", "2026-11-27 11:00");
    assert!(!r8.contains("expired"), "{r8}");
    insta::assert_snapshot!("explain_sent_r8", r8);
    let r4 = explain(&ws, "R4", "2026-11-25 11:00");
    assert!(!r4.contains("next run"), "{r4}");
    assert!(
        r4.contains("thanks           sent at 2026-11-25 (水) 10:00 via LINE\n"),
        "{r4}"
    );
    insta::assert_snapshot!("explain_failed_r1", explain(&ws, "R1", "2026-11-25 11:00"));
    insta::assert_snapshot!("explain_skipped_r2", explain(&ws, "R2", "2026-11-25 11:00"));
}

#[test]
fn plan_marks_the_sends_the_ledger_has_and_counts_them_apart() {
    let (ws, _fake) = after_the_run();
    let run = read(
        &ws,
        "plan",
        &[
            "--now",
            "2026-11-25 00:00",
            "--days",
            "2",
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let marked: Vec<String> = run
        .stdout
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            format!("{} {} {}", row["patient"], row["step"], row["ledger"])
        })
        .collect();
    assert_eq!(
        marked,
        [
            r#""R2" "booking_confirm" "skipped""#,
            r#""R3" "visit_reminder" "skipped""#,
            r#""R8" "booking_confirm" "sent""#,
            r#""R1" "booking_confirm" "failed""#,
            r#""R4" "thanks" "sent""#,
        ]
    );
    assert!(
        run.stderr.contains(
            "5 of them are in the ledger already: 2 sent, 1 failed, 2 skipped (column `ledger`; `run` sends again only those pending, held or blocked)"
        ),
        "{}",
        run.stderr
    );
    // The table counts per day only what goes out: the two sent ones.
    let table = read(&ws, "plan", &["--now", "2026-11-25 00:00", "--days", "2"]);
    assert!(
        table.stdout.contains("  2026-11-25 (水)        2\n"),
        "{}",
        table.stdout
    );
}
