//! The command line: every subcommand, its arguments and their checks (clap derive). `main.rs`
//! maps what is parsed here to library calls.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use steprule::app;
use steprule::{Encoding, RecordFormat};

/// Stage-aware LINE step delivery for clinics.
#[derive(Parser)]
#[command(name = "steprule", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Check .step files and their templates; report every problem found.
    Check {
        /// The .step files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Treat warnings as errors (exit code 1).
        #[arg(long)]
        deny_warnings: bool,
        /// Where the templates are (default: `templates/` beside each .step file).
        #[arg(long, value_name = "DIR")]
        templates: Option<PathBuf>,
        /// Also check what `steprule serve` needs: the link templates (link_request,
        /// link_done, link_failed, link_locked).
        #[arg(long)]
        serve: bool,
    },
    /// Show every send in a time window, in time order, with daily and monthly totals.
    Plan {
        #[command(flatten)]
        rules: RulesArgs,
        #[command(flatten)]
        patients: PatientArgs,
        /// The instant to plan from (default: --now). RFC 3339, or `2026-11-25 10:00` in the
        /// clinic's time zone, or a date.
        #[arg(long)]
        from: Option<String>,
        /// The end of the window (exclusive).
        #[arg(long, conflicts_with = "days")]
        to: Option<String>,
        /// The window's length in days (default 7, at most 3660).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(app::MAX_DAYS)))]
        days: Option<u32>,
        /// Evaluate as if it were this instant (default: the clock).
        #[arg(long)]
        now: Option<String>,
        #[arg(long, value_enum, default_value_t = PlanOutput::Table)]
        format: PlanOutput,
        /// The LINE plan's monthly message quota: months projected over it are flagged.
        #[arg(long)]
        quota: Option<u64>,
        /// The ledger whose LINE links and blocks to show (default: .steprule/ledger.db beside
        /// the rules, when it exists; never created), or a postgres:// URL (also from
        /// STEPRULE_LEDGER_URL), read as the rules' clinic's rows.
        #[arg(long, value_name = "PATH|URL")]
        ledger: Option<PathBuf>,
    },
    /// Deliver what is due now through LINE (or to the outbox without a token), recording every
    /// send in the ledger. RULES may be a folder of clinics: each subfolder with its rules file
    /// and patients.csv, served in turn.
    Run {
        #[command(flatten)]
        rules: RulesArgs,
        #[command(flatten)]
        patients: PatientArgs,
        /// Evaluate as if it were this instant (default: the clock).
        #[arg(long)]
        now: Option<String>,
        /// Sends whose time is before this instant are recorded as skipped ("before start")
        /// and never sent, as the rules' `start` setting does (which this replaces).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// The ledger: a file (default: .steprule/ledger.db beside the rules), or a
        /// postgres://USER:PASSWORD@HOST/DATABASE URL that several workers share (also from
        /// STEPRULE_LEDGER_URL, which keeps the password out of the command line).
        #[arg(long, value_name = "PATH|URL")]
        ledger: Option<PathBuf>,
        /// The outbox for deliveries without a token or with --dry-run (default:
        /// .steprule/outbox.jsonl beside the rules).
        #[arg(long, value_name = "PATH")]
        outbox: Option<PathBuf>,
        /// Write to the outbox even when LINE_CHANNEL_ACCESS_TOKEN is set.
        #[arg(long)]
        dry_run: bool,
        /// The LINE API's base URL (for tests against a fake server).
        #[arg(long, default_value = steprule::DEFAULT_API_BASE)]
        line_api_base: String,
        /// Requests per second, never exceeded (LINE allows 2,000/s for push).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        rate: u32,
        /// Requests in flight at once (at most 1,024).
        #[arg(long, default_value_t = 32, value_parser = parse_concurrency)]
        concurrency: usize,
        /// Attempts per send in one run (1–100); after that the next run retries it.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        max_attempts: u32,
        /// Keep running and evaluate on this interval, e.g. 5m or 30s (1s to 24h).
        #[arg(long, value_parser = parse_interval)]
        every: Option<std::time::Duration>,
        /// Name each push in LINE's customAggregationUnits: the step, or step__variant for an A/B arm (for accounts that applied).
        #[arg(long)]
        custom_aggregation: bool,
        /// On a PostgreSQL ledger, how long this worker holds the sends it claimed before
        /// another may take them over, e.g. 5m (the default) or 30s (1s to 24h).
        #[arg(long, value_parser = parse_interval)]
        lease: Option<std::time::Duration>,
    },
    /// What the ledger holds: sends per step and status, the latest that did not go out and
    /// why, and (with --patient) everything one patient was sent.
    Status {
        /// The .step file whose ledger to read (default ledger: .steprule/ledger.db beside it,
        /// or in the current folder without a file).
        rules: Option<PathBuf>,
        /// The ledger to read: a file, or a postgres:// URL (also from STEPRULE_LEDGER_URL).
        #[arg(long, value_name = "PATH|URL")]
        ledger: Option<PathBuf>,
        /// On a PostgreSQL ledger, the clinic whose sends to show (default: RULES' clinic, or
        /// the only clinic in the ledger).
        #[arg(long, value_name = "NAME")]
        clinic: Option<String>,
        #[arg(long, value_enum, default_value_t = StatusOutput::Table)]
        format: StatusOutput,
        /// Also list every send to this patient id.
        #[arg(long)]
        patient: Option<String>,
        /// How many of the latest failed, held or expired sends to show (1–1000).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        /// The patient export (with RULES): compares its LINE ids with the ledger's links.
        #[arg(long, value_name = "FILE")]
        patients: Option<PathBuf>,
        /// With a postgres:// URL in --patients: the SELECT that lists the patients.
        #[arg(
            long,
            value_name = "SQL",
            requires = "patients",
            conflicts_with = "patients_table"
        )]
        patients_query: Option<String>,
        /// With a postgres:// URL in --patients: the table whose rows are the patients.
        #[arg(long, value_name = "NAME", requires = "patients")]
        patients_table: Option<String>,
        /// The export's text encoding: auto, utf-8 or shift_jis.
        #[arg(long, default_value = "auto", value_parser = parse_encoding)]
        encoding: Encoding,
        /// The export's format, when its file name does not say: csv or jsonl.
        #[arg(long = "patients-format", value_parser = parse_record_format)]
        patients_format: Option<RecordFormat>,
        /// A TOML file mapping the export's column headers to steprule's names.
        #[arg(long, value_name = "FILE")]
        mapping: Option<PathBuf>,
    },
    /// Receive what patients do: LINE webhooks (follows, blocks, postbacks, linking messages)
    /// and tracked links, stored in the ledger; with --run-every, also deliver on an interval.
    /// Needs LINE_CHANNEL_SECRET; LINE_CHANNEL_ACCESS_TOKEN for replies and LINE delivery.
    Serve {
        #[command(flatten)]
        rules: RulesArgs,
        #[command(flatten)]
        patients: PatientArgs,
        /// The ledger: a file (default: .steprule/ledger.db beside the rules), or a
        /// postgres://USER:PASSWORD@HOST/DATABASE URL that several `serve` instances and `run`
        /// workers share (also from STEPRULE_LEDGER_URL).
        #[arg(long, value_name = "PATH|URL")]
        ledger: Option<PathBuf>,
        /// The outbox for --run-every deliveries without a token (default:
        /// .steprule/outbox.jsonl beside the rules).
        #[arg(long, value_name = "PATH")]
        outbox: Option<PathBuf>,
        /// The address and port to listen on (put a TLS reverse proxy in front).
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: String,
        /// Also deliver what is due on this interval, e.g. 5m (1s to 24h), as `steprule run`
        /// does and sharing its lock.
        #[arg(long, value_parser = parse_interval, value_name = "DURATION")]
        run_every: Option<std::time::Duration>,
        /// The LINE API's base URL (for tests against a fake server).
        #[arg(long, default_value = steprule::DEFAULT_API_BASE)]
        line_api_base: String,
        /// Name each --run-every push in LINE's customAggregationUnits, as `run` does (for
        /// `insights fetch` and the report's opened).
        #[arg(long)]
        custom_aggregation: bool,
    },
    /// Say, for one patient, when each step sends or exactly why it does not.
    Explain {
        #[command(flatten)]
        rules: RulesArgs,
        #[command(flatten)]
        patients: PatientArgs,
        /// The patient's id.
        #[arg(long)]
        patient: String,
        /// Evaluate as if it were this instant (default: the clock).
        #[arg(long)]
        now: Option<String>,
        /// The ledger whose LINE link and block to show (default: .steprule/ledger.db beside
        /// the rules, when it exists; never created), or a postgres:// URL (also from
        /// STEPRULE_LEDGER_URL), read as the rules' clinic's rows.
        #[arg(long, value_name = "PATH|URL")]
        ledger: Option<PathBuf>,
    },
    /// Show one patient's messages as LINE would show them (text, or a page like LINE's chat),
    /// rendered exactly as delivery would; nothing is sent.
    Preview {
        #[command(flatten)]
        rules: RulesArgs,
        #[command(flatten)]
        patients: PatientArgs,
        /// The patient's id.
        #[arg(long)]
        patient: String,
        /// Only this step (default: every step that sends to the patient in the next 400 days).
        #[arg(long)]
        step: Option<String>,
        /// Evaluate as if it were this instant (default: the clock).
        #[arg(long)]
        now: Option<String>,
        /// text (terminal) or html (a self-contained page that looks like LINE's chat).
        #[arg(long, value_enum, default_value_t = PreviewOutput::Text)]
        format: PreviewOutput,
        /// Write the preview to this file (created 0600: it holds patient data).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The ledger whose LINE link and block to use (default: .steprule/ledger.db beside
        /// the rules, when it exists; never created), or a postgres:// URL (also from
        /// STEPRULE_LEDGER_URL), read as the rules' clinic's rows.
        #[arg(long, value_name = "PATH|URL")]
        ledger: Option<PathBuf>,
    },
    /// The review sheet to sign before launch: every step in stage order with its timing,
    /// conditions and each template rendered for a sample patient as LINE shows it (the
    /// notification line marked), every lint finding and allowance with its reason, and a
    /// sign-off block. One self-contained HTML page in Japanese that prints on A4.
    ///
    /// The sheet is written even when the rules have errors (it is how they are reviewed);
    /// the exit code then is 1, as `check`'s. Rules that cannot be read give no sheet (exit 2).
    /// Exit 3: some patient rows could not be read (the sheet is written).
    Review {
        #[command(flatten)]
        rules: RulesArgs,
        #[command(flatten)]
        patients: PatientArgs,
        /// Render every step for this patient id (default: per step, the first patient its
        /// stage and conditions apply to, else the first in its stage, else the first).
        #[arg(long)]
        patient: Option<String>,
        /// The review's instant: the sheet's date and the templates' `now` (default:
        /// SOURCE_DATE_EPOCH when set, else the clock). The same inputs and instant give the
        /// same bytes.
        #[arg(long)]
        now: Option<String>,
        /// Write the sheet to this file (created 0600: it holds rendered messages with patient
        /// data) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// What patients did, as the ledger stored it: follows, blocks, taps, clicks and links,
    /// oldest first (never LINE user ids or message text).
    Events {
        /// The .step file: its ledger by default, and its time zone for --since and the times
        /// shown (without it, UTC).
        rules: Option<PathBuf>,
        /// The ledger to read (default: .steprule/ledger.db beside RULES, or in the current
        /// folder without it), or a postgres:// URL (also from STEPRULE_LEDGER_URL; then RULES
        /// names the clinic whose events to show).
        #[arg(long, value_name = "PATH|URL")]
        ledger: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = StatusOutput::Table)]
        format: StatusOutput,
        /// Only events of this type (follow, unfollow, postback, click, link, link_failed,
        /// message, account_link).
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// Only events at or after this instant: RFC 3339, or `2026-11-25 10:00` in the
        /// clinic's time zone (UTC without RULES), or a date.
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Only the latest N events (1–100000), still oldest first.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
    },
    /// The KPIs per step and A/B arm for a month (default: the last full one) or --from/--to,
    /// against the period before: sent, opened, clicked, booked, revisited, blocked.
    Report {
        #[command(flatten)]
        rules: RulesArgs,
        /// The ledger (default: .steprule/ledger.db beside the rules), or a postgres:// URL
        /// (also from STEPRULE_LEDGER_URL), read as the rules' clinic's rows.
        #[arg(long, value_name = "PATH|URL")]
        ledger: Option<PathBuf>,
        /// A calendar month in the clinic's time zone, e.g. 2026-10.
        #[arg(long, value_name = "YYYY-MM", conflicts_with_all = ["from", "to"])]
        month: Option<String>,
        /// The first day of the period (with --to).
        #[arg(long, value_name = "DATE", requires = "to")]
        from: Option<String>,
        /// The last day of the period, included (with --from).
        #[arg(long, value_name = "DATE", requires = "from")]
        to: Option<String>,
        /// table (terminal), json, or html (one self-contained page in Japanese, with charts).
        #[arg(long, value_enum, default_value_t = ReportOutput::Table)]
        format: ReportOutput,
        /// Write the report to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// What A/B arms are compared on (default: booked, or clicked when no booking was seen).
        #[arg(long, value_enum)]
        metric: Option<MetricArg>,
        /// The difference in rate an A/B test should detect, e.g. 0.02 (default: the one
        /// observed).
        #[arg(long, value_name = "X")]
        mde: Option<f64>,
        /// Take "today" (for the default month) from this instant instead of the clock.
        #[arg(long)]
        now: Option<String>,
        /// The patient export, read as `run` reads it: adds the patients per stage, how many
        /// are on LINE and how many blocked the account.
        #[arg(long, value_name = "FILE")]
        patients: Option<PathBuf>,
        /// With a postgres:// URL in --patients: the SELECT that lists the patients.
        #[arg(
            long,
            value_name = "SQL",
            requires = "patients",
            conflicts_with = "patients_table"
        )]
        patients_query: Option<String>,
        /// With a postgres:// URL in --patients: the table whose rows are the patients.
        #[arg(long, value_name = "NAME", requires = "patients")]
        patients_table: Option<String>,
        /// The export's text encoding: auto, utf-8 or shift_jis.
        #[arg(long, default_value = "auto", value_parser = parse_encoding)]
        encoding: Encoding,
        /// The export's format, when its file name does not say: csv or jsonl.
        #[arg(long = "patients-format", value_parser = parse_record_format)]
        patients_format: Option<RecordFormat>,
        /// A TOML file mapping the export's column headers to steprule's names.
        #[arg(long, value_name = "FILE")]
        mapping: Option<PathBuf>,
    },
    /// LINE's statistics for `report`: per-unit opens and the account's friends.
    Insights {
        #[command(subcommand)]
        command: InsightsCommand,
    },
}

