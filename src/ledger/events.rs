//! What patients did, as LINE's webhooks and steprule's tracked links report it: one row per
//! event, kept once per id (LINE redelivers an event it is unsure of, under the same
//! `webhookEventId`), and the tracked links and postbacks that tie a tap back to the send that
//! carried it.

use std::ops::ControlFlow;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{params, OptionalExtension};

use super::{parse_stamp, stamp, Ledger, LedgerError, SendKey, SinkKind};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// The LINE user added the account as a friend, or unblocked it.
    Follow,
    /// The LINE user blocked the account.
    Unfollow,
    /// The LINE user tapped a postback button.
    Postback,
    /// A tracked link was opened.
    Click,
    /// A LINE user was linked to a patient.
    Link,
    /// A linking attempt named no patient.
    LinkFailed,
    /// A text message that was not a linking attempt: only that it came is kept, never its
    /// text.
    Message,
    /// LINE's account-link event (`accountLink`), with its result.
    AccountLink,
    /// A new booking seen in the export (a booking field moved to a new future instant); the
    /// field's name is the detail. Credited to a step by `report`, not here.
    Booked,
    /// A visit seen in the export (a visit field moved forward); the field's name is the detail.
    Revisited,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::Follow,
        EventKind::Unfollow,
        EventKind::Postback,
        EventKind::Click,
        EventKind::Link,
        EventKind::LinkFailed,
        EventKind::Message,
        EventKind::AccountLink,
        EventKind::Booked,
        EventKind::Revisited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Follow => "follow",
            EventKind::Unfollow => "unfollow",
            EventKind::Postback => "postback",
            EventKind::Click => "click",
            EventKind::Link => "link",
            EventKind::LinkFailed => "link_failed",
            EventKind::Message => "message",
            EventKind::AccountLink => "account_link",
            EventKind::Booked => "booked",
            EventKind::Revisited => "revisited",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl FromSql for EventKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        EventKind::parse(text)
            .ok_or_else(|| FromSqlError::Other(format!("unknown event type `{text}`").into()))
    }
}

/// The send an event belongs to: the one whose link was tapped, or the last step sent before
/// an unfollow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRef {
    pub sink: SinkKind,
    pub patient: String,
    pub step: String,
    pub occurrence: DateTime<Utc>,
}

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// LINE's `webhookEventId`, or an id of steprule's own (clicks).
    pub id: &'a str,
    pub kind: EventKind,
    /// When it happened (LINE's timestamp; for a click, when it was received).
    pub at: DateTime<Utc>,
    /// Kept for blocks and links; never printed.
    pub line_user: Option<&'a str>,
    pub patient: Option<&'a str>,
    pub send: Option<&'a SendRef>,
    /// Postback data, the clicked link's original URL, an account-link result. Never a
    /// message's text.
    pub detail: Option<&'a str>,
}

/// A stored event, as `steprule events` shows it (without the LINE user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: String,
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    pub patient: Option<String>,
    pub step: Option<String>,
    pub detail: Option<String>,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub kind: Option<EventKind>,
    pub since: Option<DateTime<Utc>>,
}

/// What a tracked token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// A link in a message: the token's target is the original URL.
    Url,
    /// A postback button: the target is the template's postback data.
    Postback,
}

impl TrackKind {
    fn as_str(self) -> &'static str {
        match self {
            TrackKind::Url => "url",
            TrackKind::Postback => "postback",
        }
    }
}

/// The kind column as written by [`TrackKind::as_str`] (the table allows only these two).
fn track_kind(text: &str) -> TrackKind {
    if text == "postback" {
        TrackKind::Postback
    } else {
        TrackKind::Url
    }
}

/// A send's tokens, through the `tracked_send` index.
const TRACKED_FOR: &str = "SELECT token, kind, target FROM tracked INDEXED BY tracked_send
     WHERE sink = ?1 AND patient = ?2 AND step = ?3 AND occurrence = ?4";

/// A tracked token, looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub kind: TrackKind,
    pub send: SendRef,
    pub target: String,
}

/// Event instants keep LINE's milliseconds, always written with three digits so that the text
/// order of the column is time order.
pub(crate) fn event_stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Hands each row of `id, type, at, patient, step, detail` to `each` until it has had enough.
pub(super) fn stream_events(
    rows: &mut rusqlite::Rows<'_>,
    each: &mut impl FnMut(EventRecord) -> ControlFlow<()>,
) -> rusqlite::Result<()> {
    while let Some(row) = rows.next()? {
        let Some(at) = parse_stamp(row.get_ref(2)?.as_str()?) else {
            continue;
        };
        let event = EventRecord {
            id: row.get(0)?,
            kind: row.get(1)?,
            at,
            patient: row.get(3)?,
            step: row.get(4)?,
            detail: row.get(5)?,
        };
        if each(event).is_break() {
            break;
        }
    }
    Ok(())
}

fn sink_of(text: &str) -> SinkKind {
    if text == "outbox" {
        SinkKind::Outbox
    } else {
        SinkKind::Line
    }
}

