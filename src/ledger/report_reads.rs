//! What `steprule report` reads: a period's delivered sends per step and arm, and the events
//! that are put down to them (clicks, blocks, bookings and visits). Every read streams or is
//! grouped in SQLite, so that a ledger of years costs a range of an index, never a list of all
//! its sends in memory.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, OptionalExtension};

use super::events::event_stamp;
use super::{from_unix, parse_stamp, unix, EventKind, Ledger, LedgerError, SinkKind};

/// One arm of one step on one sink: what the report keeps a line of figures for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArmKey {
    pub sink: SinkKind,
    pub step: String,
    /// The template of a step with several; `None` for a step with one.
    pub variant: Option<String>,
}

fn arm_key(row: &rusqlite::Row<'_>) -> rusqlite::Result<ArmKey> {
    Ok(ArmKey {
        sink: SinkKind::from_column(row.get_ref(0)?.as_str()?),
        step: row.get(1)?,
        variant: row.get(2)?,
    })
}

/// The instant `span` after `at`, or the end of the calendar.
fn later(at: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    at.checked_add_signed(span)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The last send delivered to a patient in a window. The `+`s keep SQLite from reading the
/// window through `sends_delivered` (every patient's sends of those days, which the ledger's
/// statistics can make look cheap) instead of this patient's primary-key range.
const LAST_SEND: &str = "SELECT sink, step, variant, occurrence, sent_at FROM sends
     WHERE sink IN ('line', 'outbox') AND patient = ?1 AND +status = 'sent'
       AND +sent_at >= ?2 AND +sent_at <= ?3
     ORDER BY sent_at DESC, occurrence DESC, sink LIMIT 1";

impl Ledger {
    /// How many sends of each arm were delivered in `[from, to)`: one range of the
    /// `sends_delivered` index, grouped in SQLite.
    pub fn delivered_per_arm(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        mut each: impl FnMut(ArmKey, u64),
    ) -> Result<(), LedgerError> {
        let mut run = || -> rusqlite::Result<()> {
            let mut select = self.conn.prepare(
                "SELECT sink, step, variant, COUNT(*) FROM sends INDEXED BY sends_delivered
                 WHERE status = 'sent' AND sent_at >= ?1 AND sent_at < ?2
                 GROUP BY sink, step, variant",
            )?;
            let mut rows = select.query(params![unix(from), unix(to)])?;
            while let Some(row) = rows.next()? {
                let count: i64 = row.get(3)?;
                each(arm_key(row)?, u64::try_from(count).unwrap_or(0));
            }
            Ok(())
        };
        run().map_err(|e| self.fail(e))
    }

    /// Calls `each` once per send delivered in `[from, to)` whose patient opened one of its
    /// tracked links within `within` of its delivery. Clicks name their send, so each is one
    /// look-up of the sends' primary key.
    pub fn clicked_per_send(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        within: Duration,
        mut each: impl FnMut(ArmKey),
    ) -> Result<(), LedgerError> {
        let mut run = || -> rusqlite::Result<()> {
            let mut select = self.conn.prepare(
                "SELECT s.sink, s.step, s.variant, s.sent_at, c.first
                 FROM (SELECT sink, patient, step, occurrence, MIN(at) AS first FROM events
                       WHERE type = 'click' AND at >= ?1 AND at < ?2 AND sink IS NOT NULL
                       GROUP BY sink, patient, step, occurrence) AS c
                 JOIN sends AS s ON s.sink = c.sink AND s.patient = c.patient
                                AND s.step = c.step AND s.occurrence = c.occurrence
                 WHERE s.status = 'sent' AND s.sent_at >= ?3 AND s.sent_at < ?4",
            )?;
            let mut rows = select.query(params![
                event_stamp(from),
                event_stamp(later(to, within)),
                unix(from),
                unix(to)
            ])?;
            while let Some(row) = rows.next()? {
                let sent = row.get_ref(3)?.as_i64_or_null()?.and_then(from_unix);
                let first = parse_stamp(row.get_ref(4)?.as_str()?);
                // A tap can be recorded a moment before the push's answer is (the patient was
                // quick): only the far end of the window is a limit.
                if let (Some(sent), Some(first)) = (sent, first) {
                    if first <= later(sent, within) {
                        each(arm_key(row)?);
                    }
                }
            }
            Ok(())
        };
        run().map_err(|e| self.fail(e))
    }

    /// Calls `each` once per send delivered in `[from, to)` that an unfollow was put down to
    /// (`serve` names the send when it stores the unfollow).
    pub fn blocked_per_send(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        mut each: impl FnMut(ArmKey),
    ) -> Result<(), LedgerError> {
        let mut run = || -> rusqlite::Result<()> {
            let mut select = self.conn.prepare(
                "SELECT s.sink, s.step, s.variant
                 FROM (SELECT DISTINCT sink, patient, step, occurrence FROM events
                       WHERE type = 'unfollow' AND at >= ?1 AND sink IS NOT NULL) AS u
                 JOIN sends AS s ON s.sink = u.sink AND s.patient = u.patient
                                AND s.step = u.step AND s.occurrence = u.occurrence
                 WHERE s.status = 'sent' AND s.sent_at >= ?2 AND s.sent_at < ?3",
            )?;
            let mut rows = select.query(params![event_stamp(from), unix(from), unix(to)])?;
            while let Some(row) = rows.next()? {
                each(arm_key(row)?);
            }
            Ok(())
        };
        run().map_err(|e| self.fail(e))
    }

    /// Last-touch credit: for each `kind` event (a booking, a visit), the last send delivered
    /// to its patient at or before it and at most `window` before it; `each` is called once
    /// per credited send delivered in `[from, to)`, however many events it is credited with.
    ///
    /// Events are read in patient order, so that the sends already credited are remembered
    /// for one patient at a time; each look-up is a range of the sends' primary key (sink,
    /// patient), one patient's history.
    pub fn credited_per_send(
        &self,
        kind: EventKind,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        window: Duration,
        mut each: impl FnMut(ArmKey),
    ) -> Result<(), LedgerError> {
        let mut run = || -> rusqlite::Result<()> {
            let mut events = self.conn.prepare(
                "SELECT patient, at FROM events
                 WHERE type = ?1 AND at >= ?2 AND at < ?3 AND patient IS NOT NULL
                 ORDER BY patient, at",
            )?;
            let mut last_send = self.conn.prepare(LAST_SEND)?;
            let mut rows = events.query(params![
                kind.as_str(),
                event_stamp(from),
                event_stamp(later(to, window))
            ])?;
            let mut patient = String::new();
            let mut credited: HashSet<(ArmKey, String)> = HashSet::new();
            let (from_unix, to_unix) = (unix(from), unix(to));
            while let Some(row) = rows.next()? {
                let Some(at) = parse_stamp(row.get_ref(1)?.as_str()?) else {
                    continue;
                };
                let this_patient = row.get_ref(0)?.as_str()?;
                if this_patient != patient {
                    patient.clear();
                    patient.push_str(this_patient);
                    credited.clear();
                }
                let since = at
                    .checked_sub_signed(window)
                    .unwrap_or(DateTime::UNIX_EPOCH);
                let found = last_send
                    .query_row(params![patient, unix(since), unix(at)], |send| {
                        Ok((arm_key(send)?, send.get(3)?, send.get::<_, i64>(4)?))
                    })
                    .optional()?;
                let Some((key, occurrence, sent_at)) = found else {
                    continue;
                };
                if sent_at < from_unix || sent_at >= to_unix {
                    continue;
                }
                if credited.insert((key.clone(), occurrence)) {
                    each(key);
                }
            }
            Ok(())
        };
        run().map_err(|e| self.fail(e))
    }

    /// Whether any event of `kind` is stored (`report` measures bookings by default only when
    /// some were observed).
    pub fn has_events(&self, kind: EventKind) -> Result<bool, LedgerError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM events WHERE type = ?1)",
                params![kind.as_str()],
                |row| row.get(0),
            )
            .map_err(|e| self.fail(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How SQLite reads `sql` on a ledger whose statistics are those `ANALYZE` wrote for the
    /// bench's 10,000,000-send ledger.
    fn plan_with_big_ledger_statistics(sql: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        drop(Ledger::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "ANALYZE sqlite_schema;
             INSERT INTO sqlite_stat1 VALUES ('sends', 'sends', '10000000 5000000 15 2 1');
             INSERT INTO sqlite_stat1 VALUES ('sends', 'sends_delivered', '9499427 1 1 1 1 1');",
        )
        .unwrap();
        drop(conn);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = explain
            .query_map(
                // 2026-10-01 and 2026-10-15, UTC.
                params!["P1", 1_790_812_800_i64, 1_792_022_400_i64],
                |row| row.get::<_, String>(3),
            )
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn the_last_send_before_a_booking_is_read_in_the_patients_primary_key_range() {
        let plan = plan_with_big_ledger_statistics(LAST_SEND);
        assert!(
            plan.contains("USING PRIMARY KEY (sink=? AND patient=?)"),
            "{plan}"
        );
        assert!(!plan.contains("sends_delivered"), "{plan}");
    }
}
