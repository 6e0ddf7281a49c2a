//! Columns the rules do not declare (`other`) are filled again in a recycled record's strings:
//! the same contents as a new record's, without a new entry per row.

use super::*;
use crate::records::row::{Cell, RowBuilder, RowTyper};
use crate::records::spent::{Spares, LONGEST_KEPT};

const HEADER: [&str; 4] = ["id", "memo", "ward", "doctor"];

fn typed(typer: &RowTyper, row: [&str; 4], spares: &mut Spares) -> PatientRecord {
    let columns = resolved(&HEADER);
    let cells = columns.iter().zip(row.map(|cell| Cell::Text(cell.into())));
    let typed = typer.type_row(3, cells, spares);
    // A builder of its own: the rows typed here are checked one at a time.
    let mut builder = RowBuilder::new("patients.csv", &schema(), None).unwrap();
    builder.finish(typed).unwrap()
}

#[test]
fn undeclared_columns_are_written_into_the_strings_before() {
    let builder = RowBuilder::new("patients.csv", &schema(), None).unwrap();
    let typer = builder.typer_ref();
    let mut spares = Spares::default();
    let again = |record: PatientRecord, row: [&str; 4], spares: &mut Spares| {
        spares.keep_record(record);
        let record = typed(typer, row, spares);
        assert_eq!(record, typed(typer, row, &mut Spares::default()), "{row:?}");
        record
    };
    let first = typed(
        typer,
        ["P1", "a longer note here", "3F", "高橋"],
        &mut spares,
    );
    let second = again(first, ["P2", "short", " ", "鈴木"], &mut spares);
    assert_eq!(second.other.len(), 1);
    assert_eq!(second.other["memo"], "short");
    // The first row's string, overwritten (a new one would hold only `short`).
    assert!(second.other["memo"].capacity() >= "a longer note here".len());
    let third = again(second, ["P3", "", "", "佐藤"], &mut spares);
    assert!(third.other.is_empty());
    let huge = "長".repeat(100_000 / 3);
    let fourth = again(third, ["P4", &huge, "2F", ""], &mut spares);
    assert_eq!(fourth.other["memo"], huge);
    let fifth = again(fourth, ["P5", "short", "1F", ""], &mut spares);
    assert!(fifth
        .other
        .values()
        .all(|value| value.capacity() <= LONGEST_KEPT));
    assert_eq!(fifth.other["ward"], "1F");
}
