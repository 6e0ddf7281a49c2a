//! The period a report covers: whole days on the clinic's calendar, from its midnight to its
//! midnight, and the period before it that the ▲▼ changes compare with.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::time::{local_date, local_to_utc};

/// The longest period a report covers: ten years of days. Longer ranges are refused rather
/// than read (`--from 1926-01-01`).
pub const MAX_DAYS: i64 = 3660;

/// Days on the clinic's calendar, `first` through `last`, and the instants they span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub first: NaiveDate,
    /// The last day, included.
    pub last: NaiveDate,
    /// The clinic's midnight starting `first`.
    pub from: DateTime<Utc>,
    /// The clinic's midnight after `last` (excluded).
    pub to: DateTime<Utc>,
}

/// A period as the command line gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeriodArgs {
    /// `--month YYYY-MM`.
    Month(String),
    /// `--from D --to D`, both days included.
    Range { from: String, to: String },
    /// Neither: the last full month before today.
    LastMonth,
}

/// The period asked for and the one before it (for a month, the month before; for a range,
/// as many days just before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    pub current: Period,
    pub previous: Period,
}

impl Period {
    fn days(first: NaiveDate, last: NaiveDate, tz: Tz) -> Result<Period, String> {
        let after = last.succ_opt().ok_or("the period ends past the calendar")?;
        let midnight = |day: NaiveDate| local_to_utc(day.and_time(chrono::NaiveTime::MIN), tz);
        Ok(Period {
            first,
            last,
            from: midnight(first),
            to: midnight(after),
        })
    }

    /// The calendar month starting on `first` (a first of the month).
    pub(crate) fn month(first: NaiveDate, tz: Tz) -> Result<Period, String> {
        let next = first
            .checked_add_months(Months::new(1))
            .ok_or("the month is past the calendar")?;
        let last = next.pred_opt().ok_or("the month is before the calendar")?;
        Period::days(first, last, tz)
    }

    /// How many days it covers.
    pub fn len_days(&self) -> i64 {
        (self.last - self.first).num_days() + 1
    }
}

impl PeriodArgs {
    /// The periods these arguments name in `tz`, with `now` for the default.
    pub fn resolve(&self, tz: Tz, now: DateTime<Utc>) -> Result<Periods, String> {
        match self {
            PeriodArgs::Month(text) => months_from(parse_month(text)?, tz),
            PeriodArgs::LastMonth => {
                let today = local_date(now, tz);
                let this_month = today.with_day(1).ok_or("no first of this month")?;
                let last_month = this_month
                    .checked_sub_months(Months::new(1))
                    .ok_or("today is at the start of the calendar")?;
                months_from(last_month, tz)
            }
            PeriodArgs::Range { from, to } => {
                let first = parse_day("--from", from)?;
                let last = parse_day("--to", to)?;
                if last < first {
                    return Err(format!("--from {first} is after --to {last}"));
                }
                let days = (last - first).num_days() + 1;
                if days > MAX_DAYS {
                    return Err(format!(
                        "the period covers {days} days; a report covers at most {MAX_DAYS} (ten \
                         years)"
                    ));
                }
                let before_last = first
                    .pred_opt()
                    .ok_or("--from is at the calendar's start")?;
                let before_first = before_last
                    .checked_sub_signed(chrono::Duration::days(days - 1))
                    .ok_or("the period before --from is before the calendar")?;
                Ok(Periods {
                    current: Period::days(first, last, tz)?,
                    previous: Period::days(before_first, before_last, tz)?,
                })
            }
        }
    }
}

fn months_from(first: NaiveDate, tz: Tz) -> Result<Periods, String> {
    let before = first
        .checked_sub_months(Months::new(1))
        .ok_or("the month before is before the calendar")?;
    Ok(Periods {
        current: Period::month(first, tz)?,
        previous: Period::month(before, tz)?,
    })
}

/// The years a report can name: the ledger's instants are far inside them.
const YEARS: std::ops::RangeInclusive<i32> = 2000..=2200;

