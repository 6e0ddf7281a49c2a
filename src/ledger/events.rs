//! What patients did, as LINE's webhooks and steprule's tracked links report it: one row per
//! event, kept once per id (LINE redelivers an event it is unsure of, under the same
//! `webhookEventId`), and the tracked links and postbacks that tie a tap back to the send that
//! carried it.

use std::ops::ControlFlow;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{params, OptionalExtension};

use super::{parse_stamp, stamp, unix, Ledger, LedgerError, SendKey, SinkKind};

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
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TrackKind::Url => "url",
            TrackKind::Postback => "postback",
        }
    }
}

/// The kind column as written by [`TrackKind::as_str`] (the table allows only these two).
pub(crate) fn track_kind(text: &str) -> TrackKind {
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
                    .query_row(params![patient, unix(from), unix(at)], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })
                    .optional()
            })
            .map_err(|e| self.fail(e))?;
        Ok(found.and_then(|(sink, step, occurrence)| {
            Some(SendRef {
                sink: SinkKind::from_column(&sink),
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
                        sink: SinkKind::from_column(&sink),
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
#[path = "events_tests.rs"]
mod tests;
