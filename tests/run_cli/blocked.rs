//! Blocks and links in `run`: a patient who blocked the account is not pushed (on LINE or the
//! outbox) and gets it once they follow again; a patient whose export has no LINE id gets it
//! through their link; the export's id wins over a different link; and a ledger with 100,000
//! blocks and links is read once per pass. Blocks and links are written through the ledger's
//! API, as `steprule serve` writes them.

use std::path::Path;

use chrono::{DateTime, Utc};
use steprule::ledger::{FriendChange, Ledger};

use crate::common::fixtures;
use crate::fake_line::{FakeLine, Faults, TOKEN};
use crate::ledger::ledger;
use crate::status::status;
use crate::workspace::{fixture_patients, fixture_user_id, patient, user_id, Run, Workspace};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// Writes to the workspace's ledger between runs, as `serve` would.
fn with_ledger(ws: &Workspace, change: impl FnOnce(&mut Ledger)) {
    let mut ledger = Ledger::open(&ws.ledger()).expect("open the ledger");
    change(&mut ledger);
}

fn block(ws: &Workspace, user: &str, when: &str) {
    with_ledger(ws, |l| {
        assert!(l.set_friend(user, FriendChange::Blocked, at(when)).unwrap());
    });
}

fn follow(ws: &Workspace, user: &str, when: &str) {
    with_ledger(ws, |l| {
        assert!(l
            .set_friend(user, FriendChange::Followed, at(when))
            .unwrap());
    });
}

fn link(ws: &Workspace, user: &str, patient: &str, when: &str) {
    with_ledger(ws, |l| l.link(user, patient, at(when)).unwrap());
}

/// `due` is the sum of what became of each send.
fn assert_adds_up(run: &Run) {
    let parts = [
        "sent",
        "already sent",
        "settled before",
        "expired",
        "failed",
        "held",
        "blocked",
        "retrying later",
    ];
    let sum: u64 = parts.iter().map(|p| run.count(p)).sum();
    assert_eq!(run.count("due"), sum, "due = sum:\n{}", run.stderr);
}

/// A LINE user id of the form LINE gives (`U` and 32 hex digits) that is no one's in the export.
const LINKED_USER: &str = "Uabcdef0123456789abcdef0123456789";

#[test]
fn a_blocked_patient_is_not_pushed_and_a_later_follow_sends_it() {
    let fake = FakeLine::start(Faults::none());
    let ws = Workspace::new();
    let r1 = fixture_user_id("R1");
    block(&ws, &r1, "2026-11-24T03:00:00Z");

    let run = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(run.code, 0, "a block is not a failure:\n{}", run.stderr);
    assert_eq!(
        (run.count("due"), run.count("sent"), run.count("blocked")),
        (5, 4, 1),
        "{}",
        run.stderr
    );
    assert_adds_up(&run);
    assert!(
        run.stderr.contains(
            "note: step `booking_confirm`, 1 patient(s): the patient blocked the account (blocked: \
             not pushed; sent if they follow again before it expires)"
        ),
        "the problems list names it:\n{}",
        run.stderr
    );
    assert_eq!(
        fake.requests_to(&r1),
        0,
        "nothing pushed to the blocked user"
    );
    assert_eq!(
        ledger(&ws.ledger()).row("R1", "booking_confirm").status,
        "blocked"
    );
    let table = status(&ws, &[]);
    let row: Vec<&str> = table
        .stdout
        .lines()
        .find(|l| l.starts_with("booking_confirm"))
        .unwrap()
        .split_whitespace()
        .collect();
    // step, sink, sent, pending, held, blocked, failed, expired, skipped
    assert_eq!(
        row[1..],
        ["line", "2", "0", "0", "1", "0", "0", "0"],
        "{}",
        table.stdout
    );

    // Still blocked: the next pass looks again and pushes nothing.
    let again = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(
        (again.count("blocked"), again.count("already sent")),
        (1, 4),
        "{}",
        again.stderr
    );
    assert_eq!(fake.requests_to(&r1), 0);

    // A follow unblocks: the send has not expired, so the next pass delivers it.
    follow(&ws, &r1, "2026-11-25T00:30:00Z");
    let after = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert_eq!(
        (after.count("sent"), after.count("blocked")),
        (1, 0),
        "{}",
        after.stderr
    );
    assert_adds_up(&after);
    assert_eq!(fake.requests_to(&r1), 1);
    assert_eq!(
        ledger(&ws.ledger()).row("R1", "booking_confirm").status,
        "sent"
    );
}

