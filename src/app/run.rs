//! `steprule run`: what is due now is rendered and delivered (LINE, or the outbox), each send
//! recorded in the ledger before it leaves, so reruns, crashes and outages neither repeat nor
//! lose a message.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};

use super::{
    for_each_patient, load_rules, Io, Outcome, PatientSource, RulesSource, ScriptFailures,
    WindowArgs,
};
use crate::check::RuleSet;
use crate::deliver::{
    self, patient_context, ChannelToken, DeliveryOptions, Job, LineClient, Outbox, Progress,
    RunClock, Sink,
};
use crate::eval::{Evaluator, PatientOutcome, SentBefore, Window};
use crate::ledger::{Claim, Ledger, LedgerLock, LockError, SendDetails, SendKey, SendStatus};
use crate::plan::TimingPlan;
use crate::template;

#[derive(Debug, Clone)]
pub struct RunRequest {
    pub rules: RulesSource,
    pub patients: PatientSource,
    pub now: Option<String>,
    /// Default: `.steprule/ledger.db` beside the rules.
    pub ledger: Option<PathBuf>,
    /// Default: `.steprule/outbox.jsonl` beside the rules.
    pub outbox: Option<PathBuf>,
    pub dry_run: bool,
    pub line_api_base: String,
    /// From `LINE_CHANNEL_ACCESS_TOKEN`; `None` delivers to the outbox.
    pub token: Option<ChannelToken>,
    pub delivery: DeliveryOptions,
    /// Keep running, evaluating on this interval.
    pub every: Option<Duration>,
    /// Show a progress bar (stderr is a terminal).
    pub progress: bool,
}

/// What one pass found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub due: u64,
    pub sent: u64,
    pub already_sent: u64,
    /// Settled before as failed, expired or skipped.
    pub settled_before: u64,
    pub expired: u64,
    pub failed: u64,
    pub retry_later: u64,
    /// Sends whose template failed for the patient.
    pub skipped_sends: u64,
    pub skipped_rows: u64,
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "due {}, sent {}, already sent {}, expired {}, failed {}, retrying later {}, skipped rows {}",
            self.due,
            self.sent,
            self.already_sent,
            self.expired,
            self.failed,
            self.retry_later,
            self.skipped_rows
        )?;
        if self.skipped_sends > 0 {
            write!(f, ", skipped sends {}", self.skipped_sends)?;
        }
        Ok(())
    }
}

pub fn run(request: &RunRequest, io: &mut Io<'_>) -> std::io::Result<Outcome> {
    let Some(rules) = load_rules(&request.rules, io)? else {
        return Ok(Outcome::RuleErrors);
    };
    if request.every.is_some() && request.now.is_some() {
        writeln!(io.err, "error: --every runs on the clock; leave out --now")?;
        return Ok(Outcome::Usage);
    }
    let plan = TimingPlan::compile(&rules);
    let beside_rules = |name: &str| {
        request
            .rules
            .file
            .parent()
            .unwrap_or(Path::new(""))
            .join(".steprule")
            .join(name)
    };
    let ledger_path = request
        .ledger
        .clone()
        .unwrap_or_else(|| beside_rules("ledger.db"));
    let outbox_path = request
        .outbox
        .clone()
        .unwrap_or_else(|| beside_rules("outbox.jsonl"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    runtime.spawn(stop_on_signal(stop_tx));
    let mut outcome = Outcome::Ok;
    loop {
        let now = match (WindowArgs {
            now: request.now.clone(),
            ..WindowArgs::default()
        })
        .resolve(plan.timezone)
        {
            Ok(window) => window.now,
            Err(message) => {
                writeln!(io.err, "error: {message}")?;
                return Ok(Outcome::Usage);
            }
        };
        let cycle = Cycle {
            request,
            rules: &rules,
            plan: &plan,
            ledger_path: &ledger_path,
            outbox_path: &outbox_path,
            runtime: &runtime,
            stop: stop_rx.clone(),
        };
        match cycle.run(now, io)? {
            Ok(summary) => {
                writeln!(io.err, "{summary}")?;
                if summary.skipped_rows > 0 {
                    outcome = Outcome::RowsSkipped;
                }
            }
            Err(code) => return Ok(code),
        }
        let Some(every) = request.every else { break };
        let mut stop = stop_rx.clone();
        let stopped = runtime.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep(every) => false,
                _ = stop.wait_for(|s| *s) => true,
            }
        });
        if stopped || *stop_rx.borrow() {
            break;
        }
    }
    if *stop_rx.borrow() {
        writeln!(
            io.err,
            "stopped by a signal; pending sends go out on the next run"
        )?;
    }
    Ok(outcome)
}

