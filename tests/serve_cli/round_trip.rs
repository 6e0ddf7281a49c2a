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

/// Today and `minutes` ago on the clinic's clock (Asia/Tokyo), as `--now` and the export write
/// them: a tap is dated when `serve` receives it, so the sends must be recent for it to count.
fn tokyo_minutes_ago(minutes: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(minutes))
        .with_timezone(&chrono_tz::Asia::Tokyo)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// A tracked link's token of `patient`'s `step`, read back from the ledger.
fn token_of(ledger: &Path, patient: &str, step: &str) -> String {
    let conn = rusqlite::Connection::open(ledger).unwrap();
    conn.query_row(
        "SELECT token FROM tracked WHERE kind = 'url' AND patient = ?1 AND step = ?2 LIMIT 1",
        [patient, step],
        |row| row.get(0),
    )
    .unwrap()
}

#[test]
fn taps_and_blocks_posted_to_serve_are_in_the_report_worked_out_by_hand() {
    // T1 booked 70 minutes ago: `welcome` and `survey` (5 minutes after) are due; T2 booked
    // 2 minutes ago: only `welcome`. All delivered through (fake) LINE. Then T1 taps its
    // welcome link twice (one click: once per send) and T2 blocks the account, which is put
    // down to T2's last send, `welcome`. So: welcome sent 2, clicked 1, blocked 1; survey sent
    // 1, clicked 0, blocked 0.
    let fake = crate::fake_line::FakeLine::start(crate::fake_line::Faults::none());
    let dir = tempfile::tempdir().unwrap();
    clinic(dir.path(), "booked", &tokyo_minutes_ago(70));
    let mut export = std::fs::read_to_string(dir.path().join("patients.csv")).unwrap();
    export.push_str(&format!(
        "T2,U00000000000000000000000000000002,テスト 二郎,booked,{},1980-01-01,,false,\n",
        tokyo_minutes_ago(2)
    ));
    std::fs::write(dir.path().join("patients.csv"), export).unwrap();
    let sent = std::process::Command::new(env!("CARGO_BIN_EXE_steprule"))
        .args(["run", "clinic.step", "--patients", "patients.csv"])
        .args(["--ledger", "ledger.db", "--outbox", "outbox.jsonl"])
        .args(["--line-api-base", &fake.base_url()])
        .env("LINE_CHANNEL_ACCESS_TOKEN", crate::fake_line::TOKEN)
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&sent.stderr);
    assert_eq!(sent.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("sent 3"), "{stderr}");
    let tap = token_of(&dir.path().join("ledger.db"), "T1", "welcome");

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
    for _ in 0..2 {
        assert_eq!(serve.get(&format!("/r/{tap}"), Some(BROWSER)).status, 302);
    }
    let blocked = serve.post_signed(&body(&[unfollow("01RTREPORT", 2, now_ms())]));
    assert_eq!(blocked.status, 200);

    let from = tokyo_minutes_ago(24 * 60 + 70)[..10].to_owned();
    let to = tokyo_minutes_ago(0)[..10].to_owned();
    let report = steprule(
        serve.dir(),
        &[
            "report",
            "clinic.step",
            "--ledger",
            "ledger.db",
            "--from",
            &from,
            "--to",
            &to,
            "--format",
            "json",
        ],
    );
    assert_eq!(report.code, 0, "{}", report.stderr);
    let document: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    let figures = |step: &str| {
        let row = document["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["step"] == step)
            .unwrap_or_else(|| panic!("{step} in {document:#}"));
        (
            row["sent"].clone(),
            row["clicked"].clone(),
            row["blocked"].clone(),
        )
    };
    use serde_json::json;
    assert_eq!(
        figures("welcome"),
        (json!(2), json!(1), json!(1)),
        "{document:#}"
    );
    assert_eq!(
        figures("survey"),
        (json!(1), json!(0), json!(0)),
        "{document:#}"
    );
}
