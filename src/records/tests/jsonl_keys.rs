//! JSONL keys are resolved once per spelling and kept from line to line (compared with the
//! line before's, looked up, or resolved anew); whatever a line's neighbours, it reads exactly
//! as it reads alone in a file of its own.

use super::*;

/// `患者ID` means `id`, so a line with both has two cells for one field.
const MAPPING: &str = "[columns]\n\"患者ID\" = \"id\"\n\"メモ\" = \"memo\"\n";

/// Each line of `text` read in a file of its own, numbered as in `text`.
fn alone(text: &str, options: &ReadOptions) -> Rows {
    alone_reports(text, options).0
}

/// [`alone`], with the reports of kept rows' unreadable cells (line, report).
fn alone_reports(text: &str, options: &ReadOptions) -> (Rows, Vec<(usize, String)>) {
    let (mut rows, mut reports) = (Vec::new(), Vec::new());
    for (index, line) in text.lines().enumerate() {
        let (one, one_reports) = read_reports(RecordFormat::Jsonl, line, options);
        rows.extend(one.into_iter().map(|row| match row {
            Ok(mut record) => {
                record.line = index + 1;
                Ok(record)
            }
            Err(mut err) => {
                err.line = index + 1;
                Err(err)
            }
        }));
        reports.extend(
            one_reports
                .into_iter()
                .map(|(_, report)| (index + 1, report)),
        );
    }
    (rows, reports)
}

/// The places `0..n` in some order.
fn shuffled(n: usize) -> impl proptest::strategy::Strategy<Value = Vec<usize>> {
    proptest::strategy::Strategy::prop_shuffle(proptest::strategy::Just((0..n).collect()))
}

/// Ids are all different, so every row is judged on its own cells.
#[test]
fn a_line_reads_as_it_reads_alone_whatever_the_lines_before() {
    let text = r#"{"id":"P1","stage":"booked","memo":"a"}
{"id":"P2","stage":"booked","memo":"b"}
{"memo":"c","id":"P3"}
{" id":"P4","memo":"d"}
{"i\u0064":"P5","患者ID":"X"}
{"id":"P6","患者ID":null}
{"id":"P7","患者ID":"P7"}
{"患者ID":"P7b","id":null,"メモ":"m"}
{"id":"P8","id":"P9"}
{"id":"P10","age":3,"tags":["a",1,true]}
{"id":"P11","name":{"x":1}}
{"id":"P12","name":{"x":1},"患者ID":"x"}
{"id":"P13","memo":"e","メモ":"f"}
{"id":"P14","":"x","  ":"y"}
{"id":"P15","memo":null,"Memo":"z","visits":12}
{"id":"P16","memo":"g","visits":13}
{"id":"P17","memo":"h","visits":1.5e3}
{"id":"P18","memo":"g","visits":13}
[1]
{"id":"P19","memo":"g","visits":13}
{"id":"P20","stage":"unknown","memo":"x"}
{"id":"P21","stage":"booked","memo":"a"}
{"メモ":"f","id":"P22","memo":"e"}
{"メモ":null,"id":"P23","memo":"e"}
"#;
    let options = with_mapping(MAPPING);
    let rows = read_with(RecordFormat::Jsonl, text, &options).unwrap();
    assert_eq!(rows, alone(text, &options));
    let (good, bad) = split(rows);
    assert_eq!(
        good,
        [
            "P1", "P2", "P3", "P4", "P6", "P7b", "P9", "P10", "P14", "P15", "P16", "P17", "P18",
            "P19", "P20", "P21", "P23"
        ]
    );
    let bad: Vec<(usize, &str)> = bad.iter().map(|(line, m)| (*line, m.as_str())).collect();
    assert_eq!(bad[0], (5, "fields `id` and `患者ID` both mean `id`"));
    assert_eq!(bad[1], (7, "fields `id` and `患者ID` both mean `id`"));
    assert!(bad[2].1.starts_with("field `name`: nested"), "{bad:?}");
    assert!(bad[3].1.starts_with("field `name`: nested"), "{bad:?}");
    assert_eq!(bad[4], (13, "fields `memo` and `メモ` both mean `memo`"));
    // The same two, known keys out of sorted order: found clashing in the keys' sorted order.
    assert_eq!(bad[6], (23, "fields `memo` and `メモ` both mean `memo`"));
    assert_eq!(bad.len(), 7, "{bad:?}");
}

