//! The whole loop with the real binaries side by side: `run` writes tracked links to the outbox,
//! a patient taps one (`GET /r/{token}` on `serve`), then blocks the account (a signed
//! `unfollow`), and the next `run` does not push to them while `status` says why.

use std::path::Path;

use steprule::ledger::EventKind;

use crate::common::{fixtures, steprule, Run};
use crate::events::{body, now_ms, unfollow};
use crate::server::{Options, Serve};

const BROWSER: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari Line/14.3.0";

/// The tracking fixture's rules and templates, and an export of one patient, in `dir`.
fn clinic(dir: &Path, stage: &str, entered: &str) {
    let from = fixtures().join("tracking");
    std::fs::copy(from.join("clinic.step"), dir.join("clinic.step")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    for entry in std::fs::read_dir(from.join("templates")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("templates").join(entry.file_name())).unwrap();
    }
    std::fs::write(
        dir.join("patients.csv"),
        format!(
            "id,line_user_id,name,stage,stage_entered_at,birth_date,tags,opted_out,note\n\
             T1,U00000000000000000000000000000001,テスト 一郎,{stage},{entered},1980-01-01,,false,\
             こんにちは\n"
        ),
    )
    .unwrap();
}

fn run(dir: &Path, now: &str) -> Run {
    steprule(
        dir,
        &[
            "run",
            "clinic.step",
            "--patients",
            "patients.csv",
            "--ledger",
            "ledger.db",
            "--outbox",
            "outbox.jsonl",
            "--now",
            now,
        ],
    )
}

/// The tokens of the tracked links in the outbox, in order of appearance.
fn tokens(outbox: &str) -> Vec<String> {
    let marker = "https://go.example-clinic.jp/r/";
    let mut found = Vec::new();
    for (at, _) in outbox.match_indices(marker) {
        let token: String = outbox[at + marker.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if !found.contains(&token) {
            found.push(token);
        }
    }
    found
}

#[test]
fn a_tap_and_a_block_come_back_and_the_next_run_respects_the_block() {
    let dir = tempfile::tempdir().unwrap();
    clinic(dir.path(), "booked", "2026-11-25 09:30");
    let first = run(dir.path(), "2026-11-25 10:00");
    assert_eq!(first.code, 0, "{}", first.stderr);
    let outbox = std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap();
    assert!(
        !outbox.contains("https://clinic.example.jp/reserve"),
        "{outbox}"
    );
    let tokens = tokens(&outbox);
    assert!(!tokens.is_empty(), "{outbox}");

    // `serve` on the same folder: the same ledger and outbox.
    let (rules, patients) = (
        dir.path().join("clinic.step"),
        dir.path().join("patients.csv"),
    );
    let serve = Serve::start_in(
        dir,
        Options {
            rules: Some(rules),
            patients: Some(patients),
            ..Options::default()
        },
    );
    let dir = serve.dir().to_owned();
    // The tap: a redirect to the link the template wrote, and a click tied to the send.
    let tapped = serve.get(&format!("/r/{}", tokens[0]), Some(BROWSER));
    assert_eq!(tapped.status, 302);
    let target = tapped.location.unwrap();
    assert!(target.starts_with("https://clinic.example.jp/"), "{target}");
    let clicks: Vec<_> = serve
        .events()
        .into_iter()
        .filter(|e| e.kind == EventKind::Click)
        .collect();
    assert_eq!(clicks.len(), 1, "{}", serve.stderr());
    assert_eq!(clicks[0].patient.as_deref(), Some("T1"));
    assert_eq!(clicks[0].detail.as_deref(), Some(target.as_str()));

    // The block.
    let blocked = serve.post_signed(&body(&[unfollow("01RTBLOCK", 1, now_ms())]));
    assert_eq!(blocked.status, 200);

    // The next day T1 is at the first visit: `notes` is due, and not pushed.
    clinic(&dir, "first_visit", "2026-11-26 09:00");
    let lines_before = outbox.lines().count();
    let second = run(&dir, "2026-11-26 10:00");
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(second.stderr.contains("blocked 1"), "{}", second.stderr);
    let outbox = std::fs::read_to_string(dir.join("outbox.jsonl")).unwrap();
    assert_eq!(outbox.lines().count(), lines_before, "nothing new for T1");
    let status = steprule(
        &dir,
        &["status", "--ledger", "ledger.db", "--patient", "T1"],
    );
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains("blocked"), "{}", status.stdout);
    assert!(status.stdout.contains("notes"), "{}", status.stdout);
}
