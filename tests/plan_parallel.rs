//! Issue 13: patients are evaluated on the threads that type the rows, each with an evaluator
//! of its own, and taken back in file order. `plan` on thousands of patients (many batches of
//! 512, so every thread gets several) prints byte for byte the same on four threads as on one
//! (`STEPRULE_THREADS`): the sends, rhai conditions that hold, fail or are false, the warnings
//! about rows in file order (a duplicate id in a batch typed on another thread than its first
//! row, an unreadable date, a row without an id, a name over two lines) and the warnings after
//! the pass (the first failing patient's line). CSV and JSONL alike.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;

const RULES: &str = "tests/fixtures/plan/parallel.step";
const TEMPLATES: &str = "tests/fixtures/plan/templates";
const NOW: &str = "2026-11-25 09:00";
const PATIENTS: usize = 6000;

/// One patient's cells: id, line_user_id, name, stage, stage_entered_at, appointment_at,
/// last_visit_at, visits.
fn patient(n: usize) -> [String; 8] {
    let stage = ["booked", "first_visit", "regular"][n % 3];
    let day = 18 + n % 7;
    let hour = 8 + n % 14;
    let visits = match n % 5 {
        // No visits: the rhai condition fails for this patient.
        0 => String::new(),
        k => (k * 4).to_string(),
    };
    let mut cells = [
        format!("P{n:05}"),
        format!("U{n:05}"),
        format!("患者{n}"),
        stage.to_owned(),
        format!("2026-11-{day:02} {hour:02}:{:02}", n % 60),
        format!("2026-11-{:02} 10:30", 25 + n % 5),
        String::new(),
        visits,
    ];
    match n {
        // The id of the row on line 12, in a batch typed on another thread: skipped.
        3001 => cells[0] = "P00010".to_owned(),
        // A date that cannot be read: kept, with the field unknown.
        1200 => cells[4] = "2026-13-45 10:00".to_owned(),
        // No id: skipped.
        2047 => cells[0] = String::new(),
        // A name over two lines: every line after it moves by one.
        1500 => cells[2] = "\"患者\n二行目\"".to_owned(),
        _ => {}
    }
    cells
}

const COLUMNS: [&str; 8] = [
    "id",
    "line_user_id",
    "name",
    "stage",
    "stage_entered_at",
    "appointment_at",
    "last_visit_at",
    "visits",
];

fn csv() -> String {
    let mut text = COLUMNS.join(",") + "\n";
    for n in 0..PATIENTS {
        text.push_str(&patient(n).join(","));
        text.push('\n');
    }
    text
}

/// Patient `n`'s cells that are not empty, unquoted, with their columns: a JSONL line's keys
/// and values, in the columns' order.
fn present_cells(n: usize) -> Vec<(&'static str, String)> {
    (COLUMNS.iter().zip(patient(n)))
        .map(|(&column, cell)| (column, cell.trim_matches('"').to_owned()))
        .filter(|(_, cell)| !cell.is_empty())
        .collect()
}

/// The rows as JSONL with each line's keys sorted (serde_json's map sorts them).
fn jsonl() -> String {
    let mut text = String::new();
    for n in 0..PATIENTS {
        let line: serde_json::Map<String, serde_json::Value> = (present_cells(n).into_iter())
            .map(|(column, cell)| (column.to_owned(), cell.into()))
            .collect();
        text.push_str(&serde_json::Value::Object(line).to_string());
        text.push('\n');
    }
    text
}

/// [`jsonl`]'s rows with each line's keys in the columns' order, as most exports write them.
fn jsonl_in_column_order() -> String {
    let mut text = String::new();
    for n in 0..PATIENTS {
        let cells: Vec<String> = (present_cells(n).into_iter())
            .map(|(column, cell)| {
                let key = serde_json::Value::from(column);
                format!("{key}:{}", serde_json::Value::from(cell))
            })
            .collect();
        text.push_str(&format!("{{{}}}\n", cells.join(",")));
    }
    text
}

