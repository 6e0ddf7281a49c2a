//! Claiming many sends at once: a batch's existing rows found with one `SELECT` and its new
//! rows written with one multi-row `INSERT` per chunk (each statement's own costs paid once
//! per chunk). The answers are [`Ledger::claim`]'s, send by send. What SQLite checks on each
//! row it writes is kept free of `IN` lists (ledger version 13, see schema.rs): there, each
//! list of three or more constants was a temporary b-tree built anew for every row.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};

use super::{stamp, unix, Claim, Ledger, LedgerError, SendDetails, SendKey, SendStatus, SinkKind};
use crate::records::keyed_hasher;

/// The most sends one statement looks up or inserts (eleven parameters each for an insert,
/// well under SQLite's 32,766).
const CLAIM_CHUNK: usize = 256;

/// The SQL text of a chunked statement for each chunk size (the powers of two up to a
/// chunk), built once per process: a chunk's statement is then found in the connection's cache
/// without its text being built again for every chunk.
pub(super) struct ChunkedSql {
    texts: OnceLock<Vec<String>>,
}

impl ChunkedSql {
    pub(super) const fn new() -> ChunkedSql {
        ChunkedSql {
            texts: OnceLock::new(),
        }
    }

    /// The text for `rows` rows (a power of two, at most `most`), `build` making each.
    pub(super) fn get(&self, rows: usize, most: usize, build: fn(usize) -> String) -> &str {
        let texts = self
            .texts
            .get_or_init(|| (0..=most.ilog2()).map(|p| build(1 << p)).collect());
        debug_assert!(rows.is_power_of_two() && rows <= most, "{rows} rows");
        &texts[rows.ilog2() as usize]
    }
}

static FIND_SQL: ChunkedSql = ChunkedSql::new();
static INSERT_SQL: ChunkedSql = ChunkedSql::new();

/// Looks up `rows` keys: each row's position in the chunk and its key.
fn find_sql(rows: usize) -> String {
    let mut sql = String::from("WITH batch(at, sink, patient, step, occurrence) AS (VALUES ");
    sql.push_str(&vec!["(?, ?, ?, ?, ?)"; rows].join(", "));
    sql.push_str(
        ") SELECT batch.at, status, retry_key, attempts FROM batch
         JOIN sends ON sends.sink = batch.sink AND sends.patient = batch.patient
                   AND sends.step = batch.step AND sends.occurrence = batch.occurrence",
    );
    sql
}

/// Inserts `rows` rows: `?1` is `now`, `?2` the status, `?3` the attempts, `?4` when it was
/// sent; each row's ten parameters follow, numbered (an unnumbered `?` after `?4` would take
/// the number after the largest so far).
///
/// `OR FAIL`, not the default `ABORT`: to undo its own rows alone, an `ABORT` statement that
/// writes many rows inside a transaction copies every page it touches to a statement journal
/// first (a temporary file: 0.5 s of a first run's 1.2 s of inserts at 1,000,000 patients).
/// A failing `OR FAIL` statement keeps the rows it wrote before the failing one, so
/// [`Ledger::insert_claims`] rolls the whole transaction back ([`Ledger::abandon_batch`]).
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR FAIL INTO sends (sink, patient, step, occurrence, variant, template, status,
                            retry_key, attempts, due_at, expires_at, created_at,
                            updated_at, outbox_from, sent_at) VALUES ",
    );
    for row in 0..rows {
        let p: Vec<usize> = (0..10).map(|i| 5 + row * 10 + i).collect();
        let comma = if row > 0 { ", " } else { "" };
        sql.push_str(&format!(
            "{comma}(?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?2, ?{}, ?3, ?{}, ?{}, ?1, \
             coalesce(?4, ?1), ?{}, ?4)",
            p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]
        ));
    }
    sql
}

/// A send's key as its columns hold it: sink, patient, step, occurrence.
type KeyColumns<'k> = (&'static str, &'k str, &'k str, &'k str);

/// A batch's rows by key, hashed with ahash: SipHash was ~2% of a first run's pass thread.
type FoundRows<'k> = HashMap<KeyColumns<'k>, Found, ahash::RandomState>;

/// A row found for a key of the batch.
struct Found {
    status: SendStatus,
    retry_key: String,
    attempts: u32,
}

