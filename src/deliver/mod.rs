//! Delivery: rendered sends go to LINE (or to the outbox), at a bounded rate and concurrency,
//! retried with backoff, every outcome written to the ledger as it happens.

pub mod line;
pub mod outbox;

pub use line::{ChannelToken, InsightError, LineClient, LineClientError, DEFAULT_API_BASE};
pub use outbox::{Outbox, OutboxError};

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::{Quota, RateLimiter};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::ledger::Settlement;
use crate::line::Message;

/// One message ready to go out.
#[derive(Debug, Clone)]
pub struct Job {
    pub retry_key: String,
    pub patient: String,
    /// The instant that, with the patient and step, identifies the send in the ledger.
    pub occurrence: DateTime<Utc>,
    /// The patient's LINE user id.
    pub to: String,
    pub step: String,
    pub variant: Option<String>,
    pub messages: Vec<Message>,
    /// `messages` already serialized as the outbox writes them (a JSON array), when they were
    /// rendered beside the evaluation for the outbox: `messages` is then empty, and the pass's
    /// thread only copies these bytes into the line. LINE's jobs never have it.
    pub messages_json: Option<String>,
    pub expires: DateTime<Utc>,
}

/// What the other side said to one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accepted {
        request_id: Option<String>,
    },
    /// The retry key was accepted before (LINE's 409): delivered once, by an earlier attempt.
    /// `note` says what was unusual about the answer, if anything.
    AlreadyAccepted {
        /// The delivering request (LINE's `x-line-accepted-request-id`).
        request_id: Option<String>,
        note: Option<String>,
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
    /// The sink cannot take anything more in this run (the outbox's disk is full, LINE refused
    /// the channel token): the send stays pending, and no more requests are made.
    Unavailable {
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
    /// Name each push in LINE's `customAggregationUnits` (`line::unit::unit_name`: the step, or
    /// `step__variant` for an A/B arm; accounts that applied only).
    pub custom_aggregation: bool,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            rate: NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN),
            concurrency: 32,
            max_attempts: 5,
            backoff: Duration::from_millis(250),
            custom_aggregation: false,
        }
    }
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

/// How one job ended, for the ledger's owner to record.
#[derive(Debug, Clone)]
pub struct Settled {
    pub retry_key: String,
    pub patient: String,
    pub occurrence: DateTime<Utc>,
    pub step: String,
    /// The arm, for the aggregation unit the push carried.
    pub variant: Option<String>,
    /// Requests made in this run.
    pub attempts: u32,
    pub settlement: Settlement,
    pub at: DateTime<Utc>,
}

