//! `serve`'s tables on PostgreSQL: an event stored once however many instances receive it,
//! friends, links, linking attempts, tracked tokens, unit uses and the reactions' reads, each
//! clinic's apart. Skipped (with a notice) without PostgreSQL, unless
//! `STEPRULE_REQUIRE_POSTGRES=1`.

#![allow(clippy::unwrap_used)]

use std::ops::ControlFlow;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use super::pg;
use super::PgLedger;
use crate::ledger::{
    Claim, EventFilter, EventKind, FriendChange, NewEvent, RunLedger, SendDetails, SendKey,
    SendRef, ServeLedger, Settlement, SinkKind, TrackKind, UnitUse,
};

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn open(url: &str, clinic: &str) -> PgLedger {
    let name = format!("test-serve-{}", uuid::Uuid::new_v4().simple());
    PgLedger::open_as(url, clinic, Duration::from_secs(60), name).unwrap()
}

fn follow(id: &str) -> NewEvent<'_> {
    NewEvent {
        id,
        kind: EventKind::Follow,
        at: at("2026-11-25T10:00:00.250Z"),
        line_user: Some("U1"),
        patient: None,
        send: None,
        detail: None,
    }
}

fn events(ledger: &dyn ServeLedger, filter: &EventFilter) -> Vec<(String, EventKind)> {
    let mut seen = Vec::new();
    ledger
        .events(filter, &mut |event| {
            seen.push((event.id, event.kind));
            ControlFlow::Continue(())
        })
        .unwrap();
    seen
}

#[test]
fn an_event_two_instances_receive_is_stored_once_per_clinic() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("serve_events");
    let now = at("2026-11-25T10:00:01Z");
    let (mut first, mut second) = (open(&url, "sakura"), open(&url, "sakura"));
    let mut other = open(&url, "momo");
    // The second instance's insert waits for the first's transaction, then finds the event.
    first.begin().unwrap();
    assert!(first.record_event(&follow("01E"), now).unwrap());
    let waiting = std::thread::spawn(move || {
        second.begin().unwrap();
        let stored = second.record_event(&follow("01E"), now).unwrap();
        second.commit().unwrap();
        stored
    });
    std::thread::sleep(Duration::from_millis(200));
    first.commit().unwrap();
    assert!(!waiting.join().unwrap(), "the redelivery is not new");
    // Another clinic's event of the same id is its own.
    assert!(other.record_event(&follow("01E"), now).unwrap());
    let all = EventFilter::default();
    assert_eq!(
        events(&first, &all),
        [("01E".to_owned(), EventKind::Follow)]
    );
    assert_eq!(events(&other, &all).len(), 1);
    let later = EventFilter {
        kind: None,
        since: Some(at("2026-11-25T10:00:00.251Z")),
    };
    assert!(events(&first, &later).is_empty());
    let clicks = EventFilter {
        kind: Some(EventKind::Click),
        since: None,
    };
    assert!(events(&first, &clicks).is_empty());
}

#[test]
fn friends_links_and_attempts_mirror_the_sqlite_ledger() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("serve_friends");
    let mut ledger = open(&url, "sakura");
    let other = open(&url, "momo");
    let blocked = |ledger: &PgLedger| {
        let mut users = Vec::new();
        ledger
            .blocked_users(&mut |u| users.push(u.to_owned()))
            .unwrap();
        users
    };
    let blocked_at = at("2026-11-25T10:00:00.200Z");
    assert!(ledger
        .set_friend("U1", FriendChange::Blocked, blocked_at)
        .unwrap());
    // A follow from before the block, redelivered late: the block stands.
    assert!(!ledger
        .set_friend("U1", FriendChange::Followed, at("2026-11-25T10:00:00.100Z"))
        .unwrap());
    assert!(ledger.is_blocked("U1").unwrap());
    assert_eq!(
        ledger.friend_state("U1").unwrap().unwrap().since,
        blocked_at
    );
    assert_eq!(blocked(&ledger), ["U1"]);
    assert!(blocked(&other).is_empty(), "another clinic's block");
    assert!(ledger
        .set_friend("U1", FriendChange::Followed, at("2026-11-26T08:00:00Z"))
        .unwrap());
    assert!(blocked(&ledger).is_empty());

    ledger.link("U1", "P1", at("2026-11-25T10:00:00Z")).unwrap();
    ledger.link("U2", "P1", at("2026-11-25T11:00:00Z")).unwrap();
    ledger.link("U3", "P2", at("2026-11-25T09:00:00Z")).unwrap();
    assert_eq!(ledger.linked_patient("U1").unwrap().as_deref(), Some("P1"));
    assert_eq!(other.linked_patient("U1").unwrap(), None);
    let mut links = Vec::new();
    ledger
        .links(&mut |patient, user| links.push((patient.to_owned(), user.to_owned())))
        .unwrap();
    let expected = [("P1", "U1"), ("P1", "U2"), ("P2", "U3")];
    let expected: Vec<(String, String)> = (expected.iter())
        .map(|(p, u)| ((*p).to_owned(), (*u).to_owned()))
        .collect();
    assert_eq!(links, expected, "each patient's latest link last");
    let of_p1: Vec<String> = (ledger.links_of("P1").unwrap().into_iter())
        .map(|link| link.line_user)
        .collect();
    assert_eq!(of_p1, ["U1", "U2"]);

    for expected in 1..=3 {
        let attempts = ledger.add_link_failure("U9", "2026-11-25").unwrap();
        assert_eq!(attempts.failures, expected);
    }
    assert_eq!(
        ledger.link_attempts("U9", "2026-11-25").unwrap().failures,
        3
    );
    assert_eq!(other.link_attempts("U9", "2026-11-25").unwrap().failures, 0);
    assert_eq!(
        ledger
            .add_link_failure("U9", "2026-11-26")
            .unwrap()
            .failures,
        1
    );
    assert_eq!(
        ledger.link_attempts("U9", "2026-11-25").unwrap().failures,
        0
    );
}

