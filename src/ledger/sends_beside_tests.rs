//! Tests of `sends_beside`: the reader beside reads what the ledger reads, in the same order.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::ledger::tests::{at, record_sent};
use crate::ledger::unix;

fn patients(read: impl FnOnce(&mut dyn FnMut(RecentSend<'_>))) -> Vec<String> {
    let mut seen = Vec::new();
    read(&mut |send| seen.push(send.patient.to_owned()));
    seen.sort();
    seen
}

#[test]
fn the_reader_reads_what_the_ledger_reads_as_last_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    record_sent(&mut ledger, "P1", "first");
    record_sent(&mut ledger, "P2", "first");
    let reader = ledger.sends_reader().unwrap();
    let now = at("2026-11-25T10:00:00Z");
    let here = patients(|each| ledger.recent_sends(SinkKind::Outbox, now, each).unwrap());
    let beside = std::thread::spawn(move || {
        patients(|each| reader.recent_sends(SinkKind::Outbox, now, each).unwrap())
    })
    .join()
    .unwrap();
    assert_eq!(here, ["P1", "P2"]);
    assert_eq!(beside, here);
}

#[test]
fn inside_a_transaction_the_read_is_left_to_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    ledger.begin().unwrap();
    assert!(ledger.sends_reader().is_none());
    ledger.commit().unwrap();
    assert!(ledger.sends_reader().is_some());
}

#[test]
fn an_unreadable_sent_instant_is_the_same_error_beside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let mut ledger = Ledger::open(&path).unwrap();
    record_sent(&mut ledger, "P1", "first");
    let other = Connection::open(&path).unwrap();
    // Seconds past chrono's calendar: what STRICT lets a hand edit write that is no instant.
    other
        .execute_batch("UPDATE sends SET sent_at = 9223372036854775807")
        .unwrap();
    let now = at("2026-11-25T10:00:00Z");
    let here = ledger.recent_sends(SinkKind::Outbox, now, |_| {});
    let reader = ledger.sends_reader().unwrap();
    let beside = reader.recent_sends(SinkKind::Outbox, now, &mut |_| {});
    let (here, beside) = (here.unwrap_err(), beside.unwrap_err());
    assert!(
        matches!(beside, LedgerError::UnreadableInstant { .. }),
        "{beside}"
    );
    assert_eq!(beside.to_string(), here.to_string());
}

/// Every send as [`RecentSend`] gives it, in the order given.
type Read = Vec<(String, String, DateTime<Utc>, DateTime<Utc>)>;

