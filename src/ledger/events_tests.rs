use super::*;
use crate::ledger::{Claim, FriendChange, SendDetails, SendStatus, Settlement};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn event<'a>(id: &'a str, kind: EventKind, when: &str) -> NewEvent<'a> {
    NewEvent {
        id,
        kind,
        at: at(when),
        line_user: Some("U0001"),
        patient: None,
        send: None,
        detail: None,
    }
}

fn sent(ledger: &mut Ledger, patient: &str, step: &str, sent_at: &str) {
    let key = SendKey {
        sink: SinkKind::Line,
        patient,
        step,
        occurrence: at(sent_at),
    };
    let details = SendDetails {
        template: step,
        variant: None,
        due_at: at(sent_at),
        expires_at: at("2030-01-01T00:00:00Z"),
        outbox_from: None,
    };
    let Claim::New { retry_key } = ledger.claim(&key, &details, at(sent_at)).unwrap() else {
        panic!("claimed twice")
    };
    let settled = Settlement::Sent {
        request_id: Some("r".into()),
        note: None,
    };
    ledger
        .settle(&key, &retry_key, 1, &settled, at(sent_at))
        .unwrap();
}

#[test]
fn a_redelivered_event_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let now = at("2026-11-26T00:00:00Z");
    let follow = event(
        "01J0000000000000000000000A",
        EventKind::Follow,
        "2026-11-25T23:59:59.123Z",
    );
    assert!(ledger.record_event(&follow, now).unwrap());
    assert!(!ledger.record_event(&follow, now).unwrap());
    let mut listed = Vec::new();
    ledger
        .events(&EventFilter::default(), |e| {
            listed.push(e);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kind, EventKind::Follow);
    assert_eq!(listed[0].at, at("2026-11-25T23:59:59.123Z"));
}

#[test]
fn events_are_listed_in_time_order_by_type_and_since() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let now = at("2026-11-26T00:00:00Z");
    // Stored out of order, with and without milliseconds: listed in time order.
    for (id, kind, when) in [
        ("c", EventKind::Unfollow, "2026-11-25T10:00:00Z"),
        ("a", EventKind::Follow, "2026-11-25T09:00:00.500Z"),
        ("b", EventKind::Follow, "2026-11-25T09:00:00Z"),
    ] {
        ledger.record_event(&event(id, kind, when), now).unwrap();
    }
    let list = |filter: EventFilter| {
        let mut ids = Vec::new();
        ledger
            .events(&filter, |e| {
                ids.push(e.id);
                ControlFlow::Continue(())
            })
            .unwrap();
        ids
    };
    assert_eq!(list(EventFilter::default()), ["b", "a", "c"]);
    let follows = EventFilter {
        kind: Some(EventKind::Follow),
        since: None,
    };
    assert_eq!(list(follows), ["b", "a"]);
    let since = EventFilter {
        kind: None,
        since: Some(at("2026-11-25T09:00:00.400Z")),
    };
    assert_eq!(list(since), ["a", "c"]);
}

#[test]
fn a_listing_stops_when_its_reader_has_had_enough() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let now = at("2026-11-26T00:00:00Z");
    for i in 0..100 {
        let id = format!("e{i:03}");
        ledger
            .record_event(&event(&id, EventKind::Click, "2026-11-25T09:00:00Z"), now)
            .unwrap();
    }
    let mut seen = 0;
    ledger
        .events(&EventFilter::default(), |_| {
            seen += 1;
            if seen == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(seen, 3);
}

#[test]
fn an_unfollow_is_put_down_to_the_last_send_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    sent(&mut ledger, "P1", "welcome", "2026-11-20T01:00:00Z");
    sent(&mut ledger, "P1", "reminder", "2026-11-23T01:00:00Z");
    sent(&mut ledger, "P2", "other", "2026-11-24T01:00:00Z");
    let window = chrono::Duration::hours(72);
    let blamed = ledger
        .last_send_before("P1", at("2026-11-24T12:00:00Z"), window)
        .unwrap()
        .unwrap();
    assert_eq!(blamed.step, "reminder");
    assert_eq!(blamed.sink, SinkKind::Line);
    // A send after the unfollow is not its cause; one older than 72 hours is not either.
    let before = ledger
        .last_send_before("P1", at("2026-11-22T12:00:00Z"), window)
        .unwrap();
    assert_eq!(before.unwrap().step, "welcome");
    assert_eq!(
        ledger
            .last_send_before("P1", at("2026-11-30T12:00:00Z"), window)
            .unwrap(),
        None
    );
}

