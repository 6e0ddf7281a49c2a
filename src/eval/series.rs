//! The occurrences of a repeating step (`every`) that can matter for a window: the bounds
//! they must fall in, and the jump from the anchor to the first of them, however old the
//! anchor.

use super::schedule::{Occurrences, SLACK_DAYS};
use super::{Window, MAX_OCCURRENCES};
use crate::plan::{Offset, PlannedStep};
use crate::time::{calendar_end, calendar_start, UnixTime, ZoneClock};

/// The first and last nominal instants of a repeating step that can matter for a window.
pub(super) type Bounds = (UnixTime, UnixTime);

/// The first and last nominal instants of `step` that can matter for `window`: from those that
/// could still be sendable at `now` (or at the window's start) to those that could land before
/// its end. `at` and quiet hours move a send by less than [`SLACK_DAYS`] either way. Shared by
/// every kind of repeating timing (`every`, `every year on`).
pub(super) fn occurrence_bounds(step: &PlannedStep, window: Window) -> Bounds {
    let slack = chrono::Duration::days(SLACK_DAYS);
    let earliest = step
        .sendable_for
        .max_delta()
        .and_then(|sendable| sendable.checked_add(&slack))
        .and_then(|back| window.now.min(window.from).checked_sub_signed(back))
        .unwrap_or_else(calendar_start);
    let latest = window
        .to
        .checked_add_signed(slack)
        .unwrap_or_else(calendar_end);
    (UnixTime::from(earliest), UnixTime::from(latest))
}

/// The occurrences anchor + k·period within `bounds` (see [`occurrence_bounds`]).
pub(super) fn every_occurrence(
    step: &PlannedStep,
    anchor: UnixTime,
    (earliest, latest): Bounds,
    clock: ZoneClock,
    mut each: impl FnMut(UnixTime),
) -> Occurrences {
    let series = clock.series(anchor, step.offset);
    let nth = |k: u32| series.nth(k);
    let Some(mut k) = first_at_or_after(step.offset, earliest, &nth) else {
        return Occurrences::BeyondCalendar;
    };
    let mut last = None;
    for _ in 0..MAX_OCCURRENCES {
        // Past the calendar's end there are no more occurrences; none that matter are lost.
        let Some(nominal) = nth(k).filter(|nominal| *nominal <= latest) else {
            return Occurrences::Complete;
        };
        each(nominal);
        last = Some(nominal);
        let Some(next) = k.checked_add(1) else {
            return Occurrences::Complete;
        };
        k = next;
    }
    match (nth(k).filter(|nominal| *nominal <= latest), last) {
        (Some(_), Some(last)) => Occurrences::Cut { last: last.utc() },
        _ => Occurrences::Complete,
    }
}

/// The smallest k ≥ 1 whose occurrence is at or after `earliest`, without walking through
/// the occurrences before it: each jump is the gap less what a change of offset can add,
/// divided by the longest a period can be, so it never passes the one sought, and it closes
/// most of the gap (a jump or two, however old the anchor). `None` when the occurrences end
/// before `earliest` (beyond the calendar).
pub(super) fn first_at_or_after(
    offset: crate::plan::Offset,
    earliest: UnixTime,
    nth: &dyn Fn(u32) -> Option<UnixTime>,
) -> Option<u32> {
    let (longest, slack) = jump_measures(offset);
    let mut k: u32 = 1;
    loop {
        let nominal = nth(k)?;
        if nominal >= earliest {
            return Some(k);
        }
        let gap = earliest.minutes_since(nominal);
        let jump = u32::try_from(((gap - slack) / longest).max(1)).unwrap_or(u32::MAX);
        k = k.checked_add(jump)?;
    }
}

/// Offsets are under 24 hours either way, so two instants' offsets differ by less than this.
const OFFSETS_DIFFER_BY_LESS_THAN_MINUTES: i64 = 48 * 60;

/// For [`first_at_or_after`], in minutes: the longest one period can be, and what `j` periods
/// can last beyond `j` times that. Days: `j·d` wall-clock days are `j·d·24` hours between two
/// instants' offsets, so 24 hours a day and one difference of offsets (however many changes
/// lie between; an hour a day, the bound before, fell short of the gap by 4% a period).
/// Minutes are exact; months keep the bound of [`Offset::max_minutes`].
fn jump_measures(offset: Offset) -> (i64, i64) {
    match offset {
        Offset::Days(days) => (
            i64::try_from(days)
                .unwrap_or(i64::MAX)
                .saturating_mul(24 * 60)
                .max(1),
            OFFSETS_DIFFER_BY_LESS_THAN_MINUTES,
        ),
        other => (other.max_minutes().max(1), 0),
    }
}
