//! Tests of the fingerprints' log: it says what `marks` says, whatever wrote it.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::ledger::schema::MIGRATIONS;
use crate::ledger::{MarkRow, NewMarks};

fn row(n: u8) -> MarkRow {
    MarkRow {
        fields: 9,
        seen: vec![n; 17],
    }
}

/// The prints as a sorted list, to compare two tables.
fn sorted(prints: &MarkPrints) -> Vec<(u64, u64)> {
    let mut pairs: Vec<_> = prints.pairs().collect();
    pairs.sort_unstable();
    pairs
}

fn log_rows(ledger: &Ledger) -> i64 {
    (ledger.conn)
        .query_row("SELECT count(*) FROM mark_print_log", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn the_log_says_what_marks_says_after_writes_replacements_and_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    ledger.begin().unwrap();
    let mut first = NewMarks::default();
    for i in 0..300u64 {
        first.push(&format!("P{i}"), i, 9, |b| b.extend([1; 17]));
    }
    ledger.set_new_marks(&first).unwrap();
    // A later print for a patient replaces the earlier one, in the log as in `marks`.
    ledger.set_marks("P7", 1000, &row(2)).unwrap();
    ledger.commit().unwrap();
    ledger.begin().unwrap();
    ledger.set_marks("P8", 2000, &row(3)).unwrap();
    ledger.set_marks("P900", 900, &row(3)).unwrap();
    // Rolled back with the marks: neither print stays.
    ledger.mark_prints().unwrap();
    ledger.rollback().unwrap();
    let prints = ledger.mark_prints().unwrap();
    assert_eq!(sorted(&prints), sorted(&scan_marks(&ledger.conn).unwrap()));
    assert_eq!(prints.len(), 300);
    assert_eq!(prints.get(patient_hash("P7")), Some(1000));
    assert_eq!(prints.get(patient_hash("P8")), Some(8));
    assert_eq!(prints.get(patient_hash("P900")), None);
    // The batch and the single row: two rows of the log, not a row a patient.
    assert_eq!(log_rows(&ledger), 2);
}

#[test]
fn a_log_grown_past_its_slack_is_compacted_to_a_pair_a_patient() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let conn = &ledger.conn;
    // Ten patients' prints set five times over: the latest of each stays.
    for round in 0..5u64 {
        let pairs: Vec<_> = (1..=10u64)
            .map(|hash| crate::ledger::marks::Logged {
                hash,
                print: hash * 100 + round,
                pack: 0,
            })
            .collect();
        append_within(conn, &pairs, Appended::Known, 5).unwrap();
    }
    let (live, logged): (i64, i64) = conn
        .query_row("SELECT live, logged FROM mark_print_state", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    // Compacted at 10 logged (> 2 × 0 + 5), then each time 30 are (> 2 × 10 + 5): after the
    // third and the fifth round, to one row of ten pairs.
    assert_eq!((live, logged), (10, 10));
    assert_eq!(log_rows(&ledger), 1);
    let prints = read(conn).unwrap().unwrap();
    assert_eq!(prints.len(), 10);
    assert!((1..=10u64).all(|hash| prints.get(hash) == Some(hash * 100 + 4)));
}

#[test]
fn first_sightings_count_as_live_and_leave_the_log_uncompacted() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let conn = &ledger.conn;
    let state = || -> (i64, i64) {
        conn.query_row("SELECT live, logged FROM mark_print_state", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
    };
    // First sightings name their pack; later pairs are rows of their own.
    let pairs = |hashes: std::ops::RangeInclusive<u64>, print: u64| -> Vec<_> {
        hashes
            .map(|hash| crate::ledger::marks::Logged {
                hash,
                print,
                pack: u32::from(print == 1),
            })
            .collect()
    };
    // A first pass in batches, far past the slack: every pair is live, nothing is rewritten.
    for batch in 0..10u64 {
        let first = batch * 10 + 1;
        append_within(conn, &pairs(first..=first + 9, 1), Appended::New, 5).unwrap();
    }
    assert_eq!(state(), (100, 100));
    assert_eq!(log_rows(&ledger), 10);
    // Changes supersede: compacted once they pass the live pairs and the slack (106 > 105).
    append_within(conn, &pairs(1..=100, 2), Appended::Known, 5).unwrap();
    append_within(conn, &pairs(1..=5, 3), Appended::Known, 5).unwrap();
    assert_eq!(
        state(),
        (100, 205),
        "105 superseded pairs are within 100 + 5"
    );
    append_within(conn, &pairs(1..=1, 4), Appended::Known, 5).unwrap();
    assert_eq!(state(), (100, 100));
    assert_eq!(log_rows(&ledger), 1);
    let prints = read(conn).unwrap().unwrap();
    assert_eq!(prints.len(), 100);
    assert_eq!(prints.get(1), Some(4));
    assert_eq!(prints.get(2), Some(3));
    assert_eq!(prints.get(6), Some(2));
}

/// Compacted, each patient's latest pair takes the place of their first: the export's order,
/// in which a pass looks for them (see `mark_order.rs`).
#[test]
fn a_compacted_log_keeps_each_latest_pair_where_its_first_was() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let conn = &ledger.conn;
    let logged =
        |hash: u64, print: u64, pack: u32| crate::ledger::marks::Logged { hash, print, pack };
    // First sightings in the export's order (hashes falling), then changes out of it.
    let first: Vec<_> = (1..=8u64).rev().map(|hash| logged(hash, hash, 1)).collect();
    append_within(conn, &first, Appended::New, 100).unwrap();
    let changes = [logged(3, 30, 0), logged(7, 70, 0), logged(3, 31, 0)];
    append_within(conn, &changes, Appended::Known, 100).unwrap();
    compact(conn).unwrap();
    let pairs = read_pairs(conn).unwrap().unwrap();
    let expected: Vec<_> = (1..=8u64)
        .rev()
        .map(|hash| match hash {
            3 => logged(3, 31, 0),
            7 => logged(7, 70, 0),
            _ => logged(hash, hash, 1),
        })
        .collect();
    assert_eq!(pairs, expected);
    let state: (i64, i64) = conn
        .query_row("SELECT live, logged FROM mark_print_state", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(state, (8, 8));
}

#[test]
fn a_damaged_log_is_read_from_marks_instead() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let mut ledger = Ledger::open(&path).unwrap();
    ledger.set_marks("P1", 11, &row(1)).unwrap();
    ledger.set_marks("P2", 22, &row(1)).unwrap();
    // Half a pair: not whole pairs, so not to be trusted.
    (ledger.conn)
        .execute("INSERT INTO mark_print_log (pairs) VALUES (x'0102')", [])
        .unwrap();
    assert!(read(&ledger.conn).unwrap().is_none());
    let here = ledger.mark_prints().unwrap();
    assert_eq!(sorted(&here), sorted(&scan_marks(&ledger.conn).unwrap()));
    assert_eq!(here.get(patient_hash("P2")), Some(22));
    let beside = ledger.mark_prints_beside().unwrap().unwrap();
    assert_eq!(
        sorted(&beside.wait().unwrap().unwrap().into_by_hash()),
        sorted(&here)
    );
}

