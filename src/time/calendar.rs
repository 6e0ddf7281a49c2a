//! Clinic-calendar arithmetic: durations that follow the calendar (months, days and weeks in
//! the clinic's time zone), `at HH:MM` on the local day, the next day and the next week. Wall
//! clock times that daylight saving skips or repeats become instants by [`local_to_utc`].

use chrono::{DateTime, Datelike, Days, Months, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

use super::civil::{self, DAY};
use super::zone::{utc_seconds, wall_seconds};
use super::{local_date, local_to_utc, wall_clock, ClockTime};

/// A timing offset as the clinic counts it: minutes and hours are exact; days and weeks keep
/// the local clock time; months and years are calendar months (Nov 30 + 3mo = Feb 28/29).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    Minutes(i64),
    Days(u64),
    Months(u32),
}

impl Offset {
    /// The offset at its longest as a fixed span of time, or `None` when that is beyond what
    /// chrono can hold (only for durations `check` rejects).
    pub fn max_delta(self) -> Option<chrono::Duration> {
        chrono::Duration::try_minutes(self.max_minutes())
    }

    /// `k` times this offset (for `every`), computed from the anchor rather than step by step
    /// so that month ends do not drift (Jan 31, Feb 28, Mar 31 — not Mar 28).
    pub fn times(self, k: u32) -> Option<Offset> {
        Some(match self {
            Offset::Minutes(m) => Offset::Minutes(m.checked_mul(i64::from(k))?),
            Offset::Days(d) => Offset::Days(d.checked_mul(u64::from(k))?),
            Offset::Months(m) => Offset::Months(m.checked_mul(k)?),
        })
    }

    /// An upper bound of the offset's length in minutes (a day may be 25 hours, a month 31
    /// days), so that dividing by it never skips an occurrence.
    pub fn max_minutes(self) -> i64 {
        match self {
            Offset::Minutes(m) => m,
            Offset::Days(d) => (d as i64).saturating_mul(25 * 60),
            Offset::Months(m) => i64::from(m).saturating_mul(31 * 25 * 60),
        }
    }

    pub fn is_zero(self) -> bool {
        matches!(
            self,
            Offset::Minutes(0) | Offset::Days(0) | Offset::Months(0)
        )
    }
}

/// How far inside chrono's range the instants steprule computes with stay, so that their
/// local time, an `at` time, the end of quiet hours and the start of next week all exist.
const CALENDAR_MARGIN_DAYS: i64 = 31;

/// The last instant steprule computes with (around the year 262,000): a window that would end
/// later ends here, which in practice is never.
pub fn calendar_end() -> DateTime<Utc> {
    CALENDAR_END
}

/// The first instant steprule computes with.
pub fn calendar_start() -> DateTime<Utc> {
    CALENDAR_START
}

// Constants, so that the check in every `shift` is two comparisons, not two date subtractions.
pub(super) const CALENDAR_END: DateTime<Utc> = match DateTime::<Utc>::MAX_UTC
    .naive_utc()
    .checked_sub_signed(TimeDelta::days(CALENDAR_MARGIN_DAYS))
{
    Some(end) => end.and_utc(),
    None => panic!("the margin is inside chrono's range"),
};

pub(super) const CALENDAR_START: DateTime<Utc> = match DateTime::<Utc>::MIN_UTC
    .naive_utc()
    .checked_add_signed(TimeDelta::days(CALENDAR_MARGIN_DAYS))
{
    Some(start) => start.and_utc(),
    None => panic!("the margin is inside chrono's range"),
};

/// `instant + offset` (or `- offset` when `backwards`), in the clinic's calendar. `None` when
/// the result is beyond the calendar (see [`calendar_end`]); `instant` must be inside it.
pub fn shift(
    instant: DateTime<Utc>,
    offset: Offset,
    backwards: bool,
    tz: Tz,
) -> Option<DateTime<Utc>> {
    shift_unchecked(instant, offset, backwards, tz)
        .filter(|moved| (CALENDAR_START..=CALENDAR_END).contains(moved))
}

fn shift_unchecked(
    instant: DateTime<Utc>,
    offset: Offset,
    backwards: bool,
    tz: Tz,
) -> Option<DateTime<Utc>> {
    let (seconds, nanos) = (instant.timestamp(), instant.timestamp_subsec_nanos());
    // A leap second's nanoseconds (1e9 and over) are left to chrono, which knows them.
    if nanos >= 1_000_000_000 {
        return shift_by_chrono(instant, offset, backwards, tz);
    }
    if let Offset::Minutes(minutes) = offset {
        // Beyond chrono's range either way, `instant` says `None`, as chrono's
        // `checked_add_signed` would.
        let delta = minutes.checked_mul(60)?;
        let moved = match backwards {
            true => seconds.checked_sub(delta)?,
            false => seconds.checked_add(delta)?,
        };
        return civil::instant(moved, nanos);
    }
    shift_on_the_wall(seconds, offset, backwards, tz)
        .and_then(|moved| civil::instant(moved, nanos))
        .or_else(|| shift_by_chrono(instant, offset, backwards, tz))
}

