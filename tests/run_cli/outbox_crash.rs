//! The outbox when steprule dies part way through a batch: killed after the batch's claims are
//! committed and before its lines are written, in the middle of a line, and after the lines
//! are written but before what records them is committed. The next run writes each send's
//! line exactly once (none lost, none doubled), and the ledger agrees with the outbox: every
//! row sent, each under the retry key of its one line.
//!
//! The crash is the debug binary's `STEPRULE_TEST_CRASH=<point>:<n>` (see
//! src/deliver/outbox/crash.rs), which aborts the process as a SIGKILL would, at the `n`th
//! batch: the batches before it went through whole (a batch is 2,048 sends, or fewer when
//! the evaluation is slow to fill it).

use std::collections::HashMap;
use std::time::Duration;

use crate::ledger::ledger;
use crate::workspace::{output, patient, Workspace};

/// Three outbox batches (2,048 sends each) and a part of one.
const N: usize = 5_000;

/// The outbox's lines, each whole JSON: retry key → (patient, how many lines carry the key).
fn outbox_keys(ws: &Workspace) -> HashMap<String, (String, usize)> {
    let text = std::fs::read_to_string(ws.outbox()).expect("the outbox");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "ends with a line end"
    );
    keys_of(&text)
}

fn keys_of(text: &str) -> HashMap<String, (String, usize)> {
    let mut keys: HashMap<String, (String, usize)> = HashMap::new();
    for line in text.lines() {
        let line: serde_json::Value = serde_json::from_str(line).expect("whole JSON lines");
        let key = line["retry_key"].as_str().expect("a retry key").to_owned();
        let patient = line["patient"].as_str().expect("a patient").to_owned();
        keys.entry(key).or_insert((patient, 0)).1 += 1;
    }
    keys
}

fn crash_then_rerun(point: &str) {
    for ws in Workspace::on_both_ledgers(&format!("outbox_crash_{}", point.replace('-', "_"))) {
        let patients = ws.booked_patients(N);
        // A short lease: on PostgreSQL the crashed run's pending claims are its own until the
        // lease runs out, and the rerun takes them over after.
        let args = ["--lease", "1s"];
        let mut crashing = ws.command(&patients, None, &args);
        crashing.env("STEPRULE_TEST_CRASH", format!("{point}:2"));
        let crashed = output(crashing);
        assert_ne!(
            crashed.code,
            0,
            "{}: crashed\n{}",
            ws.kind(),
            crashed.stderr
        );
        let text = std::fs::read_to_string(ws.outbox()).expect("the outbox");
        // A crash in the middle of a line leaves it torn, as the next run finds it.
        let whole = text.rfind('\n').map_or(0, |end| end + 1);
        assert_eq!(
            whole < text.len(),
            point == "mid-line",
            "{}: torn",
            ws.kind()
        );
        let written_before: usize = keys_of(&text[..whole]).values().map(|(_, n)| n).sum();
        assert!(
            (1..N).contains(&written_before),
            "{}: the first batch whole, not all ({written_before} lines)",
            ws.kind()
        );
        std::thread::sleep(Duration::from_millis(1_100));

        let rerun = output(ws.command(&patients, None, &args));
        assert_eq!(rerun.code, 0, "{}: {}", ws.kind(), rerun.stderr);
        let keys = outbox_keys(&ws);
        let doubled: Vec<_> = keys.iter().filter(|(_, (_, n))| *n > 1).take(3).collect();
        assert!(
            doubled.is_empty(),
            "{}: a line twice: {doubled:?}",
            ws.kind()
        );
        let mut by_patient: HashMap<&str, usize> = HashMap::new();
        for (patient, _) in keys.values() {
            *by_patient.entry(patient).or_default() += 1;
        }
        let missing: Vec<String> = (0..N)
            .map(patient)
            .filter(|p| by_patient.get(p.as_str()) != Some(&1))
            .take(3)
            .collect();
        assert!(
            missing.is_empty(),
            "{}: not exactly once: {missing:?}",
            ws.kind()
        );
        assert_eq!(keys.len(), N, "{}", ws.kind());

        let left = ledger(&ws.ledger());
        assert_eq!(
            left.statuses(),
            HashMap::from([("sent".to_owned(), N)]),
            "{}",
            ws.kind()
        );
        for row in &left.rows {
            let line = keys.get(&row.retry_key);
            assert_eq!(
                line.map(|(p, _)| p.as_str()),
                Some(row.patient.as_str()),
                "{}: the row's retry key is its line's {row:?}",
                ws.kind()
            );
        }
        let aside = ws.path().join("outbox.jsonl.torn-1").exists();
        assert_eq!(
            aside,
            point == "mid-line",
            "{}: torn line set aside",
            ws.kind()
        );
        if aside {
            assert!(rerun.stderr.contains("torn line"), "{}", rerun.stderr);
        }
    }
}

#[test]
fn killed_after_the_claims_before_the_lines_the_next_run_writes_each_once() {
    crash_then_rerun("after-claim");
}

#[test]
fn killed_in_the_middle_of_a_line_the_next_run_writes_each_once() {
    crash_then_rerun("mid-line");
}

#[test]
fn killed_after_the_lines_before_they_are_recorded_the_next_run_writes_each_once() {
    crash_then_rerun("after-write");
}

/// Killed at the third batch, each way: a row the ledger says sent has its line in the outbox
/// unless it is of the batch the unwritten mark names (the batch the next run reads the
/// outbox for). The lines are written beside the next batch's claims, and a batch's mark goes
/// only in the commit after its write: a mark removed before its lines were in the file would
/// leave sent rows without lines that no run looks for.
#[test]
fn killed_at_the_third_batch_a_sent_row_lacks_its_line_only_in_the_marked_batch() {
    for point in ["after-claim", "mid-line", "after-write"] {
        let ws = Workspace::new();
        let patients = ws.booked_patients(N);
        let mut crashing = ws.command(&patients, None, &[]);
        crashing.env("STEPRULE_TEST_CRASH", format!("{point}:3"));
        let crashed = output(crashing);
        assert_ne!(crashed.code, 0, "{point}: crashed\n{}", crashed.stderr);
        let text = std::fs::read_to_string(ws.outbox()).expect("the outbox");
        let whole = text.rfind('\n').map_or(0, |end| end + 1);
        let lines = keys_of(&text[..whole]);
        let conn = rusqlite::Connection::open_with_flags(
            ws.ledger(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("the ledger");
        let marked: Option<i64> = conn
            .query_row("SELECT from_byte FROM outbox_unwritten", [], |row| {
                row.get(0)
            })
            .ok();
        let mut statement = conn
            .prepare("SELECT retry_key, outbox_from FROM sends WHERE status = 'sent'")
            .expect("the sends");
        let sent: Vec<(String, Option<i64>)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("the sent rows")
            .collect::<Result<_, _>>()
            .expect("the sent rows");
        assert!(!sent.is_empty(), "{point}: batches sent before the crash");
        let lost: Vec<_> = (sent.iter())
            .filter(|(key, from)| !lines.contains_key(key) && *from != marked)
            .take(3)
            .collect();
        assert!(
            lost.is_empty(),
            "{point}: sent, no line, not marked: {lost:?}"
        );
        assert!(!lines.is_empty(), "{point}: lines before the crash");
    }
}
