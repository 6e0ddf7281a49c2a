//! Reading the cells whose text can mean something other than itself: dates in the forms
//! exports write, the opt-out column's words, tags with the export's separators, and the
//! values a clinic says mean "empty". Built once per file from the header mapping; a cell is
//! only compared and split, never copied more than the record needs.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use super::japanese_dates;
use super::mapping::{OptOutWords, DEFAULT_TAG_SEPARATORS};
use crate::time::{date, instant, local_to_utc, DateProblem, Expected};

/// Said after the examples of [`DateProblem::message`]: the Japanese forms read too.
const JAPANESE_FORMS: &str = "2026年11月30日 14:00, R8.11.30 and 令和8年11月30日 are read too";

/// An instant in one of the forms [`crate::time::instant`] or [`japanese_dates`] reads; the
/// message names the problem, never the cell.
pub(super) fn read_instant(text: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let problem = match instant(text, tz) {
        Ok(at) => return Ok(at),
        Err(problem) => problem,
    };
    match japanese_dates::parse_wall_clock(text) {
        Ok(Some(naive)) => Ok(local_to_utc(naive, tz)),
        Ok(None) => Err(date_message(problem, Expected::Instant)),
        Err(problem) => Err(date_message(problem, Expected::Instant)),
    }
}

/// A calendar day (a birth date), as [`read_instant`] reads it; a time is ignored.
pub(super) fn read_date(text: &str) -> Result<NaiveDate, String> {
    let problem = match date(text) {
        Ok(day) => return Ok(day),
        Err(problem) => problem,
    };
    match japanese_dates::parse(text) {
        Ok(Some((day, _))) => Ok(day),
        Ok(None) => Err(date_message(problem, Expected::Date)),
        Err(problem) => Err(date_message(problem, Expected::Date)),
    }
}

fn date_message(problem: DateProblem, expected: Expected) -> String {
    let message = problem.message(expected, None);
    match problem {
        DateProblem::Unreadable => match message.strip_suffix(')') {
            Some(open) => format!("{open}; {JAPANESE_FORMS})"),
            None => message,
        },
        _ => message,
    }
}

/// The words an opt-out column may hold: the clinic's own first, then steprule's.
#[derive(Debug, Clone)]
pub(super) struct OptOutReader {
    clinic: OptOutWords,
}

/// Built-in words for "opted out" (Excel's TRUE, Japanese systems' 配信停止 / 希望しない).
const OPTED_OUT: &[&str] = &[
    "true",
    "1",
    "yes",
    "y",
    "はい",
    "配信停止",
    "停止",
    "希望しない",
    "配信拒否",
];
/// Built-in words for "not opted out".
const NOT_OPTED_OUT: &[&str] = &[
    "false",
    "0",
    "no",
    "n",
    "いいえ",
    "希望する",
    "配信希望",
    "配信可",
];

impl OptOutReader {
    pub(super) fn new(clinic: Option<&OptOutWords>) -> Self {
        OptOutReader {
            clinic: clinic.cloned().unwrap_or_default(),
        }
    }

    /// Whether the cell says "opted out"; `None` for a word nobody listed.
    pub(super) fn read(&self, text: &str) -> Option<bool> {
        if self.clinic.yes.iter().any(|word| word == text) {
            return Some(true);
        }
        if self.clinic.no.iter().any(|word| word == text) {
            return Some(false);
        }
        if OPTED_OUT.iter().any(|word| text.eq_ignore_ascii_case(word)) {
            Some(true)
        } else if NOT_OPTED_OUT
            .iter()
            .any(|word| text.eq_ignore_ascii_case(word))
        {
            Some(false)
        } else {
            None
        }
    }

    /// What the cell should have held, for the message about one that holds none of the words.
    pub(super) fn expected(&self) -> &'static str {
        if self.clinic.yes.is_empty() && self.clinic.no.is_empty() {
            "expected e.g. true/false, はい/いいえ or 配信停止/希望する; list the export's own \
             words under [opted_out] in the header mapping"
        } else {
            "expected one of the words under [opted_out] in the header mapping, or e.g. \
             true/false, はい/いいえ or 配信停止/希望する"
        }
    }
}

/// Splits a tags cell on the export's separators.
#[derive(Debug, Clone)]
pub(super) struct TagSplitter {
    separators: Vec<String>,
    /// The separators, when each is one character (the default ones are): then a cell is
    /// split with one look at each character instead of a comparison per separator.
    chars: Option<Vec<char>>,
    /// Those of `chars` that are ASCII: all an ASCII cell can hold, looked for byte by byte.
    ascii: Vec<u8>,
}

impl TagSplitter {
    pub(super) fn new(separators: Option<&[String]>) -> Self {
        let separators: Vec<String> = match separators {
            Some(given) => given.iter().filter(|s| !s.is_empty()).cloned().collect(),
            None => DEFAULT_TAG_SEPARATORS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        };
        let one_char = |s: &String| {
            let mut chars = s.chars();
            chars.next().filter(|_| chars.next().is_none())
        };
        let chars: Option<Vec<char>> = separators.iter().map(one_char).collect();
        let ascii = (chars.iter().flatten())
            .filter_map(|&c| u8::try_from(c).ok().filter(u8::is_ascii))
            .collect();
        TagSplitter {
            separators,
            chars,
            ascii,
        }
    }

