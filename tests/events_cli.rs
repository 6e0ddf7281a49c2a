//! `steprule events`: the ledger's events, oldest first, as JSON lines or an aligned table,
//! filtered by type and time, never with a LINE user id; and a ledger with half a million events
//! printed with bounded memory. Events are written through the ledger's API (or SQL, for the
//! large one), as `steprule serve` stores them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};
use common::{fixtures, steprule, Run};
use steprule::ledger::{EventKind, Ledger, NewEvent, SendRef, SinkKind};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

const LINE_USER: &str = "U0123456789abcdef0123456789abcdef";

/// A ledger with one event of several types over three days (times UTC; Tokyo is +9).
fn ledger_with_events(dir: &Path) -> PathBuf {
    let path = dir.join("ledger.db");
    let mut ledger = Ledger::open(&path).unwrap();
    let now = at("2026-11-30T00:00:00Z");
    let send = SendRef {
        sink: SinkKind::Line,
        patient: "P1".into(),
        step: "booking_confirm".into(),
        occurrence: at("2026-11-24T01:00:00Z"),
    };
    let events = [
        ("w1", EventKind::Follow, "2026-11-24T00:00:00Z", None, None),
        ("w2", EventKind::Link, "2026-11-24T00:01:00Z", None, None),
        (
            "c1",
            EventKind::Click,
            "2026-11-24T14:59:00.250Z",
            Some(&send),
            Some("https://clinic.example/book?from=\u{1b}[31mline"),
        ),
        (
            "w3",
            EventKind::Unfollow,
            "2026-11-25T01:00:00Z",
            Some(&send),
            None,
        ),
        ("w4", EventKind::Message, "2026-11-26T02:00:00Z", None, None),
    ];
    for (id, kind, when, send, detail) in events {
        let patient = (kind == EventKind::Link).then_some("P1");
        let event = NewEvent {
            id,
            kind,
            at: at(when),
            line_user: Some(LINE_USER),
            patient,
            send,
            detail,
        };
        assert!(ledger.record_event(&event, now).unwrap());
    }
    path
}

fn events(dir: &Path, args: &[&str]) -> Run {
    steprule(dir, &[&["events", "--ledger", "ledger.db"], args].concat())
}

fn json_lines(run: &Run) -> Vec<serde_json::Value> {
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn json_lists_each_event_with_its_patient_step_and_detail() {
    let dir = tempfile::tempdir().unwrap();
    ledger_with_events(dir.path());
    let run = events(dir.path(), &["--format", "json"]);
    let lines = json_lines(&run);
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["follow", "link", "click", "unfollow", "message"]);
    for line in &lines {
        let mut keys: Vec<&String> = line.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["at", "detail", "patient", "step", "type"], "{line}");
    }
    assert_eq!(lines[0]["patient"], serde_json::Value::Null);
    assert_eq!(lines[1]["patient"], "P1");
    assert_eq!(lines[2]["at"], "2026-11-24T14:59:00.250Z");
    assert_eq!(lines[2]["step"], "booking_confirm");
    assert_eq!(
        lines[2]["detail"],
        "https://clinic.example/book?from=\u{1b}[31mline"
    );
    assert_eq!(lines[3]["step"], "booking_confirm", "the step blamed");
    assert!(!run.stdout.contains(LINE_USER), "never a LINE user id");
    assert!(run.stderr.contains("5 event(s)"), "{}", run.stderr);
}

#[test]
fn type_since_and_limit_filter_and_since_is_clinic_time_with_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    ledger_with_events(dir.path());
    let kinds = |run: &Run| -> Vec<String> {
        json_lines(run)
            .iter()
            .map(|l| l["type"].as_str().unwrap().to_owned())
            .collect()
    };
    let unfollows = events(dir.path(), &["--format", "json", "--type", "unfollow"]);
    assert_eq!(kinds(&unfollows), ["unfollow"]);

    // Without rules `--since` is UTC: 2026-11-24 15:00 UTC is after the click at 14:59.
    let utc = events(
        dir.path(),
        &["--format", "json", "--since", "2026-11-24 15:00"],
    );
    assert_eq!(kinds(&utc), ["unfollow", "message"]);
    // With the rules it is Tokyo time: 2026-11-24 23:59 JST is 14:59 UTC, the click's minute.
    let rules = fixtures().join("run/clinic.step");
    let rules = rules.to_str().unwrap();
    let tokyo = events(
        dir.path(),
        &[rules, "--format", "json", "--since", "2026-11-24 23:59"],
    );
    let lines = json_lines(&tokyo);
    assert_eq!(lines.len(), 3, "{}", tokyo.stdout);
    assert_eq!(lines[0]["type"], "click");
    assert_eq!(
        lines[0]["at"], "2026-11-24T23:59:00.250+09:00",
        "shown in Tokyo time"
    );
    let offset = events(
        dir.path(),
        &["--format", "json", "--since", "2026-11-25T10:00:00+09:00"],
    );
    assert_eq!(kinds(&offset), ["unfollow", "message"]);

    let latest = events(dir.path(), &["--format", "json", "--limit", "2"]);
    assert_eq!(
        kinds(&latest),
        ["unfollow", "message"],
        "the latest two, oldest first"
    );
    let latest_follow = events(
        dir.path(),
        &["--format", "json", "--type", "follow", "--limit", "1"],
    );
    assert_eq!(kinds(&latest_follow), ["follow"]);

    let bad_since = events(dir.path(), &["--since", "yesterday"]);
    assert_eq!(bad_since.code, 2, "{}", bad_since.stderr);
    assert!(bad_since.stderr.contains("--since"), "{}", bad_since.stderr);
    let bad_limit = events(dir.path(), &["--limit", "0"]);
    assert_eq!(bad_limit.code, 2, "{}", bad_limit.stderr);
}

