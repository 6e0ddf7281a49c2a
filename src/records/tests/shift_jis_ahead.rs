//! A Shift_JIS file's rows are decoded on the typing threads once the file is known to be
//! Shift_JIS; what comes out is what decoding them on the reading thread gives: undecodable
//! and pasted-in UTF-8 rows skipped with the same message and line, blank rows (full-width
//! spaces) no row at all, rows with a field missing skipped, and the rows after each read.

use super::ahead::{both_with, Seen};
use super::*;

fn sjis(text: &str) -> Vec<u8> {
    encoding_rs::SHIFT_JIS.encode(text).0.into_owned()
}

/// A Shift_JIS export of `rows` patient rows with, every 211 rows, an undecodable row, a UTF-8
/// row pasted in, a row of full-width spaces, a row of bare commas and a row a field short.
fn export(rows: usize) -> Vec<u8> {
    let mut bytes = b"id,name,stage,visited_at\n".to_vec();
    for n in 0..rows {
        match n % 211 {
            3 => bytes.extend(b"P\x82 X,\x82\x20,booked,2026-11-20 10:00\n"),
            4 => bytes.extend(format!("P{n},鈴木 一郎,booked,2026-11-20 10:00\n").as_bytes()),
            5 => bytes.extend(sjis("\u{3000},\u{3000}\u{3000},,\u{3000}\n")),
            6 => bytes.extend(b",,,\n"),
            7 => bytes.extend(sjis(&format!("P{n},山田\n"))),
            _ => bytes.extend(sjis(&format!(
                "P{n},患者 {n},first_visit,2026-11-20 10:00\n"
            ))),
        }
    }
    bytes
}

/// The (line, message) of each skipped row.
fn skipped(seen: &Seen) -> Vec<(usize, String)> {
    seen.iter()
        .filter_map(|(_, row, _)| row.as_ref().err())
        .map(|err| (err.line, err.message.clone()))
        .collect()
}

#[test]
fn shift_jis_asked_reads_ahead_as_on_one_thread_across_batches() {
    let (here, ahead) = both_with(
        "patients.csv",
        export(1500),
        &with_encoding(Encoding::ShiftJis),
    );
    assert_eq!(here, ahead);
    // 1500 rows less the blank ones: the full-width spaces and the bare commas.
    assert_eq!(here.len(), 1500 - 2 * 8);
    let skipped = skipped(&here);
    assert_eq!(skipped.len(), 3 * 8);
    // Row 3 is on line 5 (after the header); the first undecodable one.
    assert_eq!(skipped[0].0, 5);
    assert!(
        skipped[0]
            .1
            .starts_with("column `id` is not valid Shift_JIS"),
        "{}",
        skipped[0].1
    );
    assert_eq!(skipped[1].0, 6);
    assert!(
        skipped[1]
            .1
            .contains("is UTF-8 text, but the export is read as Shift_JIS"),
        "{}",
        skipped[1].1
    );
    assert_eq!(skipped[2].0, 9);
    assert!(
        skipped[2]
            .1
            .starts_with("the row has 2 fields but the header has 4"),
        "{}",
        skipped[2].1
    );
    let last = here.last().unwrap().1.as_ref().unwrap();
    assert_eq!((last.line, last.name.as_deref()), (1501, Some("患者 1499")));
}

#[test]
fn shift_jis_decided_by_a_row_reads_ahead_as_on_one_thread() {
    // ASCII rows decide nothing; the first row in Shift_JIS, past the first batch, does.
    let mut bytes = b"id,name,stage,visited_at\n".to_vec();
    for n in 0..600 {
        bytes.extend(format!("A{n},name,booked,2026-11-20 10:00\n").as_bytes());
    }
    bytes.extend(export(1200).split_off(b"id,name,stage,visited_at\n".len()));
    let (here, ahead) = both_with("patients.csv", bytes, &ReadOptions::default());
    assert_eq!(here, ahead);
    let skipped = skipped(&here);
    assert_eq!(skipped.len(), 3 * 6);
    assert!(
        skipped[1]
            .1
            .contains("though the file is Shift_JIS (as line 602 shows)"),
        "{}",
        skipped[1].1
    );
    let kept = here.iter().filter(|(_, row, _)| row.is_ok()).count();
    assert_eq!(kept, 600 + 1200 - 5 * 6);
}
