use std::io::Read;

use super::*;

const HEADER: &str = "id,line_user_id,name,stage,stage_entered_at,birth_date,tags,opted_out,\
                      appointment_at,visited_at,last_visit_at,next_booking_at,cancelled_at,doctor,department,memo";

#[test]
fn a_full_row_is_typed_once() {
    let text = format!(
        "{HEADER}\nP001,U0123,山田 太郎,booked,2026-11-20 10:00,1960/4/1,chronic;vip,no,\
         2026/11/27 09:30,,,,,佐藤,内科,駐車場希望\n"
    );
    let rows = read_csv(&text);
    let record = rows[0].as_ref().unwrap();
    assert_eq!(record.id, "P001");
    assert_eq!(record.line_user_id.as_deref(), Some("U0123"));
    assert_eq!(record.name.as_deref(), Some("山田 太郎"));
    assert_eq!(record.stage, Some(0));
    assert_eq!(record.stage_entered_at, Some(tokyo("2026-11-20 10:00")));
    assert_eq!(
        record.birth_date,
        chrono::NaiveDate::from_ymd_opt(1960, 4, 1)
    );
    assert_eq!(record.tags, ["chronic", "vip"]);
    assert!(!record.opted_out);
    assert_eq!(record.dates[0], Some(tokyo("2026-11-27 09:30")));
    assert_eq!(record.dates[1..], [None, None, None, None]);
    assert_eq!(
        record.fields,
        [Some("佐藤".to_owned()), Some("内科".to_owned())]
    );
    assert_eq!(
        record.other.get("memo").map(String::as_str),
        Some("駐車場希望")
    );
    assert_eq!(record.line, 2);
}

#[test]
fn empty_cells_are_not_set() {
    let rows = read_csv(
        "id,line_user_id,name,stage,tags,opted_out,visited_at,doctor,memo\nP001, ,,,,,,,\n",
    );
    let record = rows[0].as_ref().unwrap();
    assert_eq!(record.line_user_id, None);
    assert_eq!(record.name, None);
    assert_eq!(record.stage, None);
    assert!(record.tags.is_empty());
    assert!(!record.opted_out);
    assert_eq!(record.dates, vec![None; 5]);
    assert_eq!(record.fields, [None, None]);
    assert!(record.other.is_empty());
}

#[test]
fn tags_and_opted_out_spellings() {
    let text = "id,tags,opted_out\nA, chronic ; ;flu_season ,TRUE\nB,,1\nC,vip,はい\nD,,いいえ\nE,,yes\nF,,0\n";
    let rows: Vec<_> = read_csv(text).into_iter().map(Result::unwrap).collect();
    assert_eq!(rows[0].tags, ["chronic", "flu_season"]);
    let opted: Vec<bool> = rows.iter().map(|r| r.opted_out).collect();
    assert_eq!(opted, [true, true, true, false, true, false]);

    // A word nobody listed: kept, unknown, and taken as opted out (never send by mistake).
    let (rows, unreadable) = read_reports(
        RecordFormat::Csv,
        "id,opted_out\nA,maybe-later\n",
        &ReadOptions::default(),
    );
    let record = rows[0].as_ref().unwrap();
    assert!(record.opted_out);
    assert!(record.unknown.contains(crate::fields::FieldRef::Builtin(
        crate::fields::Field::OptedOut
    )));
    assert_eq!(unreadable[0].0, 2);
    assert!(
        unreadable[0].1.contains("`opted_out`"),
        "{}",
        unreadable[0].1
    );
    assert!(
        unreadable[0].1.contains("nothing is sent to this patient"),
        "{}",
        unreadable[0].1
    );
    assert!(
        !unreadable[0].1.contains("maybe-later"),
        "only date and stage cells are quoted"
    );
}

#[test]
fn utf8_bom_is_not_part_of_the_first_header() {
    let bytes = ["\u{feff}id,name\nP001,山田\n".as_bytes()].concat();
    let rows = read_with(RecordFormat::Csv, bytes, &ReadOptions::default()).unwrap();
    assert_eq!(rows[0].as_ref().unwrap().id, "P001");
}