/// Days and months on the wall clock counted in seconds, with the zone's table both ways:
/// what [`shift_by_chrono`] computes, without unpacking chrono's dates. `None` where the table
/// declines (a result in a gap or an overlap, times outside 1900–2200): chrono decides those.
fn shift_on_the_wall(seconds: i64, offset: Offset, backwards: bool, tz: Tz) -> Option<i64> {
    utc_seconds(
        move_on_the_wall(wall_seconds(seconds, tz)?, offset, backwards)?,
        tz,
    )
}

/// The wall-clock second `wall` (as [`wall_seconds`] counts it) moved by days or months on
/// the wall clock; `None` for minutes (not a wall-clock step) or past `i64`.
pub(super) fn move_on_the_wall(wall: i64, offset: Offset, backwards: bool) -> Option<i64> {
    match offset {
        Offset::Days(days) => {
            let delta = i64::try_from(days).ok()?.checked_mul(DAY)?;
            match backwards {
                true => wall.checked_sub(delta),
                false => wall.checked_add(delta),
            }
        }
        Offset::Months(months) => {
            let months = match backwards {
                true => -i64::from(months),
                false => i64::from(months),
            };
            let (day, time) = (wall.div_euclid(DAY), wall.rem_euclid(DAY));
            civil::add_months(day, months)?
                .checked_mul(DAY)?
                .checked_add(time)
        }
        Offset::Minutes(_) => None,
    }
}

/// Days and months through chrono's calendar and chrono-tz: the reference
/// [`shift_on_the_wall`] is held to, and the answer wherever the zone's table declines.
fn shift_by_chrono(
    instant: DateTime<Utc>,
    offset: Offset,
    backwards: bool,
    tz: Tz,
) -> Option<DateTime<Utc>> {
    let moved = match offset {
        Offset::Minutes(minutes) => {
            let delta = chrono::Duration::try_minutes(minutes)?;
            return match backwards {
                true => instant.checked_sub_signed(delta),
                false => instant.checked_add_signed(delta),
            };
        }
        offset => {
            let local = wall_clock(instant, tz);
            match (offset, backwards) {
                (Offset::Days(d), false) => local.checked_add_days(Days::new(d))?,
                (Offset::Days(d), true) => local.checked_sub_days(Days::new(d))?,
                (Offset::Months(m), false) => local.checked_add_months(Months::new(m))?,
                (Offset::Months(m), true) => local.checked_sub_months(Months::new(m))?,
                (Offset::Minutes(_), _) => return None,
            }
        }
    };
    Some(local_to_utc(moved, tz))
}

/// The given clock time on the local day of `instant`.
pub fn at_time(instant: DateTime<Utc>, clock: ClockTime, tz: Tz) -> DateTime<Utc> {
    wall_minute(instant, tz).at(clock, tz)
}

/// The start of the next local day.
pub fn next_day(instant: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    wall_minute(instant, tz).days_later_at(1, ClockTime::MIDNIGHT, tz)
}

/// The start of the next local week (Monday).
pub fn next_week(instant: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let wall = wall_minute(instant, tz);
    let from_monday = match wall.day {
        // 0 to 6.
        Some(day) => civil::days_from_monday(day) as u64,
        None => u64::from(local_date(instant, tz).weekday().num_days_from_monday()),
    };
    wall.days_later_at(7 - from_monday, ClockTime::MIDNIGHT, tz)
}

/// An instant on the clinic's wall clock: its clock time to the minute, and the means to name
/// a clock time on its day or a few days later. Quiet hours and `at` times read and name wall
/// clocks millions of times in a run; inside the zone's table (1900–2200) that is arithmetic
/// on seconds, elsewhere chrono's calendar and chrono-tz.
#[derive(Debug, Clone, Copy)]
pub struct WallMinute {
    pub clock: ClockTime,
    instant: DateTime<Utc>,
    /// The local day (days since 1970-01-01) when the zone's table knows the instant.
    day: Option<i64>,
}

