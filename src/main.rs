//! The `steprule` command: maps arguments to library calls and results to exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

use cli::{
    Cli, Command, Format, InsightsCommand, MetricArg, PatientArgs, PlanOutput, PreviewOutput,
    ReportOutput, RulesArgs, StatusOutput,
};

use clap::Parser;
use steprule::app::check::{CheckFormat, CheckRequest};
use steprule::app::events::{EventsFormat, EventsRequest};
use steprule::app::insights::{InsightsFormat, InsightsRequest};
use steprule::app::preview::{PreviewFormat, PreviewRequest};
use steprule::app::report::{Metric, PeriodArgs, ReportFormat, ReportRequest};
use steprule::app::review::ReviewRequest;
use steprule::app::serve::ServeRequest;
use steprule::app::status::{StatusFormat, StatusRequest};
use steprule::app::{
    self, explain::ExplainRequest, plan::PlanFormat, plan::PlanRequest, run::RunRequest,
};
use steprule::DeliveryOptions;

/// Rows are allocated on the threads that read and type the export and freed on the pass's
/// thread; glibc's allocator spent 15–20% of a first run's CPU on that (README, design notes).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's options (`mi_option_t` in its `mimalloc.h`; the numbers are kept stable across
// its versions, retired ones left as placeholders).
extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    fn getenv(name: *const std::ffi::c_char) -> *const std::ffi::c_char;
    fn mi_malloc(size: usize) -> *mut std::ffi::c_void;
    fn mi_realloc(block: *mut std::ffi::c_void, size: usize) -> *mut std::ffi::c_void;
    fn mi_free(block: *mut std::ffi::c_void);
    fn mi_usable_size(block: *const std::ffi::c_void) -> usize;
}
const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Memory is committed as it is used, and freed memory is given back after 50 ms instead of
/// mimalloc's 1 s. With mimalloc's defaults (whole arenas committed at once, purges after
/// 1 s) `plan --days 7` on a million patients peaked at 228-279 MB, near the 300 MB issue 13
/// allows (glibc: 141 MB). Given back at once (`purge_delay` 0), memory a thread frees and
/// takes again a moment later is faulted in anew, zeroed by the kernel each time: a first run
/// spent ~0.3 s more in the kernel, `plan --days 7` ~10% more wall, for ~13 MB less at its
/// peak (benches/README, "Session 12: the allocator's options").
/// An option set in the environment (`MIMALLOC_PURGE_DELAY=…`, mimalloc's own variables) is
/// left as mimalloc read it, so that an operator can trade memory for speed without a build.
/// Allocates nothing: it runs before the first allocation (see [`TUNE_ALLOCATOR_AT_LOAD`]).
extern "C" fn tune_allocator() {
    for (option, variable, value) in [
        (
            MI_OPTION_ARENA_EAGER_COMMIT,
            c"MIMALLOC_ARENA_EAGER_COMMIT",
            0,
        ),
        (MI_OPTION_PURGE_DELAY, c"MIMALLOC_PURGE_DELAY", 50),
    ] {
        // SAFETY: `getenv` reads the environment, which nothing changes while the process
        // loads or before `main`; `mi_option_set` only stores a value in mimalloc's option
        // table, read when memory is next reserved or purged.
        unsafe {
            if getenv(variable.as_ptr()).is_null() {
                mi_option_set(option, value);
            }
        }
    }
}

/// Run as the binary is loaded, before Rust's runtime makes its first allocation: the arena
/// mimalloc reserves for that allocation follows the options of that moment, and set in `main`
/// (as in session 11) that first arena was committed whole (`plan --days 7` 187 MB at its
/// peak, against 155 MB with the same options from the environment).
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR_AT_LOAD: extern "C" fn() = tune_allocator;

fn main() -> ExitCode {
    // Where the loader does not run it first (see `TUNE_ALLOCATOR_AT_LOAD`).
    #[cfg(not(target_os = "linux"))]
    tune_allocator();
    // SQLite allocates through mimalloc too, before anything opens a ledger.
    steprule::ledger::route_sqlite_memory(steprule::ledger::Allocator {
        malloc: mi_malloc,
        realloc: mi_realloc,
        free: mi_free,
        usable_size: mi_usable_size,
    });
    let cli = Cli::parse();
    with_io(|io| dispatch(cli.command, io))
}