/// Broken, deep and odd lines between good ones: each refused or read as it is alone, and the
/// lines after them read as before.
#[test]
fn hostile_lines_leave_the_keys_of_the_others_alone() {
    let deep = format!(
        "{{\"id\":\"D1\",\"n\":{}1{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let lines = [
        r#"{"id":"H1","memo":"a","visits":-0.0}"#,
        r#"{"id":"H2","memo\x":"a"}"#,
        r#"{"id":"H3","memo":"\ud800"}"#,
        &deep,
        r#"{"id":"H4","memo":"b","visits":18446744073709551616}"#,
        r#"{"id":"H5","memo":"c","visits":1e400}"#,
        r#"{"visits":12,"memo":"d","id":"H6","memo":"e"}"#,
        r#"{"id":"H7","memo":"f","visits":[1,2.5,null,true]}"#,
        r#"{"id":"H8","memo":"g","visits":7}"#,
    ];
    let text = lines.join("\n");
    let options = ReadOptions::default();
    let rows = read_with(RecordFormat::Jsonl, text.as_str(), &options).unwrap();
    assert_eq!(rows, alone(&text, &options));
    let (good, bad) = split(rows);
    assert_eq!(good, ["H1", "H4", "H6", "H7", "H8"]);
    // A bad escape, a lone surrogate, nesting past serde_json's limit, a number out of range.
    let lines: Vec<usize> = bad.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [2, 3, 4, 6]);
}

/// Past the limit of keys kept, a line's new keys are resolved for it alone, and two of them
/// meaning one field are still refused.
#[test]
fn keys_past_the_cache_limit_read_as_they_read_alone() {
    let mut text = String::new();
    for n in 0..1100 {
        text.push_str(&format!("{{\"id\":\"P{n}\",\"k{n}\":\"v\"}}\n"));
    }
    text.push_str("{\"id\":\"Q1\",\"患者ID\":\"x\"}\n");
    text.push_str("{\"id\":\"Q2\",\"患者ID\":\"x\"}\n");
    text.push_str("{\"id\":\"Q3\",\"k5\":\"w\",\"memo\":\"m\",\"メモ\":\"n\"}\n");
    text.push_str("{\"id\":\"Q4\",\"k5\":\"w\",\"late\":\"m\"}\n");
    let options = with_mapping(MAPPING);
    let rows = read_with(RecordFormat::Jsonl, text.as_str(), &options).unwrap();
    assert_eq!(rows, alone(&text, &options));
    let (good, bad) = split(rows);
    assert_eq!(good.len(), 1101);
    assert_eq!(
        bad,
        [
            (1101, "fields `id` and `患者ID` both mean `id`".to_owned()),
            (1102, "fields `id` and `患者ID` both mean `id`".to_owned()),
            (1103, "fields `memo` and `メモ` both mean `memo`".to_owned()),
        ]
    );
}

/// Two spellings of one key (`id`, ` id`) on one line are two cells for one field, whether
/// the line is a file's first or comes after lines that had no two keys meaning one field.
#[test]
fn two_spellings_of_one_key_on_a_line_are_refused_after_clean_lines() {
    let text = "{\"id\":\"P1\",\"memo\":\"a\"}\n{\"id\":\"P2\",\" id\":\"P3\"}\n{\"id\":\"P4\"}\n";
    let options = ReadOptions::default();
    let rows = read_with(RecordFormat::Jsonl, text, &options).unwrap();
    assert_eq!(rows, alone(text, &options));
    let (good, bad) = split(rows);
    assert_eq!(good, ["P1", "P4"]);
    assert_eq!(bad, [(2, "fields `id` and `id` both mean `id`".to_owned())]);
}

/// Keys for [`a_line_reads_as_it_reads_alone_whatever_order_the_lines_before_had`]: prefixes of
/// one another, of one length, two meaning one field, one a line must escape.
const SHUFFLED_KEYS: [&str; 10] = [
    "id", "i", "idx", "memo", "mem", "meme", "患者ID", "メモ", "a\"b", "stage",
];

