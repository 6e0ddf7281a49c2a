//! Claims and settlements on PostgreSQL, shared by many workers.
//!
//! A claim inserts the send's row with a new retry key and this worker's lease; the primary key
//! (clinic, sink, patient, step, occurrence) lets only one insert win. A worker that finds the
//! row already there reads it without a lock: settled rows are done, rows under another
//! worker's live lease are that worker's. A row still open (pending, held, blocked) and free is
//! locked with `FOR UPDATE SKIP LOCKED` (a row another transaction holds is skipped at once,
//! never waited for) and taken over, keeping its retry key: the request a second worker makes
//! is the one the first made, and LINE accepts a retry key once. Settling clears the lease and
//! never undoes a settlement (a worker whose lease ran out may settle after another did).
//!
//! No lock is waited for but one: an insert waits for another worker's uncommitted insert of
//! the same send. Every worker reads the export in the same order, so two never wait for each
//! other's inserts; settlements and expiry skip locked rows, so nothing waits for them either.
//!
//! Times in `lease_until` are the database's (`clock_timestamp()`), so workers on machines
//! whose clocks differ agree; the pass's `now` (which `--now` may set) is what the rows record.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use postgres::Client;

use super::super::{
    Claim, LedgerError, PendingInOutbox, RecentSend, SendDetails, SendKey, SendStatus, Settlement,
    SinkKind,
};
use super::{PgLedger, Prepared};

/// Inserts the claim and, in the same round trip, reads the row it met if there was one (as
/// `EXISTING` does): a worker behind another meets a row for nearly every send, and a second
/// round trip for each was most of what it cost. The read sees the rows committed when the
/// statement began: a row another worker commits while this insert waits for it reads as none
/// (taken), as a row not yet committed does.
const INSERT: &str = "
    WITH inserted AS (
        INSERT INTO steprule_sends (clinic, sink, patient, step, occurrence, variant, template,
                                    status, retry_key, attempts, due_at, expires_at, created_at,
                                    updated_at, outbox_from, claimed_by, lease_until)
        VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, 0, $9, $10, $11, $11, $12, $13,
                clock_timestamp() + make_interval(secs => $14))
        ON CONFLICT (clinic, sink, patient, step, occurrence) DO NOTHING
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM inserted), s.status, s.retry_key,
           coalesce(s.claimed_by <> $13 AND s.lease_until > clock_timestamp(), false)
    FROM (SELECT 1) AS one
    LEFT JOIN steprule_sends s
      ON s.clinic = $1 AND s.sink = $2 AND s.patient = $3 AND s.step = $4
     AND s.occurrence = $5";

