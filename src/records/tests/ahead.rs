//! Reading ahead on a thread of its own gives what reading on the caller's thread gives: the
//! same rows, unreadable-cell reports and notices, each after the same row.

use super::*;
use crate::records::reader::PatientRecords;

/// Everything a command sees, in the order it sees it: the notices taken before each row, the
/// row, and its unreadable-cell reports; then the notices left at the end.
type Seen = Vec<(Vec<String>, Result<PatientRecord, RowError>, Vec<RowError>)>;

fn seen(mut records: PatientRecords) -> Seen {
    let mut seen = Vec::new();
    loop {
        let notices = records.take_notices();
        let Some(row) = records.next() else {
            return seen;
        };
        seen.push((notices, row, records.take_unreadable()));
    }
}

fn both(name: &str, text: &str) -> (Seen, Seen) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let options = ReadOptions::default();
    let here = seen(open(&path, &schema(), &options).unwrap());
    let ahead = seen(open_ahead(&path, &schema(), &options).unwrap());
    (here, ahead)
}

#[test]
fn csv_rows_reports_and_lines_across_many_batches() {
    let mut text = String::from("id,name,stage,visited_at,opted_out,age\n");
    for n in 0..3000 {
        match n % 997 {
            5 => text.push_str(&format!(
                "P{n},\"two\nlines\",booked,2026-11-20 10:00,no,1\n"
            )),
            6 => text.push_str(&format!("P{n},x,booked,2026-13-20 10:00,no,1\n")),
            7 => text.push_str("P1,dup,booked,,no,1\n"),
            8 => text.push_str("P,short\n\n\n"),
            _ => text.push_str(&format!("P{n},患者{n},first_visit,2026-11-20 10:00,no,1\n")),
        }
    }
    let (here, ahead) = both("patients.csv", &text);
    assert_eq!(here.len(), 3000);
    // The header's notice (`age` is computed) before the first row, as on this thread.
    assert_eq!(here[0].0.len(), 1);
    assert!(here.iter().any(|(_, _, reports)| !reports.is_empty()));
    assert!(here.iter().filter(|(_, row, _)| row.is_err()).count() >= 6);
    assert_eq!(here, ahead);
}

#[test]
fn jsonl_notices_come_after_the_row_that_brought_them() {
    let mut text = String::new();
    for n in 0..2000 {
        match n {
            700 => text.push_str(&format!("{{\"id\":\"P{n}\",\"age\":3}}\n")),
            1500 => text.push_str("not json\n"),
            _ => text.push_str(&format!("{{\"id\":\"P{n}\",\"stage\":\"booked\"}}\n")),
        }
    }
    let (here, ahead) = both("patients.jsonl", &text);
    assert_eq!(
        here[701].0.len(),
        1,
        "the notice is taken before the next row"
    );
    assert!(here[1500].1.is_err());
    assert_eq!(here, ahead);
}

#[test]
fn a_file_that_cannot_be_read_is_the_same_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.csv");
    let options = ReadOptions::default();
    let here = open(&missing, &schema(), &options).unwrap_err();
    let ahead = open_ahead(&missing, &schema(), &options).unwrap_err();
    assert_eq!(here, ahead);
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    assert_eq!(
        open(&empty, &schema(), &options).unwrap_err(),
        open_ahead(&empty, &schema(), &options).unwrap_err()
    );
}
