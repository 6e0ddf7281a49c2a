//! A JSONL line read without serde_json when it is the flat object an export writes: string
//! keys, and values that are strings, numbers, `true`, `false` or `null`, with no escapes.
//! serde_json's own parsing (its string scanning and map access) was most of what a JSONL line
//! cost beyond a CSV row. Anything else (an escape, a list or an object as a value, a number
//! it would print differently, any syntax error) is declined, and the caller reads the line
//! with serde_json as before: the results, errors included, are the same either way.
//! [`ScannedCells`] goes further for the typing threads: it hands a line's values straight to
//! the row being typed, its string values' escapes decoded as serde_json decodes them.

use super::columns::Column;
use super::jsonl_line::{Entry, JsonValue, Shape};
use super::jsonl_order::KeyOrder;
use super::row::Cell;
use crate::json_plain::plain_len;
use std::borrow::Cow;

/// Digits an integer may have to be printed as the line spells it: it fits both `u64` and
/// `i64`, so serde_json reads it as an integer and prints it as written.
const PLAIN_DIGITS: usize = 18;

/// Reads `text` into `entries` and `numbers` (both emptied first) as
/// [`super::jsonl_line::parse_entries`] does, or `None` when the line is not a flat object
/// without escapes; `entries` and `numbers` then hold what was read before that.
#[cfg(test)]
pub(super) fn scan_entries<'a>(
    text: &'a str,
    entries: &mut Vec<Entry<'a>>,
    numbers: &mut String,
) -> Option<Shape> {
    scan_keyed(
        text,
        entries,
        numbers,
        &KeyOrder::default(),
        &mut Vec::new(),
    )
}

