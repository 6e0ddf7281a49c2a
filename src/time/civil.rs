//! The proleptic Gregorian calendar on plain integers: days since 1970-01-01 ↔ (year, month,
//! day), weekdays, and calendar months added the way chrono adds them (Nov 30 + 3 months is
//! Feb 28, or 29). The evaluator's calendar steps run here on numbers: chrono keeps a date
//! packed as year and day of year, so every step through it unpacks and repacks a date, and
//! that was a fifth of an evaluation. Tests hold these to chrono's answers.

use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

/// Seconds in a civil day; the wall clock of every zone counts its days this long.
pub(super) const DAY: i64 = 86_400;

/// Days from 0000-03-01 to 1970-01-01 (the algorithms count years from March, so that the
/// leap day is the last day of the year).
const EPOCH_FROM_MARCH_0: i64 = 719_468;
/// Days in 400 Gregorian years.
const ERA: i64 = 146_097;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`). `month` is
/// 1–12 and `day` 1–31; the year is any that fits, far beyond chrono's range.
pub(super) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * ERA + day_of_era - EPOCH_FROM_MARCH_0
}

/// The civil date (year, month 1–12, day 1–31) `days` after 1970-01-01.
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let from_march_0 = days + EPOCH_FROM_MARCH_0;
    let era = from_march_0.div_euclid(ERA);
    let day_of_era = from_march_0.rem_euclid(ERA);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / (ERA - 1)) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    // Both in range by construction: day 1–31, month 1–12.
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The day `months` calendar months from `days` (back when negative), its day of the month
/// kept, or the target month's last day when it has fewer (chrono's `checked_add_months`).
/// `None` only when the year would leave `i64`, far beyond any calendar.
pub(super) fn add_months(days: i64, months: i64) -> Option<i64> {
    let (year, month, day) = civil_from_days(days);
    add_months_to(year, month, day, months)
}

/// [`add_months`] from a day already taken apart into year, month and day (as
/// [`civil_from_days`] gives them), for adding many spans of months to one day.
pub(super) fn add_months_to(year: i64, month: u32, day: u32, months: i64) -> Option<i64> {
    let index = year
        .checked_mul(12)?
        .checked_add(i64::from(month) - 1)?
        .checked_add(months)?;
    let (year, month) = (index.div_euclid(12), index.rem_euclid(12) as u32 + 1);
    Some(days_from_civil(
        year,
        month,
        day.min(days_in_month(year, month)),
    ))
}

/// The first and the day after the last of the days [`instant`] builds by look-up: those of
/// the zones' tables, 1900-01-01 to 2199-12-31.
const FIRST_LOOKED_UP: i64 = -25_567;
const AFTER_LOOKED_UP: i64 = 84_006;

/// The instant `seconds` (Unix time) and `nanos` past it, as chrono's: what
/// `DateTime::from_timestamp` gives, with the date taken from a table for 1900–2199. chrono
/// builds a date from a day count by dividing it into 400-year cycles and looking up the
/// years' deltas, which was most of what shifting an instant cost once its arithmetic was
/// done on seconds; the table (440 kB, made once per process) makes it one index.
pub(super) fn instant(seconds: i64, nanos: u32) -> Option<DateTime<Utc>> {
    static DATES: OnceLock<Box<[NaiveDate]>> = OnceLock::new();
    let day = seconds.div_euclid(DAY);
    if !(FIRST_LOOKED_UP..AFTER_LOOKED_UP).contains(&day) {
        return DateTime::from_timestamp(seconds, nanos);
    }
    let dates = DATES.get_or_init(|| {
        let first = DateTime::from_timestamp(FIRST_LOOKED_UP * DAY, 0).map(|t| t.date_naive());
        let days = usize::try_from(AFTER_LOOKED_UP - FIRST_LOOKED_UP).unwrap_or(0);
        std::iter::successors(first, |date| date.succ_opt())
            .take(days)
            .collect()
    });
    // In range: the offset is under the table's length.
    let date = dates.get((day - FIRST_LOOKED_UP) as usize)?;
    // Under 86,400.
    let time =
        NaiveTime::from_num_seconds_from_midnight_opt(seconds.rem_euclid(DAY) as u32, nanos)?;
    Some(NaiveDateTime::new(*date, time).and_utc())
}

/// Days since the Monday on or before the day `days` after 1970-01-01 (a Thursday): 0 for a
/// Monday, 6 for a Sunday.
pub(super) fn days_from_monday(days: i64) -> i64 {
    (days + 3).rem_euclid(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Days, Months, NaiveDate};
    use proptest::prelude::*;

    /// 1970-01-01 as chrono counts days (from 0001-01-01 as day 1).
    const UNIX_IN_CE: i32 = 719_163;

    fn chrono_date(days: i64) -> Option<NaiveDate> {
        NaiveDate::from_num_days_from_ce_opt(i32::try_from(days).ok()? + UNIX_IN_CE)
    }

    fn chrono_days(date: NaiveDate) -> i64 {
        i64::from(date.num_days_from_ce() - UNIX_IN_CE)
    }

    /// chrono's dates reach year ±262,142; these cover all of them.
    const CHRONO_DAYS: std::ops::Range<i64> = -96_000_000..95_000_000;

    #[test]
    fn every_day_from_1600_to_2400_is_chronos() {
        // Every month end, leap day and century rule in four 400-year cycles, day by day.
        let start = days_from_civil(1600, 1, 1);
        let end = days_from_civil(2400, 12, 31);
        for days in start..=end {
            let date = chrono_date(days).unwrap();
            let (year, month, day) = civil_from_days(days);
            assert_eq!(
                (year, month, day),
                (i64::from(date.year()), date.month(), date.day())
            );
            assert_eq!(days_from_civil(year, month, day), days);
            assert_eq!(
                days_from_monday(days),
                i64::from(date.weekday().num_days_from_monday())
            );
        }
    }

    #[test]
    fn month_ends_and_leap_days_clamp_as_chrono_does() {
        let on = |y, m, d| days_from_civil(y, m, d);
        assert_eq!(add_months(on(2026, 11, 30), 3), Some(on(2027, 2, 28)));
        assert_eq!(add_months(on(2027, 11, 30), 3), Some(on(2028, 2, 29)));
        assert_eq!(add_months(on(2028, 2, 29), 12), Some(on(2029, 2, 28)));
        assert_eq!(add_months(on(2027, 3, 31), -1), Some(on(2027, 2, 28)));
        assert_eq!(add_months(on(1900, 1, 31), 1), Some(on(1900, 2, 28)));
        assert_eq!(add_months(on(2000, 1, 31), 1), Some(on(2000, 2, 29)));
        assert_eq!(add_months(on(2026, 1, 15), -13), Some(on(2024, 12, 15)));
        assert_eq!(add_months(0, i64::MAX), None);
    }

    #[test]
    fn instants_by_look_up_are_chronos() {
        let step = 7_777;
        let mut seconds = (FIRST_LOOKED_UP - 3) * DAY;
        while seconds < (AFTER_LOOKED_UP + 3) * DAY {
            for (at, nanos) in [(seconds, 0), (seconds + 1, 500), (seconds - 1, 999_999_999)] {
                assert_eq!(
                    instant(at, nanos),
                    DateTime::from_timestamp(at, nanos),
                    "{at}"
                );
            }
            seconds += step;
        }
        for (at, nanos) in [
            (0, 1_000_000_000),
            (59, 1_500_000_000),
            (i64::MAX, 0),
            (i64::MIN, 0),
        ] {
            assert_eq!(
                instant(at, nanos),
                DateTime::from_timestamp(at, nanos),
                "{at}"
            );
        }
    }

    proptest! {
        #[test]
        fn dates_are_chronos_across_its_whole_range(days in CHRONO_DAYS) {
            let date = chrono_date(days).unwrap();
            let (year, month, day) = civil_from_days(days);
            prop_assert_eq!((year, month, day), (i64::from(date.year()), date.month(), date.day()));
            prop_assert_eq!(days_from_civil(year, month, day), days);
            prop_assert_eq!(days_from_monday(days), i64::from(date.weekday().num_days_from_monday()));
        }

        #[test]
        fn months_are_chronos(days in CHRONO_DAYS, months in 0u32..4_000_000, back: bool) {
            let date = chrono_date(days).unwrap();
            let by_chrono = match back {
                false => date.checked_add_months(Months::new(months)),
                true => date.checked_sub_months(Months::new(months)),
            };
            let signed = if back { -i64::from(months) } else { i64::from(months) };
            let ours = add_months(days, signed).unwrap();
            // Where chrono has no date, the day is outside its range.
            match by_chrono {
                Some(expected) => prop_assert_eq!(ours, chrono_days(expected)),
                None => prop_assert!(chrono_date(ours).is_none()),
            }
        }

        #[test]
        fn month_ends_in_ordinary_centuries_are_chronos(
            year in 1800i64..2300, month in 1u32..=12, months in 0u32..2400, back: bool,
        ) {
            // The last days of months, where clamping happens, more often than at random.
            let days = days_from_civil(year, month, days_in_month(year, month));
            let date = chrono_date(days).unwrap();
            let expected = match back {
                false => date.checked_add_months(Months::new(months)),
                true => date.checked_sub_months(Months::new(months)),
            }.unwrap();
            let signed = if back { -i64::from(months) } else { i64::from(months) };
            prop_assert_eq!(add_months(days, signed), Some(chrono_days(expected)));
            let later = date.checked_add_days(Days::new(u64::from(months))).unwrap();
            prop_assert_eq!(days + i64::from(months), chrono_days(later));
        }
    }
}
