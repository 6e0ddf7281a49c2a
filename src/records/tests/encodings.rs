//! One file, one encoding: rows that are not in the file's encoding are rejected with their
//! line, never decoded into garbage.

use super::*;

fn sjis(text: &str) -> Vec<u8> {
    encoding_rs::SHIFT_JIS.encode(text).0.into_owned()
}

/// (id, name) of each good row.
type Names = Vec<(String, String)>;

/// (id, name) of the good rows, and (line, message) of the bad ones.
fn names(
    format: RecordFormat,
    bytes: Vec<u8>,
    options: &ReadOptions,
) -> (Names, Vec<(usize, String)>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for row in read_with(format, bytes, options).unwrap() {
        match row {
            Ok(record) => good.push((record.id, record.name.unwrap_or_default())),
            Err(err) => bad.push((err.line, err.message)),
        }
    }
    (good, bad)
}

fn pairs(list: &[(&str, &str)]) -> Names {
    list.iter()
        .map(|(id, name)| (id.to_string(), name.to_string()))
        .collect()
}

#[test]
fn a_shift_jis_row_in_a_utf8_file_is_rejected_and_the_rest_read_as_utf8() {
    let mut bytes = "id,name\nP1,山田 花子\n".as_bytes().to_vec();
    bytes.extend(sjis("P2,鈴木 一郎\n"));
    bytes.extend("P3,佐藤 次郎\n".as_bytes());
    let (good, bad) = names(RecordFormat::Csv, bytes, &ReadOptions::default());
    assert_eq!(good, pairs(&[("P1", "山田 花子"), ("P3", "佐藤 次郎")]));
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, 3);
    assert!(
        bad[0].1.starts_with(
            "column `name` is not valid UTF-8, though the file is UTF-8 (as line 2 shows)"
        ),
        "{}",
        bad[0].1
    );
}

#[test]
fn a_shift_jis_row_first_in_a_utf8_file_with_a_bom_is_rejected() {
    // The BOM says UTF-8 before any row does.
    let mut bytes = "\u{feff}id,name\n".as_bytes().to_vec();
    bytes.extend(sjis("P1,鈴木 一郎\n"));
    bytes.extend("P2,佐藤 次郎\n".as_bytes());
    let (good, bad) = names(RecordFormat::Csv, bytes, &ReadOptions::default());
    assert_eq!(good, pairs(&[("P2", "佐藤 次郎")]));
    assert_eq!(bad[0].0, 2);
    assert!(bad[0].1.contains("byte order mark"), "{}", bad[0].1);
}

#[test]
fn a_utf8_row_in_a_shift_jis_file_is_rejected_and_the_rest_read_as_shift_jis() {
    let mut bytes = sjis("id,name\nP1,山田 花子\n");
    bytes.extend("P2,鈴木 一郎\n".as_bytes());
    bytes.extend(sjis("P3,佐藤 次郎\n"));
    let (good, bad) = names(RecordFormat::Csv, bytes, &ReadOptions::default());
    assert_eq!(good, pairs(&[("P1", "山田 花子"), ("P3", "佐藤 次郎")]));
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, 3);
    assert!(
        bad[0].1.starts_with(
            "column `name` is UTF-8 text, though the file is Shift_JIS (as line 2 shows)"
        ),
        "{}",
        bad[0].1
    );
}

#[test]
fn japanese_headers_decide_the_encoding() {
    let mut bytes = sjis("患者ID,氏名\r\n");
    bytes.extend("P1,鈴木 一郎\r\n".as_bytes());
    bytes.extend(sjis("P2,佐藤 次郎\r\n"));
    let options = with_mapping("[columns]\n\"患者ID\" = \"id\"\n\"氏名\" = \"name\"\n");
    let (good, bad) = names(RecordFormat::Csv, bytes, &options);
    assert_eq!(good, pairs(&[("P2", "佐藤 次郎")]));
    assert_eq!(bad[0].0, 2);
    assert!(bad[0].1.contains("(as line 1 shows)"), "{}", bad[0].1);
}

#[test]
fn utf8_asked_for_rejects_rows_that_are_not() {
    let mut bytes = "id,name\nP1,山田 花子\n".as_bytes().to_vec();
    bytes.extend(sjis("P2,鈴木 一郎\n"));
    let (good, bad) = names(RecordFormat::Csv, bytes, &with_encoding(Encoding::Utf8));
    assert_eq!(good, pairs(&[("P1", "山田 花子")]));
    assert_eq!(bad[0].0, 3);
    assert!(
        bad[0]
            .1
            .starts_with("column `name` is not valid UTF-8; if the export is Shift_JIS"),
        "{}",
        bad[0].1
    );
}

