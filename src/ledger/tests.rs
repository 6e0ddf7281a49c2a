use super::*;

pub(crate) fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn key(sink: SinkKind, patient: &str) -> SendKey<'_> {
    SendKey {
        sink,
        patient,
        step: "thanks",
        occurrence: at("2026-11-21T01:00:00Z"),
    }
}

/// [`key`] in the outbox: the claims' and settling's tests work on outbox sends.
pub(super) fn outbox_key(patient: &str) -> SendKey<'_> {
    key(SinkKind::Outbox, patient)
}

/// Records `patient`'s send of `step` (occurrence 2026-11-24, expiring 2026-11-30) in the
/// outbox as sent on 2026-11-25 09:00 UTC, through a claim and its settling: the sent history
/// a pass reads (`recent_sends`) for the tests of its readers.
pub(crate) fn record_sent(ledger: &mut Ledger, patient: &str, step: &str) {
    let now = at("2026-11-25T09:00:00Z");
    let key = SendKey {
        sink: SinkKind::Outbox,
        patient,
        step,
        occurrence: at("2026-11-24T00:00:00Z"),
    };
    let details = SendDetails {
        template: "hello",
        variant: None,
        due_at: now,
        expires_at: at("2026-11-30T00:00:00Z"),
        outbox_from: None,
    };
    let Claim::New { retry_key } = ledger.claim(&key, &details, now).unwrap() else {
        panic!("claimed before");
    };
    let sent = Settlement::Sent {
        request_id: None,
        note: None,
    };
    ledger.settle(&key, &retry_key, 1, &sent, now).unwrap();
}

const DETAILS: SendDetails<'static> = SendDetails {
    template: "thanks",
    variant: None,
    due_at: DateTime::UNIX_EPOCH,
    expires_at: DateTime::UNIX_EPOCH,
    outbox_from: None,
};

fn sent() -> Settlement {
    Settlement::Sent {
        request_id: Some("req-1".into()),
        note: None,
    }
}

fn new_key(claim: Claim) -> String {
    match claim {
        Claim::New { retry_key } => retry_key,
        other => panic!("expected a new claim, got {other:?}"),
    }
}

#[test]
fn a_send_is_claimed_once_then_resumed_with_the_same_key_until_settled() {
    let dir = tempfile::tempdir().unwrap();
    let now = at("2026-11-21T01:00:00Z");
    let path = dir.path().join("nested/ledger.db");
    let mut ledger = Ledger::open(&path).unwrap();
    let retry_key = new_key(
        ledger
            .claim(&key(SinkKind::Line, "P1"), &DETAILS, now)
            .unwrap(),
    );
    ledger
        .settle(
            &key(SinkKind::Line, "P1"),
            &retry_key,
            1,
            &Settlement::RetryLater("500".into()),
            now,
        )
        .unwrap();
    // The process dies here; the next run finds the row pending with the same key.
    drop(ledger);
    let mut ledger = Ledger::open(&path).unwrap();
    assert_eq!(
        ledger
            .claim(&key(SinkKind::Line, "P1"), &DETAILS, now)
            .unwrap(),
        Claim::Resume {
            retry_key: retry_key.clone(),
            attempts: 1
        }
    );
    ledger
        .settle(&key(SinkKind::Line, "P1"), &retry_key, 1, &sent(), now)
        .unwrap();
    assert_eq!(
        ledger
            .claim(&key(SinkKind::Line, "P1"), &DETAILS, now)
            .unwrap(),
        Claim::Done(SendStatus::Sent)
    );
    let row = ledger.row(&key(SinkKind::Line, "P1")).unwrap().unwrap();
    assert_eq!(
        (row.status, row.line_request_id.as_deref(), row.attempts),
        (SendStatus::Sent, Some("req-1"), 2)
    );
}

#[test]
fn an_outbox_send_does_not_count_as_a_line_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let now = at("2026-11-21T01:00:00Z");
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let outbox = new_key(
        ledger
            .claim(&key(SinkKind::Outbox, "P1"), &DETAILS, now)
            .unwrap(),
    );
    ledger
        .settle(&key(SinkKind::Outbox, "P1"), &outbox, 1, &sent(), now)
        .unwrap();
    assert!(ledger.has_sent(SinkKind::Outbox).unwrap());
    assert!(!ledger.has_sent(SinkKind::Line).unwrap());
    let line = new_key(
        ledger
            .claim(&key(SinkKind::Line, "P1"), &DETAILS, now)
            .unwrap(),
    );
    assert_ne!(line, outbox, "a LINE send has a retry key of its own");
}

