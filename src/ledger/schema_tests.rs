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

/// Inserts a row of `status` for `patient` by hand, its instants as the ledger's version holds
/// them: text before version 15, seconds since.
fn insert(conn: &Connection, patient: &str, status: &str) -> rusqlite::Result<usize> {
    let instants = |text: &str| -> rusqlite::types::Value {
        if stored_sql(conn, "sends").contains("STRICT") {
            crate::ledger::unix(at(text)).into()
        } else {
            text.to_owned().into()
        }
    };
    conn.execute(
        "INSERT INTO sends (sink, patient, step, occurrence, template, status, retry_key,
                            attempts, due_at, expires_at, created_at, updated_at, sent_at)
         VALUES ('outbox', ?1, 'thanks', '2026-11-21T01:00:00Z', 'thanks', ?2, ?3, 1,
                 ?4, ?5, ?4, ?4, ?4)",
        params![
            patient,
            status,
            format!("key-{patient}"),
            instants("2026-11-21T01:00:00Z"),
            instants("2026-11-28T01:00:00Z")
        ],
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

/// A send due on 2026-11-21 at 01:00 UTC, for a week, sent 5 s later (due, expiry, sent).
const SENT_ON_THE_21ST: (&str, &str, &str) = (
    "2026-11-21T01:00:00Z",
    "2026-11-28T01:00:00Z",
    "2026-11-21T01:00:05Z",
);

/// A ledger as version 14 made it (instants as text), with one sent row for each of
/// `instants` (due, expiry, sent).
fn version_fourteen(path: &std::path::Path, instants: &[(&str, &str, &str)]) {
    let conn = Connection::open(path).unwrap();
    for migration in &MIGRATIONS[..14] {
        conn.execute_batch(migration).unwrap();
    }
    conn.execute_batch("PRAGMA user_version = 14").unwrap();
    for (n, (due, expires, sent)) in instants.iter().enumerate() {
        conn.execute(
            "INSERT INTO sends (sink, patient, step, occurrence, template, status, retry_key,
                                attempts, due_at, expires_at, created_at, updated_at, sent_at,
                                outbox_from)
             VALUES ('outbox', ?1, 'thanks', '2026-11-21T01:00:00Z', 'thanks', 'sent', ?2, 1,
                     ?3, ?4, ?3, ?5, ?5, 0)",
            params![format!("P{n}"), format!("key-{n}"), due, expires, sent],
        )
        .unwrap();
    }
}

/// Version 15 keeps every instant of `sends` as seconds: each the instant its text said,
/// whatever form of RFC 3339 wrote it, and the reads find the rows where they were.
#[test]
fn a_version_fourteen_ledger_keeps_its_instants_as_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    version_fourteen(
        &path,
        &[
            SENT_ON_THE_21ST,
            // As chrono's `to_rfc3339` and another offset write them.
            (
                "2026-11-21T01:00:00+00:00",
                "2026-11-28T10:00:00+09:00",
                "2026-11-21T10:00:05.250+09:00",
            ),
        ],
    );
    let ledger = Ledger::open(&path).unwrap();
    let version: usize = (ledger.conn)
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, MIGRATIONS.len());
    let seconds = |column: &str| -> Vec<i64> {
        let sql = format!("SELECT {column} FROM sends ORDER BY patient");
        let mut select = ledger.conn.prepare(&sql).unwrap();
        let rows = select.query_map([], |row| row.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    };
    let unix = |text: &str| crate::ledger::unix(at(text));
    assert_eq!(seconds("due_at"), [unix("2026-11-21T01:00:00Z"); 2]);
    assert_eq!(seconds("expires_at"), [unix("2026-11-28T01:00:00Z"); 2]);
    assert_eq!(seconds("sent_at"), [unix("2026-11-21T01:00:05Z"); 2]);
    assert_eq!(seconds("updated_at"), seconds("sent_at"));
    let integrity: String = (ledger.conn)
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    // Through `sends_live`: both are live a day later, and sent when they were.
    let mut found = Vec::new();
    ledger
        .recent_sends(SinkKind::Outbox, at("2026-11-22T00:00:00Z"), |send| {
            found.push((send.patient.to_owned(), send.sent_at));
        })
        .unwrap();
    found.sort();
    let sent = at("2026-11-21T01:00:05Z");
    assert_eq!(found, [("P0".to_owned(), sent), ("P1".to_owned(), sent)]);
    // Through `sends_delivered`: the same two, counted in the day they went out.
    let mut delivered = 0;
    ledger
        .delivered_per_arm(
            at("2026-11-21T00:00:00Z"),
            at("2026-11-22T00:00:00Z"),
            |_, n| {
                delivered += n;
            },
        )
        .unwrap();
    assert_eq!(delivered, 2);
}

/// A batch a crash left unwritten under version 14 is found after the upgrade: its mark's
/// instant is seconds too, and finds the batch's rows through `sends_delivered`.
#[test]
fn a_batch_left_unwritten_before_the_upgrade_is_found_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    version_fourteen(
        &path,
        &[
            SENT_ON_THE_21ST,
            (
                "2026-11-20T01:00:00Z",
                "2026-11-27T01:00:00Z",
                "2026-11-20T01:00:05Z",
            ),
        ],
    );
    Connection::open(&path)
        .unwrap()
        .execute_batch("INSERT INTO outbox_unwritten VALUES (1, 0, '2026-11-21T01:00:05Z')")
        .unwrap();
    let ledger = Ledger::open(&path).unwrap();
    let (from, keys) = ledger.unwritten_keys().unwrap().unwrap();
    assert_eq!((from, keys), (0, vec!["key-0".to_owned()]));
}

/// An instant SQLite cannot read (edited by hand) stops the migration, which then leaves the
/// ledger as it was, row and version, rather than lose the instant.
#[test]
fn an_unreadable_instant_stops_the_migration_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    version_fourteen(
        &path,
        &[("2026-11-21T01:00:00Z", "2026-11-28T01:00:00Z", "yesterday")],
    );
    let error = Ledger::open(&path).err().unwrap().to_string();
    assert!(error.contains("old.db"), "{error}");
    assert!(error.contains("`updated_at` is not an instant"), "{error}");
    assert!(error.contains("nothing was changed"), "{error}");
    let conn = Connection::open(&path).unwrap();
    let version: usize = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 14);
    let sent: String = conn
        .query_row("SELECT sent_at FROM sends", [], |row| row.get(0))
        .unwrap();
    assert_eq!(sent, "yesterday");
}

/// A text instant (code that missed version 15) is refused by the table, not stored to be
/// compared as text, which sorts after every number.
#[test]
fn a_text_instant_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let refused = ledger.conn.execute(
        "INSERT INTO sends (sink, patient, step, occurrence, template, status, retry_key,
                            attempts, due_at, expires_at, created_at, updated_at)
         VALUES ('outbox', 'P1', 'thanks', '2026-11-21T01:00:00Z', 'thanks', 'pending', 'k', 0,
                 '2026-11-21T01:00:00Z', 1795750800, 1795150800, 1795150800)",
        [],
    );
    let error = refused.unwrap_err().to_string();
    assert!(error.contains("due_at"), "{error}");
    insert(&ledger.conn, "P1", "pending").unwrap();
}