#[test]
fn tokens_unit_uses_and_the_reactions_reads_are_the_clinics_own() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("serve_tracking");
    let mut ledger = open(&url, "sakura");
    let other = open(&url, "momo");
    let sent_at = at("2026-11-20T03:00:00Z");
    let key = SendKey {
        sink: SinkKind::Line,
        patient: "P1",
        step: "survey",
        occurrence: sent_at,
    };
    let details = SendDetails {
        template: "survey",
        variant: None,
        due_at: sent_at,
        expires_at: sent_at + chrono::Duration::days(1),
        outbox_from: None,
    };
    let Claim::New { retry_key } = ledger.claim(&key, &details, sent_at).unwrap() else {
        panic!("a new claim")
    };
    ledger
        .track("tokA", TrackKind::Url, &key, "https://x.example/", sent_at)
        .unwrap();
    ledger
        .track("tokB", TrackKind::Postback, &key, "answer=yes", sent_at)
        .unwrap();
    let sent = Settlement::Sent {
        request_id: Some("r".into()),
        note: None,
    };
    ledger.settle(&key, &retry_key, 1, &sent, sent_at).unwrap();
    let mut tokens = ledger.tracked_for(&key).unwrap();
    tokens.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        tokens,
        [
            ("tokA".into(), TrackKind::Url, "https://x.example/".into()),
            ("tokB".into(), TrackKind::Postback, "answer=yes".into())
        ]
    );
    let tracked = ledger.tracked("tokA").unwrap().unwrap();
    assert_eq!(
        (tracked.kind, tracked.send.step.as_str()),
        (TrackKind::Url, "survey")
    );
    assert_eq!(tracked.send.occurrence, sent_at);
    assert!(other.tracked("tokA").unwrap().is_none());

    // The unfollow's step, and the reactions' reads.
    let blamed = ledger
        .last_send_before(
            "P1",
            at("2026-11-21T00:00:00Z"),
            chrono::Duration::hours(72),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        (blamed.step.as_str(), blamed.occurrence),
        ("survey", sent_at)
    );
    let send = SendRef {
        sink: SinkKind::Line,
        patient: "P1".into(),
        step: "survey".into(),
        occurrence: sent_at,
    };
    let click = NewEvent {
        id: "click-1",
        kind: EventKind::Click,
        at: at("2026-11-20T05:00:00Z"),
        line_user: None,
        patient: None,
        send: Some(&send),
        detail: Some("https://x.example/"),
    };
    assert!(ledger.record_event(&click, click.at).unwrap());
    let since = at("2026-11-01T00:00:00Z");
    let mut delivered = Vec::new();
    ledger
        .delivered_since(since, &["survey", "other"], &mut |d| {
            delivered.push((d.patient.to_owned(), d.sent_at))
        })
        .unwrap();
    assert_eq!(delivered, [("P1".to_owned(), sent_at)]);
    let mut none = 0;
    other
        .delivered_since(since, &["survey"], &mut |_| none += 1)
        .unwrap();
    ledger
        .delivered_since(since, &[], &mut |_| none += 1)
        .unwrap();
    assert_eq!(none, 0);
    let mut clicks = Vec::new();
    ledger
        .patient_events(EventKind::Click, since, &mut |e| {
            clicks.push((
                e.patient.to_owned(),
                e.send.map(|(step, o)| (step.to_owned(), o)),
            ))
        })
        .unwrap();
    assert_eq!(
        clicks,
        [("P1".to_owned(), Some(("survey".to_owned(), sent_at)))]
    );
    // A `--now` far in the past reads from the beginning instead of failing.
    let mut all = 0;
    ledger
        .patient_events(EventKind::Click, DateTime::<Utc>::MIN_UTC, &mut |_| {
            all += 1
        })
        .unwrap();
    assert_eq!(all, 1);

    let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    let used = |first: &str, last: &str, sends| UnitUse {
        unit: "survey".into(),
        half_first: day("2026-11-16"),
        step: "survey".into(),
        variant: None,
        first_day: day(first),
        last_day: day(last),
        sends,
    };
    ledger
        .record_unit_uses(&[used("2026-11-20", "2026-11-20", 2)])
        .unwrap();
    ledger
        .record_unit_uses(&[used("2026-11-18", "2026-11-19", 3)])
        .unwrap();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let row = client
        .query_one(
            "SELECT first_day, last_day, sends FROM steprule_unit_uses WHERE clinic = 'sakura'",
            &[],
        )
        .unwrap();
    let (first, last, sends): (NaiveDate, NaiveDate, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (first, last, sends),
        (day("2026-11-18"), day("2026-11-20"), 5)
    );
}