/// `instant` on the clinic's wall clock.
pub fn wall_minute(instant: DateTime<Utc>, tz: Tz) -> WallMinute {
    if let Some(wall) = wall_seconds(instant.timestamp(), tz) {
        let time = wall.rem_euclid(DAY);
        return WallMinute {
            // Under 86,400 seconds: the hour is under 24.
            clock: ClockTime {
                hour: (time / 3600) as u32,
                minute: (time % 3600 / 60) as u32,
            },
            instant,
            day: Some(wall.div_euclid(DAY)),
        };
    }
    let local = wall_clock(instant, tz);
    WallMinute {
        clock: ClockTime {
            hour: local.hour(),
            minute: local.minute(),
        },
        instant,
        day: None,
    }
}

impl WallMinute {
    /// The instant at `clock` (taken as [`ClockTime::naive`] takes it) on this local day, by
    /// the one rule for the hours daylight saving skips or repeats.
    pub fn at(self, clock: ClockTime, tz: Tz) -> DateTime<Utc> {
        // Adding no days always has a day; the fallback keeps this total all the same.
        self.days_later_at(0, clock, tz).unwrap_or_else(|| {
            local_to_utc(local_date(self.instant, tz).and_time(clock.naive()), tz)
        })
    }

    /// [`WallMinute::at`] on the local day `days` days later; `None` past chrono's last day.
    pub fn days_later_at(self, days: u64, clock: ClockTime, tz: Tz) -> Option<DateTime<Utc>> {
        let fast = self
            .day
            .zip(i64::try_from(days).ok())
            .and_then(|(day, days)| day.checked_add(days)?.checked_mul(DAY))
            .and_then(|start| utc_seconds(start.checked_add(clock.seconds_since_midnight())?, tz))
            .and_then(|at| civil::instant(at, 0));
        if fast.is_some() {
            return fast;
        }
        let date = local_date(self.instant, tz).checked_add_days(Days::new(days))?;
        Some(local_to_utc(date.and_time(clock.naive()), tz))
    }
}

#[cfg(test)]
pub(in crate::time) mod tests {
    use super::*;
    use chrono::NaiveDateTime;
    use chrono_tz::{America::New_York, Asia::Tokyo, Europe::London};

    use crate::time::tokyo::{show, tokyo};

    #[test]
    fn months_are_calendar_months() {
        let nov30 = tokyo("2026-11-30 10:00");
        assert_eq!(
            show(shift(nov30, Offset::Months(3), false, Tokyo).unwrap()),
            "2027-02-28 10:00"
        );
        let leap = tokyo("2027-11-30 10:00");
        assert_eq!(
            show(shift(leap, Offset::Months(3), false, Tokyo).unwrap()),
            "2028-02-29 10:00"
        );
        assert_eq!(
            show(shift(nov30, Offset::Months(1), true, Tokyo).unwrap()),
            "2026-10-30 10:00"
        );
    }

    #[test]
    fn every_month_does_not_drift_at_month_ends() {
        let jan31 = tokyo("2027-01-31 09:30");
        let month = Offset::Months(1);
        let third = shift(jan31, month.times(2).unwrap(), false, Tokyo).unwrap();
        assert_eq!(show(third), "2027-03-31 09:30");
    }

    #[test]
    fn days_keep_the_local_clock_across_dst() {
        let ny = chrono_tz::America::New_York;
        let before = local_to_utc(
            NaiveDateTime::parse_from_str("2026-03-07 10:00", "%Y-%m-%d %H:%M").unwrap(),
            ny,
        );
        let after = shift(before, Offset::Days(1), false, ny).unwrap();
        assert_eq!(
            after.with_timezone(&ny).format("%H:%M").to_string(),
            "10:00"
        );
        assert_eq!((after - before).num_hours(), 23);
    }

    #[test]
    fn a_steady_zones_days_are_24_hours_exactly_as_its_calendar_says() {
        // The 24-hour shortcut against the calendar's own arithmetic, on both sides of the
        // zone's last change (Tokyo's 1951, New York's, a zone that never had one).
        let zones = [Tokyo, chrono_tz::America::New_York, chrono_tz::UTC];
        let by_calendar = |instant: DateTime<Utc>, days: u64, backwards: bool, tz: Tz| {
            let local = wall_clock(instant, tz);
            let moved = match backwards {
                false => local.checked_add_days(Days::new(days))?,
                true => local.checked_sub_days(Days::new(days))?,
            };
            Some(local_to_utc(moved, tz)).filter(|m| (CALENDAR_START..=CALENDAR_END).contains(m))
        };
        let mut seconds: i64 = -2_000_000_000; // 1906
        while seconds < 5_000_000_000 {
            let instant = DateTime::from_timestamp(seconds, 0).unwrap();
            for tz in zones {
                for days in [0, 1, 3, 30, 400, 36_500] {
                    for backwards in [false, true] {
                        assert_eq!(
                            shift(instant, Offset::Days(days), backwards, tz),
                            by_calendar(instant, days, backwards, tz),
                            "{instant} {days}d backwards={backwards} {tz}"
                        );
                    }
                }
            }
            seconds += 7_777_777; // about three months, at every hour of the day in turn
        }
    }