/// `plan` on `patients` with `format` on `threads` typing threads: (stdout, stderr).
fn plan(patients: &Path, format: &str, threads: &str) -> (String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(env!("CARGO_BIN_EXE_steprule"))
        .arg("plan")
        .arg(root.join(RULES))
        .arg("--templates")
        .arg(root.join(TEMPLATES))
        .arg("--patients")
        .arg(patients)
        .args(["--now", NOW, "--days", "14", "--format", format])
        .current_dir(patients.parent().unwrap())
        .env("NO_COLOR", "1")
        .env("STEPRULE_THREADS", threads)
        .output()
        .unwrap();
    // Exit 3: rows were skipped, as they are.
    assert_eq!(output.status.code(), Some(3));
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn same_on_one_thread_and_four(name: &str, text: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let mut json = None;
    for format in ["json", "csv", "table", "html"] {
        let (one_out, one_err) = plan(&path, format, "1");
        let (four_out, four_err) = plan(&path, format, "4");
        // Line by line first, so that a failure shows the first line that differs.
        for (number, (four, one)) in four_out.lines().zip(one_out.lines()).enumerate() {
            assert_eq!(four, one, "{name}, {format}: line {} of stdout", number + 1);
        }
        assert_eq!(four_out, one_out, "{name}, {format}: stdout");
        assert_eq!(four_err, one_err, "{name}, {format}: stderr");
        if format == "json" {
            json = Some((one_out, one_err));
        }
    }
    json.unwrap()
}

#[test]
fn plan_on_four_threads_prints_what_one_thread_prints() {
    let (stdout, stderr) = same_on_one_thread_and_four("patients.csv", &csv());
    assert!(stdout.lines().count() > 5000, "{stderr}");
    // Every step sends something, the rhai one to the patients with 10 or more visits.
    for step in ["confirm", "remind", "thanks", "loyal", "news"] {
        assert!(stdout.contains(&format!("\"step\":\"{step}\"")), "{step}");
    }
    let warnings: Vec<&str> = stderr.lines().collect();
    let about = |needle: &str| warnings.iter().filter(|w| w.contains(needle)).count();
    assert_eq!(about("the same id is already on line 12"), 1, "{stderr}");
    assert_eq!(about("the id is empty"), 1, "{stderr}");
    assert_eq!(about("column `stage_entered_at`"), 1, "{stderr}");
    // Patients 0, 5, 10 … have no visits: the first regular one is patient 5, on line 7.
    assert_eq!(
        about("the rhai condition failed for 400 patient(s), e.g. the patient on line 7"),
        1,
        "{stderr}"
    );
}

#[test]
fn plan_on_four_threads_prints_what_one_thread_prints_from_jsonl() {
    let (stdout, stderr) = same_on_one_thread_and_four("patients.jsonl", &jsonl());
    assert!(stdout.lines().count() > 5000, "{stderr}");
    assert!(
        stderr.contains(".jsonl:3002: the same id is already on line 11"),
        "{stderr}"
    );
}

/// [`jsonl_in_column_order`]'s rows with their values escaped: every character past ASCII as
/// Python's `json.dumps` writes it by default (a `\u` escape, a pair of them past the BMP),
/// `/` as pandas writes it (`\/`), and each value's first character as a `\u` escape too, so
/// that a wrong decoding shows in the ids and stages `plan` prints.
fn jsonl_escaped() -> String {
    let escaped = |value: &str| {
        let mut text = String::from("\"");
        for (at, char) in value.chars().enumerate() {
            match char {
                '/' => text.push_str("\\/"),
                '"' | '\\' => text.extend(['\\', char]),
                plain if at > 0 && (' '..='~').contains(&plain) => text.push(plain),
                other => {
                    for unit in other.encode_utf16(&mut [0; 2]) {
                        text.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
        }
        text + "\""
    };
    let mut text = String::new();
    for n in 0..PATIENTS {
        let cells: Vec<String> = (present_cells(n).into_iter())
            .map(|(column, cell)| format!("\"{column}\":{}", escaped(&cell)))
            .collect();
        text.push_str(&format!("{{{}}}\n", cells.join(",")));
    }
    text
}

/// `plan` (JSON, two threads) on two JSONL files of the same rows, whose stdout and stderr
/// must be the same but for the files' folders.
fn plan_alike(first: &str, second: &str) {
    plan_alike_named("patients.jsonl", first.as_bytes(), second.as_bytes());
}

/// [`plan_alike`] for two files called `name` (whose extension says their format).
fn plan_alike_named(name: &str, first: &[u8], second: &[u8]) {
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first_path, second_path) = (first_dir.path().join(name), second_dir.path().join(name));
    std::fs::write(&first_path, first).unwrap();
    std::fs::write(&second_path, second).unwrap();
    let (first_out, first_err) = plan(&first_path, "json", "2");
    let (second_out, second_err) = plan(&second_path, "json", "2");
    assert!(first_out.lines().count() > 5000, "{first_err}");
    for (number, (second, first)) in second_out.lines().zip(first_out.lines()).enumerate() {
        assert_eq!(second, first, "line {} of stdout", number + 1);
    }
    assert_eq!(second_out, first_out);
    // The warnings name each file by its own folder.
    let folderless =
        |err: &str, dir: &tempfile::TempDir| err.replace(&dir.path().display().to_string(), "DIR");
    assert_eq!(
        folderless(&second_err, &second_dir),
        folderless(&first_err, &first_dir)
    );
}

/// The keys of a JSONL export are found by the order of the line before, whatever it is
/// (session 12): the same rows with their keys in the columns' order plan exactly as with
/// their keys sorted, warnings and skipped rows included.
#[test]
fn jsonl_keys_in_the_columns_order_plan_as_sorted_keys_do() {
    let (sorted, ordered) = (jsonl(), jsonl_in_column_order());
    assert_ne!(
        sorted.lines().next(),
        ordered.lines().next(),
        "the two files differ in key order"
    );
    plan_alike(&sorted, &ordered);
}

/// A line whose values have escapes is typed as it is scanned too (session 19): the rows
/// written with every character past ASCII escaped plan exactly as written plainly, warnings
/// (a date that cannot be read, a duplicate id, a name over two lines) and skipped rows
/// included.
#[test]
fn jsonl_written_with_escapes_plans_as_written_plainly() {
    let escaped = jsonl_escaped();
    assert!(escaped.is_ascii() && escaped.contains(r#""id":"\u0050"#));
    plan_alike(&jsonl_in_column_order(), &escaped);
}

/// A CSV line without a quote is read in one pass and handed over as the line (session 20),
/// any other through csv-core. The same rows with every cell quoted, with CRLF line ends, and
/// in Shift_JIS plan exactly as written plainly in UTF-8, warnings (a date that cannot be read,
/// a duplicate id, a name over two lines) and skipped rows included.
#[test]
fn csv_quoted_with_crlf_or_in_shift_jis_plans_as_written_plainly() {
    let plain = csv();
    let quote = |cell: &str| match cell.starts_with('"') {
        true => cell.to_owned(),
        false => format!("\"{cell}\""),
    };
    let mut quoted = COLUMNS.map(quote).join(",") + "\n";
    for n in 0..PATIENTS {
        quoted.push_str(&patient(n).map(|cell| quote(&cell)).join(","));
        quoted.push('\n');
    }
    assert!(!quoted
        .lines()
        .any(|line| line.contains(",P") || line.starts_with('P')));
    plan_alike_named("patients.csv", plain.as_bytes(), quoted.as_bytes());
    let crlf = plain.replace('\n', "\r\n");
    plan_alike_named("patients.csv", plain.as_bytes(), crlf.as_bytes());
    let (shift_jis, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&plain);
    assert!(!unmappable);
    plan_alike_named("patients.csv", plain.as_bytes(), &shift_jis);
}