/// [`INSERT`] for a batch of sends (one array per column, one element per send, in order):
/// one round trip for all of them instead of one each. The rows met are read as `INSERT` reads
/// them (the snapshot the statement began with), so each send's answer is the one `INSERT`
/// alone would give. The keys in one batch are distinct (the caller checks).
const INSERT_MANY: &str = "
    WITH input AS (
        SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[],
                             $6::text[], $7::text[], $8::text[], $9::timestamptz[],
                             $10::timestamptz[], $12::bigint[])
            WITH ORDINALITY
            AS u(sink, patient, step, occurrence, variant, template, retry_key, due_at,
                 expires_at, outbox_from, ord)
    ), inserted AS (
        INSERT INTO steprule_sends (clinic, sink, patient, step, occurrence, variant, template,
                                    status, retry_key, attempts, due_at, expires_at, created_at,
                                    updated_at, outbox_from, claimed_by, lease_until)
        SELECT $1, sink, patient, step, occurrence, variant, template, 'pending', retry_key, 0,
               due_at, expires_at, $11, $11, outbox_from, $13,
               clock_timestamp() + make_interval(secs => $14)
        FROM input ORDER BY ord
        ON CONFLICT (clinic, sink, patient, step, occurrence) DO NOTHING
        RETURNING sink, patient, step, occurrence
    )
    SELECT i.ord, (n.patient IS NOT NULL), s.status, s.retry_key, coalesce(s.leased, false)
    FROM input i
    LEFT JOIN inserted n
      ON n.sink = i.sink AND n.patient = i.patient AND n.step = i.step
     AND n.occurrence = i.occurrence
    -- Each row met through the primary key: a plain join was planned as a scan of the whole
    -- table per batch (the generic plan guesses the arrays' length), which grew with the ledger.
    LEFT JOIN LATERAL (
        SELECT s.status, s.retry_key,
               coalesce(s.claimed_by <> $13 AND s.lease_until > clock_timestamp(), false)
                   AS leased
        FROM steprule_sends s
        WHERE s.clinic = $1 AND s.sink = i.sink AND s.patient = i.patient AND s.step = i.step
          AND s.occurrence = i.occurrence
    ) s ON true
    ORDER BY i.ord";

/// Sends claimed with one [`INSERT_MANY`] at most: a bound on the statement's size.
const CLAIM_CHUNK: usize = 256;

/// The existing row as committed, without locking it: whether another worker's lease on it is
/// live. A lock here would be held to the end of this worker's batch, and a worker settling the
/// row would wait for it while this worker waits for that worker's claims: a deadlock.
const EXISTING: &str = "
    SELECT status, retry_key, attempts,
           coalesce(claimed_by <> $6 AND lease_until > clock_timestamp(), false)
    FROM steprule_sends
    WHERE clinic = $1 AND sink = $2 AND patient = $3 AND step = $4 AND occurrence = $5";

/// The row to take over, locked, if it is still open and nobody else's lease on it is live;
/// nothing if another transaction holds it (being claimed or settled), without waiting.
const LOCK: &str = "
    SELECT attempts FROM steprule_sends
    WHERE clinic = $1 AND sink = $2 AND patient = $3 AND step = $4 AND occurrence = $5
      AND status IN ('pending', 'held', 'blocked')
      AND (claimed_by IS NULL OR claimed_by = $6 OR lease_until <= clock_timestamp())
    FOR UPDATE SKIP LOCKED";

/// Takes an open row over (locked by `LOCK` in this transaction). A held or blocked send
/// is pending again from here, its problem cleared, as on SQLite.
const TAKE_OVER: &str = "
    UPDATE steprule_sends
    SET claimed_by = $6, lease_until = clock_timestamp() + make_interval(secs => $7),
        status = 'pending',
        updated_at = CASE WHEN status = 'pending' THEN updated_at ELSE $8 END,
        outbox_from = CASE WHEN status = 'pending' THEN outbox_from
                           ELSE coalesce($9, outbox_from) END,
        problem = CASE WHEN status = 'pending' THEN problem END,
        problem_at = CASE WHEN status = 'pending' THEN problem_at END
    WHERE clinic = $1 AND sink = $2 AND patient = $3 AND step = $4 AND occurrence = $5";

/// Settles a batch of claimed rows (one array per column, one element per send), each unless
/// another transaction holds it: a worker whose lease ran out while it was still sending leaves
/// the row to the worker that took it over (which sends the same retry key, meets LINE's 409,
/// and settles it). Never waits for a lock, so a settling worker and a claiming one cannot wait
/// for each other. One statement per batch instead of one per send: settling was half the
/// round trips a send cost. The update reaches each locked row by its `ctid` (it cannot move
/// while locked): joined by key, it was planned as a scan of the whole table per batch, and one
/// worker's rate fell from ~18,000 sends/s at 20,000 sends to ~7,000 at 100,000.
const SETTLE: &str = "
    WITH settled AS (
        SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                             $7::text[], $8::bigint[], $9::timestamptz[], $10::timestamptz[],
                             $11::text[], $12::text[], $13::text[])
            AS u(sink, patient, step, occurrence, retry_key, status, attempts, at, sent_at,
                 request_id, note, error)
    ), locked AS (
        -- Each row through the primary key. `NOT IN` the settled statuses (the same rows, by
        -- the CHECK constraint) rather than `IN` the open ones, whose partial index the planner
        -- would otherwise scan whole for every settled row while many sends are in flight.
        SELECT u.*, l.row_id FROM settled u CROSS JOIN LATERAL (
            SELECT s.ctid AS row_id FROM steprule_sends s
            WHERE s.clinic = $1 AND s.sink = u.sink AND s.patient = u.patient
              AND s.step = u.step AND s.occurrence = u.occurrence
              AND s.retry_key = u.retry_key
              AND s.status NOT IN ('sent', 'failed', 'expired', 'skipped')
            FOR UPDATE SKIP LOCKED) l
    )
    UPDATE steprule_sends s
    SET status = u.status, attempts = s.attempts + u.attempts, updated_at = u.at,
        sent_at = coalesce(u.sent_at, s.sent_at),
        line_request_id = coalesce(u.request_id, s.line_request_id),
        note = coalesce(u.note, s.note), last_error = u.error,
        problem = CASE WHEN u.status IN ('failed', 'held', 'expired', 'skipped') THEN u.status
                       ELSE s.problem END,
        problem_at = CASE WHEN u.status IN ('failed', 'held', 'expired', 'skipped') THEN u.at
                          ELSE s.problem_at END,
        claimed_by = NULL, lease_until = NULL
    FROM locked u
    WHERE s.ctid = u.row_id";

