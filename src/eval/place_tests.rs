//! [`place`] on seconds held to the way it was placed on chrono's instants before (kept here
//! as the reference, word for word but for its inputs), on random steps, anchors and `now`s
//! in zones with daylight saving time, across month ends and leap days, with quiet hours that
//! cross midnight and that fall in the hours daylight saving skips or repeats.

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::{America, Asia, Australia, Europe, Tz};
use proptest::prelude::*;

use super::*;
use crate::eval::{DueSend, Moved, Reason};
use crate::plan::calendar::leave_quiet;
use crate::plan::TimingPlan;
use crate::time::{at_time, calendar_end, local_date, local_to_utc, shift, ClockTime};

/// The chrono reference: `place` as it was before instants were carried as seconds.
fn place_by_chrono(
    step: &PlannedStep,
    nominal: DateTime<Utc>,
    anchor: DateTime<Utc>,
    now: DateTime<Utc>,
    plan: &TimingPlan,
) -> Result<DueSend, Reason> {
    let tz = plan.timezone;
    let sendable = leave_quiet(now, plan.quiet, tz);
    let mut timed = step.at.map_or(nominal, |at| at_time(nominal, at, tz));
    let mut next_day = None;
    if step.direction == Direction::After && timed < anchor {
        if let Some(later) = shift(timed, Offset::Days(1), false, tz) {
            next_day = Some(Moved::NextDay {
                from: timed,
                anchor,
            });
            timed = later;
        }
    }
    let due = leave_quiet(timed, plan.quiet, tz);
    let mut moved = match due != timed {
        true => Some(Moved::QuietHours { from: timed }),
        false => next_day,
    };
    let mut expires = shift(due, step.sendable_for, false, tz).unwrap_or_else(calendar_end);
    let mut day_bound = None;
    if step.direction == Direction::Before {
        if due >= anchor {
            return Err(Reason::NotBeforeAnchor { due, anchor });
        }
        let clear_of_the_day = expires
            .checked_add_signed(chrono::Duration::hours(48))
            .is_some_and(|late| late <= anchor);
        let bound = match step.on_the_day || clear_of_the_day {
            true => anchor,
            false => {
                let day = local_date(anchor, tz);
                if local_date(timed, tz) < day {
                    local_to_utc(day.and_time(chrono::NaiveTime::MIN), tz)
                } else {
                    anchor
                }
            }
        };
        if bound < anchor {
            day_bound = Some(bound);
        }
        if due >= bound {
            return Err(Reason::OnAnchorDay { at: due, anchor });
        }
        expires = expires.min(bound);
    }
    let mut at = due;
    if at < now {
        at = sendable;
        moved = Some(Moved::Overdue { due });
    }
    if at >= expires {
        return Err(match day_bound {
            Some(bound) if at >= bound => Reason::OnAnchorDay { at, anchor },
            _ => Reason::Expired {
                due,
                expired: expires,
            },
        });
    }
    Ok(DueSend {
        step: step.index,
        occurrence: nominal,
        at,
        expires,
        variant: 0,
        moved,
        before_start: plan.start.is_some_and(|start| timed < start),
    })
}

const ZONES: [Tz; 5] = [
    America::New_York,
    Europe::London,
    Australia::Lord_Howe,
    America::Sao_Paulo,
    Asia::Tokyo,
];

const OFFSETS: [Offset; 8] = [
    Offset::Minutes(0),
    Offset::Minutes(180),
    Offset::Days(1),
    Offset::Days(3),
    Offset::Days(14),
    Offset::Months(1),
    Offset::Months(3),
    Offset::Months(12),
];

/// Quiet hours: none, crossing midnight, inside one day, and over New York's and London's
/// skipped and repeated hours.
/// From and to, as hour and minute.
type QuietWindow = ((u32, u32), (u32, u32));

const QUIET: [Option<QuietWindow>; 5] = [
    None,
    Some(((21, 0), (9, 0))),
    Some(((12, 0), (13, 0))),
    Some(((1, 0), (3, 0))),
    Some(((0, 30), (2, 30))),
];