#[test]
fn a_held_send_is_tried_again_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let now = at("2026-11-21T01:00:00Z");
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let retry_key = new_key(
        ledger
            .claim(&key(SinkKind::Line, "P1"), &DETAILS, now)
            .unwrap(),
    );
    let why = Settlement::Held("template thanks failed".into());
    ledger
        .settle(&key(SinkKind::Line, "P1"), &retry_key, 0, &why, now)
        .unwrap();
    assert_eq!(
        ledger
            .claim(&key(SinkKind::Line, "P1"), &DETAILS, now)
            .unwrap(),
        Claim::Resume {
            retry_key,
            attempts: 0
        }
    );
}

#[test]
fn a_resumed_blocked_outbox_send_is_pending_from_the_outbox_end_of_its_resume() {
    let dir = tempfile::tempdir().unwrap();
    let now = at("2026-11-21T01:00:00Z");
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let details = |from: u64| SendDetails {
        expires_at: at("2026-11-30T00:00:00Z"),
        outbox_from: Some(from),
        ..DETAILS
    };
    let outbox = key(SinkKind::Outbox, "P1");
    let retry_key = new_key(ledger.claim(&outbox, &details(10), now).unwrap());
    ledger
        .settle(&outbox, &retry_key, 0, &Settlement::Blocked, now)
        .unwrap();
    // Blocked sends never wrote a line: recovery does not look for them.
    assert_eq!(
        ledger.pending_in_outbox().unwrap(),
        PendingInOutbox::default()
    );
    // The patient follows again; the next run resumes it with the outbox now at 5,000 bytes,
    // and dies before it settles: recovery looks from 5,000, not from 10.
    assert!(matches!(
        ledger.claim(&outbox, &details(5000), now).unwrap(),
        Claim::Resume { .. }
    ));
    let row = ledger.row(&outbox).unwrap().unwrap();
    assert_eq!(row.status, SendStatus::Pending);
    assert_eq!(
        ledger.pending_in_outbox().unwrap(),
        PendingInOutbox {
            keys: vec![retry_key],
            from: 5000
        }
    );
}

#[test]
fn an_unknown_status_is_an_error_not_a_resend() {
    let dir = tempfile::tempdir().unwrap();
    let now = at("2026-11-21T01:00:00Z");
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    new_key(
        ledger
            .claim(&key(SinkKind::Line, "P1"), &DETAILS, now)
            .unwrap(),
    );
    // As a newer steprule with one more status would leave it.
    ledger
        .conn
        .execute_batch("PRAGMA ignore_check_constraints = ON; UPDATE sends SET status = 'bounced';")
        .unwrap();
    let error = ledger
        .claim(&key(SinkKind::Line, "P1"), &DETAILS, now)
        .unwrap_err();
    assert!(
        matches!(&error, LedgerError::UnknownStatus { status, .. } if status == "bounced"),
        "{error}"
    );
    assert!(SendStatus::parse("bounced").is_err());
}

#[test]
fn open_rows_past_their_expiry_become_expired() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let details = SendDetails {
        expires_at: at("2026-11-22T01:00:00Z"),
        ..DETAILS
    };
    let now = at("2026-11-21T01:00:00Z");
    ledger
        .claim(&key(SinkKind::Line, "P1"), &details, now)
        .unwrap();
    let held = new_key(
        ledger
            .claim(&key(SinkKind::Line, "P2"), &details, now)
            .unwrap(),
    );
    ledger
        .settle(
            &key(SinkKind::Line, "P2"),
            &held,
            0,
            &Settlement::Held("x".into()),
            now,
        )
        .unwrap();
    assert_eq!(ledger.expire_open(SinkKind::Line, now).unwrap(), 0);
    let later = at("2026-11-22T01:00:00Z");
    assert_eq!(ledger.expire_open(SinkKind::Outbox, later).unwrap(), 0);
    assert_eq!(ledger.expire_open(SinkKind::Line, later).unwrap(), 2);
    assert_eq!(ledger.status_counts().unwrap(), [(SendStatus::Expired, 2)]);
}

#[test]
fn recent_sends_are_read_from_their_index_alone_not_a_scan_of_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let plan = ledger.query_plan(RECENT_SENDS);
    // Covering: the table itself is never visited (one B-tree search fewer per send).
    assert!(plan.contains("USING COVERING INDEX sends_live"), "{plan}");
    assert!(!plan.contains("SCAN sends"), "{plan}");
}

#[test]
fn a_plans_window_is_read_from_three_index_ranges_not_a_scan_of_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let mut statement = ledger
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", read::WINDOW_SENDS))
        .unwrap();
    let plan: Vec<String> = statement
        .query_map(params!["2026-01-01", "2026-01-08"], |row| row.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let plan = plan.join("; ");
    for index in ["sends_live", "sends_open", "sends_settled"] {
        assert!(
            plan.contains(&format!("INDEX {index} (sink=? AND expires_at>?)")),
            "{plan}"
        );
    }
    assert!(!plan.contains("SCAN sends"), "{plan}");
}

