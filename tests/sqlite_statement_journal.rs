//! A statement that writes many rows and may abort keeps its statement journal (the pages it
//! changes, so that it alone can be undone) in memory up to 124 KiB, where SQLite's default
//! spilled every one past 64 KiB to a temporary file, a write and a read per page (issue 13);
//! past that it spills, and the statement still succeeds. A test binary of its own: the
//! setting only takes before the process's first SQLite connection, which other tests in a
//! shared binary would race to open. Its tests run one at a time: they count the process's
//! writes.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use steprule::ledger::{Claim, Ledger, SendDetails, SendKey, SinkKind};

/// Held by each test: the write counts are the whole process's.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// This process's write system calls so far (Linux's `/proc/self/io`).
fn writes_so_far() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    let line = io.lines().find(|line| line.starts_with("syscw:")).unwrap();
    line["syscw:".len()..].trim().parse().unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn key(patient: &str) -> SendKey<'_> {
    SendKey {
        sink: SinkKind::Outbox,
        patient,
        step: "thanks",
        occurrence: at("2026-11-21T01:00:00Z"),
    }
}

/// An outbox send due at 2026-11-21T01:00:00Z, for a week.
fn outbox_details() -> SendDetails<'static> {
    SendDetails {
        template: "thanks",
        variant: None,
        due_at: at("2026-11-21T01:00:00Z"),
        expires_at: at("2026-11-28T01:00:00Z"),
        outbox_from: Some(0),
    }
}

/// `rows` patient ids, each `width` bytes and more: long keys fill pages with few rows.
fn long_ids(rows: usize, width: usize) -> Vec<String> {
    (0..rows)
        .map(|i| format!("{i:06}{}", "x".repeat(width)))
        .collect()
}

/// Claims `rows` sends with ids `width` long, then settles them in one statement inside a
/// transaction: the write system calls made before its commit.
fn writes_settling(rows: usize, width: usize) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let (now, details) = (at("2026-11-21T01:00:00Z"), outbox_details());
    let patients = long_ids(rows, width);
    let sends: Vec<(SendKey<'_>, SendDetails<'_>)> = (patients.iter())
        .map(|patient| (key(patient), details.clone()))
        .collect();
    ledger.begin().unwrap();
    let claims = ledger.claim_all(&sends, now).unwrap();
    ledger.commit().unwrap();
    let sent: Vec<(SendKey<'_>, &str)> = (sends.iter().zip(&claims))
        .map(|((key, _), claim)| match claim {
            Claim::New { retry_key } => (key.clone(), retry_key.as_str()),
            other => panic!("a new claim: {other:?}"),
        })
        .collect();
    ledger.begin().unwrap();
    let before = writes_so_far();
    // One statement for the rows (a chunk), changing pages that are already in the file.
    ledger
        .settle_sent(&sent, 1, at("2026-11-21T01:00:05Z"))
        .unwrap();
    let written = writes_so_far() - before;
    ledger.commit().unwrap();
    assert!(writes_so_far() > before, "the commit writes the log");
    let counts = ledger.status_counts().unwrap();
    assert_eq!(counts, [(steprule::ledger::SendStatus::Sent, rows as u64)]);
    written
}

/// A statement whose journal is past SQLite's 64 KiB but within what is kept in memory
/// writes nothing before its commit.
#[test]
fn settling_a_batch_writes_nothing_before_its_commit() {
    let _alone = alone();
    // ~25 pages of rows and index entries: past 64 KiB, within 124 KiB.
    assert_eq!(writes_settling(64, 400), 0, "writes before the commit");
}

/// Past what is kept in memory, the journal spills to a temporary file and the statement
/// still succeeds, every row settled.
#[test]
fn settling_a_batch_past_the_journal_in_memory_spills_and_succeeds() {
    let _alone = alone();
    // ~100 pages.
    assert!(writes_settling(256, 400) > 0);
}

/// `sends` of `rows` outbox claims, with ids long enough that the table and its indexes pass
/// 8 MiB, put back as version 14 wrote them (instants as text).
fn version_fourteen_ledger(path: &std::path::Path, rows: usize) {
    let mut ledger = Ledger::open(path).unwrap();
    let (now, details) = (at("2026-11-21T01:00:00Z"), outbox_details());
    let patients = long_ids(rows, 300);
    for chunk in patients.chunks(2_048) {
        let sends: Vec<(SendKey<'_>, SendDetails<'_>)> = (chunk.iter())
            .map(|patient| (key(patient), details.clone()))
            .collect();
        ledger.begin().unwrap();
        ledger.claim_all(&sends, now).unwrap();
        ledger.commit().unwrap();
    }
    drop(ledger);
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ledger/as_version_14.sql");
    let sql = std::fs::read_to_string(fixture).unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!("BEGIN; {sql} COMMIT;"))
        .unwrap();
}

/// Upgrading a ledger rewrites its `sends` in one transaction, whose statements change far
/// more than a statement journal keeps in memory: what passes it must go to a temporary file
/// and the upgrade succeed. (With 8 MiB kept in memory, SQLite wrote the spilled journal in
/// chunks of 8 MiB, which its VFS cuts at 128 KiB, and the upgrade failed as "disk full".)
#[test]
fn an_upgrade_whose_statement_journal_spills_succeeds() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    version_fourteen_ledger(&path, 24_000);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > 16 << 20, "{size}");
    let ledger = Ledger::open(&path).unwrap();
    let mut sent = 0;
    ledger
        .recent_sends(SinkKind::Outbox, at("2026-11-22T00:00:00Z"), |_| sent += 1)
        .unwrap();
    assert_eq!(sent, 0, "claims, not sends");
    let counts = ledger.status_counts().unwrap();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 24_000);
}
