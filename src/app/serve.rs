//! `steprule serve`: the receiving side as one process. It checks the rules (the link
//! templates included), reads the patient export into a directory for linking, opens the
//! ledger for its writer thread, serves LINE's webhooks and tracked links, and with
//! `--run-every` also runs `run`'s delivery pass on an interval, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::run::{self, RunRequest};
use super::{for_each_patient, load_rules_with, AppError, Io, Outcome, PatientSource, RulesSource};
use crate::check::{CheckOptions, RuleSet};
use crate::deliver::{ChannelToken, DeliveryOptions, LineClient};
use crate::ledger::postgres::PgLedger;
use crate::ledger::{Ledger, LedgerLocation, LockError, ServeLedger};
use crate::line::Message;
use crate::plan::TimingPlan;
use crate::printable::printable;
use crate::records::RecordSchema;
use crate::serve::http::Limits;
use crate::serve::link::{DirectoryBuilder, PatientDirectory, SharedDirectory};
use crate::serve::log::{Log, LogWriter};
use crate::serve::reply::{LinkMessages, Replier};
use crate::serve::signature::ChannelSecret;
use crate::serve::writer::LinkTemplate;
use crate::serve::{schedule, Server, ServerParts};
use crate::template::{self, TemplateStore};

/// How often the patient export is looked at for changes (besides every `--run-every` tick).
const WATCH_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct ServeRequest {
    pub rules: RulesSource,
    pub patients: PatientSource,
    /// Default: `.steprule/ledger.db` beside the rules. A `postgres://` URL is a PostgreSQL
    /// ledger that other `serve` instances and `run` workers may share.
    pub ledger: Option<PathBuf>,
    /// For `--run-every` without a token. Default: `.steprule/outbox.jsonl` beside the rules.
    pub outbox: Option<PathBuf>,
    pub listen: String,
    pub run_every: Option<Duration>,
    pub line_api_base: String,
    /// `LINE_CHANNEL_SECRET`.
    pub secret: Option<String>,
    /// `LINE_CHANNEL_ACCESS_TOKEN`: replies, and `--run-every` deliveries through LINE.
    pub token: Option<ChannelToken>,
    /// `--run-every` pushes carry LINE aggregation units, as with `run --custom-aggregation`.
    pub custom_aggregation: bool,
}

pub fn run(request: &ServeRequest, io: &mut Io<'_>) -> Result<Outcome, AppError> {
    let secret = request
        .secret
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(ChannelSecret::new)
        .ok_or_else(|| {
            AppError::Usage(
                "LINE_CHANNEL_SECRET is not set: serve checks every webhook's signature with the \
                 channel secret (LINE Developers console → the channel → Basic settings → \
                 Channel secret); set it in the environment"
                    .into(),
            )
        })?;
    let listen: SocketAddr = request.listen.trim().parse().map_err(|_| {
        AppError::Usage(format!(
            "--listen `{}` is not an address and port like 127.0.0.1:8080",
            printable(&request.listen)
        ))
    })?;
    let rules = load_rules_with(&request.rules, CheckOptions { serve: true }, io)?;
    let plan = TimingPlan::compile(&rules);
    let messages = link_messages(&request.rules, &rules)?;
    let line = match &request.token {
        Some(token) => Some(LineClient::new(&request.line_api_base, token.clone())?),
        None => None,
    };
    let run_request = RunRequest {
        rules: request.rules.clone(),
        patients: request.patients.clone(),
        now: None,
        since: None,
        ledger: request.ledger.clone(),
        outbox: request.outbox.clone(),
        dry_run: false,
        line_api_base: request.line_api_base.clone(),
        token: request.token.clone(),
        delivery: DeliveryOptions {
            custom_aggregation: request.custom_aggregation,
            ..DeliveryOptions::default()
        },
        every: None,
        progress: false,
        // `--run-every` passes on a PostgreSQL ledger hold their claims this long.
        lease: crate::ledger::postgres::DEFAULT_LEASE,
    };
    let ledger = open_ledger(&run_request, &plan)?;
    if let Some(mode) = ledger.tightened_from() {
        writeln!(
            io.err,
            "note: the ledger {} was readable by others (mode {mode:o}); it holds patient data \
             and is now 0600",
            ledger.describe()
        )?;
    }
    let schema = rules.record_schema();
    let directory = load_directory(&request.patients, &schema, io.err)?;
    writeln!(
        io.err,
        "{} patient(s) read from {} for linking",
        directory.len(),
        printable(&request.patients.file.display().to_string())
    )?;
    if line.is_none() {
        writeln!(
            io.err,
            "warning: LINE_CHANNEL_ACCESS_TOKEN is not set: events are recorded, but no replies \
             are sent{}",
            if request.run_every.is_some() {
                ", and deliveries go to the outbox"
            } else {
                ""
            }
        )?;
    }
    io.err.flush()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("serve")
        .enable_all()
        .build()?;
    let (stop_tx, stop) = watch::channel(false);
    runtime.spawn(run::stop_on_signal(stop_tx));
    let (log, log_thread) = Log::start(Box::new(std::io::stderr()));
    let directory = Arc::new(SharedDirectory::new(directory));
    let parts = ServerParts {
        secret,
        replier: Replier::new(line.clone(), messages, log.clone()),
        directory: Arc::clone(&directory),
        timezone: rules.timezone,
        limits: Limits::default(),
        log: log.clone(),
    };
    let server = Server::start(&runtime, listen, ledger, parts, stop.clone())
        .map_err(|e| AppError::Usage(format!("cannot listen on {listen}: {e}")))?;
    log.line(format!(
        "steprule serve: listening on http://{} (POST /line/webhook, GET /r/{{token}}, GET /healthz)",
        server.addr()
    ));
    let (nudge, nudged) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let watcher = Watcher {
            source: &request.patients,
            schema: &schema,
            directory: &directory,
            log: log.clone(),
            stop: stop.clone(),
        };
        scope.spawn(move || watcher.run(&nudged));
        if let Some(every) = request.run_every {
            let (log, stop, runtime, plan) = (log.clone(), stop.clone(), &runtime, &plan);
            let (run_request, line) = (&run_request, line.as_ref());
            scope.spawn(move || {
                schedule::every(every, runtime.handle(), stop.clone(), || {
                    let _ = nudge.send(());
                    let mut out = std::io::sink();
                    let mut err = LogWriter::new(log.clone());
                    let mut io = Io {
                        out: &mut out,
                        err: &mut err,
                        color: false,
                    };
                    match run::pass(run_request, plan, line, runtime, stop.clone(), &mut io) {
                        Ok(_) => {}
                        Err(AppError::Lock(LockError::Busy { .. })) => log.line(
                            "note: another steprule run is using the ledger; this pass waits \
                             for the next tick",
                        ),
                        Err(error) => log.line(format!(
                            "error: the delivery pass failed: {}",
                            printable(&error.to_string())
                        )),
                    }
                });
            });
        } else {
            drop(nudge);
        }
        server.wait(&runtime);
    });
    log.line("steprule serve: stopped");
    drop(log);
    let _ = log_thread.join();
    Ok(Outcome::Ok)
}

