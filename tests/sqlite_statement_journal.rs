//! A pass's multi-row writes touch the disk only when their transaction commits: a statement
//! that writes many rows and may abort keeps its statement journal (the pages it changes, so
//! that it alone can be undone) in memory, where SQLite's default spilled every one past 64 KiB
//! to a temporary file, a write and a read per page (issue 13). A test binary of its own: the
//! setting only takes before the process's first SQLite connection, which other tests in a
//! shared binary would race to open.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use steprule::ledger::{Claim, Ledger, SendDetails, SendKey, SinkKind};

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

#[test]
fn settling_a_batch_writes_nothing_before_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let now = at("2026-11-21T01:00:00Z");
    let details = SendDetails {
        template: "thanks",
        variant: None,
        due_at: now,
        expires_at: at("2026-11-28T01:00:00Z"),
        outbox_from: Some(0),
    };
    // Long ids: the 256 rows and their index entries fill ~100 pages, far past 64 KiB.
    let patients: Vec<String> = (0..256)
        .map(|i| format!("{i:04}{}", "x".repeat(400)))
        .collect();
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
    // One statement for the 256 rows (a chunk), changing pages that are already in the file.
    ledger
        .settle_sent(&sent, 1, at("2026-11-21T01:00:05Z"))
        .unwrap();
    assert_eq!(writes_so_far() - before, 0, "writes before the commit");
    ledger.commit().unwrap();
    assert!(writes_so_far() > before, "the commit writes the log");
}
