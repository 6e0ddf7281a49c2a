//! Settling many sends at once: the outbox's batch, marked sent with one statement per chunk;
//! and the mark of an outbox batch recorded sent with its claims before its lines are written
//! (see [`super::OutboxClaims`]): written with the rows, removed once the lines are, and read
//! by the next run after a crash, which reopens the rows whose line is not in the outbox.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::claims::{ChunkedSql, UnwrittenBatch};
use super::{parse_stamp, stamp, unix, Ledger, LedgerError, SendKey, SinkKind};

/// The most sends [`Ledger::settle_sent`] settles with one statement (five parameters each,
/// well under SQLite's 32,766).
const SETTLE_CHUNK: usize = 256;

static SETTLE_SQL: ChunkedSql = ChunkedSql::new();

/// Settles `rows` sends: `?1` the attempts, `?2` the instant, then each send's five.
fn settle_sql(rows: usize) -> String {
    let mut sql =
        String::from("WITH batch(sink, patient, step, occurrence, retry_key) AS (VALUES ");
    for row in 0..rows {
        let at = 3 + row * 5;
        let comma = if row > 0 { "," } else { "" };
        let (a, b, c, d, e) = (at, at + 1, at + 2, at + 3, at + 4);
        sql.push_str(&format!("{comma}(?{a},?{b},?{c},?{d},?{e})"));
    }
    sql.push_str(
        ") UPDATE sends SET status = 'sent', attempts = attempts + ?1, updated_at = ?2,
                           sent_at = ?2, last_error = NULL
         FROM batch
         WHERE sends.sink = batch.sink AND sends.patient = batch.patient
           AND sends.step = batch.step AND sends.occurrence = batch.occurrence
           AND sends.retry_key = batch.retry_key",
    );
    sql
}