/// Delivers every job from `jobs` until the channel closes or `stop` turns true, reporting each
/// settled job on `settled`; in-flight requests always finish and are reported. Jobs still
/// queued when `stop` turns true are left alone: their rows stay pending for the next run.
/// Returns why the sink stopped taking sends (a refused token, a full disk), if it did: every
/// job after that is reported pending without a request.
pub async fn deliver(
    mut jobs: mpsc::Receiver<Job>,
    settled: mpsc::UnboundedSender<Settled>,
    sink: Arc<Sink>,
    options: DeliveryOptions,
    clock: RunClock,
    progress: Arc<dyn Progress>,
    mut stop: watch::Receiver<bool>,
) -> Option<String> {
    let down = Arc::new(std::sync::OnceLock::<String>::new());
    // The rate protects LINE; the outbox is a local file and takes what comes.
    let limiter = Arc::new(match sink.as_ref() {
        Sink::Line(_) => Some(RateLimiter::direct(quota(options.rate))),
        Sink::Outbox(_) => None,
    });
    let slots = Arc::new(Semaphore::new(
        options.concurrency.clamp(1, MAX_CONCURRENCY),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let job = tokio::select! {
            job = jobs.recv() => job,
            _ = stop.wait_for(|stopped| *stopped) => None,
        };
        let Some(job) = job else { break };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let (sink, limiter, options, progress, stop, settled, down) = (
            sink.clone(),
            limiter.clone(),
            options.clone(),
            progress.clone(),
            stop.clone(),
            settled.clone(),
            down.clone(),
        );
        tasks.spawn(async move {
            let (attempts, settlement) = match down.get() {
                // The sink said it takes nothing more in this run: no request, still pending.
                Some(error) => (0, Settlement::RetryLater(error.clone())),
                None => match attempt_until_settled(&job, &sink, &limiter, &options, clock, stop)
                    .await
                {
                    (attempts, Ok(settlement)) => (attempts, settlement),
                    (attempts, Err(error)) => {
                        let _ = down.set(error.clone());
                        (attempts, Settlement::RetryLater(error))
                    }
                },
            };
            // The receiver only goes away when the run is ending on an error; the row then
            // stays pending, which the next run resolves.
            let _ = settled.send(Settled {
                retry_key: job.retry_key,
                patient: job.patient,
                occurrence: job.occurrence,
                step: job.step,
                variant: job.variant,
                attempts,
                settlement,
                at: clock.now(),
            });
            progress.settled();
            drop(permit);
        });
        // Keep the set from growing with finished tasks.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    down.get().cloned()
}

/// The most requests in flight a run allows (`--concurrency` is checked against it too).
pub const MAX_CONCURRENCY: usize = 1024;

/// A quota that never lets more than `rate` requests through in any one-second window while
/// still sustaining ~97% of it: governor refills continuously and allows a burst, so the
/// refill rate plus the burst must stay below the limit.
fn quota(rate: NonZeroU32) -> Quota {
    let limit = rate.get();
    let burst = (limit / 50).max(1);
    let refill = (limit - burst).saturating_mul(97) / 98;
    let refill = NonZeroU32::new(refill).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(refill).allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

type Limiter = governor::DefaultDirectRateLimiter;

async fn attempt_until_settled(
    job: &Job,
    sink: &Sink,
    limiter: &Option<Limiter>,
    options: &DeliveryOptions,
    clock: RunClock,
    stop: watch::Receiver<bool>,
) -> (u32, Result<Settlement, String>) {
    let mut attempt = 0;
    loop {
        if let Some(limiter) = limiter {
            limiter.until_ready().await;
        }
        attempt += 1;
        let answer = sink.deliver(job, options.custom_aggregation).await;
        let now = clock.now();
        let settlement = match answer {
            Answer::Accepted { request_id } => Settlement::Sent {
                request_id,
                note: None,
            },
            Answer::AlreadyAccepted { request_id, note } => Settlement::Sent { request_id, note },
            Answer::Rejected { error } => Settlement::Failed(error),
            Answer::Unavailable { error } => return (attempt, Err(error)),
            Answer::Retry {
                after,
                asked,
                error,
            } => {
                let delay = after
                    .unwrap_or_else(|| backoff(options.backoff, attempt, &job.retry_key))
                    .min(MAX_RETRY_WAIT);
                // LINE's own wish (`Retry-After`) counts in full for the expiry, though a run
                // waits at most a minute.
                let wanted = asked.unwrap_or(delay).max(delay);
                let next = chrono::Duration::from_std(wanted)
                    .ok()
                    .and_then(|wait| now.checked_add_signed(wait))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                if now >= job.expires {
                    return (attempt, Ok(Settlement::Expired(error)));
                }
                // Waiting past the send's expiry, past this run's attempts, or through a stop
                // would only hold the run: the row stays pending, and a later run retries it
                // with the same key (or expires it when its time has passed).
                if next >= job.expires || attempt >= options.max_attempts || *stop.borrow() {
                    return (attempt, Ok(Settlement::RetryLater(error)));
                }
                let mut stop = stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => continue,
                    _ = stop.wait_for(|stopped| *stopped) => {
                        return (attempt, Ok(Settlement::RetryLater(error)));
                    }
                }
            }
        };
        return (attempt, Ok(settlement));
    }
}

/// The longest a run waits before retrying one send, whatever `Retry-After` asks.
pub const MAX_RETRY_WAIT: Duration = line::RETRY_AFTER_CAP;

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
