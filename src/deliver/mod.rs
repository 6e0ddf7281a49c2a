//! Delivery: rendered sends go to LINE (or to the outbox), at a bounded rate and concurrency,
//! retried with backoff, every outcome written to the ledger as it happens.

mod context;
pub mod line;
pub mod outbox;

pub use context::patient_context;
pub use line::{ChannelToken, LineClient, LineClientError, DEFAULT_API_BASE};
pub use outbox::Outbox;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::{Quota, RateLimiter};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::ledger::{Ledger, LedgerError, SendStatus};

/// One message ready to go out.
#[derive(Debug, Clone)]
pub struct Job {
    pub retry_key: String,
    pub patient: String,
    /// The patient's LINE user id.
    pub to: String,
    pub step: String,
    pub variant: Option<String>,
    pub messages: Vec<serde_json::Value>,
    pub expires: DateTime<Utc>,
}

/// What the other side said to one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accepted {
        request_id: Option<String>,
    },
    /// The retry key was accepted before (LINE's 409): delivered once, by an earlier attempt.
    AlreadyAccepted {
        /// The delivering request (LINE's `x-line-accepted-request-id`).
        request_id: Option<String>,
        /// LINE answered 409 without `x-line-accepted-request-id`: sent, by a request whose id
        /// is unknown.
        accepted_id_missing: bool,
    },
    /// Worth trying again (429, 5xx, no answer).
    Retry {
        /// How long to wait before the next attempt: the server's `Retry-After`, capped at
        /// `line::RETRY_AFTER_CAP`; `None` to back off as usual.
        after: Option<Duration>,
        /// The server's `Retry-After` before the cap (bounded by
        /// `line::RETRY_AFTER_ASKED_LIMIT`).
        asked: Option<Duration>,
        error: String,
    },
    /// Refused for good (other 4xx).
    Rejected {
        error: String,
    },
}

/// Where sends go.
#[derive(Debug)]
pub enum Sink {
    Line(LineClient),
    Outbox(Outbox),
}

impl Sink {
    async fn deliver(&self, job: &Job, aggregation: bool) -> Answer {
        match self {
            Sink::Line(client) => client.push(job, aggregation).await,
            Sink::Outbox(outbox) => outbox.deliver(job),
        }
    }
}

/// How hard to push.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Requests per second, never exceeded in any one-second window.
    pub rate: NonZeroU32,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Attempts per send within one run; after that it waits for the next run.
    pub max_attempts: u32,
    /// The first retry's delay; doubled each time, up to a minute.
    pub backoff: Duration,
    /// Send the step id as LINE's `customAggregationUnits` (accounts that applied only).
    pub custom_aggregation: bool,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            rate: NonZeroU32::new(1000).expect("non-zero"),
            concurrency: 32,
            max_attempts: 5,
            backoff: Duration::from_millis(250),
            custom_aggregation: false,
        }
    }
}

/// What one delivery pass came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub sent: u64,
    pub failed: u64,
    pub expired: u64,
    /// Still pending after this run's attempts; the next run retries them.
    pub retry_later: u64,
}

/// The run's clock: the run's `now` (which `--now` may set) plus the time since the run
/// started, so that expiry and the ledger's timestamps agree with the evaluation's instant.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    origin: DateTime<Utc>,
    started: std::time::Instant,
}

impl RunClock {
    pub fn starting_at(origin: DateTime<Utc>) -> Self {
        RunClock {
            origin,
            started: std::time::Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.origin + chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default()
    }
}

/// Observes progress (a progress bar on a terminal).
pub trait Progress: Send + Sync {
    fn queued(&self);
    fn settled(&self);
}

/// Delivers every job from `jobs` until the channel closes or `stop` turns true; in-flight
/// requests always finish and are recorded.
pub async fn deliver(
    mut jobs: mpsc::Receiver<Job>,
    sink: Arc<Sink>,
    ledger: Arc<Mutex<Ledger>>,
    options: DeliveryOptions,
    clock: RunClock,
    progress: Arc<dyn Progress>,
    mut stop: watch::Receiver<bool>,
) -> Result<Tally, LedgerError> {
    let limiter = Arc::new(RateLimiter::direct(quota(options.rate)));
    let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let job = tokio::select! {
            job = jobs.recv() => job,
            _ = stop.wait_for(|stopped| *stopped) => None,
        };
        let Some(job) = job else { break };
        let permit = slots.clone().acquire_owned().await.expect("semaphore open");
        let (sink, ledger, limiter, tally, options, progress, stop) = (
            sink.clone(),
            ledger.clone(),
            limiter.clone(),
            tally.clone(),
            options.clone(),
            progress.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            let outcome =
                attempt_until_settled(&job, &sink, &ledger, &limiter, &options, clock, stop).await;
            if let Ok(outcome) = &outcome {
                let mut tally = tally.lock().unwrap_or_else(|e| e.into_inner());
                match outcome {
                    SendStatus::Sent => tally.sent += 1,
                    SendStatus::Failed => tally.failed += 1,
                    SendStatus::Expired => tally.expired += 1,
                    _ => tally.retry_later += 1,
                }
            }
            progress.settled();
            drop(permit);
            outcome
        });
        // Keep the set from growing with finished tasks.
        while let Some(done) = tasks.try_join_next() {
            done.expect("delivery task")?;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("delivery task")?;
    }
    let tally = *tally.lock().unwrap_or_else(|e| e.into_inner());
    Ok(tally)
}

