//! Reading the ledger back for people: counts per status and per step, and the latest sends that
//! did not go out, with their reasons (`steprule status`).

use chrono::{DateTime, Utc};
use rusqlite::{params, Row};

use super::{
    parse_stamp, stamp, unix, unix_if_readable, Ledger, LedgerError, SendStatus, SinkKind,
};

/// One row, as `status` and the tests read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub sink: SinkKind,
    pub patient: String,
    pub step: String,
    pub occurrence: String,
    pub variant: Option<String>,
    pub template: String,
    pub status: SendStatus,
    pub retry_key: String,
    pub attempts: u32,
    pub line_request_id: Option<String>,
    pub last_error: Option<String>,
    pub note: Option<String>,
}

pub(super) const ROW_COLUMNS: &str = "sink, patient, step, occurrence, variant, template, status, \
     retry_key, attempts, line_request_id, last_error, note";

pub(super) fn ledger_row(row: &Row<'_>) -> rusqlite::Result<LedgerRow> {
    Ok(LedgerRow {
        sink: SinkKind::from_column(row.get_ref(0)?.as_str()?),
        patient: row.get(1)?,
        step: row.get(2)?,
        occurrence: row.get(3)?,
        variant: row.get(4)?,
        template: row.get(5)?,
        status: row.get(6)?,
        retry_key: row.get(7)?,
        attempts: row.get(8)?,
        line_request_id: row.get(9)?,
        last_error: row.get(10)?,
        note: row.get(11)?,
    })
}

/// How many sends of one step (or of all, with `step` empty) are in each status, per sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCounts {
    pub sink: SinkKind,
    pub step: String,
    pub status: SendStatus,
    pub count: u64,
}

/// A send that did not go out (failed, held or expired), with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub sink: SinkKind,
    pub patient: String,
    pub step: String,
    pub status: SendStatus,
    pub due_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// One send of one patient, as `status --patient` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientSend {
    pub sink: SinkKind,
    pub step: String,
    pub occurrence: Option<DateTime<Utc>>,
    pub status: SendStatus,
    pub due_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    /// After this the send is no longer sendable (with the step, it names the occurrence's
    /// sendable window, which `explain` matches against an "expired" from the evaluator).
    pub expires_at: Option<DateTime<Utc>>,
    pub attempts: u32,
    pub reason: Option<String>,
    pub note: Option<String>,
}

/// The sends still sendable at `?1` with an occurrence before `?2`, of any status: one range on
/// `expires_at` of each of the three partial indexes that together hold every status, never a
/// scan of the history.
pub(super) const WINDOW_SENDS: &str = "\
    SELECT sink, patient, step, occurrence, status FROM sends INDEXED BY sends_live
     WHERE sink IN ('line', 'outbox') AND status = 'sent' AND expires_at > ?1
       AND occurrence < ?2
    UNION ALL
    SELECT sink, patient, step, occurrence, status FROM sends INDEXED BY sends_open
     WHERE sink IN ('line', 'outbox') AND (status = 'pending' OR status = 'held' OR status = 'blocked')
       AND expires_at > ?1 AND occurrence < ?2
    UNION ALL
    SELECT sink, patient, step, occurrence, status FROM sends INDEXED BY sends_settled
     WHERE sink IN ('line', 'outbox')
       AND (problem = 'failed' OR problem = 'expired' OR problem = 'skipped')
       AND expires_at > ?1 AND occurrence < ?2";

/// One send of a window's occurrences, as `plan` marks its planned sends with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSend<'a> {
    pub sink: SinkKind,
    pub patient: &'a str,
    pub step: &'a str,
    pub occurrence: DateTime<Utc>,
    pub status: SendStatus,
}

