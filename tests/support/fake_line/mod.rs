//! A fake LINE Messaging API push endpoint on 127.0.0.1, for tests and the delivery bench, with
//! the two insight endpoints `steprule insights fetch` reads (`insight`).
//!
//! It behaves like LINE where steprule depends on it: `POST /v2/bot/message/push` checks the
//! bearer token (401), the body's shape (400), and the `X-Line-Retry-Key`: the first accepted
//! request for a key gets 200 and a fresh `x-line-request-id`; a later request with the same
//! key gets 409 with `x-line-accepted-request-id` naming the first, and is not delivered again.
//!
//! Faults are injected on demand. Which fault a request gets is a pure function of the seed, the
//! retry key and how many times that key was seen before, so the same request sequence always
//! meets the same faults, whatever the order in which concurrent requests arrive. "After
//! accepting" faults record the delivery and then answer 500 (or drop the connection): the
//! client cannot tell that the message went out, and its retry must meet the 409. Two quirks
//! of answers that LINE (or a proxy in front of it) may show can be switched on too: a 409
//! without `x-line-accepted-request-id`, and error messages that quote the `Authorization`
//! header.
//!
//! The server runs on its own tokio runtime, so synchronous tests can start it, run the binary
//! against it and read what it saw.
//!
//! The parts:
//! - `faults`: which faults to inject and which one a request meets;
//! - `state`: what the server has seen (requests, deliveries, retry keys), shared with the handler;
//! - `handler`: the push endpoint, deciding each answer and recording it;
//! - `insight`: the statistics endpoints, answering what the test set;
//! - `protocol`: the headers and body LINE would refuse;
//! - `listener`: connections the handler can drop without answering.
//!
//! This module (`FakeLine`) starts the server and answers the tests' questions about what it saw.

#![allow(dead_code)]

mod faults;
mod handler;
mod insight;
mod listener;
mod protocol;
mod state;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

pub use faults::{Fault, Faults};
pub use insight::{InsightAnswer, InsightRequest};
pub use state::{Delivery, Request};

use handler::push;
use listener::{Conn, KillableListener};
use state::{Seen, Shared};

/// The channel access token the fake accepts unless told otherwise.
pub const TOKEN: &str = "fake-line-token-7Qx2";

/// A running fake LINE API. Dropping it stops the server.
pub struct FakeLine {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeLine {
    /// Starts a fake that accepts [`TOKEN`].
    pub fn start(faults: Faults) -> FakeLine {
        FakeLine::start_with_token(TOKEN, faults)
    }