/// `YYYY-MM`, as the first day of that month.
fn parse_month(text: &str) -> Result<NaiveDate, String> {
    let bad = || {
        format!(
            "--month takes a month as YYYY-MM (e.g. 2026-10), not `{}`",
            crate::printable::printable(text)
        )
    };
    let (year, month) = text.trim().split_once('-').ok_or_else(bad)?;
    if year.len() != 4 || month.len() != 2 {
        return Err(bad());
    }
    let year: i32 = year.parse().map_err(|_| bad())?;
    let month: u32 = month.parse().map_err(|_| bad())?;
    if !YEARS.contains(&year) {
        return Err(format!(
            "--month: the year must be {}–{}",
            YEARS.start(),
            YEARS.end()
        ));
    }
    NaiveDate::from_ymd_opt(year, month, 1)
        .ok_or_else(|| format!("--month: there is no month {month} (months are 01 to 12)"))
}

fn parse_day(flag: &str, text: &str) -> Result<NaiveDate, String> {
    let day = crate::time::parse_date(text).map_err(|e| format!("{flag}: {e}"))?;
    if !YEARS.contains(&day.year()) {
        return Err(format!(
            "{flag}: the year must be {}–{}",
            YEARS.start(),
            YEARS.end()
        ));
    }
    Ok(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokyo() -> Tz {
        chrono_tz::Asia::Tokyo
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_month_runs_from_the_clinics_midnight_to_its_next_midnight() {
        let periods = PeriodArgs::Month("2026-10".into())
            .resolve(tokyo(), utc("2026-11-26T00:00:00Z"))
            .unwrap();
        assert_eq!(periods.current.from, utc("2026-09-30T15:00:00Z"));
        assert_eq!(periods.current.to, utc("2026-10-31T15:00:00Z"));
        assert_eq!(periods.current.len_days(), 31);
        assert_eq!(periods.previous.from, utc("2026-08-31T15:00:00Z"));
        assert_eq!(periods.previous.to, utc("2026-09-30T15:00:00Z"));
    }

    #[test]
    fn the_default_is_the_last_full_month_on_the_clinics_calendar() {
        // 2026-11-30T16:00Z is already December 1st in Tokyo: the last full month is November.
        let periods = PeriodArgs::LastMonth
            .resolve(tokyo(), utc("2026-11-30T16:00:00Z"))
            .unwrap();
        assert_eq!(periods.current.first.to_string(), "2026-11-01");
        assert_eq!(periods.current.last.to_string(), "2026-11-30");
        let periods = PeriodArgs::LastMonth
            .resolve(tokyo(), utc("2026-01-10T00:00:00Z"))
            .unwrap();
        assert_eq!(periods.current.first.to_string(), "2025-12-01");
        assert_eq!(periods.previous.first.to_string(), "2025-11-01");
    }

    #[test]
    fn a_range_compares_with_as_many_days_before_it() {
        let range = PeriodArgs::Range {
            from: "2026-10-10".into(),
            to: "2026-10-16".into(),
        };
        let periods = range.resolve(tokyo(), utc("2026-11-26T00:00:00Z")).unwrap();
        assert_eq!(periods.current.len_days(), 7);
        assert_eq!(periods.previous.first.to_string(), "2026-10-03");
        assert_eq!(periods.previous.last.to_string(), "2026-10-09");
        assert_eq!(periods.previous.to, periods.current.from);
    }

    #[test]
    fn impossible_periods_are_refused_with_a_reason() {
        let now = utc("2026-11-26T00:00:00Z");
        let month = |m: &str| {
            PeriodArgs::Month(m.into())
                .resolve(tokyo(), now)
                .unwrap_err()
        };
        assert!(
            month("2026-13").contains("no month 13"),
            "{}",
            month("2026-13")
        );
        assert!(month("2026-00").contains("no month 0"));
        assert!(month("26-10").contains("YYYY-MM"));
        assert!(month("9999-01").contains("year"));
        let range = |from: &str, to: &str| {
            PeriodArgs::Range {
                from: from.into(),
                to: to.into(),
            }
            .resolve(tokyo(), now)
            .unwrap_err()
        };
        assert!(range("2026-10-31", "2026-10-01").contains("after --to"));
        assert!(range("2000-01-01", "2099-12-31").contains("at most 3660"));
        assert!(range("nonsense", "2026-10-01").starts_with("--from"));
    }
}