/// [`scan_entries`], each key found along `order` as it is scanned: `slots` (emptied first)
/// gets the slot of each key, in the line's order, while every key so far is known. So it
/// holds one slot per entry exactly when the line's keys are all known (in any order, and a
/// key may come twice: see `JsonlKeys::type_entries`).
pub(super) fn scan_keyed<'a>(
    text: &'a str,
    entries: &mut Vec<Entry<'a>>,
    numbers: &mut String,
    order: &KeyOrder,
    slots: &mut Vec<usize>,
) -> Option<Shape> {
    entries.clear();
    numbers.clear();
    slots.clear();
    let mut scan = Scan { text, at: 0 };
    scan.skip_space();
    scan.eat(b'{')?;
    scan.skip_space();
    if scan.peek() == Some(b'}') {
        scan.at += 1;
    } else {
        // Where along `order` the next key is looked for; `None` once a key was not found.
        let mut place = Some(0);
        loop {
            let (key, slot) = scan.key(order, place)?;
            place = slot.map(|slot| slot + 1);
            if let Some(slot) = slot {
                slots.push(slot);
            }
            scan.skip_space();
            let value = scan.value(numbers)?;
            entries.push((Cow::Borrowed(key), value));
            scan.skip_space();
            match scan.peek()? {
                b',' => {
                    scan.at += 1;
                    scan.skip_space();
                }
                b'}' => {
                    scan.at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    scan.skip_space();
    (scan.at == text.len()).then_some(Shape::Object)
}

/// A place in a line being scanned.
struct Scan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// Passes over what JSON counts as whitespace (and no other).
    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string without escapes or control characters (which serde_json refuses), borrowed.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let rest = &self.text.as_bytes()[start..];
        let len = plain_len(rest);
        if rest.get(len) != Some(&b'"') {
            return None;
        }
        self.at = start + len + 1;
        // SAFETY: the bytes before `start` and at `start + len` are quotes, so both are on a
        // character's boundary of the (valid UTF-8) line, and within it.
        Some(unsafe { self.text.get_unchecked(start..start + len) })
    }

    /// A string value as serde_json reads it: borrowed when it has no escape, else decoded
    /// into a string of its own (Python's `json.dumps` and pandas' `to_json` escape every
    /// character past ASCII by default, so such an export has escapes on every line).
    /// Declined (`None`) wherever serde_json would refuse the string: a control character,
    /// an unknown escape, a lone surrogate, the line's end.
    fn string_value(&mut self) -> Option<Cow<'a, str>> {
        let start = self.at + 1;
        if let Some(plain) = self.string() {
            return Some(Cow::Borrowed(plain));
        }
        let bytes = self.text.as_bytes();
        let mut decoded = String::new();
        let mut at = start;
        loop {
            let len = plain_len(bytes.get(at..)?);
            // Each run starts after a quote or an escape and ends before a quote or a
            // backslash: both ends are characters' boundaries.
            decoded.push_str(self.text.get(at..at + len)?);
            at += len;
            match bytes.get(at)? {
                b'"' => {
                    self.at = at + 1;
                    return Some(Cow::Owned(decoded));
                }
                b'\\' => {}
                _ => return None,
            }
            let escape = *bytes.get(at + 1)?;
            at += 2;
            let char = match escape {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let unit = hex4(bytes.get(at..at + 4)?)?;
                    at += 4;
                    if !(0xD800..0xDC00).contains(&unit) {
                        // A trailing surrogate alone is not a character: declined.
                        char::from_u32(unit)?
                    } else {
                        if bytes.get(at..at + 2)? != b"\\u" {
                            return None;
                        }
                        let low = hex4(bytes.get(at + 2..at + 6)?)?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return None;
                        }
                        at += 6;
                        char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                    }
                }
                _ => return None,
            };
            decoded.push(char);
        }
    }

    /// A key and the `:` after it, and its slot along `order` (`None` when not known, or
    /// `place` is `None`). The key expected at `place` is tried first: its bytes, its closing
    /// quote and the colon compared where the line has them, in one go; then all the spellings,
    /// by a binary search (a walk from `place` cost a line of keys alternating between the
    /// ends of a thousand known ones a thousand compares a key).
    #[inline]
    fn key(&mut self, order: &KeyOrder, place: Option<usize>) -> Option<(&'a str, Option<usize>)> {
        let place = match place {
            Some(place) => place,
            None => return Some((self.key_alone()?, None)),
        };
        if let Some((slot, written)) = order.expected(place) {
            let rest = self.text.as_bytes().get(self.at..)?;
            // The key has no quote, backslash or control character, so a line holding it
            // between a quote and `":` holds that key, unescaped.
            if written.starts(rest) {
                let start = self.at + 1;
                let end = start + written.key_len();
                self.at += written.len();
                // SAFETY: the bytes before `start` and at `end` are quotes, so both are on a
                // character's boundary of the (valid UTF-8) line, and `end` is within it.
                let key = unsafe { self.text.get_unchecked(start..end) };
                return Some((key, Some(slot)));
            }
        }
        let key = self.key_alone()?;
        Some((key, order.find_anywhere(key)))
    }

    /// A key and the `:` after it.
    fn key_alone(&mut self) -> Option<&'a str> {
        let key = self.string()?;
        self.skip_space();
        self.eat(b':')?;
        Some(key)
    }

    /// Passes over `word` if the line has it here.
    fn word(&mut self, word: &str) -> Option<()> {
        let rest = &self.text.as_bytes()[self.at..];
        rest.starts_with(word.as_bytes())
            .then(|| self.at += word.len())
    }

    fn value(&mut self, numbers: &mut String) -> Option<JsonValue<'a>> {
        Some(match self.peek()? {
            b'"' => JsonValue::Text(Cow::Borrowed(self.string()?)),
            b'n' => {
                self.word("null")?;
                JsonValue::Null
            }
            b't' => {
                self.word("true")?;
                JsonValue::Text(Cow::Borrowed("true"))
            }
            b'f' => {
                self.word("false")?;
                JsonValue::Text(Cow::Borrowed("false"))
            }
            b'-' | b'0'..=b'9' => self.number(numbers)?,
            // A list, an object, or not JSON.
            _ => return None,
        })
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    /// A number in JSON's grammar, printed into `numbers` as `serde_json::Number` prints it.
    fn number(&mut self, numbers: &mut String) -> Option<JsonValue<'a>> {
        let text = self.number_text()?;
        let place = numbers.len();
        numbers.push_str(&text);
        Some(JsonValue::Number(place..numbers.len()))
    }

    /// A number in JSON's grammar as `serde_json::Number` prints it: the line's own text when
    /// that is how it prints.
    fn number_text(&mut self) -> Option<Cow<'a, str>> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let whole = match self.peek()? {
            // One leading zero only: "01" stops after the "0" and is declined by what follows.
            b'0' => {
                self.at += 1;
                1
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        };
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
            integer = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            integer = false;
        }
        let token = &self.text[start..self.at];
        // serde_json reads "-0" as a float ("-0.0"), and an integer past `u64` or `i64` as a
        // float too: those, and every decimal, are read and printed by serde_json itself.
        if integer && whole <= PLAIN_DIGITS && token != "-0" {
            return Some(Cow::Borrowed(token));
        }
        let number: serde_json::Number = serde_json::from_str(token).ok()?;
        Some(Cow::Owned(number.to_string()))
    }

    /// A value as the cell it makes: `Some(None)` for `null` (no cell); `None` (declined)
    /// where [`Self::value`] declines.
    #[inline]
    fn cell(&mut self) -> Option<Option<Cell<'a>>> {
        let text = match self.peek()? {
            b'"' => self.string_value()?,
            b'n' => {
                self.word("null")?;
                return Some(None);
            }
            b't' => {
                self.word("true")?;
                Cow::Borrowed("true")
            }
            b'f' => {
                self.word("false")?;
                Cow::Borrowed("false")
            }
            b'-' | b'0'..=b'9' => self.number_text()?,
            _ => return None,
        };
        Some(Some(Cell::Text(text)))
    }
}

