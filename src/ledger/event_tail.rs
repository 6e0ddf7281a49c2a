//! The latest events (`steprule events --limit N`): the newest N that pass a filter, read
//! backwards through the time indexes so that a ledger with years of events costs N rows, not
//! all of them.

use std::ops::ControlFlow;

use rusqlite::params;

use super::events::{event_stamp, stream_events};
use super::{EventFilter, EventRecord, Ledger, LedgerError};

impl Ledger {
    /// The latest `limit` events that pass `filter`, streamed oldest first. SQLite keeps at
    /// most `limit` rows aside to put them back in time order.
    pub fn latest_events(
        &self,
        filter: &EventFilter,
        limit: u64,
        mut each: impl FnMut(EventRecord) -> ControlFlow<()>,
    ) -> Result<(), LedgerError> {
        let since = filter.since.map(event_stamp).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut run = || -> rusqlite::Result<()> {
            let sql = if filter.kind.is_some() {
                "SELECT id, type, at, patient, step, detail FROM (
                     SELECT * FROM events INDEXED BY events_type_at
                     WHERE type = ?2 AND at >= ?1 ORDER BY at DESC, id DESC LIMIT ?3)
                 ORDER BY at, id"
            } else {
                "SELECT id, type, at, patient, step, detail FROM (
                     SELECT * FROM events INDEXED BY events_at
                     WHERE at >= ?1 AND ?2 IS NULL ORDER BY at DESC, id DESC LIMIT ?3)
                 ORDER BY at, id"
            };
            let mut statement = self.conn.prepare(sql)?;
            let kind = filter.kind.map(|k| k.as_str());
            let mut rows = statement.query(params![since, kind, limit])?;
            stream_events(&mut rows, &mut each)
        };
        run().map_err(|e| self.fail(e))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::ledger::{EventKind, NewEvent};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_latest_events_come_oldest_first_and_pass_the_filter() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        let now = at("2026-11-30T00:00:00Z");
        for (id, kind, when) in [
            ("e1", EventKind::Follow, "2026-11-25T09:00:00Z"),
            ("e2", EventKind::Unfollow, "2026-11-25T10:00:00Z"),
            ("e3", EventKind::Follow, "2026-11-26T09:00:00Z"),
            ("e4", EventKind::Follow, "2026-11-27T09:00:00.500Z"),
            ("e5", EventKind::Unfollow, "2026-11-28T09:00:00Z"),
        ] {
            let event = NewEvent {
                id,
                kind,
                at: at(when),
                line_user: Some("U1"),
                patient: None,
                send: None,
                detail: None,
            };
            ledger.record_event(&event, now).unwrap();
        }
        let list = |filter: EventFilter, limit: u64| {
            let mut ids = Vec::new();
            ledger
                .latest_events(&filter, limit, |e| {
                    ids.push(e.id);
                    ControlFlow::Continue(())
                })
                .unwrap();
            ids
        };
        assert_eq!(list(EventFilter::default(), 2), ["e4", "e5"]);
        assert_eq!(
            list(EventFilter::default(), 99),
            ["e1", "e2", "e3", "e4", "e5"]
        );
        let follows = EventFilter {
            kind: Some(EventKind::Follow),
            since: None,
        };
        assert_eq!(list(follows, 2), ["e3", "e4"]);
        let since = EventFilter {
            kind: Some(EventKind::Unfollow),
            since: Some(at("2026-11-26T00:00:00Z")),
        };
        assert_eq!(list(since, 10), ["e5"]);
    }
}
