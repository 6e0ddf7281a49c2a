//! The write path of a pass and what it reads back: [`Ledger::settle_sent`] marks many sends
//! sent with one statement per chunk, as [`Ledger::settle`] marks each; stamps are read back
//! without chrono's general parser where they are in the ledger's own form; an outbox send
//! recorded sent with its claim reads as one claimed and then settled, and a batch whose lines
//! a crash cut short is reopened where its lines are missing.

use super::*;
use crate::ledger::instants::stamp_fast;
use crate::ledger::tests::{at, outbox_key as key};

fn details() -> SendDetails<'static> {
    SendDetails {
        template: "thanks",
        variant: None,
        due_at: at("2026-11-21T01:00:00Z"),
        expires_at: at("2026-11-22T01:00:00Z"),
        outbox_from: Some(0),
    }
}

#[test]
fn sends_settled_together_read_as_sends_settled_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let now = at("2026-11-21T01:00:00Z");
    // 300 sends: chunks of 256, 32, 8 and 4.
    let patients: Vec<String> = (0..303).map(|i| format!("P{i:04}")).collect();
    let mut keys = Vec::new();
    for patient in &patients {
        match ledger.claim(&key(patient), &details(), now).unwrap() {
            Claim::New { retry_key } => keys.push(retry_key),
            other => panic!("a new claim: {other:?}"),
        }
    }
    // The first one failed before (its error goes), the last three are left alone, and one
    // names another retry key: not the claimed row, so not settled.
    let failed = Settlement::RetryLater("500".into());
    ledger
        .settle(&key(&patients[0]), &keys[0], 1, &failed, now)
        .unwrap();
    let mut sent: Vec<(SendKey<'_>, &str)> = (0..300)
        .map(|i| (key(&patients[i]), keys[i].as_str()))
        .collect();
    sent[7].1 = "another-key";
    let later = at("2026-11-21T01:00:05Z");
    ledger.begin().unwrap();
    ledger.settle_sent(&sent, 1, later).unwrap();
    ledger.commit().unwrap();
    // Settled one by one, for comparison.
    let mut one = Ledger::open(&dir.path().join("one.db")).unwrap();
    let retry_key = match one.claim(&key("P0001"), &details(), now).unwrap() {
        Claim::New { retry_key } => retry_key,
        other => panic!("a new claim: {other:?}"),
    };
    let plain = Settlement::Sent {
        request_id: None,
        note: None,
    };
    one.settle(&key("P0001"), &retry_key, 1, &plain, later)
        .unwrap();
    let expected = one.row(&key("P0001")).unwrap().unwrap();
    let status = |patient: &str| ledger.row(&key(patient)).unwrap().unwrap();
    for (i, patient) in patients.iter().enumerate() {
        let row = status(patient);
        match i {
            0 => assert_eq!(
                (row.status, row.attempts, row.last_error),
                (SendStatus::Sent, 2, None)
            ),
            7 | 300.. => assert_eq!((row.status, row.attempts), (SendStatus::Pending, 0), "{i}"),
            _ => assert_eq!(
                (
                    row.status,
                    row.attempts,
                    row.last_error,
                    row.line_request_id,
                    row.note
                ),
                (expected.status, 1, None, None, None),
                "{i}"
            ),
        }
    }
    let sent_at: Vec<String> = ledger
        .conn
        .prepare("SELECT DISTINCT sent_at || ' ' || updated_at FROM sends WHERE status = 'sent'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let sent = crate::ledger::unix(at("2026-11-21T01:00:05Z"));
    assert_eq!(sent_at, [format!("{sent} {sent}")]);
    // The history a rerun reads (through `sends_live`) has every one of them, and the open
    // rows (through `sends_open`) are the ones left pending.
    let mut recent = 0;
    ledger
        .recent_sends(SinkKind::Outbox, later, |_| recent += 1)
        .unwrap();
    assert_eq!(recent, 299);
    assert_eq!(ledger.pending_in_outbox().unwrap().keys.len(), 4);
}

#[test]
fn stamps_read_back_as_chrono_reads_them() {
    for instant in [
        "2026-11-25T09:00:00Z",
        "1999-12-31T23:59:59Z",
        "2028-02-29T00:00:01Z",
        "0001-01-01T00:00:00Z",
    ] {
        let expected = DateTime::parse_from_rfc3339(instant)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(stamp_fast(instant), Some(expected), "{instant}");
        assert_eq!(stamp(expected), instant);
    }
    // Not the ledger's own form: left to chrono, which reads what it can.
    for other in [
        "2026-11-25T09:00:00+09:00",
        "2026-11-25T09:00:00.5Z",
        "2026-11-25T23:59:60Z",
        "2026-11-25 09:00:00Z",
        "2026-02-30T09:00:00Z",
        "2026-1a-25T09:00:00Z",
        "+026-11-25T09:00:00Z",
    ] {
        assert_eq!(stamp_fast(other), None, "{other}");
        let chrono = DateTime::parse_from_rfc3339(other)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        assert_eq!(parse_stamp(other), chrono, "{other}");
    }
}

/// Every column of a row but its retry key, as text.
fn columns(ledger: &Ledger, patient: &str) -> Vec<String> {
    let sql = "SELECT sink, patient, step, occurrence, variant, template, status, attempts,
                      due_at, expires_at, created_at, updated_at, sent_at, line_request_id,
                      last_error, note, outbox_from, problem, problem_at
               FROM sends WHERE patient = ?1";
    let row = |row: &rusqlite::Row<'_>| {
        (0..19)
            .map(|i| {
                row.get::<_, rusqlite::types::Value>(i)
                    .map(|v| format!("{v:?}"))
            })
            .collect::<rusqlite::Result<Vec<_>>>()
    };
    ledger.conn.query_row(sql, [patient], row).unwrap()
}

