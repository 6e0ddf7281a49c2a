//! One JSONL line parsed straight into its keys and cells, borrowed from the line where they
//! need no unescaping: a `serde_json::Value` per line (a map, and a `String` per key and per
//! value, built and dropped again) was most of the typing threads' time on a JSONL export.
//! What it gives is what the `Value` gave: the keys in `Value`'s order (sorted; a key given
//! twice keeps its last value), the same texts for numbers and booleans, and the same errors.
//! The entries go into a list the caller hands in, so that one list serves every line.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

#[cfg(test)]
use super::jsonl_scan::scan_entries;

/// A value of a line's object, as far as a patient row can use it.
#[derive(Debug, PartialEq)]
pub(super) enum JsonValue<'a> {
    Null,
    /// A string, or a number or boolean as `Value` would print it.
    Text(Cow<'a, str>),
    /// A number of the object (not of a list), as `Value` would print it: its place in the
    /// text of the line's numbers ([`parse_entries`]' `numbers`), so that it needs no string
    /// of its own.
    Number(std::ops::Range<usize>),
    /// A list's scalars (its nulls left out); `None` when it holds a list or an object.
    List(Option<Vec<Cow<'a, str>>>),
    /// An object: nothing a patient row can use.
    Object,
}

/// A key of a line's object, as the line spells it (unescaped), and its value.
pub(super) type Entry<'a> = (Cow<'a, str>, JsonValue<'a>);

/// What a whole line holds, its object's entries aside.
#[derive(Debug, PartialEq)]
pub(super) enum Shape {
    /// An object: its entries are in the list given to [`parse_entries`].
    Object,
    /// Anything but an object: what it is, for the message ("a list").
    Not(&'static str),
}

/// Parses `text`, one line of a JSONL export, into `entries` (emptied first): an object's keys
/// and values in the order of the line, every one given ([`sort_entries`] puts them in
/// `Value`'s order), its numbers printed one after another into `numbers` (emptied first).
/// After an error `entries` holds what was read before it.
/// The typing threads call the two on their own ([`super::jsonl_keys`]), to know a scanned
/// line is flat; this is what they give together, for the tests.
#[cfg(test)]
pub(super) fn parse_entries<'a>(
    text: &'a str,
    entries: &mut Vec<Entry<'a>>,
    numbers: &mut String,
) -> Result<Shape, serde_json::Error> {
    // Nearly every line of an export is a flat object without escapes: scanned on its own.
    match scan_entries(text, entries, numbers) {
        Some(shape) => Ok(shape),
        None => parse_entries_serde(text, entries, numbers),
    }
}

/// [`parse_entries`] by serde_json alone: every line the scanner declines, and the measure
/// of what the scanner gives.
pub(super) fn parse_entries_serde<'a>(
    text: &'a str,
    entries: &mut Vec<Entry<'a>>,
    numbers: &mut String,
) -> Result<Shape, serde_json::Error> {
    entries.clear();
    numbers.clear();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let shape = deserializer.deserialize_any(LineVisitor { entries, numbers })?;
    deserializer.end()?;
    Ok(shape)
}

/// `entries` in `Value`'s order: sorted by key, and a key given twice holds its last value.
/// Lines whose keys are already in order, each once (every line serde_json writes), are only
/// looked at.
pub(super) fn sort_entries(entries: &mut Vec<Entry<'_>>) {
    if entries.windows(2).all(|pair| pair[0].0 < pair[1].0) {
        return;
    }
    // The sort is stable, so the last of equal keys is last.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
}

struct LineVisitor<'e, 'de> {
    entries: &'e mut Vec<Entry<'de>>,
    numbers: &'e mut String,
}

impl<'de> Visitor<'de> for LineVisitor<'_, 'de> {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Shape::Not("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Shape::Not("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Shape::Not("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Shape::Not("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Shape::Not("a string"))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Shape::Not("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Read to its end, so that a syntax error in it is the one `Value` gave.
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Shape::Not("a list"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let numbers = Some(&mut *self.numbers);
            let value = map.next_value_seed(ValueVisitor {
                in_list: false,
                numbers,
            })?;
            self.entries.push((key, value));
        }
        Ok(Shape::Object)
    }
}

/// A string, borrowed from the line when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// Reads a value; in a list, a nested list reads as [`JsonValue::Object`] (neither can be
/// used there). Numbers are printed into `numbers` when it is given, else each into a string.
struct ValueVisitor<'n> {
    in_list: bool,
    numbers: Option<&'n mut String>,
}

