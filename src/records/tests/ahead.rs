//! Reading ahead on threads of their own gives what reading on the caller's thread gives: the
//! same rows, unreadable-cell reports and notices, each after the same row, on one typing
//! thread or four; and the work done on each row there is handed back with that row.

use super::*;
use crate::records::ahead::work_ahead;
use crate::records::reader::PatientRecords;
use crate::records::spent::SpentRecords;
use crate::records::WorkedRows;

/// Everything a command sees, in the order it sees it: the notices taken before each row, the
/// row, and its unreadable-cell reports; then the notices left at the end.
pub(super) type Seen = Vec<(Vec<String>, Result<PatientRecord, RowError>, Vec<RowError>)>;

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

fn both(name: &str, text: impl AsRef<[u8]>) -> (Seen, Seen) {
    both_with(name, text, &ReadOptions::default())
}

/// The work each typing thread does on a row in these tests: what it saw of the row, and how
/// many rows that thread had worked on by then.
type Worked = (usize, String, usize);

fn counting_worker() -> impl FnMut(&PatientRecord) -> Worked {
    let mut count = 0;
    move |record: &PatientRecord| {
        count += 1;
        (record.line, record.id.clone(), count)
    }
}

/// What [`seen`] gives for rows read ahead on `threads` typing threads, checking that each kept
/// row comes with the work on that same row (and a skipped one with none); with the most rows
/// one thread worked on.
fn seen_ahead(path: &std::path::Path, options: &ReadOptions, threads: usize) -> (Seen, usize) {
    let take = |rows: &mut WorkedRows<'_, Worked>| {
        let (mut seen, mut most) = (Vec::new(), 0);
        loop {
            let notices = rows.take_notices();
            let Some(taken) = rows.next_row() else {
                return (seen, most);
            };
            match (
                &taken.row,
                taken.worked.and_then(crate::records::Worked::take),
            ) {
                (Ok(record), Some((line, id, count))) => {
                    assert_eq!((line, &id), (record.line, &record.id));
                    most = most.max(count);
                }
                (Err(_), None) => {}
                (row, worked) => panic!("{row:?} came with {worked:?}"),
            }
            let row = taken.row.cloned();
            seen.push((notices, row, taken.unreadable));
        }
    };
    work_ahead(path, &schema(), options, threads, &counting_worker, take).unwrap()
}

pub(super) fn both_with(name: &str, text: impl AsRef<[u8]>, options: &ReadOptions) -> (Seen, Seen) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let here = seen(open(&path, &schema(), options).unwrap());
    let (one, _) = seen_ahead(&path, options, 1);
    assert_eq!(here, one, "one typing thread");
    let (ahead, most) = seen_ahead(&path, options, 4);
    let kept = here.iter().filter(|(_, row, _)| row.is_ok()).count();
    if here.len() > 4 * 512 {
        assert!(
            most < kept,
            "the work was shared: {most} of {kept} on one thread"
        );
    }
    (here, ahead)
}

/// The error [`work_ahead`] gives for a file that cannot be used.
fn ahead_error(path: &std::path::Path, options: &ReadOptions) -> RecordsError {
    let no_work = || |_: &PatientRecord| ();
    work_ahead(path, &schema(), options, 2, &no_work, |_| ()).unwrap_err()
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
    assert_eq!(here, ahead_error(&missing, &options));
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    assert_eq!(
        open(&empty, &schema(), &options).unwrap_err(),
        ahead_error(&empty, &options)
    );
}

/// Rows are typed in batches of 512 on several threads: rows whose quoted cells run over
/// several lines at either side of a batch's edge keep their lines, and an id seen in one
/// batch is a duplicate in a batch typed on another thread.
#[test]
fn quoted_lines_and_duplicates_across_batch_edges() {
    let mut text = String::from("id,name,stage,visited_at,opted_out\n");
    for n in 0..5000usize {
        match n % 512 {
            510 | 511 | 0 | 1 => text.push_str(&format!(
                "P{n},\"三\n行\n目\",booked,\"2026-11-20\n10:00\",no\n"
            )),
            2 => text.push_str(&format!("P{},again,booked,,no\n", n.saturating_sub(300))),
            3 => text.push_str(&format!("P{n},x,booked,2026-13-20 10:00,maybe\n")),
            _ => text.push_str(&format!("P{n},患者{n},first_visit,2026-11-20 10:00,no\n")),
        }
    }
    let (here, ahead) = both("patients.csv", &text);
    assert_eq!(here.len(), 5000);
    let line_of = |n: usize| match &here[n].1 {
        Ok(record) => record.line,
        Err(err) => err.line,
    };
    // Rows 0 and 1 span four lines each: three in the name, and the date cell's second one.
    assert_eq!((line_of(0), line_of(1), line_of(2)), (2, 6, 10));
    let duplicates = here
        .iter()
        .filter(|(_, row, _)| matches!(row, Err(err) if err.message.contains("same id")))
        .count();
    assert_eq!(duplicates, 10);
    assert!(
        here.iter()
            .filter(|(_, _, reports)| !reports.is_empty())
            .count()
            >= 9
    );
    assert_eq!(here, ahead);
}