/// Line `n` of a proptest's file: `keys` as (key in [`SHUFFLED_KEYS`], value kind), in order.
fn push_line(text: &mut String, n: usize, keys: &[(usize, usize)]) {
    let entries: Vec<String> = keys
        .iter()
        .map(|&(key, value)| {
            let value = match (SHUFFLED_KEYS[key], value) {
                // Ids all different: each row is judged on its own cells.
                ("id" | "患者ID", 0 | 1) => format!("\"P{n}\""),
                ("stage", 0) => "\"booked\"".to_owned(),
                (_, 0 | 1) => format!("\"v{value}\""),
                _ => "null".to_owned(),
            };
            format!("\"{}\":{value}", SHUFFLED_KEYS[key].replace('"', "\\\""))
        })
        .collect();
    text.push_str(&format!("{{{}}}\n", entries.join(",")));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Lines whose keys change order, are left out, given twice or met for the first time:
    /// each reads as it reads alone, whatever order the lines before had their keys in.
    #[test]
    fn a_line_reads_as_it_reads_alone_whatever_order_the_lines_before_had(
        lines in proptest::collection::vec(
            (
                proptest::collection::vec((0..SHUFFLED_KEYS.len(), 0..3usize), 0..7),
                proptest::bool::weighted(0.7),
            ),
            1..12,
        ),
    ) {
        let mut text = String::new();
        for (n, (keys, sorted)) in lines.into_iter().enumerate() {
            let mut keys = keys;
            keys.insert(0, (0, 0));
            if sorted {
                keys.sort_by_key(|(key, _)| SHUFFLED_KEYS[*key]);
            }
            push_line(&mut text, n, &keys);
        }
        let options = with_mapping(MAPPING);
        let rows = read_with(RecordFormat::Jsonl, text.as_str(), &options).unwrap();
        proptest::prop_assert_eq!(rows, alone(&text, &options), "{}", text);
    }

    /// An export that writes its keys in one order that is not sorted (its columns' order, as
    /// most do), leaving out some and now and then giving one twice: each line reads as it
    /// reads alone.
    #[test]
    fn lines_with_their_keys_in_one_unsorted_order_read_as_they_read_alone(
        order in shuffled(SHUFFLED_KEYS.len()),
        lines in proptest::collection::vec(
            (
                proptest::collection::vec((proptest::bool::weighted(0.8), 0..3usize), SHUFFLED_KEYS.len()),
                proptest::option::weighted(0.1, 0..SHUFFLED_KEYS.len()),
            ),
            1..12,
        ),
    ) {
        let mut text = String::new();
        for (n, (kept, twice)) in lines.into_iter().enumerate() {
            let mut keys: Vec<(usize, usize)> = order
                .iter()
                .zip(&kept)
                .filter(|(_, (keep, _))| *keep)
                .map(|(&key, &(_, value))| (key, value))
                .collect();
            if let Some(key) = twice {
                keys.push((key, 1));
            }
            push_line(&mut text, n, &keys);
        }
        let options = with_mapping(MAPPING);
        let rows = read_with(RecordFormat::Jsonl, text.as_str(), &options).unwrap();
        proptest::prop_assert_eq!(rows, alone(&text, &options), "{}", text);
    }
}

/// Keys for [`unreadable_cells_are_reported_as_alone_whatever_order_the_keys_come_in`]: most
/// can hold a value that cannot be read, so a line has several problems, reported in one order.
const CHECKED_KEYS: [&str; 9] = [
    "id",
    "stage",
    "birth_date",
    "opted_out",
    "stage_entered_at",
    "visited_at",
    "memo",
    "doctor",
    "tags",
];

/// Key `key`'s value of kind `kind` on line `n`: readable, unreadable, `null`, a number, or an
/// escaped string.
fn checked_value(key: &str, kind: usize, n: usize) -> String {
    match (key, kind) {
        ("id", _) => format!("\"P{n}\""),
        (_, 2) => "null".to_owned(),
        (_, 3) => format!("{n}"),
        (_, 4) => "\"a\\u0062\"".to_owned(),
        ("stage", 0) => "\"booked\"".to_owned(),
        ("birth_date", 0) => "\"1990-04-01\"".to_owned(),
        ("opted_out", 0) => "false".to_owned(),
        ("stage_entered_at" | "visited_at", 0) => "\"2026-05-01 09:30\"".to_owned(),
        ("stage", _) => "\"bookd\"".to_owned(),
        ("birth_date" | "stage_entered_at" | "visited_at", _) => "\"2026-13-45\"".to_owned(),
        ("opted_out", _) => "\"maybe\"".to_owned(),
        (_, kind) => format!("\"v{kind}\""),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

    /// Lines typed as they are scanned report their unreadable cells as a line read alone does
    /// (in the keys' sorted order), whether the keys come sorted, in an export's one order, or
    /// shuffled per line; with nulls, numbers and escapes among them.
    #[test]
    fn unreadable_cells_are_reported_as_alone_whatever_order_the_keys_come_in(
        order in shuffled(CHECKED_KEYS.len()),
        lines in proptest::collection::vec(
            (
                proptest::collection::vec((proptest::bool::weighted(0.85), 0..5usize), CHECKED_KEYS.len()),
                0..3usize,
                shuffled(CHECKED_KEYS.len()),
            ),
            1..16,
        ),
    ) {
        let mut text = String::new();
        for (n, (kept, how, shuffled)) in lines.into_iter().enumerate() {
            let keys: Vec<usize> = match how {
                0 => (0..CHECKED_KEYS.len()).collect(),
                1 => order.clone(),
                _ => shuffled,
            };
            let entries: Vec<String> = keys
                .into_iter()
                .filter(|&key| key == 0 || kept[key].0)
                .map(|key| {
                    let name = CHECKED_KEYS[key];
                    format!("\"{name}\":{}", checked_value(name, kept[key].1, n))
                })
                .collect();
            text.push_str(&format!("{{{}}}\n", entries.join(",")));
        }
        let options = ReadOptions::default();
        let read = read_reports(RecordFormat::Jsonl, text.as_str(), &options);
        proptest::prop_assert_eq!(read, alone_reports(&text, &options), "{}", text);
    }
}
