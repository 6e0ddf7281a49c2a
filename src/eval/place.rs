//! Where one occurrence of a step lands (`at` time, the next day for an `after` send put
//! before its anchor, quiet hours, expiry, catching up), on Unix seconds with the zone's table
//! taken once ([`ZoneClock`]): a candidate send is plain integers until it is kept, and only
//! then becomes a [`DueSend`] of chrono's instants.

use super::{DueSeconds, DueSend, Moved, Reason};
use crate::plan::calendar::leave_quiet_on_wall;
use crate::plan::{Direction, Offset, PlannedStep};
use crate::time::{calendar_end, UnixTime, ZoneClock};
use crate::values::QuietHours;

/// What placing needs besides the step: the zone, quiet hours, the plan's `start`, and `now`
/// with the first instant from it outside quiet hours.
#[derive(Debug, Clone, Copy)]
pub(super) struct Frame {
    pub clock: ZoneClock,
    pub quiet: Option<QuietHours>,
    pub start: Option<UnixTime>,
    pub now: UnixTime,
    /// When an overdue send goes out.
    pub sendable: UnixTime,
}

/// A send before the history, `unless`, the cap and the window have had their say: a
/// [`DueSend`] on Unix seconds (see there for the fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Candidate {
    pub step: usize,
    pub occurrence: UnixTime,
    pub at: UnixTime,
    pub expires: UnixTime,
    pub moved: Option<MovedFrom>,
    pub before_start: bool,
}

/// [`Moved`] on Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MovedFrom {
    QuietHours(UnixTime),
    Overdue(UnixTime),
    Cap(UnixTime),
    NextDay { from: UnixTime, anchor: UnixTime },
}

impl Candidate {
    /// The send as the evaluator hands it out, with its variant.
    pub fn due_send(self, variant: usize) -> DueSend {
        DueSend {
            step: self.step,
            occurrence: self.occurrence.utc(),
            at: self.at.utc(),
            expires: self.expires.utc(),
            variant,
            moved: self.moved.map(MovedFrom::moved),
            before_start: self.before_start,
        }
    }

    /// The send as an evaluator made [`super::Evaluator::in_seconds`] hands it out.
    pub fn in_seconds(self, variant: usize) -> DueSeconds {
        DueSeconds {
            step: self.step,
            variant,
            occurrence: self.occurrence.seconds,
            at: self.at.seconds,
            expires: self.expires.seconds,
            before_start: self.before_start,
        }
    }
}

impl MovedFrom {
    fn moved(self) -> Moved {
        match self {
            MovedFrom::QuietHours(from) => Moved::QuietHours { from: from.utc() },
            MovedFrom::Overdue(due) => Moved::Overdue { due: due.utc() },
            MovedFrom::Cap(from) => Moved::Cap { from: from.utc() },
            MovedFrom::NextDay { from, anchor } => Moved::NextDay {
                from: from.utc(),
                anchor: anchor.utc(),
            },
        }
    }
}

/// Why an occurrence sends nothing: the [`Reason`]s [`place`] can give, on Unix seconds, so
/// that only `explain` builds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    NotBeforeAnchor { due: UnixTime, anchor: UnixTime },
    OnAnchorDay { at: UnixTime, anchor: UnixTime },
    Expired { due: UnixTime, expired: UnixTime },
}

impl Refused {
    pub fn reason(self) -> Reason {
        let utc = UnixTime::utc;
        match self {
            Refused::NotBeforeAnchor { due, anchor } => Reason::NotBeforeAnchor {
                due: utc(due),
                anchor: utc(anchor),
            },
            Refused::OnAnchorDay { at, anchor } => Reason::OnAnchorDay {
                at: utc(at),
                anchor: utc(anchor),
            },
            Refused::Expired { due, expired } => Reason::Expired {
                due: utc(due),
                expired: utc(expired),
            },
        }
    }
}

/// The calendar's end as seconds: a send window that would end beyond it ends there, which is
/// never.
fn never() -> UnixTime {
    UnixTime::from(calendar_end())
}

/// Where one occurrence lands: `at` time, quiet hours, expiry, catching up.
pub(super) fn place(
    step: &PlannedStep,
    nominal: UnixTime,
    anchor: UnixTime,
    frame: &Frame,
) -> Result<Candidate, Refused> {
    let clock = frame.clock;
    // The wall clock `at` put the send on, so that quiet hours need not read it again.
    let (mut timed, mut wall) = match step.at {
        Some(at) => clock.at_time_on_wall(nominal, at),
        None => (nominal, None),
    };
    let mut next_day = None;
    // `after 0m at 19:00` for a 19:30 visit: 19:00 that day is before the visit, so the send
    // goes out at 19:00 the next day. Only `at` can put an `after` send before its anchor.
    if step.direction == Direction::After && timed < anchor {
        if let Some(later) = clock.shift(timed, Offset::Days(1), false) {
            next_day = Some(MovedFrom::NextDay {
                from: timed,
                anchor,
            });
            timed = later;
            wall = None;
        }
    }
    let due = leave_quiet_on_wall(timed, wall, frame.quiet, clock);
    let mut moved = match due != timed {
        true => Some(MovedFrom::QuietHours(timed)),
        false => next_day,
    };
    let mut expires = clock
        .shift(due, step.sendable_for, false)
        .unwrap_or_else(never);
    // A reminder timed on a day before its anchor's day is never sent on that day or later:
    // "see you tomorrow" must not arrive on the day.
    let mut day_bound = None;
    if step.direction == Direction::Before {
        if due >= anchor {
            return Err(Refused::NotBeforeAnchor { due, anchor });
        }
        // The anchor's day starts less than two days before the anchor in every zone: a send
        // whose window closes earlier than that cannot reach the anchor's day, and most
        // reminders (`3d before … at 12:00`) skip the two calendar look-ups.
        let clear_of_the_day = expires
            .plus_seconds(48 * 3600)
            .is_some_and(|late| late <= anchor);
        let bound = match step.on_the_day || clear_of_the_day {
            true => anchor,
            false => start_of_earlier_day(timed, anchor, clock).unwrap_or(anchor),
        };
        if bound < anchor {
            day_bound = Some(bound);
        }
        if due >= bound {
            return Err(Refused::OnAnchorDay { at: due, anchor });
        }
        expires = expires.min(bound);
    }
    let mut at = due;
    if at < frame.now {
        at = frame.sendable;
        moved = Some(MovedFrom::Overdue(due));
    }
    if at >= expires {
        return Err(match day_bound {
            Some(bound) if at >= bound => Refused::OnAnchorDay { at, anchor },
            _ => Refused::Expired {
                due,
                expired: expires,
            },
        });
    }
    Ok(Candidate {
        step: step.index,
        occurrence: nominal,
        at,
        expires,
        moved,
        before_start: frame.start.is_some_and(|start| timed < start),
    })
}

/// The start of the anchor's local day, when `timed` falls on an earlier day; `None` when it
/// is on the anchor's day already (`2h before appointment_at`).
fn start_of_earlier_day(timed: UnixTime, anchor: UnixTime, clock: ZoneClock) -> Option<UnixTime> {
    let day = clock.local_day(anchor);
    match clock.local_day(timed) < day {
        true => clock.day_start(day),
        false => None,
    }
}

#[cfg(test)]
#[path = "place_tests.rs"]
mod tests;