#[test]
fn a_blocked_patient_gets_no_outbox_line() {
    let ws = Workspace::new();
    let r3 = fixture_user_id("R3");
    block(&ws, &r3, "2026-11-24T03:00:00Z");
    let run = ws.run(&fixture_patients(), None, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("sent"), run.count("blocked")),
        (4, 1),
        "{}",
        run.stderr
    );
    let outbox = std::fs::read_to_string(ws.outbox()).unwrap();
    assert_eq!(outbox.lines().count(), 4);
    assert!(
        !outbox.contains(&r3),
        "no line to the blocked user:\n{outbox}"
    );
    assert!(outbox.lines().all(|l| !l.contains("\"R3\"")));
}

#[test]
fn a_patient_without_an_export_id_gets_it_through_their_link() {
    let fake = FakeLine::start(Faults::none());
    let ws = Workspace::new();
    // R6 has no line_user_id: nothing is due to them, and the run says why.
    let before = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(before.count("due"), 5, "{}", before.stderr);
    assert!(
        before
            .stderr
            .contains("note: 1 patient(s) have no LINE user"),
        "{}",
        before.stderr
    );
    assert!(ledger(&ws.ledger()).rows.iter().all(|r| r.patient != "R6"));

    // R6 links LINE (`serve` stores it); their confirmation is still within its 24 hours.
    link(&ws, LINKED_USER, "R6", "2026-11-25T00:50:00Z");
    let after = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert_eq!(
        (after.count("due"), after.count("sent")),
        (6, 1),
        "{}",
        after.stderr
    );
    assert!(!after.stderr.contains("no LINE user"), "{}", after.stderr);
    assert_eq!(
        fake.requests_to(LINKED_USER),
        1,
        "pushed to the linked user"
    );
    assert_eq!(
        ledger(&ws.ledger()).row("R6", "booking_confirm").status,
        "sent"
    );

    // The linked user blocks the account: what comes due for R6 is held back as blocked.
    block(&ws, LINKED_USER, "2026-11-25T00:55:00Z");
    let patients = ws.path().join("r6.csv");
    let csv = std::fs::read_to_string(fixture_patients()).unwrap();
    let header = csv.lines().next().unwrap();
    let r6 = csv.lines().find(|l| l.starts_with("R6,")).unwrap();
    // A new booking: a new occurrence of booking_confirm.
    let rebooked = r6.replace("2026-11-25 09:30", "2026-11-25 09:45");
    std::fs::write(&patients, format!("{header}\n{rebooked}\n")).unwrap();
    let blocked = ws.run(&patients, Some((TOKEN, &fake)), &[]);
    assert_eq!(
        (blocked.count("due"), blocked.count("blocked")),
        (1, 1),
        "{}",
        blocked.stderr
    );
    assert_eq!(fake.requests_to(LINKED_USER), 1);
}

