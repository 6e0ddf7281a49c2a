//! A record filled again with a later row holds that row and nothing of the patient before it:
//! every field the row leaves empty is not set, and the strings are the old ones overwritten.

use super::*;
use crate::records::ahead::work_ahead;
use crate::records::columns::Column;
use crate::records::row::{Cell, RowBuilder, RowTyper};
use crate::records::spent::{Spares, LONGEST_KEPT};
use crate::records::WorkedRows;

const HEADER: [&str; 16] = [
    "id",
    "line_user_id",
    "name",
    "stage",
    "stage_entered_at",
    "birth_date",
    "tags",
    "opted_out",
    "appointment_at",
    "visited_at",
    "last_visit_at",
    "next_booking_at",
    "cancelled_at",
    "doctor",
    "department",
    "memo",
];

fn columns() -> Vec<Column> {
    resolved(&HEADER)
}

/// `row`'s cells typed into a record from `spares`; the row must be kept.
fn type_row(
    typer: &RowTyper,
    columns: &[Column],
    row: [&str; 16],
    spares: &mut Spares,
) -> PatientRecord {
    let cells = columns.iter().zip(row.map(|cell| Cell::Text(cell.into())));
    let typed = typer.type_row(7, cells, spares);
    // A builder of its own: the rows typed here may share an id.
    let mut builder = RowBuilder::new("patients.csv", &schema(), None).unwrap();
    builder.finish(typed).unwrap()
}

/// Every field set (and one date unreadable, so a field is unknown).
const FULL: [&str; 16] = [
    "P1",
    "U0123456789abcdef0123456789abcdef",
    "患者一",
    "follow_up",
    "2026-11-16 15:36",
    "1957-04-01",
    "chronic;flu_season;vip",
    "true",
    "2026-12-05 12:00",
    "2023-12-14 09:30",
    "2026-06-26 15:30",
    "2026-12-24 10:00",
    "not a date",
    "高橋",
    "内科",
    "a note",
];

/// Only the id.
const EMPTY: [&str; 16] = [
    "P2", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "",
];

/// A record given back and typed again: the same record (its lists and strings reused).
fn again(
    spares: &mut Spares,
    typer: &RowTyper,
    columns: &[Column],
    spent: PatientRecord,
    row: [&str; 16],
) -> PatientRecord {
    spares.keep_record(spent);
    type_row(typer, columns, row, spares)
}

#[test]
fn a_recycled_record_keeps_nothing_of_the_row_before() {
    let builder = RowBuilder::new("patients.csv", &schema(), None).unwrap();
    let (typer, columns) = (builder.typer_ref(), columns());
    let mut spares = Spares::default();
    let full = type_row(typer, &columns, FULL, &mut spares);
    assert!(full.opted_out && !full.unknown.is_empty() && !full.other.is_empty());
    assert_eq!(full.fields, [Some("高橋".into()), Some("内科".into())]);
    let dates = full.dates.as_ptr();

    let empty = again(&mut spares, typer, &columns, full, EMPTY);
    let fresh = type_row(typer, &columns, EMPTY, &mut Spares::default());
    assert_eq!(empty, fresh);
    assert_eq!((empty.id.as_str(), empty.line), ("P2", 7));
    assert_eq!((&empty.line_user_id, &empty.name), (&None, &None));
    assert_eq!(
        (empty.stage, empty.stage_entered_at, empty.birth_date),
        (None, None, None)
    );
    assert!(empty.tags.is_empty() && empty.other.is_empty() && !empty.opted_out);
    assert_eq!(empty.dates, [None; 5]);
    assert_eq!(empty.fields, [None, None]);
    assert!(empty.unknown.is_empty());
    assert_eq!(empty.dates.as_ptr(), dates, "the record was filled again");

    // The strings set aside for the empty cells are the full row's again.
    let full = again(&mut spares, typer, &columns, empty, FULL);
    assert_eq!(
        full,
        type_row(typer, &columns, FULL, &mut Spares::default())
    );
    assert_eq!(full.dates.as_ptr(), dates);
}