    /// Starts a fake that accepts only `token`.
    pub fn start_with_token(token: &str, faults: Faults) -> FakeLine {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-line")
            .enable_all()
            .build()
            .expect("a tokio runtime for the fake LINE server");
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            faults,
            seen: Mutex::new(Seen::default()),
            insights: Mutex::new(insight::Insights::default()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let app = Router::new()
            .route("/v2/bot/message/push", post(push))
            .route(
                "/v2/bot/insight/message/event/aggregation",
                get(insight::aggregation),
            )
            .route("/v2/bot/insight/followers", get(insight::followers))
            .with_state(Arc::clone(&shared))
            .into_make_service_with_connect_info::<Conn>();
        runtime.spawn(async move {
            axum::serve(KillableListener(listener), app)
                .await
                .expect("the fake LINE server runs");
        });
        FakeLine {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:PORT`, for `--line-api-base`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.shared.seen.lock().expect("fake LINE state")
    }

    /// Every request that reached the handler.
    pub fn requests(&self) -> Vec<Request> {
        self.seen().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.seen().requests.len()
    }

    /// Every message accepted, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.seen().deliveries.clone()
    }

    /// Messages accepted (each retry key counted once).
    pub fn accepted(&self) -> usize {
        self.seen().deliveries.len()
    }

    /// How many messages went to `to` for `unit` (the step, or `step__variant`, with `--custom-aggregation`).
    pub fn deliveries_to(&self, to: &str, unit: &str) -> usize {
        self.seen()
            .deliveries
            .iter()
            .filter(|d| d.to == to && d.unit == unit)
            .count()
    }

    /// (to, unit) → messages accepted.
    pub fn delivery_counts(&self) -> HashMap<(String, String), usize> {
        let mut counts = HashMap::new();
        for d in &self.seen().deliveries {
            *counts.entry((d.to.clone(), d.unit.clone())).or_default() += 1;
        }
        counts
    }

    /// The request id of the delivery accepted for `retry_key`.
    pub fn accepted_request_id(&self, retry_key: &str) -> Option<String> {
        let seen = self.seen();
        let index = *seen.accepted.get(retry_key)?;
        Some(seen.deliveries[index].request_id.clone())
    }

    /// How many requests carried `retry_key`.
    pub fn attempts_for_key(&self, retry_key: &str) -> usize {
        self.seen().attempts.get(retry_key).copied().unwrap_or(0)
    }

    /// How many requests went to `to`, whatever the answer.
    pub fn requests_to(&self, to: &str) -> usize {
        self.seen()
            .requests
            .iter()
            .filter(|r| r.to.as_deref() == Some(to))
            .count()
    }

    /// 409 answers that reached the client.
    pub fn conflicts(&self) -> usize {
        self.seen().conflicts.values().sum()
    }

    /// Retry keys that got at least one 409 that reached the client.
    pub fn keys_answered_conflict(&self) -> usize {
        self.seen().conflicts.len()
    }

    /// How many requests met each fault.
    pub fn faults(&self) -> HashMap<Fault, usize> {
        self.seen().faults.clone()
    }

    pub fn unauthorized(&self) -> usize {
        self.seen().unauthorized
    }

    /// Requests LINE would have refused for their headers or body (not counting 401s and the
    /// recipients in `reject_to`).
    pub fn protocol_errors(&self) -> Vec<String> {
        self.seen().protocol_errors.clone()
    }

    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// The most requests that arrived within any 1 s (a sliding window, not calendar seconds).
    pub fn max_requests_in_any_second(&self) -> usize {
        let mut times: Vec<Instant> = self.seen().requests.iter().map(|r| r.at).collect();
        times.sort();
        let (mut start, mut best) = (0, 0);
        for end in 0..times.len() {
            while times[end].duration_since(times[start]) >= Duration::from_secs(1) {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    /// Requests per whole second since the first request.
    pub fn requests_per_second(&self) -> Vec<usize> {
        let seen = self.seen();
        let Some(first) = seen.requests.iter().map(|r| r.at).min() else {
            return Vec::new();
        };
        let mut counts = Vec::new();
        for r in &seen.requests {
            let second = r.at.duration_since(first).as_secs() as usize;
            if counts.len() <= second {
                counts.resize(second + 1, 0);
            }
            counts[second] += 1;
        }
        counts
    }

    fn insights(&self) -> MutexGuard<'_, insight::Insights> {
        self.shared
            .insights
            .lock()
            .expect("fake LINE insight state")
    }

    /// Answers requests for `unit`'s figures from `from` (`yyyyMMdd`) with `answer`.
    pub fn set_unit_answer(&self, unit: &str, from: &str, answer: InsightAnswer) {
        self.insights()
            .units
            .insert((unit.to_owned(), from.to_owned()), answer);
    }

    /// Answers requests for the friends on `date` (`yyyyMMdd`) with `answer`.
    pub fn set_followers_answer(&self, date: &str, answer: InsightAnswer) {
        self.insights().days.insert(date.to_owned(), answer);
    }

    /// Answers every insight request 403 (a channel without access to statistics).
    pub fn forbid_insights(&self) {
        self.insights().forbidden = true;
    }

    /// Every request to an insight endpoint, in order of arrival.
    pub fn insight_requests(&self) -> Vec<InsightRequest> {
        self.insights().requests.clone()
    }

    /// Insight requests LINE would have refused for their query.
    pub fn insight_protocol_errors(&self) -> Vec<String> {
        self.insights().protocol_errors.clone()
    }

    /// Waits until `accepted()` reaches `n`; false on timeout.
    pub fn wait_for_accepted(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.accepted() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.accepted() >= n
    }
}

impl Drop for FakeLine {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
