//! A committed batch's outbox lines, written by a thread of their own while the pass claims the
//! next batch, and settled in the next batch's transaction before it commits (the order the
//! exactly-once argument needs is in the parent module's doc). Writing 200,000 lines (~220 MB)
//! is ~0.6 s of a first run's CPU at a million patients, nearly all of it the kernel copying
//! them into the page cache: on the pass's thread, the longest one, it held up every batch.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::{key_of, Delivery, Pass};
use crate::app::AppError;
use crate::deliver::outbox::crash::CrashPoint;
use crate::deliver::{Answer, Job, Settled, Sink};
use crate::ledger::{SendKey, Settlement};

/// A committed batch whose lines are being written.
pub(in crate::app::run) struct Writing {
    written: Written,
    /// Beside the jobs: true when the job's row is written sent with its claim.
    recorded: Vec<bool>,
    /// 1, or 0 when the outbox had stopped taking lines before this write.
    attempts: u32,
}

/// The write on its thread, or done already (on the pass's thread).
enum Written {
    Thread(JoinHandle<Option<Lines>>),
    Done(Lines),
}

/// A batch's jobs, the lines' buffer and the answers' buffer.
type Batch = (Vec<Job>, Vec<u8>, Vec<Answer>);

/// Starts writing `batch` on a thread of its own; where no thread can be started, writes it
/// here. The batch goes over a channel once the thread runs, so that it is never lost with a
/// thread that did not start.
fn write_beside(sink: Arc<Sink>, batch: Batch) -> Written {
    let (give, take) = std::sync::mpsc::channel::<Batch>();
    let thread_sink = Arc::clone(&sink);
    let started = std::thread::Builder::new()
        .name("outbox-write".into())
        .spawn(move || {
            let (jobs, lines, answers) = take.recv().ok()?;
            Some(Lines::write(&thread_sink, jobs, lines, answers))
        });
    let batch = match started {
        Ok(thread) => match give.send(batch) {
            Ok(()) => return Written::Thread(thread),
            Err(std::sync::mpsc::SendError(batch)) => batch,
        },
        Err(_) => batch,
    };
    let (jobs, lines, answers) = batch;
    Written::Done(Lines::write(&sink, jobs, lines, answers))
}

/// What a write gives back: the jobs (without their messages), an answer for each, and the
/// lines' buffer for the next batch.
struct Lines {
    jobs: Vec<Job>,
    answers: Vec<Answer>,
    lines: Vec<u8>,
}

impl Lines {
    /// Writes the lines of `jobs` with one write, then lets go of their messages (here, off
    /// the pass's thread: nothing after the write reads them).
    fn write(sink: &Sink, jobs: Vec<Job>, mut lines: Vec<u8>, mut answers: Vec<Answer>) -> Lines {
        answers.clear();
        if let Sink::Outbox(outbox) = sink {
            outbox.deliver_all(&jobs, &mut lines, &mut answers);
        }
        let mut jobs = jobs;
        for job in &mut jobs {
            job.messages = Vec::new();
            job.messages_json = None;
        }
        Lines {
            jobs,
            answers,
            lines,
        }
    }
}

impl Writing {
    /// Waits for the write to end; `None` if its thread never had the batch (its channel
    /// failed after the thread started: not expected).
    fn wait(self) -> (Option<Lines>, Vec<bool>, u32) {
        let lines = match self.written {
            Written::Done(lines) => Some(lines),
            Written::Thread(thread) => match thread.join() {
                Ok(lines) => lines,
                Err(panic) => std::panic::resume_unwind(panic),
            },
        };
        (lines, self.recorded, self.attempts)
    }
}