/// A ledger made before the log (version 10, as main wrote them) opens, gets its log filled
/// from its marks, and goes on keeping both.
#[test]
fn a_version_ten_ledger_gets_its_log_filled_from_its_marks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    make_version_ten(&path, &[("P1", 11, 9, &[0]), ("P2", u64::MAX - 4, 9, &[1])]);
    let mut ledger = Ledger::open(&path).unwrap();
    let version: usize = (ledger.conn)
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, MIGRATIONS.len());
    assert_eq!(log_rows(&ledger), 1);
    let prints = ledger.mark_prints().unwrap();
    assert_eq!(prints.len(), 2);
    assert_eq!(prints.get(patient_hash("P1")), Some(11));
    // Stored signed, read back bit for bit.
    assert_eq!(prints.get(patient_hash("P2")), Some(u64::MAX - 4));
    assert_eq!(
        ledger.mark_row("P2").unwrap(),
        Some(MarkRow {
            fields: 9,
            seen: vec![1]
        })
    );
    ledger.set_marks("P3", 33, &row(1)).unwrap();
    drop(ledger);
    let ledger = Ledger::open(&path).unwrap();
    let prints = ledger.mark_prints().unwrap();
    assert_eq!(sorted(&prints), sorted(&scan_marks(&ledger.conn).unwrap()));
    assert_eq!(prints.len(), 3);
}