fn clock((hour, minute): (u32, u32)) -> ClockTime {
    ClockTime { hour, minute }
}

/// Both ways for one step and one occurrence; `nanos` on the anchor and `now` (a leap
/// second's included) take the paths that keep them.
fn agrees(
    plan: &TimingPlan,
    step: &PlannedStep,
    nominal: DateTime<Utc>,
    anchor: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    let tz = plan.timezone;
    let frame = Frame {
        clock: ZoneClock::new(tz),
        quiet: plan.quiet,
        start: plan.start.map(UnixTime::from),
        now: UnixTime::from(now),
        sendable: UnixTime::from(leave_quiet(now, plan.quiet, tz)),
    };
    let ours = place(step, nominal.into(), anchor.into(), &frame)
        .map(|candidate| candidate.due_send(0))
        .map_err(Refused::reason);
    assert_eq!(
        ours,
        place_by_chrono(step, nominal, anchor, now, plan),
        "{tz} {:?} {:?} at {:?} within {:?} quiet {:?} anchor {anchor} nominal {nominal} now {now}",
        step.direction,
        step.offset,
        step.at,
        step.sendable_for,
        plan.quiet,
    );
}

fn base() -> TimingPlan {
    crate::eval::tests::plan("step s: when stage=booked 1d before appointment_at send a\n")
}

/// A drawn step's shape: `before`, `on the day`, offset and window (indexes into [`OFFSETS`]),
/// and `at`.
type Shape = (bool, bool, usize, usize, Option<(u32, u32)>);

/// [`base`]'s plan in `ZONES[zone]` with `QUIET[quiet]` and `start`, and its step shaped as
/// drawn: what both placing proptests start from.
fn shaped(
    zone: usize,
    quiet: usize,
    start: Option<DateTime<Utc>>,
    (before, on_the_day, offset, within, at): Shape,
) -> (TimingPlan, PlannedStep) {
    let mut plan = base();
    plan.timezone = ZONES[zone];
    plan.quiet = QUIET[quiet].map(|(from, to)| QuietHours {
        from: clock(from),
        to: clock(to),
    });
    plan.start = start;
    let mut step = plan.steps[0].clone();
    step.direction = if before {
        Direction::Before
    } else {
        Direction::After
    };
    step.on_the_day = on_the_day;
    step.offset = OFFSETS[offset];
    step.sendable_for = OFFSETS[within];
    step.at = at.map(clock);
    (plan, step)
}

/// Every [`Shape`]: both directions, on the day or not, any offset and window, `at` on the
/// hour, the half hour or any minute, or none.
fn shapes() -> impl Strategy<Value = Shape> {
    (
        any::<bool>(),
        any::<bool>(),
        0..OFFSETS.len(),
        0..OFFSETS.len(),
        prop::option::of((0u32..24, prop_oneof![Just(0u32), Just(30), 0u32..60])),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]
    #[test]
    fn placing_on_seconds_is_placing_on_chronos_instants(
        zone in 0..ZONES.len(),
        quiet in 0..QUIET.len(),
        shape in shapes(),
        // 2019 to 2031, on the minute or anywhere.
        anchor in 1_546_300_800i64..1_924_992_000,
        anchor_on_the_minute in any::<bool>(),
        now_after_anchor_minutes in -200_000i64..200_000,
        nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000],
        with_start in any::<bool>(),
    ) {
        let anchor = match anchor_on_the_minute {
            true => anchor - anchor.rem_euclid(60),
            false => anchor,
        };
        let anchor = DateTime::from_timestamp(anchor, 0).unwrap();
        let now = anchor + TimeDelta::minutes(now_after_anchor_minutes)
            + TimeDelta::nanoseconds(i64::from(nanos));
        let start = with_start.then(|| now - TimeDelta::days(3));
        let (plan, step) = shaped(zone, quiet, start, shape);
        let tz = plan.timezone;
        let (before, ..) = shape;
        let Some(nominal) = shift(anchor, step.offset, before, tz) else {
            return Ok(());
        };
        agrees(&plan, &step, nominal, anchor, now);
    }
}

