//! Delivery when nothing goes wrong: due sends reach LINE once with their rendered messages,
//! go to the outbox without a token, are not sent again on a rerun, and bad rows are skipped.

use std::collections::HashSet;
use std::process::Command;

use crate::common::fixtures;
use crate::fake_line::{FakeLine, Faults, TOKEN};
use crate::ledger::ledger;
use crate::workspace::{fixture_patients, fixture_user_id, output, Workspace};
use crate::{DUE_IN_FIXTURE, NOW};

#[test]
fn due_sends_are_delivered_once_with_their_rendered_messages() {
    for ws in Workspace::on_both_ledgers("first_run") {
        due_sends_are_delivered_once_with_their_rendered_messages_on(&ws);
    }
}

fn due_sends_are_delivered_once_with_their_rendered_messages_on(ws: &Workspace) {
    let fake = FakeLine::start(Faults::none());
    let run = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("due"), run.count("sent"), run.count("failed")),
        (5, 5, 0),
        "{}",
        run.stderr
    );
    assert_eq!(fake.protocol_errors(), Vec::<String>::new());
    let mut got: Vec<(String, String)> = fake
        .deliveries()
        .iter()
        .map(|d| (d.to.clone(), d.unit.clone()))
        .collect();
    got.sort();
    let want: Vec<(String, String)> = DUE_IN_FIXTURE
        .iter()
        .map(|(p, _)| (fixture_user_id(p), String::new()))
        .collect();
    assert_eq!(
        got, want,
        "one push per due send, no aggregation units by default"
    );

    let messages = |patient: &str| {
        fake.deliveries()
            .into_iter()
            .find(|d| d.to == fixture_user_id(patient))
            .unwrap()
            .messages
    };
    let r1 = messages("R1");
    assert_eq!(r1[0]["type"], "text");
    assert_eq!(
        r1[0]["text"],
        "テスト内科からのお知らせです。\nテスト 一郎 様、ご予約ありがとうございます。"
    );
    // The reminder has buttons: text, then a Flex card with the template's alt text.
    let r3 = messages("R3");
    assert_eq!(r3[0]["type"], "text");
    assert!(
        r3[0]["text"].as_str().unwrap().contains("11月25日 11:00"),
        "{r3}"
    );
    assert_eq!(
        (r3[1]["type"].as_str(), r3[1]["altText"].as_str()),
        (Some("flex"), Some("ご予約について"))
    );
    // thanks has an image and no buttons: text, then an image message.
    let r4 = messages("R4");
    assert_eq!(r4[1]["type"], "image", "{r4}");

    let ledger = ledger(&ws.ledger());
    for (patient, step) in DUE_IN_FIXTURE {
        let row = ledger.row(patient, step);
        assert_eq!(row.status, "sent", "{row:?}");
        assert_eq!(row.attempts, 1, "{row:?}");
        assert_eq!(
            row.line_request_id,
            fake.accepted_request_id(&row.retry_key)
        );
    }
    assert!(
        !ledger.rows.iter().any(|r| r.status == "sent"
            && !DUE_IN_FIXTURE.contains(&(r.patient.as_str(), r.step.as_str()))),
        "nothing else was sent: {:?}",
        ledger.rows
    );
}

/// `--custom-aggregation` where the ledger keeps aggregation units (SQLite; not PostgreSQL yet).
pub fn units_where_kept(ws: &Workspace) -> &'static [&'static str] {
    match ws.kind() {
        "SQLite" => &["--custom-aggregation"],
        _ => &[],
    }
}

#[test]
fn rerun_with_nothing_new_sends_nothing() {
    for ws in Workspace::on_both_ledgers("rerun") {
        rerun_with_nothing_new_sends_nothing_on(&ws);
    }
}

