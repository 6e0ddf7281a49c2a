//! The cap: at most `count` sends per local day (or week), higher priority first; the rest
//! move to the next period with room or are dropped once expired. On Unix seconds and local
//! days counted from 1970-01-01, like the candidates it sorts.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use super::place::{Candidate, MovedFrom};
use super::{PatientOutcome, Reason, StepNote};
use crate::plan::calendar::leave_quiet_at;
use crate::plan::TimingPlan;
use crate::time::{monday_of, UnixTime, ZoneClock};
use crate::values::{Cap, CapPeriod, Priority};

/// How many times the cap may move sends to a later day (or week) in one evaluation. Rules
/// that pass `check` need a few hundred at most: a send moves only until its `within` ends,
/// and an `every` step's `within` is at most its period. Sends that would need more moves are
/// dropped by the cap, so that nothing can walk the calendar one day at a time for ever.
const MAX_CAP_MOVES: u32 = 100_000;

/// The cap's working space, kept across patients so that capping allocates nothing once warm.
#[derive(Debug, Default)]
pub(super) struct CapScratch {
    /// Sends counted per period, by the period's first day.
    periods: HashMap<i64, u32, BuildHasherDefault<DayHasher>>,
    pending: Vec<Candidate>,
    queue: BinaryHeap<Reverse<CapOrder>>,
}

/// A hasher for calendar days: a day is one small integer, so SipHash's protection against
/// chosen keys buys nothing here and costs a third of a capped evaluation.
#[derive(Debug, Default)]
struct DayHasher(u64);

impl Hasher for DayHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_i64(&mut self, n: i64) {
        // Spread consecutive days over the table's buckets.
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The order the cap hands out its slots in: period by period (the first day of the day or
/// week a send falls in), and within one, higher priority first, then time, file order and
/// occurrence; the last field is the send's index.
type CapOrder = (i64, Reverse<Priority>, UnixTime, usize, UnixTime, usize);

/// Keeps at most `cap.count` sends per local day (or week), higher priority first, then
/// earlier; the rest move to the start of the next period with room (out of quiet hours), or
/// are dropped once expired. `history` is when each send already made went out. The kept
/// sends come back in time order.
pub(super) fn apply_cap(
    sends: &mut Vec<Candidate>,
    cap: Cap,
    plan: &TimingPlan,
    clock: ZoneClock,
    history: &[UnixTime],
    scratch: &mut CapScratch,
    out: &mut PatientOutcome,
) {
    // Fewer sends than the cap allows, counting those already sent: nothing can be held back.
    // The order is the one the queue below would give.
    if sends.len() + history.len() <= cap.count as usize {
        sends.sort_by_key(|send| (send.at, send.step, send.occurrence));
        return;
    }
    let CapScratch {
        periods,
        pending,
        queue,
    } = scratch;
    periods.clear();
    let period = |at: UnixTime| {
        let day = clock.local_day(at);
        match cap.period {
            CapPeriod::Day => day,
            CapPeriod::Week => monday_of(day),
        }
    };
    for &sent_at in history {
        *periods.entry(period(sent_at)).or_default() += 1;
    }
    let next_start = |at: UnixTime| {
        let start = match cap.period {
            CapPeriod::Day => clock.next_day(at),
            CapPeriod::Week => clock.next_week(at),
        };
        start.map(|start| leave_quiet_at(start, plan.quiet, clock))
    };
    let order = |send: &Candidate, index: usize| {
        let priority = plan.steps[send.step].priority;
        Reverse((
            period(send.at),
            Reverse(priority),
            send.at,
            send.step,
            send.occurrence,
            index,
        ))
    };
    // A send of the same step at the same time goes in occurrence order.
    pending.clear();
    pending.append(sends);
    queue.clear();
    queue.extend(
        pending
            .iter()
            .enumerate()
            .map(|(index, send)| order(send, index)),
    );
    let mut moves_left = MAX_CAP_MOVES;
    while let Some(Reverse((.., index))) = queue.pop() {
        let send = &mut pending[index];
        // Never sent, so it takes no slot.
        if send.before_start {
            sends.push(*send);
            continue;
        }
        let used = periods.entry(period(send.at)).or_default();
        if *used < cap.count {
            *used += 1;
            sends.push(*send);
            continue;
        }
        // Straight past the periods that are full already: a send that never expires must
        // not walk the calendar one day at a time.
        let full = |at: UnixTime| {
            periods
                .get(&period(at))
                .is_some_and(|used| *used >= cap.count)
        };
        let mut next = next_start(send.at);
        while let Some(at) = next.filter(|at| *at < send.expires && full(*at)) {
            next = next_start(at).filter(|_| moves_left > 0);
            moves_left = moves_left.saturating_sub(1);
        }
        moves_left = moves_left.saturating_sub(1);
        match next.filter(|next| *next < send.expires && moves_left > 0) {
            Some(next) => {
                if matches!(send.moved, None | Some(MovedFrom::QuietHours(_))) {
                    send.moved = Some(MovedFrom::Cap(send.at));
                }
                send.at = next;
                queue.push(order(send, index));
            }
            None => out.notes.push(StepNote {
                step: send.step,
                reason: Reason::Capped {
                    due: match send.moved {
                        Some(MovedFrom::Cap(from)) => from.utc(),
                        _ => send.at.utc(),
                    },
                },
            }),
        }
    }
    // Handed out by priority within a period; every later stage reads them in time order.
    // Unstable is exact here (no two sends share a step and an occurrence) and allocates
    // nothing.
    sends.sort_unstable_by_key(|send| (send.at, send.step, send.occurrence));
}
