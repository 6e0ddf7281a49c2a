//! No value from a patient's row ever reaches a message: every error names the column by its
//! header and the row by its line. Text from the file that does reach a message (headers,
//! JSON keys) is escaped.

use super::*;

const NAME: &str = "山田 花子";
const PHONE: &str = "090-1234-5678";
const LINE_ID: &str = "U4af4980629e5c8d4b2e1f0a9c8b7d6e5";

/// Fails if a message holds any of the patient's values.
fn assert_no_patient_data(message: &str) {
    for value in [NAME, "山田", PHONE, "09012345678", LINE_ID] {
        assert!(!message.contains(value), "patient data in: {message}");
    }
}

/// The one report of `text` (CSV after `header`) — a skipped row's or a kept row's unreadable
/// cells: its line and message, checked for leaks.
fn bad_row(format: RecordFormat, text: &str, options: &ReadOptions) -> (usize, String) {
    let (rows, unreadable) = read_reports(format, text, options);
    let (_, mut bad) = split(rows);
    bad.extend(unreadable);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_no_patient_data(&bad[0].1);
    bad[0].clone()
}

fn csv_row(row: &str) -> (usize, String) {
    let header = "id,name,line_user_id,stage,birth_date,opted_out,appointment_at,memo";
    bad_row(
        RecordFormat::Csv,
        &format!("{header}\nP0,,,booked,,,,\n{row}\n"),
        &ReadOptions::default(),
    )
}

#[test]
fn a_value_in_the_wrong_column_is_not_quoted() {
    let cases = [
        (
            format!("P1,{NAME},{LINE_ID},booked,,,{PHONE},"),
            "column `appointment_at`: not a date or date-time",
        ),
        (
            format!("P1,{NAME},{LINE_ID},booked,{NAME},,,"),
            "column `birth_date`: not a date",
        ),
        (
            format!("P1,{NAME},{PHONE},{NAME},,,,"),
            "column `stage`: not one of the stages",
        ),
        (
            format!("P1,{NAME},{PHONE},{LINE_ID},,,,"),
            "column `stage`: not one of the stages",
        ),
        (
            format!("P1,{NAME},{PHONE},booked,,{LINE_ID},,"),
            "column `opted_out`: not a yes/no value",
        ),
        (
            format!("P1,{NAME},{LINE_ID},booked,,,,{PHONE},{PHONE}"),
            "the row has 9 fields but the header has 8",
        ),
        (
            format!("P0,{NAME},{LINE_ID},booked,,,,{PHONE}"),
            "the same id is already on line 2",
        ),
    ];
    for (row, expected) in cases {
        let (line, message) = csv_row(&row);
        assert_eq!(line, 3, "{message}");
        assert!(message.starts_with(expected), "{message}");
    }
}

#[test]
fn an_id_is_not_repeated_either() {
    let text = format!("id,name\n{PHONE},{NAME}\n{PHONE},{NAME}\n");
    let (line, message) = bad_row(RecordFormat::Csv, &text, &ReadOptions::default());
    assert_eq!(
        (line, message.as_str()),
        (3, "the same id is already on line 2")
    );
}

#[test]
fn a_misspelt_stage_is_quoted_but_a_misplaced_value_is_not() {
    let (_, message) = csv_row("P1,,,folow_up,,,,");
    assert!(
        message.contains("unknown stage `folow_up`; did you mean `follow_up`?"),
        "{message}"
    );
    // Near a stage but not spelt like one: not quoted.
    let (_, message) = csv_row("P1,,,follow up 090,,,,");
    assert!(!message.contains("follow up 090"), "{message}");
    // A mapping that sends the name column to `stage` by mistake.
    let options = with_mapping("[columns]\n\"氏名\" = \"stage\"\n");
    let text = format!("id,氏名\nP1,{NAME}\n");
    let (line, message) = bad_row(RecordFormat::Csv, &text, &options);
    assert_eq!(line, 2);
    assert!(
        message.starts_with("column `氏名` (stage): not one of the stages"),
        "{message}"
    );
}

#[test]
fn a_first_line_that_may_be_a_patient_is_not_repeated() {
    for first in [
        format!("P1,{NAME},{PHONE},{LINE_ID}"),
        format!("P1,{NAME},{NAME},{LINE_ID}"),
        format!("P1,{NAME},{PHONE},2026-11-20 10:00"),
    ] {
        let text = format!("{first}\nP2,{NAME},{PHONE},{LINE_ID}\n");
        let err = read_with(RecordFormat::Csv, text, &ReadOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                RecordsError::UnknownHeader {
                    line: 1,
                    columns: 4,
                    ..
                } | RecordsError::NoHeader { .. }
            ),
            "{err}"
        );
        assert_no_patient_data(&err.to_string());
    }
}