#[test]
fn the_table_is_aligned_and_escapes_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    ledger_with_events(dir.path());
    let run = events(dir.path(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", run.stdout);
    assert!(lines[0].starts_with("at (UTC)"), "{}", run.stdout);
    // Every row's columns start where the header's do.
    let starts = |line: &str| -> Vec<usize> {
        ["type", "patient", "step", "detail"]
            .iter()
            .map(|title| lines[0].find(title).unwrap())
            .filter(|&i| line.as_bytes()[i - 2..i] == *b"  " && line.as_bytes()[i] != b' ')
            .collect()
    };
    for line in &lines[1..] {
        assert_eq!(starts(line).len(), 4, "aligned:\n{}", run.stdout);
    }
    assert!(
        lines[3].starts_with("2026-11-24 14:59:00  click         P1       booking_confirm  "),
        "{}",
        run.stdout
    );
    assert!(lines[3].ends_with("from=\\u{1b}[31mline"), "{}", run.stdout);
    assert!(!run.stdout.contains('\u{1b}'));
    assert!(!run.stdout.contains(LINE_USER));
}

#[test]
fn an_unknown_type_lists_the_types_and_suggests_one() {
    let dir = tempfile::tempdir().unwrap();
    ledger_with_events(dir.path());
    let run = events(dir.path(), &["--type", "unfolow"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "--type: unknown event type `unfolow` (did you mean `unfollow`?); the types are \
             follow, unfollow, postback, click, link, link_failed, message, account_link"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
}

#[test]
fn a_missing_ledger_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let run = events(dir.path(), &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("no ledger at ledger.db"),
        "{}",
        run.stderr
    );
    assert!(!dir.path().join("ledger.db").exists());
    // The default: .steprule/ledger.db in the current folder.
    let default = steprule(dir.path(), &["events"]);
    assert_eq!(default.code, 2, "{}", default.stderr);
    assert!(
        default.stderr.contains(".steprule/ledger.db"),
        "{}",
        default.stderr
    );
    assert!(!dir.path().join(".steprule").exists());
}

/// Events in the large test: enough that holding them (a few hundred bytes each) would show in
/// the peak memory next to SQLite's 32 MiB page cache.
const MANY: usize = 500_000;

#[test]
#[cfg(target_os = "linux")]
fn half_a_million_events_stream_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    drop(Ledger::open(&path).unwrap());
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO events (id, type, at, received_at, line_user, patient, step, detail)
                 VALUES (?1, 'click', ?2, ?2, ?3, ?4, 'booking_confirm', ?5)",
            )
            .unwrap();
        let start = at("2020-01-01T00:00:00Z");
        for i in 0..MANY {
            let when = (start + chrono::Duration::seconds(i as i64 * 60))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            insert
                .execute(rusqlite::params![
                    format!("{i:026}"),
                    when,
                    format!("U{i:032x}"),
                    format!("P{:07}", i % 100_000),
                    format!("https://clinic.example/book?n={i}")
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    drop(conn);

    for format in ["json", "table"] {
        let out = std::fs::File::create(dir.path().join("out")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_steprule"))
            .args(["events", "--ledger", "ledger.db", "--format", format])
            .current_dir(dir.path())
            .stdout(Stdio::from(out))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (code, peak) = wait(child);
        assert_eq!(code, Some(0));
        assert!(peak > 0, "the peak was read");
        let printed = std::fs::read_to_string(dir.path().join("out")).unwrap();
        let header = usize::from(format == "table");
        assert_eq!(printed.lines().count(), MANY + header);
        // Holding every event would need well over 100 MB here; streaming needs SQLite's
        // page cache and a little more.
        let mb = peak / (1024 * 1024);
        assert!(mb < 96, "--format {format}: peak RSS {mb} MB");
    }
}

/// Waits for `child` and returns its exit code and the peak resident set of the steprule
/// program, read from /proc while it runs. Not `wait4`: a child spawned with vfork reports
/// this test's own peak (the ledger just written) as its own.
fn wait(mut child: std::process::Child) -> (Option<i32>, u64) {
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        // VmHWM only grows, so the last reading before the exit is the peak.
        if let Ok(text) = std::fs::read_to_string(&status) {
            let kb = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak = peak.max(kb.unwrap_or(0) * 1024);
        }
        if let Some(exit) = child.try_wait().unwrap() {
            return (exit.code(), peak);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A ledger opened twice in one process (`serve`'s writer and a `--run-every` pass), the second
/// closed, then read by another process: the first connection's writes must still reach the
/// file. Closing any descriptor of the database used to drop the process's POSIX locks, so the
/// other process's close deleted the write-ahead log the writer went on writing to, and every
/// event after that was lost.
#[test]
fn a_second_open_of_the_ledger_in_one_process_loses_nothing_of_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let event = |id: &'static str| NewEvent {
        id,
        kind: EventKind::Message,
        at: at("2026-11-24T00:00:00Z"),
        line_user: Some(LINE_USER),
        patient: None,
        send: None,
        detail: None,
    };
    let now = at("2026-11-30T00:00:00Z");
    let mut writer = Ledger::open(&path).unwrap();
    assert!(writer.record_event(&event("before"), now).unwrap());
    drop(Ledger::open(&path).unwrap());
    let listed = |dir: &Path| {
        let run = steprule(
            dir,
            &["events", "--ledger", "ledger.db", "--format", "json"],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.stdout.lines().count()
    };
    assert_eq!(listed(dir.path()), 1);
    assert!(writer.record_event(&event("after"), now).unwrap());
    assert_eq!(
        listed(dir.path()),
        2,
        "the writer's second event reached the ledger"
    );
}