impl Ledger {
    /// [`Ledger::claim`] for each of `sends` in order, in fewer statements: the same answers,
    /// including for a key that comes twice (the second finds the first's claim pending).
    /// Expects the writes to be grouped ([`Ledger::begin`]) so that nobody inserts between the
    /// look-up and the insert; without a transaction it claims one send at a time.
    pub fn claim_all(
        &mut self,
        sends: &[(SendKey<'_>, SendDetails<'_>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, LedgerError> {
        if !self.in_batch {
            return (sends.iter())
                .map(|(key, details)| self.claim(key, details, now))
                .collect();
        }
        let (answers, occurrences, new) = self.answer_claims(sends, now)?;
        self.insert_claims(sends, &occurrences, &new, None, now)?;
        Ok(answers)
    }

    /// The answers of [`Ledger::claim_all`], and what it inserts: each send's occurrence as
    /// its column holds it, and the new rows (an index into `sends`, the new retry key).
    #[allow(clippy::type_complexity)]
    fn answer_claims(
        &mut self,
        sends: &[(SendKey<'_>, SendDetails<'_>)],
        now: DateTime<Utc>,
    ) -> Result<(Vec<Claim>, Vec<String>, Vec<(usize, String)>), LedgerError> {
        let occurrences: Vec<String> = sends.iter().map(|(k, _)| stamp(k.occurrence)).collect();
        let mut found = self.find_claimed(sends, &occurrences)?;
        let mut retry_keys = RetryKeys::default();
        let mut answers = Vec::with_capacity(sends.len());
        // The rows to insert (index into `sends`, retry key), each key once.
        let mut new = Vec::new();
        for (index, ((key, details), occurrence)) in sends.iter().zip(&occurrences).enumerate() {
            let id = (
                key.sink.as_str(),
                key.patient,
                key.step,
                occurrence.as_str(),
            );
            let answer = match found.get_mut(&id) {
                Some(row) if matches!(row.status, SendStatus::Held | SendStatus::Blocked) => {
                    self.reopen(key, details, now)?;
                    row.status = SendStatus::Pending;
                    resume(row)
                }
                Some(row) if row.status == SendStatus::Pending => resume(row),
                Some(row) => Claim::Done(row.status),
                None => {
                    let retry_key = retry_keys.next();
                    new.push((index, retry_key.clone()));
                    // A second claim of the key in this batch finds this one pending.
                    let row = Found {
                        status: SendStatus::Pending,
                        retry_key: retry_key.clone(),
                        attempts: 0,
                    };
                    found.insert(id, row);
                    Claim::New { retry_key }
                }
            };
            answers.push(answer);
        }
        drop(found);
        Ok((answers, occurrences, new))
    }

    /// The rows already in the ledger for the keys of `sends`, by key.
    fn find_claimed<'k>(
        &self,
        sends: &'k [(SendKey<'_>, SendDetails<'_>)],
        occurrences: &'k [String],
    ) -> Result<FoundRows<'k>, LedgerError> {
        let mut found = HashMap::with_capacity_and_hasher(sends.len(), keyed_hasher());
        let keys: Vec<KeyColumns<'_>> = (sends.iter().zip(occurrences))
            .map(|((key, _), occurrence)| {
                let key = (
                    key.sink.as_str(),
                    key.patient,
                    key.step,
                    occurrence.as_str(),
                );
                key
            })
            .collect();
        for chunk in chunks(&keys) {
            if !self.may_hold_any(chunk)? {
                continue;
            }
            let sql = FIND_SQL.get(chunk.len(), CLAIM_CHUNK, find_sql);
            let positions: Vec<i64> = (0..chunk.len() as i64).collect();
            let values: Vec<&dyn rusqlite::ToSql> = (chunk.iter().zip(&positions))
                .flat_map(|(key, at)| [at as &dyn rusqlite::ToSql, &key.0, &key.1, &key.2, &key.3])
                .collect();
            let mut select = self.conn.prepare_cached(sql).map_err(|e| self.fail(e))?;
            let mut rows = select.query(values.as_slice()).map_err(|e| self.fail(e))?;
            while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
                let read = || -> rusqlite::Result<(usize, Found)> {
                    Ok((
                        row.get(0)?,
                        Found {
                            status: row.get(1)?,
                            retry_key: row.get(2)?,
                            attempts: row.get(3)?,
                        },
                    ))
                };
                let (at, row) = read().map_err(|e| self.fail(e))?;
                if let Some(&key) = chunk.get(at) {
                    found.insert(key, row);
                }
            }
        }
        Ok(found)
    }