/// A ledger as version 13 made them (16-byte log entries, no packs) opens upgraded, its log
/// filled again with entries that say where each row is, and reads what it read before.
#[test]
fn a_version_thirteen_ledger_reads_the_same_marks_after_its_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let rows: Vec<(String, u64)> = (0..300u64)
        .map(|i| (format!("P{i}"), i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    let seen = [2u8, 1, 1];
    let marks: Vec<(&str, u64, u64, &[u8])> = (rows.iter())
        .map(|(id, print)| (id.as_str(), *print, 9, &seen[..]))
        .collect();
    make_version_thirteen(&path, &marks);
    let mut ledger = Ledger::open(&path).unwrap();
    let version: usize = (ledger.conn)
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, MIGRATIONS.len());
    let prints = read(&ledger.conn).unwrap().unwrap();
    assert_eq!(prints.len(), 300);
    for (id, print) in &rows {
        assert_eq!(prints.get(patient_hash(id)), Some(*print));
        assert_eq!(prints.pack_of(patient_hash(id)), 0);
    }
    let row = MarkRow {
        fields: 9,
        seen: seen.to_vec(),
    };
    assert_eq!(ledger.mark_row("P17").unwrap(), Some(row.clone()));
    // New patients now go to packs, beside the old rows.
    let mut new = NewMarks::default();
    new.push("N1", 5, 9, |b| b.extend([2, 0]));
    ledger.set_new_marks(&new).unwrap();
    let prints = ledger.mark_prints().unwrap();
    assert_eq!(prints.len(), 301);
    assert_eq!(prints.pack_of(patient_hash("N1")), 1);
    assert_eq!(ledger.mark_row("P17").unwrap(), Some(row));
}

/// First sightings are packed: no `marks` row, their prints logged with their pack, their
/// rows read back from it; a damaged log is read from the packs and `marks` instead, with
/// the packs; and a patient later given a row of their own is read from it.
#[test]
fn packed_first_sightings_read_back_from_the_log_the_packs_and_a_damaged_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let mut first = NewMarks::default();
    for i in 0..150u64 {
        first.push(&format!("P{i}"), i, 9, |b| {
            b.extend([2, 7, (i % 256) as u8])
        });
    }
    ledger.begin().unwrap();
    ledger.set_new_marks(&first).unwrap();
    ledger.commit().unwrap();
    let count = |table: &str| -> i64 {
        (ledger.conn)
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!((count("marks"), count("mark_packs")), (0, 3));
    let prints = ledger.mark_prints().unwrap();
    let packs: Vec<u32> = [0, 63, 64, 149]
        .map(|i| prints.pack_of(patient_hash(&format!("P{i}"))))
        .to_vec();
    assert_eq!(packs, [1, 1, 2, 3]);
    let packed = |n: u8| MarkRow {
        fields: 9,
        seen: vec![2, 7, n],
    };
    assert_eq!(ledger.mark_row("P100").unwrap(), Some(packed(100)));
    assert_eq!(ledger.mark_row_at("P100", 2).unwrap(), Some(packed(100)));
    // Asked in the wrong pack: that pack has no row for them.
    assert_eq!(ledger.mark_row_at("P100", 1).unwrap(), None);
    // A row of their own, written later, is read first, wherever the prints say.
    ledger.set_marks("P100", 1000, &row(4)).unwrap();
    assert_eq!(ledger.mark_row_at("P100", 2).unwrap(), Some(row(4)));
    assert_eq!(ledger.mark_row("P100").unwrap(), Some(row(4)));
    let prints = ledger.mark_prints().unwrap();
    assert_eq!(prints.pack_of(patient_hash("P100")), 0);
    assert_eq!(prints.get(patient_hash("P100")), Some(1000));
    // Half an entry: the log is damaged, and the packs and `marks` say the same.
    (ledger.conn)
        .execute("INSERT INTO mark_print_log (pairs) VALUES (x'0102')", [])
        .unwrap();
    let scanned = ledger.mark_prints().unwrap();
    let logged = |prints: &MarkPrints| {
        let mut all: Vec<_> = prints.logged().map(|e| (e.hash, e.print, e.pack)).collect();
        all.sort_unstable();
        all
    };
    assert_eq!(logged(&scanned), logged(&prints));
    // A damaged pack is the ledger's `Corrupt`, never a panic.
    (ledger.conn)
        .execute("UPDATE mark_packs SET rows = x'01' WHERE seq = 3", [])
        .unwrap();
    let error = ledger.mark_row_at("P149", 3).unwrap_err();
    assert!(matches!(error, LedgerError::Corrupt { .. }), "{error}");
    assert!(matches!(
        ledger.mark_prints(),
        Err(LedgerError::Corrupt { .. })
    ));
}