fn read_all(read: impl FnOnce(&mut dyn FnMut(RecentSend<'_>))) -> Read {
    let mut seen = Vec::new();
    read(&mut |send| {
        seen.push((
            send.patient.to_owned(),
            send.step.to_owned(),
            send.occurrence,
            send.sent_at,
        ));
    });
    seen
}

/// Writes `rows` sends as another program would: `expiry(i)` and `sent(i)` are row `i`'s
/// `expires_at` and `sent_at` (RFC 3339, stored as seconds), its status `sent` unless
/// `status(i)` says otherwise.
fn write_sends(
    path: &std::path::Path,
    rows: usize,
    expiry: impl Fn(usize) -> String,
    sent: impl Fn(usize) -> String,
    status: impl Fn(usize) -> &'static str,
) {
    let seconds = |text: String| unix(at(&text));
    let mut conn = Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO sends (sink, patient, step, occurrence, template, status, retry_key,
                                    due_at, expires_at, created_at, updated_at, sent_at)
                 VALUES ('outbox', ?1, ?2, ?3, 'hello', ?4, ?5, ?8, ?6, ?8, ?8, ?7)",
            )
            .unwrap();
        for i in 0..rows {
            let occurrence = format!("2026-11-{:02}T{:02}:00:00Z", 1 + i % 20, i % 24);
            insert
                .execute(params![
                    format!("P{:05}", i * 7919 % rows),
                    ["first", "second", "third"][i % 3],
                    occurrence,
                    status(i),
                    format!("key-{i}"),
                    seconds(expiry(i)),
                    seconds(sent(i)),
                    seconds(occurrence.clone()),
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Sends crowded at one expiry (a window's end) and spread over three weeks, some long
/// expired, some pending: read by two connections, slice by slice, they come exactly as one
/// read gives them, in its order.
#[test]
fn the_live_sends_read_by_two_connections_come_as_one_read_gives_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let ledger = Ledger::open(&path).unwrap();
    let expiry = |i: usize| match i % 5 {
        0 | 1 => "2026-11-25T03:00:00Z".to_owned(),
        2 => format!("2026-11-{:02}T{:02}:{:02}:00Z", 10 + i % 19, i % 24, i % 60),
        _ => format!("2026-12-{:02}T{:02}:00:00Z", 1 + i % 28, i % 24),
    };
    let sent = |i: usize| format!("2026-11-{:02}T00:00:00Z", 1 + i % 25);
    let status = |i: usize| {
        if i.is_multiple_of(11) {
            "pending"
        } else {
            "sent"
        }
    };
    write_sends(&path, 24_000, expiry, sent, status);
    let now = at("2026-11-25T09:00:00Z");
    let reader = ledger.sends_reader().unwrap();
    let starts = slice_starts(&reader.conn, SinkKind::Outbox, since(now)).unwrap();
    assert!(starts.len() > 10, "{starts:?}");
    let one = read_all(|each| ledger.recent_sends(SinkKind::Outbox, now, each).unwrap());
    let two = read_all(|each| reader.recent_sends(SinkKind::Outbox, now, each).unwrap());
    assert!(one.len() > 12_000, "{}", one.len());
    assert_eq!(two, one);
    // The second connection from the first row on, and never.
    for help_after in [1, usize::MAX] {
        let two = read_all(|each| {
            (reader.read_sliced(SinkKind::Outbox, now, help_after, each)).unwrap();
        });
        assert_eq!(two, one, "{help_after}");
    }
    // Another sink's range is empty: one read, nothing in it.
    let line = read_all(|each| reader.recent_sends(SinkKind::Line, now, each).unwrap());
    assert!(line.is_empty());
}

/// Expiries written with an offset are the instants they say, read once each as one read
/// reads them; an end that is no instant (seconds past the calendar) leaves one slice.
#[test]
fn expiries_written_otherwise_are_read_once_and_in_the_same_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let ledger = Ledger::open(&path).unwrap();
    let expiry = |i: usize| match i % 4 {
        0 => format!("2026-11-{:02}T09:00:00+09:00", 18 + i % 12),
        1 => "2026-11-26T09:00:00+09:00".to_owned(),
        _ => format!("2026-12-{:02}T{:02}:00:00Z", 1 + i % 28, i % 24),
    };
    let sent = |_| "2026-11-24T00:00:00Z".to_owned();
    write_sends(&path, 400, expiry, sent, |_| "sent");
    let now = at("2026-11-25T09:00:00Z");
    let reader = ledger.sends_reader().unwrap();
    assert!(
        slice_starts(&reader.conn, SinkKind::Outbox, since(now))
            .unwrap()
            .len()
            > 1
    );
    let one = read_all(|each| ledger.recent_sends(SinkKind::Outbox, now, each).unwrap());
    let two = read_all(|each| {
        (reader.read_sliced(SinkKind::Outbox, now, 1, each)).unwrap();
    });
    assert_eq!(one.len(), 400);
    assert_eq!(two, one);
    // The last expiry no instant: nothing to cut at, so one read.
    let other = Connection::open(&path).unwrap();
    other
        .execute_batch(
            "UPDATE sends SET expires_at = 9223372036854775807 WHERE retry_key = 'key-3'",
        )
        .unwrap();
    assert_eq!(
        slice_starts(&reader.conn, SinkKind::Outbox, since(now)).unwrap(),
        [since(now)]
    );
}

/// A row that cannot be read in the last slice (the other connection's) and one in the first:
/// the error is the first one a single read meets, and with only the last, that one.
#[test]
fn the_error_is_the_one_a_single_read_meets_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let ledger = Ledger::open(&path).unwrap();
    let expiry = |i: usize| format!("2026-12-{:02}T{:02}:00:00Z", 1 + i % 28, i % 24);
    write_sends(
        &path,
        500,
        expiry,
        |_| "2026-11-24T00:00:00Z".into(),
        |_| "sent",
    );
    let now = at("2026-11-25T09:00:00Z");
    let reader = ledger.sends_reader().unwrap();
    let other = Connection::open(&path).unwrap();
    let damage = |sql: &str| other.execute_batch(sql).unwrap();
    let expires = unix(at("2026-12-28T23:00:00Z"));
    damage(&format!(
        "UPDATE sends SET sent_at = 9223372036854775807 WHERE expires_at = {expires}"
    ));
    let messages = |reader: &SendsReader| {
        let one = ledger
            .recent_sends(SinkKind::Outbox, now, |_| {})
            .unwrap_err();
        let two = reader
            .recent_sends(SinkKind::Outbox, now, &mut |_| {})
            .unwrap_err();
        (one.to_string(), two.to_string())
    };
    let (one, two) = messages(&reader);
    assert!(one.contains("sent_at"), "{one}");
    assert_eq!(two, one);
    let expires = unix(at("2026-12-01T00:00:00Z"));
    damage(&format!(
        "UPDATE sends SET occurrence = 'soon' WHERE expires_at = {expires}"
    ));
    let (one, two) = messages(&reader);
    assert!(one.contains("occurrence"), "{one}");
    assert_eq!(two, one);
}

/// Ends eight thousand years apart, or one written with an offset: slices are cut without
/// overflow, each after the one before, and the rows are read once each, as one read reads
/// them.
#[test]
fn ends_far_apart_or_out_of_order_still_part_the_range() {
    for last in ["9999-12-31T23:59:59Z", "2026-11-26T01:00:00+09:00"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let ledger = Ledger::open(&path).unwrap();
        let expiry = |i: usize| match i {
            0 => last.to_owned(),
            _ => format!("2026-11-{:02}T{:02}:00:00Z", 18 + i % 8, i % 24),
        };
        write_sends(
            &path,
            300,
            expiry,
            |_| "2026-11-24T00:00:00Z".into(),
            |_| "sent",
        );
        let now = at("2026-11-25T09:00:00Z");
        let reader = ledger.sends_reader().unwrap();
        let starts = slice_starts(&reader.conn, SinkKind::Outbox, since(now)).unwrap();
        assert!(
            starts.windows(2).all(|pair| pair[0] < pair[1]),
            "{starts:?}"
        );
        let one = read_all(|each| ledger.recent_sends(SinkKind::Outbox, now, each).unwrap());
        let two = read_all(|each| {
            (reader.read_sliced(SinkKind::Outbox, now, 1, each)).unwrap();
        });
        assert_eq!(two, one, "{last}");
    }
}
