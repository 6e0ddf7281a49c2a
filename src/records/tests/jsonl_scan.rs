//! A JSONL line gives what serde_json gave for it, whether the scanner reads it or declines it:
//! the same keys and cells, the same numbers' texts, or the same error.

use proptest::prelude::*;

use crate::records::columns::{Column, Resolver};
use crate::records::jsonl_cells::ScannedCells;
use crate::records::jsonl_line::{parse_entries, parse_entries_serde, Entry, JsonValue, Shape};
use crate::records::jsonl_order::KeyOrder;
use crate::records::jsonl_scan::{scan_entries, scan_keyed};
use crate::records::row::Cell;

/// What a line reads as: its shape, entries and numbers' text, or serde_json's message.
type Read<'a> = Result<(Shape, Vec<Entry<'a>>, String), String>;

fn serde_reads(text: &str) -> Read<'_> {
    let (mut entries, mut numbers) = (Vec::new(), String::new());
    let shape = parse_entries_serde(text, &mut entries, &mut numbers).map_err(|e| e.to_string())?;
    Ok((shape, entries, numbers))
}

fn reads(text: &str) -> Read<'_> {
    let (mut entries, mut numbers) = (Vec::new(), String::new());
    let shape = parse_entries(text, &mut entries, &mut numbers).map_err(|e| e.to_string())?;
    Ok((shape, entries, numbers))
}

fn scanned(text: &str) -> Option<(Shape, Vec<Entry<'_>>, String)> {
    let (mut entries, mut numbers) = (Vec::new(), String::new());
    let shape = scan_entries(text, &mut entries, &mut numbers)?;
    Some((shape, entries, numbers))
}

