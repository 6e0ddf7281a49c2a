//! `plan --format json` on a few thousand generated patients, with bad rows among them, prints
//! exactly what the sequential path gives: the rows read one at a time with `read_from` on this
//! thread, evaluated in file order, sorted by time, patient and step, and each instant written
//! by chrono's `to_rfc3339`. The warnings about bad rows come in file order with the lines they
//! are on, across the batches the reading thread hands over (512 rows each), after a quoted
//! cell that spans two lines, blank lines and CRLF line ends.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[allow(dead_code)] // the generator's writer is all this test uses
#[path = "../benches/support/synthetic.rs"]
mod synthetic;

use std::io::Read;
use std::path::Path;
use std::process::Command;

use chrono::{Duration, NaiveDateTime};
use steprule::{check_path, parse_instant, read_from, TimingPlan};
use steprule::{Evaluator, PatientOutcome, ReadOptions, RecordFormat, Window};

const RULES: &str = "benches/fixtures/thirty_steps.step";
const TEMPLATES: &str = "rules/templates";
const NOW: &str = "2026-11-25 09:00";
const PATIENTS: u64 = 3000;

/// What is done to one generated row.
type Edit<'a> = dyn Fn(&str) -> String + 'a;

/// The generated export with bad rows put in among the good ones, at places on both sides of
/// the reading thread's batch boundaries.
fn export() -> String {
    let now = NaiveDateTime::parse_from_str(NOW, "%Y-%m-%d %H:%M").unwrap();
    let mut text = String::new();
    synthetic::PatientCsv::new(PATIENTS, now, 7)
        .read_to_string(&mut text)
        .unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let header_fields = lines[0].split(',').count();
    // Each edit replaces one generated row (its index is its line in the file minus one,
    // before the lines that edits add).
    let edits: [(usize, &Edit<'_>); 8] = [
        // The same id as the first patient's: skipped, naming line 2.
        (2990, &|_| lines_first_id_row()),
        // A date that cannot be read: kept, with the field unknown.
        (2400, &|row| with_cell(row, 9, "2026-13-45 10:00")),
        // Too few fields: skipped.
        (1537, &|row| row.rsplitn(3, ',').nth(2).unwrap().to_owned()),
        // A name in quotes over two lines: every line number after it moves by one.
        (1024, &|row| with_cell(row, 2, "\"患者\n二行目\"")),
        // A blank line and a row of bare commas: nobody.
        (700, &|row| {
            format!("\n{}\n{row}", ",".repeat(header_fields - 1))
        }),
        // An opt-out nobody listed: kept, opted out, reported.
        (513, &|row| with_cell(row, 7, "たぶん")),
        // A Japanese era date: read, nothing to say.
        (512, &|row| with_cell(row, 4, "R8.11.30")),
        // CRLF on one row.
        (100, &|row| format!("{row}\r")),
    ];
    for (row, edit) in edits {
        lines[row] = edit(&lines[row]);
    }
    lines.join("\n") + "\n"
}

fn lines_first_id_row() -> String {
    "P0000001,Uabc,患者,booked,2026-11-20 10:00,1980-01-01,,false,2026-11-30 10:00,,,,,佐藤,内科"
        .to_owned()
}

fn with_cell(row: &str, index: usize, value: &str) -> String {
    let mut cells: Vec<&str> = row.split(',').collect();
    cells[index] = value;
    cells.join(",")
}

/// A line of `plan --format json`, its keys in the order the documentation gives.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    at: String,
    patient: &'a str,
    step: &'a str,
    template: &'a str,
    variant: Option<&'a str>,
    occurrence: String,
    expires: String,
    recipient: &'a str,
    ledger: Option<&'a str>,
}

