//! Faults injected on demand: what fraction of requests meets each, and the deterministic draw
//! that picks the fault for a (seed, retry key, attempt).

use std::collections::HashSet;
use std::time::Duration;

/// What can go wrong at LINE, each as a fraction of requests (0.0 to 1.0; they add up).
#[derive(Debug, Clone)]
pub struct Faults {
    /// Seeds the fault choice.
    pub seed: u64,
    /// Every request waits this long before it is answered.
    pub latency: Duration,
    /// 500 without delivering.
    pub error_before: f64,
    /// Delivered, then 500: the client does not know it went out.
    pub error_after: f64,
    /// 429 with `Retry-After: 1`, without delivering.
    pub too_many_requests: f64,
    /// The connection is closed without a response, without delivering.
    pub drop_before: f64,
    /// Delivered, then the connection is closed without a response.
    pub drop_after: f64,
    /// The first this-many requests for every retry key get 500 without delivering, before
    /// the fractions above are drawn.
    pub error_first_attempts: usize,
    /// The first this-many requests for every retry key are delivered, then answered 500
    /// (after `error_first_attempts`): the retry that follows meets the 409.
    pub error_after_first_attempts: usize,
    /// Recipients LINE refuses for good (400), besides those whose id is not a LINE user id.
    pub reject_to: HashSet<String>,
    /// 409 answers leave out `x-line-accepted-request-id` (as a proxy that drops unknown
    /// headers would).
    pub conflict_without_accepted_id: bool,
    /// Error answers quote the request's `Authorization` header in their message (as a
    /// careless proxy or a debugging endpoint might).
    pub echo_authorization: bool,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            seed: 1,
            latency: Duration::ZERO,
            error_before: 0.0,
            error_after: 0.0,
            too_many_requests: 0.0,
            drop_before: 0.0,
            drop_after: 0.0,
            error_first_attempts: 0,
            error_after_first_attempts: 0,
            reject_to: HashSet::new(),
            conflict_without_accepted_id: false,
            echo_authorization: false,
        }
    }
}

impl Faults {
    /// No faults, no latency.
    pub fn none() -> Faults {
        Faults::default()
    }

    pub fn with_latency(latency: Duration) -> Faults {
        Faults {
            latency,
            ..Faults::default()
        }
    }
}

/// The fault a request meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    ErrorBefore,
    ErrorAfter,
    TooManyRequests,
    DropBefore,
    DropAfter,
}

/// FNV-1a then a splitmix64 finish: the fault for (seed, key, attempt) as a number in [0, 1).
fn draw(seed: u64, key: &str, attempt: usize) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for byte in key.bytes().chain((attempt as u64).to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// The fault the `attempt`th request (from 0) with `key` meets, if any.
pub(super) fn choose_fault(faults: &Faults, key: &str, attempt: usize) -> Option<Fault> {
    if attempt < faults.error_first_attempts {
        return Some(Fault::ErrorBefore);
    }
    if attempt < faults.error_first_attempts + faults.error_after_first_attempts {
        return Some(Fault::ErrorAfter);
    }
    let mut x = draw(faults.seed, key, attempt);
    for (fraction, fault) in [
        (faults.error_before, Fault::ErrorBefore),
        (faults.error_after, Fault::ErrorAfter),
        (faults.too_many_requests, Fault::TooManyRequests),
        (faults.drop_before, Fault::DropBefore),
        (faults.drop_after, Fault::DropAfter),
    ] {
        if x < fraction {
            return Some(fault);
        }
        x -= fraction;
    }
    None
}