    /// Gives each non-empty, trimmed tag of `text` to `tag` (which puts it in a string of its
    /// own, kept from a record before when there is one). One pass over the text: at each
    /// character only the (bounded) separators are tried.
    pub(super) fn split(&self, text: &str, mut tag: impl FnMut(&str)) {
        let mut push_tag = |text: &str| {
            let trimmed = trim_cell(text);
            if !trimmed.is_empty() {
                tag(trimmed);
            }
        };
        if let Some(chars) = &self.chars {
            if text.is_ascii() {
                // Bytes, not characters: decoding each character and comparing it with every
                // separator was most of typing a tags cell.
                let mut start = 0;
                for (at, byte) in text.bytes().enumerate() {
                    if self.ascii.contains(&byte) {
                        push_tag(&text[start..at]);
                        start = at + 1;
                    }
                }
                push_tag(&text[start..]);
                return;
            }
            text.split(|c| chars.contains(&c)).for_each(&mut push_tag);
            return;
        }
        let mut start = 0;
        let mut index = 0;
        while index < text.len() {
            let rest = &text[index..];
            match self
                .separators
                .iter()
                .find(|s| rest.starts_with(s.as_str()))
            {
                Some(separator) => {
                    push_tag(&text[start..index]);
                    index += separator.len();
                    start = index;
                }
                None => index += rest.chars().next().map_or(1, char::len_utf8),
            }
        }
        push_tag(&text[start..]);
    }
}

/// `text` without leading and trailing whitespace, as [`str::trim`] gives it: a cell whose
/// first and last bytes cannot belong to a whitespace character (nearly every cell, names in
/// kanji included) is returned as it is, without `trim`'s decoding of each end's character.
#[inline]
pub(super) fn trim_cell(text: &str) -> &str {
    match text.as_bytes() {
        [first, .., last] if plain_start(*first) && plain_end(*last) => text,
        [only] if plain_start(*only) => text,
        _ => text.trim(),
    }
}

/// The first byte of a character that is not whitespace to [`char::is_whitespace`]: ASCII
/// other than tab to carriage return and space, or the lead byte of a character outside
/// U+0080–U+00BF, U+1000–U+3FFF (where every non-ASCII whitespace character is).
#[inline]
fn plain_start(byte: u8) -> bool {
    match byte {
        b'\t'..=b'\r' | b' ' => false,
        0..=0x7f => true,
        0xc2 | 0xe1..=0xe3 => false,
        _ => true,
    }
}

/// The last byte of a character that is not whitespace: ASCII as in [`plain_start`], or a
/// continuation byte no whitespace character ends with (they end in 0x80–0x8A, 0x9F, 0xA0,
/// 0xA8, 0xA9 or 0xAF).
#[inline]
fn plain_end(byte: u8) -> bool {
    match byte {
        b'\t'..=b'\r' | b' ' => false,
        0..=0x7f => true,
        0x80..=0x8a | 0x9f | 0xa0 | 0xa8 | 0xa9 | 0xaf => false,
        _ => true,
    }
}