/// What the sequential path prints: the JSON lines, the CSV, and the warnings in order.
fn sequential(path: &Path, plan: &TimingPlan, window: Window) -> (String, String, Vec<String>) {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).unwrap();
    let options = ReadOptions::default();
    let mut records = read_from(file, &name, RecordFormat::Csv, &plan.schema, &options).unwrap();
    let mut evaluator = Evaluator::new(plan);
    let mut outcome = PatientOutcome::default();
    let mut warnings = Vec::new();
    let mut patients = Vec::new();
    let mut sends = Vec::new();
    while let Some(row) = records.next() {
        for report in records.take_unreadable() {
            warnings.push(format!(
                "warning: {}:{}: {}",
                name, report.line, report.message
            ));
        }
        match row {
            Ok(patient) => {
                evaluator.evaluate(&patient, window, &mut outcome);
                if !outcome.sends.is_empty() {
                    patients.push(patient.id.clone());
                }
                let index = patients.len().wrapping_sub(1);
                sends.extend(outcome.sends.iter().map(|send| (send.clone(), index)));
            }
            Err(err) => warnings.push(format!(
                "warning: {}:{}: {} (row skipped)",
                name, err.line, err.message
            )),
        }
    }
    sends.sort_by_key(|(send, patient)| (send.at, *patient, send.step));
    let mut json = String::new();
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "at",
        "patient",
        "step",
        "template",
        "variant",
        "occurrence",
        "expires",
        "recipient",
        "ledger",
    ])
    .unwrap();
    for (send, patient) in sends {
        let step = &plan.steps[send.step];
        let template = step.variants[send.variant].template.name.as_str();
        let local =
            |at: chrono::DateTime<chrono::Utc>| at.with_timezone(&plan.timezone).to_rfc3339();
        let row = JsonRow {
            at: local(send.at),
            patient: &patients[patient],
            step: &step.id,
            template,
            variant: (step.variants.len() > 1).then_some(template),
            occurrence: local(send.occurrence),
            expires: local(send.expires),
            recipient: "export",
            ledger: None,
        };
        json.push_str(&serde_json::to_string(&row).unwrap());
        json.push('\n');
        csv.write_record([
            &row.at,
            row.patient,
            row.step,
            row.template,
            row.variant.unwrap_or(""),
            &row.occurrence,
            &row.expires,
            row.recipient,
            "",
        ])
        .unwrap();
    }
    let csv = String::from_utf8(csv.into_inner().unwrap()).unwrap();
    (json, csv, warnings)
}

#[test]
fn plan_prints_what_the_sequential_path_prints_in_the_same_order() {
    let (dir, (expected_json, _, expected_warnings)) = export_planned_sequentially();
    let path = dir.path().join("patients.csv");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(expected_warnings.len(), 4, "{expected_warnings:#?}");

    let (stdout, stderr) = run_plan(root, &path, "json");
    assert!(stdout.lines().count() > 1000, "{stderr}");
    // Compared line by line first, so that a failure shows the first line that differs.
    for (number, (got, expected)) in stdout.lines().zip(expected_json.lines()).enumerate() {
        assert_eq!(got, expected, "line {} of the JSON", number + 1);
    }
    assert_eq!(stdout, expected_json);
    // The warnings about rows (those about steps come after the pass, once per step).
    let about_rows = format!("warning: {}:", path.display());
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with(&about_rows))
        .collect();
    assert_eq!(warnings, expected_warnings);
    // The lines themselves: a row's index in the generated file plus one, and three more after
    // the blank line, the row of commas and the quoted name's second line.
    let lines: Vec<&str> = warnings
        .iter()
        .map(|w| w.split(':').nth(2).unwrap())
        .collect();
    assert_eq!(lines, ["514", "1541", "2404", "2994"], "{warnings:#?}");
}

/// `plan --format csv` lists the same sends in the same order (instants written as chrono
/// writes them), after the JSON's checks above.
#[test]
fn plan_csv_lists_the_sequential_paths_sends_in_the_same_order() {
    let (dir, (_, expected_csv, _)) = export_planned_sequentially();
    let path = dir.path().join("patients.csv");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (stdout, stderr) = run_plan(root, &path, "csv");
    assert!(stdout.lines().count() > 1000, "{stderr}");
    for (number, (got, expected)) in stdout.lines().zip(expected_csv.lines()).enumerate() {
        assert_eq!(got, expected, "line {} of the CSV", number + 1);
    }
    assert_eq!(stdout, expected_csv);
}

/// The export written to a temporary folder's `patients.csv`, and what the sequential path
/// plans for it over a week: (JSON, CSV, warnings about rows).
fn export_planned_sequentially() -> (tempfile::TempDir, (String, String, Vec<String>)) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = check_path(&root.join(RULES), Some(&root.join(TEMPLATES)))
        .unwrap()
        .rules
        .unwrap();
    let plan = TimingPlan::compile(&rules);
    let now = parse_instant(NOW, plan.timezone).unwrap();
    let window = Window {
        now,
        from: now,
        to: now + Duration::days(7),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("patients.csv");
    std::fs::write(&path, export()).unwrap();
    let planned = sequential(&path, &plan, window);
    (dir, planned)
}

/// `steprule plan` on `patients` in `format`, from the patients' folder: stdout and stderr.
fn run_plan(root: &Path, patients: &Path, format: &str) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_steprule"))
        .arg("plan")
        .arg(root.join(RULES))
        .arg("--templates")
        .arg(root.join(TEMPLATES))
        .arg("--patients")
        .arg(patients)
        .args(["--now", NOW, "--days", "7", "--format", format])
        .current_dir(patients.parent().unwrap())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}