#[test]
fn an_outbox_send_recorded_with_its_claim_reads_as_one_claimed_then_settled() {
    let dir = tempfile::tempdir().unwrap();
    let now = at("2026-11-21T01:00:00Z");
    let later = at("2026-11-21T01:00:05Z");
    let plain = Settlement::Sent {
        request_id: None,
        note: None,
    };
    // Two steps: claimed pending, settled once written.
    let mut two = Ledger::open(&dir.path().join("two.db")).unwrap();
    two.begin().unwrap();
    let claims = two.claim_all(&[(key("P1"), details())], now).unwrap();
    let Claim::New { retry_key } = &claims[0] else {
        panic!("{claims:?}")
    };
    two.settle(&key("P1"), retry_key, 1, &plain, later).unwrap();
    two.commit().unwrap();
    // One step: the claim's answer, then the row written sent.
    let mut one = Ledger::open(&dir.path().join("one.db")).unwrap();
    one.begin().unwrap();
    let claims = one
        .claim_unrecorded(&[(key("P1"), details())], now)
        .unwrap();
    let Claim::New { retry_key } = &claims[0] else {
        panic!("{claims:?}")
    };
    assert!(one.row(&key("P1")).unwrap().is_none(), "not written yet");
    let batch = UnwrittenBatch {
        from: 0,
        sent_at: later,
    };
    let rows = [(key("P1"), details(), retry_key.as_str())];
    one.record_claims(&rows, Some(batch), now).unwrap();
    one.commit().unwrap();
    assert_eq!(&one.row(&key("P1")).unwrap().unwrap().retry_key, retry_key);
    assert_eq!(columns(&one, "P1"), columns(&two, "P1"));
    // A claim of it now finds it sent.
    let again = one.claim_unrecorded(&[(key("P1"), details())], now);
    assert_eq!(again.unwrap(), [Claim::Done(SendStatus::Sent)]);
}

#[test]
fn a_batch_whose_lines_were_not_written_is_reopened_and_its_mark_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let now = at("2026-11-21T01:00:00Z");
    let details_from = |from: u64| SendDetails {
        outbox_from: Some(from),
        ..details()
    };
    // An earlier run's send from the same place in the outbox (before a rotation), sent
    // earlier: not of the batch.
    ledger.begin().unwrap();
    let earlier = UnwrittenBatch {
        from: 700,
        sent_at: at("2026-11-20T01:00:00Z"),
    };
    let old = [(key("P0"), details_from(700), "key-0")];
    ledger.record_claims(&old, Some(earlier), now).unwrap();
    ledger.lines_written().unwrap();
    ledger.commit().unwrap();
    assert_eq!(ledger.unwritten_keys().unwrap(), None);
    // The batch: three sends whose lines begin at byte 700.
    ledger.begin().unwrap();
    let batch = UnwrittenBatch {
        from: 700,
        sent_at: now,
    };
    let rows = [
        (key("P1"), details_from(700), "key-1"),
        (key("P2"), details_from(700), "key-2"),
    ];
    ledger.record_claims(&rows, Some(batch), now).unwrap();
    // A second statement of the same batch, a second later: the first mark stays.
    let later = UnwrittenBatch {
        from: 700,
        sent_at: at("2026-11-21T01:00:01Z"),
    };
    let rows = [(key("P3"), details_from(700), "key-3")];
    ledger.record_claims(&rows, Some(later), now).unwrap();
    ledger.commit().unwrap();
    let (from, mut keys) = ledger.unwritten_keys().unwrap().unwrap();
    keys.sort();
    assert_eq!(
        (from, keys),
        (700, vec!["key-1".into(), "key-2".into(), "key-3".into()])
    );

    // Only key-2's line made it to the outbox.
    ledger.begin().unwrap();
    let reopened = ledger
        .recover_unwritten(&|key| key == "key-2", at("2026-11-25T09:00:00Z"))
        .unwrap();
    ledger.commit().unwrap();
    assert_eq!(reopened, 2);
    let state = |patient: &str| {
        let row = ledger.row(&key(patient)).unwrap().unwrap();
        (row.status, row.attempts, row.retry_key)
    };
    assert_eq!(state("P0"), (SendStatus::Sent, 1, "key-0".into()));
    assert_eq!(state("P1"), (SendStatus::Pending, 0, "key-1".into()));
    assert_eq!(state("P2"), (SendStatus::Sent, 1, "key-2".into()));
    assert_eq!(state("P3"), (SendStatus::Pending, 0, "key-3".into()));
    let sent_at = |patient: &str| columns(&ledger, patient)[12].clone();
    assert_eq!(sent_at("P1"), "Null");
    // Pending again, they are where the next run looks for their lines, and the mark is gone.
    let mut pending = ledger.pending_in_outbox().unwrap();
    pending.keys.sort();
    assert_eq!(
        (pending.keys, pending.from),
        (vec!["key-1".into(), "key-3".into()], 700)
    );
    assert_eq!(ledger.unwritten_keys().unwrap(), None);
    assert_eq!(ledger.recover_unwritten(&|_| false, now).unwrap(), 0);
}
