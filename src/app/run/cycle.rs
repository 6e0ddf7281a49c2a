//! One pass of `run`: evaluate every patient at `now`, claim what is due in the ledger, hand it
//! to delivery, and record how each send ended.
//!
//! This pass is the ledger's one owner: delivery tasks never touch it but report each settled
//! send back over a channel. Claims are committed in batches *before* their jobs go to
//! delivery (a message never leaves without a pending row and its retry key), and settlements
//! are committed in batches as they come back; a crash between the two leaves rows pending,
//! which the next run resumes with the same keys.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};

use super::due::{self, Due, Known};
use super::history::SentHistory;
use super::ledger::open_ledger;
use super::observe::{self, Observer};
use super::progress::{Bar, NoProgress};
use super::report::{Problems, RunSummary};
use super::units::UnitTally;
use super::RunRequest;
use crate::app::reactions::PassReactions;
use crate::app::recipients::{BlockedUsers, Recipients};
use crate::app::Io;
use crate::app::{AppError, RowCounts};
use crate::deliver::{self, Job, LineClient, Outbox, Progress, RunClock, Settled, Sink};
use crate::eval::DueSend;
use crate::ledger::{
    Claim, RunLedger, SendDetails, SendKey, SendStatus, Settlement, SinkKind, TrackKind,
};
use crate::line::track::{LinkKind, SendLinks, TrackedLink};
use crate::plan::TimingPlan;
use crate::records::PatientRecord;
use crate::template::{self, RenderError, Tracking};

/// The reason recorded with a send skipped because its time is before the rules' `start`.
pub(crate) const BEFORE_START: &str = "before start";

/// Claims committed together before their jobs go to delivery.
const BATCH: usize = 256;
/// The longest claims wait for their batch to fill while patients are evaluated, so that
/// delivery is never starved when due sends are sparse.
const BATCH_WAIT: Duration = Duration::from_millis(200);
/// The longest a batch holding only observations (no claims) stays open.
const OBSERVATIONS_WAIT: Duration = Duration::from_secs(5);
/// Jobs queued for delivery beyond those in flight.
const QUEUE: usize = 1024;
/// Patients with due sends the evaluating thread may be ahead of the pass.
const DUE_QUEUE: usize = 1024;

pub(super) struct Cycle<'a> {
    pub request: &'a RunRequest,
    pub plan: &'a TimingPlan,
    /// The LINE client, when sends go to LINE.
    pub line: Option<&'a LineClient>,
    pub ledger_path: &'a Path,
    pub outbox_path: &'a Path,
    pub runtime: &'a tokio::runtime::Runtime,
    pub stop: watch::Receiver<bool>,
}

