//! What `report`, `plan`, `explain` and `preview` read of one clinic's rows on PostgreSQL: the
//! same reads as the SQLite ledger's (read.rs, report_reads.rs, line_state.rs, insights.rs),
//! with the clinic in every key. The report's figures are grouped per arm by the server, so
//! only a line per arm comes back however many sends a period holds; the plan window's sends
//! are streamed (the client reads rows as the server sends them, a bounded buffer at a time).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use postgres::types::ToSql;

use super::super::{
    ArmKey, EventKind, FollowerFigures, FriendState, LedgerError, PatientLink, PatientSend,
    ReadLedger, SendStatus, SinkKind, UnitHalf, WindowSend,
};
use super::serve::bound;
use super::PgLedger;

/// A span in seconds, as the statements take it (`$n * interval '1 second'`). The report's
/// windows are at most a year or so; a longer one is clipped to a thousand years, which every
/// instant PostgreSQL holds can still be moved by.
fn seconds(span: Duration) -> f64 {
    const MILLENNIUM: i64 = 1000 * 366 * 24 * 3600;
    span.num_seconds().clamp(-MILLENNIUM, MILLENNIUM) as f64
}

fn arm_key(row: &postgres::Row) -> ArmKey {
    ArmKey {
        sink: SinkKind::from_column(row.get(0)),
        step: row.get(1),
        variant: row.get(2),
    }
}

/// A count from SQL (`COUNT(*)` is never negative).
fn count(row: &postgres::Row, index: usize) -> u64 {
    u64::try_from(row.get::<_, i64>(index)).unwrap_or(0)
}

fn status(text: &str) -> SendStatus {
    // Only steprule writes the column, with the words the CHECK constraint allows.
    SendStatus::parse(text).unwrap_or(SendStatus::Failed)
}

impl PgLedger {
    /// Runs `sql`, whose rows are (sink, step, variant, count), and hands each arm to `each`.
    fn per_arm(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        each: &mut dyn FnMut(ArmKey, u64),
    ) -> Result<(), LedgerError> {
        self.stream(sql, params, |row| each(arm_key(row), count(row, 3)))
    }
}

