//! Dates and times as clinics write them in their exports: RFC 3339 with an offset, the clinic's
//! wall-clock time (`2026-11-20 10:00`, `2026/11/20 10:00`), or a bare date meaning the start of
//! that day in the clinic.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use super::fixed_forms;
use super::local_to_utc;

/// Wall-clock forms, tried in order. `%.f` also matches no fraction at all.
const DATE_TIME_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y/%m/%d %H:%M",
];

/// RFC 3339 requires seconds; exports often leave them out but keep the offset.
const OFFSET_FORMATS: &[&str] = &["%Y-%m-%dT%H:%M%:z", "%Y-%m-%d %H:%M%:z"];

const DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%Y/%m/%d"];

const EXPECTED_INSTANT: &str =
    "expected e.g. 2026-11-20 10:00, 2026/11/20 10:00, 2026-11-20 or 2026-11-20T10:00:00+09:00";
const EXPECTED_DATE: &str = "expected e.g. 1980-04-01 or 1980/04/01";

/// Four-digit years only: anything else is a typo, and it keeps date arithmetic far from
/// chrono's limits.
const YEARS: std::ops::RangeInclusive<i32> = 1000..=9999;

/// Reads an instant the way a clinic writes it. A time with an offset is taken as is; a
/// wall-clock time or a bare date (= midnight) is read in the clinic's time zone `tz`.
///
/// A wall-clock time in a daylight-saving gap or overlap follows [`local_to_utc`]: 02:30 on the
/// night New York springs forward is 03:00 EDT. The error quotes `text` and says what was
/// expected.
pub fn parse_instant(text: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    instant(text, tz).map_err(|problem| problem.message(Expected::Instant, Some(text.trim())))
}

/// Reads a calendar date such as a birth date (`1980-04-01`, `1980/04/01`). A date-time is
/// accepted too and its time ignored, since some exports write every date with `00:00`.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    date(text).map_err(|problem| problem.message(Expected::Date, Some(text.trim())))
}

/// What was wrong with a date, without the text: a cell of a patient file is not quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateProblem {
    Empty,
    Unreadable,
    YearOutOfRange,
}

/// Which kind of date was expected, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Instant,
    Date,
}

impl DateProblem {
    /// The message, quoting `text` when given (a command-line argument, not a patient's cell).
    pub fn message(self, expected: Expected, text: Option<&str>) -> String {
        let (what, examples) = match expected {
            Expected::Instant => ("a date or date-time", EXPECTED_INSTANT),
            Expected::Date => ("a date", EXPECTED_DATE),
        };
        match (self, text) {
            (DateProblem::Empty, _) => format!("no date given ({examples})"),
            (DateProblem::Unreadable, Some(text)) => format!("`{text}` is not {what} ({examples})"),
            (DateProblem::Unreadable, None) => format!("not {what} ({examples})"),
            (DateProblem::YearOutOfRange, Some(text)) => {
                format!("`{text}` has an out-of-range year")
            }
            (DateProblem::YearOutOfRange, None) => {
                "the year is out of range (a four-digit year is expected)".to_owned()
            }
        }
    }
}

/// [`parse_instant`] with the problem as data.
pub fn instant(text: &str, tz: Tz) -> Result<DateTime<Utc>, DateProblem> {
    let text = trim_date(text);
    if text.is_empty() {
        return Err(DateProblem::Empty);
    }
    // The export's fixed forms carry no offset: read them before the forms that need one.
    let fixed = fixed_forms::wall_clock(text)
        .or_else(|| fixed_forms::date(text).map(|date| date.and_time(NaiveTime::MIN)));
    if let Some(naive) = fixed {
        check_year(naive.year())?;
        return Ok(local_to_utc(naive, tz));
    }
    if let Some(instant) = parse_with_offset(text) {
        return check_year(instant.year()).map(|()| instant.with_timezone(&Utc));
    }
    let naive = parse_wall_clock(text)
        .or_else(|| parse_naive_date(text).map(|date| date.and_time(NaiveTime::MIN)))
        .ok_or(DateProblem::Unreadable)?;
    check_year(naive.year())?;
    Ok(local_to_utc(naive, tz))
}

/// [`parse_date`] with the problem as data.
pub fn date(text: &str) -> Result<NaiveDate, DateProblem> {
    let text = trim_date(text);
    let date = parse_naive_date(text)
        .or_else(|| parse_wall_clock(text).map(|naive| naive.date()))
        .ok_or(DateProblem::Unreadable)?;
    check_year(date.year())?;
    Ok(date)
}

/// `text` trimmed as [`str::trim`] trims it; a date that starts and ends with a digit (every
/// form read here) is returned as it is, without a look at each end's character.
#[inline]
fn trim_date(text: &str) -> &str {
    match text.as_bytes() {
        [first, .., last] if first.is_ascii_digit() && last.is_ascii_digit() => text,
        _ => text.trim(),
    }
}

fn parse_with_offset(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text).ok().or_else(|| {
        OFFSET_FORMATS
            .iter()
            .find_map(|format| DateTime::parse_from_str(text, format).ok())
    })
}

fn parse_wall_clock(text: &str) -> Option<NaiveDateTime> {
    if let Some(fixed) = fixed_forms::wall_clock(text) {
        return Some(fixed);
    }
    DATE_TIME_FORMATS
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
}

fn parse_naive_date(text: &str) -> Option<NaiveDate> {
    if let Some(fixed) = fixed_forms::date(text) {
        return Some(fixed);
    }
    DATE_FORMATS
        .iter()
        .find_map(|format| NaiveDate::parse_from_str(text, format).ok())
}