/// Exit codes: 0 done (warnings allowed), 1 problems in the rules, 2 usage, I/O or ledger errors
/// (or a run that could not finish), 3 done but some patient rows were skipped, 4 done but some
/// sends failed for good. See [`app::Outcome::exit_code`] and [`app::AppError::exit_code`].
fn dispatch(command: Command, io: &mut app::Io<'_>) -> Result<app::Outcome, app::AppError> {
    match command {
        Command::Check {
            files,
            format,
            deny_warnings,
            templates,
            serve,
        } => {
            let request = CheckRequest {
                files,
                format: match format {
                    Format::Human => CheckFormat::Human,
                    Format::Json => CheckFormat::Json,
                },
                deny_warnings,
                templates,
                serve,
            };
            app::check::run(&request, io)
        }
        Command::Plan {
            rules,
            patients,
            from,
            to,
            days,
            now,
            format,
            quota,
            ledger,
        } => {
            let patients = patient_source(patients)?;
            let request = PlanRequest {
                rules: rules_source(rules),
                patients,
                times: app::WindowArgs {
                    now,
                    from,
                    to,
                    days,
                },
                format: match format {
                    PlanOutput::Table => PlanFormat::Table,
                    PlanOutput::Json => PlanFormat::Json,
                    PlanOutput::Csv => PlanFormat::Csv,
                    PlanOutput::Html => PlanFormat::Html,
                },
                quota,
                ledger: ledger.or_else(ledger_url),
            };
            app::plan::run(&request, io)
        }
        Command::Run {
            rules,
            patients,
            now,
            since,
            ledger,
            outbox,
            dry_run,
            line_api_base,
            rate,
            concurrency,
            max_attempts,
            every,
            custom_aggregation,
            lease,
        } => {
            let patients = if rules.file.is_dir() {
                folder_patients(&rules.file, patients)?
            } else {
                patient_source(patients)?
            };
            // The URL (and its password) can stay out of the command line, where `ps` shows it.
            let ledger = ledger.or_else(ledger_url);
            // clap keeps --rate within 1..=100,000.
            let rate = std::num::NonZeroU32::new(rate).unwrap_or(std::num::NonZeroU32::MIN);
            let token = channel_token();
            let request = RunRequest {
                rules: rules_source(rules),
                patients,
                now,
                since,
                ledger,
                outbox,
                dry_run,
                line_api_base,
                token,
                delivery: DeliveryOptions {
                    rate,
                    concurrency,
                    max_attempts,
                    custom_aggregation,
                    ..DeliveryOptions::default()
                },
                every,
                progress: std::io::stderr().is_terminal(),
                lease: lease.unwrap_or(steprule::ledger::postgres::DEFAULT_LEASE),
            };
            app::run::run(&request, io)
        }
        Command::Serve {
            rules,
            patients,
            ledger,
            outbox,
            listen,
            run_every,
            line_api_base,
            custom_aggregation,
        } => {
            let patients = patient_source(patients)?;
            // Read here and only handed to the signature check; never printed.
            let secret = std::env::var("LINE_CHANNEL_SECRET").ok();
            // As for `run`: the URL (and its password) can stay out of the command line.
            let ledger = ledger.or_else(ledger_url);
            let request = ServeRequest {
                rules: rules_source(rules),
                patients,
                ledger,
                outbox,
                listen,
                run_every,
                line_api_base,
                secret,
                token: channel_token(),
                custom_aggregation,
            };
            app::serve::run(&request, io)
        }
        Command::Status {
            rules,
            ledger,
            clinic,
            format,
            patient,
            limit,
            patients,
            patients_query,
            patients_table,
            encoding,
            patients_format,
            mapping,
        } => {
            // As `run`: the URL may come from the environment, out of the command line.
            let ledger = ledger
                .or_else(ledger_url)
                .unwrap_or_else(|| default_ledger(rules.as_deref()));
            let patients = patients
                .map(|patients| {
                    patient_source(PatientArgs {
                        patients: Some(patients),
                        patients_query,
                        patients_table,
                        encoding,
                        patients_format,
                        mapping,
                    })
                })
                .transpose()?;
            let request = StatusRequest {
                ledger,
                format: match format {
                    StatusOutput::Table => StatusFormat::Table,
                    StatusOutput::Json => StatusFormat::Json,
                },
                patient,
                limit: usize::from(limit),
                rules: rules.map(|file| app::RulesSource {
                    file,
                    templates: None,
                }),
                patients,
                clinic,
            };
            app::status::run(&request, io)
        }
        Command::Explain {
            rules,
            patients,
            patient,
            now,
            ledger,
        } => {
            let patients = patient_source(patients)?;
            let request = ExplainRequest {
                rules: rules_source(rules),
                patients,
                patient,
                now,
                ledger: ledger.or_else(ledger_url),
            };
            app::explain::run(&request, io)
        }
        Command::Preview {
            rules,
            patients,
            patient,
            step,
            now,
            format,
            out,
            ledger,
        } => {
            let request = PreviewRequest {
                rules: rules_source(rules),
                patients: patient_source(patients)?,
                patient,
                step,
                now,
                format: match format {
                    PreviewOutput::Text => PreviewFormat::Text,
                    PreviewOutput::Html => PreviewFormat::Html,
                },
                out,
                ledger: ledger.or_else(ledger_url),
            };
            app::preview::run(&request, io)
        }
        Command::Review {
            rules,
            patients,
            patient,
            now,
            out,
        } => {
            let request = ReviewRequest {
                rules: rules_source(rules),
                patients: patient_source(patients)?,
                patient,
                now,
                out,
            };
            app::review::run(&request, io)
        }
        Command::Events {
            rules,
            ledger,
            format,
            kind,
            since,
            limit,
        } => {
            let ledger = ledger
                .or_else(ledger_url)
                .unwrap_or_else(|| default_ledger(rules.as_deref()));
            let request = EventsRequest {
                ledger,
                rules: rules.map(|file| app::RulesSource {
                    file,
                    templates: None,
                }),
                format: match format {
                    StatusOutput::Table => EventsFormat::Table,
                    StatusOutput::Json => EventsFormat::Json,
                },
                kind,
                since,
                limit,
            };
            app::events::run(&request, io)
        }
        Command::Report {
            rules,
            ledger,
            month,
            from,
            to,
            format,
            out,
            metric,
            mde,
            now,
            patients,
            patients_query,
            patients_table,
            encoding,
            patients_format,
            mapping,
        } => {
            let patients = patients
                .map(|patients| {
                    patient_source(PatientArgs {
                        patients: Some(patients),
                        patients_query,
                        patients_table,
                        encoding,
                        patients_format,
                        mapping,
                    })
                })
                .transpose()?;
            let period = match (month, from, to) {
                (Some(month), _, _) => PeriodArgs::Month(month),
                (None, Some(from), Some(to)) => PeriodArgs::Range { from, to },
                _ => PeriodArgs::LastMonth,
            };
            let request = ReportRequest {
                ledger: ledger
                    .or_else(ledger_url)
                    .unwrap_or_else(|| default_ledger(Some(&rules.file))),
                rules: rules_source(rules),
                period,
                now,
                format: match format {
                    ReportOutput::Table => ReportFormat::Table,
                    ReportOutput::Json => ReportFormat::Json,
                    ReportOutput::Html => ReportFormat::Html,
                },
                out,
                metric: metric.map(|m| match m {
                    MetricArg::Booked => Metric::Booked,
                    MetricArg::Clicked => Metric::Clicked,
                    MetricArg::Blocked => Metric::Blocked,
                }),
                mde,
                patients,
            };
            app::report::run(&request, io)
        }
        Command::Insights {
            command:
                InsightsCommand::Fetch {
                    rules,
                    ledger,
                    since,
                    now,
                    line_api_base,
                    format,
                },
        } => {
            let request = InsightsRequest {
                ledger: ledger
                    .or_else(ledger_url)
                    .unwrap_or_else(|| default_ledger(Some(&rules.file))),
                rules: rules_source(rules),
                since,
                now,
                line_api_base,
                token: channel_token(),
                format: match format {
                    StatusOutput::Table => InsightsFormat::Table,
                    StatusOutput::Json => InsightsFormat::Json,
                },
            };
            app::insights::fetch(&request, io)
        }
    }
}