#[test]
fn shift_jis_asked_for_reads_shift_jis_and_rejects_the_rest() {
    let mut bytes = sjis("id,name,memo\nP1,山田 花子,ﾔﾏﾀﾞ\n");
    bytes.extend("P2,鈴木 一郎,\n".as_bytes());
    // 0x82 followed by a comma: a lead byte without its trail byte.
    bytes.extend(b"P3,\x82,\n");
    bytes.extend(sjis("P4,佐藤 次郎,\n"));
    let (good, bad) = names(RecordFormat::Csv, bytes, &with_encoding(Encoding::ShiftJis));
    assert_eq!(good, pairs(&[("P1", "山田 花子"), ("P4", "佐藤 次郎")]));
    let lines: Vec<usize> = bad.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [3, 4]);
    assert!(
        bad[0]
            .1
            .contains("is UTF-8 text, but the export is read as Shift_JIS"),
        "{}",
        bad[0].1
    );
    assert!(
        bad[1].1.starts_with("column `name` is not valid Shift_JIS"),
        "{}",
        bad[1].1
    );
}

#[test]
fn the_first_non_ascii_row_decides_however_far_into_the_file_it_is() {
    // 100 KiB of ASCII rows first: more than any fixed-size head.
    let mut text = String::from("id,name\n");
    let mut count = 0;
    while text.len() < 100 * 1024 {
        count += 1;
        text.push_str(&format!("A{count},Taro Yamada\n"));
    }
    let ascii = text.into_bytes();

    let mut bytes = ascii.clone();
    bytes.extend(sjis("S1,山田 花子\nS2,鈴木 一郎\n"));
    let (good, bad) = names(RecordFormat::Csv, bytes, &ReadOptions::default());
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(good.len(), count + 2);
    assert_eq!(
        good[count..],
        pairs(&[("S1", "山田 花子"), ("S2", "鈴木 一郎")])
    );

    let mut bytes = ascii;
    bytes.extend("U1,山田 花子\n".as_bytes());
    bytes.extend(sjis("S2,鈴木 一郎\n"));
    let (good, bad) = names(RecordFormat::Csv, bytes, &ReadOptions::default());
    assert_eq!(
        good.last().unwrap(),
        &("U1".to_owned(), "山田 花子".to_owned())
    );
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, count + 3);
    assert!(bad[0].1.contains(&format!("(as line {} shows)", count + 2)));
}

#[test]
fn jsonl_holds_to_one_encoding_too() {
    let mut bytes = "{\"id\": \"P1\", \"name\": \"山田 花子\"}\n"
        .as_bytes()
        .to_vec();
    bytes.extend(sjis("{\"id\": \"P2\", \"name\": \"鈴木 一郎\"}\n"));
    bytes.extend("{\"id\": \"P3\", \"name\": \"佐藤 次郎\"}\n".as_bytes());
    let (good, bad) = names(RecordFormat::Jsonl, bytes, &ReadOptions::default());
    assert_eq!(good, pairs(&[("P1", "山田 花子"), ("P3", "佐藤 次郎")]));
    assert_eq!(bad[0].0, 2);
    assert!(
        bad[0]
            .1
            .starts_with("the line is not valid UTF-8, though the file is UTF-8"),
        "{}",
        bad[0].1
    );

    let mut bytes = sjis("{\"id\": \"P1\", \"name\": \"山田 花子\"}\n");
    bytes.extend("{\"id\": \"P2\", \"name\": \"鈴木 一郎\"}\n".as_bytes());
    let (good, bad) = names(RecordFormat::Jsonl, bytes, &ReadOptions::default());
    assert_eq!(good, pairs(&[("P1", "山田 花子")]));
    assert_eq!(bad[0].0, 2);
    assert!(
        bad[0].1.contains("though the file is Shift_JIS"),
        "{}",
        bad[0].1
    );
}

/// A UTF-8 file's rows are checked whole, not field by field: a character whose bytes are
/// split between two fields (valid UTF-8 as a whole row) is still the first of those fields
/// not being UTF-8, and the rows around it are read; a quoted cell over two lines too.
#[test]
fn a_character_split_between_two_fields_is_still_refused() {
    let mut bytes = "id,name,memo\nP1,山田,\"二\n行\"\n".as_bytes().to_vec();
    let split = "あ".as_bytes();
    bytes.extend_from_slice(b"P2,x");
    bytes.push(split[0]);
    bytes.push(b',');
    bytes.extend_from_slice(&split[1..]);
    bytes.extend_from_slice("\nP3,佐藤,\n".as_bytes());
    for options in [ReadOptions::default(), with_encoding(Encoding::Utf8)] {
        let (good, bad) = names(RecordFormat::Csv, bytes.clone(), &options);
        assert_eq!(good, pairs(&[("P1", "山田"), ("P3", "佐藤")]));
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].0, 4);
        assert!(
            bad[0].1.starts_with("column `name` is not valid UTF-8"),
            "{}",
            bad[0].1
        );
    }
}
