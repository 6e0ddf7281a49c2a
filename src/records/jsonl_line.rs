//! One JSONL line parsed straight into its keys and cells, borrowed from the line where they
//! need no unescaping: a `serde_json::Value` per line (a map, and a `String` per key and per
//! value, built and dropped again) was most of the typing threads' time on a JSONL export.
//! What it gives is what the `Value` gave: the keys in `Value`'s order (sorted; a key given
//! twice keeps its last value), the same texts for numbers and booleans, and the same errors.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A value of a line's object, as far as a patient row can use it.
#[derive(Debug, PartialEq)]
pub(super) enum JsonValue<'a> {
    Null,
    /// A string, or a number or boolean as `Value` would print it.
    Text(Cow<'a, str>),
    /// A list's scalars (its nulls left out); `None` when it holds a list or an object.
    List(Option<Vec<Cow<'a, str>>>),
    /// An object: nothing a patient row can use.
    Object,
}

/// What a whole line holds.
#[derive(Debug, PartialEq)]
pub(super) enum JsonLine<'a> {
    /// An object's keys and values, sorted by key, each key once (its last value).
    Object(Vec<(Cow<'a, str>, JsonValue<'a>)>),
    /// Anything but an object: what it is, for the message ("a list").
    Not(&'static str),
}

/// Parses `text`, one line of a JSONL export.
pub(super) fn parse_line(text: &str) -> Result<JsonLine<'_>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let line = deserializer.deserialize_any(LineVisitor)?;
    deserializer.end()?;
    Ok(line)
}

struct LineVisitor;

impl<'de> Visitor<'de> for LineVisitor {
    type Value = JsonLine<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(JsonLine::Not("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(JsonLine::Not("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(JsonLine::Not("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(JsonLine::Not("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(JsonLine::Not("a string"))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(JsonLine::Not("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Read to its end, so that a syntax error in it is the one `Value` gave.
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(JsonLine::Not("a list"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries: Vec<(Cow<'de, str>, JsonValue<'de>)> =
            Vec::with_capacity(map.size_hint().unwrap_or(16).min(64));
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let value = map.next_value::<JsonValue<'de>>()?;
            entries.push((key, value));
        }
        // `Value`'s map: sorted by key, and a key given twice holds its last value (the sort
        // is stable, so the last of equal keys is last).
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        Ok(JsonLine::Object(entries))
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

impl<'de> Deserialize<'de> for JsonValue<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor { in_list: false })
    }
}

/// Reads a value; in a list, a nested list reads as [`JsonValue::Object`] (neither can be
/// used there).
struct ValueVisitor {
    in_list: bool,
}

impl<'de> Visitor<'de> for ValueVisitor {
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

    // Numbers are printed as `serde_json::Number` prints them, as `Value` did.
    fn visit_i64<E>(self, number: i64) -> Result<Self::Value, E> {
        Ok(JsonValue::Text(Cow::Owned(
            serde_json::Number::from(number).to_string(),
        )))
    }

    fn visit_u64<E>(self, number: u64) -> Result<Self::Value, E> {
        Ok(JsonValue::Text(Cow::Owned(
            serde_json::Number::from(number).to_string(),
        )))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Self::Value, E> {
        match serde_json::Number::from_f64(number) {
            Some(number) => Ok(JsonValue::Text(Cow::Owned(number.to_string()))),
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
            .deserialize_any(ValueVisitor { in_list: true })
            .map(ListItem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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
