//! The clinic's clock, at ground level (it imports no pipeline stage): reading instants and
//! dates as exports and `--now` write them, wall-clock time ↔ UTC in the clinic's zone, calendar
//! steps, and formatting. Records, timings, conditions, `explain` and templates all call this
//! module, so a time written once means the same instant everywhere.
//!
//! One rule for the hours daylight saving skips or repeats (see [`local_to_utc`]): a time in a
//! gap is the first instant after the gap, a time in an overlap is the earlier instant.

mod calendar;
mod civil;
mod fixed_forms;
mod offsets;
mod parse;
mod rfc3339;
mod seconds;
mod zone;

/// Instants written and shown as Tokyo's wall clock, for the tests of every stage that times
/// things (`2026-11-30 10:00`).
#[cfg(test)]
pub(crate) mod tokyo {
    use chrono::{DateTime, NaiveDateTime, Utc};
    use chrono_tz::Asia::Tokyo;

    pub(crate) fn tokyo(text: &str) -> DateTime<Utc> {
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        super::local_to_utc(naive, Tokyo)
    }

    pub(crate) fn show(instant: DateTime<Utc>) -> String {
        instant
            .with_timezone(&Tokyo)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }
}

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Datelike, NaiveTime, TimeZone};

pub use calendar::{
    at_time, calendar_end, calendar_start, next_day, next_week, shift, wall_minute, Offset,
};
pub use parse::{date, instant, parse_date, parse_instant, DateProblem, Expected};
pub use rfc3339::{push_rfc3339, utc_stamp};
pub use seconds::{monday_of, UnixTime, WallMinuteOf, ZoneClock};
pub use zone::{local_date, local_to_utc, wall_clock};

/// A time of day on the clinic's wall clock (`18:00`), as `at` and `quiet` write it. Not
/// validated when parsed: `25:00` parses, and check rejects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClockTime {
    pub hour: u32,
    pub minute: u32,
}

impl ClockTime {
    pub const MIDNIGHT: ClockTime = ClockTime { hour: 0, minute: 0 };

    pub fn is_valid(self) -> bool {
        self.hour < 24 && self.minute < 60
    }

    pub fn minutes_since_midnight(self) -> u32 {
        self.hour * 60 + self.minute
    }

    /// Seconds from midnight to the time as [`ClockTime::naive`] takes it.
    pub fn seconds_since_midnight(self) -> i64 {
        i64::from(self.hour.min(23)) * 3600 + i64::from(self.minute.min(59)) * 60
    }

    /// The time as chrono's; for a checked time (see [`ClockTime::is_valid`]). An unchecked
    /// one past the day's end is taken as its last minute.
    pub fn naive(self) -> NaiveTime {
        NaiveTime::from_hms_opt(self.hour.min(23), self.minute.min(59), 0).unwrap_or(NaiveTime::MIN)
    }
}

impl std::fmt::Display for ClockTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// The weekday as Japanese calendars and appointment cards print it: `月` for Monday … `日`.
pub fn weekday_ja(day: &impl Datelike) -> &'static str {
    const DAYS: [&str; 7] = ["月", "火", "水", "木", "金", "土", "日"];
    DAYS[day.weekday().num_days_from_monday() as usize]
}

/// A strftime format that chrono cannot read (`%Q`), quoted back to whoever wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFormat(pub String);