/// What a claim's insert met: whether it inserted the row, else the row as committed (none
/// if another worker's insert has not committed yet).
struct Met {
    inserted: bool,
    status: Option<String>,
    retry_key: Option<String>,
    leased_elsewhere: bool,
}

/// Settlements waiting for their batch's commit, column by column (as `SETTLE` takes them).
#[derive(Default)]
pub(super) struct Unsettled {
    sink: Vec<&'static str>,
    patient: Vec<String>,
    step: Vec<String>,
    occurrence: Vec<DateTime<Utc>>,
    retry_key: Vec<String>,
    status: Vec<&'static str>,
    attempts: Vec<i64>,
    at: Vec<DateTime<Utc>>,
    sent_at: Vec<Option<DateTime<Utc>>>,
    request_id: Vec<Option<String>>,
    note: Vec<Option<String>>,
    error: Vec<Option<String>>,
    /// The retry keys above: a send settled twice in one batch flushes the first.
    keys: HashSet<String>,
}

/// Settlements sent to the database in one statement at most: a bound on its size.
const MOST_UNSETTLED: usize = 4096;

pub(super) fn prepare(client: &mut Client) -> Result<Prepared, postgres::Error> {
    Ok(Prepared {
        insert: client.prepare(INSERT)?,
        insert_many: client.prepare(INSERT_MANY)?,
        existing: client.prepare(EXISTING)?,
        lock: client.prepare(LOCK)?,
        take_over: client.prepare(TAKE_OVER)?,
        settle: client.prepare(SETTLE)?,
    })
}

impl PgLedger {
    pub(super) fn claim_send(
        &mut self,
        key: &SendKey<'_>,
        details: &SendDetails<'_>,
        now: DateTime<Utc>,
    ) -> Result<Claim, postgres::Error> {
        let retry_key = uuid::Uuid::new_v4().to_string();
        let lease = self.lease_seconds();
        let client = self.client.get_mut();
        let sink = key.sink.as_str();
        let outbox_from = details.outbox_from.and_then(|f| i64::try_from(f).ok());
        let met = client.query_one(
            &self.prepared.insert,
            &[
                &self.clinic,
                &sink,
                &key.patient,
                &key.step,
                &key.occurrence,
                &details.variant,
                &details.template,
                &retry_key,
                &details.due_at,
                &details.expires_at,
                &now,
                &outbox_from,
                &self.worker,
                &lease,
            ],
        )?;
        let met = Met {
            inserted: met.get(0),
            status: met.get(1),
            retry_key: met.get(2),
            leased_elsewhere: met.get(3),
        };
        self.answer(key, details, now, retry_key, met)
    }

