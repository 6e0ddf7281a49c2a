//! Dates as Japanese reservation systems and Excel write them, besides the ISO forms
//! [`crate::time`] reads: `2026年11月30日`, the era forms `R8.11.30` and `令和8年11月30日`
//! (`令和元年` is year 1), with a weekday (`2026年11月30日(月)`) and a time (`14:00`, `14時30分`)
//! where they appear. Full-width digits are read as digits.
//!
//! One left-to-right pass over the cell, never going back: a cell of any length is read in time
//! proportional to it, and numbers saturate instead of overflowing.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use crate::time::DateProblem;

/// The eras a living patient's dates fall in: (letter, name, first Gregorian year, last era
/// year). Reiwa is open: its last year is the last four-digit year.
const ERAS: &[(char, &str, i32, u32)] = &[
    ('M', "明治", 1868, 45),
    ('T', "大正", 1912, 15),
    ('S', "昭和", 1926, 64),
    ('H', "平成", 1989, 31),
    ('R', "令和", 2019, 9999 - 2018),
];

/// Years a date may have: as [`crate::time`] has it, four digits.
const YEARS: std::ops::RangeInclusive<u32> = 1000..=9999;

/// A date and, when the cell has one, a time of day.
pub(super) type Stamp = (NaiveDate, Option<NaiveTime>);

/// The date (and time) of a cell in one of the Japanese forms; `Ok(None)` when the cell is not
/// in any of them (the caller's own message then applies), an error when it is but names no
/// day of the calendar (`2月30日`, `R99999.1.1`).
pub(super) fn parse(text: &str) -> Result<Option<Stamp>, DateProblem> {
    let mut cursor = Cursor::new(text.trim());
    let year = match cursor.era() {
        Some((first, last)) => {
            let era_year = if cursor.eat('元') {
                1
            } else {
                match cursor.number() {
                    Some(year) => year,
                    None => return Ok(None),
                }
            };
            if era_year == 0 || era_year > last {
                return Err(DateProblem::YearOutOfRange);
            }
            // Both fit in i32: era_year is at most 7981.
            first + era_year as i32 - 1
        }
        None => {
            let Some(year) = cursor.number() else {
                return Ok(None);
            };
            if !cursor.peek_is('年') {
                return Ok(None);
            }
            if !YEARS.contains(&year) {
                return Err(DateProblem::YearOutOfRange);
            }
            year as i32
        }
    };
    let Some((month, day)) = cursor.month_and_day() else {
        return Ok(None);
    };
    cursor.weekday();
    let time = match cursor.time() {
        Some(time) => time,
        None => return Ok(None),
    };
    if !cursor.at_end() {
        return Ok(None);
    }
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or(DateProblem::Unreadable)?;
    match time {
        Clock::None => Ok(Some((date, None))),
        Clock::At(hour, minute, second) => NaiveTime::from_hms_opt(hour, minute, second)
            .map(|time| Some((date, Some(time))))
            .ok_or(DateProblem::Unreadable),
    }
}

/// [`parse`] as an instant on the clinic's wall clock (midnight without a time).
pub(super) fn parse_wall_clock(text: &str) -> Result<Option<NaiveDateTime>, DateProblem> {
    Ok(parse(text)?.map(|(date, time)| date.and_time(time.unwrap_or(NaiveTime::MIN))))
}

/// What follows the date: nothing, or a time of day (not yet checked).
enum Clock {
    None,
    At(u32, u32, u32),
}

struct Cursor<'t> {
    rest: &'t str,
}

impl<'t> Cursor<'t> {
    fn new(text: &'t str) -> Self {
        Cursor { rest: text }
    }

    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn peek_is(&self, wanted: char) -> bool {
        self.peek() == Some(wanted)
    }

    fn eat(&mut self, wanted: char) -> bool {
        self.eat_any(&[wanted]).is_some()
    }

    fn eat_any(&mut self, wanted: &[char]) -> Option<char> {
        let c = self.peek().filter(|c| wanted.contains(c))?;
        self.rest = &self.rest[c.len_utf8()..];
        Some(c)
    }