impl ReadLedger for PgLedger {
    fn window_sends(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        each: &mut dyn FnMut(WindowSend<'_>),
    ) -> Result<(), LedgerError> {
        // What SQLite's three partial indexes hold together: every sent or open row, and the
        // settled ones that did not go out.
        self.stream(
            "SELECT sink, patient, step, occurrence, status FROM steprule_sends
             WHERE clinic = $1 AND sink IN ('line', 'outbox')
               AND ($2::timestamptz IS NULL OR expires_at > $2)
               AND ($3::timestamptz IS NULL OR occurrence < $3)
               AND (status IN ('sent', 'pending', 'held', 'blocked')
                    OR problem IN ('failed', 'expired', 'skipped'))",
            &[&self.clinic, &bound(from), &bound(to)],
            |row| {
                each(WindowSend {
                    sink: SinkKind::from_column(row.get(0)),
                    patient: row.get(1),
                    step: row.get(2),
                    occurrence: row.get(3),
                    status: status(row.get(4)),
                })
            },
        )
    }

    fn patient_sends(&self, patient: &str) -> Result<Vec<PatientSend>, LedgerError> {
        let mut sends = Vec::new();
        self.stream(
            "SELECT sink, step, occurrence, status, due_at, sent_at, attempts, last_error, note,
                    expires_at
             FROM steprule_sends
             WHERE clinic = $1 AND sink IN ('line', 'outbox') AND patient = $2
             ORDER BY occurrence, step, sink",
            &[&self.clinic, &patient],
            |row| {
                sends.push(PatientSend {
                    sink: SinkKind::from_column(row.get(0)),
                    step: row.get(1),
                    occurrence: Some(row.get(2)),
                    status: status(row.get(3)),
                    due_at: Some(row.get(4)),
                    sent_at: row.get(5),
                    expires_at: Some(row.get(9)),
                    attempts: u32::try_from(row.get::<_, i64>(6)).unwrap_or(u32::MAX),
                    reason: row.get(7),
                    note: row.get(8),
                })
            },
        )?;
        Ok(sends)
    }

    fn patient_links(&self, patient: &str) -> Result<Vec<PatientLink>, LedgerError> {
        self.links_of(patient)
    }

    fn friend(&self, line_user: &str) -> Result<Option<FriendState>, LedgerError> {
        PgLedger::friend(self, line_user)
    }

    fn delivered_per_arm(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        each: &mut dyn FnMut(ArmKey, u64),
    ) -> Result<(), LedgerError> {
        self.per_arm(
            "SELECT sink, step, variant, COUNT(*) FROM steprule_sends
             WHERE clinic = $1 AND status = 'sent'
               AND ($2::timestamptz IS NULL OR sent_at >= $2)
               AND ($3::timestamptz IS NULL OR sent_at < $3)
             GROUP BY sink, step, variant",
            &[&self.clinic, &bound(from), &bound(to)],
            each,
        )
    }

    fn clicked_per_arm(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        within: Duration,
        each: &mut dyn FnMut(ArmKey, u64),
    ) -> Result<(), LedgerError> {
        // A send's first tap counts when it came within `within` of the delivery (a tap can be
        // stored a moment before the push's answer is: only the far end is a limit).
        self.per_arm(
            "SELECT s.sink, s.step, s.variant, COUNT(*)
             FROM (SELECT sink, patient, step, occurrence, MIN(at) AS first
                   FROM steprule_events
                   WHERE clinic = $1 AND type = 'click' AND sink IS NOT NULL
                     AND ($2::timestamptz IS NULL OR at >= $2)
                     AND ($3::timestamptz IS NULL OR at < $3 + $4::float8 * interval '1 second')
                   GROUP BY sink, patient, step, occurrence) AS c
             JOIN steprule_sends AS s
               ON s.clinic = $1 AND s.sink = c.sink AND s.patient = c.patient
              AND s.step = c.step AND s.occurrence = c.occurrence
             WHERE s.status = 'sent'
               AND ($2::timestamptz IS NULL OR s.sent_at >= $2)
               AND ($3::timestamptz IS NULL OR s.sent_at < $3)
               AND c.first <= s.sent_at + $4::float8 * interval '1 second'
             GROUP BY s.sink, s.step, s.variant",
            &[&self.clinic, &bound(from), &bound(to), &seconds(within)],
            each,
        )
    }

    fn blocked_per_arm(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        each: &mut dyn FnMut(ArmKey, u64),
    ) -> Result<(), LedgerError> {
        self.per_arm(
            "SELECT s.sink, s.step, s.variant, COUNT(*)
             FROM (SELECT DISTINCT sink, patient, step, occurrence FROM steprule_events
                   WHERE clinic = $1 AND type = 'unfollow' AND sink IS NOT NULL
                     AND ($2::timestamptz IS NULL OR at >= $2)) AS u
             JOIN steprule_sends AS s
               ON s.clinic = $1 AND s.sink = u.sink AND s.patient = u.patient
              AND s.step = u.step AND s.occurrence = u.occurrence
             WHERE s.status = 'sent'
               AND ($2::timestamptz IS NULL OR s.sent_at >= $2)
               AND ($3::timestamptz IS NULL OR s.sent_at < $3)
             GROUP BY s.sink, s.step, s.variant",
            &[&self.clinic, &bound(from), &bound(to)],
            each,
        )
    }

    fn credited_per_arm(
        &self,
        kind: EventKind,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        window: Duration,
        each: &mut dyn FnMut(ArmKey, u64),
    ) -> Result<(), LedgerError> {
        // Last touch, as on SQLite: each event's last send to its patient at or before it and
        // at most `window` before it (one range of the primary key per event, in the server),
        // each credited send counted once however many events it is credited with.
        self.per_arm(
            "SELECT sink, step, variant, COUNT(*)
             FROM (SELECT DISTINCT s.sink, s.patient, s.step, s.occurrence, s.variant
                   FROM steprule_events AS e
                   CROSS JOIN LATERAL (
                       SELECT sink, patient, step, occurrence, variant, sent_at
                       FROM steprule_sends
                       WHERE clinic = $1 AND sink IN ('line', 'outbox')
                         AND patient = e.patient AND status = 'sent'
                         AND sent_at >= e.at - $5::float8 * interval '1 second'
                         AND sent_at <= e.at
                       ORDER BY sent_at DESC, occurrence DESC, sink LIMIT 1) AS s
                   WHERE e.clinic = $1 AND e.type = $2 AND e.patient IS NOT NULL
                     AND ($3::timestamptz IS NULL OR e.at >= $3)
                     AND ($4::timestamptz IS NULL
                          OR e.at < $4 + $5::float8 * interval '1 second')
                     AND ($3::timestamptz IS NULL OR s.sent_at >= $3)
                     AND ($4::timestamptz IS NULL OR s.sent_at < $4)) AS credited
             GROUP BY sink, step, variant",
            &[
                &self.clinic,
                &kind.as_str(),
                &bound(from),
                &bound(to),
                &seconds(window),
            ],
            each,
        )
    }

    fn any_events(&self, kind: EventKind) -> Result<bool, LedgerError> {
        let row = self.one(
            "SELECT EXISTS (SELECT 1 FROM steprule_events WHERE clinic = $1 AND type = $2)",
            &[&self.clinic, &kind.as_str()],
        )?;
        Ok(row.is_some_and(|row| row.get(0)))
    }

    fn used_units(&self, first: NaiveDate, last: NaiveDate) -> Result<Vec<UnitHalf>, LedgerError> {
        // LINE's answers are not cached on PostgreSQL yet (`insights fetch` refuses a URL):
        // every unit is "not fetched", as on an SQLite ledger nobody fetched for.
        let mut halves = Vec::new();
        self.stream(
            "SELECT unit, half_first, step, variant, last_day, sends FROM steprule_unit_uses
             WHERE clinic = $1 AND half_first >= $2 AND half_first <= $3
             ORDER BY half_first, unit",
            &[&self.clinic, &first, &last],
            |row| {
                halves.push(UnitHalf {
                    unit: row.get(0),
                    half_first: row.get(1),
                    step: row.get(2),
                    variant: row.get(3),
                    last_day: row.get(4),
                    sends: count(row, 5),
                    cached: None,
                })
            },
        )?;
        Ok(halves)
    }

    fn follower_days(
        &self,
        _first: NaiveDate,
        _last: NaiveDate,
    ) -> Result<Vec<(NaiveDate, FollowerFigures)>, LedgerError> {
        // Nothing cached on PostgreSQL yet (see `used_units`): no account line in the report.
        Ok(Vec::new())
    }
}