impl Pass<'_> {
    /// Hands the committed batch's lines to a thread that writes them; on a ledger where the
    /// rows are pending until settled (no one-step claims), waits for it and settles at once,
    /// as the rows claimed next record where the outbox ends. `false` on a stop: the rows
    /// stay (or are again) pending, and nothing is written.
    pub(super) fn start_write(&mut self) -> Result<bool, AppError> {
        let Delivery::Outbox(writer) = &mut self.delivery else {
            return Ok(true);
        };
        if self.waiting.is_empty() {
            return Ok(true);
        }
        if *writer.stop.borrow() {
            // A signal (or the pass failed): these rows stay (or are again) pending for the
            // next run.
            self.summary.retry_later += self.waiting.len() as u64;
            let at = writer.clock.now();
            let jobs = std::mem::take(&mut self.waiting);
            let recorded = std::mem::take(&mut self.recorded);
            let why = "stopped before its outbox line was written";
            self.reopen_unwritten(&jobs, &recorded, why, at)?;
            return Ok(false);
        }
        let Sink::Outbox(outbox) = writer.sink.as_ref() else {
            return Ok(true);
        };
        // A send after the outbox stopped taking lines was never attempted.
        let attempts = u32::from(outbox.write_error().is_none());
        CrashPoint::AfterClaim.check();
        let spare = std::mem::take(&mut self.spare);
        let jobs = std::mem::replace(&mut self.waiting, spare);
        let recorded = std::mem::take(&mut self.recorded);
        let lines = std::mem::take(&mut writer.lines);
        let answers = std::mem::take(&mut writer.answers);
        let sink = Arc::clone(&writer.sink);
        let batch = (jobs, lines, answers);
        let written = if self.one_step {
            write_beside(sink, batch)
        } else {
            let (jobs, lines, answers) = batch;
            Written::Done(Lines::write(&sink, jobs, lines, answers))
        };
        self.writing = Some(Writing {
            written,
            recorded,
            attempts,
        });
        if !self.one_step {
            self.land()?;
        }
        Ok(true)
    }

    /// Waits for the write handed off by the last flush, if any, and settles its sends in the
    /// open transaction (opened if none is): their mark goes, their unwritten rows are reopened.
    pub(super) fn land(&mut self) -> Result<(), AppError> {
        let Some(writing) = self.writing.take() else {
            return Ok(());
        };
        let (written, recorded, attempts) = writing.wait();
        // A batch that never reached its writer: its mark, committed, names it, and the next
        // run recovers it as after a crash before the write.
        let Some(written) = written else {
            let lost = "the outbox's writer never had its batch";
            return Err(AppError::Io(std::io::Error::other(lost)));
        };
        CrashPoint::AfterWrite.check();
        let Delivery::Outbox(writer) = &mut self.delivery else {
            return Ok(());
        };
        if let Sink::Outbox(outbox) = writer.sink.as_ref() {
            self.outbox_end = Some(outbox.end());
        }
        let Lines {
            mut jobs,
            mut answers,
            lines,
        } = written;
        writer.lines = lines;
        let at = writer.clock.now();
        let progress = writer.progress.clone();
        let settled = self.begin().and_then(|()| {
            self.settle_written(&jobs, &mut answers, &recorded, attempts, at, &*progress)
        });
        jobs.clear();
        // The buffers' room is kept for the next batches.
        self.spare = jobs;
        if let Delivery::Outbox(writer) = &mut self.delivery {
            writer.answers = answers;
        }
        settled
    }

    /// Waits for a write handed off, without settling it: the pass failed, and what the write
    /// did is for the next run to find (its batch's mark is committed).
    pub(super) fn wait_write(&mut self) {
        if let Some(writing) = self.writing.take() {
            drop(writing.wait());
        }
    }

    /// Records how each written job went, as the outbox answered.
    fn settle_written(
        &mut self,
        jobs: &[Job],
        answers: &mut Vec<Answer>,
        recorded: &[bool],
        attempts: u32,
        at: chrono::DateTime<chrono::Utc>,
        progress: &dyn crate::deliver::Progress,
    ) -> Result<(), AppError> {
        // Sent as claimed (the usual answer): recorded together; anything else one by one.
        let plain = Settlement::Sent {
            request_id: None,
            note: None,
        };
        let mut sent = Vec::with_capacity(jobs.len());
        let mut others = Vec::new();
        // Written sent with their claims: their steps, to count them, and those whose line
        // was not written after all, to reopen.
        let mut sent_with_claims = Vec::new();
        let mut unwritten = Vec::new();
        for ((job, answer), &recorded) in jobs.iter().zip(answers.drain(..)).zip(recorded) {
            let settlement = match answer {
                Answer::Accepted { request_id } => Settlement::Sent {
                    request_id,
                    note: None,
                },
                Answer::AlreadyAccepted { request_id, note } => {
                    Settlement::Sent { request_id, note }
                }
                Answer::Rejected { error } => Settlement::Failed(error),
                Answer::Unavailable { error } | Answer::Retry { error, .. } => {
                    Settlement::RetryLater(error)
                }
            };
            if recorded {
                if let Settlement::Sent { .. } = settlement {
                    sent_with_claims.push(job.step.as_str());
                } else {
                    unwritten.push(job);
                    others.push((job, settlement));
                }
            } else if settlement == plain {
                sent.push((key_of(self.kind, job), job.retry_key.as_str()));
            } else {
                others.push((job, settlement));
            }
        }
        // The batch's mark goes in the transaction that reopens its unwritten rows.
        let kind = self.kind;
        let reopened = match self.outbox_claims() {
            Some(claims) if recorded.contains(&true) => {
                let keys: Vec<(SendKey<'_>, &str)> = (unwritten.iter())
                    .map(|job| (key_of(kind, job), job.retry_key.as_str()))
                    .collect();
                let why = "not written to the outbox";
                (claims.reopen_unwritten(&keys, why, at)).and_then(|()| claims.lines_written())
            }
            _ => Ok(()),
        };
        reopened.and_then(|()| self.ledger.settle_sent(&sent, attempts, at))?;
        for (key, _) in &sent {
            self.count(key.step, &plain);
            progress.settled();
        }
        for step in sent_with_claims {
            self.count(step, &plain);
            progress.settled();
        }
        for (job, settlement) in others {
            self.record(Settled {
                retry_key: job.retry_key.clone(),
                patient: job.patient.clone(),
                occurrence: job.occurrence,
                step: job.step.clone(),
                variant: job.variant.clone(),
                attempts,
                settlement,
                at,
            })?;
            progress.settled();
        }
        Ok(())
    }
}