/// The value of four hexadecimal digits, as a `\\u` escape writes a UTF-16 unit.
fn hex4(digits: &[u8]) -> Option<u32> {
    (digits.iter()).try_fold(0, |value, &digit| {
        Some(value * 16 + char::from(digit).to_digit(16)?)
    })
}

/// A line's cells as it is scanned, each with its column, for typing straight from the line:
/// no list of entries between the two (writing and reading back a line's entries, and putting
/// them in order, was most of what a JSONL line cost beyond a CSV row).
///
/// It reads a line [`scan_keyed`] would read whole, and one whose string values have escapes
/// (decoded as serde_json decodes them), when every key is known and none comes twice. It
/// stops (declined, see [`Self::whole`]) at anything else: an unknown key, a key given twice,
/// an escaped key, an escape serde_json refuses, a nested value, any syntax error. The caller
/// then types the line again by the way that handles all of those, so the result is the same
/// either way.
///
/// Cells come in the line's order, not the keys' sorted order the other way types them in:
/// only the order of a row's problems depends on that ([`Self::sorted`] says whether they
/// could differ).
pub(super) struct ScannedCells<'a, 'k> {
    scan: Scan<'a>,
    order: &'k KeyOrder,
    columns: &'k [Column],
    /// The slot of each key so far, in the line's order.
    slots: &'k mut Vec<usize>,
    /// Per slot, the stamp of the line that last had it.
    seen: &'k mut [u64],
    stamp: u64,
    open: bool,
    whole: bool,
    sorted: bool,
}

impl<'a, 'k> ScannedCells<'a, 'k> {
    /// The cells of `text`, its keys found along `order` (whose columns are `columns`).
    /// `seen` has a stamp per slot of `order`, each below `stamp` (the caller's count of lines
    /// scanned so, which is never used twice).
    pub(super) fn new(
        text: &'a str,
        order: &'k KeyOrder,
        columns: &'k [Column],
        slots: &'k mut Vec<usize>,
        seen: &'k mut [u64],
        stamp: u64,
    ) -> Self {
        slots.clear();
        let mut scan = Scan { text, at: 0 };
        let (mut open, mut whole) = (false, false);
        scan.skip_space();
        if scan.eat(b'{').is_some() {
            scan.skip_space();
            if scan.peek() == Some(b'}') {
                scan.at += 1;
                scan.skip_space();
                whole = scan.at == text.len();
            } else {
                open = true;
            }
        }
        ScannedCells {
            scan,
            order,
            columns,
            slots,
            seen,
            stamp,
            open,
            whole,
            sorted: true,
        }
    }

    /// Whether the line was read to its end, as a flat object of known keys each once. Only
    /// then are the cells given the line's.
    pub(super) fn whole(&self) -> bool {
        self.whole
    }

    /// Whether the keys came in their sorted order (then the cells came in the order the
    /// other way types them in).
    pub(super) fn sorted(&self) -> bool {
        self.sorted
    }

    /// The next key and value, `Some(None)` for a `null`; `None` when the line is declined.
    #[inline]
    fn step(&mut self) -> Option<Option<(&'k Column, Cell<'a>)>> {
        let place = self.slots.last().map_or(0, |&slot| slot + 1);
        let (_, slot) = self.scan.key(self.order, Some(place))?;
        let slot = slot?;
        let seen = self.seen.get_mut(slot)?;
        if *seen == self.stamp {
            return None;
        }
        *seen = self.stamp;
        self.sorted &= place <= slot;
        self.slots.push(slot);
        self.scan.skip_space();
        let cell = self.scan.cell()?;
        self.scan.skip_space();
        match self.scan.peek()? {
            b',' => {
                self.scan.at += 1;
                self.scan.skip_space();
            }
            b'}' => {
                self.scan.at += 1;
                self.scan.skip_space();
                if self.scan.at != self.scan.text.len() {
                    return None;
                }
                self.open = false;
                self.whole = true;
            }
            _ => return None,
        }
        let column = self.columns.get(self.order.column(slot))?;
        Some(cell.map(|cell| (column, cell)))
    }
}

