//! The state of one pass: the ledger, the claims waiting for their batch to commit, and what
//! came of the sends so far; and how a committed batch reaches its sink.
//!
//! LINE is reached through delivery's tasks (rate, concurrency, retries), which report each
//! settled send back over a channel. The outbox is a local file: the pass writes a committed
//! batch's lines itself, with one write, with no task, channel or lock per send on the way.
//!
//! On a ledger with one writer (SQLite: the run holds its lock) a new outbox send's row is
//! written as sent with its claim, one INSERT and no second statement to settle it
//! ([`OutboxClaims`]); the batch's transaction also marks the batch as not yet written (where
//! its lines will begin in the outbox, and when its rows were sent). Once it commits, the
//! lines are written with one write; the next transaction removes the mark. Exactly once,
//! whenever the process dies:
//! - before the commit: neither rows nor lines (lines are written only after it); the next run
//!   claims the sends anew;
//! - after the commit, before or during the write: the mark names the batch; the next run
//!   reads the outbox from the batch's start (a torn last line is first set aside), keeps the
//!   rows whose retry key has a line there, and reopens the others as pending, which it then
//!   resumes with the same retry key and writes once;
//! - after the write, before the mark goes: every row's line is found; nothing is reopened.
//!
//! A write that fails inside a batch's transaction (a full disk, a row that should not be
//! there) rolls that transaction back whole and makes its commit fail (the claims' rows are
//! written with `INSERT OR FAIL`, which would keep a failing statement's earlier rows; see
//! ledger/claims.rs): the same as dying before the commit, and the failed commit drops the
//! batch's jobs, so no line or message of it leaves.
//!
//! The write itself runs on a thread of its own (`outbox_lines`) while the pass claims the next
//! batch in the next transaction, and that batch's rows are recorded only when it is flushed:
//! there the write is waited for and settled first (its mark removed, its unwritten rows
//! reopened), then the new rows are written with their own mark, then the commit. So the order
//! above holds for every batch: its commit, then its write, then the commit that removes its
//! mark.
//!
//! Nothing else writes the outbox or the ledger meanwhile (the lock), and a mark is removed
//! only in a transaction that also reopens the batch's rows whose lines did not get written (a
//! full disk, a signal before the write), so a row says sent without its line only while the
//! mark names it. Sends resumed from an earlier run (pending rows) and every send on a shared
//! (PostgreSQL) ledger keep the two steps: the row is pending until the line is written, and
//! the next batch's transaction records it as sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::super::report::{Problems, RunSummary};
use super::super::units::UnitTally;
use crate::app::recipients::BlockedUsers;
use crate::app::AppError;
use crate::deliver::{Answer, Job, Progress, RunClock, Settled, Sink};
use crate::ledger::{
    OutboxClaims, RunLedger, SendDetails, SendKey, Settlement, SinkKind, UnwrittenBatch,
};
use crate::template::Variables;
use outbox_lines::Writing;

mod outbox_lines;

/// Claims committed together before their jobs go to LINE.
const BATCH: usize = 256;
/// Claims committed together before their lines go to the outbox: nobody waits on a local
/// file, and each commit rewrites the pages it touched, so fewer, larger ones cost less.
const OUTBOX_BATCH: usize = 2048;
/// The longest claims wait for their batch to fill while patients are evaluated, so that
/// delivery is never starved when due sends are sparse.
const BATCH_WAIT: Duration = Duration::from_millis(200);
/// The longest a batch holding only observations or settlements (no claims) stays open.
const OBSERVATIONS_WAIT: Duration = Duration::from_secs(5);

/// Where a pass's committed claims go.
pub(in crate::app::run) enum Delivery {
    /// Delivery's tasks (LINE): jobs out on `jobs`, settlements back on `settled`.
    Tasks {
        jobs: Option<mpsc::Sender<Job>>,
        settled: mpsc::UnboundedReceiver<Settled>,
    },
    /// The outbox, written by the pass itself.
    Outbox(OutboxWriter),
}

