//! What a pass tells the person running it: one summary line whose numbers add up, and the first
//! few sends that did not go out, with the step, the patient id and the reason.

use std::io::Write;

use crate::app::Outcome;
use crate::ledger::Settlement;
use crate::printable::printable;

/// What one pass found and did. `due` is the sum of the other send counts (not `skipped rows`
/// or `expired_earlier`, which are not sends due in this pass).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub due: u64,
    pub sent: u64,
    pub already_sent: u64,
    /// Settled in an earlier run as failed, expired or skipped.
    pub settled_before: u64,
    pub expired: u64,
    pub failed: u64,
    /// The template failed for the patient's data; retried on the next run.
    pub held: u64,
    /// Not pushed: the patient has blocked the account. Looked at again by later runs.
    pub blocked: u64,
    /// Still pending after this pass (retries used up, LINE unreachable, or stopped before
    /// their turn); the next run retries them with the same keys.
    pub retry_later: u64,
    /// Recorded `skipped` without being sent: their time was before the rules' `start` (or
    /// `--since`).
    pub skipped_before_start: u64,
    pub skipped_rows: u64,
    /// Rows read with cells that could not be read (their patients are in `due` and the rest;
    /// steps that need those fields were left out).
    pub unreadable_rows: u64,
    /// Patients (not opted out) without a LINE user: no `line_user_id` in the export and no
    /// link in the ledger. Nothing is due to them, so they are not in `due`; once they link,
    /// what is still within its window goes out.
    pub not_linked: u64,
    /// Sends left pending by earlier runs whose time ran out before this one.
    pub expired_earlier: u64,
    /// The sink stopped taking sends (the outbox's disk is full, LINE refused the token); what
    /// was not delivered stays pending.
    pub sink_error: Option<String>,
    /// The line of the last patient whose due sends the pass took: after a stop, later
    /// patients are left to the next run.
    pub stopped_after_line: Option<usize>,
    pub stopped: bool,
    /// `booked` and `revisited` events this pass recorded (bookings and visits seen new in the
    /// export).
    pub booked: u64,
    pub revisited: u64,
    /// Due sends another worker on the same PostgreSQL ledger held (claimed, or being
    /// settled): that worker sends them.
    pub other_workers: u64,
}

impl RunSummary {
    pub fn outcome(&self) -> Outcome {
        if self.sink_error.is_some() {
            Outcome::Unfinished
        } else if self.failed > 0 {
            Outcome::SendsFailed
        } else if self.skipped_rows > 0 || self.unreadable_rows > 0 {
            Outcome::RowsSkipped
        } else {
            Outcome::Ok
        }
    }

    pub(super) fn print(&self, err: &mut dyn Write) -> std::io::Result<()> {
        if self.not_linked > 0 {
            writeln!(
                err,
                "note: {} patient(s) have no LINE user (no line_user_id in the export and not \
                 linked): nothing is sent to them until they link, then what is still within \
                 its window goes out",
                self.not_linked
            )?;
        }
        if self.booked + self.revisited > 0 {
            writeln!(
                err,
                "seen in the export: {} new booking(s), {} visit(s) (recorded as `booked` and \
                 `revisited` events)",
                self.booked, self.revisited
            )?;
        }
        if self.expired_earlier > 0 {
            writeln!(
                err,
                "{} send(s) left pending by earlier runs expired before this run",
                self.expired_earlier
            )?;
        }
        if let Some(error) = &self.sink_error {
            writeln!(
                err,
                "error: {}; {} send(s) stay pending for the next run",
                printable(error),
                self.retry_later
            )?;
        }
        if self.stopped {
            match self.stopped_after_line {
                Some(line) => writeln!(
                    err,
                    "stopped by a signal: {} send(s) stay pending for the next run; patients \
                     after line {line} are left to the next run",
                    self.retry_later
                )?,
                None => writeln!(
                    err,
                    "stopped by a signal: {} send(s) stay pending for the next run",
                    self.retry_later
                )?,
            }
        }
        writeln!(err, "{self}")
    }
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "due {}, sent {}, already sent {}, settled before {}, expired {}, failed {}, held {}, \
             blocked {}, retrying later {}, skipped before start {}, skipped rows {}",
            self.due,
            self.sent,
            self.already_sent,
            self.settled_before,
            self.expired,
            self.failed,
            self.held,
            self.blocked,
            self.retry_later,
            self.skipped_before_start,
            self.skipped_rows
        )?;
        if self.unreadable_rows > 0 {
            write!(f, ", rows with unreadable cells {}", self.unreadable_rows)?;
        }
        if self.other_workers > 0 {
            write!(f, ", held by other workers {}", self.other_workers)?;
        }
        Ok(())
    }
}

/// How many problems of each kind are shown; the ledger (`steprule status`) has them all.
const SHOWN: usize = 5;

/// The first few reasons per kind that sends did not go out, each with the step and how many
/// patients it stopped, for the person running the pass. Patients are counted, never named:
/// this is a log, and a patient's id or name in it would leak with it.
#[derive(Debug, Default)]
pub(super) struct Problems {
    failed: Vec<Problem>,
    held: Vec<Problem>,
    pending: Vec<Problem>,
    blocked: Vec<Problem>,
}

/// One step and reason, and the patients it happened to.
#[derive(Debug)]
struct Problem {
    step: String,
    why: String,
    patients: u64,
}

impl Problems {
    pub(super) fn note(&mut self, step: &str, settlement: &Settlement) {
        let (list, why) = match settlement {
            Settlement::Failed(why) => (&mut self.failed, why.as_str()),
            Settlement::Held(why) => (&mut self.held, why.as_str()),
            Settlement::RetryLater(why) => (&mut self.pending, why.as_str()),
            Settlement::Blocked => (&mut self.blocked, "the patient blocked the account"),
            Settlement::Sent { .. } | Settlement::Expired(_) | Settlement::Skipped(_) => return,
        };
        if let Some(problem) = list.iter_mut().find(|p| p.step == step && p.why == why) {
            problem.patients += 1;
        } else if list.len() < SHOWN {
            list.push(Problem {
                step: step.to_owned(),
                why: why.to_owned(),
                patients: 1,
            });
        }
    }

    pub(super) fn print(&self, summary: &RunSummary, err: &mut dyn Write) -> std::io::Result<()> {
        let kinds = [
            (&self.failed, summary.failed, "error", "failed, not retried"),
            (
                &self.held,
                summary.held,
                "warning",
                "held: retried on the next run once the data is fixed",
            ),
            (
                &self.pending,
                summary.retry_later,
                "warning",
                "pending: retried on the next run",
            ),
            (
                &self.blocked,
                summary.blocked,
                "note",
                "blocked: not pushed; sent if they follow again before it expires",
            ),
        ];
        for (shown, total, level, what) in kinds {
            for problem in shown {
                writeln!(
                    err,
                    "{level}: step `{}`, {} patient(s): {} ({what})",
                    printable(&problem.step),
                    problem.patients,
                    printable(&problem.why)
                )?;
            }
            let counted: u64 = shown.iter().map(|p| p.patients).sum();
            let more = total.saturating_sub(counted);
            if more > 0 && !shown.is_empty() {
                writeln!(
                    err,
                    "{level}: … and {more} more ({what}); `steprule status` lists them"
                )?;
            }
        }
        Ok(())
    }
}