#[test]
fn shift_jis_export_with_japanese_headers() {
    let text =
        "患者ID,氏名,ステージ,予約日時,担当医\r\nP001,山田 花子,初診,2026/11/27 09:30,佐藤\r\n";
    let bytes = encoding_rs::SHIFT_JIS.encode(text).0.into_owned();
    let mapping = "[columns]\n\"患者ID\" = \"id\"\n\"氏名\" = \"name\"\n\"ステージ\" = \"stage\"\n\
                   \"予約日時\" = \"appointment_at\"\n\"担当医\" = \"doctor\"\n\
                   [stages]\n\"初診\" = \"first_visit\"\n";
    for encoding in [Encoding::Auto, Encoding::ShiftJis] {
        let options = ReadOptions {
            encoding,
            ..with_mapping(mapping)
        };
        let rows = read_with(RecordFormat::Csv, bytes.clone(), &options).unwrap();
        let record = rows[0].as_ref().unwrap();
        assert_eq!(record.id, "P001");
        assert_eq!(record.name.as_deref(), Some("山田 花子"));
        assert_eq!(record.stage, Some(1));
        assert_eq!(record.dates[0], Some(tokyo("2026-11-27 09:30")));
        assert_eq!(record.fields[0].as_deref(), Some("佐藤"));
    }
    let options = ReadOptions {
        encoding: Encoding::Utf8,
        ..with_mapping(mapping)
    };
    let err = read_with(RecordFormat::Csv, bytes, &options).unwrap_err();
    assert!(matches!(err, RecordsError::Header { .. }), "{err}");
    assert!(err.to_string().contains("Shift_JIS"), "{err}");
}

#[test]
fn bad_rows_are_skipped_bad_cells_are_not_and_reading_goes_on() {
    let text = "id,name,stage,appointment_at,memo\n\
                P001,山田 太郎,booked,2026-11-27 09:30,\n\
                P002,鈴木 一郎,booked,2026-11-31 09:30,\n\
                ,佐藤 花子,booked,,\n\
                P004,\"高橋\n次郎\",booked,,\"2行の\nメモ\"\n\
                P005,田中 三郎,folow_up,,\n\
                \n\
                P006,伊藤 四郎,booked\n\
                P001,渡辺 五郎,regular,,\n\
                P007,小林 六子,regular,,\n";
    let (rows, unreadable) = read_reports(RecordFormat::Csv, text, &ReadOptions::default());
    let (good, bad) = split(rows);
    assert_eq!(good, ["P001", "P002", "P004", "P005", "P007"]);
    let lines: Vec<usize> = bad.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [4, 10, 11]);
    assert!(bad[0].1.contains("id is empty"), "{}", bad[0].1);
    assert!(
        bad[1].1.contains("3 fields but the header has 5"),
        "{}",
        bad[1].1
    );
    assert_eq!(bad[2].1, "the same id is already on line 2");
    let lines: Vec<usize> = unreadable.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [3, 8]);
    assert!(
        unreadable[0]
            .1
            .starts_with("column `appointment_at`: not a date or date-time"),
        "{}",
        unreadable[0].1
    );
    assert!(
        unreadable[0]
            .1
            .ends_with("steps that need `appointment_at` are not evaluated for them"),
        "{}",
        unreadable[0].1
    );
    assert!(
        !unreadable[0].1.contains("2026-11-31"),
        "dates are not quoted"
    );
    assert!(
        unreadable[1].1.contains("unknown stage `folow_up`"),
        "{}",
        unreadable[1].1
    );
    assert!(
        unreadable[1].1.contains("did you mean `follow_up`?"),
        "{}",
        unreadable[1].1
    );
    for (_, message) in bad.iter().chain(&unreadable) {
        for name in ["山田", "鈴木", "佐藤", "田中", "伊藤", "渡辺"] {
            assert!(
                !message.contains(name),
                "a patient's name leaked: {message}"
            );
        }
    }
}

#[test]
fn a_skipped_row_has_every_problem_in_one_message() {
    let (_, bad) = split(read_csv(
        "id,stage,visited_at,birth_date\n,regulr,yesterday,1990-02-30\n",
    ));
    assert_eq!(bad.len(), 1);
    let message = &bad[0].1;
    assert!(message.starts_with("the id is empty"), "{message}");
    assert!(message.contains("unknown stage `regulr`"), "{message}");
    assert!(
        message.contains("column `visited_at`: not a date or date-time"),
        "{message}"
    );
    assert!(!message.contains("yesterday"), "{message}");
    assert!(
        message.contains("column `birth_date`: not a date"),
        "{message}"
    );
    assert!(!message.contains("1990-02-30"), "{message}");
}