#[test]
fn a_plans_window_holds_every_status_still_sendable_at_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let now = at("2026-11-21T01:00:00Z");
    let outcomes = [
        ("P1", Some(sent())),
        ("P2", Some(Settlement::Failed("400".into()))),
        ("P3", Some(Settlement::Skipped("before start".into()))),
        ("P4", Some(Settlement::Held("template".into()))),
        ("P5", None),
    ];
    let details = SendDetails {
        expires_at: at("2026-11-22T01:00:00Z"),
        ..DETAILS
    };
    for (patient, settlement) in &outcomes {
        let retry_key = new_key(
            ledger
                .claim(&key(SinkKind::Line, patient), &details, now)
                .unwrap(),
        );
        if let Some(settlement) = settlement {
            ledger
                .settle(
                    &key(SinkKind::Line, patient),
                    &retry_key,
                    1,
                    settlement,
                    now,
                )
                .unwrap();
        }
    }
    let read = |from: &str, to: &str| {
        let mut found = Vec::new();
        ledger
            .sends_in_window(at(from), at(to), |send| {
                found.push(format!("{} {}", send.patient, send.status.as_str()));
            })
            .unwrap();
        found.sort();
        found
    };
    assert_eq!(
        read("2026-11-21T00:00:00Z", "2026-11-28T00:00:00Z"),
        [
            "P1 sent",
            "P2 failed",
            "P3 skipped",
            "P4 held",
            "P5 pending"
        ]
    );
    // Expired by the window's start, or occurring from its end on: nothing.
    assert!(read("2026-11-22T01:00:00Z", "2026-11-28T00:00:00Z").is_empty());
    assert!(read("2026-11-20T00:00:00Z", "2026-11-21T01:00:00Z").is_empty());
}

#[test]
fn recent_sends_are_the_live_and_the_last_eight_days() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let now = at("2026-11-25T01:00:00Z");
    let mut send = |patient: &str, sent_at: &str, expires: &str| {
        let details = SendDetails {
            expires_at: at(expires),
            ..DETAILS
        };
        let retry_key = new_key(
            ledger
                .claim(&key(SinkKind::Line, patient), &details, at(sent_at))
                .unwrap(),
        );
        ledger
            .settle(
                &key(SinkKind::Line, patient),
                &retry_key,
                1,
                &sent(),
                at(sent_at),
            )
            .unwrap();
    };
    send("old", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z");
    send("week", "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z");
    send("live", "2026-10-01T00:00:00Z", "2026-12-01T00:00:00Z");
    let mut found = Vec::new();
    ledger
        .recent_sends(SinkKind::Line, now, |s| found.push(s.patient.to_owned()))
        .unwrap();
    found.sort();
    assert_eq!(found, ["live", "week"]);
}

#[test]
fn migrations_run_once_and_version_one_rows_keep_their_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO sends VALUES
             ('P1','thanks','2026-11-21T01:00:00Z',NULL,'thanks','sent','k1',1,
              '2026-11-21T01:00:00Z','2026-11-22T01:00:00Z','2026-11-21T01:00:00Z',
              '2026-11-21T01:00:00Z','2026-11-21T01:00:00Z','req-1',NULL),
             ('P2','thanks','2026-11-21T01:00:00Z',NULL,'thanks','sent','k2',1,
              '2026-11-21T01:00:00Z','2026-11-22T01:00:00Z','2026-11-21T01:00:00Z',
              '2026-11-21T01:00:00Z','2026-11-21T01:00:00Z',NULL,NULL),
             ('P3','thanks','2026-11-21T01:00:00Z',NULL,'thanks','skipped','k3',0,
              '2026-11-21T01:00:00Z','2026-11-22T01:00:00Z','2026-11-21T01:00:00Z',
              '2026-11-21T01:00:00Z',NULL,NULL,'template thanks failed: undefined value');",
        )
        .unwrap();
    }
    Ledger::open(&path).unwrap();
    let ledger = Ledger::open(&path).unwrap();
    let version: usize = ledger
        .conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, MIGRATIONS.len());
    let status = |sink, patient| ledger.row(&key(sink, patient)).unwrap().map(|r| r.status);
    assert_eq!(status(SinkKind::Line, "P1"), Some(SendStatus::Sent));
    assert_eq!(status(SinkKind::Outbox, "P2"), Some(SendStatus::Sent));
    assert_eq!(status(SinkKind::Line, "P3"), Some(SendStatus::Held));
}

#[test]
fn a_file_that_is_not_a_ledger_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let error = Ledger::open(&path).err().unwrap().to_string();
    assert!(error.contains("l.db"), "{error}");
    assert!(error.contains("not a steprule ledger"), "{error}");
}