/// What the pass needs to write the outbox itself.
pub(in crate::app::run) struct OutboxWriter {
    /// Always [`Sink::Outbox`].
    pub sink: Arc<Sink>,
    pub clock: RunClock,
    pub progress: Arc<dyn Progress>,
    /// True on a signal, or when the pass failed: what is not written yet stays pending.
    pub stop: watch::Receiver<bool>,
    /// The batch's lines, reused from batch to batch.
    pub lines: Vec<u8>,
    pub answers: Vec<Answer>,
}

pub(in crate::app::run) struct Pass<'p> {
    pub ledger: Box<dyn RunLedger>,
    pub kind: SinkKind,
    /// New outbox sends' rows are written sent with their claims (see the module's doc).
    pub one_step: bool,
    /// Beside `waiting`: true when the job's row is written sent with its claim.
    pub recorded: Vec<bool>,
    /// New sends of the open batch whose rows are written sent with it, when it is flushed:
    /// (index into `waiting`, what the row records; its `outbox_from` is set then).
    pub sent_new: Vec<(usize, SendDetails<'p>)>,
    /// The pass's instant (the rows' `created_at`).
    pub now: chrono::DateTime<chrono::Utc>,
    /// The committed batch whose lines are being written (outbox passes only).
    pub writing: Option<Writing>,
    /// A spare buffer for `waiting`, while the other one is with the write.
    pub spare: Vec<Job>,
    /// Where the outbox ends: the lines of the open batch start there (outbox passes only).
    pub outbox_end: Option<u64>,
    pub delivery: Delivery,
    /// Claimed in the open transaction; handed to delivery once it commits.
    pub waiting: Vec<Job>,
    pub batch_started: Option<Instant>,
    /// Handed to delivery's tasks and not yet settled.
    pub queued: u64,
    pub problems: Problems,
    pub summary: RunSummary,
    /// The LINE users who have blocked the account, read when the pass began.
    pub blocked: BlockedUsers,
    /// The aggregation units of the LINE pushes settled since the last commit
    /// (`--custom-aggregation` on LINE only).
    pub units: Option<UnitTally>,
    /// The names templates read, resolved once per pass, for the sends the pass renders
    /// itself (tracked links, resumed sends).
    pub variables: Variables,
}