fn check_year(year: i32) -> Result<(), DateProblem> {
    if YEARS.contains(&year) {
        Ok(())
    } else {
        Err(DateProblem::YearOutOfRange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    const TOKYO: Tz = chrono_tz::Asia::Tokyo;
    const NEW_YORK: Tz = chrono_tz::America::New_York;

    #[test]
    fn rfc3339_keeps_its_own_offset() {
        let expected = utc("2026-11-20T01:00:00Z");
        assert_eq!(
            parse_instant("2026-11-20T10:00:00+09:00", NEW_YORK),
            Ok(expected)
        );
        assert_eq!(parse_instant("2026-11-20T01:00:00Z", TOKYO), Ok(expected));
        assert_eq!(
            parse_instant("2026-11-20T10:00+09:00", NEW_YORK),
            Ok(expected)
        );
    }

    #[test]
    fn wall_clock_time_is_in_the_clinic_zone() {
        let expected = utc("2026-11-20T01:00:00Z");
        for text in [
            "2026-11-20 10:00",
            "2026-11-20T10:00",
            "2026-11-20 10:00:00",
            "2026-11-20T10:00:00.000",
            " 2026-11-20 10:00 ",
        ] {
            assert_eq!(parse_instant(text, TOKYO), Ok(expected), "{text}");
        }
    }

    #[test]
    fn slash_form_from_japanese_exports() {
        let expected = utc("2026-11-20T01:30:00Z");
        assert_eq!(parse_instant("2026/11/20 10:30", TOKYO), Ok(expected));
        assert_eq!(parse_instant("2026/11/20 10:30:00", TOKYO), Ok(expected));
    }

    #[test]
    fn date_only_is_local_midnight() {
        let expected = utc("2026-11-19T15:00:00Z");
        assert_eq!(parse_instant("2026-11-20", TOKYO), Ok(expected));
        assert_eq!(parse_instant("2026/11/20", TOKYO), Ok(expected));
    }

    #[test]
    fn time_skipped_by_dst_is_the_moment_clocks_jump() {
        // 2026-03-08 02:00 EST → 03:00 EDT; 02:30 never happens on the wall.
        assert_eq!(
            parse_instant("2026-03-08 02:30", NEW_YORK),
            Ok(utc("2026-03-08T07:00:00Z"))
        );
        assert_eq!(
            parse_instant("2026-03-08 03:00", NEW_YORK),
            Ok(utc("2026-03-08T07:00:00Z"))
        );
        assert_eq!(
            parse_instant("2026-03-08 01:59", NEW_YORK),
            Ok(utc("2026-03-08T06:59:00Z"))
        );
    }

    #[test]
    fn time_repeated_by_dst_is_the_first_one() {
        // 2026-11-01 02:00 EDT → 01:00 EST; 01:30 happens twice, first in EDT.
        assert_eq!(
            parse_instant("2026-11-01 01:30", NEW_YORK),
            Ok(utc("2026-11-01T05:30:00Z"))
        );
    }

    #[test]
    fn errors_say_what_was_expected() {
        let err = parse_instant("20.11.2026", TOKYO).unwrap_err();
        assert!(err.contains("`20.11.2026`"), "{err}");
        assert!(err.contains("2026-11-20 10:00"), "{err}");
        assert!(parse_instant("2026-13-01", TOKYO).is_err());
        assert!(parse_instant("2026-11-20 25:00", TOKYO).is_err());
        assert!(parse_instant("", TOKYO).is_err());
        assert!(parse_instant("12026-11-20", TOKYO).is_err());
    }

    #[test]
    fn problems_can_be_told_without_the_text() {
        let unquoted = |problem: DateProblem| problem.message(Expected::Instant, None);
        assert_eq!(instant("2026-11-31", TOKYO), Err(DateProblem::Unreadable));
        assert_eq!(instant(" ", TOKYO), Err(DateProblem::Empty));
        assert_eq!(
            instant("0999-01-01", TOKYO),
            Err(DateProblem::YearOutOfRange)
        );
        assert_eq!(date("1980-02-30"), Err(DateProblem::Unreadable));
        assert!(unquoted(DateProblem::Unreadable).starts_with("not a date or date-time (expected"));
        assert!(!unquoted(DateProblem::YearOutOfRange).contains('`'));
        assert!(parse_instant("0999-01-01", TOKYO)
            .unwrap_err()
            .contains("`0999-01-01`"));
    }

    #[test]
    fn birth_dates() {
        let expected = NaiveDate::from_ymd_opt(1980, 4, 1).unwrap();
        assert_eq!(parse_date("1980-04-01"), Ok(expected));
        assert_eq!(parse_date("1980/4/1"), Ok(expected));
        assert_eq!(parse_date("1980/04/01 00:00"), Ok(expected));
        assert!(parse_date("S55.4.1").unwrap_err().contains("`S55.4.1`"));
    }

    #[test]
    fn dates_are_trimmed_as_str_trim_trims_them() {
        for text in [
            "",
            "1",
            " 1",
            "1 ",
            "12",
            "2026-11-20",
            "\u{3000}2026-11-20\u{3000}",
            "a1",
            "1a",
        ] {
            assert_eq!(trim_date(text), text.trim(), "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,30}", digits in "[0-9 :/T+-]{0,25}") {
            let _ = parse_instant(&text, NEW_YORK);
            let _ = parse_instant(&digits, NEW_YORK);
            let _ = parse_date(&digits);
        }
    }
}
