//! One clock: a New York clinic whose sends fall in the nights daylight saving changes
//! (tests/fixtures/clock). `plan`, `explain` and the rendered `{{ visit_at | date }}` must name
//! the same instant — the one a person expects: a skipped time is the moment the clocks jump,
//! a repeated time is the first of the two.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;

use common::{fixtures, steprule, Run};

/// The instant each patient's send is planned at, and the same instant as `explain` and the
/// rendered template show it.
const EXPECTED: [(&str, &str, &str, &str); 4] = [
    (
        "S1",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08 (日) 03:00",
        "2026-03-08 03:00 EDT（日）",
    ),
    (
        "F1",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01 (日) 01:30",
        "2026-11-01 01:30 EDT（日）",
    ),
    (
        "B1",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08 (日) 03:00",
        "2026-03-08 03:00 EDT（日）",
    ),
    (
        "B2",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01 (日) 01:30",
        "2026-11-01 01:30 EDT（日）",
    ),
];

fn expected(patient: &str) -> (&'static str, &'static str, &'static str) {
    let (_, at, explained, rendered) = EXPECTED
        .iter()
        .find(|row| row.0 == patient)
        .expect("a patient of the fixture");
    (at, explained, rendered)
}

fn succeeded(run: &Run) {
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn plan_sends_at_the_instant_a_person_expects_across_both_nights() {
    let run = steprule(
        &fixtures().join("clock"),
        &[
            "plan",
            "clinic.step",
            "--patients",
            "patients.csv",
            "--now",
            "2026-03-01 00:00",
            "--days",
            "300",
            "--format",
            "json",
        ],
    );
    succeeded(&run);
    let mut planned: Vec<(String, String)> = run
        .stdout
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            (
                row["patient"].as_str().unwrap().to_owned(),
                row["at"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    planned.sort();
    let mut want: Vec<(String, String)> = EXPECTED
        .iter()
        .map(|(patient, at, _, _)| (patient.to_string(), at.to_string()))
        .collect();
    want.sort();
    assert_eq!(planned, want);
}

#[test]
fn explain_names_the_same_instants() {
    for (patient, step, now) in [
        ("S1", "spring", "2026-03-07 00:00"),
        ("F1", "fall", "2026-10-31 00:00"),
        ("B1", "day_after", "2026-03-07 00:00"),
        ("B2", "day_after", "2026-10-31 00:00"),
    ] {
        let run = steprule(
            &fixtures().join("clock"),
            &[
                "explain",
                "clinic.step",
                "--patients",
                "patients.csv",
                "--patient",
                patient,
                "--now",
                now,
            ],
        );
        succeeded(&run);
        let (_, explained, _) = expected(patient);
        let line = run
            .stdout
            .lines()
            .find(|line| line.starts_with(step))
            .unwrap_or_else(|| panic!("a line for {step} in:\n{}", run.stdout));
        assert!(
            line.ends_with(&format!("sends visit at {explained}")),
            "{patient}: {line}"
        );
    }
}

/// `run` without a token in a scratch copy of the fixture; the outbox's rendered texts by
/// patient.
fn rendered_at(now: &str) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("clock");
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    for file in ["clinic.step", "patients.csv", "templates/visit.toml"] {
        std::fs::copy(source.join(file), dir.path().join(file)).unwrap();
    }
    let run = steprule(
        dir.path(),
        &[
            "run",
            "clinic.step",
            "--patients",
            "patients.csv",
            "--now",
            now,
        ],
    );
    succeeded(&run);
    outbox_texts(&dir.path().join(".steprule/outbox.jsonl"))
}

fn outbox_texts(path: &Path) -> Vec<(String, String)> {
    let outbox = std::fs::read_to_string(path).expect("the default outbox");
    let mut texts: Vec<(String, String)> = outbox
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            (
                line["patient"].as_str().unwrap().to_owned(),
                line["messages"][0]["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    texts.sort();
    texts
}

#[test]
fn rendered_dates_name_the_same_instants() {
    // An hour after the spring sends were due (03:00 EDT), and after the fall ones (01:30 EDT,
    // 05:30 UTC) in the hour New York lives twice.
    for (now, patients) in [
        ("2026-03-08T08:00:00Z", ["B1", "S1"]),
        ("2026-11-01T06:30:00Z", ["B2", "F1"]),
    ] {
        let want: Vec<(String, String)> = patients
            .iter()
            .map(|patient| (patient.to_string(), expected(patient).2.to_owned()))
            .collect();
        assert_eq!(rendered_at(now), want, "run at {now}");
    }
}
