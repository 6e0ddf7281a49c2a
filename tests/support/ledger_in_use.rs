//! A ledger put to use, for the test binaries that check how SQLite is set up in a process
//! (each its own binary: SQLite takes its settings only before its first connection).

use steprule::ledger::{Ledger, MarkRow};

/// Opens a ledger in `dir`, writes `rows` patients' marks in one transaction and reads one
/// back; returns the ledger, still open (its statements and page cache alive).
pub fn ledger_in_use(dir: &std::path::Path, rows: u64, seen: u8) -> Ledger {
    let mut ledger = Ledger::open(&dir.join("ledger.db")).unwrap();
    ledger.begin().unwrap();
    let row = MarkRow {
        fields: 1,
        seen: vec![seen; 17],
    };
    for i in 0..rows {
        ledger.set_marks(&format!("P{i}"), i, &row).unwrap();
    }
    ledger.commit().unwrap();
    assert_eq!(
        ledger.mark_row(&format!("P{}", rows / 2)).unwrap(),
        Some(row)
    );
    ledger
}
