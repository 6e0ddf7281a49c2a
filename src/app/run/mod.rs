//! `steprule run`: what is due now is rendered and delivered (LINE, or the outbox), each send
//! recorded in the ledger before it leaves, so reruns, crashes and outages neither repeat nor
//! lose a message.

mod clinics;
mod cycle;
mod due;
mod history;
mod ledger;
pub(crate) use ledger::clinic_of;
mod observe;
mod progress;
mod report;
mod units;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

use super::{load_rules, AppError, Io, Outcome, PatientSource, RulesSource, WindowArgs};
use crate::deliver::{ChannelToken, DeliveryOptions, LineClient};
use crate::plan::TimingPlan;
use cycle::Cycle;
pub use report::RunSummary;

#[derive(Debug, Clone)]
pub struct RunRequest {
    pub rules: RulesSource,
    pub patients: PatientSource,
    pub now: Option<String>,
    /// `--since T`: sends timed before T are skipped; replaces the rules' `start`.
    pub since: Option<String>,
    /// Default: `.steprule/ledger.db` beside the rules. A `postgres://` URL is a PostgreSQL
    /// ledger.
    pub ledger: Option<PathBuf>,
    /// Default: `.steprule/outbox.jsonl` beside the rules. Given explicitly, it also says the
    /// user means the outbox, even on a ledger that holds LINE deliveries.
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
    /// On a PostgreSQL ledger, how long this worker holds the sends it claimed before another
    /// worker may take them over.
    pub lease: Duration,
}

pub fn run(request: &RunRequest, io: &mut Io<'_>) -> Result<Outcome, AppError> {
    // `steprule run FOLDER`: every clinic in it, in turn (see clinics.rs).
    if request.rules.file.is_dir() {
        return clinics::run_folder(request, io);
    }
    let plan = compile(request, io)?;
    let plan = &plan;
    let line = line_client(request)?;
    in_passes(request, io, |runtime, stop, io| {
        let now = now_in(request, plan)?;
        let cycle = Cycle {
            request,
            plan,
            line: line.as_ref(),
            ledger_path: &paths(request).0,
            outbox_path: &paths(request).1,
            runtime,
            stop: stop.clone(),
        };
        Ok(cycle.run(now, io)?.outcome())
    })
}

/// The rules' timing plan, with `--since` in place of the rules' `start`.
fn compile(request: &RunRequest, io: &mut Io<'_>) -> Result<TimingPlan, AppError> {
    let rules = load_rules(&request.rules, io)?;
    let mut plan = TimingPlan::compile(&rules);
    if let Some(since) = &request.since {
        let since = crate::time::parse_instant(since, plan.timezone)
            .map_err(|e| AppError::Usage(format!("--since: {e}")))?;
        plan.start = Some(since);
    }
    Ok(plan)
}

/// `--now`, else the clock.
fn now_in(
    request: &RunRequest,
    plan: &TimingPlan,
) -> Result<chrono::DateTime<chrono::Utc>, AppError> {
    Ok(WindowArgs {
        now: request.now.clone(),
        ..WindowArgs::default()
    }
    .resolve(plan.timezone)?
    .now)
}

/// The LINE client (and its base URL), checked before anything is read or written.
fn line_client(request: &RunRequest) -> Result<Option<LineClient>, AppError> {
    Ok(match (&request.token, request.dry_run) {
        (Some(token), false) => Some(LineClient::new(&request.line_api_base, token.clone())?),
        _ => None,
    })
}

/// Runs `pass` once, or with `--every` on every interval until a signal; the worst outcome.
fn in_passes(
    request: &RunRequest,
    io: &mut Io<'_>,
    mut pass: impl FnMut(
        &tokio::runtime::Runtime,
        &watch::Receiver<bool>,
        &mut Io<'_>,
    ) -> Result<Outcome, AppError>,
) -> Result<Outcome, AppError> {
    if request.every.is_some() && request.now.is_some() {
        return Err(AppError::Usage(
            "--every runs on the clock; leave out --now".into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    runtime.spawn(stop_on_signal(stop_tx));
    let mut outcome = Outcome::Ok;
    loop {
        outcome = outcome.max(pass(&runtime, &stop_rx, io)?);
        let Some(every) = request.every else { break };
        let mut stop = stop_rx.clone();
        let stopped = runtime.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep(every) => false,
                _ = stop.wait_for(|s| *s) => true,
            }
        });
        if stopped || *stop_rx.borrow() {
            writeln!(io.err, "stopped by a signal between passes")?;
            break;
        }
    }
    Ok(outcome)
}

/// The ledger and the outbox: as given, or in `.steprule/` beside the rules.
pub(crate) fn paths(request: &RunRequest) -> (PathBuf, PathBuf) {
    let beside_rules = |name: &str| {
        request
            .rules
            .file
            .parent()
            .unwrap_or(Path::new(""))
            .join(".steprule")
            .join(name)
    };
    let ledger = request
        .ledger
        .clone()
        .unwrap_or_else(|| beside_rules("ledger.db"));
    let outbox = request
        .outbox
        .clone()
        .unwrap_or_else(|| beside_rules("outbox.jsonl"));
    (ledger, outbox)
}

/// One pass of `run` at the clock's now, for `serve --run-every`: the same claims, sink, lock
/// and summary (printed on `io.err`) as `steprule run`. Another run holding the ledger is
/// [`AppError::Lock`]; a signal on `stop` ends the pass early, as it ends a run.
pub(crate) fn pass(
    request: &RunRequest,
    plan: &TimingPlan,
    line: Option<&LineClient>,
    runtime: &tokio::runtime::Runtime,
    stop: watch::Receiver<bool>,
    io: &mut Io<'_>,
) -> Result<RunSummary, AppError> {
    let (ledger_path, outbox_path) = paths(request);
    let cycle = Cycle {
        request,
        plan,
        line,
        ledger_path: &ledger_path,
        outbox_path: &outbox_path,
        runtime,
        stop,
    };
    cycle.run(chrono::Utc::now(), io)
}

/// Turns true on SIGINT or SIGTERM.
pub(crate) async fn stop_on_signal(stop: watch::Sender<bool>) {
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
