//! Clinic-calendar arithmetic: durations that follow the calendar (months, days and weeks in
//! the clinic's time zone), `at HH:MM` on the local day, the next day and the next week. Wall
//! clock times that daylight saving skips or repeats become instants by [`local_to_utc`].

use chrono::{DateTime, Datelike, Days, Months, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;

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
const CALENDAR_END: DateTime<Utc> = match DateTime::<Utc>::MAX_UTC
    .naive_utc()
    .checked_sub_signed(TimeDelta::days(CALENDAR_MARGIN_DAYS))
{
    Some(end) => end.and_utc(),
    None => panic!("the margin is inside chrono's range"),
};

const CALENDAR_START: DateTime<Utc> = match DateTime::<Utc>::MIN_UTC
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
    if let Offset::Minutes(minutes) = offset {
        let delta = chrono::Duration::try_minutes(minutes)?;
        return if backwards {
            instant.checked_sub_signed(delta)
        } else {
            instant.checked_add_signed(delta)
        };
    }
    // In a zone that keeps one offset (Tokyo since 1951), days are 24 hours: no calendar
    // arithmetic, when the instant and the result both lie in that stretch.
    if let (Offset::Days(d), Some((steady, _))) = (offset, super::zone::steady_since(tz)) {
        let delta = TimeDelta::try_days(i64::try_from(d).ok()?)?;
        let moved = match backwards {
            true => instant.checked_sub_signed(delta)?,
            false => instant.checked_add_signed(delta)?,
        };
        if instant.timestamp() >= steady && moved.timestamp() >= steady {
            return Some(moved);
        }
    }
    let local = wall_clock(instant, tz);
    let moved = match (offset, backwards) {
        (Offset::Days(d), false) => local.checked_add_days(Days::new(d))?,
        (Offset::Days(d), true) => local.checked_sub_days(Days::new(d))?,
        (Offset::Months(m), false) => local.checked_add_months(Months::new(m))?,
        (Offset::Months(m), true) => local.checked_sub_months(Months::new(m))?,
        (Offset::Minutes(_), _) => unreachable!("handled above"),
    };
    Some(local_to_utc(moved, tz))
}

/// The given clock time on the local day of `instant`.
pub fn at_time(instant: DateTime<Utc>, clock: ClockTime, tz: Tz) -> DateTime<Utc> {
    // In a zone that keeps one offset, the local day's start is plain arithmetic.
    if let Some((steady, offset)) = super::zone::steady_since(tz) {
        let offset = i64::from(offset.local_minus_utc());
        let local = instant.timestamp() + offset;
        let clock_seconds = i64::from(clock.hour) * 3600 + i64::from(clock.minute) * 60;
        let at = local - local.rem_euclid(86_400) + clock_seconds - offset;
        if instant.timestamp() >= steady && at >= steady {
            if let Some(at) = DateTime::from_timestamp(at, 0) {
                return at;
            }
        }
    }
    local_to_utc(local_date(instant, tz).and_time(clock.naive()), tz)
}

/// The start of the next local day.
pub fn next_day(instant: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let day = local_date(instant, tz).succ_opt()?;
    Some(local_to_utc(day.and_time(NaiveTime::MIN), tz))
}

/// The start of the next local week (Monday).
pub fn next_week(instant: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let date = local_date(instant, tz);
    let days = 7 - u64::from(date.weekday().num_days_from_monday());
    let monday = date.checked_add_days(Days::new(days))?;
    Some(local_to_utc(monday.and_time(NaiveTime::MIN), tz))
}

#[cfg(test)]
mod tests {
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