impl<'a, 'k> Iterator for ScannedCells<'a, 'k> {
    type Item = (&'k Column, Cell<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        while self.open {
            match self.step() {
                Some(Some(cell)) => return Some(cell),
                Some(None) => {}
                None => {
                    self.open = false;
                    self.whole = false;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned(text: &str) -> Option<(Vec<Entry<'_>>, String)> {
        let (mut entries, mut numbers) = (Vec::new(), String::new());
        scan_entries(text, &mut entries, &mut numbers)?;
        Some((entries, numbers))
    }

    #[test]
    fn an_exports_line_is_scanned_and_borrowed() {
        let line = r#"{"birth_date":"1957-04-01","department":"内科","id":"P0000001","n":12,"vip":true,"x":null}"#;
        let (entries, numbers) = scanned(line).unwrap();
        let keys: Vec<&str> = entries.iter().map(|(key, _)| key.as_ref()).collect();
        assert_eq!(keys, ["birth_date", "department", "id", "n", "vip", "x"]);
        assert!(matches!(
            entries[1],
            (Cow::Borrowed(_), JsonValue::Text(Cow::Borrowed("内科")))
        ));
        assert_eq!(entries[3].1, JsonValue::Number(0..2));
        assert_eq!(numbers, "12");
        assert_eq!(entries[4].1, JsonValue::Text(Cow::Borrowed("true")));
        assert_eq!(entries[5].1, JsonValue::Null);
    }

    #[test]
    fn whitespace_is_jsons_own() {
        assert!(scanned(" \t{ \"a\" :\r\n\"b\" , \"c\":1 }\n ").is_some());
        assert!(scanned("{}").is_some());
        assert!(scanned("{ }").is_some());
        // A no-break space is not JSON's whitespace: serde_json refuses it, so it is declined.
        assert!(scanned("{\u{a0}\"a\": 1}").is_none());
        assert!(scanned("{\"a\": 1}\u{3000}").is_none());
    }

    #[test]
    fn numbers_print_as_serde_json_prints_them() {
        for (text, printed) in [
            ("0", Some("0")),
            ("-12", Some("-12")),
            ("123456789012345678", Some("123456789012345678")),
            ("-123456789012345678", Some("-123456789012345678")),
            ("18446744073709551615", Some("18446744073709551615")),
            ("-9223372036854775808", Some("-9223372036854775808")),
            ("18446744073709551616", None),
            ("-9223372036854775809", None),
            ("123456789012345678901234567890", None),
            ("-0", Some("-0.0")),
            ("1.0", Some("1.0")),
            ("1.50", Some("1.5")),
            ("1e5", Some("100000.0")),
            ("-0.0", Some("-0.0")),
            ("2.5E-3", Some("0.0025")),
            ("0.1e+2", Some("10.0")),
            ("1.7976931348623157e308", None),
        ] {
            let line = format!("{{\"n\": {text}}}");
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            let expected = value["n"].to_string();
            if let Some(printed) = printed {
                assert_eq!(expected, printed, "{text}");
            }
            let (entries, numbers) = scanned(&line).unwrap();
            assert_eq!(entries[0].1, JsonValue::Number(0..expected.len()), "{text}");
            assert_eq!(numbers, expected, "{text}");
        }
    }

    #[test]
    fn anything_but_a_flat_object_without_escapes_is_declined() {
        for text in [
            r#"{"a": "b\"c"}"#,
            r#"{"a\u0062": 1}"#,
            "{\"a\": \"b\tc\"}",
            r#"{"a": [1]}"#,
            r#"{"a": {}}"#,
            r#"{"a": 01}"#,
            r#"{"a": 1.}"#,
            r#"{"a": .5}"#,
            r#"{"a": 1e}"#,
            r#"{"a": +1}"#,
            r#"{"a": -}"#,
            r#"{"a": 1e400}"#,
            r#"{"a": nul}"#,
            r#"{"a": nullx}"#,
            r#"{"a": True}"#,
            r#"{"a": 1,}"#,
            r#"{"a" 1}"#,
            r#"{"a": 1"#,
            r#"{"a": "b"#,
            r#"{"a": 1} x"#,
            r#"{"a": 1}}"#,
            r#"{a: 1}"#,
            r#"{,}"#,
            "[1]",
            "\"a\"",
            "12",
            "null",
            "",
        ] {
            assert!(scanned(text).is_none(), "{text}");
        }
    }

    #[test]
    fn a_hundred_thousand_keys_are_scanned_in_one_pass() {
        let mut line = String::from("{\"id\": \"P1\"");
        for n in 0..100_000 {
            line.push_str(&format!(", \"k{n}\": {n}"));
        }
        line.push('}');
        let (entries, numbers) = scanned(&line).unwrap();
        assert_eq!(entries.len(), 100_001);
        assert!(numbers.ends_with("9999899999"));
    }
}
