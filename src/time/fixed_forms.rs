//! The export's own fixed forms read without chrono's format parser: `2026-11-20`,
//! `2026-11-20 10:00`, `2026-11-20T10:00`, `2026-11-20 10:00:00` and the same with `/`. Every
//! date cell of a million-row export is one of these, and chrono tries up to eight format
//! strings per cell (parsing each format string again) before one fits; this reads the digits
//! at their fixed places. Anything else, a fraction of a second included, returns `None` and
//! goes to the formats in `parse.rs`, which accept everything accepted here with the same result
//! (tested below against them).

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

/// A bare date in the fixed form, `YYYY-MM-DD` or `YYYY/MM/DD`.
pub(super) fn date(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 {
        return None;
    }
    day(bytes)
}

/// A wall-clock date-time in a fixed form: the date, then ` ` or `T` (`-` dates only, as the
/// formats have it), `HH:MM` and optionally `:SS`.
pub(super) fn wall_clock(text: &str) -> Option<NaiveDateTime> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 && bytes.len() != 19 {
        return None;
    }
    let separator_fits = matches!((bytes[4], bytes[10]), (b'-', b' ' | b'T') | (b'/', b' '));
    if !separator_fits || bytes[13] != b':' {
        return None;
    }
    let hour = two_digits(bytes, 11)?;
    let minute = two_digits(bytes, 14)?;
    let second = match bytes.len() {
        19 if bytes[16] == b':' => two_digits(bytes, 17)?,
        19 => return None,
        _ => 0,
    };
    // A leap second (`:60`) is left to chrono, which reads it its own way.
    if second > 59 {
        return None;
    }
    let time = NaiveTime::from_hms_opt(hour, minute, second)?;
    Some(day(&bytes[..10])?.and_time(time))
}

fn day(bytes: &[u8]) -> Option<NaiveDate> {
    let separator = bytes[4];
    if !matches!(separator, b'-' | b'/') || bytes[7] != separator {
        return None;
    }
    let year = two_digits(bytes, 0)? * 100 + two_digits(bytes, 2)?;
    let month = two_digits(bytes, 5)?;
    let day = two_digits(bytes, 8)?;
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)
}

fn two_digits(bytes: &[u8], at: usize) -> Option<u32> {
    let (high, low) = (bytes.get(at)?, bytes.get(at + 1)?);
    if high.is_ascii_digit() && low.is_ascii_digit() {
        Some(u32::from(high - b'0') * 10 + u32::from(low - b'0'))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// chrono's reading of the same text with the forms `parse.rs` tries.
    fn by_chrono_wall_clock(text: &str) -> Option<NaiveDateTime> {
        [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%d %H:%M",
            "%Y/%m/%d %H:%M:%S%.f",
            "%Y/%m/%d %H:%M",
        ]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    }

    fn by_chrono_date(text: &str) -> Option<NaiveDate> {
        ["%Y-%m-%d", "%Y/%m/%d"]
            .iter()
            .find_map(|format| NaiveDate::parse_from_str(text, format).ok())
    }

    #[test]
    fn the_export_forms_read_as_chrono_reads_them() {
        for text in [
            "2026-11-20 10:00",
            "2026-11-20T10:00",
            "2026/11/20 10:00",
            "2026-11-20 10:00:59",
            "2026-11-20T23:59:00",
            "2026/02/28 00:00:00",
            "2024-02-29 12:30",
            "1000-01-01 00:00",
            "9999-12-31 23:59",
            "0999-01-01 00:00",
        ] {
            let fast = wall_clock(text);
            assert!(fast.is_some(), "{text}");
            assert_eq!(fast, by_chrono_wall_clock(text), "{text}");
        }
        for text in ["2026-11-20", "2026/11/20", "2024-02-29", "0001-01-01"] {
            assert!(date(text).is_some(), "{text}");
            assert_eq!(date(text), by_chrono_date(text), "{text}");
        }
    }

    #[test]
    fn anything_else_is_left_to_chrono() {
        // Either not read here at all, or read exactly as chrono reads it: never a different
        // answer. Invalid days and times, leap seconds, fractions, mixed separators, one-digit
        // parts, signs and letters.
        for text in [
            "2026-02-29 10:00",
            "2026-13-01 10:00",
            "2026-11-31 10:00",
            "2026-11-20 24:00",
            "2026-11-20 10:60",
            "2026-11-20 10:00:60",
            "2026-11-20 10:00:00.5",
            "2026-11-20T10:00:00.000",
            "2026/11-20 10:00",
            "2026-11/20 10:00",
            "2026/11/20T10:00",
            "2026-1-20 10:00",
            "2026-11-20 1:00",
            "+026-11-20 10:00",
            "2026-11-20 10:0a",
            "2026-11-20x10:00",
            "2026-11-20 10-00",
            "2026-11-20 10:00:0",
            "2026-11-20 10:00x00",
            "２０２６-11-20 10:00",
        ] {
            if let Some(fast) = wall_clock(text) {
                assert_eq!(Some(fast), by_chrono_wall_clock(text), "{text}");
            }
        }
        for text in [
            "2026-02-30",
            "2026-1-2",
            "2026-11/20",
            "20261120",
            "2026-11-2x",
            "-026-11-20",
        ] {
            assert_eq!(date(text), None, "{text}");
        }
    }

    #[test]
    fn every_minute_of_a_leap_year_and_every_day_of_a_century_agree_with_chrono() {
        let mut day = NaiveDate::from_ymd_opt(1950, 1, 1).unwrap();
        let end = NaiveDate::from_ymd_opt(2050, 1, 1).unwrap();
        while day < end {
            for text in [
                day.format("%Y-%m-%d").to_string(),
                day.format("%Y/%m/%d").to_string(),
            ] {
                assert_eq!(date(&text), by_chrono_date(&text), "{text}");
            }
            day = day.succ_opt().unwrap();
        }
        let day = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        for minute in 0..24 * 60 {
            let at = day
                .and_hms_opt(minute / 60, minute % 60, minute % 60)
                .unwrap();
            for format in ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M:%S"] {
                let text = at.format(format).to_string();
                assert_eq!(wall_clock(&text), by_chrono_wall_clock(&text), "{text}");
            }
        }
    }
}