/// A piece of a JSON string's inside: a character as it stands, or an escape (some invalid).
fn string_piece(escapes: bool) -> BoxedStrategy<String> {
    let plain = prop_oneof![
        "[a-zA-Z0-9_ .:;/-]",
        "[患者内科高橋ＩＤé\u{3000}\u{a0}\u{7f}\u{1F600}]",
    ]
    .boxed();
    if !escapes {
        return plain;
    }
    prop_oneof![
        6 => plain,
        1 => prop::sample::select(vec![
            "\\\"", "\\\\", "\\/", "\\n", "\\t", "\\b", "\\f", "\\r", "\\u0041", "\\u00e9",
            "\\u60a3", "\\ud83d\\ude00", "\\ud800", "\\udc00", "\\u12", "\\x", "\\", "\"",
            "\t", "\u{1}", "\u{1f}",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

fn json_string(escapes: bool) -> impl Strategy<Value = String> {
    prop::collection::vec(string_piece(escapes), 0..8)
        .prop_map(|pieces| format!("\"{}\"", pieces.concat()))
}

/// A number as an export might write it, or one JSON refuses.
fn number(valid_only: bool) -> BoxedStrategy<String> {
    let printed = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(|n| n.to_string()),
        (any::<i32>(), 0u32..1000).prop_map(|(whole, part)| format!("{whole}.{part}")),
        // Past ±308 an exponent is out of range, or its number rounds to zero.
        (
            -40i32..40,
            if valid_only {
                -300i32..300
            } else {
                -400i32..400
            }
        )
            .prop_map(|(m, e)| format!("{m}e{e}")),
        "-?[1-9][0-9]{17,40}",
        prop::sample::select(vec![
            "0",
            "-0",
            "0.0",
            "-0.0",
            "1.0",
            "1e5",
            "1E+5",
            "2.5e-3",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "123456789012345678",
            "1234567890123456789",
            "1e308",
            "1e-400",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed();
    if valid_only {
        return printed;
    }
    prop_oneof![
        4 => printed,
        1 => prop::sample::select(vec![
            "01", "-01", "00", "1.", ".5", "1e", "1e+", "-", "+1", "1e400", "-1e400", "0x1",
            "1.5.2", "1ee2", "NaN", "Infinity",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

/// A value of a line's object; with `flat` only what an export writes.
fn value(flat: bool) -> BoxedStrategy<String> {
    let scalar = prop_oneof![
        3 => json_string(!flat),
        2 => number(flat),
        1 => prop::sample::select(vec!["true", "false", "null"]).prop_map(str::to_owned),
    ];
    if flat {
        return scalar.boxed();
    }
    prop_oneof![
        6 => scalar,
        1 => prop::sample::select(vec![
            "[]", "[1, \"a\", null, true]", "[[1]]", "{}", "{\"a\": 1}", "[{\"a\": [2]}]",
            "nul", "tru", "True", "nullx", "'a'", "[1,", "{\"a\"",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

/// Whitespace between tokens: JSON's own, or (not flat) a no-break or ideographic space.
fn space(flat: bool) -> BoxedStrategy<String> {
    if flat {
        "[ \t\r\n]{0,2}".boxed()
    } else {
        prop_oneof![9 => "[ \t\r\n]{0,2}", 1 => "[\u{a0}\u{3000}\u{b}]"].boxed()
    }
}

/// A line holding one object; keys may repeat and come in any order.
fn object(flat: bool) -> impl Strategy<Value = String> {
    let entry = (
        space(flat),
        json_string(!flat),
        space(flat),
        space(flat),
        value(flat),
        space(flat),
    );
    (
        space(flat),
        prop::collection::vec(entry, 0..8),
        space(flat),
        space(flat),
    )
        .prop_map(|(before, entries, inside, after)| {
            let entries: Vec<String> = entries
                .into_iter()
                .map(|(a, key, b, c, value, d)| format!("{a}{key}{b}:{c}{value}{d}"))
                .collect();
            format!("{before}{{{inside}{}}}{after}", entries.join(","))
        })
}

/// A line as a file might hold it: an object, perhaps cut short or garbled, or no object.
fn line() -> impl Strategy<Value = String> {
    let garbled = (object(false), any::<prop::sample::Index>(), 0usize..4, ".").prop_map(
        |(line, at, how, extra)| {
            let mut chars: Vec<char> = line.chars().collect();
            let at = at.index(chars.len() + 1);
            match how {
                0 => chars.truncate(at),
                1 => chars.insert(at, extra.chars().next().unwrap_or('x')),
                2 if at < chars.len() => {
                    chars.remove(at);
                }
                _ => chars.insert(at, ['{', '}', '[', ',', ':', '"', '\\'][at % 7]),
            }
            chars.into_iter().collect()
        },
    );
    prop_oneof![
        6 => object(false),
        3 => garbled,
        1 => prop::sample::select(vec!["[1, 2]", "\"P1\"", "12", "null", "true", "", "{"])
            .prop_map(str::to_owned),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    #[test]
    fn a_line_reads_as_serde_json_read_it(text in line()) {
        let serde = serde_reads(&text);
        prop_assert_eq!(&reads(&text), &serde, "{:?}", text);
        if let Some(scanned) = scanned(&text) {
            prop_assert_eq!(Ok(scanned), serde, "{:?}", text);
        }
    }

    #[test]
    fn an_exports_flat_line_is_scanned(text in object(true)) {
        let scanned = scanned(&text);
        prop_assert!(scanned.is_some(), "declined {:?}", text);
        prop_assert_eq!(Ok(scanned.unwrap()), serde_reads(&text), "{:?}", text);
    }
}

#[test]
fn deep_nesting_and_many_keys_read_as_serde_json_read_them() {
    let deep = format!("{{\"a\": {}1{}}}", "[".repeat(200), "]".repeat(200));
    assert_eq!(reads(&deep), serde_reads(&deep));
    assert!(reads(&deep).is_err(), "serde_json's nesting limit");
    let mut wide = String::from("{");
    for n in 0..100_000 {
        wide.push_str(&format!("\"k{}\": {n}.5, ", 99_999 - n));
    }
    wide.push_str("\"id\": \"P1\"}");
    assert!(scanned(&wide).is_some());
    assert_eq!(reads(&wide), serde_reads(&wide));
}

/// Keys to build lines from: some a prefix of others (`i`, `id`, `idx`), some of one length
/// (`ab`, `ba`, `id`), the empty key, a non-ASCII one and one a line must escape.
const KEYS: [&str; 11] = [
    "id", "i", "idx", "ab", "ba", "", "name", "nam", "患者ID", "a\"b", "stage",
];

/// A key as a line writes it: as it is, or (`escaped`) with its first character as `\u`.
fn written_key(key: &str, escaped: bool) -> String {
    let inside = key.replace('"', "\\\"");
    match key.chars().next() {
        Some(first) if escaped => {
            format!("\"\\u{:04x}{}\"", first as u32, &inside[first.len_utf8()..])
        }
        _ => format!("\"{inside}\""),
    }
}

/// One entry of a line: which of [`KEYS`], whether its key is escaped, whether a space comes
/// before the colon, and its value (with `escapes`, some values have escapes, valid or not).
fn keyed_entry(escapes: bool) -> impl Strategy<Value = (usize, bool, bool, String)> {
    let mut values = vec!["\"v\"", "\"id\"", "\"\"", "12", "null", "\"患者\""];
    if escapes {
        values.extend([
            r#""\u60a3\u8005""#,
            r#""a\/b\\c\"d\n\t\r\b\f""#,
            r#""x\ud83d\ude00\u00e9\u0000""#,
            r#""\uD83D\uDE00\uABCD""#,
            r#""\ud800""#,
            r#""\ud800\u0041""#,
            r#""\ud83d\ud83d""#,
            r#""\udc00""#,
            r#""\x""#,
            r#""\u12""#,
            r#""\u12G4""#,
            r#""a\""#,
            r#"["a", 1, true, null, -0, 2.50]"#,
            r#"[]"#,
            r#"[ "\u00e9" ,"x" ]"#,
            r#"[null]"#,
            r#"[[1]]"#,
            r#"["a", {}]"#,
            r#"[1,]"#,
            r#"[1 2]"#,
            r#"{"a": 1}"#,
        ]);
    }
    (
        0..KEYS.len(),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        prop::sample::select(values),
    )
        .prop_map(|(key, escaped, spaced, value)| (key, escaped, spaced, value.to_owned()))
}

fn keyed_line(entries: &[(usize, bool, bool, String)]) -> String {
    let entries: Vec<String> = entries
        .iter()
        .map(|(key, escaped, spaced, value)| {
            let space = if *spaced { " " } else { "" };
            format!("{}{space}:{value}", written_key(KEYS[*key], *escaped))
        })
        .collect();
    format!("{{{}}}", entries.join(","))
}

/// `KEYS` picked by `known`, kept along a `KeyOrder` as a reader keeps them (sorted), and
/// the order of each of `lines` learnt where its keys are found in order.
fn learnt_order(known: &[bool], lines: &[Vec<usize>]) -> KeyOrder {
    let mut order = KeyOrder::default();
    for (column, key) in KEYS.iter().enumerate().filter(|(n, _)| known[*n]) {
        let slot = (0..order.len()).find(|&slot| order.get(slot).unwrap().0 > *key);
        order.insert(slot.unwrap_or(order.len()), key, column);
    }
    for line in lines {
        let mut slots = Vec::new();
        for &key in line {
            let place = slots.last().map_or(0, |slot| slot + 1);
            match order.find(place, KEYS[key]) {
                Some(slot) => slots.push(slot),
                None => break,
            }
        }
        if slots.len() == line.len() {
            order.learn(&slots);
        }
    }
    order
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Keys found by the order the lines before had them in, or among all keys known, whatever
    /// this line's order: changed, with keys left out, given twice, unknown, escaped or spaced.
    #[test]
    fn keys_found_by_the_last_lines_order_are_the_lines_keys(
        known in prop::collection::vec(prop::bool::weighted(0.8), KEYS.len()),
        before in prop::collection::vec(
            prop::collection::vec(0..KEYS.len(), 0..8).prop_map(|mut keys| {
                keys.sort_by_key(|&key| KEYS[key]);
                keys
            }),
            0..4,
        ),
        entries in prop::collection::vec(keyed_entry(false), 0..8),
        sorted in prop::bool::weighted(0.7),
    ) {
        let mut entries = entries;
        if sorted {
            entries.sort_by_key(|(key, ..)| KEYS[*key]);
        }
        let text = keyed_line(&entries);
        let order = learnt_order(&known, &before);
        let (mut got, mut numbers, mut slots) = (Vec::new(), String::new(), Vec::new());
        let Some(shape) = scan_keyed(&text, &mut got, &mut numbers, &order, &mut slots) else {
            // Declined: only a line with an escape is.
            prop_assert!(entries.iter().any(|(key, escaped, ..)| *escaped || KEYS[*key].contains('"')), "{:?}", text);
            return Ok(());
        };
        let keys: Vec<String> = got.iter().map(|(key, _)| key.to_string()).collect();
        prop_assert_eq!(Ok((shape, got, numbers)), serde_reads(&text), "{:?}", text);
        // The slots are the keys', in the line's order, for as long as they are known.
        for (at, &slot) in slots.iter().enumerate() {
            prop_assert_eq!(order.get(slot).map(|(key, _)| key), Some(keys[at].as_str()), "{:?}", text);
        }
        // And every key is found when all are known, in any order, given twice or not.
        let known = keys.iter().all(|key| order.find_anywhere(key).is_some());
        prop_assert_eq!(slots.len() == keys.len(), known, "{:?}", text);
    }
}

#[test]
fn a_key_and_its_colon_are_found_by_the_order_before_or_by_walking() {
    let order = learnt_order(&[true; KEYS.len()], &[vec![3, 0, 6, 10]]);
    let slots_of = |text: &str| {
        let (mut entries, mut numbers, mut slots) = (Vec::new(), String::new(), Vec::new());
        scan_keyed(text, &mut entries, &mut numbers, &order, &mut slots).map(|_| slots)
    };
    let slot = |key: &str| order.find(0, key).unwrap();
    let (ab, id, idx, name, stage) = (
        slot("ab"),
        slot("id"),
        slot("idx"),
        slot("name"),
        slot("stage"),
    );
    // As the line before, one left out, one added, a prefix of the expected key, a key the
    // expected one is a prefix of, a space before a colon.
    assert_eq!(
        slots_of(r#"{"ab":"x","id":"y","name":"z","stage":"s"}"#),
        Some(vec![ab, id, name, stage])
    );
    assert_eq!(slots_of(r#"{"ab":"x","name":"z"}"#), Some(vec![ab, name]));
    assert_eq!(
        slots_of(r#"{"ab":"x","id":"y","idx":"w","name":"z"}"#),
        Some(vec![ab, id, idx, name])
    );
    assert_eq!(slots_of(r#"{"ab":"x","i":"y"}"#), Some(vec![ab, slot("i")]));
    assert_eq!(slots_of(r#"{"ab":"x","idx":"y"}"#), Some(vec![ab, idx]));
    assert_eq!(slots_of(r#"{"ab" :"x","id" : "y"}"#), Some(vec![ab, id]));
    // Out of sorted order or twice: found all the same, in the line's order (an export may
    // write its keys in its columns' order). Unknown: found until then.
    assert_eq!(
        slots_of(r#"{"ab":"x","name":"z","id":"y"}"#),
        Some(vec![ab, name, id])
    );
    assert_eq!(
        slots_of(r#"{"stage":"s","name":"z","ab":"x","idx":"w"}"#),
        Some(vec![stage, name, ab, idx])
    );
    assert_eq!(slots_of(r#"{"ab":"x","ab":"z"}"#), Some(vec![ab, ab]));
    assert_eq!(slots_of(r#"{"zz":"x","ab":"z"}"#), Some(vec![]));
    assert_eq!(slots_of(r#"{"ab":"x","zz":"y","id":"z"}"#), Some(vec![ab]));
    // The expected key's bytes in a key that goes on, or not closed: not taken for it.
    assert_eq!(slots_of(r#"{"abc":"x"}"#), Some(vec![]));
    assert_eq!(slots_of(r#"{"ab"#), None);
    assert_eq!(slots_of(r#"{"ab""#), None);
}

/// A line's cells as (key, text), in the line's order.
type CellTexts = Vec<(String, String)>;

fn cell_texts<'a>(cells: impl Iterator<Item = (&'a Column, Cell<'a>)>) -> CellTexts {
    cells
        .map(|(column, cell)| match cell {
            Cell::Text(text) => (column.header.clone(), text.into_owned()),
            Cell::List(items) => (column.header.clone(), listed(&items)),
        })
        .collect()
}

/// A list's items as one text, for comparing.
fn listed(items: &[std::borrow::Cow<'_, str>]) -> String {
    format!("[{}]", items.join("|"))
}

/// Each key of `text` with its value's text (`None` for null), when serde_json reads it as a
/// flat object.
fn serde_entries(text: &str) -> Option<Vec<(String, Option<String>)>> {
    let Ok((Shape::Object, entries, numbers)) = serde_reads(text) else {
        return None;
    };
    let mut read = Vec::new();
    for (key, value) in entries {
        let text = match value {
            JsonValue::Text(text) => Some(text.into_owned()),
            JsonValue::Number(place) => Some(numbers[place].to_owned()),
            JsonValue::Null => None,
            JsonValue::List(Some(items)) => Some(listed(&items)),
            JsonValue::List(None) | JsonValue::Object => return None,
        };
        read.push((key.into_owned(), text));
    }
    Some(read)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// A line typed as it is scanned gives serde_json's values, each with its key's column,
    /// in the line's order; it is read whole exactly when the scanner reads the line with
    /// every key known and none twice (else it is declined and typed the other way), whatever
    /// order the lines before had.
    #[test]
    fn cells_scanned_are_serde_jsons_values_in_the_lines_order(
        known in prop::collection::vec(prop::bool::weighted(0.9), KEYS.len()),
        before in prop::collection::vec(prop::collection::vec(0..KEYS.len(), 0..8), 0..4),
        entries in prop::collection::vec(keyed_entry(true), 0..8),
        garble in prop::option::weighted(0.2, (any::<prop::sample::Index>(), ".")),
    ) {
        let mut text = keyed_line(&entries);
        if let Some((at, extra)) = garble {
            let mut chars: Vec<char> = text.chars().collect();
            chars.insert(at.index(chars.len() + 1), extra.chars().next().unwrap_or('x'));
            text = chars.into_iter().collect();
        }
        let order = learnt_order(&known, &before);
        let resolver = Resolver::new(&super::schema(), None);
        let mut columns = vec![resolver.resolve("unused"); KEYS.len()];
        for (column, key) in KEYS.iter().enumerate() {
            columns[column] = resolver.resolve(key);
            columns[column].header = (*key).to_owned();
        }
        let (mut slots, mut seen) = (Vec::new(), vec![0; order.len()]);
        let mut cells = ScannedCells::new(&text, &order, &columns, &mut slots, &mut seen, 1);
        let got = cell_texts(&mut cells);
        let (whole, sorted) = (cells.whole(), cells.sorted());
        // Read whole exactly when serde_json reads a flat object whose keys are all known,
        // none twice and none escaped (an escaped key is declined).
        let serde = serde_entries(&text);
        let keys: Vec<&str> = serde.iter().flatten().map(|(key, _)| key.as_str()).collect();
        let mut unique = keys.clone();
        unique.sort_unstable();
        unique.dedup();
        let escaped = entries.iter().any(|(key, escaped, ..)| {
            let key = KEYS[*key];
            (*escaped && !key.is_empty()) || key.contains('"')
        });
        let known = keys.iter().all(|key| order.find_anywhere(key).is_some());
        let readable = serde.is_some() && known && unique.len() == keys.len() && !escaped;
        prop_assert_eq!(whole, readable, "{:?}", text);
        if whole {
            let cells = serde.iter().flatten().filter_map(|(key, text)| Some((key.clone(), text.clone()?)));
            prop_assert_eq!(got, cells.collect::<CellTexts>(), "{:?}", text);
            prop_assert_eq!(sorted, keys.windows(2).all(|pair| pair[0] < pair[1]), "{:?}", text);
            let found: Vec<Option<usize>> = keys.iter().map(|key| order.find_anywhere(key)).collect();
            prop_assert_eq!(slots.into_iter().map(Some).collect::<Vec<_>>(), found, "{:?}", text);
        }
    }
}