#[test]
fn month_ends_leap_days_and_a_leap_second_place_as_before() {
    let mut plan = base();
    for tz in ZONES {
        plan.timezone = tz;
        for quiet in QUIET {
            plan.quiet = quiet.map(|(from, to)| QuietHours {
                from: clock(from),
                to: clock(to),
            });
            for anchor in [
                "2024-02-29T14:00:00Z",
                "2027-01-31T02:30:00Z",
                "2026-03-08T07:00:00Z",
                "2026-11-01T05:30:00Z",
                "2026-03-29T01:00:00Z",
                "2026-10-25T00:30:00Z",
            ] {
                let anchor = DateTime::parse_from_rfc3339(anchor).unwrap().to_utc();
                let leap = DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap();
                for now in [anchor - TimeDelta::days(20), anchor, leap] {
                    for (offset, before) in OFFSETS.iter().flat_map(|o| [(*o, false), (*o, true)]) {
                        let mut step = plan.steps[0].clone();
                        step.direction = if before {
                            Direction::Before
                        } else {
                            Direction::After
                        };
                        step.offset = offset;
                        step.at = Some(clock((18, 0)));
                        if let Some(nominal) = shift(anchor, offset, before, tz) {
                            agrees(&plan, &step, nominal, anchor, now);
                        }
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]
    /// What `schedule` relies on to skip an occurrence `EXPIRED_MARGIN` before the first that
    /// can matter for the window (`occurrence_bounds`) without placing it: wherever `at`, the
    /// next day and quiet hours put it, it has expired by `now`, so `place` refuses it, with
    /// the anchor anywhere around it. (The margin was first left out: an `after` send moved
    /// to `at` 21:00, then to the next day, then out of quiet hours went 56 hours.)
    #[test]
    fn occurrences_before_the_bounds_are_refused(
        zone in 0..ZONES.len(),
        quiet in 0..QUIET.len(),
        shape in shapes(),
        // 2019 to 2031.
        now in 1_546_300_800i64..1_924_992_000,
        nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000],
        from_after_now_minutes in -20_000i64..20_000,
        // How far before the bound the occurrence is, and its anchor from it.
        early_seconds in prop_oneof![1i64..7_200, 1i64..40_000_000],
        anchor_minutes in -600_000i64..600_000,
        with_start in any::<bool>(),
    ) {
        let now = DateTime::from_timestamp(now, nanos).unwrap();
        let from = now + TimeDelta::minutes(from_after_now_minutes);
        let window = crate::eval::Window { now, from, to: from + TimeDelta::days(7) };
        let start = with_start.then(|| now - TimeDelta::days(3));
        let (plan, step) = shaped(zone, quiet, start, shape);
        let (earliest, _) = crate::eval::series::occurrence_bounds(&step, window);
        let margin = crate::eval::schedule::EXPIRED_MARGIN;
        let Some(nominal) = earliest.plus_seconds(-margin - early_seconds) else {
            return Ok(());
        };
        let anchor = nominal.plus_seconds(anchor_minutes * 60).unwrap();
        let tz = plan.timezone;
        let frame = Frame {
            clock: ZoneClock::new(tz),
            quiet: plan.quiet,
            start: plan.start.map(UnixTime::from),
            now: UnixTime::from(now),
            sendable: UnixTime::from(leave_quiet(now, plan.quiet, tz)),
        };
        let placed = place(&step, nominal, anchor, &frame);
        prop_assert!(
            placed.is_err(),
            "{tz} {:?} {:?} at {:?} within {:?} quiet {:?} nominal {:?} now {now}: {placed:?}",
            step.direction,
            step.offset,
            step.at,
            step.sendable_for,
            plan.quiet,
            nominal.utc(),
        );
    }
}
