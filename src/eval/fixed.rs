//! Occurrences of the steps that name their days on the calendar: `on 2026-12-28` and `every
//! year on 06-04`. Each occurrence is the start of its day in the clinic's zone, so `at` moves
//! it within that day and the ledger key stays the day whatever the `at`.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

use super::schedule::Occurrences;
use super::series::Bounds;
use super::MAX_OCCURRENCES;
use crate::time::{local_date, local_to_utc, UnixTime};
use crate::values::MonthDay;

/// The start of `day` in the clinic's zone.
pub(super) fn day_start(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    local_to_utc(day.and_time(NaiveTime::MIN), tz)
}

/// `every year on MM-DD`: that day in each year from the earliest that can still be sendable at
/// `now` (or at the window's start) to the last that can land before the window's end (the
/// step's `bounds` for the window); a year without the day (`02-29`) has no occurrence.
pub(super) fn yearly(
    day: MonthDay,
    (earliest, latest): Bounds,
    tz: Tz,
    mut each: impl FnMut(UnixTime),
) -> Occurrences {
    let (first, last) = (
        local_date(earliest.utc(), tz).year(),
        local_date(latest.utc(), tz).year(),
    );
    let mut through = None;
    for (looked_at, year) in (first..=last).enumerate() {
        if looked_at == MAX_OCCURRENCES as usize {
            return match through {
                Some(last) => Occurrences::Cut { last },
                None => Occurrences::Complete,
            };
        }
        if let Some(date) = day.in_year(year) {
            let nominal = day_start(date, tz);
            each(UnixTime::from(nominal));
            through = Some(nominal);
        }
    }
    Occurrences::Complete
}