/// A Shift_JIS export read in `auto`: the first non-ASCII row decides the encoding for the
/// rows typed on every thread, and a UTF-8 row far into the file is still refused.
#[test]
fn shift_jis_decided_once_for_every_batch() {
    let mut text = String::from("id,name,stage,visited_at,opted_out\n");
    for n in 0..3000 {
        text.push_str(&format!(
            "P{n},患者{n},first_visit,2026-11-20 10:00,配信停止\n"
        ));
    }
    let mut bytes = encoding_rs::SHIFT_JIS.encode(&text).0.into_owned();
    bytes.extend_from_slice("P9999,山田,booked,,no\n".as_bytes());
    let (here, ahead) = both("patients.csv", &bytes);
    assert_eq!(here.len(), 3001);
    assert_eq!(here[2].1.as_ref().unwrap().name.as_deref(), Some("患者2"));
    assert!(here[2999].1.as_ref().unwrap().opted_out);
    let refused = here[3000].1.as_ref().unwrap_err();
    assert!(refused.message.contains("UTF-8"), "{refused}");
    assert_eq!(here, ahead);
}

/// A caller that stops after a few rows of a large file is not kept waiting by the threads
/// still reading and typing it.
#[test]
fn stopping_early_ends_the_threads() {
    let mut text = String::from("id,stage\n");
    for n in 0..50_000 {
        text.push_str(&format!("P{n},booked\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("patients.csv");
    std::fs::write(&path, text).unwrap();
    let first_three = |rows: &mut WorkedRows<'_, Worked>| -> Vec<String> {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(rows.next_row().unwrap().row.unwrap().id.clone());
        }
        ids
    };
    let options = ReadOptions::default();
    let first = work_ahead(&path, &schema(), &options, 4, &counting_worker, first_three);
    assert_eq!(first.unwrap(), ["P0", "P1", "P2"]);
}

/// Records handed to the dropping thread, many more than wait at once, neither block the
/// reader nor keep it waiting at the end.
#[test]
fn spent_records_are_dropped_without_waiting() {
    let rows = read_csv("id,stage\nP1,booked\n");
    let record = rows[0].clone().unwrap();
    let mut spent = SpentRecords::new();
    for _ in 0..20_000 {
        spent.push(record.clone());
    }
    drop(spent);
}

/// JSONL lines are parsed and typed on several threads: a computed-name key met by each of
/// them is still one notice, after the first row that has it, and an id seen in one batch is
/// a duplicate in a batch typed on another thread; blank lines keep the line numbers.
#[test]
fn jsonl_notices_and_duplicates_across_typing_threads() {
    let mut text = String::new();
    for n in 0..4000usize {
        match n {
            600 | 1100 | 1700 | 2300 => text.push_str(&format!("{{\"id\":\"P{n}\",\"age\":3}}\n")),
            _ if n % 512 == 5 => text.push_str(&format!("{{\"id\":\"P{}\"}}\n\n", n / 2)),
            _ => text.push_str(&format!(
                "{{\"id\":\"P{n}\",\"stage\":\"booked\",\"visited_at\":\"2026-11-2{} 10:00\"}}\n",
                n % 10
            )),
        }
    }
    let (here, ahead) = both("patients.jsonl", &text);
    let notices: usize = here.iter().map(|(notices, _, _)| notices.len()).sum();
    assert_eq!(notices, 1);
    assert_eq!(here[601].0.len(), 1);
    let duplicates = here
        .iter()
        .filter(|(_, row, _)| matches!(row, Err(err) if err.message.contains("same id")))
        .count();
    assert_eq!(duplicates, 8);
    let last = here.last().unwrap().1.as_ref().unwrap();
    assert_eq!(last.line, 4000 + 8);
    assert_eq!(here, ahead);
}

/// A CSV export of `rows` after the header and the `first` row, its last line end dropped
/// unless `last_line_end`.
fn csv_of(first: &[u8], rows: impl Iterator<Item = Vec<u8>>, last_line_end: bool) -> Vec<u8> {
    let mut text = b"id,name,stage,visited_at,opted_out\n".to_vec();
    text.extend_from_slice(first);
    rows.for_each(|row| text.extend_from_slice(&row));
    if !last_line_end && text.ends_with(b"\n") {
        text.pop();
    }
    text
}

/// One row of each kind the plain-line reader may meet in a UTF-8 export, `n` its number.
fn utf8_row(kind: u8, n: usize) -> Vec<u8> {
    let row = match kind {
        0 => format!("P{n},患者{n},first_visit,2026-11-20 10:00,no\n"),
        1 => format!("P{n},x,booked,,no\n"),
        2 => format!("P{n},\"a,b\",booked,,no\n"),
        3 => format!("P{n},y,booked,,no\r\n"),
        4 => "\n".to_owned(),
        5 => ",,,,\n".to_owned(),
        6 => "\u{3000}, ,\t,,\n".to_owned(),
        7 => format!("P{n},z\n"),
        8 => format!("P{n},a,b,c,d,e\n"),
        9 => return [format!("P{n},").as_bytes(), b"\xff,booked,,no\n"].concat(),
        10 => "P1,dup,booked,,no\n".to_owned(),
        11 => format!("P{n},x,booked,2026-13-20 10:00,maybe\n"),
        12 => format!("P{n},\"two\nlines\",booked,,no\n"),
        13 => "\u{3000},x,booked,,no\n".to_owned(),
        14 => format!("P{n},w,booked,,no\r"),
        _ => format!("P{n}, 患者 ,regular, 2026-11-20 ,no\n"),
    };
    row.into_bytes()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]

    /// A UTF-8 export's rows of every kind, in any order and across batches, with or without
    /// a last line end: read ahead (plain lines in one pass) as on the caller's thread (every
    /// line the long way), rows, reports and lines alike.
    #[test]
    fn utf8_rows_of_every_kind_are_read_ahead_as_here(
        kinds in proptest::collection::vec(0u8..16, 1..1200),
        last_line_end: bool,
    ) {
        let rows = kinds.iter().enumerate().map(|(n, &kind)| utf8_row(kind, n));
        let (here, ahead) = both("patients.csv", csv_of(b"", rows, last_line_end));
        proptest::prop_assert_eq!(here, ahead);
    }
}