/// The writer's ledger: the SQLite file, or the clinic's rows of a PostgreSQL ledger (the same
/// clinic a `--run-every` pass, or a `run` worker elsewhere, reads and writes).
fn open_ledger(request: &RunRequest, plan: &TimingPlan) -> Result<Box<dyn ServeLedger>, AppError> {
    let (ledger_path, _) = run::paths(request);
    Ok(match LedgerLocation::of(&ledger_path) {
        LedgerLocation::File(path) => Box::new(Ledger::open(&path)?),
        LedgerLocation::Postgres(url) => Box::new(PgLedger::open(
            &url,
            &run::clinic_of(plan, request),
            request.lease,
        )?),
    })
}

/// The four link templates, rendered once with the clinic's context (they passed `check`).
fn link_messages(source: &RulesSource, rules: &RuleSet) -> Result<LinkMessages, AppError> {
    let mut store = match &source.templates {
        Some(dir) => TemplateStore::new(dir),
        None => TemplateStore::beside(&source.file),
    };
    let env = template::environment(rules.timezone);
    let context = minijinja::context! { clinic => rules.clinic.clone() };
    let mut render = |which: LinkTemplate| -> Result<Vec<Message>, AppError> {
        let failed = |why: String| AppError::Usage(format!("template {}: {why}", which.name()));
        let template = store
            .get(which.name())
            .map_err(|e| failed(format!("{e:?}")))?;
        template
            .messages(&env, &context, None)
            .map_err(|e| failed(e.to_string()))
    };
    Ok(LinkMessages {
        request: render(LinkTemplate::Request)?,
        done: render(LinkTemplate::Done)?,
        failed: render(LinkTemplate::Failed)?,
        locked: render(LinkTemplate::Locked)?,
    })
}

/// Reads the export into a directory, reporting bad rows on `err` (by line, never by value).
fn load_directory(
    source: &PatientSource,
    schema: &RecordSchema,
    err: &mut dyn std::io::Write,
) -> Result<PatientDirectory, AppError> {
    let mut builder = DirectoryBuilder::default();
    for_each_patient(source, schema, err, |patient| {
        builder.add(patient);
        Ok(true)
    })?;
    Ok(builder.finish())
}

/// Reloads the directory when the export changes.
struct Watcher<'a> {
    source: &'a PatientSource,
    schema: &'a RecordSchema,
    directory: &'a SharedDirectory,
    log: Log,
    stop: watch::Receiver<bool>,
}

impl Watcher<'_> {
    fn run(self, nudged: &Receiver<()>) {
        let mut seen = self.stamp();
        let mut waited = Duration::ZERO;
        let tick = Duration::from_secs(1);
        while !*self.stop.borrow() {
            let look = match nudged.recv_timeout(tick) {
                Ok(()) => true,
                Err(RecvTimeoutError::Timeout) => {
                    waited += tick;
                    waited >= WATCH_EVERY
                }
                // No scheduler: only the clock says when to look.
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(tick);
                    waited += tick;
                    waited >= WATCH_EVERY
                }
            };
            if !look {
                continue;
            }
            waited = Duration::ZERO;
            let now = self.stamp();
            if now != seen {
                seen = now;
                self.reload();
            }
        }
    }

    /// The export's modification time and length: a change to either is a new export.
    fn stamp(&self) -> Option<(SystemTime, u64)> {
        let meta = std::fs::metadata(&self.source.file).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    fn reload(&self) {
        let mut err = LogWriter::new(self.log.clone());
        match load_directory(self.source, self.schema, &mut err) {
            Ok(directory) => {
                // In use before it is announced: whoever reads the line can rely on it.
                let patients = directory.len();
                self.directory.replace(directory);
                self.log.line(format!(
                    "the patient export changed: {patients} patient(s) read for linking"
                ));
            }
            Err(error) => self.log.line(format!(
                "warning: the patient export could not be read again ({}); linking goes on \
                 with the patients read before",
                printable(&error.to_string())
            )),
        }
    }
}