#[test]
fn the_export_id_wins_over_a_different_link_and_status_shows_the_conflict() {
    let fake = FakeLine::start(Faults::none());
    let ws = Workspace::new();
    link(&ws, LINKED_USER, "R1", "2026-11-20T01:00:00Z");
    let run = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(run.count("sent"), 5, "{}", run.stderr);
    assert_eq!(fake.requests_to(&fixture_user_id("R1")), 1);
    assert_eq!(fake.requests_to(LINKED_USER), 0, "the export wins");

    let rules = fixtures().join("run/clinic.step");
    let patients = fixture_patients();
    let with_export = status(
        &ws,
        &[
            rules.to_str().unwrap(),
            "--patients",
            patients.to_str().unwrap(),
            "--patient",
            "R1",
        ],
    );
    assert_eq!(with_export.code, 0, "{}", with_export.stderr);
    let out = &with_export.stdout;
    assert!(out.contains("linked on 2026-11-20T01:00:00Z"), "{out}");
    assert!(
        out.contains("conflict: the export's line_user_id is not the linked LINE user"),
        "{out}"
    );
    assert!(
        out.contains("1 patient(s) whose export id differs"),
        "{out}"
    );
    assert!(!out.contains(LINKED_USER), "never a LINE user id:\n{out}");
    assert!(!out.contains(&fixture_user_id("R1")), "{out}");

    let without = status(&ws, &["--patient", "R1"]);
    assert!(
        without
            .stdout
            .contains("cannot check it against the export's line_user_id without --patients"),
        "{}",
        without.stdout
    );
    let json = status(
        &ws,
        &[
            rules.to_str().unwrap(),
            "--patients",
            patients.to_str().unwrap(),
            "--patient",
            "R1",
            "--format",
            "json",
        ],
    );
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value["conflicts"], 1, "{value}");
    assert_eq!(value["line"]["recipient"], "export", "{value}");
    assert_eq!(value["line"]["conflict"], true, "{value}");
    assert_eq!(
        value["line"]["linked_at"], "2026-11-20T01:00:00Z",
        "{value}"
    );
}

/// Writes `n` booked patients without a LINE id (their links are in the ledger).
fn unlinked_patients(dir: &Path, n: usize) -> std::path::PathBuf {
    let path = dir.join(format!("unlinked_{n}.csv"));
    let mut csv = String::from(
        "id,line_user_id,name,stage,stage_entered_at,birth_date,tags,opted_out,appointment_at,cancelled_at\n",
    );
    for i in 0..n {
        csv.push_str(&format!(
            "{},,テスト {i},booked,2026-11-25 09:30,1980-01-01,,false,,\n",
            patient(i)
        ));
    }
    std::fs::write(&path, csv).unwrap();
    path
}

#[test]
fn a_ledger_with_a_hundred_thousand_blocks_and_links_decides_each_patient() {
    const LINKS: usize = 100_000;
    const PATIENTS: usize = 2_000;
    let ws = Workspace::new();
    with_ledger(&ws, |l| {
        let when = at("2026-11-20T01:00:00Z");
        l.begin().unwrap();
        for i in 0..LINKS {
            l.link(&user_id(i), &patient(i), when).unwrap();
            // Every even patient's user blocked, and as many strangers.
            if i % 2 == 0 {
                l.set_friend(&user_id(i), FriendChange::Blocked, when)
                    .unwrap();
            }
            l.set_friend(&format!("Z{i:032x}"), FriendChange::Blocked, when)
                .unwrap();
        }
        l.commit().unwrap();
    });
    let patients = unlinked_patients(ws.path(), PATIENTS);
    let run = ws.run(&patients, None, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("due"), run.count("sent"), run.count("blocked")),
        (PATIENTS as u64, PATIENTS as u64 / 2, PATIENTS as u64 / 2),
        "{}",
        run.stderr
    );
    let outbox = std::fs::read_to_string(ws.outbox()).unwrap();
    let lines: Vec<serde_json::Value> = outbox
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), PATIENTS / 2);
    for line in &lines {
        let id = line["patient"].as_str().unwrap();
        let i: usize = id[1..].parse().unwrap();
        assert_eq!(i % 2, 1, "only the odd patients' users follow: {line}");
        assert_eq!(line["to"], user_id(i), "sent to the linked user");
    }
}
