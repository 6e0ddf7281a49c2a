//! The fixture files under `tests/fixtures/patients/` read as their README says.

use std::path::PathBuf;

use super::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/patients")
        .join(name)
}

fn open_fixture(name: &str, options: &ReadOptions) -> Vec<Result<PatientRecord, RowError>> {
    open(&fixture(name), &schema(), options).unwrap().collect()
}

#[test]
fn shift_jis_fixture_reads_through_its_mapping() {
    let mapping = HeaderMapping::load(&fixture("shift_jis_mapping.toml")).unwrap();
    let options = ReadOptions {
        mapping: Some(mapping),
        ..ReadOptions::default()
    };
    let rows: Vec<_> = open_fixture("shift_jis.csv", &options)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["S001", "S002", "S003", "S004", "S005"]);
    let stages: Vec<Option<usize>> = rows.iter().map(|r| r.stage).collect();
    assert_eq!(stages, [Some(0), Some(1), Some(2), Some(3), Some(0)]);
    assert_eq!(rows[0].name.as_deref(), Some("山本 美咲"));
    assert_eq!(rows[0].dates[0], Some(tokyo("2026-11-27 10:30")));
    assert!(rows[3].opted_out);
    assert_eq!(rows[3].line_user_id, None);
    assert_eq!(rows[4].dates[4], Some(tokyo("2026-11-25 08:40")));
    assert_eq!(rows[4].fields[1].as_deref(), Some("健診"));

    let without_mapping = open(
        &fixture("shift_jis.csv"),
        &schema(),
        &ReadOptions::default(),
    );
    assert!(
        matches!(
            without_mapping,
            Err(RecordsError::UnknownHeader { line: 1, .. })
        ),
        "{without_mapping:?}"
    );
}

#[test]
fn bom_fixture() {
    let rows: Vec<_> = open_fixture("bom.csv", &ReadOptions::default())
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].id, "B001");
    assert_eq!(
        rows[0].other.get("memo").map(String::as_str),
        Some("駐車場あり, 車いす")
    );
    assert_eq!(rows[1].stage_entered_at, Some(tokyo("2026-08-20 11:00")));
    assert_eq!(rows[2].stage_entered_at, Some(tokyo("2025-01-15 00:00")));
    assert_eq!(rows[2].tags, ["chronic", "vip"]);
}

#[test]
fn bad_rows_fixture() {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for row in open_fixture("bad_rows.csv", &ReadOptions::default()) {
        match row {
            Ok(record) => good.push((record.line, record.id)),
            Err(err) => {
                assert!(err.file.ends_with("bad_rows.csv"), "{}", err.file);
                bad.push(err.line);
            }
        }
    }
    let good: Vec<(usize, &str)> = good.iter().map(|(line, id)| (*line, id.as_str())).collect();
    // Line 3's impossible date and line 5's misspelt stage leave those fields unknown.
    assert_eq!(
        good,
        [
            (2, "P101"),
            (3, "P102"),
            (5, "P104"),
            (6, "P105"),
            (9, "P108"),
            (11, "P109")
        ]
    );
    assert_eq!(bad, [4, 7, 8]);
}

#[test]
fn jsonl_fixture() {
    let rows: Vec<_> = open_fixture("patients.jsonl", &ReadOptions::default())
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["J001", "J002", "3003", "J004", "J005"]);
    assert!(rows[2].opted_out);
    assert_eq!(rows[2].tags, ["chronic", "flu_season"]);
    assert_eq!(rows[3].tags, ["chronic", "flu_season", "vip"]);
    assert!(rows[4].tags.is_empty());
}

#[test]
fn the_sample_export_reads_cleanly() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules/patients.csv");
    let mut count = 0;
    for row in open(&path, &schema(), &ReadOptions::default()).unwrap() {
        row.unwrap();
        count += 1;
    }
    assert_eq!(count, 300);
}

#[test]
fn the_format_comes_from_the_extension() {
    let err = open(&fixture("README.md"), &schema(), &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, RecordsError::UnknownFormat { .. }), "{err}");
    let err = open(&fixture("missing.csv"), &schema(), &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, RecordsError::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing.csv"), "{err}");
}
