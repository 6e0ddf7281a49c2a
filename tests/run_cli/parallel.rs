//! Issue 13: `run` evaluates patients on the threads that type the rows (each with an
//! evaluator of its own) and takes what is due in file order. On four threads a pass finds
//! what one thread finds (`STEPRULE_THREADS`): the same sends in the outbox, the same
//! warnings about rows in the same order (a duplicate id in a batch typed on another thread,
//! a row without an id, an unreadable date), the same counts.

use crate::workspace::{output, patient, user_id, Workspace};

const PATIENTS: usize = 3000;

/// Booked patients whose booking_confirm is due, every seventh without a LINE user, with bad
/// rows among them.
fn export(ws: &Workspace) -> std::path::PathBuf {
    let path = ws.path().join("patients.csv");
    let mut csv = String::from("id,line_user_id,name,stage,stage_entered_at\n");
    for i in 0..PATIENTS {
        let id = match i {
            // The id of the row on line 11, typed on another thread: skipped.
            2100 => patient(9),
            // No id: skipped.
            1030 => String::new(),
            _ => patient(i),
        };
        let user = if i % 7 == 3 {
            String::new()
        } else {
            user_id(i)
        };
        let entered = match i {
            // Unreadable: kept, booking_confirm not evaluated for them.
            1700 => "2026-11-31 09:30",
            _ => "2026-11-25 09:30",
        };
        csv.push_str(&format!("{id},{user},テスト {i},booked,{entered}\n"));
    }
    std::fs::write(&path, csv).unwrap();
    path
}

/// One pass on `threads` threads in a workspace of its own: the outbox's (patient, to, step)
/// sorted, the warnings in order, and the summary.
fn pass(threads: &str) -> (Vec<(String, String, String)>, Vec<String>, String) {
    let ws = Workspace::new();
    let patients = export(&ws);
    let mut command = ws.command(&patients, None, &[]);
    command.env("STEPRULE_THREADS", threads);
    let run = output(command);
    assert_eq!(run.code, 3, "rows were skipped\n{}", run.stderr);
    let outbox = std::fs::read_to_string(ws.outbox()).unwrap();
    let mut sends: Vec<(String, String, String)> = outbox
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = |key: &str| line[key].as_str().unwrap().to_owned();
            (text("patient"), text("to"), text("step"))
        })
        .collect();
    sends.sort();
    let in_workspace = ws.path().display().to_string();
    let warnings = run
        .stderr
        .lines()
        .filter(|line| line.starts_with("warning:"))
        .map(|line| line.replace(&in_workspace, "WS"))
        .collect();
    let summary = format!("{:?}", {
        let mut summary: Vec<_> = run.summary().into_iter().collect();
        summary.sort();
        summary
    });
    (sends, warnings, summary)
}

#[test]
fn run_on_four_threads_finds_what_one_thread_finds() {
    let (one_sends, one_warnings, one_summary) = pass("1");
    let (four_sends, four_warnings, four_summary) = pass("4");
    // Every patient with a LINE user and a usable row, once.
    let unlinked = (0..PATIENTS).filter(|i| i % 7 == 3).count();
    assert_eq!(
        one_sends.len(),
        PATIENTS - unlinked - 3,
        "{one_warnings:#?}"
    );
    assert_eq!(four_sends, one_sends);
    assert_eq!(four_warnings, one_warnings);
    assert_eq!(four_summary, one_summary);
    let lines: Vec<&str> = one_warnings
        .iter()
        .filter_map(|w| w.strip_prefix("warning: WS/patients.csv:"))
        .map(|w| w.split(':').next().unwrap())
        .collect();
    assert_eq!(lines, ["1032", "1702", "2102"], "{one_warnings:#?}");
}