#[test]
fn a_tracked_token_leads_back_to_its_send() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let key = SendKey {
        sink: SinkKind::Outbox,
        patient: "P1",
        step: "followup",
        occurrence: at("2026-11-20T01:00:00Z"),
    };
    let now = at("2026-11-20T01:00:00Z");
    ledger
        .track(
            "tok",
            TrackKind::Url,
            &key,
            "https://clinic.example/book",
            now,
        )
        .unwrap();
    let found = ledger.tracked("tok").unwrap().unwrap();
    assert_eq!(found.kind, TrackKind::Url);
    assert_eq!(found.target, "https://clinic.example/book");
    assert_eq!(found.send.patient, "P1");
    assert_eq!(found.send.sink, SinkKind::Outbox);
    assert_eq!(found.send.occurrence, key.occurrence);
    assert_eq!(ledger.tracked("other").unwrap(), None);
    // Tokens are unique: a second send cannot take the same one.
    assert!(ledger
        .track("tok", TrackKind::Url, &key, "https://x.example", now)
        .is_err());
}

#[test]
fn a_sends_tokens_are_read_back_through_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let key = |patient| SendKey {
        sink: SinkKind::Line,
        patient,
        step: "followup",
        occurrence: at("2026-11-20T01:00:00Z"),
    };
    let now = at("2026-11-20T01:00:00Z");
    ledger
        .track("t1", TrackKind::Url, &key("P1"), "https://x.example/a", now)
        .unwrap();
    ledger
        .track("t2", TrackKind::Postback, &key("P1"), "answer=yes", now)
        .unwrap();
    ledger
        .track("t3", TrackKind::Url, &key("P2"), "https://x.example/a", now)
        .unwrap();
    let mut found = ledger.tracked_for(&key("P1")).unwrap();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        found,
        [
            (
                "t1".to_owned(),
                TrackKind::Url,
                "https://x.example/a".to_owned()
            ),
            (
                "t2".to_owned(),
                TrackKind::Postback,
                "answer=yes".to_owned()
            ),
        ]
    );
    let other_sink = SendKey {
        sink: SinkKind::Outbox,
        ..key("P1")
    };
    assert_eq!(ledger.tracked_for(&other_sink).unwrap(), []);
    // Through the index: a resumed claim costs its own tokens, not the whole table's.
    let plan: String = ledger
        .conn
        .query_row(
            &format!("EXPLAIN QUERY PLAN {TRACKED_FOR}"),
            params!["line", "P1", "followup", "x"],
            |row| row.get(3),
        )
        .unwrap();
    assert!(plan.contains("USING INDEX tracked_send"), "{plan}");
}

#[test]
fn a_blocked_send_stays_open_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let key = SendKey {
        sink: SinkKind::Line,
        patient: "P1",
        step: "followup",
        occurrence: at("2026-11-20T01:00:00Z"),
    };
    let details = SendDetails {
        template: "followup",
        variant: None,
        due_at: at("2026-11-20T01:00:00Z"),
        expires_at: at("2026-11-23T01:00:00Z"),
        outbox_from: None,
    };
    let now = at("2026-11-20T02:00:00Z");
    let Claim::New { retry_key } = ledger.claim(&key, &details, now).unwrap() else {
        panic!()
    };
    ledger
        .settle(&key, &retry_key, 0, &Settlement::Blocked, now)
        .unwrap();
    assert_eq!(
        ledger.row(&key).unwrap().unwrap().status,
        SendStatus::Blocked
    );
    assert!(matches!(
        ledger.claim(&key, &details, now).unwrap(),
        Claim::Resume { retry_key: again, .. } if again == retry_key
    ));
    assert_eq!(ledger.pending_in_outbox().unwrap().keys.len(), 0);
    ledger
        .expire_open(SinkKind::Line, at("2026-11-23T01:00:00Z"))
        .unwrap();
    assert_eq!(
        ledger.row(&key).unwrap().unwrap().status,
        SendStatus::Expired
    );
    // Friends are a separate table; a block does not touch sends by itself.
    assert!(ledger.set_friend("U1", FriendChange::Blocked, now).unwrap());
}