#[test]
fn fewer_tags_after_more_are_overwritten_in_place() {
    let builder = RowBuilder::new("patients.csv", &schema(), None).unwrap();
    let (typer, columns) = (builder.typer_ref(), columns());
    let mut spares = Spares::default();
    let with_tags = |tags: &'static str| {
        let mut row = FULL;
        row[6] = tags;
        row
    };
    let many = type_row(
        typer,
        &columns,
        with_tags("長い名前のタグ;b;c;d"),
        &mut spares,
    );
    let first = many.tags[0].as_ptr();
    let few = again(&mut spares, typer, &columns, many, with_tags("x、y"));
    assert_eq!(few.tags, ["x", "y"]);
    assert_eq!(
        few.tags[0].as_ptr(),
        first,
        "the first tag's string, overwritten"
    );
    let more = again(&mut spares, typer, &columns, few, with_tags("p,q,r,s,t"));
    assert_eq!(more.tags, ["p", "q", "r", "s", "t"]);
    let none = again(&mut spares, typer, &columns, more, with_tags(""));
    assert!(none.tags.is_empty());
}

/// A careless export's huge cells (an id, a name, a field, a tag of 100 KB) are not kept in
/// the record or the spare strings for the rows after it: memory stays what ordinary rows take.
#[test]
fn a_huge_cell_is_not_kept_for_the_rows_after_it() {
    let builder = RowBuilder::new("patients.csv", &schema(), None).unwrap();
    let (typer, columns) = (builder.typer_ref(), columns());
    let mut spares = Spares::default();
    let huge = "長".repeat(100_000 / 3);
    let mut row = FULL;
    for cell in [0, 2, 6, 13] {
        row[cell] = &huge;
    }
    let big = type_row(typer, &columns, row, &mut spares);
    assert_eq!(big.name.as_deref(), Some(huge.as_str()));
    assert_eq!(big.tags, [huge.as_str()]);
    let after = again(&mut spares, typer, &columns, big, FULL);
    assert_eq!(
        after,
        type_row(typer, &columns, FULL, &mut Spares::default())
    );
    let strings = [&after.id, after.name.as_ref().unwrap(), &after.tags[0]]
        .into_iter()
        .chain(after.fields.iter().flatten());
    for string in strings {
        assert!(
            string.capacity() <= LONGEST_KEPT,
            "{} bytes kept",
            string.capacity()
        );
    }
    assert!(after.tags.capacity() <= LONGEST_KEPT);
}

/// Rows read ahead, typed into batches handed back again and again (many batches of them, with
/// cells empty or not from one row to the next), read as the rows read here.
#[test]
fn records_handed_back_read_as_new_ones() {
    let mut text = String::from(
        "id,line_user_id,name,stage,tags,opted_out,visited_at,doctor,department,memo\n",
    );
    for n in 0..12_000usize {
        let some = |every: usize, value: String| if n % every == 0 { value } else { String::new() };
        let tags = ["", "a", "a;b", "a;b;c;dd"][n % 4];
        text.push_str(&format!(
            "P{n},{},{},{},{tags},{},{},{},{},{}\n",
            some(2, format!("U{n:032}")),
            some(3, format!("患者{n}")),
            some(5, "booked".into()),
            some(7, "yes".into()),
            some(11, format!("2026-11-{:02} 10:00", n % 28 + 1)),
            some(2, "高橋".into()),
            some(3, "内科".into()),
            some(13, "note".into()),
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
        let mut seen = Vec::new();
        while let Some(taken) = rows.next_row() {
            seen.push(taken.row.unwrap().clone());
        }
        seen
    };
    for threads in [1, 2] {
        let ahead = work_ahead(&path, &schema(), &options, threads, &no_work, take).unwrap();
        assert_eq!(here, ahead, "{threads} typing threads");
    }
}
