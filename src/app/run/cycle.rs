//! One pass of `run`: evaluate every patient at `now`, claim what is due in the ledger, hand it
//! to delivery, and record how each send ended.
//!
//! This pass is the ledger's one owner: LINE's delivery tasks never touch it but report each
//! settled send back over a channel, and the outbox is written by the pass itself (see
//! `pass`). Claims are committed in batches *before* their jobs go to delivery (a message
//! never leaves without a pending row and its retry key), and settlements are committed in
//! batches as they come back; a crash between the two leaves rows pending, which the next run
//! resumes with the same keys. On SQLite a new outbox send's row is written sent with its
//! claim instead, and a mark on its batch lets the next run find what a crash left unwritten
//! (see `pass`).

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};

use super::due::{self, Due, Entry, Known, Rendered, RenderedMessages};
use super::history::PassHistory;
use super::ledger::open_ledger;
use super::observe::{self, Observer};
use super::progress::{Bar, NoProgress};
use super::report::{Problems, RunSummary};
use super::units::UnitTally;
use super::RunRequest;
use crate::app::reactions::PassReactions;
use crate::app::recipients::Recipients;
use crate::app::Io;
use crate::app::{AppError, RowCounts};
use crate::deliver::{self, Job, LineClient, Outbox, Progress, RunClock, Settled, Sink};
use crate::eval::DueSend;
use crate::ledger::{
    Claim, NewMarks, RunLedger, SendDetails, SendKey, SendStatus, Settlement, SinkKind, TrackKind,
};
use crate::line::track::{LinkKind, SendLinks, TrackedLink};
use crate::plan::TimingPlan;
use crate::records::PatientRecord;
use crate::template::{self, RenderError, Tracking, Variables};
use pass::{Delivery, OutboxWriter, Pass};

/// The reason recorded with a send skipped because its time is before the rules' `start`.
pub(crate) const BEFORE_START: &str = "before start";

mod pass;

/// How often the pass looks at its open batch while no patient with due sends comes.
const BATCH_WAIT: Duration = Duration::from_millis(200);
/// Jobs queued for delivery beyond those in flight.
const QUEUE: usize = 1024;
/// Batches (each up to 256 patients with sends due, 1,024 first sightings, or ~1 MiB of
/// rendered outbox lines) the evaluating thread may be ahead of the pass: enough that the
/// typing threads go on through a checkpoint of the ledger (a tenth of a second or two, three
/// or four times in a first run at a million patients; now on a thread beside the pass, see
/// ledger/checkpoints_beside.rs, which still copies what was committed meanwhile) instead of
/// waiting on a full queue with a core idle. Eight batches filled within milliseconds;
/// sixty-four cost ~25 MB more at the peak.
const DUE_QUEUE: usize = 64;
/// [`DUE_QUEUE`] where the batches carry messages rendered but not serialized, whose size
/// is not counted (to LINE, without tracked links): as before, since there the pass waits on
/// LINE's rate limit, not on its checkpoints, and the queue stays full.
const DUE_QUEUE_UNSIZED: usize = 8;

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

