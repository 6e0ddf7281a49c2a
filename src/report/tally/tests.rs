//! The crediting rules, on a ledger written through its own API as `run` and `serve` write it:
//! each case on an SQLite file, then on PostgreSQL (a fresh database on the test cluster of
//! tests/support/postgres.rs, when there is one), whose figures are grouped by the server.

use chrono::{DateTime, Utc};

use super::*;
use crate::ledger::postgres::{PgLedger, DEFAULT_LEASE};
use crate::ledger::{
    Claim, Ledger, NewEvent, ReadLedger, SendDetails, SendKey, SendRef, Settlement, SinkKind,
};
use crate::report::period::PeriodArgs;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn october() -> Period {
    PeriodArgs::Month("2026-10".into())
        .resolve(chrono_tz::Asia::Tokyo, at("2026-11-26T00:00:00Z"))
        .unwrap()
        .current
}

fn deliver(ledger: &mut dyn ReadLedger, sink: SinkKind, patient: &str, step: &str, sent_at: &str) {
    let key = SendKey {
        sink,
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
    let sent = Settlement::Sent {
        request_id: Some("r".into()),
        note: None,
    };
    ledger
        .settle(&key, &retry_key, 1, &sent, at(sent_at))
        .unwrap();
}

fn event(
    ledger: &mut dyn ReadLedger,
    id: &str,
    kind: EventKind,
    when: &str,
    patient: &str,
    send: Option<(&str, &str)>,
) {
    let send = send.map(|(step, occurrence)| SendRef {
        sink: SinkKind::Line,
        patient: patient.into(),
        step: step.into(),
        occurrence: at(occurrence),
    });
    let new = NewEvent {
        id,
        kind,
        at: at(when),
        line_user: None,
        patient: Some(patient),
        send: send.as_ref(),
        detail: None,
    };
    ledger.record_event(&new, at(when)).unwrap();
}

/// `case` on an SQLite ledger, then on a fresh PostgreSQL database when there is one.
fn on_both(name: &str, case: impl Fn(&mut dyn ReadLedger)) {
    let dir = tempfile::tempdir().unwrap();
    case(&mut Ledger::open(&dir.path().join("l.db")).unwrap());
    if let Some(server) = crate::ledger::postgres::pg::server() {
        let url = server.fresh_database(name);
        case(&mut PgLedger::open(&url, "tally", DEFAULT_LEASE).unwrap());
        // The same history for another clinic in the same database: figures of its own, not
        // the two clinics' sum.
        case(&mut PgLedger::open(&url, "another", DEFAULT_LEASE).unwrap());
    }
}

fn line(step: &str) -> ArmKey {
    ArmKey {
        sink: SinkKind::Line,
        step: step.into(),
        variant: None,
    }
}

#[test]
fn sends_count_in_the_period_they_were_delivered_in_at_the_clinics_midnight() {
    on_both("tally_midnight", |ledger| {
        // 2026-09-30T15:00Z is October 1st, 00:00 in Tokyo; a second before is September.
        deliver(ledger, SinkKind::Line, "P1", "a", "2026-09-30T14:59:59Z");
        deliver(ledger, SinkKind::Line, "P2", "a", "2026-09-30T15:00:00Z");
        deliver(ledger, SinkKind::Line, "P3", "a", "2026-10-31T14:59:59Z");
        deliver(ledger, SinkKind::Line, "P4", "a", "2026-10-31T15:00:00Z");
        deliver(ledger, SinkKind::Outbox, "P5", "a", "2026-10-10T00:00:00Z");
        let arms = tally(ledger, &october(), &Windows::default()).unwrap();
        assert_eq!(arms[&line("a")].sent, 2);
        let outbox = ArmKey {
            sink: SinkKind::Outbox,
            ..line("a")
        };
        assert_eq!(arms[&outbox].sent, 1, "outbox sends are counted apart");
    });
}

#[test]
fn a_click_counts_once_per_send_and_only_within_fourteen_days() {
    on_both("tally_clicks", |ledger| {
        let sent = "2026-10-05T01:00:00Z";
        for patient in ["P1", "P2", "P3"] {
            deliver(ledger, SinkKind::Line, patient, "a", sent);
        }
        let click = EventKind::Click;
        event(
            ledger,
            "c1",
            click,
            "2026-10-05T02:00:00Z",
            "P1",
            Some(("a", sent)),
        );
        event(
            ledger,
            "c2",
            click,
            "2026-10-06T02:00:00Z",
            "P1",
            Some(("a", sent)),
        );
        // 14 days to the second still counts; a day later does not.
        event(
            ledger,
            "c3",
            click,
            "2026-10-19T01:00:00Z",
            "P2",
            Some(("a", sent)),
        );
        event(
            ledger,
            "c4",
            click,
            "2026-10-20T01:00:00Z",
            "P3",
            Some(("a", sent)),
        );
        let arms = tally(ledger, &october(), &Windows::default()).unwrap();
        assert_eq!(arms[&line("a")].clicked, 2);
    });
}

#[test]
fn a_booking_is_credited_to_the_last_send_before_it_within_the_window_once() {
    on_both("tally_credit", |ledger| {
        deliver(
            ledger,
            SinkKind::Line,
            "P1",
            "first",
            "2026-10-02T01:00:00Z",
        );
        deliver(
            ledger,
            SinkKind::Line,
            "P1",
            "second",
            "2026-10-04T01:00:00Z",
        );
        deliver(
            ledger,
            SinkKind::Line,
            "P2",
            "first",
            "2026-10-02T01:00:00Z",
        );
        deliver(
            ledger,
            SinkKind::Line,
            "P3",
            "first",
            "2026-10-02T01:00:00Z",
        );
        let booked = EventKind::Booked;
        // P1 booked twice after `second`: credited to it once, never to `first`.
        event(ledger, "b1", booked, "2026-10-05T01:00:00Z", "P1", None);
        event(ledger, "b2", booked, "2026-10-06T01:00:00Z", "P1", None);
        // P2 booked 15 days after: outside the 14-day window.
        event(ledger, "b3", booked, "2026-10-17T01:00:00Z", "P2", None);
        // P3 booked before the send: no credit.
        event(ledger, "b4", booked, "2026-10-01T01:00:00Z", "P3", None);
        // A visit 60 days later is within the revisit window.
        event(
            ledger,
            "v1",
            EventKind::Revisited,
            "2026-12-01T01:00:00Z",
            "P2",
            None,
        );
        let arms = tally(ledger, &october(), &Windows::default()).unwrap();
        assert_eq!(arms[&line("second")].booked, 1);
        assert_eq!(arms[&line("first")].booked, 0);
        assert_eq!(arms[&line("first")].revisited, 1);
    });
}

#[test]
fn a_block_counts_for_the_send_it_was_put_down_to() {
    on_both("tally_blocks", |ledger| {
        let sent = "2026-10-05T01:00:00Z";
        deliver(ledger, SinkKind::Line, "P1", "a", sent);
        deliver(ledger, SinkKind::Line, "P2", "b", sent);
        event(
            ledger,
            "u1",
            EventKind::Unfollow,
            "2026-10-06T01:00:00Z",
            "P1",
            Some(("a", sent)),
        );
        event(
            ledger,
            "u2",
            EventKind::Unfollow,
            "2026-10-07T01:00:00Z",
            "P2",
            None,
        );
        let arms = tally(ledger, &october(), &Windows::default()).unwrap();
        assert_eq!(arms[&line("a")].blocked, 1);
        assert_eq!(arms[&line("b")].blocked, 0);
    });
}

#[test]
fn a_rate_over_nothing_sent_is_none_not_nan() {
    let counts = Counts::default();
    assert_eq!(counts.rate(0), None);
    let counts = Counts {
        sent: 4,
        clicked: 1,
        ..Counts::default()
    };
    assert_eq!(counts.rate(counts.clicked), Some(0.25));
}