impl Cycle<'_> {
    /// One pass; the summary is printed before it returns.
    pub fn run(&self, now: DateTime<Utc>, io: &mut Io<'_>) -> Result<RunSummary, AppError> {
        let (_lock, mut ledger) = open_ledger(self.request, self.plan, self.ledger_path)?;
        if let Some(mode) = ledger.tightened_from() {
            writeln!(
                io.err,
                "note: the ledger {} was readable by others (mode {mode:o}); it holds patient \
                 data and is now 0600",
                ledger.describe()
            )?;
        }
        let (sink, kind) = self.sink(ledger.as_ref(), io)?;
        let sink = Arc::new(sink);
        let mut summary = RunSummary {
            expired_earlier: ledger.expire_open(kind, now)? as u64,
            ..RunSummary::default()
        };
        let history = SentHistory::load(ledger.as_ref(), kind, self.plan, now)?;
        let reactions = PassReactions::load(ledger.as_ref(), self.plan, now)?;
        let observer = Observer::prepare(self.plan, self.request.dry_run, ledger.as_ref())?;
        // Links and blocks once per pass, so a later follow or link counts on the next pass.
        let Recipients { links, blocked } = Recipients::load(ledger.as_ref())?;
        let progress: Arc<dyn Progress> = if self.request.progress {
            Arc::new(Bar::new())
        } else {
            Arc::new(NoProgress)
        };
        // Delivery stops on a signal, or when this pass fails (the ledger went away).
        let (abort, stop) = watch::channel(false);
        let mut signal = self.stop.clone();
        let forward = abort.clone();
        let forwarding = self.runtime.spawn(async move {
            if signal.wait_for(|s| *s).await.is_ok() {
                let _ = forward.send(true);
            }
        });
        let (jobs, queue) = mpsc::channel::<Job>(QUEUE);
        let (settled_tx, settled) = mpsc::unbounded_channel::<Settled>();
        let delivery = self.runtime.spawn(deliver::deliver(
            queue,
            settled_tx,
            sink.clone(),
            self.request.delivery.clone(),
            RunClock::starting_at(now),
            progress.clone(),
            stop,
        ));
        let mut pass = Pass {
            ledger,
            kind,
            outbox_end: match sink.as_ref() {
                Sink::Outbox(outbox) => Some(outbox.end()),
                Sink::Line(_) => None,
            },
            jobs: Some(jobs),
            settled,
            waiting: Vec::with_capacity(BATCH),
            batch_started: None,
            queued: 0,
            problems: Problems::default(),
            summary,
            blocked,
            // Only LINE counts units, and only when the pushes carry them.
            units: (kind == SinkKind::Line && self.request.delivery.custom_aggregation)
                .then(UnitTally::default),
        };
        let known = Known {
            history: &history,
            links: &links,
            observer: observer.as_ref(),
            reactions: &reactions,
        };
        let evaluated = self.evaluate_all(now, &known, &mut pass, progress.as_ref(), io);
        if evaluated.is_err() {
            let _ = abort.send(true);
        }
        // Close the queue and record every send delivery settles, so the ledger says what went
        // out (unless the ledger itself failed).
        let closed = pass.finish();
        if closed.is_err() {
            let _ = abort.send(true);
        }
        let sink_error = self.runtime.block_on(delivery).ok().flatten();
        // `--every` starts a pass every few minutes for months: leave no task behind.
        forwarding.abort();
        let rows = evaluated?;
        closed?;
        summary = std::mem::take(&mut pass.summary);
        summary.skipped_rows = rows.skipped as u64;
        summary.unreadable_rows = rows.unreadable as u64;
        summary.stopped = *self.stop.borrow();
        summary.sink_error = sink_error;
        if let Sink::Outbox(outbox) = sink.as_ref() {
            if let Some(aside) = &outbox.set_aside {
                writeln!(
                    io.err,
                    "warning: the outbox ended in a torn line (an interrupted write); it was \
                     moved to {} and the outbox goes on from its last whole line",
                    aside.display()
                )?;
            }
        }
        pass.problems.print(&summary, io.err)?;
        summary.print(io.err)?;
        Ok(summary)
    }

    /// LINE with a token (and no `--dry-run`), else the outbox, which a ledger holding LINE
    /// deliveries only accepts when asked for by name.
    fn sink(&self, ledger: &dyn RunLedger, io: &mut Io<'_>) -> Result<(Sink, SinkKind), AppError> {
        let request = self.request;
        if let Some(client) = self.line {
            return Ok((Sink::Line(client.clone()), SinkKind::Line));
        }
        if request.token.is_none()
            && !request.dry_run
            && request.outbox.is_none()
            && ledger.has_sent(SinkKind::Line)?
        {
            return Err(AppError::Usage(format!(
                "LINE_CHANNEL_ACCESS_TOKEN is not set, but the ledger {} holds deliveries made \
                 through LINE: set the token to deliver through LINE, or give --outbox PATH (or \
                 --dry-run) to write to an outbox, whose sends are recorded apart and never \
                 count as LINE deliveries",
                ledger.describe()
            )));
        }
        let why = if request.dry_run {
            "dry run"
        } else {
            "no LINE_CHANNEL_ACCESS_TOKEN set"
        };
        writeln!(
            io.err,
            "{why}: delivering to the outbox {} instead of LINE (recorded as outbox sends, \
             never as LINE deliveries)",
            self.outbox_path.display()
        )?;
        let pending = ledger.pending_in_outbox()?;
        let outbox = Outbox::open(self.outbox_path, &pending.keys, pending.from)?;
        Ok((Sink::Outbox(outbox), SinkKind::Outbox))
    }

    /// Evaluates every patient (on a thread of its own) and hands what is due now to
    /// delivery; returns the rows read, skipped and read with unreadable cells.
    fn evaluate_all(
        &self,
        now: DateTime<Utc>,
        known: &Known<'_>,
        pass: &mut Pass,
        progress: &dyn Progress,
        io: &mut Io<'_>,
    ) -> Result<RowCounts, AppError> {
        let env = template::environment(self.plan.timezone);
        let (due_tx, due_rx) = std::sync::mpsc::sync_channel::<Due>(DUE_QUEUE);
        std::thread::scope(|scope| {
            let evaluating = scope.spawn(|| {
                due::evaluate(
                    self.plan,
                    &self.request.patients,
                    known,
                    now,
                    &self.stop,
                    due_tx,
                )
            });
            let received = self.take_due(&due_rx, now, &env, pass, progress, io);
            // On an error the channel closes, and the evaluation stops at its next patient.
            drop(due_rx);
            let evaluated = match evaluating.join() {
                Ok(evaluated) => evaluated?,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            received?;
            pass.summary.already_sent += evaluated.already_sent;
            pass.summary.due += evaluated.already_sent;
            pass.summary.not_linked += evaluated.not_linked;
            evaluated.script_failures.report(self.plan, io.err)?;
            pass.flush()?;
            Ok(evaluated.counts)
        })
    }

    /// Claims and renders what the evaluating thread finds, flushing batches as they fill or
    /// wait too long.
    fn take_due(
        &self,
        due: &Receiver<Due>,
        now: DateTime<Utc>,
        env: &minijinja::Environment<'_>,
        pass: &mut Pass,
        progress: &dyn Progress,
        io: &mut Io<'_>,
    ) -> Result<(), AppError> {
        loop {
            match due.recv_timeout(BATCH_WAIT) {
                Ok(Due::Patient { patient, sends }) => {
                    self.claim_due(&patient, &sends, now, env, pass, progress)?;
                    // A stop after this leaves the later patients for the next run.
                    pass.summary.stopped_after_line = Some(patient.line);
                    if !pass.flush_if_due()? {
                        return Ok(());
                    }
                }
                Ok(Due::Warning(line)) => writeln!(io.err, "{line}")?,
                Ok(Due::Observed(seen)) => {
                    pass.begin()?;
                    observe::record(pass.ledger.as_mut(), &seen, now, &mut pass.summary)?;
                    if !pass.flush_if_due()? {
                        return Ok(());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if !pass.flush_if_due()? {
                        return Ok(());
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }

    /// Claims each send due now for `patient` and renders it (once per patient).
    fn claim_due(
        &self,
        patient: &PatientRecord,
        sends: &[DueSend],
        now: DateTime<Utc>,
        env: &minijinja::Environment<'_>,
        pass: &mut Pass,
        progress: &dyn Progress,
    ) -> Result<(), AppError> {
        let plan = self.plan;
        let mut context = None;
        for send in sends {
            pass.summary.due += 1;
            let step = &plan.steps[send.step];
            let variant = &step.variants[send.variant];
            let key = SendKey {
                sink: pass.kind,
                patient: &patient.id,
                step: &step.id,
                occurrence: send.occurrence,
            };
            let details = SendDetails {
                template: &variant.template.name,
                variant: (step.variants.len() > 1).then_some(variant.template.name.as_str()),
                due_at: send.at,
                expires_at: send.expires,
                outbox_from: pass.outbox_end,
            };
            pass.begin()?;
            let (retry_key, resumed) = match pass.ledger.claim(&key, &details, now)? {
                Claim::New { retry_key } => (retry_key, false),
                Claim::Resume { retry_key, .. } => (retry_key, true),
                Claim::Done(SendStatus::Sent) => {
                    pass.summary.already_sent += 1;
                    continue;
                }
                Claim::Done(_) => {
                    pass.summary.settled_before += 1;
                    continue;
                }
                Claim::Taken => {
                    pass.summary.other_workers += 1;
                    continue;
                }
            };
            // Due before the clinic's start: recorded once, never sent. A row an earlier run
            // left pending may have reached LINE already, so it goes on as usual.
            if send.before_start && !resumed {
                let skipped = Settlement::Skipped(BEFORE_START.into());
                pass.settle_now(&key, &retry_key, skipped, now)?;
                continue;
            }
            // Decided before rendering: not rendered, not pushed, not a failure; the row stays
            // open, and a later pass sends it if the patient follows again before it expires.
            if pass.blocked.contains(patient.line_user_id.as_deref()) {
                pass.settle_now(&key, &retry_key, Settlement::Blocked, now)?;
                continue;
            }
            let template = &variant.template;
            let context = context.get_or_insert_with(|| {
                template::patient_context(patient, &plan.schema, plan.clinic.as_deref(), now)
            });
            // A resumed send carries the tokens its first claim recorded: the same links.
            let mut links = match &plan.track {
                Some(_) if resumed => {
                    Some(SendLinks::new(recorded_links(pass.ledger.as_ref(), &key)?))
                }
                Some(_) => Some(SendLinks::new([])),
                None => None,
            };
            let tracking = (plan.track.as_ref())
                .zip(links.as_mut())
                .map(|(base, links)| Tracking { base, links });
            let messages = match template.messages(env, context, tracking) {
                Ok(messages) => messages,
                Err(RenderError::Token(error)) => {
                    return Err(AppError::Io(std::io::Error::other(error.to_string())))
                }
                // Over LINE's limits or off the template's host: never sent. A render that
                // failed for the patient's data waits for the data to be fixed.
                Err(error) => {
                    let why = format!("template {} failed: {error}", template.name);
                    let settlement = match error {
                        RenderError::Limits(_) => Settlement::Failed(why),
                        _ => Settlement::Held(why),
                    };
                    pass.settle_now(&key, &retry_key, settlement, now)?;
                    continue;
                }
            };
            // In the claim's transaction: committed before the message can leave.
            for link in links.map(SendLinks::into_minted).unwrap_or_default() {
                let kind = match link.kind {
                    LinkKind::Url => TrackKind::Url,
                    LinkKind::Postback => TrackKind::Postback,
                };
                pass.ledger
                    .track(&link.token, kind, &key, &link.target, now)?;
            }
            progress.queued();
            pass.waiting.push(Job {
                retry_key,
                patient: patient.id.clone(),
                occurrence: send.occurrence,
                to: patient.line_user_id.clone().unwrap_or_default(),
                step: step.id.clone(),
                variant: details.variant.map(str::to_owned),
                messages,
                expires: send.expires,
            });
        }
        Ok(())
    }
}

/// The tokens recorded with an earlier claim of the send `key`.
fn recorded_links(ledger: &dyn RunLedger, key: &SendKey<'_>) -> Result<Vec<TrackedLink>, AppError> {
    let recorded = ledger.tracked_for(key)?;
    Ok(recorded
        .into_iter()
        .map(|(token, kind, target)| TrackedLink {
            token,
            kind: match kind {
                TrackKind::Url => LinkKind::Url,
                TrackKind::Postback => LinkKind::Postback,
            },
            target,
        })
        .collect())
}

/// The state of one pass: the ledger, the claims waiting for their batch to commit, and what
/// came of the sends so far.
struct Pass {
    ledger: Box<dyn RunLedger>,
    kind: SinkKind,
    /// Where the outbox ended when the pass began (outbox passes only).
    outbox_end: Option<u64>,
    jobs: Option<mpsc::Sender<Job>>,
    settled: mpsc::UnboundedReceiver<Settled>,
    /// Claimed in the open transaction; handed to delivery once it commits.
    waiting: Vec<Job>,
    batch_started: Option<Instant>,
    /// Handed to delivery and not yet settled.
    queued: u64,
    problems: Problems,
    summary: RunSummary,
    /// The LINE users who have blocked the account, read when the pass began.
    blocked: BlockedUsers,
    /// The aggregation units of the LINE pushes settled since the last commit
    /// (`--custom-aggregation` on LINE only).
    units: Option<UnitTally>,
}

impl Pass {
    fn begin(&mut self) -> Result<(), AppError> {
        if self.batch_started.is_none() {
            self.ledger.begin()?;
            self.batch_started = Some(Instant::now());
        }
        Ok(())
    }

    /// Flushes when the batch is full or has waited long enough; `false` when delivery has
    /// stopped taking jobs (a signal).
    fn flush_if_due(&mut self) -> Result<bool, AppError> {
        // Claims wait for their commit before delivery takes them: their batch is short. A
        // batch of observations alone keeps no one waiting, and every commit rewrites the
        // marks' pages it touched (random keys: nearly all of them on a first pass), so it
        // runs longer.
        let wait = if self.waiting.is_empty() {
            OBSERVATIONS_WAIT
        } else {
            BATCH_WAIT
        };
        let due =
            self.waiting.len() >= BATCH || self.batch_started.is_some_and(|t| t.elapsed() >= wait);
        if due {
            self.flush()
        } else {
            Ok(true)
        }
    }

    /// Commits the open claims, hands their jobs to delivery and records what has settled.
    fn flush(&mut self) -> Result<bool, AppError> {
        self.batch_started = None;
        if let Err(error) = self.ledger.commit() {
            // Not committed (a full disk, a lost server): these claims have no row, so their
            // messages must not leave, not even from `finish`; a later run claims them anew.
            self.waiting.clear();
            return Err(error.into());
        }
        let mut open = true;
        for job in self.waiting.drain(..) {
            let taken = self
                .jobs
                .as_ref()
                .is_some_and(|jobs| jobs.blocking_send(job).is_ok());
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
    fn finish(&mut self) -> Result<(), AppError> {
        let flushed = if self.waiting.is_empty() && self.batch_started.is_none() {
            Ok(true)
        } else {
            self.flush()
        };
        self.jobs = None;
        let recorded = self.record_settled(true);
        // Handed to delivery but never attempted (a stop): still pending.
        self.summary.retry_later += self.queued;
        self.queued = 0;
        flushed.map(|_| ()).and(recorded)
    }

    /// Records settlements in one transaction per batch; with `wait`, until delivery ends.
    fn record_settled(&mut self, wait: bool) -> Result<(), AppError> {
        loop {
            let first = if wait {
                match self.settled.blocking_recv() {
                    Some(settled) => settled,
                    None => return Ok(()),
                }
            } else {
                match self.settled.try_recv() {
                    Ok(settled) => settled,
                    Err(_) => return Ok(()),
                }
            };
            self.ledger.begin()?;
            self.apply(first)?;
            for _ in 1..BATCH {
                match self.settled.try_recv() {
                    Ok(settled) => self.apply(settled)?,
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

    fn apply(&mut self, settled: Settled) -> Result<(), AppError> {
        self.queued = self.queued.saturating_sub(1);
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
    fn settle_now(
        &mut self,
        key: &SendKey<'_>,
        retry_key: &str,
        settlement: Settlement,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        self.ledger.settle(key, retry_key, 0, &settlement, now)?;
        self.count(key.step, &settlement);
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