    /// [`PgLedger::claim_send`] for each of `sends` in order, with the same answers, in one
    /// round trip per [`CLAIM_CHUNK`] sends (more only for rows met that may be taken over).
    pub(super) fn claim_sends(
        &mut self,
        sends: &[(SendKey<'_>, SendDetails<'_>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, postgres::Error> {
        let mut claims = Vec::with_capacity(sends.len());
        for chunk in sends.chunks(CLAIM_CHUNK) {
            let distinct: HashSet<(&str, &str, &str, DateTime<Utc>)> = (chunk.iter())
                .map(|(k, _)| (k.sink.as_str(), k.patient, k.step, k.occurrence))
                .collect();
            if distinct.len() < chunk.len() {
                // A send twice in one chunk: one by one, each seeing the one before.
                for (key, details) in chunk {
                    claims.push(self.claim_send(key, details, now)?);
                }
                continue;
            }
            let retry_keys: Vec<String> = (chunk.iter())
                .map(|_| uuid::Uuid::new_v4().to_string())
                .collect();
            let sink: Vec<&str> = chunk.iter().map(|(k, _)| k.sink.as_str()).collect();
            let patient: Vec<&str> = chunk.iter().map(|(k, _)| k.patient).collect();
            let step: Vec<&str> = chunk.iter().map(|(k, _)| k.step).collect();
            let template: Vec<&str> = chunk.iter().map(|(_, d)| d.template).collect();
            let occurrence: Vec<DateTime<Utc>> = chunk.iter().map(|(k, _)| k.occurrence).collect();
            let variant: Vec<Option<&str>> = chunk.iter().map(|(_, d)| d.variant).collect();
            let due_at: Vec<DateTime<Utc>> = chunk.iter().map(|(_, d)| d.due_at).collect();
            let expires_at: Vec<DateTime<Utc>> = chunk.iter().map(|(_, d)| d.expires_at).collect();
            let outbox_from: Vec<Option<i64>> = (chunk.iter())
                .map(|(_, d)| d.outbox_from.and_then(|f| i64::try_from(f).ok()))
                .collect();
            let lease = self.lease_seconds();
            let rows = self.client.get_mut().query(
                &self.prepared.insert_many,
                &[
                    &self.clinic,
                    &sink,
                    &patient,
                    &step,
                    &occurrence,
                    &variant,
                    &template,
                    &retry_keys,
                    &due_at,
                    &expires_at,
                    &now,
                    &outbox_from,
                    &self.worker,
                    &lease,
                ],
            )?;
            // One row per send, in order (LEFT JOINs on distinct keys and the primary key).
            if rows.len() != chunk.len() {
                // Cannot happen; if it did, each send is claimed again alone, which finds the
                // rows just inserted as this worker's and resumes them with their retry keys.
                for (key, details) in chunk {
                    claims.push(self.claim_send(key, details, now)?);
                }
                continue;
            }
            for ((row, (key, details)), retry_key) in rows.iter().zip(chunk).zip(retry_keys) {
                let met = Met {
                    inserted: row.get(1),
                    status: row.get(2),
                    retry_key: row.get(3),
                    leased_elsewhere: row.get(4),
                };
                claims.push(self.answer(key, details, now, retry_key, met)?);
            }
        }
        Ok(claims)
    }

    /// What a claim comes to, given what its insert met.
    fn answer(
        &mut self,
        key: &SendKey<'_>,
        details: &SendDetails<'_>,
        now: DateTime<Utc>,
        retry_key: String,
        met: Met,
    ) -> Result<Claim, postgres::Error> {
        if met.inserted {
            return Ok(Claim::New { retry_key });
        }
        let Some(met_key) = met.retry_key else {
            // Inserted by another worker whose claim has not committed yet.
            return Ok(Claim::Taken);
        };
        let lease = self.lease_seconds();
        let sink = key.sink.as_str();
        let outbox_from = details.outbox_from.and_then(|f| i64::try_from(f).ok());
        // A row this worker settled in this batch and has not written yet: written first, and
        // read again, so that what is read is what this worker knows.
        let settled_here = self.unsettled.keys.contains(&met_key);
        if settled_here {
            self.write_settlements()?;
        }
        let key_params: [&(dyn postgres::types::ToSql + Sync); 5] = [
            &self.clinic,
            &sink,
            &key.patient,
            &key.step,
            &key.occurrence,
        ];
        let mut existing = key_params.to_vec();
        existing.push(&self.worker);
        let client = self.client.get_mut();
        let (status, retry_key, leased_elsewhere): (String, String, bool) = if settled_here {
            match client.query_opt(&self.prepared.existing, &existing)? {
                Some(row) => (row.get(0), row.get(1), row.get(3)),
                None => return Ok(Claim::Taken),
            }
        } else {
            (
                met.status.unwrap_or_default(),
                met_key,
                met.leased_elsewhere,
            )
        };
        let status = status.as_str();
        // The CHECK constraint admits only known statuses; a newer schema is refused at open.
        let status = SendStatus::parse(status).unwrap_or(SendStatus::Failed);
        if !matches!(
            status,
            SendStatus::Pending | SendStatus::Held | SendStatus::Blocked
        ) {
            return Ok(Claim::Done(status));
        }
        if leased_elsewhere {
            return Ok(Claim::Taken);
        }
        let Some(locked) = client.query_opt(&self.prepared.lock, &existing)? else {
            // Another worker took it, or is settling it, since it was read.
            return Ok(Claim::Taken);
        };
        let attempts: i64 = locked.get(0);
        let mut take_over = key_params.to_vec();
        take_over.extend_from_slice(&[&self.worker, &lease, &now, &outbox_from]);
        client.execute(&self.prepared.take_over, &take_over)?;
        Ok(Claim::Resume {
            retry_key,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        })
    }

    /// Records how a send ended, with the batch: written when the batch commits (see
    /// [`PgLedger::write_settlements`]), or at once outside a batch.
    pub(super) fn settle_send(
        &mut self,
        key: &SendKey<'_>,
        retry_key: &str,
        attempts: u32,
        settlement: &Settlement,
        now: DateTime<Utc>,
    ) -> Result<(), postgres::Error> {
        if self.unsettled.keys.contains(retry_key) || self.unsettled.keys.len() >= MOST_UNSETTLED {
            self.write_settlements()?;
        }
        let (sent_at, request_id, note, error) = match settlement {
            Settlement::Sent { request_id, note } => {
                (Some(now), request_id.clone(), note.clone(), None)
            }
            Settlement::Failed(why)
            | Settlement::Expired(why)
            | Settlement::RetryLater(why)
            | Settlement::Held(why)
            | Settlement::Skipped(why) => (None, None, None, Some(why.clone())),
            Settlement::Blocked => (
                None,
                None,
                None,
                Some("the patient has blocked the account".to_owned()),
            ),
        };
        let batch = &mut self.unsettled;
        batch.sink.push(key.sink.as_str());
        batch.patient.push(key.patient.to_owned());
        batch.step.push(key.step.to_owned());
        batch.occurrence.push(key.occurrence);
        batch.retry_key.push(retry_key.to_owned());
        batch.status.push(settlement.status().as_str());
        batch.attempts.push(i64::from(attempts));
        batch.at.push(now);
        batch.sent_at.push(sent_at);
        batch.request_id.push(request_id);
        batch.note.push(note);
        batch.error.push(error);
        batch.keys.insert(retry_key.to_owned());
        if !self.in_batch {
            self.write_settlements()?;
        }
        Ok(())
    }

    /// Writes the settlements recorded since the last write, in one statement.
    pub(super) fn write_settlements(&mut self) -> Result<(), postgres::Error> {
        if self.unsettled.keys.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.unsettled);
        self.client.get_mut().execute(
            &self.prepared.settle,
            &[
                &self.clinic,
                &batch.sink,
                &batch.patient,
                &batch.step,
                &batch.occurrence,
                &batch.retry_key,
                &batch.status,
                &batch.attempts,
                &batch.at,
                &batch.sent_at,
                &batch.request_id,
                &batch.note,
                &batch.error,
            ],
        )?;
        Ok(())
    }

    /// Open rows whose time has passed, unless a worker's lease on them is live (it is
    /// sending them, and settles them itself) or another transaction holds them (the next
    /// pass expires those).
    pub(super) fn expire(
        &mut self,
        sink: SinkKind,
        now: DateTime<Utc>,
    ) -> Result<usize, postgres::Error> {
        let expired = self.client.get_mut().execute(
            "UPDATE steprule_sends
             SET status = 'expired', updated_at = $3, problem = 'expired', problem_at = $3
             WHERE (clinic, sink, patient, step, occurrence) IN (
                 SELECT clinic, sink, patient, step, occurrence FROM steprule_sends
                 WHERE clinic = $1 AND sink = $2 AND status IN ('pending', 'held', 'blocked')
                   AND expires_at <= $3
                   AND (lease_until IS NULL OR lease_until <= clock_timestamp())
                 FOR UPDATE SKIP LOCKED)",
            &[&self.clinic, &sink.as_str(), &now],
        )?;
        Ok(usize::try_from(expired).unwrap_or(usize::MAX))
    }

    /// As SQLite's `recent_sends`: sent rows not yet expired, or sent in the last eight days.
    /// Streamed, so that a long history is never held in memory at once.
    pub(super) fn recent(
        &self,
        sink: SinkKind,
        now: DateTime<Utc>,
        each: &mut dyn FnMut(RecentSend<'_>),
    ) -> Result<(), LedgerError> {
        use postgres::fallible_iterator::FallibleIterator;
        let since = now - chrono::Duration::days(8);
        let mut client = self.client.borrow_mut();
        let sink = sink.as_str();
        let params: [&(dyn postgres::types::ToSql + Sync); 4] = [&self.clinic, &sink, &now, &since];
        let mut rows = client
            .query_raw(
                "SELECT patient, step, occurrence, sent_at FROM steprule_sends
                 WHERE clinic = $1 AND sink = $2 AND status = 'sent' AND expires_at > $4
                   AND (expires_at > $3 OR sent_at >= $4)",
                params,
            )
            .map_err(|e| self.fail(e))?;
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            let sent_at: Option<DateTime<Utc>> = row.get(3);
            if let Some(sent_at) = sent_at {
                each(RecentSend {
                    patient: row.get(0),
                    step: row.get(1),
                    occurrence: row.get(2),
                    sent_at,
                });
            }
        }
        Ok(())
    }

    pub(super) fn any_sent(&self, sink: SinkKind) -> Result<bool, LedgerError> {
        self.client
            .borrow_mut()
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM steprule_sends
                                WHERE clinic = $1 AND sink = $2 AND status = 'sent')",
                &[&self.clinic, &sink.as_str()],
            )
            .map(|row| row.get(0))
            .map_err(|e| self.fail(e))
    }