/// A quota that never lets more than `rate` requests through in any one-second window while
/// still sustaining ~97% of it: governor refills continuously and allows a burst, so the
/// refill rate plus the burst must stay below the limit.
fn quota(rate: NonZeroU32) -> Quota {
    let limit = rate.get();
    let burst = (limit / 50).max(1);
    let refill = (limit - burst).saturating_mul(97) / 98;
    let refill = NonZeroU32::new(refill.max(1)).expect("non-zero");
    Quota::per_second(refill).allow_burst(NonZeroU32::new(burst).expect("non-zero"))
}

type Limiter = governor::DefaultDirectRateLimiter;

async fn attempt_until_settled(
    job: &Job,
    sink: &Sink,
    ledger: &Mutex<Ledger>,
    limiter: &Limiter,
    options: &DeliveryOptions,
    clock: RunClock,
    stop: watch::Receiver<bool>,
) -> Result<SendStatus, LedgerError> {
    let record = |f: &mut dyn FnMut(&mut Ledger) -> Result<(), LedgerError>| {
        let mut ledger = ledger.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut ledger)
    };
    let mut attempt = 0;
    loop {
        limiter.until_ready().await;
        record(&mut |l| l.attempt(&job.retry_key, clock.now()))?;
        attempt += 1;
        let answer = sink.deliver(job, options.custom_aggregation).await;
        let now = clock.now();
        match answer {
            Answer::Accepted { request_id } | Answer::AlreadyAccepted { request_id, .. } => {
                record(&mut |l| l.mark_sent(&job.retry_key, request_id.as_deref(), now))?;
                return Ok(SendStatus::Sent);
            }
            Answer::Rejected { error } => {
                record(&mut |l| l.mark(&job.retry_key, SendStatus::Failed, &error, now))?;
                return Ok(SendStatus::Failed);
            }
            Answer::Retry { after, error, .. } => {
                let delay =
                    after.unwrap_or_else(|| backoff(options.backoff, attempt, &job.retry_key));
                let next = now + chrono::Duration::from_std(delay).unwrap_or_default();
                if next >= job.expires {
                    record(&mut |l| l.mark(&job.retry_key, SendStatus::Expired, &error, now))?;
                    return Ok(SendStatus::Expired);
                }
                if attempt >= options.max_attempts || *stop.borrow() {
                    record(&mut |l| l.retry_later(&job.retry_key, &error, now))?;
                    return Ok(SendStatus::Pending);
                }
                let mut stop = stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|stopped| *stopped) => {
                        record(&mut |l| l.retry_later(&job.retry_key, &error, now))?;
                        return Ok(SendStatus::Pending);
                    }
                }
            }
        }
    }
}

/// Exponential backoff with a little jitter (from the retry key, so no RNG is needed), capped
/// at a minute.
fn backoff(base: Duration, attempt: u32, key: &str) -> Duration {
    let exponential = base.saturating_mul(1 << attempt.saturating_sub(1).min(8));
    let jitter_ms = key.bytes().fold(attempt, |h, b| {
        h.wrapping_mul(31).wrapping_add(u32::from(b))
    }) % 100;
    (exponential + Duration::from_millis(u64::from(jitter_ms))).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_stays_under_the_limit_in_any_second() {
        for limit in [1, 10, 200, 1000, 2000] {
            let quota = quota(NonZeroU32::new(limit).unwrap());
            let per_second = 1.0 / quota.replenish_interval().as_secs_f64();
            let burst = f64::from(quota.burst_size().get());
            assert!(
                per_second + burst <= f64::from(limit) + 1.0,
                "{limit}: {per_second} + {burst}"
            );
            if limit >= 200 {
                assert!(
                    per_second >= 0.95 * f64::from(limit),
                    "{limit}: {per_second}"
                );
            }
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(250);
        assert!(backoff(base, 1, "k") < backoff(base, 3, "k"));
        assert!(backoff(base, 30, "k") <= Duration::from_secs(60));
    }
}