#[test]
fn a_header_that_is_clearly_one_is_named_escaped() {
    let err = read_with(
        RecordFormat::Csv,
        "name,\u{1b}[2J患者番号\nx,y\n",
        &ReadOptions::default(),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, RecordsError::MissingIdColumn { .. }),
        "{message}"
    );
    assert!(
        message.contains("found: name, \\u{1b}[2J患者番号"),
        "{message}"
    );
    assert!(!message.contains('\u{1b}'), "{message}");

    let err = read_with(
        RecordFormat::Csv,
        "id,\u{1b}]0;x\u{7}\n",
        &with_mapping("[columns]\n\"\\u001b]0;x\\u0007\" = \"id\"\n"),
    )
    .unwrap_err();
    assert!(matches!(err, RecordsError::DuplicateColumn { .. }), "{err}");
    assert!(!err.to_string().contains('\u{1b}'), "{err}");
    assert!(err.to_string().contains("\\u{1b}]0;x\\u{7}"), "{err}");
}

#[test]
fn a_column_with_an_escape_in_its_header_is_named_escaped() {
    let options = with_mapping("[columns]\n\"\\u001b[31m予約\" = \"appointment_at\"\n");
    let text = "id,\u{1b}[31m予約\nP1,tomorrow\n";
    let (line, message) = bad_row(RecordFormat::Csv, text, &options);
    assert_eq!(line, 2);
    assert!(
        message.starts_with("column `\\u{1b}[31m予約` (appointment_at): not a date"),
        "{message}"
    );

    let text = format!("{{\"id\": \"P1\", \"\\u001b[2Jname\": {{\"family\": \"{NAME}\"}}}}\n");
    let (line, message) = bad_row(RecordFormat::Jsonl, &text, &ReadOptions::default());
    assert_eq!(line, 1);
    assert!(
        message.starts_with("field `\\u{1b}[2Jname`: nested"),
        "{message}"
    );
    assert!(!message.contains('\u{1b}'), "{message}");
}

#[test]
fn jsonl_errors_do_not_quote_the_line() {
    let cases = [
        format!("{{\"id\": \"P1\", \"name\": \"{NAME}\", \"phone\": \"{PHONE}\""),
        format!("{{\"id\": \"P1\", \"name\": \"{NAME}\" \"{PHONE}\"}}"),
        format!("{{\"id\": \"P1\", \"name\": {NAME}}}"),
        format!("\"{NAME} {PHONE}\""),
        format!("[\"{LINE_ID}\"]"),
        format!("{{\"id\": \"P1\", \"name\": \"{NAME}\", \"appointment_at\": \"{PHONE}\"}}"),
        format!("{{\"id\": \"P1\", \"stage\": \"{LINE_ID}\"}}"),
        format!("{{\"id\": \"P1\", \"tags\": [[\"{NAME}\"]]}}"),
    ];
    for case in cases {
        let (line, message) = bad_row(
            RecordFormat::Jsonl,
            &format!("{{\"id\": \"P0\"}}\n{case}\n"),
            &ReadOptions::default(),
        );
        assert_eq!(line, 2, "{message}");
    }
}

#[test]
fn a_json_data_error_is_not_passed_on() {
    // serde_json quotes the value in a data error; the reader must never pass that on.
    let err = serde_json::from_str::<u32>(&format!("\"{NAME}\"")).unwrap_err();
    assert!(err.to_string().contains(NAME), "the premise: {err}");
    let message = super::super::jsonl_rows::json_error(&err);
    assert_no_patient_data(&message);
    assert!(message.starts_with("invalid JSON at column"), "{message}");
}

#[test]
fn encoding_errors_do_not_quote_the_row() {
    let mut bytes = format!("id,name\nP1,{NAME}\n").into_bytes();
    bytes.extend(
        encoding_rs::SHIFT_JIS
            .encode(&format!("P2,{NAME},{PHONE}\n"))
            .0
            .iter(),
    );
    let (_, bad) = split(read_with(RecordFormat::Csv, bytes, &ReadOptions::default()).unwrap());
    assert_eq!(bad[0].0, 3);
    assert_no_patient_data(&bad[0].1);
}
