//! LINE's insight calendar. Statistics are asked for by day in Japan time (UTC+9, whatever the
//! clinic's zone), in ranges of at most 30 days, and a unit's figures keep changing for 14 days
//! after its messages are sent. steprule always asks in the same half-months (the 1st to the
//! 15th, the 16th to the month's end): each answer is cached once per unit and half-month, a
//! calendar month is exactly two answers, and a half-month fetched more than 14 days after its
//! last day never changes again.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};

/// Days after a send during which LINE's figures for it still change.
pub const SETTLE_DAYS: i64 = 14;

/// Requests per hour LINE allows on each insight endpoint.
pub const HOURLY_REQUESTS: u32 = 60;

/// Japan's offset from UTC; Japan keeps no daylight saving time.
const JAPAN_HOURS: i64 = 9;

/// The day `at` falls on in Japan time.
pub fn line_day(at: DateTime<Utc>) -> NaiveDate {
    (at.naive_utc() + Duration::hours(JAPAN_HOURS)).date()
}

/// The instant a day begins in Japan time.
pub fn line_midnight(day: NaiveDate) -> DateTime<Utc> {
    (day.and_time(NaiveTime::MIN) - Duration::hours(JAPAN_HOURS)).and_utc()
}

/// One half of a month on LINE's calendar: the 1st to the 15th, or the 16th to the month's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HalfMonth {
    pub first: NaiveDate,
    /// The last day, included.
    pub last: NaiveDate,
}

impl HalfMonth {
    /// The half-month `day` is in.
    pub fn of(day: NaiveDate) -> HalfMonth {
        let month_first = day.with_day(1).unwrap_or(day);
        let sixteenth = month_first + Duration::days(15);
        if day < sixteenth {
            HalfMonth {
                first: month_first,
                last: month_first + Duration::days(14),
            }
        } else {
            let next_month = month_first
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(NaiveDate::MAX);
            HalfMonth {
                first: sixteenth,
                last: next_month.pred_opt().unwrap_or(next_month),
            }
        }
    }

    /// The half-month after this one, if the calendar has one.
    pub fn next(self) -> Option<HalfMonth> {
        self.last.succ_opt().map(HalfMonth::of)
    }

    /// Whether an answer for this half-month fetched on `day` (Japan time) is final: its last
    /// day is more than [`SETTLE_DAYS`] before.
    pub fn settled_on(self, day: NaiveDate) -> bool {
        (day - self.last).num_days() > SETTLE_DAYS
    }
}

/// `yyyyMMdd`, as LINE's `from`, `to` and `date` take days.
pub fn query_day(day: NaiveDate) -> String {
    day.format("%Y%m%d").to_string()
}

/// Every half-month that overlaps `first..=last`, oldest first.
pub fn half_months(first: NaiveDate, last: NaiveDate) -> Vec<HalfMonth> {
    let mut found = Vec::new();
    let mut half = Some(HalfMonth::of(first));
    while let Some(this) = half.filter(|h| h.first <= last) {
        found.push(this);
        half = this.next();
    }
    found
}

/// The half-months that cover exactly `first..=last`, or `None` when the days start or end
/// inside one (LINE's figures for a half-month cannot be cut).
pub fn tiling(first: NaiveDate, last: NaiveDate) -> Option<Vec<HalfMonth>> {
    let tiles = HalfMonth::of(first).first == first && HalfMonth::of(last).last == last;
    (tiles && first <= last).then(|| half_months(first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn a_month_is_two_halves_and_february_ends_on_its_last_day() {
        let october = half_months(day("2026-10-01"), day("2026-10-31"));
        assert_eq!(
            october,
            [
                HalfMonth {
                    first: day("2026-10-01"),
                    last: day("2026-10-15")
                },
                HalfMonth {
                    first: day("2026-10-16"),
                    last: day("2026-10-31")
                }
            ]
        );
        assert_eq!(HalfMonth::of(day("2028-02-29")).last, day("2028-02-29"));
        assert_eq!(HalfMonth::of(day("2027-02-16")).last, day("2027-02-28"));
        assert_eq!(
            HalfMonth::of(day("2026-12-31")).next().unwrap().first,
            day("2027-01-01")
        );
        // Every half-month fits one request (LINE: the end at most 30 days after the start).
        for half in half_months(day("2026-01-01"), day("2028-12-31")) {
            let days = (half.last - half.first).num_days() + 1;
            assert!((13..=16).contains(&days), "{half:?}");
        }
    }

    #[test]
    fn only_periods_of_whole_half_months_are_tiled() {
        assert_eq!(
            tiling(day("2026-10-01"), day("2026-10-31")).unwrap().len(),
            2
        );
        assert_eq!(
            tiling(day("2026-10-16"), day("2026-12-15")).unwrap().len(),
            4
        );
        assert_eq!(
            tiling(day("2026-10-01"), day("2026-10-15")).unwrap().len(),
            1
        );
        assert_eq!(tiling(day("2026-10-02"), day("2026-10-31")), None);
        assert_eq!(tiling(day("2026-10-01"), day("2026-10-30")), None);
        assert_eq!(tiling(day("2026-10-10"), day("2026-10-16")), None);
    }

    #[test]
    fn a_half_month_settles_fifteen_days_after_its_end() {
        let half = HalfMonth::of(day("2026-10-03"));
        assert!(!half.settled_on(day("2026-10-29")));
        assert!(half.settled_on(day("2026-10-30")));
        assert!(!half.settled_on(day("2026-10-10")));
    }

    #[test]
    fn days_are_counted_in_japan_time() {
        let at = |t: &str| t.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(line_day(at("2026-10-31T14:59:59Z")), day("2026-10-31"));
        assert_eq!(line_day(at("2026-10-31T15:00:00Z")), day("2026-11-01"));
        assert_eq!(line_midnight(day("2026-11-01")), at("2026-10-31T15:00:00Z"));
        assert_eq!(query_day(day("2026-03-01")), "20260301");
    }
}
