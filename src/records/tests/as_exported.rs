//! Exports as reservation systems write them: Japanese dates, statuses and values the mapping
//! says mean "nothing", the export's opt-out words and tag separators.

use super::*;
use crate::fields::{Field, FieldRef};

const MAPPING: &str = "[columns]\n\"予約日時\" = \"appointment_at\"\n\"配信\" = \"opted_out\"\n\
                       [stages]\n\"予約済み\" = \"booked\"\n\"キャンセル待ち\" = \"-\"\n\
                       [empty]\n\"予約日時\" = [\"-\", \"未定\"]\ntags = \"なし\"\n\
                       [opted_out]\nyes = [\"停止中\"]\nno = [\"はい\"]\n";

fn shift_jis(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(text);
    assert!(!unmappable);
    bytes.into_owned()
}

/// The records of a Shift_JIS CSV read with [`MAPPING`], and the lines of unreadable cells.
fn read(text: &str) -> (Vec<PatientRecord>, Vec<usize>) {
    let (rows, unreadable) =
        read_reports(RecordFormat::Csv, shift_jis(text), &with_mapping(MAPPING));
    let records = rows.into_iter().map(Result::unwrap).collect();
    (
        records,
        unreadable.into_iter().map(|(line, _)| line).collect(),
    )
}

#[test]
fn japanese_dates_in_every_date_column() {
    let (records, unreadable) = read(
        "id,stage_entered_at,birth_date,予約日時,visited_at\n\
         A,2026年11月20日(金) 9:05,昭和55年4月1日,R8.11.30 14:00,令和8年11月19日\n\
         B,２０２６年１１月２０日,平成元年1月8日,2026年11月30日 14時30分,2026/11/19\n",
    );
    assert!(unreadable.is_empty(), "{unreadable:?}");
    assert_eq!(records[0].stage_entered_at, Some(tokyo("2026-11-20 09:05")));
    assert_eq!(records[0].birth_date, NaiveDate::from_ymd_opt(1980, 4, 1));
    assert_eq!(records[0].dates[0], Some(tokyo("2026-11-30 14:00")));
    assert_eq!(records[0].dates[1], Some(tokyo("2026-11-19 00:00")));
    assert_eq!(records[1].stage_entered_at, Some(tokyo("2026-11-20 00:00")));
    assert_eq!(records[1].birth_date, NaiveDate::from_ymd_opt(1989, 1, 8));
    assert_eq!(records[1].dates[0], Some(tokyo("2026-11-30 14:30")));
}

#[test]
fn a_status_mapped_to_a_dash_is_no_stage() {
    let (records, unreadable) = read("id,stage\nA,キャンセル待ち\nB,予約済み\nC,取消\n");
    let stages: Vec<_> = records.iter().map(|r| r.stage).collect();
    assert_eq!(stages, [None, Some(0), None]);
    assert!(
        records[0].unknown.is_empty(),
        "no stage, not an unknown one"
    );
    assert!(records[2].unknown.contains(FieldRef::Builtin(Field::Stage)));
    assert_eq!(unreadable, [4]);
}

#[test]
fn values_the_mapping_calls_empty_are_empty_in_their_column_only() {
    let (records, unreadable) =
        read("id,予約日時,cancelled_at,tags\nA,未定,,なし\nB, - ,,矯正\nC,,-,\n");
    assert_eq!(records[0].dates[0], None);
    assert!(records[0].tags.is_empty());
    assert_eq!(records[1].dates[0], None);
    assert_eq!(records[1].tags, ["矯正"]);
    // `-` is empty in 予約日時, not in cancelled_at: there it is a cell that cannot be read.
    assert!(records[2].unknown.contains(FieldRef::Date(4)));
    assert_eq!(unreadable, [4]);
}

#[test]
fn the_exports_opt_out_words_and_the_fail_safe() {
    let (records, unreadable) =
        read("id,配信\nA,停止中\nB,はい\nC,配信停止\nD,希望する\nE,希望しない\nF,わからない\nG,\n");
    let opted: Vec<bool> = records.iter().map(|r| r.opted_out).collect();
    // はい is the mapping's "no" here (a column asking "wants messages?").
    assert_eq!(opted, [true, false, true, false, true, true, false]);
    assert!(records[5]
        .unknown
        .contains(FieldRef::Builtin(Field::OptedOut)));
    assert_eq!(unreadable, [7]);
}

#[test]
fn tags_split_on_the_exports_separators() {
    let (records, _) = read("id,tags\nA,\"矯正、小児 , vip；定期\"\n");
    assert_eq!(records[0].tags, ["矯正", "小児", "vip", "定期"]);
    let options = with_mapping("[tags]\nseparators = [\"/\"]\n");
    let rows = read_with(RecordFormat::Csv, "id,tags\nA,矯正/小児、定期\n", &options).unwrap();
    assert_eq!(rows[0].as_ref().unwrap().tags, ["矯正", "小児、定期"]);
    let rows = read_jsonl("{\"id\": \"J\", \"tags\": [\"矯正、小児\", \"vip\"]}\n");
    assert_eq!(rows[0].as_ref().unwrap().tags, ["矯正", "小児", "vip"]);
}