impl std::fmt::Display for BadFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` is not a valid date format (use %Y %m %d %H %M …)",
            self.0
        )
    }
}

impl std::error::Error for BadFormat {}

/// `instant` on the clinic's wall clock, in strftime `format` (`%m月%d日 %H:%M`). The format is
/// checked first, so a bad one is an error rather than a panic inside chrono's `Display`.
pub fn format<Tz: TimeZone>(instant: &DateTime<Tz>, format: &str) -> Result<String, BadFormat>
where
    Tz::Offset: std::fmt::Display,
{
    FORMATS.with_borrow_mut(|formats| {
        let items = formats.items(format)?;
        Ok(instant.format_with_items(items.iter()).to_string())
    })
}

/// Formats read, per thread: a template's `date` filter formats every send's dates with the
/// same few formats, and reading one into chrono's items was ~3% of a first run's rendering.
struct Formats {
    read: Vec<(Box<str>, Vec<Item<'static>>)>,
    /// The slot the last format that did not fit was read into.
    scratch: Vec<Item<'static>>,
}

/// Formats kept per thread; a template with more reads the rest each time (bounded memory).
const FORMATS_KEPT: usize = 32;
/// Longest format kept: a longer one is read each time.
const LONGEST_FORMAT_KEPT: usize = 256;

thread_local! {
    static FORMATS: std::cell::RefCell<Formats> = const {
        std::cell::RefCell::new(Formats { read: Vec::new(), scratch: Vec::new() })
    };
}

impl Formats {
    /// `format`'s items, read once per thread (within the bounds above), or why it is bad.
    fn items(&mut self, format: &str) -> Result<&[Item<'static>], BadFormat> {
        if let Some(at) = self.read.iter().position(|(kept, _)| **kept == *format) {
            return Ok(&self.read[at].1);
        }
        let items = StrftimeItems::new(format)
            .parse_to_owned()
            .map_err(|_| BadFormat(format.to_owned()))?;
        if self.read.len() < FORMATS_KEPT && format.len() <= LONGEST_FORMAT_KEPT {
            self.read.push((format.into(), items));
            return Ok(&self.read[self.read.len() - 1].1);
        }
        self.scratch = items;
        Ok(&self.scratch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, Utc};
    use chrono_tz::{America::New_York, Asia::Tokyo};

    #[test]
    fn weekdays_in_japanese() {
        // 2026-11-23 is a Monday.
        let monday = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let week: Vec<&str> = monday
            .iter_days()
            .take(7)
            .map(|day| weekday_ja(&day))
            .collect();
        assert_eq!(week, ["月", "火", "水", "木", "金", "土", "日"]);
    }

    #[test]
    fn weekday_is_the_clinic_day_not_the_utc_day() {
        let instant = parse_instant("2026-11-25T23:30:00Z", Tokyo).unwrap();
        assert_eq!(weekday_ja(&instant), "水");
        assert_eq!(weekday_ja(&instant.with_timezone(&Tokyo)), "木");
    }

    #[test]
    fn format_is_on_the_wall_clock() {
        let instant = parse_instant("2026/03/08 02:30", New_York).unwrap();
        let local = instant.with_timezone(&New_York);
        assert_eq!(
            format(&local, "%Y-%m-%d %H:%M %Z").as_deref(),
            Ok("2026-03-08 03:00 EDT")
        );
        assert_eq!(
            format(&instant.with_timezone(&Utc), "%H:%M").as_deref(),
            Ok("07:00")
        );
    }

    #[test]
    fn bad_format_is_an_error_that_quotes_it() {
        let instant = parse_instant("2026-11-20 10:00", Tokyo).unwrap();
        let err = format(&instant, "%Y %Q").unwrap_err();
        assert_eq!(err, BadFormat("%Y %Q".to_owned()));
        assert!(err
            .to_string()
            .starts_with("`%Y %Q` is not a valid date format"));
    }

    #[test]
    fn a_format_read_before_formats_the_same_and_a_bad_one_stays_bad() {
        let instant = parse_instant("2026-11-20 10:05", Tokyo)
            .unwrap()
            .with_timezone(&Tokyo);
        let japanese = "%Y年%-m月%-d日 %H:%M";
        for _ in 0..3 {
            assert_eq!(
                format(&instant, japanese).as_deref(),
                Ok("2026年11月20日 10:05")
            );
            assert!(format(&instant, "%Y %Q").is_err());
        }
        // Past the formats kept, and past the longest kept: each still formats as it reads.
        for minutes in 0..(FORMATS_KEPT + 8) {
            let format_text = format!("%H:%M +{minutes}");
            let expected = format!("10:05 +{minutes}");
            assert_eq!(format(&instant, &format_text), Ok(expected.clone()));
            assert_eq!(format(&instant, &format_text), Ok(expected));
        }
        let long = "%H".repeat(LONGEST_FORMAT_KEPT);
        assert_eq!(
            format(&instant, &long),
            Ok("10".repeat(LONGEST_FORMAT_KEPT))
        );
        assert_eq!(format(&instant, "%M"), Ok("05".to_owned()));
        assert_eq!(
            format(&instant, &long),
            Ok("10".repeat(LONGEST_FORMAT_KEPT))
        );
    }
}