impl Ledger {
    /// Every send to `patient`, oldest occurrence first (through the primary key).
    pub fn sends_to(&self, patient: &str) -> Result<Vec<PatientSend>, LedgerError> {
        let run = || -> rusqlite::Result<Vec<PatientSend>> {
            let mut statement = self.conn.prepare(
                "SELECT sink, step, occurrence, status, due_at, sent_at, attempts, last_error, note,
                        expires_at
                 FROM sends WHERE sink IN ('line', 'outbox') AND patient = ?1
                 ORDER BY occurrence, step, sink",
            )?;
            let sends = statement
                .query_map(params![patient], |row| {
                    let instant =
                        |i: usize| -> rusqlite::Result<_> { Ok(unix_if_readable(row.get_ref(i)?)) };
                    Ok(PatientSend {
                        sink: SinkKind::from_column(row.get_ref(0)?.as_str()?),
                        step: row.get(1)?,
                        occurrence: row.get_ref(2)?.as_str_or_null()?.and_then(parse_stamp),
                        status: row.get(3)?,
                        due_at: instant(4)?,
                        sent_at: instant(5)?,
                        expires_at: instant(9)?,
                        attempts: row.get(6)?,
                        reason: row.get(7)?,
                        note: row.get(8)?,
                    })
                })?
                .collect();
            sends
        };
        run().map_err(|e| self.fail(e))
    }

    /// Every send, of any status, that a plan of `[from, to)` can meet: still sendable at
    /// `from` (a planned send goes out before it expires) and with its occurrence before `to`.
    /// One read per plan, whatever the number of patients; `each` builds the caller's index.
    pub fn sends_in_window(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        mut each: impl FnMut(WindowSend<'_>),
    ) -> Result<(), LedgerError> {
        let mut run = || -> rusqlite::Result<()> {
            let mut statement = self.conn.prepare(WINDOW_SENDS)?;
            let mut rows = statement.query(params![unix(from), stamp(to)])?;
            while let Some(row) = rows.next()? {
                let Some(occurrence) = parse_stamp(row.get_ref(3)?.as_str()?) else {
                    continue;
                };
                each(WindowSend {
                    sink: SinkKind::from_column(row.get_ref(0)?.as_str()?),
                    patient: row.get_ref(1)?.as_str()?,
                    step: row.get_ref(2)?.as_str()?,
                    occurrence,
                    status: row.get(4)?,
                });
            }
            Ok(())
        };
        run().map_err(|e| self.fail(e))
    }

    /// Counts per sink, step and status, in that order.
    pub fn step_counts(&self) -> Result<Vec<StepCounts>, LedgerError> {
        let run = || -> rusqlite::Result<Vec<StepCounts>> {
            let mut statement = self.conn.prepare(
                "SELECT sink, step, status, COUNT(*) FROM sends
                 GROUP BY sink, step, status ORDER BY sink, step, status",
            )?;
            let counts = statement
                .query_map([], |row| {
                    Ok(StepCounts {
                        sink: SinkKind::from_column(row.get_ref(0)?.as_str()?),
                        step: row.get(1)?,
                        status: row.get(2)?,
                        count: row.get(3)?,
                    })
                })?
                .collect();
            counts
        };
        run().map_err(|e| self.fail(e))
    }

    /// Counts per status over every sink and step.
    pub fn status_counts(&self) -> Result<Vec<(SendStatus, u64)>, LedgerError> {
        let mut totals = std::collections::BTreeMap::new();
        for counts in self.step_counts()? {
            *totals.entry(counts.status).or_insert(0) += counts.count;
        }
        Ok(totals.into_iter().collect())
    }

    /// The latest `limit` sends that failed, are held or expired, newest first.
    pub fn latest_problems(&self, limit: usize) -> Result<Vec<Problem>, LedgerError> {
        let run = || -> rusqlite::Result<Vec<Problem>> {
            let mut statement = self.conn.prepare(
                "SELECT sink, patient, step, status, due_at, updated_at, last_error
                 FROM sends INDEXED BY sends_problems
                 WHERE (problem = 'failed' OR problem = 'held' OR problem = 'expired')
                 ORDER BY problem_at DESC LIMIT ?1",
            )?;
            let problems = statement
                .query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
                    Ok(Problem {
                        sink: SinkKind::from_column(row.get_ref(0)?.as_str()?),
                        patient: row.get(1)?,
                        step: row.get(2)?,
                        status: row.get(3)?,
                        due_at: unix_if_readable(row.get_ref(4)?),
                        updated_at: unix_if_readable(row.get_ref(5)?),
                        reason: row.get(6)?,
                    })
                })?
                .collect();
            problems
        };
        run().map_err(|e| self.fail(e))
    }
}