/// Whether a trimmed cell is one of the values its column treats as empty.
pub(super) fn means_empty(text: &str, empty: Option<&Arc<[String]>>) -> bool {
    empty.is_some_and(|values| values.iter().any(|value| value == text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKYO: Tz = chrono_tz::Asia::Tokyo;

    #[test]
    fn japanese_dates_are_read_in_the_clinics_zone() {
        let at = read_instant("2026年11月30日 14:00", TOKYO).unwrap();
        assert_eq!(at.to_rfc3339(), "2026-11-30T05:00:00+00:00");
        let midnight = read_instant("R8.11.30", TOKYO).unwrap();
        assert_eq!(midnight.to_rfc3339(), "2026-11-29T15:00:00+00:00");
        assert_eq!(
            read_date("昭和55年4月1日"),
            Ok(NaiveDate::from_ymd_opt(1980, 4, 1).unwrap())
        );
        assert_eq!(
            read_instant("2026/11/30 14:00", TOKYO),
            read_instant("2026-11-30 14:00", TOKYO)
        );
    }

    #[test]
    fn date_messages_say_what_is_read_and_never_the_cell() {
        let err = read_instant("2026年2月30日", TOKYO).unwrap_err();
        assert!(err.starts_with("not a date or date-time"), "{err}");
        assert!(err.contains("令和8年11月30日"), "{err}");
        assert!(!err.contains("2月30日"), "{err}");
        let err = read_date("R99999.1.1").unwrap_err();
        assert!(err.contains("out of range"), "{err}");
        assert!(!err.contains("99999"), "{err}");
    }

    #[test]
    fn opt_out_words_the_clinics_first() {
        let builtin = OptOutReader::new(None);
        assert_eq!(builtin.read("配信停止"), Some(true));
        assert_eq!(builtin.read("希望しない"), Some(true));
        assert_eq!(builtin.read("TRUE"), Some(true));
        assert_eq!(builtin.read("希望する"), Some(false));
        assert_eq!(builtin.read("いいえ"), Some(false));
        assert_eq!(builtin.read("たぶん"), None);
        // A column that asks "wants messages?": its はい means not opted out.
        let clinic = OptOutReader::new(Some(&OptOutWords {
            yes: vec!["いいえ".into(), "不要".into()],
            no: vec!["はい".into()],
        }));
        assert_eq!(clinic.read("はい"), Some(false));
        assert_eq!(clinic.read("いいえ"), Some(true));
        assert_eq!(clinic.read("不要"), Some(true));
        assert!(clinic
            .expected()
            .starts_with("expected one of the words under [opted_out]"));
        assert!(builtin.expected().contains("配信停止/希望する"));
    }

    #[test]
    fn tags_split_on_every_separator() {
        let split = |splitter: &TagSplitter, text: &str| {
            let mut tags = Vec::new();
            splitter.split(text, |tag| tags.push(tag.to_owned()));
            tags
        };
        let default = TagSplitter::new(None);
        assert_eq!(
            split(&default, "矯正、ホワイトニング,vip; 小児，定期；"),
            ["矯正", "ホワイトニング", "vip", "小児", "定期"]
        );
        let slash = TagSplitter::new(Some(&["／".to_owned(), " / ".to_owned()]));
        assert_eq!(
            split(&slash, "矯正／小児 / vip、x"),
            ["矯正", "小児", "vip、x"]
        );
        let long = "あ".repeat(1 << 18);
        assert_eq!(split(&default, &long).len(), 1);
    }

    /// One-character separators (the default ones) are split on with one look per character;
    /// the tags are those the general way finds.
    #[test]
    fn one_character_separators_split_as_the_general_way_does() {
        let split = |splitter: &TagSplitter, text: &str| {
            let mut tags = Vec::new();
            splitter.split(text, |tag| tags.push(tag.to_owned()));
            tags
        };
        for fast in [
            TagSplitter::new(None),
            TagSplitter::new(Some(&["/".to_owned(), "、".to_owned(), "+".to_owned()])),
        ] {
            assert!(fast.chars.is_some());
            let general = TagSplitter {
                chars: None,
                ..fast.clone()
            };
            for text in [
                "",
                "/",
                ";",
                "a/b",
                " a 、 b ++c/",
                "、、",
                "x/ /y",
                "矯正／小児",
                "a+b、c/d e",
                "vip;chronic,flu",
                "；，",
                " 定期 ",
                "a;b,c",
                ";;,",
                " , ; ",
                "\tx\t;y\n",
                "a/b+c",
            ] {
                assert_eq!(split(&fast, text), split(&general, text), "{text:?}");
            }
            // Every ASCII character between tags, at either end and twice.
            for c in (0..=0x7f_u8).map(char::from) {
                let text = format!("{c}x{c}y{c}{c}z{c}");
                assert_eq!(split(&fast, &text), split(&general, &text), "{text:?}");
            }
        }
        let long = TagSplitter::new(Some(&["／".to_owned(), " / ".to_owned()]));
        assert!(long.chars.is_none());
    }

    /// The fast way gives what `str::trim` gives, for every ASCII byte at either end and for
    /// the Unicode spaces exports have (ideographic, no-break) and characters next to them.
    #[test]
    fn cells_are_trimmed_as_str_trim_trims_them() {
        let mut ends: Vec<String> = (0u8..=127).map(|b| char::from(b).to_string()).collect();
        ends.extend(
            [
                "\u{3000}", "\u{a0}", "\u{85}", "\u{2028}", "\u{1c}", "患", "Ａ", "é", "",
            ]
            .map(str::to_owned),
        );
        for first in &ends {
            for last in &ends {
                for middle in ["", "x", " ", "患者", "\u{3000}"] {
                    let text = format!("{first}{middle}{last}");
                    assert_eq!(trim_cell(&text), text.trim(), "{text:?}");
                }
            }
        }
    }

    /// Every character of Unicode at either end of a cell: trimmed as `str::trim` trims it.
    #[test]
    fn every_character_at_either_end_is_trimmed_as_str_trim_trims_it() {
        let mut text = String::new();
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            for (first, last) in [(c, 'x'), ('x', c), (c, c)] {
                text.clear();
                text.push(first);
                text.push('患');
                text.push(last);
                assert_eq!(trim_cell(&text), text.trim(), "{text:?}");
            }
            text.clear();
            text.push(c);
            assert_eq!(trim_cell(&text), text.trim(), "{text:?}");
        }
    }

    #[test]
    fn empty_values_are_exact() {
        let values: Arc<[String]> = Arc::from(vec!["-".to_owned(), "未定".to_owned()]);
        assert!(means_empty("-", Some(&values)));
        assert!(means_empty("未定", Some(&values)));
        assert!(!means_empty("--", Some(&values)));
        assert!(!means_empty("-", None));
    }
}