    #[test]
    fn a_steady_zones_clock_times_are_those_of_its_calendar() {
        let zones = [Tokyo, chrono_tz::America::New_York, chrono_tz::UTC];
        let mut seconds: i64 = -2_000_000_000;
        while seconds < 5_000_000_000 {
            let instant = DateTime::from_timestamp(seconds, 0).unwrap();
            for tz in zones {
                for (hour, minute) in [(0, 0), (9, 30), (23, 59)] {
                    let clock = ClockTime { hour, minute };
                    let expected =
                        local_to_utc(local_date(instant, tz).and_time(clock.naive()), tz);
                    assert_eq!(at_time(instant, clock, tz), expected, "{instant} {tz}");
                }
            }
            seconds += 7_777_777;
        }
    }

    /// Instants every 37 minutes from two days before to two days after each change of
    /// offset from 2019 to 2031, and every 7,777,777 seconds from 1899 to 2201 (through the
    /// table's edges), in zones with daylight saving time in both hemispheres, a 30-minute
    /// change, and none. `ZoneClock`'s tests (seconds_tests.rs) walk the same instants.
    pub(in crate::time) fn instants_around_changes(tz: Tz) -> Vec<DateTime<Utc>> {
        let offset = |at: DateTime<Utc>| wall_clock(at, tz) - at.naive_utc();
        let mut instants = Vec::new();
        let mut day = utc("2019-01-01T00:00:00Z");
        while day < utc("2031-01-01T00:00:00Z") {
            let next = day + TimeDelta::days(1);
            if offset(day) != offset(next) {
                let mut at = day - TimeDelta::days(2);
                while at < next + TimeDelta::days(2) {
                    instants.push(at);
                    at += TimeDelta::minutes(37);
                }
            }
            day = next;
        }
        let mut seconds = utc("1899-06-01T00:00:00Z").timestamp();
        while seconds < utc("2201-06-01T00:00:00Z").timestamp() {
            instants.push(DateTime::from_timestamp(seconds, 0).unwrap());
            seconds += 7_777_777;
        }
        instants
    }

    #[test]
    fn days_and_months_on_the_wall_are_chronos_across_daylight_saving() {
        use chrono_tz::{America::Sao_Paulo, Australia::Lord_Howe};
        let offsets = [
            Offset::Days(0),
            Offset::Days(1),
            Offset::Days(7),
            Offset::Days(30),
            Offset::Months(1),
            Offset::Months(3),
            Offset::Months(12),
            Offset::Minutes(90),
        ];
        for tz in [New_York, London, Lord_Howe, Sao_Paulo, Tokyo] {
            let mut on_the_wall = 0;
            for instant in instants_around_changes(tz) {
                for offset in offsets {
                    for backwards in [false, true] {
                        let expected = shift_by_chrono(instant, offset, backwards, tz);
                        assert_eq!(
                            shift_unchecked(instant, offset, backwards, tz),
                            expected,
                            "{tz} {instant} {offset:?} backwards={backwards}"
                        );
                        let wall = shift_on_the_wall(instant.timestamp(), offset, backwards, tz);
                        on_the_wall += usize::from(wall.is_some());
                    }
                }
            }
            // Nearly every one took the new path; the rest were left to chrono.
            assert!(on_the_wall > 1000, "{tz}: {on_the_wall} on the wall");
        }
    }

    #[test]
    fn clock_times_and_next_days_on_the_wall_are_chronos_across_daylight_saving() {
        use chrono::NaiveTime;
        for tz in [New_York, London, Tokyo] {
            for instant in instants_around_changes(tz) {
                let date = local_date(instant, tz);
                for (hour, minute) in [(0, 0), (1, 30), (2, 30), (9, 0), (23, 59), (25, 70)] {
                    let clock = ClockTime { hour, minute };
                    let expected = local_to_utc(date.and_time(clock.naive()), tz);
                    assert_eq!(at_time(instant, clock, tz), expected, "{tz} {instant}");
                }
                let next = date.succ_opt().unwrap();
                assert_eq!(
                    next_day(instant, tz),
                    Some(local_to_utc(next.and_time(NaiveTime::MIN), tz)),
                    "{tz} {instant}"
                );
                let monday = date + Days::new(7 - u64::from(date.weekday().num_days_from_monday()));
                assert_eq!(
                    next_week(instant, tz),
                    Some(local_to_utc(monday.and_time(NaiveTime::MIN), tz)),
                    "{tz} {instant}"
                );
                let wall = wall_clock(instant, tz);
                assert_eq!(
                    wall_minute(instant, tz).clock,
                    ClockTime {
                        hour: wall.hour(),
                        minute: wall.minute()
                    }
                );
            }
        }
    }

