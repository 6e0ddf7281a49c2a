//! Clinic-calendar arithmetic: durations that follow the calendar (months, days in the clinic's
//! time zone), `at HH:MM` on the local day, and moving out of quiet hours.

use chrono::{DateTime, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::values::{ClockTime, Duration, DurationUnit, QuietHours};

/// A timing offset as the clinic counts it: minutes and hours are exact; days and weeks keep
/// the local clock time; months and years are calendar months (Nov 30 + 3mo = Feb 28/29).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    Minutes(i64),
    Days(u64),
    Months(u32),
}

impl Offset {
    pub fn of(duration: Duration) -> Offset {
        let amount = duration.amount;
        match duration.unit {
            DurationUnit::Minutes => Offset::Minutes(i64::from(amount)),
            DurationUnit::Hours => Offset::Minutes(i64::from(amount) * 60),
            DurationUnit::Days => Offset::Days(u64::from(amount)),
            DurationUnit::Weeks => Offset::Days(u64::from(amount) * 7),
            DurationUnit::Months => Offset::Months(amount),
            // Saturating is exact enough: u32::MAX months is beyond the calendar, which
            // `shift` reports as `None`, as it would the true value.
            DurationUnit::Years => Offset::Months(amount.saturating_mul(12)),
        }
    }

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
    DateTime::<Utc>::MAX_UTC - chrono::Duration::days(CALENDAR_MARGIN_DAYS)
}

/// The first instant steprule computes with.
pub fn calendar_start() -> DateTime<Utc> {
    DateTime::<Utc>::MIN_UTC + chrono::Duration::days(CALENDAR_MARGIN_DAYS)
}

/// `instant + offset` (or `- offset` when `backwards`), in the clinic's calendar. `None` when
/// the result is beyond the calendar (see [`calendar_end`]); `instant` must be inside it.
pub fn shift(
    instant: DateTime<Utc>,
    offset: Offset,
    backwards: bool,
    tz: Tz,
) -> Option<DateTime<Utc>> {
    shift_unchecked(instant, offset, backwards, tz)
        .filter(|moved| (calendar_start()..=calendar_end()).contains(moved))
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
    let local = instant.with_timezone(&tz).naive_local();
    let moved = match (offset, backwards) {
        (Offset::Days(d), false) => local.checked_add_days(Days::new(d))?,
        (Offset::Days(d), true) => local.checked_sub_days(Days::new(d))?,
        (Offset::Months(m), false) => local.checked_add_months(Months::new(m))?,
        (Offset::Months(m), true) => local.checked_sub_months(Months::new(m))?,
        (Offset::Minutes(_), _) => unreachable!("handled above"),
    };
    Some(from_local(moved, tz))
}

/// A local wall-clock time as an instant. In a DST gap the clock time does not exist: take the
/// first instant after the gap; in an overlap take the earlier one.
pub fn from_local(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    let mut probe = local;
    for _ in 0..4 {
        if let Some(instant) = tz.from_local_datetime(&probe).earliest() {
            return instant.with_timezone(&Utc);
        }
        match probe.checked_add_signed(chrono::Duration::minutes(30)) {
            Some(later) => probe = later,
            None => break,
        }
    }
    // No zone has a gap of two hours; fall back to reading the clock time as UTC.
    Utc.from_utc_datetime(&local)
}

pub fn local_date(instant: DateTime<Utc>, tz: Tz) -> NaiveDate {
    instant.with_timezone(&tz).date_naive()
}

fn naive_time(clock: ClockTime) -> NaiveTime {
    NaiveTime::from_hms_opt(clock.hour, clock.minute, 0).expect("checked clock time")
}

/// The given clock time on the local day of `instant`.
pub fn at_time(instant: DateTime<Utc>, clock: ClockTime, tz: Tz) -> DateTime<Utc> {
    from_local(local_date(instant, tz).and_time(naive_time(clock)), tz)
}

/// The start of the next local day.
pub fn next_day(instant: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let day = local_date(instant, tz).succ_opt()?;
    Some(from_local(day.and_time(NaiveTime::MIN), tz))
}

/// The start of the next local week (Monday).
pub fn next_week(instant: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    let date = local_date(instant, tz);
    let days = 7 - u64::from(date.weekday().num_days_from_monday());
    let monday = date.checked_add_days(Days::new(days))?;
    Some(from_local(monday.and_time(NaiveTime::MIN), tz))
}

/// If `instant` is inside quiet hours, the end of that quiet window; otherwise `instant`.
pub fn leave_quiet(instant: DateTime<Utc>, quiet: Option<QuietHours>, tz: Tz) -> DateTime<Utc> {
    let Some(quiet) = quiet else {
        return instant;
    };
    let local = instant.with_timezone(&tz);
    let time = chrono::Timelike::hour(&local) * 60 + chrono::Timelike::minute(&local);
    let clock = ClockTime {
        hour: time / 60,
        minute: time % 60,
    };
    if !quiet.contains(clock) {
        return instant;
    }
    let date = local.date_naive();
    let wraps = quiet.from > quiet.to;
    // In a window that wraps midnight, the evening part ends tomorrow morning.
    let end_date = if wraps && clock >= quiet.from {
        date.succ_opt().unwrap_or(date)
    } else {
        date
    };
    from_local(end_date.and_time(naive_time(quiet.to)), tz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Tokyo;

    fn tokyo(text: &str) -> DateTime<Utc> {
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        from_local(naive, Tokyo)
    }

    fn show(instant: DateTime<Utc>) -> String {
        instant
            .with_timezone(&Tokyo)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }

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
        let before = from_local(
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
    fn quiet_hours_move_to_the_window_end() {
        let quiet = Some(QuietHours {
            from: ClockTime {
                hour: 21,
                minute: 0,
            },
            to: ClockTime { hour: 9, minute: 0 },
        });
        let cases = [
            ("2026-11-25 22:30", "2026-11-26 09:00"),
            ("2026-11-26 03:00", "2026-11-26 09:00"),
            ("2026-11-26 09:00", "2026-11-26 09:00"),
            ("2026-11-26 20:59", "2026-11-26 20:59"),
        ];
        for (at, expected) in cases {
            assert_eq!(show(leave_quiet(tokyo(at), quiet, Tokyo)), expected, "{at}");
        }
        let lunch = Some(QuietHours {
            from: ClockTime {
                hour: 12,
                minute: 0,
            },
            to: ClockTime {
                hour: 13,
                minute: 0,
            },
        });
        assert_eq!(
            show(leave_quiet(tokyo("2026-11-26 12:10"), lunch, Tokyo)),
            "2026-11-26 13:00"
        );
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
}
