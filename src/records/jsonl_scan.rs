//! A JSONL line read without serde_json when it is the flat object an export writes: string
//! keys, and values that are strings, numbers, `true`, `false` or `null`, with no escapes.
//! serde_json's own parsing (its string scanning and map access) was most of what a JSONL line
//! cost beyond a CSV row. Anything else (an escape, a list or an object as a value, a number
//! it would print differently, any syntax error) is declined, and the caller reads the line
//! with serde_json as before: the results, errors included, are the same either way.
//! [`super::jsonl_cells`] goes further for the typing threads, on this scanner.

use std::borrow::Cow;

use super::jsonl_line::{Entry, JsonValue, Shape};
use super::jsonl_order::KeyOrder;
use crate::json_plain::plain_len;

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
pub(super) struct Scan<'a> {
    pub(super) text: &'a str,
    pub(super) at: usize,
}

impl<'a> Scan<'a> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// Passes over what JSON counts as whitespace (and no other).
    pub(super) fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    pub(super) fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string without escapes or control characters (which serde_json refuses), borrowed.
    #[inline(always)]
    pub(super) fn string(&mut self) -> Option<&'a str> {
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

    /// A key and the `:` after it, and its slot along `order` (`None` when not known, or
    /// `place` is `None`). The key expected at `place` is tried first: its bytes, its closing
    /// quote and the colon compared where the line has them, in one go; then all the spellings,
    /// by a binary search (a walk from `place` cost a line of keys alternating between the
    /// ends of a thousand known ones a thousand compares a key).
    #[inline]
    pub(super) fn key(
        &mut self,
        order: &KeyOrder,
        place: Option<usize>,
    ) -> Option<(&'a str, Option<usize>)> {
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

    /// `true` or `false` as the text a cell holds, `Some(None)` for `null`; declined (`None`)
    /// for anything else.
    pub(super) fn literal(&mut self) -> Option<Option<&'static str>> {
        let (word, text) = match self.peek()? {
            b'n' => ("null", None),
            b't' => ("true", Some("true")),
            b'f' => ("false", Some("false")),
            _ => return None,
        };
        self.word(word)?;
        Some(text)
    }

    fn value(&mut self, numbers: &mut String) -> Option<JsonValue<'a>> {
        Some(match self.peek()? {
            b'"' => JsonValue::Text(Cow::Borrowed(self.string()?)),
            b'-' | b'0'..=b'9' => self.number(numbers)?,
            // A list, an object, or not JSON, when not a literal.
            _ => match self.literal()? {
                Some(text) => JsonValue::Text(Cow::Borrowed(text)),
                None => JsonValue::Null,
            },
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
    pub(super) fn number_text(&mut self) -> Option<Cow<'a, str>> {
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
