//! `steprule insights fetch`: LINE's statistics for the aggregation units `run` used, and the
//! account's friends per day, fetched into the ledger for `report`.
//!
//! LINE allows 60 requests an hour on each insight endpoint, so a fetch is budgeted: every
//! request is claimed in the ledger's request log before it leaves (one write transaction
//! counts the last hour and claims, so two fetches at once never spend one request twice),
//! and when an endpoint's hour is spent the fetch stops asking it, keeps what it has, and
//! leaves the rest for the next run. Work comes in [`plan`]'s order, most useful first.
//!
//! What LINE says goes into the cache as it comes, one answer at a time: a 429 stops the run,
//! a 5xx or a lost connection is tried again a few times, any other refusal (or an answer
//! that is not LINE's shape) is recorded against that request and the rest goes on. Only a
//! refused token or channel (401, 403) ends the run as an error: every request would meet it.

mod plan;

pub use plan::{plan, HalfJob, Plan};

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};

use crate::deliver::{InsightError, LineClient};
use crate::ledger::{InsightClaim, InsightEndpoint, InsightLedger, LedgerError};
use crate::line::insight::{line_day, HOURLY_REQUESTS};

/// Attempts per request when LINE is unavailable (5xx, timeout); each counts on the budget.
pub const ATTEMPTS: u32 = 3;

/// How many problems a summary keeps word for word (it counts them all).
const KEPT_PROBLEMS: usize = 20;

/// The fetch's clock: its start (`--now`, or the clock) plus the time since.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: DateTime<Utc>,
    began: Instant,
}

impl Clock {
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock {
            start,
            began: Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.began.elapsed()).unwrap_or_default();
        self.start + elapsed
    }
}

/// Why a fetch stopped before its work was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The last hour's requests to an endpoint reached LINE's limit.
    Budget(InsightEndpoint),
    /// LINE answered 429.
    RateLimited,
}

/// A request that brought no figures: what was asked, and LINE's (redacted) words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub asked: String,
    pub error: String,
}

/// What a fetch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub since: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
    pub units: usize,
    /// Unit half-months answered, of them with the opens withheld (below 20), and of them final.
    pub halves_fetched: u64,
    pub halves_suppressed: u64,
    pub halves_settled: u64,
    /// Final in the cache before this run: not asked.
    pub halves_cached: u64,
    pub halves_failed: u64,
    /// Not asked in this run (budget, 429): the next run asks.
    pub halves_left: u64,
    /// Days of friends answered (counted, or without figures), still uncounted, failed, final
    /// before this run, not asked.
    pub days_fetched: u64,
    pub days_unready: u64,
    pub days_failed: u64,
    pub days_cached: u64,
    pub days_left: u64,
    /// Half-months and days another fetch running at the same time asked for.
    pub elsewhere: u64,
    pub requests: u64,
    pub stops: Vec<Stop>,
    pub problems: Vec<Problem>,
    pub problem_count: u64,
    /// LINE refused the token or the channel (401, 403): the status and LINE's words.
    pub refused: Option<(u16, String)>,
}

impl Summary {
    fn problem(&mut self, asked: String, error: &InsightError) {
        self.problem_count += 1;
        if self.problems.len() < KEPT_PROBLEMS {
            self.problems.push(Problem {
                asked,
                error: error.message().to_owned(),
            });
        }
    }
}

/// Everything a fetch works with.
pub struct Fetch<'a> {
    /// An SQLite file, or one clinic's rows on PostgreSQL.
    pub ledger: &'a mut dyn InsightLedger,
    pub client: &'a LineClient,
    pub runtime: &'a tokio::runtime::Runtime,
    pub clock: Clock,
    /// The wait before the second attempt; doubled for each further one.
    pub backoff: Duration,
}

/// How one request ended.
enum Asked<T> {
    Answer(T),
    Failed(InsightError),
    NoBudget,
    /// Another fetch asked for the same minutes ago.
    Taken,
}