impl Pass<'_> {
    pub fn begin(&mut self) -> Result<(), AppError> {
        if self.batch_started.is_none() {
            self.ledger.begin()?;
            self.batch_started = Some(Instant::now());
        }
        Ok(())
    }

    fn batch(&self) -> usize {
        match self.delivery {
            Delivery::Tasks { .. } => BATCH,
            Delivery::Outbox(_) => OUTBOX_BATCH,
        }
    }

    /// Flushes when the batch is full or has waited long enough; `false` when delivery has
    /// stopped taking jobs (a signal).
    pub fn flush_if_due(&mut self) -> Result<bool, AppError> {
        // Claims wait for their commit before delivery takes them: their batch is short. A
        // batch of observations alone keeps no one waiting, and every commit rewrites the
        // marks' pages it touched (random keys: nearly all of them on a first pass), so it
        // runs longer.
        let wait = if self.waiting.is_empty() {
            OBSERVATIONS_WAIT
        } else {
            BATCH_WAIT
        };
        let due = self.waiting.len() >= self.batch()
            || self.batch_started.is_some_and(|t| t.elapsed() >= wait);
        if due {
            self.flush()
        } else {
            Ok(true)
        }
    }

    /// Commits the open claims, hands their jobs to delivery and records what has settled.
    pub fn flush(&mut self) -> Result<bool, AppError> {
        // The batch before's lines are settled first (its mark goes), then this batch's rows
        // are written with their own mark (see the module's doc).
        let recorded = self.land().and_then(|()| self.record_sent_claims());
        self.batch_started = None;
        let committed = recorded.and_then(|()| self.ledger.commit().map_err(AppError::from));
        if let Err(error) = committed {
            // Not committed (a full disk, a lost server): these claims have no row, so their
            // messages must not leave, not even from `finish`; a later run claims them anew.
            self.waiting.clear();
            self.recorded.clear();
            self.sent_new.clear();
            return Err(error);
        }
        if let Delivery::Outbox(_) = self.delivery {
            return self.start_write();
        }
        let mut open = true;
        // Delivery's tasks settle every job: none is written with its claim.
        self.recorded.clear();
        for job in self.waiting.drain(..) {
            let taken = match &self.delivery {
                Delivery::Tasks { jobs, .. } => jobs
                    .as_ref()
                    .is_some_and(|jobs| jobs.blocking_send(job).is_ok()),
                Delivery::Outbox(_) => false,
            };
            if taken {
                self.queued += 1;
            } else {
                // Delivery stopped (a signal): the row stays pending for the next run.
                open = false;
                self.summary.retry_later += 1;
            }
        }
        self.record_settled(false)?;
        Ok(open)
    }

    /// Closes the queue and records every settlement until delivery has finished.
    pub fn finish(&mut self) -> Result<(), AppError> {
        let flushed = if self.waiting.is_empty() && self.batch_started.is_none() {
            Ok(true)
        } else {
            self.flush()
        };
        let recorded = match &mut self.delivery {
            Delivery::Tasks { jobs, .. } => {
                *jobs = None;
                self.record_settled(true)
            }
            // The last lines' settlements, unless the ledger failed before them (their write
            // is waited for all the same: the run reports its error).
            Delivery::Outbox(_) if flushed.is_ok() => self.land().and_then(|()| {
                if self.batch_started.take().is_some() {
                    self.ledger.commit()?;
                }
                Ok(())
            }),
            Delivery::Outbox(_) => {
                self.wait_write();
                Ok(())
            }
        };
        // Handed to delivery but never attempted (a stop): still pending.
        self.summary.retry_later += self.queued;
        self.queued = 0;
        flushed.map(|_| ()).and(recorded)
    }

    /// Records settlements from delivery's tasks in one transaction per batch; with `wait`,
    /// until delivery ends.
    fn record_settled(&mut self, wait: bool) -> Result<(), AppError> {
        loop {
            let Delivery::Tasks { settled, .. } = &mut self.delivery else {
                return Ok(());
            };
            let first = if wait {
                match settled.blocking_recv() {
                    Some(settled) => settled,
                    None => return Ok(()),
                }
            } else {
                match settled.try_recv() {
                    Ok(settled) => settled,
                    Err(_) => return Ok(()),
                }
            };
            self.ledger.begin()?;
            self.queued = self.queued.saturating_sub(1);
            self.record(first)?;
            for _ in 1..BATCH {
                let Delivery::Tasks { settled, .. } = &mut self.delivery else {
                    break;
                };
                match settled.try_recv() {
                    Ok(settled) => {
                        self.queued = self.queued.saturating_sub(1);
                        self.record(settled)?;
                    }
                    Err(_) => break,
                }
            }
            // In the settlements' transaction: a unit's count is the sends it says were sent.
            if let Some(units) = &mut self.units {
                self.ledger.record_unit_uses(&units.take())?;
            }
            self.ledger.commit()?;
        }
    }

    fn record(&mut self, settled: Settled) -> Result<(), AppError> {
        let key = SendKey {
            sink: self.kind,
            patient: &settled.patient,
            step: &settled.step,
            occurrence: settled.occurrence,
        };
        self.ledger.settle(
            &key,
            &settled.retry_key,
            settled.attempts,
            &settled.settlement,
            settled.at,
        )?;
        if let (Some(units), Settlement::Sent { .. }) = (&mut self.units, &settled.settlement) {
            units.add(&settled.step, settled.variant.as_deref(), settled.at);
        }
        self.count(&settled.step, &settled.settlement);
        Ok(())
    }

    /// Settles a send that never reaches delivery (its template failed), in the open batch.
    /// `new`: the details of a new claim whose row is not written yet (see the module's doc),
    /// written pending first.
    pub fn settle_now(
        &mut self,
        key: &SendKey<'_>,
        new: Option<&SendDetails<'_>>,
        retry_key: &str,
        settlement: Settlement,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), AppError> {
        if let (Some(details), Some(claims)) = (new, self.outbox_claims()) {
            claims.record_claims(&[(key.clone(), details.clone(), retry_key)], None, now)?;
        }
        self.ledger.settle(key, retry_key, 0, &settlement, now)?;
        self.count(key.step, &settlement);
        Ok(())
    }

    /// The ledger's one-step outbox claims, when this pass writes rows with them.
    pub fn outbox_claims(&mut self) -> Option<&mut dyn OutboxClaims> {
        match self.one_step {
            true => self.ledger.outbox_claims(),
            false => None,
        }
    }

    /// Writes the rows of the batch's new sends `sent_new` as sent, with the batch's mark:
    /// their lines begin where the outbox ends now (the batch before's write has landed).
    fn record_sent_claims(&mut self) -> Result<(), AppError> {
        if self.sent_new.is_empty() {
            return Ok(());
        }
        let Delivery::Outbox(writer) = &self.delivery else {
            self.sent_new.clear();
            return Ok(());
        };
        let batch = UnwrittenBatch {
            from: self.outbox_end.unwrap_or(0),
            sent_at: writer.clock.now(),
        };
        let (kind, outbox_from) = (self.kind, self.outbox_end);
        let rows: Vec<(SendKey<'_>, SendDetails<'_>, &str)> = (self.sent_new.iter())
            .filter_map(|(job, details)| {
                let job = self.waiting.get(*job)?;
                let details = SendDetails {
                    outbox_from,
                    ..details.clone()
                };
                Some((key_of(kind, job), details, job.retry_key.as_str()))
            })
            .collect();
        let written = match self.one_step {
            true => self.ledger.outbox_claims(),
            false => None,
        };
        if let Some(claims) = written {
            claims.record_claims(&rows, Some(batch), self.now)?;
        }
        drop(rows);
        self.sent_new.clear();
        Ok(())
    }

    /// Reopens the rows of `jobs` written sent with their claims (`recorded`, beside them),
    /// whose lines are not written, and removes the batch's mark, in a transaction that the
    /// next commit ends.
    fn reopen_unwritten(
        &mut self,
        jobs: &[Job],
        recorded: &[bool],
        why: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), AppError> {
        if !recorded.contains(&true) {
            return Ok(());
        }
        self.begin()?;
        let kind = self.kind;
        let keys: Vec<(SendKey<'_>, &str)> = (jobs.iter().zip(recorded))
            .filter(|(_, &recorded)| recorded)
            .map(|(job, _)| (key_of(kind, job), job.retry_key.as_str()))
            .collect();
        if let Some(claims) = self.outbox_claims() {
            claims.reopen_unwritten(&keys, why, now)?;
            claims.lines_written()?;
        }
        Ok(())
    }

    fn count(&mut self, step: &str, settlement: &Settlement) {
        let summary = &mut self.summary;
        match settlement {
            Settlement::Sent { .. } => summary.sent += 1,
            Settlement::Failed(_) => summary.failed += 1,
            Settlement::Expired(_) => summary.expired += 1,
            Settlement::RetryLater(_) => summary.retry_later += 1,
            Settlement::Held(_) => summary.held += 1,
            Settlement::Blocked => summary.blocked += 1,
            Settlement::Skipped(_) => summary.skipped_before_start += 1,
        }
        self.problems.note(step, settlement);
    }
}

/// The ledger's key of `job`'s send.
fn key_of(sink: SinkKind, job: &Job) -> SendKey<'_> {
    SendKey {
        sink,
        patient: &job.patient,
        step: &job.step,
        occurrence: job.occurrence,
    }
}