    #[test]
    fn at_time_is_on_the_local_day() {
        // 23:30 UTC is already the next day in Tokyo.
        let instant = DateTime::parse_from_rfc3339("2026-11-25T23:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = at_time(
            instant,
            ClockTime {
                hour: 18,
                minute: 0,
            },
            Tokyo,
        );
        assert_eq!(show(at), "2026-11-26 18:00");
    }

    #[test]
    fn next_week_starts_on_monday() {
        // 2026-11-25 is a Wednesday.
        assert_eq!(
            show(next_week(tokyo("2026-11-25 10:00"), Tokyo).unwrap()),
            "2026-11-30 00:00"
        );
        assert_eq!(
            show(next_day(tokyo("2026-11-25 10:00"), Tokyo).unwrap()),
            "2026-11-26 00:00"
        );
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn wall(text: &str, tz: Tz) -> DateTime<Utc> {
        local_to_utc(
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap(),
            tz,
        )
    }

    #[test]
    fn at_time_in_a_gap_is_the_moment_clocks_jump() {
        // 02:10 does not exist on 2026-03-08 in New York: 03:00 EDT, as records read it (the
        // old 30-minute probing gave 03:10).
        let morning = utc("2026-03-08T15:00:00Z");
        let at = at_time(
            morning,
            ClockTime {
                hour: 2,
                minute: 10,
            },
            New_York,
        );
        assert_eq!(at, utc("2026-03-08T07:00:00Z"));
    }

    #[test]
    fn at_time_in_an_overlap_is_the_earlier_one() {
        let morning = utc("2026-11-01T15:00:00Z");
        let at = at_time(
            morning,
            ClockTime {
                hour: 1,
                minute: 30,
            },
            New_York,
        );
        assert_eq!(at, utc("2026-11-01T05:30:00Z"));
    }

    #[test]
    fn new_york_days_across_both_nights() {
        let day = Offset::Days(1);
        let into_gap = shift(wall("2026-03-07 02:30", New_York), day, false, New_York);
        assert_eq!(into_gap, Some(utc("2026-03-08T07:00:00Z")));
        let into_overlap = shift(wall("2026-10-31 01:30", New_York), day, false, New_York);
        assert_eq!(into_overlap, Some(utc("2026-11-01T05:30:00Z")));
        let back_over = shift(wall("2026-11-02 09:00", New_York), day, true, New_York);
        assert_eq!(back_over, Some(utc("2026-11-01T14:00:00Z")));
        assert_eq!(
            next_day(wall("2026-10-31 12:00", New_York), New_York),
            Some(utc("2026-11-01T04:00:00Z"))
        );
    }

    #[test]
    fn london_weeks_and_months_across_both_nights() {
        // 2026-03-29 01:00 GMT → 02:00 BST; 2026-10-25 02:00 BST → 01:00 GMT.
        let week = shift(
            wall("2026-03-22 01:30", London),
            Offset::Days(7),
            false,
            London,
        );
        assert_eq!(week, Some(utc("2026-03-29T01:00:00Z")));
        let month = shift(
            wall("2026-09-25 01:30", London),
            Offset::Months(1),
            false,
            London,
        );
        assert_eq!(month, Some(utc("2026-10-25T00:30:00Z")));
        // The week after the overlap keeps 09:00 on the wall, now in GMT.
        let after = shift(
            wall("2026-10-19 09:00", London),
            Offset::Days(7),
            false,
            London,
        );
        assert_eq!(after, Some(utc("2026-10-26T09:00:00Z")));
    }

    #[test]
    fn tokyo_days_are_always_24_hours() {
        for start in ["2026-03-07 02:30", "2026-03-28 01:30", "2026-10-31 01:30"] {
            let before = wall(start, Tokyo);
            let after = shift(before, Offset::Days(1), false, Tokyo).unwrap();
            assert_eq!((after - before).num_hours(), 24, "{start}");
        }
    }
}
