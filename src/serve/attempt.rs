//! Reading a linking attempt out of a LINE text message: the patient number on the clinic card
//! (診察券番号) and a birth date, typed the way people type them on a phone: full-width digits,
//! `1980-01-02`, `1980/1/2`, `19800102`, `1980年1月2日`, `昭和55年1月2日`, with labels, spaces,
//! commas or line breaks between. Nothing here stores or prints the text.

use chrono::NaiveDate;

/// Texts longer than this are conversation, not an attempt.
pub const MAX_ATTEMPT_CHARS: usize = 100;

/// What a message offered as a linking attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The one patient number in the text; `None` when there was none or more than one (the
    /// attempt then fails, without saying why).
    pub id: Option<String>,
    pub birth_date: NaiveDate,
}

/// The attempt in `text`, or `None` when the text holds no birth date (on or before `today`):
/// then it is an ordinary message.
pub fn read(text: &str, today: NaiveDate) -> Option<Attempt> {
    if text.chars().count() > MAX_ATTEMPT_CHARS {
        return None;
    }
    let mut chars: Vec<char> = text.chars().map(narrow).collect();
    let dates = find_dates(&chars, today);
    // A date written with separators or 年月日 is the birth date; eight bare digits may as well
    // be a patient number, so they are the date only when nothing else is, and then the last.
    let chosen = dates
        .iter()
        .rev()
        .find(|d| !d.bare)
        .or_else(|| dates.last())?
        .clone();
    for c in &mut chars[chosen.start..chosen.end] {
        *c = ' ';
    }
    let mut ids = id_candidates(&chars);
    let id = if ids.len() == 1 { ids.pop() } else { None };
    Some(Attempt {
        id,
        birth_date: chosen.date,
    })
}

/// Full-width ASCII, the ideographic space and the dashes Japanese input produces, as ASCII.
pub fn narrow(c: char) -> char {
    match c {
        '\u{ff01}'..='\u{ff5e}' => char::from_u32(u32::from(c) - 0xfee0).unwrap_or(c),
        '\u{3000}' => ' ',
        '、' => ',',
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{30fc}' => '-',
        other => other,
    }
}

#[derive(Debug, Clone)]
struct Found {
    start: usize,
    end: usize,
    date: NaiveDate,
    /// Eight digits with nothing around them.
    bare: bool,
}

const ERAS: [(&str, i32); 5] = [
    ("明治", 1868),
    ("大正", 1912),
    ("昭和", 1926),
    ("平成", 1989),
    ("令和", 2019),
];

