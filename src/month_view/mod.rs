//! `plan --format html`: the window's sends per day and step, for a month at a glance. Only
//! counts are kept — one number per (step, day), filled in while the export streams past — so
//! a million patients cost as little as ten; the window is at most [`MAX_DAYS`] days, so the
//! table is bounded too. [`html`] lays the counts out as a page.

pub mod html;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::eval::Window;

/// The longest window the calendar shows, in days: a quarter (three months of 31 days). A
/// window that does not start at midnight touches one more calendar day.
pub const MAX_DAYS: i64 = 93;

/// The window is longer than the calendar shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the calendar shows at most {MAX_DAYS} days and this window is {days} days long: ask \
     for `--days {MAX_DAYS}` or fewer, or make one calendar per quarter with --from and --to"
)]
pub struct WindowTooLong {
    /// The window's length in days, rounded up.
    pub days: i64,
}

/// Sends per step and day of the clinic's calendar.
#[derive(Debug, Clone)]
pub struct SendCalendar {
    timezone: Tz,
    first: NaiveDate,
    days: usize,
    steps: usize,
    /// `counts[step * days + day]`.
    counts: Vec<u64>,
    /// Sends to patients who blocked the account: not pushed, so not in the counts.
    blocked: u64,
    /// Patients with at least one send in the window.
    patients: u64,
}

impl SendCalendar {
    /// An empty calendar for `window`'s days (in the clinic's time zone) and `steps` steps.
    pub fn new(window: Window, timezone: Tz, steps: usize) -> Result<SendCalendar, WindowTooLong> {
        let length = window.to - window.from;
        if length > chrono::Duration::days(MAX_DAYS) {
            let days = (length.num_seconds() + 86_399) / 86_400;
            return Err(WindowTooLong { days });
        }
        let first = window.from.with_timezone(&timezone).date_naive();
        let last = (window.to - chrono::Duration::seconds(1))
            .with_timezone(&timezone)
            .date_naive();
        // At most MAX_DAYS + 2 calendar days (a start after midnight, a change of offset).
        let span = (last - first).num_days().clamp(0, MAX_DAYS + 1);
        let days = usize::try_from(span).unwrap_or(0) + 1;
        Ok(SendCalendar {
            timezone,
            first,
            days,
            steps,
            counts: vec![0; steps * days],
            blocked: 0,
            patients: 0,
        })
    }

    /// Counts one patient's sends: `(instant, step index)`; a blocked patient's are counted
    /// apart. A send outside the window's days or of an unknown step is not counted.
    pub fn add_patient(
        &mut self,
        sends: impl IntoIterator<Item = (DateTime<Utc>, usize)>,
        blocked: bool,
    ) {
        let mut any = false;
        for (at, step) in sends {
            any = true;
            if blocked {
                self.blocked += 1;
                continue;
            }
            let day = (at.with_timezone(&self.timezone).date_naive() - self.first).num_days();
            if let (Ok(day), true) = (usize::try_from(day), step < self.steps) {
                if day < self.days {
                    self.counts[step * self.days + day] += 1;
                }
            }
        }
        if any {
            self.patients += 1;
        }
    }

    /// The window's days, first to last.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.first.iter_days().take(self.days)
    }

    #[cfg(test)]
    fn day_count(&self) -> usize {
        self.days
    }

    pub fn count(&self, step: usize, day: usize) -> u64 {
        self.counts
            .get(step * self.days + day)
            .copied()
            .unwrap_or(0)
    }

    #[cfg(test)]
    fn step_total(&self, step: usize) -> u64 {
        (0..self.days).map(|day| self.count(step, day)).sum()
    }

    pub fn day_total(&self, day: usize) -> u64 {
        (0..self.steps).map(|step| self.count(step, day)).sum()
    }

    /// Every counted send (the blocked ones not included).
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn blocked(&self) -> u64 {
        self.blocked
    }

    pub fn patients(&self) -> u64 {
        self.patients
    }

    /// The largest count in one cell, for the heat map's scale.
    pub fn max_cell(&self) -> u64 {
        self.counts.iter().copied().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono_tz::Asia::Tokyo;

    fn at(text: &str) -> DateTime<Utc> {
        let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        Tokyo
            .from_local_datetime(&local)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn window(from: &str, to: &str) -> Window {
        Window {
            now: at(from),
            from: at(from),
            to: at(to),
        }
    }

    #[test]
    fn sends_are_counted_per_step_and_local_day() {
        // 2026-11-25 09:00 to 11-28 09:00 in Tokyo: the days 25, 26, 27 and 28.
        let mut calendar =
            SendCalendar::new(window("2026-11-25 09:00", "2026-11-28 09:00"), Tokyo, 2).unwrap();
        assert_eq!(calendar.day_count(), 4);
        // 00:30 on the 26th in Tokyo is still the 25th in UTC: counted on the 26th.
        calendar.add_patient(
            [(at("2026-11-26 00:30"), 0), (at("2026-11-26 18:00"), 1)],
            false,
        );
        calendar.add_patient([(at("2026-11-26 12:00"), 0)], false);
        calendar.add_patient([(at("2026-11-28 08:59"), 1)], false);
        // Blocked: counted apart, not in the cells.
        calendar.add_patient([(at("2026-11-25 12:00"), 0)], true);
        calendar.add_patient([], false);
        assert_eq!(calendar.count(0, 1), 2);
        assert_eq!(calendar.count(1, 1), 1);
        assert_eq!(calendar.count(1, 3), 1);
        assert_eq!(calendar.count(0, 0), 0);
        assert_eq!(calendar.day_total(1), 3);
        assert_eq!(calendar.step_total(0), 2);
        assert_eq!(calendar.step_total(1), 2);
        assert_eq!(calendar.total(), 4);
        assert_eq!(calendar.blocked(), 1);
        assert_eq!(calendar.patients(), 4);
        assert_eq!(calendar.max_cell(), 2);
    }

    #[test]
    fn a_window_past_a_quarter_is_refused() {
        let ok = window("2026-01-01 00:00", "2026-04-04 00:00");
        assert_eq!(SendCalendar::new(ok, Tokyo, 1).unwrap().day_count(), 93);
        // 93 days from 09:00 touch 94 calendar days.
        let ok = window("2026-01-01 09:00", "2026-04-04 09:00");
        assert_eq!(SendCalendar::new(ok, Tokyo, 1).unwrap().day_count(), 94);
        let long = window("2026-01-01 00:00", "2026-04-04 00:01");
        assert_eq!(
            SendCalendar::new(long, Tokyo, 1).unwrap_err(),
            WindowTooLong { days: 94 }
        );
        let decade = window("2026-01-01 00:00", "2036-01-01 00:00");
        assert!(SendCalendar::new(decade, Tokyo, 1000).is_err());
    }
}