async fn stop_on_signal(stop: watch::Sender<bool>) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = interrupt => {}
                _ = terminate.recv() => {}
            }
            let _ = stop.send(true);
            return;
        }
    }
    let _ = interrupt.await;
    let _ = stop.send(true);
}

struct Cycle<'a> {
    request: &'a RunRequest,
    rules: &'a RuleSet,
    plan: &'a TimingPlan,
    ledger_path: &'a Path,
    outbox_path: &'a Path,
    runtime: &'a tokio::runtime::Runtime,
    stop: watch::Receiver<bool>,
}

impl Cycle<'_> {
    /// One pass: `Err` carries the outcome of a pass that could not start.
    fn run(
        &self,
        now: DateTime<Utc>,
        io: &mut Io<'_>,
    ) -> std::io::Result<Result<RunSummary, Outcome>> {
        let _lock = match LedgerLock::acquire(self.ledger_path) {
            Ok(lock) => lock,
            Err(error @ (LockError::Busy { .. } | LockError::Io { .. })) => {
                writeln!(io.err, "error: {error}")?;
                return Ok(Err(Outcome::Usage));
            }
        };
        let mut ledger = match Ledger::open(self.ledger_path) {
            Ok(ledger) => ledger,
            Err(error) => {
                writeln!(io.err, "error: {error}")?;
                return Ok(Err(Outcome::Usage));
            }
        };
        let mut summary = RunSummary::default();
        summary.expired += ledger.expire_pending(now).map_err(to_io)? as u64;
        let sink = match self.sink(&ledger, io)? {
            Some(sink) => Arc::new(sink),
            None => return Ok(Err(Outcome::Usage)),
        };
        let ledger = Arc::new(Mutex::new(ledger));
        let progress: Arc<dyn Progress> = if self.request.progress {
            Arc::new(Bar::new())
        } else {
            Arc::new(NoProgress)
        };
        let (jobs, queue) = mpsc::channel::<Job>(1024);
        let delivery = self.runtime.spawn(deliver::deliver(
            queue,
            sink,
            ledger.clone(),
            self.request.delivery.clone(),
            RunClock::starting_at(now),
            progress.clone(),
            self.stop.clone(),
        ));
        let counts =
            self.queue_due_sends(now, &ledger, &jobs, progress.as_ref(), &mut summary, io)?;
        drop(jobs);
        let tally = self
            .runtime
            .block_on(delivery)
            .expect("delivery task")
            .map_err(to_io)?;
        summary.sent += tally.sent;
        summary.failed += tally.failed;
        summary.expired += tally.expired;
        summary.retry_later += tally.retry_later;
        match counts {
            Ok(rows) => summary.skipped_rows = rows as u64,
            Err(message) => {
                writeln!(io.err, "error: {message}")?;
                return Ok(Err(Outcome::Usage));
            }
        }
        Ok(Ok(summary))
    }

    fn sink(&self, ledger: &Ledger, io: &mut Io<'_>) -> std::io::Result<Option<Sink>> {
        match (&self.request.token, self.request.dry_run) {
            (Some(token), false) => {
                match LineClient::new(&self.request.line_api_base, token.clone()) {
                    Ok(client) => Ok(Some(Sink::Line(client))),
                    Err(message) => {
                        writeln!(io.err, "error: {message}")?;
                        Ok(None)
                    }
                }
            }
            (token, dry_run) => {
                let why = if dry_run && token.is_some() {
                    "dry run"
                } else {
                    "no LINE_CHANNEL_ACCESS_TOKEN set"
                };
                writeln!(
                    io.err,
                    "{why}: delivering to the outbox {} instead of LINE",
                    self.outbox_path.display()
                )?;
                let pending = ledger.pending_keys().map_err(to_io)?;
                Ok(Some(Sink::Outbox(Outbox::open(
                    self.outbox_path,
                    &pending,
                )?)))
            }
        }
    }

    /// Evaluates every patient and queues what is due now; returns the skipped-row count.
    fn queue_due_sends(
        &self,
        now: DateTime<Utc>,
        ledger: &Mutex<Ledger>,
        jobs: &mpsc::Sender<Job>,
        progress: &dyn Progress,
        summary: &mut RunSummary,
        io: &mut Io<'_>,
    ) -> std::io::Result<Result<usize, String>> {
        let plan = self.plan;
        let window = Window {
            now,
            from: now,
            to: now + chrono::Duration::seconds(1),
        };
        let env = template::environment(plan.timezone);
        let mut evaluator = Evaluator::new(plan);
        let mut outcome = PatientOutcome::default();
        let step_index: std::collections::HashMap<&str, usize> = plan
            .steps
            .iter()
            .map(|s| (s.id.as_str(), s.index))
            .collect();
        let mut history: Vec<SentBefore> = Vec::new();
        let stop = self.stop.clone();
        let mut script_failures = ScriptFailures::default();
        let counts = for_each_patient(&self.request.patients, &plan.schema, io.err, |patient| {
            if *stop.borrow() {
                return Ok(false);
            }
            history.clear();
            let sent = ledger
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .sent_to(&patient.id, now)
                .map_err(to_io)?;
            history.extend(sent.into_iter().filter_map(|row| {
                Some(SentBefore {
                    step: *step_index.get(row.step.as_str())?,
                    occurrence: row.occurrence,
                    at: row.sent_at,
                })
            }));
            evaluator.evaluate_after(patient, window, &history, &mut outcome);
            summary.already_sent += outcome.already_sent as u64;
            summary.due += outcome.already_sent as u64;
            script_failures.note(&patient.id, &outcome);
            for send in outcome.sends.iter().filter(|s| s.at <= now) {
                summary.due += 1;
                let step = &plan.steps[send.step];
                let variant = &step.variants[send.variant];
                let key = SendKey {
                    patient: &patient.id,
                    step: &step.id,
                    occurrence: send.occurrence,
                };
                let details = SendDetails {
                    template: &variant.template,
                    variant: (step.variants.len() > 1).then_some(variant.template.as_str()),
                    due_at: send.at,
                    expires_at: send.expires,
                };
                let claim = ledger
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .claim(&key, &details, now)
                    .map_err(to_io)?;
                let retry_key = match claim {
                    Claim::New { retry_key } | Claim::Resume { retry_key, .. } => retry_key,
                    Claim::Done(SendStatus::Sent) => {
                        summary.already_sent += 1;
                        continue;
                    }
                    Claim::Done(_) => {
                        summary.settled_before += 1;
                        continue;
                    }
                };
                let template = &self.rules.steps[send.step].templates[send.variant];
                let context = patient_context(patient, plan, now);
                let messages = match template.messages(&env, &context) {
                    Ok(messages) => messages,
                    Err(error) => {
                        summary.skipped_sends += 1;
                        let reason = error.to_string();
                        ledger
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .mark(&retry_key, SendStatus::Skipped, &reason, now)
                            .map_err(to_io)?;
                        continue;
                    }
                };
                let job = Job {
                    retry_key,
                    patient: patient.id.clone(),
                    to: patient.line_user_id.clone().unwrap_or_default(),
                    step: step.id.clone(),
                    variant: details.variant.map(str::to_owned),
                    messages,
                    expires: send.expires,
                };
                progress.queued();
                if jobs.blocking_send(job).is_err() {
                    // Delivery has stopped (a signal): the rest stays for the next run.
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        script_failures.report(plan, io.err)?;
        Ok(counts.map(|c| c.skipped))
    }
}

fn to_io(error: crate::ledger::LedgerError) -> std::io::Error {
    std::io::Error::other(error.to_string())
}

struct NoProgress;

impl Progress for NoProgress {
    fn queued(&self) {}
    fn settled(&self) {}
}

/// A progress bar on the terminal: sends settled out of sends queued so far.
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new() -> Self {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos}/{len} sends settled {per_sec} [{elapsed}]",
            )
            .expect("valid template"),
        );
        Bar(bar)
    }
}

impl Progress for Bar {
    fn queued(&self) {
        self.0.inc_length(1);
    }
    fn settled(&self) {
        self.0.inc(1);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