/// One row of each kind the plain-line reader may meet in a Shift_JIS export: those of
/// [`utf8_row`] in Shift_JIS, and rows that are not Shift_JIS or are UTF-8.
fn shift_jis_row(kind: u8, n: usize) -> Vec<u8> {
    let encoded = |row: &[u8]| {
        let text = String::from_utf8_lossy(row).into_owned();
        encoding_rs::SHIFT_JIS.encode(&text).0.into_owned()
    };
    match kind {
        // A lead byte at a field's end, with the comma after it.
        16 => [format!("P{n},").as_bytes(), b"\x8a\xb3\x81,booked,,no\n"].concat(),
        // A lead byte at the line's end.
        17 => [format!("P{n},x,booked,,no").as_bytes(), b"\x81\n"].concat(),
        // UTF-8 that is also Shift_JIS byte for byte: refused as UTF-8 all the same.
        18 => format!("P{n},山田,booked,,no\n").into_bytes(),
        19 => [format!("P{n},").as_bytes(), b"\xa0\xfd,booked,,no\n"].concat(),
        // Full-width spaces only: blank once decoded.
        20 => b"\x81\x40,\x81\x40,,,\n".to_vec(),
        9 => encoded(format!("P{n},患者,booked,,no\n").as_bytes()),
        kind => encoded(&utf8_row(kind, n)),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]

    /// [`utf8_rows_of_every_kind_are_read_ahead_as_here`] for a Shift_JIS export, whose plain
    /// lines are decoded whole on the typing threads.
    #[test]
    fn shift_jis_rows_of_every_kind_are_read_ahead_as_here(
        kinds in proptest::collection::vec(0u8..21, 1..1200),
        last_line_end: bool,
    ) {
        let first = encoding_rs::SHIFT_JIS.encode("P,患者,booked,,no\n").0;
        let rows = kinds.iter().enumerate().map(|(n, &kind)| shift_jis_row(kind, n));
        let (here, ahead) = both("patients.csv", csv_of(&first, rows, last_line_end));
        proptest::prop_assert_eq!(here, ahead);
    }
}