fn rerun_with_nothing_new_sends_nothing_on(ws: &Workspace) {
    let units = units_where_kept(ws);
    let fake = FakeLine::start(Faults::none());
    let first = ws.run(&fixture_patients(), Some((TOKEN, &fake)), units);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(fake.accepted(), 5);
    let requests = fake.request_count();
    let rows_before = ledger(&ws.ledger()).rows;

    let again = ws.run(&fixture_patients(), Some((TOKEN, &fake)), units);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(fake.request_count(), requests, "no request on the rerun");
    assert_eq!(again.count("sent"), 0, "{}", again.stderr);
    assert_eq!(again.count("already sent"), 5, "{}", again.stderr);
    let rows_after = ledger(&ws.ledger()).rows;
    assert_eq!(rows_after.len(), rows_before.len());
    for (patient, step) in DUE_IN_FIXTURE {
        // Named by its step where the pushes carry units, else by no unit.
        let unit = if units.is_empty() { "" } else { step };
        assert_eq!(fake.deliveries_to(&fixture_user_id(patient), unit), 1);
    }
}

#[test]
fn a_bad_cell_leaves_its_steps_out_and_the_rest_are_delivered_with_exit_code_3() {
    // B2's stage_entered_at (11-31) cannot be read: its booking_confirm is not evaluated; B1
    // and B3 get theirs.
    let fake = FakeLine::start(Faults::none());
    let ws = Workspace::new();
    let run = ws.run(
        &fixtures().join("run/bad_rows.csv"),
        Some((TOKEN, &fake)),
        &[],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains(":3: column `stage_entered_at`"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("秘密"),
        "names never appear in messages"
    );
    assert_eq!(
        (
            run.count("sent"),
            run.count("skipped rows"),
            run.count("rows with unreadable cells")
        ),
        (2, 0, 1),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("step `booking_confirm`: not evaluated for 1 patient(s)"),
        "{}",
        run.stderr
    );
    assert_eq!(fake.accepted(), 2);
}

#[test]
fn without_token_deliveries_go_to_the_outbox() {
    // Rules, templates and patients copied to a scratch folder so that the ledger and outbox
    // land in their default place, `.steprule/` beside the rules.
    let ws = Workspace::new();
    let source = fixtures().join("run");
    std::fs::create_dir(ws.path().join("templates")).unwrap();
    for file in ["clinic.step", "patients.csv"] {
        std::fs::copy(source.join(file), ws.path().join(file)).unwrap();
    }
    for entry in std::fs::read_dir(source.join("templates")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            ws.path().join("templates").join(entry.file_name()),
        )
        .unwrap();
    }
    let run_here = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
        command
            .args([
                "run",
                "clinic.step",
                "--patients",
                "patients.csv",
                "--now",
                NOW,
            ])
            .current_dir(ws.path())
            .env("NO_COLOR", "1")
            .env_remove("LINE_CHANNEL_ACCESS_TOKEN");
        output(command)
    };
    let run = run_here();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("outbox"),
        "says where the messages went:\n{}",
        run.stderr
    );
    let outbox_path = ws.path().join(".steprule/outbox.jsonl");
    let outbox = std::fs::read_to_string(&outbox_path).expect("the default outbox");
    let lines: Vec<serde_json::Value> = outbox
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let mut got: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            let keys: HashSet<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                HashSet::from(["patient", "to", "step", "variant", "retry_key", "messages"]),
                "{l}"
            );
            assert_eq!(l["to"], fixture_user_id(l["patient"].as_str().unwrap()));
            assert!(
                l["messages"].as_array().is_some_and(|m| !m.is_empty()),
                "{l}"
            );
            (
                l["patient"].as_str().unwrap().to_owned(),
                l["step"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let want: Vec<(String, String)> = DUE_IN_FIXTURE
        .iter()
        .map(|(p, s)| (p.to_string(), s.to_string()))
        .collect();
    assert_eq!(got, want, "one line per due send");
    let ledger = ledger(&ws.path().join(".steprule/ledger.db"));
    for line in &lines {
        let row = ledger.row(
            line["patient"].as_str().unwrap(),
            line["step"].as_str().unwrap(),
        );
        assert_eq!(
            line["retry_key"],
            row.retry_key.as_str(),
            "the outbox carries the ledger's key"
        );
    }

    let again = run_here();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        std::fs::read_to_string(&outbox_path).unwrap(),
        outbox,
        "a second run adds nothing"
    );
}