    pub(super) fn open_in_outbox(&self) -> Result<PendingInOutbox, LedgerError> {
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT retry_key, outbox_from FROM steprule_sends
                 WHERE clinic = $1 AND sink = 'outbox' AND status IN ('pending', 'held')",
                &[&self.clinic],
            )
            .map_err(|e| self.fail(e))?;
        let mut pending = PendingInOutbox {
            keys: Vec::with_capacity(rows.len()),
            from: u64::MAX,
        };
        for row in rows {
            pending.keys.push(row.get(0));
            let from: Option<i64> = row.get(1);
            pending.from = pending
                .from
                .min(u64::try_from(from.unwrap_or(0)).unwrap_or(0));
        }
        if pending.keys.is_empty() {
            pending.from = 0;
        }
        Ok(pending)
    }

    pub(super) fn counts(&self) -> Result<Vec<(SendStatus, u64)>, LedgerError> {
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT status, count(*) FROM steprule_sends WHERE clinic = $1
                 GROUP BY status ORDER BY status",
                &[&self.clinic],
            )
            .map_err(|e| self.fail(e))?;
        let mut counts = Vec::with_capacity(rows.len());
        for row in rows {
            let status: &str = row.get(0);
            let count: i64 = row.get(1);
            let status = SendStatus::parse(status).map_err(|e| LedgerError::UnknownStatus {
                path: self.describe_for_errors(),
                status: e.0,
            })?;
            counts.push((status, u64::try_from(count).unwrap_or(0)));
        }
        counts.sort();
        Ok(counts)
    }

    fn describe_for_errors(&self) -> String {
        self.shown.clone()
    }
}