#[test]
fn the_latest_events_come_oldest_first_and_pass_the_filter() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("serve_latest");
    let mut ledger = open(&url, "sakura");
    let now = at("2026-11-30T00:00:00Z");
    for (id, kind, when) in [
        ("e1", EventKind::Follow, "2026-11-25T09:00:00Z"),
        ("e2", EventKind::Unfollow, "2026-11-25T10:00:00Z"),
        ("e3", EventKind::Follow, "2026-11-26T09:00:00Z"),
        ("e4", EventKind::Follow, "2026-11-27T09:00:00.500Z"),
        ("e5", EventKind::Unfollow, "2026-11-28T09:00:00Z"),
    ] {
        let event = NewEvent {
            kind,
            at: at(when),
            ..follow(id)
        };
        ledger.record_event(&event, now).unwrap();
    }
    let list = |filter: EventFilter, limit: u64| {
        let mut ids = Vec::new();
        ledger
            .latest_events(&filter, limit, &mut |event| {
                ids.push(event.id);
                ControlFlow::Continue(())
            })
            .unwrap();
        ids
    };
    assert_eq!(list(EventFilter::default(), 2), ["e4", "e5"]);
    let follows = EventFilter {
        kind: Some(EventKind::Follow),
        since: Some(at("2026-11-25T12:00:00Z")),
    };
    assert_eq!(list(follows.clone(), 1), ["e4"]);
    assert_eq!(list(follows, 10), ["e3", "e4"]);
    assert_eq!(list(EventFilter::default(), 100).len(), 5);
}

#[test]
fn a_lost_connection_fails_what_was_in_flight_and_is_made_again() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("serve_reconnect");
    let mut ledger = open(&url, "sakura");
    let now = at("2026-11-25T10:00:01Z");
    ledger.reconnect_if_lost().unwrap();
    assert!(ledger.record_event(&follow("01A"), now).unwrap());
    // The server ends the connection (a restart, an administrator).
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert!(ledger.record_event(&follow("01B"), now).is_err());
    ledger.reconnect_if_lost().unwrap();
    assert!(ledger.record_event(&follow("01B"), now).unwrap());
    assert!(!ledger.record_event(&follow("01A"), now).unwrap());
    assert_eq!(ledger.clinic(), "sakura", "the same clinic's rows");
}

#[test]
fn a_constraint_violation_is_told_without_the_row_it_quotes() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("serve_violation");
    let mut ledger = open(&url, "sakura");
    let failed = ledger
        .client
        .get_mut()
        .execute(
            "INSERT INTO steprule_tracked (clinic, token, kind, sink, patient, step, occurrence,
                                           target, created_at)
             VALUES ('sakura', 'tok', 'url', 'line', 'P-SECRET-7', 'survey', now(), NULL, now())",
            &[],
        )
        .unwrap_err();
    let row = failed.as_db_error().and_then(|db| db.detail()).unwrap();
    assert!(
        row.contains("P-SECRET-7"),
        "PostgreSQL quotes the row: {row}"
    );
    let told = ledger.fail(failed).to_string();
    assert!(told.contains("23502"), "{told}");
    assert!(!told.contains("P-SECRET-7"), "{told}");
}