impl<'de> DeserializeSeed<'de> for ValueVisitor<'_> {
    type Value = JsonValue<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl ValueVisitor<'_> {
    /// `number` as `serde_json::Number` prints it, as `Value` did.
    fn number<'de>(self, number: serde_json::Number) -> JsonValue<'de> {
        use std::fmt::Write;
        match self.numbers {
            Some(numbers) => {
                let start = numbers.len();
                // Writing into a `String` cannot fail.
                let _ = write!(numbers, "{number}");
                JsonValue::Number(start..numbers.len())
            }
            None => JsonValue::Text(Cow::Owned(number.to_string())),
        }
    }
}

impl<'de> Visitor<'de> for ValueVisitor<'_> {
    type Value = JsonValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, yes: bool) -> Result<Self::Value, E> {
        Ok(JsonValue::Text(Cow::Borrowed(if yes {
            "true"
        } else {
            "false"
        })))
    }

    fn visit_i64<E>(self, number: i64) -> Result<Self::Value, E> {
        Ok(self.number(number.into()))
    }

    fn visit_u64<E>(self, number: u64) -> Result<Self::Value, E> {
        Ok(self.number(number.into()))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Self::Value, E> {
        match serde_json::Number::from_f64(number) {
            Some(number) => Ok(self.number(number)),
            // `Value` reads a number that is not finite as null.
            None => Ok(JsonValue::Null),
        }
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(JsonValue::Text(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(JsonValue::Text(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
        Ok(JsonValue::Text(Cow::Owned(text)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(JsonValue::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.in_list {
            while seq.next_element::<Skip>()?.is_some() {}
            return Ok(JsonValue::Object);
        }
        let mut items = Some(Vec::new());
        while let Some(item) = seq.next_element::<ListItem<'de>>()? {
            match (item.0, items.as_mut()) {
                (JsonValue::Text(text), Some(items)) => items.push(text),
                (JsonValue::Null, _) | (_, None) => {}
                // A list or an object in the list: the whole is read, and refused after.
                (JsonValue::List(_) | JsonValue::Object, Some(_)) => items = None,
                // Not given a place for numbers: a list's are strings of their own.
                (JsonValue::Number(_), Some(_)) => unreachable!("list numbers are text"),
            }
        }
        Ok(JsonValue::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(JsonValue::Object)
    }
}

/// A value read only to be checked and passed over. Not serde's `IgnoredAny`: serde_json
/// passes over that without its nesting limit, and `Value` refused a line nested too deep.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SkipVisitor;
        impl<'de> Visitor<'de> for SkipVisitor {
            type Value = Skip;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
                Ok(Skip)
            }

            fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
                Ok(Skip)
            }

            fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
                Ok(Skip)
            }

            fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
                Ok(Skip)
            }

            fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
                Ok(Skip)
            }

            fn visit_unit<E>(self) -> Result<Skip, E> {
                Ok(Skip)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
                while seq.next_element::<Skip>()?.is_some() {}
                Ok(Skip)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
                while map.next_entry::<Skip, Skip>()?.is_some() {}
                Ok(Skip)
            }
        }
        deserializer.deserialize_any(SkipVisitor)
    }
}

/// An item of a list.
struct ListItem<'a>(JsonValue<'a>);

