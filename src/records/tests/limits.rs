//! A row is at most 1 MiB: a longer one is reported by its line and skipped, and a file with no
//! line end in sight is given up on, so memory stays bounded and reading always ends.

use std::io::Read;

use super::reader::read_bounded;
use super::*;
use crate::records::bounded::Limits;

const MIB: usize = 1024 * 1024;

fn small() -> Limits {
    Limits {
        record: 64,
        runaway: 4096,
        fields: 16,
    }
}

fn read_limited(
    format: RecordFormat,
    reader: impl Read + 'static,
    limits: Limits,
) -> Result<Vec<Result<PatientRecord, RowError>>, RecordsError> {
    let records = read_bounded(
        reader,
        "patients",
        format,
        &schema(),
        &ReadOptions::default(),
        limits,
    )?;
    Ok(records.collect())
}

#[test]
fn a_csv_row_over_1_mib_is_reported_by_its_line_and_the_others_read() {
    let mut text = String::from("id,name,memo\nP1,山田 花子,\n");
    text.push_str(&format!("P2,鈴木 一郎,{}\n", "x".repeat(2 * MIB)));
    text.push_str("P3,佐藤 次郎,\n");
    let (good, bad) = split(read_csv(&text));
    assert_eq!(good, ["P1", "P3"]);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, 3);
    assert!(
        bad[0].1.starts_with("the row is longer than 1 MiB"),
        "{}",
        bad[0].1
    );
}

#[test]
fn a_jsonl_line_over_1_mib_is_reported_by_its_line_and_the_others_read() {
    let text = format!(
        "{{\"id\": \"P1\"}}\n{{\"id\": \"P2\", \"memo\": \"{}\"}}\n{{\"id\": \"P3\"}}\n",
        "x".repeat(2 * MIB)
    );
    let (good, bad) = split(read_jsonl(&text));
    assert_eq!(good, ["P1", "P3"]);
    assert_eq!(bad[0].0, 2);
    assert!(
        bad[0].1.starts_with("the line is longer than 1 MiB"),
        "{}",
        bad[0].1
    );
}

#[test]
fn too_many_fields_is_too_long_a_row() {
    let text = format!("id\nP1\n{}\nP3\n", ",".repeat(20_000));
    let (good, bad) = split(read_csv(&text));
    assert_eq!(good, ["P1", "P3"]);
    assert_eq!(bad[0].0, 3);
}

#[test]
fn an_unclosed_quote_costs_the_rows_up_to_the_bound_not_the_whole_file() {
    let mut text = String::from("id,memo\nP1,\"never closed\n");
    for n in 2..=30 {
        text.push_str(&format!("P{n},\n"));
    }
    let rows = read_limited(RecordFormat::Csv, std::io::Cursor::new(text), small()).unwrap();
    let (good, bad) = split(rows);
    assert_eq!(bad[0].0, 2);
    assert!(
        bad[0].1.starts_with("the row is longer than 64 bytes"),
        "{}",
        bad[0].1
    );
    assert!(good.contains(&"P30".to_owned()), "{good:?}");
}

#[test]
fn a_csv_without_a_line_end_fails_at_its_header() {
    let err = read_limited(RecordFormat::Csv, std::io::repeat(0), small()).unwrap_err();
    assert!(matches!(err, RecordsError::Header { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("line 1, the header, is longer than 64 bytes"),
        "{err}"
    );
}

#[test]
fn a_line_without_an_end_gives_up_on_the_file_at_that_line() {
    for format in [RecordFormat::Csv, RecordFormat::Jsonl] {
        let first = match format {
            RecordFormat::Csv => "id\nP1\n",
            RecordFormat::Jsonl => "{\"id\": \"P1\"}\n",
        };
        let endless = std::io::Cursor::new(first).chain(std::io::repeat(b'7'));
        let rows = read_limited(format, endless, small()).unwrap();
        let (good, bad) = split(rows);
        assert_eq!(good, ["P1"]);
        assert_eq!(bad.len(), 1, "{bad:?}");
        let line = if format == RecordFormat::Csv { 3 } else { 2 };
        assert_eq!(bad[0].0, line);
        assert!(
            bad[0].1.contains("has no end within 4096 bytes")
                && bad[0].1.contains("the rest of it is not read"),
            "{}",
            bad[0].1
        );
    }
}

/// A line is read from the reader's buffer (64 KiB) when it lies whole there, else put
/// together across reads: either way, a line exactly at the limit is read, one a byte longer
/// is reported by its line, and lines are counted alike. Thousands of lines of every length
/// around the limit, so that lines of each kind run past the buffer's end.
#[test]
fn jsonl_lines_at_the_limit_read_alike_within_and_across_the_readers_buffer() {
    let limits = Limits {
        record: 64,
        runaway: MIB,
        fields: 16,
    };
    let line = |n: usize, len: usize| {
        let head = format!("\u{3000}{{\"id\": \"P{n}\", \"memo\": \"");
        format!("{head}{}\"}}", "x".repeat(len - head.len() - 2))
    };
    let (mut text, mut good, mut bad) = (String::new(), Vec::new(), Vec::new());
    for n in 0..4_000 {
        let len = [64, 65, 40, 66][n % 4];
        text.push_str(&line(n, len));
        text.push_str(if n % 5 == 0 { "\r\n" } else { "\n" });
        match len <= 64 {
            true => good.push(format!("P{n}")),
            false => bad.push(n + 1),
        }
    }
    let rows = read_limited(RecordFormat::Jsonl, std::io::Cursor::new(text), limits).unwrap();
    let (read, reported) = split(rows);
    assert_eq!(read, good);
    assert_eq!(reported.iter().map(|(at, _)| *at).collect::<Vec<_>>(), bad);
    assert!(reported
        .iter()
        .all(|(_, message)| message.starts_with("the line is longer than")));
}