impl<'a> Cycle<'a> {
    /// One pass; the summary is printed before it returns.
    pub fn run(&self, now: DateTime<Utc>, io: &mut Io<'_>) -> Result<RunSummary, AppError> {
        let (_lock, mut ledger) = open_ledger(self.request, self.plan, self.ledger_path)?;
        // Read beside everything up to the evaluation, which is the first to need them.
        let observer = Observer::start(self.plan, self.request.dry_run, ledger.as_ref())?;
        if let Some(mode) = ledger.tightened_from() {
            writeln!(
                io.err,
                "note: the ledger {} was readable by others (mode {mode:o}); it holds patient \
                 data and is now 0600",
                ledger.describe()
            )?;
        }
        let (sink, kind) = self.sink(ledger.as_mut(), now, io)?;
        let sink = Arc::new(sink);
        let mut summary = RunSummary {
            expired_earlier: ledger.expire_open(kind, now)? as u64,
            ..RunSummary::default()
        };
        // Read beside the rest of the start and the export's first rows, after the outbox's
        // recovery above (it may turn sent rows back): its reader sees the last commit.
        let history = PassHistory::start(ledger.as_ref(), kind, self.plan, now)?;
        let reactions = PassReactions::load(ledger.as_ref(), self.plan, now)?;
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
        let clock = RunClock::starting_at(now);
        // LINE through delivery's tasks; the outbox written by the pass itself.
        let (delivery, tasks) = match sink.as_ref() {
            Sink::Line(_) => {
                let (jobs, queue) = mpsc::channel::<Job>(QUEUE);
                let (settled_tx, settled) = mpsc::unbounded_channel::<Settled>();
                let tasks = self.runtime.spawn(deliver::deliver(
                    queue,
                    settled_tx,
                    sink.clone(),
                    self.request.delivery.clone(),
                    clock,
                    progress.clone(),
                    stop,
                ));
                let jobs = Some(jobs);
                (Delivery::Tasks { jobs, settled }, Some(tasks))
            }
            Sink::Outbox(_) => {
                let writer = OutboxWriter {
                    sink: sink.clone(),
                    clock,
                    progress: progress.clone(),
                    stop,
                    lines: Vec::new(),
                    answers: Vec::new(),
                };
                (Delivery::Outbox(writer), None)
            }
        };
        // On a ledger with one writer, an outbox send's row is written sent with its claim.
        let one_step = kind == SinkKind::Outbox && ledger.outbox_claims().is_some();
        let mut pass = Pass {
            ledger,
            kind,
            one_step,
            recorded: Vec::new(),
            sent_new: Vec::new(),
            now,
            writing: None,
            spare: Vec::new(),
            outbox_end: match sink.as_ref() {
                Sink::Outbox(outbox) => Some(outbox.end()),
                Sink::Line(_) => None,
            },
            delivery,
            waiting: Vec::new(),
            batch_started: None,
            queued: 0,
            problems: Problems::default(),
            summary,
            blocked,
            // Only LINE counts units, and only when the pushes carry them.
            units: (kind == SinkKind::Line && self.request.delivery.custom_aggregation)
                .then(UnitTally::default),
            variables: Variables::new(&self.plan.schema, self.plan.clinic.as_deref()),
        };
        // Every template compiled once per pass, not once per send.
        let mut env = template::environment(self.plan.timezone);
        for step in &self.plan.steps {
            for variant in &step.variants {
                template::precompile(&mut env, &variant.template);
            }
        }
        let observer =
            (observer.map(|preparing| preparing.ready(pass.ledger.as_ref(), now))).transpose()?;
        let known = Known {
            history: &history,
            links: &links,
            observer: observer.as_ref(),
            reactions: &reactions,
            render: self.plan.track.is_none().then_some(&env),
            outbox_json: matches!(sink.as_ref(), Sink::Outbox(_)),
        };
        // The pass's thread is the one a first run cannot share: its log's checkpoints go
        // beside it (dropped with the ledger, before its close).
        pass.ledger.checkpoint_beside();
        let evaluated = self.evaluate_all(now, &known, &env, &mut pass, progress.as_ref(), io);
        if evaluated.is_err() {
            let _ = abort.send(true);
        }
        // Close the queue and record every send delivery settles, so the ledger says what went
        // out (unless the ledger itself failed).
        let closed = pass.finish();
        if closed.is_err() {
            let _ = abort.send(true);
        }
        let sink_error = match (tasks, sink.as_ref()) {
            (Some(tasks), _) => self.runtime.block_on(tasks).ok().flatten(),
            (None, Sink::Outbox(outbox)) => outbox.write_error(),
            (None, Sink::Line(_)) => None,
        };
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
    fn sink(
        &self,
        ledger: &mut dyn RunLedger,
        now: DateTime<Utc>,
        io: &mut Io<'_>,
    ) -> Result<(Sink, SinkKind), AppError> {
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
        let (mut keys, mut from) = (pending.keys, pending.from);
        // A batch recorded sent with its claims whose lines a crash may have cut short (see
        // `pass`): its lines are looked for with the pending rows'.
        let unwritten = match ledger.outbox_claims() {
            Some(claims) => claims.unwritten_keys()?,
            None => None,
        };
        if let Some((batch_from, batch_keys)) = &unwritten {
            from = if keys.is_empty() {
                *batch_from
            } else {
                from.min(*batch_from)
            };
            keys.extend(batch_keys.iter().cloned());
        }
        let outbox = Outbox::open(self.outbox_path, &keys, from)?;
        if unwritten.is_some() {
            ledger.begin()?;
            if let Some(claims) = ledger.outbox_claims() {
                claims.recover_unwritten(&|key| outbox.holds(key), now)?;
            }
            ledger.commit()?;
        }
        Ok((Sink::Outbox(outbox), SinkKind::Outbox))
    }

    /// Evaluates every patient (on a thread of its own) and hands what is due now to
    /// delivery; returns the rows read, skipped and read with unreadable cells.
    fn evaluate_all(
        &self,
        now: DateTime<Utc>,
        known: &Known<'_>,
        env: &minijinja::Environment<'_>,
        pass: &mut Pass<'a>,
        progress: &dyn Progress,
        io: &mut Io<'_>,
    ) -> Result<RowCounts, AppError> {
        let sized = known.render.is_none() || known.outbox_json;
        let queue = if sized { DUE_QUEUE } else { DUE_QUEUE_UNSIZED };
        let (due_tx, due_rx) = std::sync::mpsc::sync_channel::<Due>(queue);
        // Spent batches go back to be freed: at most the batches in flight, as each batch the
        // evaluating thread sends first takes back what came back.
        let (spent_tx, spent_rx) = std::sync::mpsc::channel::<Vec<Entry>>();
        // Once every patient is evaluated, the pass's thread goes on alone with the batches
        // queued: the log so far is checkpointed beside it meanwhile, not at its close.
        let checkpoint_now = pass.ledger.checkpoint_now();
        std::thread::scope(|scope| {
            let evaluating = scope.spawn(|| {
                let evaluated = due::evaluate(
                    self.plan,
                    &self.request.patients,
                    known,
                    now,
                    &self.stop,
                    due_tx,
                    spent_rx,
                );
                if let Some(checkpoint) = &checkpoint_now {
                    checkpoint.ask();
                }
                evaluated
            });
            let taken = (&due_rx, &spent_tx);
            let received = self.take_due(taken, now, env, pass, progress, io);
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
        (due, spent): (&Receiver<Due>, &Sender<Vec<Entry>>),
        now: DateTime<Utc>,
        env: &minijinja::Environment<'_>,
        pass: &mut Pass<'a>,
        progress: &dyn Progress,
        io: &mut Io<'_>,
    ) -> Result<(), AppError> {
        loop {
            match due.recv_timeout(BATCH_WAIT) {
                Ok(Due::Batch { mut entries, marks }) => {
                    self.take_batch(&mut entries, marks, now, env, pass, progress)?;
                    // Freed on the evaluating thread, unless it has ended.
                    let _ = spent.send(entries);
                    if !pass.flush_if_due()? {
                        return Ok(());
                    }
                }
                Ok(Due::Warning(line)) => writeln!(io.err, "{line}")?,
                Err(RecvTimeoutError::Timeout) => {
                    if !pass.flush_if_due()? {
                        return Ok(());
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }

    /// Claims the sends of a batch of patients together, then records each patient's
    /// observation and renders their sends, in the export's order, and the first sightings'
    /// rows, in the open transaction.
    fn take_batch(
        &self,
        entries: &mut [Entry],
        marks: NewMarks,
        now: DateTime<Utc>,
        env: &minijinja::Environment<'_>,
        pass: &mut Pass<'a>,
        progress: &dyn Progress,
    ) -> Result<(), AppError> {
        pass.begin()?;
        let plan = self.plan;
        // While the batch before's lines are being written (see `pass`), this is where they
        // begin: an outbox line of a send claimed here (a held send claimed again, a row
        // settled at once) can only come later, so a recovery that reads from here finds it.
        let (kind, outbox_from) = (pass.kind, pass.outbox_end);
        // Taken out first, so that the sends' keys can borrow the entries to the end.
        let rendered: Vec<Vec<Option<Rendered>>> = (entries.iter_mut())
            .map(|entry| match entry {
                Entry::Patient { rendered, .. } => std::mem::take(rendered),
                Entry::Observed(_) => Vec::new(),
            })
            .collect();
        let sends: Vec<(SendKey<'_>, SendDetails<'_>)> = (entries.iter())
            .filter_map(|entry| match entry {
                Entry::Patient { patient, sends, .. } => Some((patient, sends)),
                Entry::Observed(_) => None,
            })
            .flat_map(|(patient, sends)| {
                sends
                    .iter()
                    .map(|send| send_of(plan, kind, outbox_from, patient, send))
            })
            .collect();
        let claims = match pass.outbox_claims() {
            Some(claims) => claims.claim_unrecorded(&sends, now)?,
            None => pass.ledger.claim_all(&sends, now)?,
        };
        let mut claims = claims.into_iter();
        for (entry, rendered) in entries.iter().zip(rendered) {
            match entry {
                Entry::Patient { patient, sends, .. } => {
                    let due = (patient, sends.as_slice(), rendered);
                    self.claim_due(due, &mut claims, now, env, pass, progress)?;
                    // A stop after this leaves the later patients for the next run.
                    pass.summary.stopped_after_line = Some(patient.line);
                }
                Entry::Observed(seen) => {
                    observe::record(pass.ledger.as_mut(), seen, now, &mut pass.summary)?;
                }
            }
        }
        // The new sends' rows are written when the batch is flushed (see `pass`).
        if !marks.is_empty() {
            pass.ledger.set_new_marks(&marks)?;
        }
        Ok(())
    }

    /// Goes on with each send due now for `patient`, as the ledger answered its claim (the
    /// next of `claims`), and renders it (the context once per patient) unless the evaluating
    /// thread did.
    fn claim_due(
        &self,
        (patient, sends, rendered): (&Arc<PatientRecord>, &[DueSend], Vec<Option<Rendered>>),
        claims: &mut impl Iterator<Item = Claim>,
        now: DateTime<Utc>,
        env: &minijinja::Environment<'_>,
        pass: &mut Pass<'a>,
        progress: &dyn Progress,
    ) -> Result<(), AppError> {
        let plan: &'a TimingPlan = self.plan;
        let mut context = None;
        let mut rendered = rendered.into_iter();
        for send in sends {
            // Beside `sends`, or empty: taken before any `continue`.
            let prerendered = rendered.next().flatten();
            pass.summary.due += 1;
            let step = &plan.steps[send.step];
            let variant = &step.variants[send.variant];
            let (key, details) = send_of(plan, pass.kind, pass.outbox_end, patient, send);
            let claim = claims.next().ok_or_else(|| {
                AppError::Io(std::io::Error::other("a send of the batch was not claimed"))
            })?;
            // A new claim whose row is written with the batch (see `pass`): pending if it is
            // settled here, sent if its line is to be written.
            let unrecorded = pass.one_step && matches!(claim, Claim::New { .. });
            let new = unrecorded.then_some(&details);
            let (retry_key, resumed) = match claim {
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
                pass.settle_now(&key, new, &retry_key, skipped, now)?;
                continue;
            }
            // Decided before rendering: not rendered, not pushed, not a failure; the row stays
            // open, and a later pass sends it if the patient follows again before it expires.
            if pass.blocked.contains(patient.line_user_id.as_deref()) {
                pass.settle_now(&key, new, &retry_key, Settlement::Blocked, now)?;
                continue;
            }
            let template = &variant.template;
            // A resumed send carries the tokens its first claim recorded: the same links.
            let mut links = match &plan.track {
                Some(_) if resumed => {
                    Some(SendLinks::new(recorded_links(pass.ledger.as_ref(), &key)?))
                }
                Some(_) => Some(SendLinks::new([])),
                None => None,
            };
            let rendered = match prerendered {
                Some(rendered) => rendered,
                None => {
                    let context =
                        context.get_or_insert_with(|| pass.variables.of(patient.clone(), now));
                    let tracking = (plan.track.as_ref())
                        .zip(links.as_mut())
                        .map(|(base, links)| Tracking { base, links });
                    (template.messages(env, context, tracking)).map(|messages| RenderedMessages {
                        messages,
                        json: None,
                    })
                }
            };
            let RenderedMessages { messages, json } = match rendered {
                Ok(rendered) => rendered,
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
                    pass.settle_now(&key, new, &retry_key, settlement, now)?;
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
            if unrecorded {
                // Where the outbox ends is known when the row is written (see `pass`).
                let details = details_of(plan, send, None);
                pass.sent_new.push((pass.waiting.len(), details));
            }
            pass.recorded.push(unrecorded);
            pass.waiting.push(Job {
                retry_key,
                patient: patient.id.clone(),
                occurrence: send.occurrence,
                to: patient.line_user_id.clone().unwrap_or_default(),
                step: step.id.clone(),
                variant: details.variant.map(str::to_owned),
                messages,
                messages_json: json,
                expires: send.expires,
            });
        }
        Ok(())
    }
}

/// The ledger's key of `send` to `patient`, and what a new claim of it records.
fn send_of<'p>(
    plan: &'p TimingPlan,
    kind: SinkKind,
    outbox_from: Option<u64>,
    patient: &'p PatientRecord,
    send: &DueSend,
) -> (SendKey<'p>, SendDetails<'p>) {
    let key = SendKey {
        sink: kind,
        patient: &patient.id,
        step: &plan.steps[send.step].id,
        occurrence: send.occurrence,
    };
    (key, details_of(plan, send, outbox_from))
}

/// What a new claim of `send` records.
fn details_of<'p>(
    plan: &'p TimingPlan,
    send: &DueSend,
    outbox_from: Option<u64>,
) -> SendDetails<'p> {
    let step = &plan.steps[send.step];
    let variant = &step.variants[send.variant];
    SendDetails {
        template: &variant.template.name,
        variant: (step.variants.len() > 1).then_some(variant.template.name.as_str()),
        due_at: send.at,
        expires_at: send.expires,
        outbox_from,
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
