//! Reader tests, written as the clinic would describe the behaviour.

use std::io::Cursor;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::*;

mod ahead;
mod as_exported;
mod csv;
mod encodings;
mod fixtures;
mod jsonl;
mod jsonl_keys;
mod jsonl_scan;
mod lent;
mod limits;
mod other_columns;
mod other_reused;
mod privacy;
mod recycled;
mod shift_jis_ahead;
mod shift_jis_fields;

/// The schema of `rules/clinic.step`.
fn schema() -> RecordSchema {
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
    RecordSchema {
        timezone: chrono_tz::Asia::Tokyo,
        stages: names(&["booked", "first_visit", "follow_up", "regular"]),
        date_fields: names(&[
            "appointment_at",
            "visited_at",
            "last_visit_at",
            "next_booking_at",
            "cancelled_at",
        ]),
        fields: names(&["doctor", "department"]),
    }
}

/// `header`'s columns as a reader of [`schema`] resolves them, for tests that type rows
/// cell by cell.
fn resolved(header: &[&str]) -> Vec<columns::Column> {
    let resolver = columns::Resolver::new(&schema(), None);
    header.iter().map(|name| resolver.resolve(name)).collect()
}

/// Default options but the export's encoding, as `--encoding` gives it.
fn with_encoding(encoding: Encoding) -> ReadOptions {
    ReadOptions {
        encoding,
        ..ReadOptions::default()
    }
}

fn read_with(
    format: RecordFormat,
    bytes: impl Into<Vec<u8>>,
    options: &ReadOptions,
) -> Result<Vec<Result<PatientRecord, RowError>>, RecordsError> {
    let records = read_from(
        Cursor::new(bytes.into()),
        "patients",
        format,
        &schema(),
        options,
    )?;
    Ok(records.collect())
}

/// Rows as the reader yields them.
type Rows = Vec<Result<PatientRecord, RowError>>;

/// Every row, and (line, report) of each kept row with unreadable cells, taken after each row
/// as a command does.
fn read_reports(
    format: RecordFormat,
    bytes: impl Into<Vec<u8>>,
    options: &ReadOptions,
) -> (Rows, Vec<(usize, String)>) {
    let mut records = read_from(
        Cursor::new(bytes.into()),
        "patients",
        format,
        &schema(),
        options,
    )
    .unwrap();
    let mut rows = Vec::new();
    let mut reports = Vec::new();
    while let Some(row) = records.next() {
        for report in records.take_unreadable() {
            assert_eq!(report.file, "patients");
            if let Ok(record) = &row {
                assert_eq!(record.line, report.line, "taken with its own row");
            }
            reports.push((report.line, report.message));
        }
        rows.push(row);
    }
    (rows, reports)
}

fn read_csv(text: &str) -> Vec<Result<PatientRecord, RowError>> {
    read_with(RecordFormat::Csv, text, &ReadOptions::default()).unwrap()
}

fn read_jsonl(text: &str) -> Vec<Result<PatientRecord, RowError>> {
    read_with(RecordFormat::Jsonl, text, &ReadOptions::default()).unwrap()
}

fn with_mapping(toml: &str) -> ReadOptions {
    ReadOptions {
        mapping: Some(HeaderMapping::parse(toml).unwrap()),
        ..ReadOptions::default()
    }
}

/// A wall-clock time at the clinic (Tokyo).
fn tokyo(text: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
    chrono_tz::Asia::Tokyo
        .from_local_datetime(&naive)
        .unwrap()
        .with_timezone(&Utc)
}

/// (line, message) of every bad row, and the ids of the good ones.
fn split(rows: Vec<Result<PatientRecord, RowError>>) -> (Vec<String>, Vec<(usize, String)>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for row in rows {
        match row {
            Ok(record) => good.push(record.id),
            Err(err) => {
                assert_eq!(err.file, "patients");
                bad.push((err.line, err.message));
            }
        }
    }
    (good, bad)
}