impl<'de> Deserialize<'de> for ListItem<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ValueVisitor {
                in_list: true,
                numbers: None,
            })
            .map(ListItem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What a whole line holds, its entries in `Value`'s order.
    #[derive(Debug, PartialEq)]
    enum JsonLine<'a> {
        Object(Vec<Entry<'a>>),
        Not(&'static str),
    }

    /// The line's entries in `Value`'s order, numbers as text.
    fn parse_line(text: &str) -> Result<JsonLine<'_>, serde_json::Error> {
        let (mut entries, mut numbers) = (Vec::new(), String::new());
        Ok(match parse_entries(text, &mut entries, &mut numbers)? {
            Shape::Object => {
                sort_entries(&mut entries);
                for (_, value) in &mut entries {
                    if let JsonValue::Number(place) = value {
                        *value = JsonValue::Text(Cow::Owned(numbers[place.clone()].to_owned()));
                    }
                }
                JsonLine::Object(entries)
            }
            Shape::Not(found) => JsonLine::Not(found),
        })
    }

    /// What the `Value` this replaces gave for `text`: the same keys in the same order with
    /// the same texts, or the same kind of non-object, or the same error message.
    fn as_value_gives(text: &str) -> Result<JsonLine<'static>, String> {
        let value = serde_json::from_str::<Value>(text).map_err(|err| err.to_string())?;
        let object = match value {
            Value::Object(object) => object,
            Value::Null => return Ok(JsonLine::Not("null")),
            Value::Bool(_) => return Ok(JsonLine::Not("a boolean")),
            Value::Number(_) => return Ok(JsonLine::Not("a number")),
            Value::String(_) => return Ok(JsonLine::Not("a string")),
            Value::Array(_) => return Ok(JsonLine::Not("a list")),
        };
        let scalar = |value: &Value| match value {
            Value::String(text) => Some(text.clone()),
            Value::Bool(yes) => Some(yes.to_string()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        };
        let cell = |value: Value| match value {
            Value::Null => JsonValue::Null,
            Value::Object(_) => JsonValue::Object,
            Value::Array(items) => {
                let nested = items
                    .iter()
                    .any(|item| matches!(item, Value::Array(_) | Value::Object(_)));
                let scalars = items.iter().filter_map(scalar).map(Cow::Owned).collect();
                JsonValue::List((!nested).then_some(scalars))
            }
            other => JsonValue::Text(Cow::Owned(scalar(&other).unwrap_or_default())),
        };
        let entries = object
            .into_iter()
            .map(|(key, value)| (Cow::Owned(key), cell(value)))
            .collect();
        Ok(JsonLine::Object(entries))
    }

    #[test]
    fn a_line_reads_as_its_value_did() {
        for text in [
            r#"{"id": "P1", "name": "山田", "visits": 12, "vip": true, "doctor": null}"#,
            r#"{"z": 1, "a": 2, "m": 3, "a": 4}"#,
            r#"{"id": "P\"1\\", "n\u00e4me": "x\ny", "tags": ["a", null, 3, false]}"#,
            r#"{"tags": [["nested"]], "b": {"c": [1, {"d": null}]}, "e": []}"#,
            r#"{"big": 18446744073709551616, "neg": -12, "f": 1.50, "e": 1e3, "z": -0.0}"#,
            r#"{"tags": [{"a": 1}, "x"]}"#,
            "{}",
            "  {\"id\":\"P1\"}  ",
            "[1, 2]",
            "\"P1\"",
            "12",
            "null",
            "true",
            r#"{"id": "P1", "stage": "booked""#,
            r#"{"id": "P1",}"#,
            r#"{"id": "P1"} x"#,
            r#"{"id": 1e400}"#,
            r#"{"id": "\ud800"}"#,
            r#"[1, 2"#,
            r#"{"a": [1, {"b": ]}"#,
            "",
        ] {
            let parsed = parse_line(text).map_err(|err| err.to_string());
            assert_eq!(parsed, as_value_gives(text), "{text}");
        }
        let deep = format!("{{\"a\": {}1{}}}", "[".repeat(200), "]".repeat(200));
        let parsed = parse_line(&deep).map_err(|err| err.to_string());
        assert_eq!(parsed, as_value_gives(&deep));
    }

    #[test]
    fn unescaped_keys_and_strings_are_borrowed() {
        let Ok(JsonLine::Object(entries)) = parse_line(r#"{"id": "P1", "n\u0061me": "a\"b"}"#)
        else {
            panic!("an object");
        };
        assert!(matches!(entries[0].0, Cow::Borrowed("id")));
        assert!(matches!(entries[0].1, JsonValue::Text(Cow::Borrowed("P1"))));
        assert_eq!(entries[1].0, "name");
        assert!(matches!(&entries[1].1, JsonValue::Text(Cow::Owned(text)) if text == "a\"b"));
    }
}
