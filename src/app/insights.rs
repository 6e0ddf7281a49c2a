//! `steprule insights fetch`: the rules (for the ledger beside them and `--now`'s time zone),
//! the ledger (which units `run` used, what is cached) and LINE's insight endpoints become
//! cached figures for `report`, and a short summary of what was fetched and what is left.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use super::{load_rules, AppError, Io, Outcome, RulesSource};
use crate::deliver::{ChannelToken, LineClient};
use crate::insights::{self, Clock, Fetch, Stop, Summary};
use crate::ledger::{InsightEndpoint, Ledger, LedgerLocation};
use crate::line::insight::{line_day, HalfMonth, HOURLY_REQUESTS};
use crate::printable::printable;

/// How far back a fetch reaches: about 13 months, so that a year-on-year month is there.
pub const MAX_HISTORY_DAYS: i64 = 400;

/// The wait before retrying a request LINE could not answer.
const BACKOFF: Duration = Duration::from_millis(500);

/// How the summary is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsightsFormat {
    Table,
    Json,
}

#[derive(Debug, Clone)]
pub struct InsightsRequest {
    pub rules: RulesSource,
    pub ledger: PathBuf,
    /// The first day (Japan time) to fetch; default the first day a unit was used.
    pub since: Option<String>,
    /// The instant the fetch takes as now (default: the clock).
    pub now: Option<String>,
    pub line_api_base: String,
    /// From `LINE_CHANNEL_ACCESS_TOKEN`.
    pub token: Option<ChannelToken>,
    pub format: InsightsFormat,
}

pub fn fetch(request: &InsightsRequest, io: &mut Io<'_>) -> Result<Outcome, AppError> {
    // LINE's answers are cached in SQLite tables that the PostgreSQL ledger does not have yet
    // (`report` on PostgreSQL shows `opened` as not fetched meanwhile).
    if let LedgerLocation::Postgres(url) = LedgerLocation::of(&request.ledger) {
        return Err(AppError::Usage(format!(
            "`insights fetch` does not write to a PostgreSQL ledger yet ({}): LINE's answers \
             are cached only in an SQLite ledger",
            crate::ledger::postgres::shown_url(&url)
        )));
    }
    let Some(token) = request.token.clone() else {
        return Err(AppError::Usage(
            "LINE_CHANNEL_ACCESS_TOKEN is not set: `insights fetch` reads LINE's statistics \
             with the channel access token `run` uses"
                .into(),
        ));
    };
    // The base URL is checked before anything is read or sent.
    let client = LineClient::new(&request.line_api_base, token)?;
    let rules = load_rules(&request.rules, io)?;
    let now = match &request.now {
        Some(text) => crate::time::parse_instant(text, rules.timezone)
            .map_err(|e| AppError::Usage(format!("--now: {e}")))?,
        None => Utc::now(),
    };
    let mut ledger = Ledger::open_existing(&request.ledger)?;
    let today = line_day(now);
    let mut summary = Summary::default();
    if let Some(since) = since(request, &ledger, today, io)? {
        let yesterday = today.pred_opt().unwrap_or(today);
        summary.since = Some(since);
        summary.until = Some(yesterday);
        let halves =
            ledger.unit_halves(HalfMonth::of(since).first, HalfMonth::of(yesterday).first)?;
        let followers = ledger.followers(since, yesterday)?;
        let plan = insights::plan(&halves, &followers, since, today);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Fetch {
            ledger: &mut ledger,
            client: &client,
            runtime: &runtime,
            clock: Clock::starting_at(now),
            backoff: BACKOFF,
        }
        .run(&plan, &mut summary)?;
    }
    let text = match request.format {
        InsightsFormat::Table => table(&summary),
        InsightsFormat::Json => json(&summary)? + "\n",
    };
    io.out.write_all(text.as_bytes())?;
    match summary.refused {
        Some((status, message)) => Err(AppError::LineRefused { status, message }),
        None => Ok(Outcome::Ok),
    }
}

