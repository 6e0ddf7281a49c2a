//! What the fake has seen: every request, every delivery and the retry keys it accepted, shared
//! between the handler and the test's `FakeLine`, plus the count of requests in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

use super::faults::{Fault, Faults};
use super::insight::Insights;

/// One message LINE accepted.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub to: String,
    pub retry_key: Option<String>,
    /// The first `customAggregationUnits` entry (steprule puts the step, or `step__variant`, there), or "".
    pub unit: String,
    pub request_id: String,
    pub messages: Value,
    pub at: Instant,
}

/// One request as it arrived, whatever was answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub to: Option<String>,
    pub retry_key: Option<String>,
    pub status: u16,
    pub fault: Option<Fault>,
}

/// Everything the server has recorded, behind `Shared::seen`.
#[derive(Default)]
pub(super) struct Seen {
    pub(super) requests: Vec<Request>,
    pub(super) deliveries: Vec<Delivery>,
    /// retry key → index into `deliveries`.
    pub(super) accepted: HashMap<String, usize>,
    /// retry key → how many requests carried it.
    pub(super) attempts: HashMap<String, usize>,
    /// retry keys that were answered 409 (and the answer reached the client).
    pub(super) conflicts: HashMap<String, usize>,
    pub(super) faults: HashMap<Fault, usize>,
    /// Header or body problems that LINE would refuse, as text: the tests expect none.
    pub(super) protocol_errors: Vec<String>,
    pub(super) unauthorized: usize,
    pub(super) next_request_id: u64,
}

/// The server's state, shared by every request and the test's `FakeLine`.
pub(super) struct Shared {
    pub(super) token: String,
    pub(super) faults: Faults,
    pub(super) seen: Mutex<Seen>,
    pub(super) insights: Mutex<Insights>,
    pub(super) in_flight: AtomicUsize,
    pub(super) max_in_flight: AtomicUsize,
}

/// Counts requests in flight while it lives.
pub(super) struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    pub(super) fn enter(shared: &'a Shared) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