impl Ledger {
    /// Records the claimed sends `sent` (each with its retry key) as sent at `now`, after
    /// `attempts` each, without a request id or a note: what [`Ledger::settle`] does for each,
    /// in one statement per chunk. Each statement builds the tables SQLite checks `status`
    /// against (the partial indexes' and the CHECK's `IN` lists) once, where a statement per
    /// send built them once per send.
    pub fn settle_sent(
        &mut self,
        sent: &[(SendKey<'_>, &str)],
        attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let now = unix(now);
        let mut rest = sent;
        while !rest.is_empty() {
            // Chunks of a power of two: a handful of statements, each prepared once.
            let size = SETTLE_CHUNK.min(1 << rest.len().ilog2());
            let (chunk, later) = rest.split_at(size);
            rest = later;
            let sql = SETTLE_SQL.get(size, SETTLE_CHUNK, settle_sql);
            let occurrences: Vec<String> =
                chunk.iter().map(|(key, _)| stamp(key.occurrence)).collect();
            let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(2 + size * 5);
            values.push(&attempts);
            values.push(&now);
            for ((key, retry_key), occurrence) in chunk.iter().zip(&occurrences) {
                values.push(match key.sink {
                    SinkKind::Line => &"line",
                    SinkKind::Outbox => &"outbox",
                });
                values.push(&key.patient);
                values.push(&key.step);
                values.push(occurrence);
                values.push(retry_key);
            }
            self.conn
                .prepare_cached(sql)
                .and_then(|mut update| update.execute(values.as_slice()))
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }
}

impl Ledger {
    /// Marks `batch` as not yet written, unless a batch is marked already (the rows of one
    /// batch may be recorded by several statements: the first's mark, with the earliest
    /// `sent_at`, covers them all).
    pub(super) fn mark_unwritten(&self, batch: UnwrittenBatch) -> Result<(), LedgerError> {
        let from = i64::try_from(batch.from).unwrap_or(i64::MAX);
        self.conn
            .prepare_cached(
                "INSERT INTO outbox_unwritten (id, from_byte, sent_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO NOTHING",
            )
            .and_then(|mut insert| insert.execute(params![from, unix(batch.sent_at)]))
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// See [`super::OutboxClaims::lines_written`].
    pub fn lines_written(&mut self) -> Result<(), LedgerError> {
        self.conn
            .prepare_cached("DELETE FROM outbox_unwritten")
            .and_then(|mut delete| delete.execute([]))
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// See [`super::OutboxClaims::reopen_unwritten`].
    pub fn reopen_unwritten(
        &mut self,
        sends: &[(SendKey<'_>, &str)],
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let now = unix(now);
        for (key, retry_key) in sends {
            self.conn
                .prepare_cached(
                    "UPDATE sends SET status = 'pending', attempts = 0, sent_at = NULL,
                                      updated_at = ?6, last_error = ?7
                     WHERE sink = ?1 AND patient = ?2 AND step = ?3 AND occurrence = ?4
                       AND retry_key = ?5 AND status = 'sent'",
                )
                .and_then(|mut update| {
                    update.execute(params![
                        key.sink.as_str(),
                        key.patient,
                        key.step,
                        stamp(key.occurrence),
                        retry_key,
                        now,
                        why
                    ])
                })
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// The marked batch: where its lines begin and when its rows were sent.
    fn unwritten_batch(&self) -> Result<Option<(i64, i64)>, LedgerError> {
        self.conn
            .query_row(
                "SELECT from_byte, sent_at FROM outbox_unwritten WHERE id = 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.fail(e))
    }

    /// The rows of the marked batch (patient, step, occurrence, retry key): the outbox's sent
    /// rows from the batch's start in the outbox, sent at or after its `sent_at`, found
    /// through the delivered sends' index from that instant on (a range, however long the
    /// history).
    fn unwritten_rows(
        &self,
        (from, sent_at): &(i64, i64),
    ) -> Result<Vec<(String, String, String, String)>, LedgerError> {
        let run = || -> rusqlite::Result<Vec<(String, String, String, String)>> {
            let mut select = self.conn.prepare(
                "SELECT patient, step, occurrence, retry_key FROM sends INDEXED BY sends_delivered
                 WHERE status = 'sent' AND sent_at >= ?2 AND sink = 'outbox'
                   AND outbox_from = ?1",
            )?;
            let rows = select.query_map(params![from, sent_at], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?;
            rows.collect()
        };
        run().map_err(|e| self.fail(e))
    }

    /// See [`super::OutboxClaims::unwritten_keys`].
    pub fn unwritten_keys(&self) -> Result<Option<(u64, Vec<String>)>, LedgerError> {
        let Some(batch) = self.unwritten_batch()? else {
            return Ok(None);
        };
        let keys = (self.unwritten_rows(&batch)?.into_iter())
            .map(|(_, _, _, retry_key)| retry_key)
            .collect();
        Ok(Some((u64::try_from(batch.0).unwrap_or(0), keys)))
    }

    /// See [`super::OutboxClaims::recover_unwritten`].
    pub fn recover_unwritten(
        &mut self,
        written: &dyn Fn(&str) -> bool,
        now: DateTime<Utc>,
    ) -> Result<usize, LedgerError> {
        let Some(batch) = self.unwritten_batch()? else {
            return Ok(0);
        };
        let rows = self.unwritten_rows(&batch)?;
        let mut missing = Vec::new();
        for (patient, step, occurrence, retry_key) in &rows {
            if written(retry_key) {
                continue;
            }
            // Written by this ledger in its own form; a row it cannot read is left alone.
            if let Some(occurrence) = parse_stamp(occurrence) {
                let key = SendKey {
                    sink: SinkKind::Outbox,
                    patient,
                    step,
                    occurrence,
                };
                missing.push((key, retry_key.as_str()));
            }
        }
        let why = "interrupted before its outbox line was written";
        self.reopen_unwritten(&missing, why, now)?;
        self.lines_written()?;
        Ok(missing.len())
    }
}