#[test]
fn a_duplicate_of_a_bad_row_is_still_a_duplicate() {
    let (rows, unreadable) = read_reports(
        RecordFormat::Csv,
        "id,stage,visited_at\nP1,nope,\nP1,booked,x\nP1,booked,\n",
        &ReadOptions::default(),
    );
    let (good, bad) = split(rows);
    assert_eq!(good, ["P1"], "kept with its stage unknown");
    assert_eq!(unreadable.len(), 1, "{unreadable:?}");
    assert_eq!(unreadable[0].0, 2);
    assert_eq!(bad[0].0, 3);
    assert!(
        bad[0]
            .1
            .starts_with("the same id is already on line 2; column `visited_at`"),
        "a skipped row's cells are in its one message: {}",
        bad[0].1
    );
    assert_eq!(bad[1], (4, "the same id is already on line 2".to_owned()));
}

#[test]
fn rows_of_bare_commas_are_skipped() {
    let (good, bad) = split(read_csv("id,name,stage\nP1,,booked\n,,\n , ,\nP2,,\n"));
    assert_eq!(good, ["P1", "P2"]);
    assert!(bad.is_empty());
}

#[test]
fn missing_id_column_is_a_file_error_with_a_suggestion() {
    let err = read_with(
        RecordFormat::Csv,
        "ID,name\nP1,x\n",
        &ReadOptions::default(),
    )
    .unwrap_err();
    let RecordsError::MissingIdColumn {
        file,
        header,
        suggestion,
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(file, "patients");
    assert_eq!(header, &["ID", "name"]);
    assert_eq!(suggestion.as_deref(), Some("ID"));
    assert!(err.to_string().contains("\"ID\" = \"id\""), "{err}");

    let err = read_with(
        RecordFormat::Csv,
        "患者番号,name\n",
        &ReadOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            RecordsError::MissingIdColumn {
                suggestion: None,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn empty_file_is_a_file_error() {
    let err = read_with(RecordFormat::Csv, "", &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, RecordsError::Header { .. }), "{err}");
}

#[test]
fn two_columns_meaning_the_same_is_a_file_error() {
    let err = read_with(
        RecordFormat::Csv,
        "患者ID,id\n",
        &with_mapping("[columns]\n\"患者ID\" = \"id\"\n"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "patients: columns `患者ID` and `id` both mean `id`"
    );
}

#[test]
fn a_stage_mapping_to_an_unknown_stage_is_a_mapping_error() {
    let options = with_mapping("[stages]\n\"初診\" = \"first_vist\"\n");
    let err = read_with(RecordFormat::Csv, "id\n", &options).unwrap_err();
    assert!(matches!(err, RecordsError::Mapping { .. }), "{err}");
    assert!(
        err.to_string().contains("did you mean `first_visit`?"),
        "{err}"
    );
}

#[test]
fn unknown_stage_suggests_mapped_values_too() {
    let options = with_mapping("[stages]\n\"初診\" = \"first_visit\"\n\"定期\" = \"regular\"\n");
    let rows = read_with(
        RecordFormat::Csv,
        "id,stage\nP1,定期\nP2,regular\nP3,Booked\n",
        &options,
    );
    let (good, bad) = split(rows.unwrap());
    assert_eq!(good, ["P1", "P2", "P3"]);
    assert!(bad.is_empty());
    let (_, unreadable) = read_reports(
        RecordFormat::Csv,
        "id,stage\nP1,定期\nP2,regular\nP3,Booked\n",
        &options,
    );
    assert_eq!(unreadable[0].0, 4);
    assert!(
        unreadable[0].1.contains("did you mean `booked`?"),
        "{}",
        unreadable[0].1
    );
}

#[test]
fn mapped_headers_are_named_both_ways_in_messages() {
    let options = with_mapping("[columns]\n\"予約日時\" = \"appointment_at\"\n");
    let (_, bad) = read_reports(RecordFormat::Csv, "id,予約日時\nP1,11/27\n", &options);
    assert!(
        bad[0]
            .1
            .starts_with("column `予約日時` (appointment_at): not a date or date-time"),
        "{}",
        bad[0].1
    );
}

#[test]
fn unmapped_headers_land_in_other_under_their_mapped_name() {
    let options = with_mapping("[columns]\n\"メモ\" = \"memo\"\n");
    let rows = read_with(RecordFormat::Csv, "id,メモ,紹介元\nP1,a,b\n", &options).unwrap();
    let other = &rows[0].as_ref().unwrap().other;
    assert_eq!(other.get("memo").map(String::as_str), Some("a"));
    assert_eq!(other.get("紹介元").map(String::as_str), Some("b"));
}

/// An endless export: if the reader slurped its input, this test would never finish.
struct EndlessExport {
    row: usize,
    pending: Vec<u8>,
}

impl Read for EndlessExport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            self.pending = if self.row == 0 {
                b"id,stage\n".to_vec()
            } else {
                format!("P{},booked\n", self.row).into_bytes()
            };
            self.row += 1;
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

#[test]
fn rows_stream_without_reading_the_whole_file() {
    let export = EndlessExport {
        row: 0,
        pending: Vec::new(),
    };
    let records = read_from(
        export,
        "endless",
        RecordFormat::Csv,
        &schema(),
        &ReadOptions::default(),
    );
    let ids: Vec<String> = records.unwrap().take(3).map(|r| r.unwrap().id).collect();
    assert_eq!(ids, ["P1", "P2", "P3"]);
}

#[test]
fn line_numbers_survive_blank_lines_crlf_and_a_missing_final_newline() {
    let text = "id,stage\r\n\r\n\r\nP1,x\r\nP2,\"a\r\nb\"\r\n\r\nP3,y\r\nP4,z";
    let (_, unreadable) = read_reports(RecordFormat::Csv, text, &ReadOptions::default());
    let lines: Vec<usize> = unreadable.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [4, 5, 8, 9]);
}

#[test]
fn a_row_that_is_not_utf8_is_reported_and_reading_goes_on() {
    let mut bytes = b"id,name\nP1,a\n\n".to_vec();
    bytes.extend(encoding_rs::SHIFT_JIS.encode("P2,山田\n").0.iter());
    bytes.extend(b"P3,c\n");
    let options = with_encoding(Encoding::Utf8);
    let (good, bad) = split(read_with(RecordFormat::Csv, bytes, &options).unwrap());
    assert_eq!(good, ["P1", "P3"]);
    assert_eq!(bad[0].0, 4);
    assert!(
        bad[0].1.starts_with("column `name` is not valid UTF-8"),
        "{}",
        bad[0].1
    );
}

/// As `a_row_that_is_not_utf8_is_reported_and_reading_goes_on`, in rows long enough to be
/// checked 32 bytes at a time (simdutf8 takes rows past 64 bytes).
#[test]
fn a_long_row_broken_deep_inside_is_reported_and_reading_goes_on() {
    let long_name = "山田".repeat(40);
    let mut bytes = format!("id,name\nP1,{long_name}\n").into_bytes();
    let mut broken = format!("P2,{long_name}\n").into_bytes();
    broken[100] = 0xff;
    bytes.extend(&broken);
    bytes.extend(format!("P3,{long_name}\n").as_bytes());
    let options = with_encoding(Encoding::Utf8);
    let rows = read_with(RecordFormat::Csv, bytes, &options).unwrap();
    assert_eq!(rows[0].as_ref().unwrap().name.as_deref(), Some(&*long_name));
    let (good, bad) = split(rows);
    assert_eq!(good, ["P1", "P3"]);
    assert_eq!(bad[0].0, 3);
    assert!(
        bad[0].1.starts_with("column `name` is not valid UTF-8"),
        "{}",
        bad[0].1
    );
}

#[test]
fn an_export_without_its_header_line_does_not_echo_the_first_patient() {
    let err = read_with(
        RecordFormat::Csv,
        "P1,山田 太郎,booked,2026-11-20 10:00\n",
        &ReadOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RecordsError::NoHeader { .. }), "{err}");
    assert!(!err.to_string().contains("山田"), "{err}");
}