impl Ledger {
    /// Stores `event` unless an event with its id is stored already (a redelivery): returns
    /// whether it was new, so that its effects (a block, a link, a reply) happen once.
    pub fn record_event(
        &mut self,
        event: &NewEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let send = event.send;
        self.conn
            .prepare_cached(
                "INSERT INTO events (id, type, at, received_at, line_user, patient, sink, step,
                                     occurrence, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (id) DO NOTHING",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    event.id,
                    event.kind.as_str(),
                    event_stamp(event.at),
                    event_stamp(now),
                    event.line_user,
                    event.patient.or(send.map(|s| s.patient.as_str())),
                    send.map(|s| s.sink.as_str()),
                    send.map(|s| s.step.as_str()),
                    send.map(|s| stamp(s.occurrence)),
                    event.detail,
                ])
            })
            .map(|inserted| inserted == 1)
            .map_err(|e| self.fail(e))
    }

    /// The last send that reached `patient` in the `within` before `at`, on either sink: the
    /// step an unfollow at `at` is put down to. Read through the primary key (sink, patient),
    /// so it costs one patient's history, not the ledger's.
    pub fn last_send_before(
        &self,
        patient: &str,
        at: DateTime<Utc>,
        within: chrono::Duration,
    ) -> Result<Option<SendRef>, LedgerError> {
        let from = at
            .checked_sub_signed(within)
            .unwrap_or(DateTime::UNIX_EPOCH);
        let found: Option<(String, String, String)> = self
            .conn
            .prepare_cached(
                "SELECT sink, step, occurrence FROM sends
                 WHERE sink IN ('line', 'outbox') AND patient = ?1 AND status = 'sent'
                   AND sent_at >= ?2 AND sent_at <= ?3
                 ORDER BY sent_at DESC, occurrence DESC LIMIT 1",
            )
            .and_then(|mut select| {
                select
                    .query_row(params![patient, stamp(from), stamp(at)], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })
                    .optional()
            })
            .map_err(|e| self.fail(e))?;
        Ok(found.and_then(|(sink, step, occurrence)| {
            Some(SendRef {
                sink: sink_of(&sink),
                patient: patient.to_owned(),
                step,
                occurrence: parse_stamp(&occurrence)?,
            })
        }))
    }

    /// Every stored event that passes `filter`, oldest first, streamed (a ledger may hold years
    /// of them).
    pub fn events(
        &self,
        filter: &EventFilter,
        mut each: impl FnMut(EventRecord) -> ControlFlow<()>,
    ) -> Result<(), LedgerError> {
        let since = filter.since.map(event_stamp).unwrap_or_default();
        let mut run = || -> rusqlite::Result<()> {
            let (sql, kind) = match filter.kind {
                Some(kind) => (
                    "SELECT id, type, at, patient, step, detail FROM events
                     WHERE type = ?2 AND at >= ?1 ORDER BY at, id",
                    Some(kind.as_str()),
                ),
                None => (
                    "SELECT id, type, at, patient, step, detail FROM events
                     WHERE at >= ?1 AND ?2 IS NULL ORDER BY at, id",
                    None,
                ),
            };
            let mut statement = self.conn.prepare(sql)?;
            let mut rows = statement.query(params![since, kind])?;
            stream_events(&mut rows, &mut each)
        };
        run().map_err(|e| self.fail(e))
    }

    /// Remembers that `token` stands for `target` (a URL or postback data) in the send `key`.
    /// Written by the run with the send's claim, before the message leaves.
    pub fn track(
        &mut self,
        token: &str,
        kind: TrackKind,
        key: &SendKey<'_>,
        target: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn
            .prepare_cached(
                "INSERT INTO tracked (token, kind, sink, patient, step, occurrence, target,
                                      created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    token,
                    kind.as_str(),
                    key.sink.as_str(),
                    key.patient,
                    key.step,
                    stamp(key.occurrence),
                    target,
                    stamp(now),
                ])
            })
            .map(drop)
            .map_err(|e| self.fail(e))
    }

    /// The tokens recorded for the send `key` (by [`Ledger::track`], with its claim): what a
    /// resumed claim puts in its messages again, so that the same send carries the same links.
    /// Each token once, in no particular order: they are told apart by what they stand for.
    pub fn tracked_for(
        &self,
        key: &SendKey<'_>,
    ) -> Result<Vec<(String, TrackKind, String)>, LedgerError> {
        self.conn
            .prepare_cached(TRACKED_FOR)
            .and_then(|mut select| {
                let rows = select.query_map(
                    params![
                        key.sink.as_str(),
                        key.patient,
                        key.step,
                        stamp(key.occurrence)
                    ],
                    |row| {
                        let kind: String = row.get(1)?;
                        Ok((row.get(0)?, track_kind(&kind), row.get(2)?))
                    },
                )?;
                rows.collect()
            })
            .map_err(|e| self.fail(e))
    }

    /// What `token` stands for, if it is one of ours.
    pub fn tracked(&self, token: &str) -> Result<Option<Tracked>, LedgerError> {
        let found: Option<(String, String, String, String, String, String)> = self
            .conn
            .prepare_cached(
                "SELECT kind, sink, patient, step, occurrence, target FROM tracked
                 WHERE token = ?1",
            )
            .and_then(|mut select| {
                select
                    .query_row(params![token], |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                            row.get(5)?,
                        ))
                    })
                    .optional()
            })
            .map_err(|e| self.fail(e))?;
        Ok(
            found.and_then(|(kind, sink, patient, step, occurrence, target)| {
                Some(Tracked {
                    kind: track_kind(&kind),
                    send: SendRef {
                        sink: sink_of(&sink),
                        patient,
                        step,
                        occurrence: parse_stamp(&occurrence)?,
                    },
                    target,
                })
            }),
        )
    }
}

#[cfg(test)]
mod tests {
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
}