/// The first day to fetch: `--since`, else the first day a unit was used, else the first
/// delivery through LINE; at most [`MAX_HISTORY_DAYS`] back. `None` when there is nothing.
fn since(
    request: &InsightsRequest,
    ledger: &Ledger,
    today: NaiveDate,
    io: &mut Io<'_>,
) -> Result<Option<NaiveDate>, AppError> {
    let earliest = today - chrono::Duration::days(MAX_HISTORY_DAYS);
    let since = match &request.since {
        Some(text) => Some(
            crate::time::parse_date(text).map_err(|e| AppError::Usage(format!("--since: {e}")))?,
        ),
        None => match ledger.first_unit_day()? {
            Some(day) => Some(day),
            None => ledger
                .first_line_delivery()?
                .map(|at: DateTime<Utc>| line_day(at)),
        },
    };
    let Some(since) = since else {
        writeln!(
            io.err,
            "nothing to fetch: the ledger has no aggregation units (`run --custom-aggregation` \
             names LINE pushes with them) and no deliveries through LINE"
        )?;
        return Ok(None);
    };
    let yesterday = today.pred_opt().unwrap_or(today);
    if since > yesterday {
        writeln!(
            io.err,
            "nothing to fetch: {since} is after yesterday ({yesterday}, Japan time); LINE counts \
             a day once it is over"
        )?;
        return Ok(None);
    }
    if since < earliest {
        writeln!(
            io.err,
            "note: {since} is more than {MAX_HISTORY_DAYS} days back; fetching from {earliest}"
        )?;
        return Ok(Some(earliest));
    }
    Ok(Some(since))
}

fn endpoint_name(endpoint: InsightEndpoint) -> &'static str {
    match endpoint {
        InsightEndpoint::Aggregation => "unit figures",
        InsightEndpoint::Followers => "followers",
    }
}

/// The summary for a terminal or a cron mail.
fn table(summary: &Summary) -> String {
    let (Some(since), Some(until)) = (summary.since, summary.until) else {
        return "insights: nothing to fetch\n".to_owned();
    };
    let mut out = format!(
        "insights {since} to {until} (LINE's days, Japan time): {} unit{}, {} request{}\n",
        summary.units,
        plural(summary.units as u64),
        summary.requests,
        plural(summary.requests)
    );
    out.push_str(&format!(
        "  unit figures: {} fetched ({} suppressed below 20, {} final), {} already final, {} \
         failed, {} left for later\n",
        summary.halves_fetched,
        summary.halves_suppressed,
        summary.halves_settled,
        summary.halves_cached,
        summary.halves_failed,
        summary.halves_left
    ));
    out.push_str(&format!(
        "  followers: {} day{} fetched, {} not counted by LINE yet, {} already final, {} \
         failed, {} left for later\n",
        summary.days_fetched,
        plural(summary.days_fetched),
        summary.days_unready,
        summary.days_cached,
        summary.days_failed,
        summary.days_left
    ));
    if summary.elsewhere > 0 {
        out.push_str(&format!(
            "  {} asked for by another fetch running at the same time\n",
            summary.elsewhere
        ));
    }
    for stop in &summary.stops {
        out.push_str(&match stop {
            Stop::Budget(endpoint) => format!(
                "stopped asking for {}: the last hour's {HOURLY_REQUESTS} requests are spent \
                 (LINE's limit); the next run goes on from here\n",
                endpoint_name(*endpoint)
            ),
            Stop::RateLimited => "stopped: LINE answered 429 (too many requests); the next run \
                                  goes on from here\n"
                .to_owned(),
        });
    }
    if summary.problem_count > 0 {
        out.push_str(&format!(
            "problems ({}, asked again by the next run):\n",
            summary.problem_count
        ));
        for problem in &summary.problems {
            out.push_str(&format!(
                "  {}: {}\n",
                printable(&problem.asked),
                printable(&problem.error)
            ));
        }
    }
    out
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The summary as one JSON document with stable keys.
fn json(summary: &Summary) -> Result<String, AppError> {
    let stops: Vec<String> = summary
        .stops
        .iter()
        .map(|stop| match stop {
            Stop::Budget(endpoint) => format!("budget:{}", endpoint.as_str()),
            Stop::RateLimited => "rate_limited".to_owned(),
        })
        .collect();
    let problems: Vec<_> = summary
        .problems
        .iter()
        .map(|p| json!({"asked": p.asked, "error": p.error}))
        .collect();
    let document = json!({
        "since": summary.since.map(|d| d.to_string()),
        "until": summary.until.map(|d| d.to_string()),
        "units": summary.units,
        "unit_figures": {
            "fetched": summary.halves_fetched,
            "suppressed": summary.halves_suppressed,
            "settled": summary.halves_settled,
            "cached": summary.halves_cached,
            "failed": summary.halves_failed,
            "left": summary.halves_left,
        },
        "followers": {
            "fetched": summary.days_fetched,
            "unready": summary.days_unready,
            "cached": summary.days_cached,
            "failed": summary.days_failed,
            "left": summary.days_left,
        },
        "requests": summary.requests,
        "elsewhere": summary.elsewhere,
        "stopped": stops,
        "problem_count": summary.problem_count,
        "problems": problems,
    });
    serde_json::to_string_pretty(&document).map_err(|e| AppError::Io(e.into()))
}