/// `STEPRULE_LEDGER_URL`, the ledger a command reads without `--ledger`: the URL (and its
/// password) can stay out of the command line, where `ps` shows it.
fn ledger_url() -> Option<PathBuf> {
    std::env::var_os("STEPRULE_LEDGER_URL").map(PathBuf::from)
}

/// `.steprule/ledger.db` beside the rules, or in the current folder without them.
fn default_ledger(rules: Option<&std::path::Path>) -> PathBuf {
    rules
        .and_then(|r| r.parent())
        .unwrap_or(std::path::Path::new(""))
        .join(".steprule/ledger.db")
}

/// `LINE_CHANNEL_ACCESS_TOKEN`: read here and only handed to the LINE client; never printed.
fn channel_token() -> Option<steprule::ChannelToken> {
    std::env::var("LINE_CHANNEL_ACCESS_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(|t| steprule::ChannelToken::new(t.trim().to_owned()))
}

fn rules_source(args: RulesArgs) -> app::RulesSource {
    app::RulesSource {
        file: args.file,
        templates: args.templates,
    }
}

/// `--patients` and its companions as the library takes them, with `STEPRULE_PATIENTS_URL`.
fn patients_asked(args: PatientArgs) -> app::PatientsAsked {
    app::PatientsAsked {
        patients: args.patients,
        query: args.patients_query,
        table: args.patients_table,
        encoding: args.encoding,
        format: args.patients_format,
        mapping: args.mapping,
        url_from_env: std::env::var("STEPRULE_PATIENTS_URL").ok(),
    }
}

fn patient_source(args: PatientArgs) -> Result<app::PatientSource, app::AppError> {
    app::PatientSource::locate(patients_asked(args))
}

fn folder_patients(
    folder: &std::path::Path,
    args: PatientArgs,
) -> Result<app::PatientSource, app::AppError> {
    app::PatientSource::for_folder(folder, patients_asked(args))
}

/// Runs a command with stdout and stderr, mapping its outcome to an exit code. The one place
/// an error is printed.
fn with_io(
    command: impl FnOnce(&mut app::Io<'_>) -> Result<app::Outcome, app::AppError>,
) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut err = std::io::stderr();
    let color = err.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut io = app::Io {
        out: &mut out,
        err: &mut err,
        color,
    };
    let outcome = command(&mut io).and_then(|outcome| {
        std::io::Write::flush(&mut out)?;
        Ok(outcome)
    });
    match outcome {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        // A closed pipe (`steprule plan … | head`) is not worth a message.
        Err(error) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", steprule::printable_lines(&error.to_string()));
            ExitCode::from(error.exit_code())
        }
    }
}