fn find_dates(chars: &[char], today: NaiveDate) -> Vec<Found> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let glued = i > 0 && is_id_char(chars[i - 1]);
        let hit = if glued {
            None
        } else {
            era_date(chars, i).or_else(|| western_date(chars, i))
        };
        match hit {
            Some((end, (y, m, d), bare)) if !chars.get(end).is_some_and(|c| is_id_char(*c)) => {
                let date = NaiveDate::from_ymd_opt(y, m, d)
                    .filter(|date| date.year_ce().1 >= 1900 && *date <= today);
                if let Some(date) = date {
                    found.push(Found {
                        start: i,
                        end,
                        date,
                        bare,
                    });
                    i = end;
                    continue;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    found
}

use chrono::Datelike;

type Ymd = (i32, u32, u32);

/// `1980-1-2`, `1980/01/02`, `1980.1.2`, `1980年1月2日` or `19800102` at `i`: where it ends, the
/// date's parts, and whether it was bare digits.
fn western_date(chars: &[char], i: usize) -> Option<(usize, Ymd, bool)> {
    let (year, after) = digits(chars, i, 4, 8)?;
    if after - i == 8 {
        let text: String = chars[i..after].iter().collect();
        let (y, md) = text.split_at(4);
        let (m, d) = md.split_at(2);
        return Some((
            after,
            (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?),
            true,
        ));
    }
    if after - i != 4 {
        return None;
    }
    let (end, month, day) = month_day(chars, after)?;
    Some((end, (i32::try_from(year).ok()?, month, day), false))
}

/// `昭和55年1月2日`, `平成元年1月8日` or `昭和55.1.2` at `i`.
fn era_date(chars: &[char], i: usize) -> Option<(usize, Ymd, bool)> {
    let (name, base) = ERAS.iter().find(|(name, _)| {
        let name: Vec<char> = name.chars().collect();
        chars.get(i..i + name.len()) == Some(&name[..])
    })?;
    let at = i + name.chars().count();
    let (year, after) = if chars.get(at) == Some(&'元') {
        (1, at + 1)
    } else {
        digits(chars, at, 1, 2)?
    };
    let (end, month, day) = month_day(chars, after)?;
    let year = base + i32::try_from(year).ok()? - 1;
    Some((end, (year, month, day), false))
}

/// `年M月D日` (日 optional) or `-M-D` with one separator repeated, from `at` (just after the
/// year).
fn month_day(chars: &[char], at: usize) -> Option<(usize, u32, u32)> {
    let sep = *chars.get(at)?;
    let (month, after_month) = digits(chars, at + 1, 1, 2)?;
    let next = *chars.get(after_month)?;
    let (day, after_day) = digits(chars, after_month + 1, 1, 2)?;
    let end = match (sep, next) {
        ('年', '月') if chars.get(after_day) == Some(&'日') => after_day + 1,
        ('年', '月') => after_day,
        ('-' | '/' | '.', _) if next == sep => after_day,
        _ => return None,
    };
    Some((end, month, day))
}

/// A run of `min..=max` ASCII digits at `at` (a longer run does not match).
fn digits(chars: &[char], at: usize, min: usize, max: usize) -> Option<(u32, usize)> {
    let len = chars[at.min(chars.len())..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if len < min || len > max {
        return None;
    }
    let text: String = chars[at..at + len].iter().collect();
    Some((text.parse().ok()?, at + len))
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Runs of ASCII letters, digits, `-` and `_` that hold a digit: the patient numbers offered.
fn id_candidates(chars: &[char]) -> Vec<String> {
    chars
        .split(|c| !is_id_char(*c))
        .map(|run| {
            let text: String = run.iter().collect();
            text.trim_matches(|c| c == '-' || c == '_').to_owned()
        })
        .filter(|run| run.bytes().any(|b| b.is_ascii_digit()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn attempt(text: &str) -> Option<(Option<String>, NaiveDate)> {
        read(text, today()).map(|a| (a.id, a.birth_date))
    }

    #[test]
    fn every_date_spelling_reads_the_same() {
        for text in [
            "P0001 1980-01-02",
            "P0001 1980/1/2",
            "P0001 19800102",
            "P0001 1980年1月2日",
            "P0001 1980年01月02日",
            "P0001 1980.1.2",
            "P0001\n1980-01-02",
            "P0001,1980-01-02",
            "P0001、1980年1月2日",
            "Ｐ０００１　１９８０年１月２日",
            "Ｐ０００１ １９８０－０１－０２",
            "1980-01-02 P0001",
            "診察券番号：P0001\n生年月日：1980年1月2日",
            "診察券番号P0001 生年月日1980/1/2",
            "P0001 昭和55年1月2日",
            "P0001 昭和55.1.2",
        ] {
            assert_eq!(
                attempt(text),
                Some((Some("P0001".into()), day(1980, 1, 2))),
                "{text}"
            );
        }
        assert_eq!(
            attempt("123 平成元年1月8日"),
            Some((Some("123".into()), day(1989, 1, 8)))
        );
    }

    #[test]
    fn eight_digit_ids_and_eight_digit_dates() {
        // Two bare runs: the last is the date, the first the number.
        assert_eq!(
            attempt("20010101 19800102"),
            Some((Some("20010101".into()), day(1980, 1, 2)))
        );
        // A written date wins over bare digits.
        assert_eq!(
            attempt("19991231 1980/1/2"),
            Some((Some("19991231".into()), day(1980, 1, 2)))
        );
        // Digits glued to letters are a number, not a date.
        assert_eq!(
            attempt("P19800102 1970-05-06"),
            Some((Some("P19800102".into()), day(1970, 5, 6)))
        );
    }

    #[test]
    fn texts_without_a_birth_date_are_not_attempts() {
        for text in [
            "こんにちは",
            "予約を変更したいです",
            "P0001",
            "12/3に伺います",
            "2026年12月1日に予約できますか",
            "1980-13-45 P0001",
            "1850-01-01 P0001",
            "1980-01/02 P0001",
            &format!("P0001 1980-01-02 {}", "あ".repeat(MAX_ATTEMPT_CHARS)),
        ] {
            assert_eq!(attempt(text), None, "{text}");
        }
    }

    #[test]
    fn a_date_without_exactly_one_number_is_a_failed_attempt() {
        assert_eq!(attempt("1980-01-02"), Some((None, day(1980, 1, 2))));
        assert_eq!(
            attempt("P0001 P0002 1980-01-02"),
            Some((None, day(1980, 1, 2)))
        );
        assert_eq!(
            attempt("P0001 1980-01-02 090-1234-5678"),
            Some((None, day(1980, 1, 2)))
        );
    }

    #[test]
    fn hyphenated_ids_are_kept_whole() {
        assert_eq!(
            attempt("A-12-3 1980-01-02"),
            Some((Some("A-12-3".into()), day(1980, 1, 2)))
        );
    }
}