#[derive(Subcommand)]
pub(crate) enum InsightsCommand {
    /// Fetch LINE's figures for the aggregation units `run --custom-aggregation` used, and the
    /// account's friends per day, into the ledger. Safe to run daily from cron: it stays within
    /// LINE's 60 requests an hour and leaves the rest for the next run. Needs
    /// LINE_CHANNEL_ACCESS_TOKEN.
    Fetch {
        #[command(flatten)]
        rules: RulesArgs,
        /// The ledger (default: .steprule/ledger.db beside the rules).
        #[arg(long, value_name = "PATH")]
        ledger: Option<PathBuf>,
        /// The first day to fetch, YYYY-MM-DD in Japan time (default: the first day a unit
        /// was used; at most about 13 months back).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Fetch as if it were this instant (default: the clock).
        #[arg(long)]
        now: Option<String>,
        /// The LINE API's base URL (for tests against a fake server).
        #[arg(long, default_value = steprule::DEFAULT_API_BASE)]
        line_api_base: String,
        #[arg(long, value_enum, default_value_t = StatusOutput::Table)]
        format: StatusOutput,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum MetricArg {
    Booked,
    Clicked,
    Blocked,
}

#[derive(Args)]
pub(crate) struct RulesArgs {
    /// The .step file.
    pub(crate) file: PathBuf,
    /// Where the templates are (default: `templates/` beside the .step file).
    #[arg(long, value_name = "DIR")]
    pub(crate) templates: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct PatientArgs {
    /// The patient export (.csv or .jsonl), or a PostgreSQL database
    /// (postgres://user@host:port/db, with --patients-query or --patients-table). Without it,
    /// the URL in STEPRULE_PATIENTS_URL.
    #[arg(long, value_name = "FILE|URL")]
    pub(crate) patients: Option<PathBuf>,
    /// With a postgres:// URL: the SELECT that lists the patients, one row each (run in a
    /// read-only transaction).
    #[arg(long, value_name = "SQL", conflicts_with = "patients_table")]
    pub(crate) patients_query: Option<String>,
    /// With a postgres:// URL: the table (or schema.table) whose rows are the patients.
    #[arg(long, value_name = "NAME")]
    pub(crate) patients_table: Option<String>,
    /// The export's text encoding: auto, utf-8 or shift_jis.
    #[arg(long, default_value = "auto", value_parser = parse_encoding)]
    pub(crate) encoding: Encoding,
    /// The export's format, when its file name does not say: csv or jsonl.
    #[arg(long = "patients-format", value_parser = parse_record_format)]
    pub(crate) patients_format: Option<RecordFormat>,
    /// A TOML file mapping the export's column headers to steprule's names.
    #[arg(long, value_name = "FILE")]
    pub(crate) mapping: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum StatusOutput {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ReportOutput {
    Table,
    Json,
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum PreviewOutput {
    Text,
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum PlanOutput {
    Table,
    Json,
    Csv,
    /// A month-at-a-glance calendar page (at most 93 days).
    Html,
}

/// The longest `--every`: a day (a longer pause is a job for cron).
pub(crate) const MAX_EVERY_SECONDS: u64 = 24 * 3600;

pub(crate) fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    // clap names the flag (--every or --run-every) before this message.
    let too_long = || format!("`{text}` is too long: the interval is 1s to 24h");
    let number: u64 = number.parse().map_err(|e: std::num::ParseIntError| {
        if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
            too_long()
        } else {
            format!("`{text}` is not an interval like 30s, 5m or 1h")
        }
    })?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" | "" => 60,
        "h" => 3600,
        _ => return Err(format!("`{text}`: use s, m or h")),
    };
    let seconds = number.checked_mul(unit_seconds).ok_or_else(too_long)?;
    if seconds == 0 {
        return Err("the interval must be longer than zero".into());
    }
    if seconds > MAX_EVERY_SECONDS {
        return Err(too_long());
    }
    Ok(std::time::Duration::from_secs(seconds))
}

pub(crate) fn parse_concurrency(text: &str) -> Result<usize, String> {
    let max = steprule::MAX_CONCURRENCY;
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("`{text}`: --concurrency takes 1 to {max}")),
    }
}

pub(crate) fn parse_encoding(text: &str) -> Result<Encoding, String> {
    text.parse()
}

pub(crate) fn parse_record_format(text: &str) -> Result<RecordFormat, String> {
    text.parse()
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Human,
    Json,
}