    /// Whether the ledger may hold a row for one of `keys`: false when, for each sink among
    /// them, it has no row of that sink whose patient lies between the least and the greatest
    /// of theirs. Then the chunk's look-up (a join of 256 keys, each a search of `sends`) would
    /// find nothing, and one or two range searches said so: on a first run, whose export comes
    /// in id order, every chunk's patients come after every row written before it. SQLite
    /// compares the `patient` column's text byte by byte (its default collation, `BINARY`), as
    /// Rust orders `str`, so no key equal to a row's can lie outside the range searched.
    fn may_hold_any(&self, keys: &[KeyColumns<'_>]) -> Result<bool, LedgerError> {
        for sink in [SinkKind::Line.as_str(), SinkKind::Outbox.as_str()] {
            let mut patients = (keys.iter()).filter(|key| key.0 == sink).map(|key| key.1);
            let Some(first) = patients.next() else {
                continue;
            };
            let (least, greatest) = patients.fold((first, first), |(least, greatest), patient| {
                (least.min(patient), greatest.max(patient))
            });
            let held: bool = (self.conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM sends
                                WHERE sink = ?1 AND patient >= ?2 AND patient <= ?3)",
            ))
            .and_then(|mut select| select.query_row((sink, least, greatest), |row| row.get(0)))
            .map_err(|e| self.fail(e))?;
            if held {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Inserts the pending rows `new` (an index into `sends` and its retry key). A key already
    /// in the ledger is an error, never a second row: the look-up in the same transaction
    /// found none. Inside a transaction only: a statement that fails part-way rolls the whole
    /// transaction back (see [`insert_sql`]), so that none of its rows is ever committed.
    fn insert_claims(
        &mut self,
        sends: &[(SendKey<'_>, SendDetails<'_>)],
        occurrences: &[String],
        new: &[(usize, String)],
        sent_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let now = unix(now);
        // Pending, or sent at `sent_at` after one attempt (an outbox send recorded with its
        // claim, see `OutboxClaims`).
        let (status, attempts) = match sent_at {
            Some(_) => ("sent", 1),
            None => ("pending", 0),
        };
        let sent_at = sent_at.map(unix);
        for chunk in chunks(new) {
            let sql = INSERT_SQL.get(chunk.len(), CLAIM_CHUNK, insert_sql);
            // Per row: due and expiry instants, and the outbox's length as a signed integer.
            let mut owned = Vec::with_capacity(chunk.len());
            for &(index, _) in chunk {
                let details = &sends[index].1;
                let from = (details.outbox_from).and_then(|from| i64::try_from(from).ok());
                owned.push((unix(details.due_at), unix(details.expires_at), from));
            }
            let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(4 + chunk.len() * 10);
            values.extend([&now as &dyn rusqlite::ToSql, &status, &attempts, &sent_at]);
            for ((index, retry_key), (due_at, expires_at, from)) in chunk.iter().zip(&owned) {
                let (key, details) = &sends[*index];
                let sink: &'static &'static str = match key.sink {
                    SinkKind::Line => &"line",
                    SinkKind::Outbox => &"outbox",
                };
                values.extend([
                    sink as &dyn rusqlite::ToSql,
                    &key.patient,
                    &key.step,
                    &occurrences[*index],
                    &details.variant,
                    &details.template,
                    retry_key,
                    due_at,
                    expires_at,
                    from,
                ]);
            }
            debug_assert!(self.in_batch, "OR FAIL rows outside a transaction");
            let inserted = (self.conn.prepare_cached(sql))
                .and_then(|mut insert| insert.execute(values.as_slice()));
            if let Err(error) = inserted {
                return Err(self.abandon_batch(error));
            }
        }
        Ok(())
    }
}

/// An outbox batch whose rows are recorded sent before its lines are written: where in the
/// outbox its lines begin, and when its rows were sent (the earliest, if several statements
/// recorded them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnwrittenBatch {
    pub from: u64,
    pub sent_at: DateTime<Utc>,
}

/// An outbox send's row written as sent with its claim, in one statement, instead of a pending
/// row that a second statement settles once the line is written. The protocol (and why it
/// delivers each send exactly once) is in src/app/run/cycle/pass.rs. Only a ledger with one
/// writer has it (SQLite, whose run holds the ledger's lock): on a shared ledger a claim must
/// be seen by the other workers as soon as it is made.
pub trait OutboxClaims {
    /// [`Ledger::claim_all`]'s answers, without writing the rows of new sends: each
    /// [`Claim::New`] is written by [`OutboxClaims::record_claims`] in the same transaction.
    fn claim_unrecorded(
        &mut self,
        sends: &[(SendKey<'_>, SendDetails<'_>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, LedgerError>;

    /// Writes the rows of new claims `rows` (each with its retry key): pending, or sent as
    /// part of the batch `sent` (whose mark it writes unless the batch already has one).
    fn record_claims(
        &mut self,
        rows: &[(SendKey<'_>, SendDetails<'_>, &str)],
        sent: Option<UnwrittenBatch>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError>;

    /// The batch's lines are written: its mark goes.
    fn lines_written(&mut self) -> Result<(), LedgerError>;

    /// Rows recorded sent whose line was not written (each with its retry key): pending
    /// again, never attempted, with `why`.
    fn reopen_unwritten(
        &mut self,
        sends: &[(SendKey<'_>, &str)],
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError>;

    /// The marked batch a run left (it stopped before its lines were known to be written):
    /// where its lines begin and its rows' retry keys.
    fn unwritten_keys(&self) -> Result<Option<(u64, Vec<String>)>, LedgerError>;

    /// Reopens the marked batch's rows whose retry key is not `written`, and removes the
    /// mark; says how many were reopened.
    fn recover_unwritten(
        &mut self,
        written: &dyn Fn(&str) -> bool,
        now: DateTime<Utc>,
    ) -> Result<usize, LedgerError>;
}

impl Ledger {
    /// See [`OutboxClaims::claim_unrecorded`]. The look-up needs no transaction: the run
    /// holds the ledger's lock, so nobody inserts before the rows are recorded.
    pub fn claim_unrecorded(
        &mut self,
        sends: &[(SendKey<'_>, SendDetails<'_>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, LedgerError> {
        self.answer_claims(sends, now)
            .map(|(answers, _, _)| answers)
    }

    /// See [`OutboxClaims::record_claims`].
    pub fn record_claims(
        &mut self,
        rows: &[(SendKey<'_>, SendDetails<'_>, &str)],
        sent: Option<UnwrittenBatch>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        if rows.is_empty() {
            return Ok(());
        }
        if !self.in_batch {
            // In a transaction of their own: a failing statement's rows are undone with it.
            self.begin()?;
            return match self.record_claims(rows, sent, now) {
                Ok(()) => self.commit(),
                Err(error) => {
                    // Whatever failed, nothing of the rows stays (the statement's own
                    // roll-back, if it made one, is cleared too); the error said is the
                    // write's own.
                    self.abandoned = false;
                    let _ = self.rollback();
                    Err(error)
                }
            };
        }
        let sends: Vec<(SendKey<'_>, SendDetails<'_>)> = (rows.iter())
            .map(|(key, details, _)| (key.clone(), details.clone()))
            .collect();
        let occurrences: Vec<String> = sends.iter().map(|(k, _)| stamp(k.occurrence)).collect();
        let new: Vec<(usize, String)> = (rows.iter().enumerate())
            .map(|(index, (_, _, retry_key))| (index, (*retry_key).to_owned()))
            .collect();
        if let Some(batch) = sent {
            self.mark_unwritten(batch)?;
        }
        let sent_at = sent.map(|batch| batch.sent_at);
        self.insert_claims(&sends, &occurrences, &new, sent_at, now)
    }
}

impl OutboxClaims for Ledger {
    fn claim_unrecorded(
        &mut self,
        sends: &[(SendKey<'_>, SendDetails<'_>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, LedgerError> {
        Ledger::claim_unrecorded(self, sends, now)
    }

    fn record_claims(
        &mut self,
        rows: &[(SendKey<'_>, SendDetails<'_>, &str)],
        sent: Option<UnwrittenBatch>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        Ledger::record_claims(self, rows, sent, now)
    }

    fn lines_written(&mut self) -> Result<(), LedgerError> {
        Ledger::lines_written(self)
    }

    fn reopen_unwritten(
        &mut self,
        sends: &[(SendKey<'_>, &str)],
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        Ledger::reopen_unwritten(self, sends, why, now)
    }

    fn unwritten_keys(&self) -> Result<Option<(u64, Vec<String>)>, LedgerError> {
        Ledger::unwritten_keys(self)
    }

    fn recover_unwritten(
        &mut self,
        written: &dyn Fn(&str) -> bool,
        now: DateTime<Utc>,
    ) -> Result<usize, LedgerError> {
        Ledger::recover_unwritten(self, written, now)
    }
}

impl Ledger {
    /// Rolls the open transaction back after `error`, a write that may have failed part-way
    /// (a multi-row `INSERT OR FAIL` keeps the rows it wrote before the failing one), and
    /// returns `error`. The transaction is then as if the process had died before its commit,
    /// which the pass's exactly-once argument covers (src/app/run/cycle/pass.rs); the next
    /// commit fails, so that the pass never acts on the batch as committed.
    pub(super) fn abandon_batch(&mut self, error: rusqlite::Error) -> LedgerError {
        let error = self.fail(error);
        self.abandoned = self.in_batch || !self.conn.is_autocommit();
        // A roll-back that fails (the connection is gone) leaves the next commit failing all
        // the same, and that commit tries the roll-back again.
        let _ = self.rollback();
        error
    }

    /// A held or blocked send claimed again: pending from here, and an outbox line it gets
    /// comes after today's end of the outbox. Nothing of it left before; a crash before it
    /// settles leaves it where recovery looks.
    pub(super) fn reopen(
        &self,
        key: &SendKey<'_>,
        details: &SendDetails<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn
            .prepare_cached(
                "UPDATE sends SET status = 'pending', updated_at = ?5,
                                  outbox_from = coalesce(?6, outbox_from),
                                  problem = NULL, problem_at = NULL
                 WHERE sink = ?1 AND patient = ?2 AND step = ?3 AND occurrence = ?4",
            )
            .and_then(|mut update| {
                update.execute(rusqlite::params![
                    key.sink.as_str(),
                    key.patient,
                    key.step,
                    stamp(key.occurrence),
                    unix(now),
                    details
                        .outbox_from
                        .and_then(|from| i64::try_from(from).ok()),
                ])
            })
            .map_err(|e| self.fail(e))?;
        Ok(())
    }
}

/// New sends' retry keys, random (version 4) UUIDs as [`uuid::Uuid::new_v4`] makes them, from
/// one `getrandom` call per [`RetryKeys::KEYS`] keys instead of one each (a first run at
/// 1,000,000 patients made ~200,000 such calls).
#[derive(Default)]
struct RetryKeys {
    random: Vec<u8>,
    /// The bytes of `random` used already.
    used: usize,
}

impl RetryKeys {
    const KEYS: usize = 256;

    fn next(&mut self) -> String {
        if self.used == self.random.len() {
            self.random.resize(16 * RetryKeys::KEYS, 0);
            self.used = 0;
            if getrandom::fill(&mut self.random).is_err() {
                // What `new_v4` does, one key at a time (it panics when there is no
                // randomness, as before).
                self.random.clear();
                return uuid::Uuid::new_v4().to_string();
            }
        }
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&self.random[self.used..self.used + 16]);
        self.used += 16;
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

/// Pending again, as [`Ledger::claim`] answers a row left pending, held or blocked.
fn resume(row: &Found) -> Claim {
    Claim::Resume {
        retry_key: row.retry_key.clone(),
        attempts: row.attempts,
    }
}

/// `items` in chunks of a power of two, at most [`CLAIM_CHUNK`]: a handful of statement
/// shapes, each prepared once and cached.
fn chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = CLAIM_CHUNK.min(1 << rest.len().ilog2());
        let (chunk, later) = rest.split_at(size);
        rest = later;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests;
