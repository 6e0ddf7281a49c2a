//! A period's figures per step and arm, read from the ledger: what was delivered, and the
//! clicks, blocks, bookings and visits put down to those deliveries. Sends are counted in the
//! period they were delivered in; what patients did afterwards is credited back to them.

use std::collections::BTreeMap;

use chrono::Duration;

use super::period::Period;
use crate::ledger::{ArmKey, EventKind, LedgerError, ReadLedger};

/// How long after a send a tapped link counts as its click.
pub const CLICK_WINDOW_DAYS: i64 = 14;
/// How long after a send a booking is credited to it, unless the rules say (`attribution`).
pub const DEFAULT_ATTRIBUTION_DAYS: i64 = 14;
/// How long after a send a visit is credited to it, unless the rules say (`revisit`).
pub const DEFAULT_REVISIT_DAYS: i64 = 90;

/// How far after a send each kind of response is credited to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub click: Duration,
    pub attribution: Duration,
    pub revisit: Duration,
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            click: Duration::days(CLICK_WINDOW_DAYS),
            attribution: Duration::days(DEFAULT_ATTRIBUTION_DAYS),
            revisit: Duration::days(DEFAULT_REVISIT_DAYS),
        }
    }
}

/// The counted figures of one arm in one period. Each response is counted at most once per
/// send, so none exceeds `sent`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub clicked: u64,
    pub booked: u64,
    pub revisited: u64,
    pub blocked: u64,
}

impl Counts {
    /// `count` over `sent`, or `None` when nothing was sent (no rate, rather than NaN).
    pub fn rate(&self, count: u64) -> Option<f64> {
        // Counts stay far below 2^53, so the conversion is exact.
        (self.sent > 0).then(|| count as f64 / self.sent as f64)
    }
}

/// Every arm with a figure in `period`, in key order.
pub fn tally(
    ledger: &dyn ReadLedger,
    period: &Period,
    windows: &Windows,
) -> Result<BTreeMap<ArmKey, Counts>, LedgerError> {
    let mut arms: BTreeMap<ArmKey, Counts> = BTreeMap::new();
    let (from, to) = (period.from, period.to);
    ledger.delivered_per_arm(from, to, &mut |key, sent| {
        arms.entry(key).or_default().sent += sent;
    })?;
    ledger.clicked_per_arm(from, to, windows.click, &mut |key, n| {
        arms.entry(key).or_default().clicked += n;
    })?;
    ledger.blocked_per_arm(from, to, &mut |key, n| {
        arms.entry(key).or_default().blocked += n;
    })?;
    let attribution = windows.attribution;
    ledger.credited_per_arm(EventKind::Booked, from, to, attribution, &mut |key, n| {
        arms.entry(key).or_default().booked += n;
    })?;
    ledger.credited_per_arm(
        EventKind::Revisited,
        from,
        to,
        windows.revisit,
        &mut |key, n| {
            arms.entry(key).or_default().revisited += n;
        },
    )?;
    Ok(arms)
}

#[cfg(test)]
mod tests;