#[test]
fn a_ledger_deleted_under_a_run_is_noticed_at_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let mut ledger = Ledger::open(&path).unwrap();
    ledger.begin().unwrap();
    ledger.commit().unwrap();
    std::fs::remove_file(&path).unwrap();
    ledger.begin().unwrap();
    assert!(matches!(ledger.commit(), Err(LedgerError::Replaced { .. })));
}

#[test]
fn the_ledger_and_its_companions_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private/l.db");
    let mut ledger = Ledger::open(&path).unwrap();
    ledger
        .claim(&key(SinkKind::Line, "P1"), &DETAILS, DateTime::UNIX_EPOCH)
        .unwrap();
    for file in ["l.db", "l.db-wal", "l.db-shm"] {
        let mode = std::fs::metadata(dir.path().join("private").join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
}

#[test]
fn a_damaged_ledger_is_named_with_how_to_recover_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    {
        let mut ledger = Ledger::open(&path).unwrap();
        ledger.begin().unwrap();
        for i in 0..2000 {
            let patient = format!("P{i:05}");
            ledger
                .claim(
                    &key(SinkKind::Line, &patient),
                    &DETAILS,
                    DateTime::UNIX_EPOCH,
                )
                .unwrap();
        }
        ledger.commit().unwrap();
        ledger
            .conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    let page = 4096;
    let end = bytes.len() - page;
    for byte in &mut bytes[3 * page..end] {
        *byte = 0x5a;
    }
    std::fs::write(&path, bytes).unwrap();
    let error = Ledger::open(&path)
        .and_then(|ledger| ledger.step_counts().map(|_| ()))
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, LedgerError::Corrupt { .. }), "{message}");
    assert!(
        message.contains("l.db") && message.contains(".recover"),
        "{message}"
    );
}

#[test]
fn the_outbox_is_read_from_the_earliest_open_claim() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let now = at("2026-11-21T01:00:00Z");
    assert_eq!(
        ledger.pending_in_outbox().unwrap(),
        PendingInOutbox::default()
    );
    let claim = |ledger: &mut Ledger, patient: &str, from: u64| {
        let details = SendDetails {
            outbox_from: Some(from),
            ..DETAILS
        };
        new_key(
            ledger
                .claim(&key(SinkKind::Outbox, patient), &details, now)
                .unwrap(),
        )
    };
    let first = claim(&mut ledger, "P1", 500);
    let second = claim(&mut ledger, "P2", 900);
    let done = claim(&mut ledger, "P3", 100);
    ledger
        .settle(&key(SinkKind::Outbox, "P3"), &done, 1, &sent(), now)
        .unwrap();
    let pending = ledger.pending_in_outbox().unwrap();
    assert_eq!(pending.from, 500, "a settled row no longer counts");
    let mut keys = pending.keys;
    keys.sort();
    let mut want = vec![first, second];
    want.sort();
    assert_eq!(keys, want);
}

#[test]
fn problems_are_the_failed_held_and_expired_sends_and_a_held_one_that_went_out_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let now = at("2026-11-21T01:00:00Z");
    let claimed = |ledger: &mut Ledger, patient: &'static str| {
        new_key(
            ledger
                .claim(&key(SinkKind::Line, patient), &DETAILS, now)
                .unwrap(),
        )
    };
    let failed = claimed(&mut ledger, "P1");
    let held = claimed(&mut ledger, "P2");
    let sent = claimed(&mut ledger, "P3");
    let settle = |ledger: &mut Ledger, patient, retry_key: &str, settlement: Settlement| {
        ledger
            .settle(
                &key(SinkKind::Line, patient),
                retry_key,
                1,
                &settlement,
                now,
            )
            .unwrap();
    };
    settle(
        &mut ledger,
        "P1",
        &failed,
        Settlement::Failed("refused".into()),
    );
    settle(
        &mut ledger,
        "P2",
        &held,
        Settlement::Held("template".into()),
    );
    settle(
        &mut ledger,
        "P3",
        &sent,
        Settlement::Sent {
            request_id: None,
            note: None,
        },
    );
    let patients = |ledger: &Ledger| -> Vec<(String, SendStatus)> {
        let mut found: Vec<_> = (ledger.latest_problems(10).unwrap().into_iter())
            .map(|p| (p.patient, p.status))
            .collect();
        found.sort();
        found
    };
    assert_eq!(
        patients(&ledger),
        [
            ("P1".into(), SendStatus::Failed),
            ("P2".into(), SendStatus::Held)
        ]
    );
    // The held send is taken up again and goes out: no longer a problem.
    let Claim::Resume { retry_key, .. } = ledger
        .claim(&key(SinkKind::Line, "P2"), &DETAILS, now)
        .unwrap()
    else {
        panic!("a held send is resumed");
    };
    settle(
        &mut ledger,
        "P2",
        &retry_key,
        Settlement::Sent {
            request_id: None,
            note: None,
        },
    );
    assert_eq!(patients(&ledger), [("P1".into(), SendStatus::Failed)]);
}
