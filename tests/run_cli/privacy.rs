//! No patient's id, name or LINE user id in what `run` prints: a hostile, distinctive patient
//! (id `PID-ZZQ-4417`, name 秘密太郎) goes through the outbox, through LINE with a refusal and
//! with retries, and through a repeated row, and none of their data appears on stdout or
//! stderr. The outbox (the messages themselves) is not a log; tracked links in it carry a
//! token, never the id.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::common::fixtures;
use crate::fake_line::{FakeLine, Faults, TOKEN};
use crate::workspace::{Run, Workspace};

const ID: &str = "PID-ZZQ-4417";
const NAME: &str = "秘密太郎";
const LINE_USER: &str = "U4417abcdef0123456789abcdef4417f";

/// The run fixtures' patients with R2 replaced by the hostile patient, repeated once (a row
/// skipped for its id) and once more with an unreadable appointment.
fn hostile_patients(dir: &Path, template: &Path) -> PathBuf {
    let text = std::fs::read_to_string(template).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("R2,") || line.starts_with("T2,") {
            let hostile = line
                .replacen(&line[..2], ID, 1)
                .replace("U00000000000000000000000000000002", LINE_USER)
                .replace("テスト 二郎", NAME);
            out.push_str(&hostile);
            out.push('\n');
            out.push_str(&hostile);
            out.push('\n');
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let path = dir.join("hostile.csv");
    std::fs::write(&path, out).unwrap();
    path
}

fn assert_private(what: &str, run: &Run) {
    for secret in [ID, NAME, LINE_USER, "ZZQ", "4417"] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{what} printed `{secret}`:\nstdout:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
    }
}

#[test]
fn run_prints_no_patient_id_name_or_line_user() {
    let ws = Workspace::new();
    let patients = hostile_patients(ws.path(), &fixtures().join("run/patients.csv"));
    // The outbox: the send goes out, the repeated row is skipped by line number.
    let run = ws.run(&patients, None, &[]);
    assert_eq!(run.code, 3, "a skipped row: {}", run.stderr);
    assert!(
        run.stderr
            .contains("hostile.csv:4: the same id is already on line 3"),
        "{}",
        run.stderr
    );
    assert_private("run (outbox)", &run);
    let outbox = std::fs::read_to_string(ws.outbox()).unwrap();
    assert!(outbox.contains(ID), "the outbox holds the send itself");

    // LINE refuses the hostile patient for good, and makes every other send wait once.
    let ws = Workspace::new();
    let patients = hostile_patients(ws.path(), &fixtures().join("run/patients.csv"));
    let fake = FakeLine::start(Faults {
        reject_to: HashSet::from([LINE_USER.to_owned()]),
        error_first_attempts: 1,
        ..Faults::none()
    });
    let run = ws.run(&patients, Some((TOKEN, &fake)), &[]);
    assert!(
        run.stderr.contains("1 patient(s): LINE answered 400"),
        "{}",
        run.stderr
    );
    assert_private("run (LINE, first pass)", &run);
    let run = ws.run(&patients, Some((TOKEN, &fake)), &[]);
    assert_eq!(run.count("failed"), 0, "{}", run.stderr);
    assert_private("run (LINE, retries)", &run);
}

#[test]
fn tracked_links_carry_a_token_not_the_patient() {
    let ws = Workspace::new();
    let patients = hostile_patients(ws.path(), &fixtures().join("tracking/patients.csv"));
    let ledger = ws.ledger();
    let run = crate::workspace::output(ws.command_for(
        &fixtures().join("tracking/clinic.step"),
        &ledger,
        &patients,
        None,
        &[],
    ));
    assert_eq!(run.code, 3, "a skipped row: {}", run.stderr);
    assert_private("run (tracked)", &run);
    let outbox = std::fs::read_to_string(ws.outbox()).unwrap();
    let hostile: Vec<&str> = outbox.lines().filter(|l| l.contains(ID)).collect();
    assert!(!hostile.is_empty(), "{outbox}");
    for line in hostile {
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        let links = json["messages"].to_string();
        assert!(links.contains("/r/"), "{links}");
        for url in links.split('"').filter(|s| s.starts_with("https://")) {
            assert!(!url.contains(ID) && !url.contains("4417"), "{url}");
        }
    }
}

#[test]
fn run_sends_a_promo_step_only_to_patients_who_consented() {
    let ws = Workspace::new();
    let fake = FakeLine::start(Faults::none());
    let run = crate::workspace::output(ws.command_for(
        &fixtures().join("run/consent.step"),
        &ws.ledger(),
        &fixtures().join("run/consent.csv"),
        Some((TOKEN, &fake)),
        &[],
    ));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("due"), run.count("sent")),
        (1, 1),
        "{}",
        run.stderr
    );
    let to: Vec<String> = fake.deliveries().iter().map(|d| d.to.clone()).collect();
    assert_eq!(to, ["U00000000000000000000000000000011"]);
}
