//! Hostile patient exports through the real binary: mixed encodings, rows too long to be rows,
//! files without line ends, and errors that must not repeat a patient's data. The rules are
//! tests/fixtures/plan/clinic.step; the exports are in tests/fixtures/patients (see its README).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod as_exported;
#[path = "../common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fixtures, steprule, Run};

const NOW: &str = "2026-11-20 10:00";

/// The patient values in the privacy fixtures; none may reach stderr.
const NAME: &str = "山田 花子";
const PHONE: &str = "090-1234-5678";
const LINE_ID: &str = "U4af4980629e5c8d4b2e1f0a9c8b7d6e5";

/// `plan clinic.step --patients PATIENTS` for one day from NOW, as JSON, in tests/fixtures/plan.
fn plan(patients: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "plan",
        "clinic.step",
        "--patients",
        patients,
        "--now",
        NOW,
        "--days",
        "1",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    steprule(&fixtures().join("plan"), &args)
}

/// The patients `plan` sends to, in order.
fn planned(run: &Run) -> Vec<String> {
    run.stdout
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            row["patient"].as_str().expect("a patient").to_owned()
        })
        .collect()
}

/// `run clinic.step` at NOW into an outbox in `dir`; the text of each message delivered.
fn delivered(dir: &Path, patients: &str) -> (Run, Vec<String>) {
    let ledger = dir.join("ledger.db");
    let outbox = dir.join("outbox.jsonl");
    let run = steprule(
        &fixtures().join("plan"),
        &[
            "run",
            "clinic.step",
            "--patients",
            patients,
            "--now",
            NOW,
            "--ledger",
            ledger.to_str().unwrap(),
            "--outbox",
            outbox.to_str().unwrap(),
        ],
    );
    let outbox = std::fs::read_to_string(outbox).unwrap_or_default();
    let texts = outbox
        .lines()
        .map(|line| {
            let send: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            send["messages"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    (run, texts)
}

/// Asserts one message per name, each greeting its patient by name (in any order: sends go out
/// concurrently).
fn assert_greeted(texts: &[String], names: &[&str]) {
    assert_eq!(texts.len(), names.len(), "{texts:?}");
    for name in names {
        let greeting = format!("{name} 様");
        assert!(
            texts.iter().any(|t| t.contains(&greeting)),
            "{greeting} in {texts:?}"
        );
    }
}

#[test]
fn a_shift_jis_row_in_a_utf8_export_is_skipped_not_sent_garbled() {
    let dir = tempfile::tempdir().unwrap();
    let (run, texts) = delivered(dir.path(), "../patients/mixed_utf8.csv");
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_greeted(&texts, &["山田 花子", "佐藤 次郎"]);
    assert!(
        run.stderr.contains(
            "mixed_utf8.csv:3: column `name` is not valid UTF-8, though the file is UTF-8"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_utf8_row_in_a_shift_jis_export_is_skipped_not_sent_garbled() {
    let dir = tempfile::tempdir().unwrap();
    let (run, texts) = delivered(dir.path(), "../patients/mixed_shift_jis.csv");
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_greeted(&texts, &["山田 花子", "佐藤 次郎"]);
    assert!(
        run.stderr.contains(
            "mixed_shift_jis.csv:3: column `name` is UTF-8 text, though the file is Shift_JIS"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn an_encoding_asked_for_holds_for_every_row() {
    let run = plan("../patients/mixed_utf8.csv", &["--encoding", "utf-8"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(planned(&run), ["M1", "M3"]);
    assert!(
        run.stderr
            .contains(":3: column `name` is not valid UTF-8; if the export is Shift_JIS"),
        "{}",
        run.stderr
    );

    let run = plan(
        "../patients/mixed_shift_jis.csv",
        &["--encoding", "shift_jis"],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(planned(&run), ["M1", "M3"]);
    assert!(
        run.stderr
            .contains(":3: column `name` is UTF-8 text, but the export is read as Shift_JIS"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_first_non_ascii_row_decides_the_encoding_however_late_it_comes() {
    // 100 KiB of ASCII-only rows, then Shift_JIS names.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.csv");
    let mut text = String::from("id,line_user_id,name,stage,stage_entered_at\n");
    let mut ascii = 0;
    while text.len() < 100 * 1024 {
        ascii += 1;
        text.push_str(&format!("A{ascii},Ua{ascii},Taro,regular,\n"));
    }
    let mut bytes = text.into_bytes();
    let late =
        "S1,Us1,鈴木 一郎,booked,2026-11-20 09:30\nS2,Us2,佐藤 次郎,booked,2026-11-20 09:30\n";
    bytes.extend(encoding_rs::SHIFT_JIS.encode(late).0.iter());
    std::fs::write(&path, bytes).unwrap();

    let run = plan(path.to_str().unwrap(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(planned(&run), ["S1", "S2"]);
    assert!(
        run.stderr
            .contains(&format!("({} patients read)", ascii + 2)),
        "{}",
        run.stderr
    );
}

#[test]
fn a_row_over_1_mib_is_reported_by_its_line_and_the_rest_planned() {
    let dir = tempfile::tempdir().unwrap();
    for (name, rows) in [
        (
            "long.csv",
            vec![
                "id,line_user_id,name,stage,stage_entered_at".to_owned(),
                "L1,Ul1,,booked,2026-11-20 09:30".to_owned(),
                format!("L2,Ul2,{},booked,2026-11-20 09:30", "x".repeat(2 << 20)),
                "L3,Ul3,,booked,2026-11-20 09:30".to_owned(),
            ],
        ),
        (
            "long.jsonl",
            vec![
                r#"{"id": "L0", "line_user_id": "Ul0", "stage": "first_visit", "stage_entered_at": "2026-11-19 10:00"}"#.to_owned(),
                r#"{"id": "L1", "line_user_id": "Ul1", "stage": "booked", "stage_entered_at": "2026-11-20 09:30"}"#.to_owned(),
                format!(r#"{{"id": "L2", "memo": "{}"}}"#, "x".repeat(2 << 20)),
                r#"{"id": "L3", "line_user_id": "Ul3", "stage": "booked", "stage_entered_at": "2026-11-20 09:30"}"#.to_owned(),
            ],
        ),
    ] {
        let path = dir.path().join(name);
        let mut file = std::fs::File::create(&path).unwrap();
        for row in rows {
            writeln!(file, "{row}").unwrap();
        }
        drop(file);
        let run = plan(path.to_str().unwrap(), &[]);
        assert_eq!(run.code, 3, "{}", run.stderr);
        let patients = planned(&run);
        assert!(patients.contains(&"L1".to_owned()) && patients.contains(&"L3".to_owned()));
        assert!(
            run.stderr.contains(&format!("{name}:3: the"))
                && run.stderr.contains("is longer than 1 MiB"),
            "{}",
            run.stderr
        );
    }
}

/// Runs `steprule ARGS` in tests/fixtures/plan, killing it (and failing) after 60 s.
fn within_a_minute(args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_steprule"))
        .args(args)
        .current_dir(fixtures().join("plan"))
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the steprule binary runs");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("steprule {args:?} was still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[test]
fn dev_zero_ends_promptly_with_an_error_naming_the_line() {
    if !Path::new("/dev/zero").exists() {
        return;
    }
    let args = |format| {
        [
            "plan",
            "clinic.step",
            "--patients",
            "/dev/zero",
            "--patients-format",
            format,
            "--now",
            NOW,
            "--format",
            "json",
        ]
    };
    let run = within_a_minute(&args("csv"));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: /dev/zero: line 1, the header, is longer than 1 MiB"),
        "{}",
        run.stderr
    );

    let run = within_a_minute(&args("jsonl"));
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("/dev/zero:1: the line is longer than 1 MiB and has no end within 64 MiB"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("the rest of it is not read"),
        "{}",
        run.stderr
    );
}

/// Asserts that no patient value from the privacy fixtures is in `stderr`.
fn assert_no_patient_data(stderr: &str) {
    for value in [NAME, "山田", PHONE, LINE_ID] {
        assert!(!stderr.contains(value), "`{value}` leaked: {stderr}");
    }
}

#[test]
fn no_error_repeats_a_patients_name_phone_or_line_id() {
    // (fixture, what stderr says instead: the line and the column, exit code)
    let cases: &[(&str, &[&str], &str, i32)] = &[
        (
            "no_header.csv",
            &[],
            "no_header.csv: line 1 has none of the columns steprule knows",
            2,
        ),
        (
            "no_header_dated.csv",
            &[],
            "no_header_dated.csv: the first line looks like a patient row",
            2,
        ),
        (
            "bad_date.csv",
            &[],
            "bad_date.csv:2: column `appointment_at`: not a date or date-time",
            3,
        ),
        (
            "bad_birth_date.csv",
            &[],
            "bad_birth_date.csv:2: column `birth_date`: not a date",
            3,
        ),
        (
            "bad_stage.csv",
            &[],
            "bad_stage.csv:2: column `stage`: not one of the stages",
            3,
        ),
        (
            "bad_opted_out.csv",
            &[],
            "bad_opted_out.csv:2: column `opted_out`: not a yes/no value",
            3,
        ),
        (
            "field_count.csv",
            &[],
            "field_count.csv:2: the row has 10 fields but the header has 8",
            3,
        ),
        (
            "duplicate_id.csv",
            &[],
            "duplicate_id.csv:3: the same id is already on line 2",
            3,
        ),
        (
            "not_utf8.csv",
            &[],
            "not_utf8.csv:3: column `name` is not valid UTF-8",
            3,
        ),
        (
            "utf8_in_shift_jis.csv",
            &[],
            "utf8_in_shift_jis.csv:3: column `name` is UTF-8 text",
            3,
        ),
        (
            "mapped_wrong.csv",
            &["--mapping", "../patients/privacy/mapped_wrong.toml"],
            "mapped_wrong.csv:2: column `氏名` (stage): not one of the stages",
            3,
        ),
        (
            "invalid_json.jsonl",
            &[],
            "invalid_json.jsonl:2: invalid JSON at column",
            3,
        ),
        (
            "not_an_object.jsonl",
            &[],
            "not_an_object.jsonl:2: expected a JSON object",
            3,
        ),
        (
            "nested.jsonl",
            &[],
            "nested.jsonl:2: field `name`: nested",
            3,
        ),
        (
            "bad_date.jsonl",
            &[],
            "bad_date.jsonl:2: column `appointment_at`: not a date",
            3,
        ),
    ];
    for (fixture, extra, expected, code) in cases {
        let run = plan(&format!("../patients/privacy/{fixture}"), extra);
        assert_eq!(run.code, *code, "{fixture}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{fixture}: {}", run.stderr);
        assert_no_patient_data(&run.stderr);
    }
}

#[test]
fn an_escape_sequence_in_a_header_is_printed_escaped() {
    let run = plan("../patients/privacy/escape_in_header.csv", &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("found: name, \\u{1b}[2J\\u{1b}[31m患者番号"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains('\u{1b}'), "{}", run.stderr);
    assert_no_patient_data(&run.stderr);
}