    fn eat_str(&mut self, wanted: &str) -> bool {
        match self.rest.strip_prefix(wanted) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn at_end(&self) -> bool {
        self.rest.is_empty()
    }

    /// An era by letter (`R8`) or name (`令和8`): its first year and its last era year.
    fn era(&mut self) -> Option<(i32, u32)> {
        for &(letter, name, first, last) in ERAS {
            if self.eat_str(name) || self.eat(letter) || self.eat(letter.to_ascii_lowercase()) {
                return Some((first, last));
            }
        }
        None
    }

    /// Decimal digits, ASCII or full-width; saturates at `u32::MAX` so a cell of a million
    /// digits is a year out of range, not an overflow.
    fn number(&mut self) -> Option<u32> {
        let mut value: Option<u32> = None;
        while let Some(digit) = self.peek().and_then(digit) {
            self.rest = &self.rest[self.peek().map_or(1, char::len_utf8)..];
            value = Some(value.unwrap_or(0).saturating_mul(10).saturating_add(digit));
        }
        value
    }

    /// `年11月30日` or `.11.30` (also `/` and `-`), after the year.
    fn month_and_day(&mut self) -> Option<(u32, u32)> {
        if self.eat('年') {
            let month = self.number()?;
            if !self.eat('月') {
                return None;
            }
            let day = self.number()?;
            return self.eat('日').then_some((month, day));
        }
        let separator = self.eat_any(&['.', '/', '-', '．', '／'])?;
        let month = self.number()?;
        if !self.eat(separator) {
            return None;
        }
        Some((month, self.number()?))
    }

    /// `(月)` or `（月）` after the date: the weekday, which the date already says.
    fn weekday(&mut self) {
        let before = self.rest;
        if self.eat_any(&['(', '（']).is_some()
            && self
                .eat_any(&['日', '月', '火', '水', '木', '金', '土'])
                .is_some()
            && self.eat_any(&[')', '）']).is_some()
        {
            return;
        }
        self.rest = before;
    }

    /// Nothing, or spaces and `14:00`, `14:00:00`, `14時`, `14時30分`: `None` for anything else.
    fn time(&mut self) -> Option<Clock> {
        while self.eat_any(&[' ', '\t', '\u{3000}']).is_some() {}
        if self.at_end() {
            return Some(Clock::None);
        }
        let hour = self.number()?;
        if self.eat('時') {
            let minute = match self.number() {
                Some(minute) => self.eat('分').then_some(minute)?,
                None => 0,
            };
            return Some(Clock::At(hour, minute, 0));
        }
        self.eat_any(&[':', '：'])?;
        let minute = self.number()?;
        let second = if self.eat_any(&[':', '：']).is_some() {
            self.number()?
        } else {
            0
        };
        Some(Clock::At(hour, minute, second))
    }
}

fn digit(c: char) -> Option<u32> {
    match c {
        '0'..='9' => c.to_digit(10),
        '０'..='９' => Some(c as u32 - '０' as u32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn hm(h: u32, m: u32) -> Option<NaiveTime> {
        NaiveTime::from_hms_opt(h, m, 0)
    }

    #[test]
    fn kanji_dates_with_and_without_a_time() {
        let cases = [
            ("2026年11月30日", (day(2026, 11, 30), None)),
            ("2026年1月5日", (day(2026, 1, 5), None)),
            ("２０２６年１１月３０日", (day(2026, 11, 30), None)),
            ("2026年11月30日 14:00", (day(2026, 11, 30), hm(14, 0))),
            ("2026年11月30日(月) 14:00", (day(2026, 11, 30), hm(14, 0))),
            ("2026年11月30日（月）14:30", (day(2026, 11, 30), hm(14, 30))),
            ("2026年11月30日\u{3000}9時", (day(2026, 11, 30), hm(9, 0))),
            ("2026年11月30日 14時30分", (day(2026, 11, 30), hm(14, 30))),
            ("2026年11月30日 14:00:00", (day(2026, 11, 30), hm(14, 0))),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(Some(expected)), "{text}");
        }
    }

    #[test]
    fn era_dates_count_from_the_eras_first_year() {
        let cases = [
            ("R8.11.30", day(2026, 11, 30)),
            ("r8/11/30", day(2026, 11, 30)),
            ("R1.5.1", day(2019, 5, 1)),
            ("令和8年11月30日", day(2026, 11, 30)),
            ("令和元年5月1日", day(2019, 5, 1)),
            ("H31.4.30", day(2019, 4, 30)),
            ("平成2年1月8日", day(1990, 1, 8)),
            ("S55.4.1", day(1980, 4, 1)),
            ("昭和64年1月7日", day(1989, 1, 7)),
            ("T15.12.24", day(1926, 12, 24)),
            ("M45.7.29", day(1912, 7, 29)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(Some((expected, None))), "{text}");
        }
        assert_eq!(
            parse("R8.11.30 14:00"),
            Ok(Some((day(2026, 11, 30), hm(14, 0))))
        );
    }

    #[test]
    fn not_a_japanese_form_is_left_to_the_caller() {
        for text in [
            "",
            "2026-11-30",
            "next tuesday",
            "山田 花子",
            "090-1234-5678",
            "2026年",
            "2026年11月",
            "2026年11月30日 午後",
            "R8.11",
            "R8.11/30",
            "令和年11月30日",
            "2026年11月30日 14",
        ] {
            assert_eq!(parse(text), Ok(None), "{text}");
        }
    }

    #[test]
    fn hostile_cells_are_a_clear_problem() {
        assert_eq!(parse("2026年2月30日"), Err(DateProblem::Unreadable));
        assert_eq!(parse("2026年11月30日 25:00"), Err(DateProblem::Unreadable));
        assert_eq!(parse("R99999.1.1"), Err(DateProblem::YearOutOfRange));
        assert_eq!(parse("令和0年1月1日"), Err(DateProblem::YearOutOfRange));
        assert_eq!(parse("H32.1.1"), Err(DateProblem::YearOutOfRange));
        assert_eq!(parse("99999年1月1日"), Err(DateProblem::YearOutOfRange));
        let digits = "9".repeat(1 << 20);
        assert_eq!(
            parse(&format!("{digits}年1月1日")),
            Err(DateProblem::YearOutOfRange)
        );
        assert_eq!(
            parse(&format!("R{digits}.1.1")),
            Err(DateProblem::YearOutOfRange)
        );
        assert_eq!(
            parse(&format!("2026年{digits}月1日")),
            Err(DateProblem::Unreadable)
        );
        let long = "年".repeat(1 << 18);
        assert_eq!(parse(&long), Ok(None));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "[0-9０-９年月日元令和平成RSH.:/ （）()月時分-]{0,40}") {
            let _ = parse(&text);
        }
    }
}