impl Fetch<'_> {
    /// Does `plan`'s work until it is done or a stop; the summary says how far it got.
    pub fn run(&mut self, plan: &Plan, summary: &mut Summary) -> Result<(), LedgerError> {
        summary.units = plan.units;
        summary.halves_cached = plan.halves_cached;
        summary.days_cached = plan.days_cached;
        self.ledger.prune_insight_requests(self.clock.now())?;
        let mut halves = plan.halves.iter();
        for job in halves.by_ref() {
            if !self.half(job, summary)? {
                summary.halves_left += 1;
                break;
            }
        }
        summary.halves_left += halves.count() as u64;
        let mut days = plan.days.iter();
        if summary.refused.is_none() && !summary.stops.contains(&Stop::RateLimited) {
            for &day in days.by_ref() {
                if !self.day(day, summary)? {
                    summary.days_left += 1;
                    break;
                }
            }
        }
        summary.days_left += days.count() as u64;
        Ok(())
    }

    /// Asks for one unit's half-month; `false` when the fetch must stop.
    fn half(&mut self, job: &HalfJob, summary: &mut Summary) -> Result<bool, LedgerError> {
        let asked = format!("{} {} to {}", job.unit, job.half.first, job.last);
        let (client, unit) = (self.client, job.unit.as_str());
        let answer = self.ask(InsightEndpoint::Aggregation, &asked, summary, || {
            client.unit_figures(unit, job.half.first, job.last)
        })?;
        let figures = match answer {
            Asked::Answer(figures) => figures,
            Asked::Failed(error) => return Ok(self.failed(asked, &error, summary, true)),
            Asked::NoBudget => {
                summary
                    .stops
                    .push(Stop::Budget(InsightEndpoint::Aggregation));
                return Ok(false);
            }
            Asked::Taken => {
                summary.elsewhere += 1;
                return Ok(true);
            }
        };
        let fetched_at = self.clock.now();
        // Final only when it covers the whole half-month and came after the 14 days.
        let settled = job.last == job.half.last && job.half.settled_on(line_day(fetched_at));
        self.ledger.store_unit_figures(
            &job.unit,
            job.half.first,
            job.last,
            &figures,
            fetched_at,
            settled,
        )?;
        summary.halves_fetched += 1;
        summary.halves_suppressed += u64::from(figures.unique_impression.is_none());
        summary.halves_settled += u64::from(settled);
        Ok(true)
    }

    /// Asks for the account's friends on one day; `false` when the fetch must stop.
    fn day(&mut self, day: NaiveDate, summary: &mut Summary) -> Result<bool, LedgerError> {
        let asked = format!("followers {day}");
        let client = self.client;
        let answer = self.ask(InsightEndpoint::Followers, &asked, summary, || {
            client.follower_figures(day)
        })?;
        let figures = match answer {
            Asked::Answer(figures) => figures,
            Asked::Failed(error) => return Ok(self.failed(asked, &error, summary, false)),
            Asked::NoBudget => {
                summary.stops.push(Stop::Budget(InsightEndpoint::Followers));
                return Ok(false);
            }
            Asked::Taken => {
                summary.elsewhere += 1;
                return Ok(true);
            }
        };
        self.ledger
            .store_followers(day, &figures, self.clock.now())?;
        if figures.status == crate::ledger::FollowerStatus::Unready {
            summary.days_unready += 1;
        } else {
            summary.days_fetched += 1;
        }
        Ok(true)
    }

    /// Notes a request that brought nothing; `false` when the fetch must stop (429, 401, 403).
    fn failed(
        &self,
        asked: String,
        error: &InsightError,
        summary: &mut Summary,
        half: bool,
    ) -> bool {
        summary.problem(asked, error);
        match error {
            InsightError::Refused { status, message } => {
                summary.refused = Some((*status, message.clone()));
                false
            }
            InsightError::RateLimited { .. } => {
                summary.stops.push(Stop::RateLimited);
                false
            }
            InsightError::Unavailable { .. } | InsightError::Rejected { .. } => {
                if half {
                    summary.halves_failed += 1;
                } else {
                    summary.days_failed += 1;
                }
                true
            }
        }
    }

    /// One request through the budget, tried again while LINE is unavailable; every attempt
    /// is claimed in the ledger before it leaves and settled with its outcome.
    fn ask<T, F, Fut>(
        &mut self,
        endpoint: InsightEndpoint,
        asked: &str,
        summary: &mut Summary,
        call: F,
    ) -> Result<Asked<T>, LedgerError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, InsightError>>,
    {
        let (mut wait, mut attempt) = (self.backoff, 1);
        loop {
            let now = self.clock.now();
            let claim = self
                .ledger
                .claim_insight_request(endpoint, asked, now, HOURLY_REQUESTS)?;
            let id = match claim {
                InsightClaim::Granted(id) => id,
                InsightClaim::Spent => return Ok(Asked::NoBudget),
                // Never this fetch's own failed attempt (a failure frees the subject): only
                // another fetch's request, out or answered.
                InsightClaim::Taken => return Ok(Asked::Taken),
            };
            summary.requests += 1;
            let answer = self.runtime.block_on(call());
            let outcome = match &answer {
                Ok(_) => "ok",
                Err(error) => error.message(),
            };
            self.ledger.settle_insight_request(id, outcome)?;
            match answer {
                Ok(value) => return Ok(Asked::Answer(value)),
                Err(InsightError::Unavailable { .. }) if attempt < ATTEMPTS => {
                    std::thread::sleep(wait);
                    wait = wait.saturating_mul(2);
                    attempt += 1;
                }
                Err(error) => return Ok(Asked::Failed(error)),
            }
        }
    }
}
