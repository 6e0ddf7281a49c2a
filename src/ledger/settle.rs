//! Settling many sends at once: the outbox's batch, marked sent with one statement per chunk.

use chrono::{DateTime, Utc};

use super::{stamp, Ledger, LedgerError, SendKey, SinkKind};

/// The most sends [`Ledger::settle_sent`] settles with one statement (five parameters each,
/// well under SQLite's 32,766).
const SETTLE_CHUNK: usize = 256;

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
        let now = stamp(now);
        let mut rest = sent;
        while !rest.is_empty() {
            // Chunks of a power of two: a handful of statements, each prepared once.
            let size = SETTLE_CHUNK.min(1 << rest.len().ilog2());
            let (chunk, later) = rest.split_at(size);
            rest = later;
            let mut sql =
                String::from("WITH batch(sink, patient, step, occurrence, retry_key) AS (VALUES ");
            for row in 0..size {
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
                .prepare_cached(&sql)
                .and_then(|mut update| update.execute(values.as_slice()))
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }
}
