//! A ledger write that fails part-way through a batch: the batch's transaction is rolled back
//! whole (a claims' `INSERT OR FAIL` would keep the rows it wrote before the failing one), no
//! line of it is written, and the next run sends each patient exactly once.

use crate::disks::patients_once;
use crate::ledger::ledger;
use crate::workspace::Workspace;

#[test]
fn a_batch_whose_claims_fail_part_way_leaves_no_row_and_no_line() {
    const N: usize = 1_000;
    let ws = Workspace::new();
    // The ledger made by a run with nobody due, then made to refuse its 301st row part-way
    // through a statement (RAISE(FAIL) keeps the statement's earlier rows, as OR FAIL does).
    let empty = ws.booked_patients(0);
    let made = crate::workspace::output(ws.command(&empty, None, &[]));
    assert_eq!(made.code, 0, "{}", made.stderr);
    let conn = rusqlite::Connection::open(ws.ledger()).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER injected BEFORE INSERT ON sends
         WHEN (SELECT count(*) FROM sends) >= 300
         BEGIN SELECT RAISE(FAIL, 'injected failure'); END;",
    )
    .unwrap();
    let patients = ws.booked_patients(N);
    let failed = crate::workspace::output(ws.command(&patients, None, &[]));
    assert_ne!(failed.code, 0, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("injected failure"),
        "{}",
        failed.stderr
    );
    // What was committed before the failing batch is sent with its line; nothing of the
    // failing batch is in the ledger, not even pending.
    let written = patients_once(&std::fs::read_to_string(ws.outbox()).unwrap_or_default());
    let rows = ledger(&ws.ledger()).rows;
    assert!(rows.len() <= 300, "{} rows", rows.len());
    for row in &rows {
        assert_eq!(row.status, "sent", "{row:?}");
        assert!(written.contains(&row.patient), "{row:?} has no line");
    }
    assert_eq!(written.len(), rows.len(), "a line without its row");
    conn.execute_batch("DROP TRIGGER injected").unwrap();
    drop(conn);
    let again = crate::workspace::output(ws.command(&patients, None, &[]));
    assert_eq!(again.code, 0, "{}", again.stderr);
    let outbox = std::fs::read_to_string(ws.outbox()).unwrap();
    assert_eq!(patients_once(&outbox).len(), N, "every patient once");
    assert_eq!(ledger(&ws.ledger()).status_count("sent"), N);
}
