//! Rows read ahead are lent where they were typed: a batch's records are typed into, checked,
//! lent to the caller and typed into again, never moved, and nothing of a row is left in its
//! record for the next.

use std::collections::HashSet;

use super::*;
use crate::records::ahead::work_ahead;
use crate::records::columns::Column;
use crate::records::row::{Cell, RowBuilder, TypedRow};
use crate::records::spent::Spares;
use crate::records::{RowWork, WorkedRows};

const HEADER: [&str; 8] = [
    "id",
    "name",
    "stage",
    "tags",
    "opted_out",
    "visited_at",
    "doctor",
    "memo",
];

fn columns() -> Vec<Column> {
    resolved(&HEADER)
}

/// `row` typed into `typed` where it is, then checked in file order by `builder`.
fn type_into<'t>(
    builder: &mut RowBuilder,
    typed: &'t mut TypedRow,
    line: usize,
    row: [&str; 8],
) -> Result<&'t PatientRecord, RowError> {
    let columns = columns();
    let cells = columns.iter().zip(row.map(|cell| Cell::Text(cell.into())));
    builder
        .typer_ref()
        .type_row_into(typed, line, cells, &mut Spares::default());
    builder.finish_in_place(typed)
}

const FULL: [&str; 8] = [
    "P1",
    "患者一",
    "follow_up",
    "a;b;c",
    "true",
    "not a date",
    "高橋",
    "a note",
];

#[test]
fn a_row_typed_in_place_holds_that_row_only() {
    let mut builder = RowBuilder::new("patients.csv", &schema(), None).unwrap();
    let mut typed = TypedRow::default();
    let full = type_into(&mut builder, &mut typed, 2, FULL).unwrap();
    let dates = full.dates.as_ptr();
    assert!(full.opted_out && !full.unknown.is_empty() && !full.other.is_empty());
    assert_eq!(builder.unreadable().take().len(), 1, "the date's report");

    let empty = ["P2", "", "", "", "", "", "", ""];
    let row = type_into(&mut builder, &mut typed, 3, empty)
        .unwrap()
        .clone();
    let fresh = read_csv(&format!("{}\n{}\n", HEADER.join(","), empty.join(",")));
    assert_eq!(
        Ok(PatientRecord { line: 3, ..row }),
        fresh[0].clone().map(|r| PatientRecord { line: 3, ..r })
    );
    assert!(
        builder.unreadable().take().is_empty(),
        "no report left over"
    );
    assert_eq!(
        typed.kept().unwrap().dates.as_ptr(),
        dates,
        "the same record"
    );

    // A duplicate, then a row without an id, then a good row again: each as typed afresh.
    let again = type_into(&mut builder, &mut typed, 4, FULL).unwrap_err();
    assert!(again.message.contains("same id"), "{}", again.message);
    assert!(again.message.contains("not a date") || again.message.contains("visited_at"));
    let no_id = type_into(
        &mut builder,
        &mut typed,
        5,
        ["", "x", "", "", "", "", "", ""],
    );
    assert_eq!(no_id.unwrap_err().line, 5);
    let good = type_into(
        &mut builder,
        &mut typed,
        6,
        ["P3", "", "", "", "", "", "", ""],
    );
    assert_eq!(
        (good.as_ref().unwrap().id.as_str(), good.unwrap().line),
        ("P3", 6)
    );
}

/// The records lent to the caller are those of a few batches per typing thread, handed back
/// and typed into again, however long the file: memory stays flat and nothing is moved.
#[test]
fn rows_lent_ahead_come_from_a_few_batches() {
    let mut text = format!("{}\n", HEADER.join(","));
    for n in 0..20_000 {
        text.push_str(&format!(
            "P{n},患者{n},booked,a;b,no,2026-11-20 10:00,高橋,\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("patients.csv");
    std::fs::write(&path, text).unwrap();
    let options = ReadOptions::default();
    let here: Vec<PatientRecord> = open(&path, &schema(), &options)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let no_work = || |_: &PatientRecord| ();
    let take = |rows: &mut WorkedRows<'_, ()>| {
        let (mut seen, mut places) = (Vec::new(), HashSet::new());
        while let Some(taken) = rows.next_row() {
            let record = taken.row.unwrap();
            places.insert(std::ptr::from_ref(record) as usize);
            seen.push(record.clone());
        }
        (seen, places.len())
    };
    for threads in [1, 2] {
        let (ahead, places) =
            work_ahead(&path, &schema(), &options, threads, &no_work, take).unwrap();
        assert_eq!(here, ahead, "{threads} typing threads");
        // Per thread: the batch being typed, two waiting and the one being taken.
        assert!(
            places <= threads * 4 * 512,
            "{places} records for {threads} threads"
        );
    }
}

/// Work that says whether it was given what it came to on a row before, to fill again.
struct Refilling;

impl RowWork for Refilling {
    type Out = (usize, bool);

    fn work(&mut self, record: &PatientRecord) -> (usize, bool) {
        (record.line, false)
    }

    fn work_into(&mut self, record: &PatientRecord, out: &mut Option<(usize, bool)>) {
        *out = Some((record.line, out.is_some()));
    }
}

/// What the work came to on a row is filled again with a later row when the rows' user leaves
/// it where it is, and made anew when it is taken; each row comes with its own either way.
#[test]
fn what_the_work_came_to_is_filled_again_unless_taken() {
    let mut text = String::from("id,stage\n");
    for n in 0..20_000 {
        text.push_str(&format!("P{n},booked\n"));
    }
    text.push_str("P7,booked\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("patients.csv");
    std::fs::write(&path, text).unwrap();
    let options = ReadOptions::default();
    for leave in [true, false] {
        let take = |rows: &mut WorkedRows<'_, (usize, bool)>| {
            let (mut kept, mut refilled) = (0, 0);
            while let Some(taken) = rows.next_row() {
                let Ok(record) = taken.row else {
                    assert!(taken.worked.is_none(), "a duplicate has no work");
                    continue;
                };
                let mut worked = taken.worked.unwrap();
                let (line, again) = match leave {
                    true => *worked.get().unwrap(),
                    false => worked.take().unwrap(),
                };
                assert_eq!(line, record.line);
                kept += 1;
                refilled += usize::from(again);
            }
            (kept, refilled)
        };
        let worker = || Refilling;
        let (kept, refilled) = work_ahead(&path, &schema(), &options, 2, &worker, take).unwrap();
        assert_eq!(kept, 20_000);
        match leave {
            // All but the rows of the (at most four) batches each thread made.
            true => assert!(refilled >= kept - 2 * 4 * 512, "{refilled} filled again"),
            false => assert_eq!(refilled, 0),
        }
    }
}
