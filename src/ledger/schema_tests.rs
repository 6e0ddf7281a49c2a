use rusqlite::{params, Connection};

use super::*;
use crate::ledger::tests::at;
use crate::ledger::{Ledger, SendDetails, SendKey, SinkKind};

/// The SQL SQLite keeps for `name`.
fn stored_sql(conn: &Connection, name: &str) -> String {
    conn.query_row(
        "SELECT sql FROM sqlite_schema WHERE name = ?1",
        [name],
        |row| row.get(0),
    )
    .unwrap()
}

/// Inserts a row of `status` for `patient` by hand, as an old ledger holds it.
fn insert(conn: &Connection, patient: &str, status: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO sends (sink, patient, step, occurrence, template, status, retry_key,
                            attempts, due_at, expires_at, created_at, updated_at, sent_at)
         VALUES ('outbox', ?1, 'thanks', '2026-11-21T01:00:00Z', 'thanks', ?2, ?3, 1,
                 '2026-11-21T01:00:00Z', '2026-11-28T01:00:00Z', '2026-11-21T01:00:00Z',
                 '2026-11-21T01:00:00Z', '2026-11-21T01:00:00Z')",
        params![patient, status, format!("key-{patient}")],
    )
}

/// No `IN` list of three or more constants in what SQLite checks on each row written: the
/// partial indexes' conditions and the CHECKs of `sends`.
#[test]
fn a_new_ledger_checks_sends_without_in_lists() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let table = stored_sql(&ledger.conn, "sends");
    assert!(table.contains(NEW_STATUS_CHECK), "{table}");
    assert!(!table.contains("status IN"), "{table}");
    for index in ["sends_open", "sends_problems", "sends_settled"] {
        let sql = stored_sql(&ledger.conn, index);
        assert!(!sql.contains(" IN "), "{sql}");
    }
    // Still refused: a status that is none of them.
    let refused = insert(&ledger.conn, "P1", "bounced").unwrap_err();
    assert!(refused.to_string().contains("CHECK"), "{refused}");
    for status in [
        "sent", "pending", "held", "blocked", "failed", "expired", "skipped",
    ] {
        insert(&ledger.conn, status, status).unwrap();
    }
}

/// A ledger as version 12 made it opens: its rows are kept, its CHECK and indexes rewritten,
/// and the indexes hold the rows they held.
#[test]
fn a_version_twelve_ledger_opens_with_the_same_rows_and_cheaper_checks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = Connection::open(&path).unwrap();
        for migration in &MIGRATIONS[..12] {
            conn.execute_batch(migration).unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 12").unwrap();
        assert!(stored_sql(&conn, "sends").contains(OLD_STATUS_CHECK.0));
        insert(&conn, "P1", "pending").unwrap();
        insert(&conn, "P2", "sent").unwrap();
        conn.execute(
            "UPDATE sends SET status = 'failed', problem = 'failed',
                              problem_at = '2026-11-21T02:00:00Z' WHERE patient = 'P2'",
            [],
        )
        .unwrap();
    }
    let mut ledger = Ledger::open(&path).unwrap();
    let version: usize = (ledger.conn)
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, MIGRATIONS.len());
    let table = stored_sql(&ledger.conn, "sends");
    assert!(table.contains(NEW_STATUS_CHECK), "{table}");
    assert!(!table.contains(OLD_STATUS_CHECK.0), "{table}");
    let integrity: String = (ledger.conn)
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    // Through the rewritten indexes: the pending row is open, the failed one a problem.
    let pending = ledger.pending_in_outbox().unwrap();
    assert_eq!(pending.keys, vec!["key-P1".to_owned()]);
    let problems = ledger.latest_problems(10).unwrap();
    assert_eq!(problems.len(), 1);
    assert!(insert(&ledger.conn, "P3", "bounced").is_err());
    // And a claim finds the old row.
    let key = SendKey {
        sink: SinkKind::Outbox,
        patient: "P1",
        step: "thanks",
        occurrence: at("2026-11-21T01:00:00Z"),
    };
    let details = SendDetails {
        template: "thanks",
        variant: None,
        due_at: at("2026-11-21T01:00:00Z"),
        expires_at: at("2026-11-28T01:00:00Z"),
        outbox_from: None,
    };
    let claim = ledger
        .claim(&key, &details, at("2026-11-21T03:00:00Z"))
        .unwrap();
    assert!(
        matches!(claim, crate::ledger::Claim::Resume { ref retry_key, .. } if retry_key == "key-P1"),
        "{claim:?}"
    );
}

#[test]
fn only_the_old_status_check_is_rewritten() {
    let old = "a CHECK (status IN ('pending','held',\n    'skipped')), b";
    let rewritten = with_new_status_check(old).unwrap();
    assert_eq!(rewritten, format!("a {NEW_STATUS_CHECK}, b"));
    assert_eq!(
        with_new_status_check("CHECK (sink IN ('line','outbox'))"),
        None
    );
}