/// What a typing thread was asked to do, in order: `true` for a look ahead, `false` for the
/// work, each with the row's line.
type Asked = std::sync::Mutex<Vec<(std::thread::ThreadId, bool, usize)>>;

/// Each row kept is handed to the work's look ahead as soon as it is typed and worked on once
/// the next row of its batch is typed (the look ahead for that one asked first): every row
/// once each, in file order, on CSV, Shift_JIS and JSONL alike, skipped rows between.
#[test]
fn each_row_is_looked_ahead_at_before_the_row_before_it_is_worked_on() {
    let mut csv = String::from("id,name,stage,visited_at,opted_out\n");
    let mut jsonl = String::new();
    for n in 0..2000 {
        match n % 301 {
            7 => csv.push_str(&format!("P{n},x,booked,2026-13-20 10:00,maybe\n")),
            8 => csv.push_str("P,short\n"),
            _ => csv.push_str(&format!("P{n},患者{n},first_visit,2026-11-20 10:00,no\n")),
        }
        match n % 301 {
            8 => jsonl.push_str("not json\n"),
            _ => jsonl.push_str(&format!("{{\"id\":\"P{n}\",\"stage\":\"booked\"}}\n")),
        }
    }
    let (shift_jis, _, _) = encoding_rs::SHIFT_JIS.encode(&csv);
    let files: [(&str, &[u8]); 3] = [
        ("p.csv", csv.as_bytes()),
        ("sjis.csv", &shift_jis),
        ("p.jsonl", jsonl.as_bytes()),
    ];
    for (name, text) in files {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let asked = Asked::default();
        let worker = || crate::records::LookingAhead {
            ahead: |record: &PatientRecord| {
                let me = std::thread::current().id();
                asked.lock().unwrap().push((me, true, record.line));
            },
            work: |record: &PatientRecord| {
                let me = std::thread::current().id();
                asked.lock().unwrap().push((me, false, record.line));
                record.line
            },
        };
        let take = |rows: &mut WorkedRows<'_, usize>| {
            let mut worked = Vec::new();
            while let Some(taken) = rows.next_row() {
                if let (Ok(record), Some(line)) = (&taken.row, taken.worked.and_then(|w| w.take()))
                {
                    assert_eq!(record.line, line);
                    worked.push(line);
                }
            }
            worked
        };
        let options = ReadOptions::default();
        let worked = work_ahead(&path, &schema(), &options, 2, &worker, take).unwrap();
        let here = seen(open(&path, &schema(), &options).unwrap());
        let kept: Vec<usize> = (here.iter())
            .filter_map(|(_, row, _)| row.as_ref().ok().map(|r| r.line))
            .collect();
        assert_eq!(worked, kept, "{name}");
        let asked = asked.into_inner().unwrap();
        let mut threads: Vec<_> = asked.iter().map(|&(thread, ..)| thread).collect();
        threads.dedup();
        threads.sort_unstable_by_key(|thread| format!("{thread:?}"));
        threads.dedup();
        assert_eq!(threads.len(), 2, "{name}");
        let mut looked_ahead_of_the_next = 0;
        for thread in threads {
            let (mut ahead, mut work) = (Vec::new(), Vec::new());
            for &(_, is_ahead, line) in asked.iter().filter(|(t, ..)| *t == thread) {
                if is_ahead {
                    ahead.push(line);
                } else {
                    // This row was looked ahead at, and at most the next one besides.
                    assert!(ahead.contains(&line), "{name}: {line}");
                    let further = ahead.len() - work.len();
                    assert!((1..=2).contains(&further), "{name}: {line}");
                    looked_ahead_of_the_next += usize::from(further == 2);
                    work.push(line);
                }
            }
            assert_eq!(ahead, work, "{name}: each row once, in order");
        }
        assert!(looked_ahead_of_the_next > kept.len() / 2, "{name}");
    }
}
