//! What must hold for a clinic to trust a run: a send counts only for the sink it went to, one
//! ledger is one lock whatever the path's spelling, a ledger pulled away or a full disk stops the
//! run loudly without losing a message, patient files are private, and a template that fails for
//! one patient's data is retried once the data is fixed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::fixtures;
use crate::fake_line::{FakeLine, Faults, TOKEN};
use crate::ledger::{assert_delivered_exactly_once, ledger};
use crate::workspace::{finish, fixture_patients, output, spawn, Workspace};
use crate::{DUE_IN_FIXTURE, NOW};

/// `steprule run` on the fixture clinic with this ledger, no `--outbox`, no token.
fn run_without_outbox_flag(ws: &Workspace, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
    command
        .arg("run")
        .arg(fixtures().join("run/clinic.step"))
        .arg("--patients")
        .arg(fixture_patients())
        .args(["--now", NOW])
        .arg("--ledger")
        .arg(ws.ledger())
        .args(extra)
        .current_dir(ws.path())
        .env("NO_COLOR", "1")
        .env_remove("LINE_CHANNEL_ACCESS_TOKEN");
    command
}

#[test]
fn outbox_and_dry_run_sends_never_count_as_line_deliveries() {
    let fake = FakeLine::start(Faults::none());
    let ws = Workspace::new();
    let outbox = ws.run(&fixture_patients(), None, &[]);
    assert_eq!(outbox.count("sent"), 5, "{}", outbox.stderr);
    let dry = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &["--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(
        dry.count("already sent"),
        5,
        "the outbox has them: {}",
        dry.stderr
    );
    assert_eq!(fake.request_count(), 0, "a dry run sends nothing to LINE");

    let line = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(line.code, 0, "{}", line.stderr);
    assert_eq!(
        (line.count("sent"), line.count("already sent")),
        (5, 0),
        "LINE gets every send the outbox got: {}",
        line.stderr
    );
    assert_eq!(fake.accepted(), DUE_IN_FIXTURE.len());
    let rows = ledger(&ws.ledger());
    assert_eq!(rows.status_count("sent"), 10, "five per sink");
}

#[test]
fn a_run_without_token_on_a_line_ledger_refuses_unless_the_outbox_is_named() {
    let fake = FakeLine::start(Faults::none());
    let ws = Workspace::new();
    let line = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(line.count("sent"), 5, "{}", line.stderr);

    let refused = output(run_without_outbox_flag(&ws, &[]));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("LINE_CHANNEL_ACCESS_TOKEN is not set, but the ledger"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--outbox"), "{}", refused.stderr);
    assert!(!ws.path().join(".steprule").exists(), "nothing written");

    let named = output(run_without_outbox_flag(
        &ws,
        &["--outbox", ws.outbox().to_str().unwrap()],
    ));
    assert_eq!(named.code, 0, "{}", named.stderr);
    let dry = output(run_without_outbox_flag(&ws, &["--dry-run"]));
    assert_eq!(dry.code, 0, "{}", dry.stderr);
}

#[test]
fn a_ledger_reached_through_a_symlink_shares_the_lock() {
    const N: usize = 1_500;
    let fake = FakeLine::start(Faults::with_latency(Duration::from_millis(2)));
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let alias = ws.path().join("alias.db");
    std::os::unix::fs::symlink(ws.ledger(), &alias).unwrap();
    let args = ["--rate", "2000", "--custom-aggregation"];
    let first = spawn(ws.command(&patients, Some((TOKEN, &fake)), &args));
    let second = spawn(ws.command_on(&alias, &patients, Some((TOKEN, &fake)), &args));
    let runs = [finish(first), finish(second)];
    for run in &runs {
        assert!(run.code == 0 || run.code == 2, "{}", run.stderr);
        if run.code == 2 {
            assert!(
                run.stderr.contains("another steprule run"),
                "{}",
                run.stderr
            );
        }
    }
    assert_delivered_exactly_once(&fake, &ws.ledger(), N);
}

#[test]
fn a_ledger_deleted_during_a_run_stops_it_with_an_error() {
    const N: usize = 400;
    let fake = FakeLine::start(Faults::with_latency(Duration::from_millis(100)));
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let child = spawn(ws.command(
        &patients,
        Some((TOKEN, &fake)),
        &["--concurrency", "4", "--rate", "40"],
    ));
    assert!(fake.wait_for_accepted(8, Duration::from_secs(30)));
    std::fs::remove_file(ws.ledger()).unwrap();
    let run = finish(child);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("was deleted or replaced while this run was using it"),
        "{}",
        run.stderr
    );
    assert!(fake.accepted() < N, "stopped before the end");
}

#[test]
fn a_run_leaves_no_write_ahead_log_behind() {
    // The pass's checkpoints run beside it on a connection of its own; once the run has
    // ended, the ledger file alone must hold every send (a clinic copying `ledger.db` as its
    // backup copies them all), with no write-ahead log left beside it.
    let ws = Workspace::new();
    for _ in 0..2 {
        let run = ws.run(&fixture_patients(), None, &[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let log = ws.ledger().with_extension("db-wal");
        assert!(!log.exists(), "{} left behind", log.display());
    }
    let rows = ledger(&ws.ledger()).rows;
    assert_eq!(rows.len(), DUE_IN_FIXTURE.len(), "{rows:?}");
}

#[test]
fn ledger_outbox_and_lock_are_private() {
    let ws = Workspace::new();
    let rules_dir = ws.path().join("clinic");
    std::fs::create_dir(&rules_dir).unwrap();
    std::fs::copy(
        fixtures().join("run/clinic.step"),
        rules_dir.join("clinic.step"),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
    command
        .arg("run")
        .arg(rules_dir.join("clinic.step"))
        .arg("--templates")
        .arg(fixtures().join("run/templates"))
        .arg("--patients")
        .arg(fixture_patients())
        .args(["--now", NOW])
        .env_remove("LINE_CHANNEL_ACCESS_TOKEN");
    let run = output(command);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let data = rules_dir.join(".steprule");
    assert_eq!(mode(&data), 0o700, "the .steprule folder");
    for file in [
        "ledger.db",
        "ledger.db-wal",
        "ledger.db.lock",
        "outbox.jsonl",
    ] {
        let path = data.join(file);
        if path.exists() || file != "ledger.db-wal" {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
}

#[test]
fn an_existing_ledger_readable_by_others_is_made_private_and_the_run_says_so() {
    let ws = Workspace::new();
    let first = ws.run(&fixture_patients(), None, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    std::fs::set_permissions(ws.ledger(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let again = ws.run(&fixture_patients(), None, &[]);
    assert!(
        again.stderr.contains("readable by others (mode 644)"),
        "{}",
        again.stderr
    );
    let mode = std::fs::metadata(ws.ledger()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_template_failing_for_one_patient_is_held_and_sent_once_the_data_is_fixed() {
    let ws = Workspace::new();
    let write = |appointment: &str| {
        let path = ws.path().join("held.csv");
        std::fs::write(
            &path,
            format!(
                "id,line_user_id,stage,stage_entered_at,appointment_at\n\
                 H1,U{:032x},booked,2026-11-25 09:30,{appointment}\n\
                 H2,U{:032x},booked,2026-11-25 09:30,2026-12-01 10:00\n",
                1, 2
            ),
        )
        .unwrap();
        path
    };
    let held_run = |patients: &Path| {
        let templates = fixtures().join("run/held_templates");
        let extra = ["--templates", templates.to_str().unwrap()];
        let rules = fixtures().join("run/held.step");
        output(ws.command_for(&rules, &ws.ledger(), patients, None, &extra))
    };
    let first = held_run(&write(""));
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        (first.count("sent"), first.count("held")),
        (1, 1),
        "{}",
        first.stderr
    );
    assert!(
        first
            .stderr
            .contains("warning: step `booking_confirm`, 1 patient(s): template confirm_with_date"),
        "says which step, and how many patients (never who):\n{}",
        first.stderr
    );
    assert_eq!(
        ledger(&ws.ledger()).row("H1", "booking_confirm").status,
        "held"
    );

    let unchanged = held_run(&write(""));
    assert_eq!(
        unchanged.count("held"),
        1,
        "still held: {}",
        unchanged.stderr
    );

    let fixed = held_run(&write("2026-12-02 11:00"));
    assert_eq!(
        (fixed.count("sent"), fixed.count("already sent")),
        (1, 1),
        "{}",
        fixed.stderr
    );
    let outbox = std::fs::read_to_string(ws.outbox()).unwrap();
    assert!(outbox.contains("12月02日"), "{outbox}");
}

#[test]
fn a_refused_token_stops_the_run_and_leaves_every_send_pending() {
    let fake = FakeLine::start(Faults::none());
    let ws = Workspace::new();
    let run = ws.run(&fixture_patients(), Some(("not-the-token", &fake)), &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("check LINE_CHANNEL_ACCESS_TOKEN"),
        "{}",
        run.stderr
    );
    assert!(fake.unauthorized() <= 1 + 32, "stops asking once refused");
    let rows = ledger(&ws.ledger());
    assert_eq!(rows.status_count("pending"), 5, "{:?}", rows.statuses());
    let good = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(good.count("sent"), 5, "{}", good.stderr);
}

#[test]
fn terminal_escapes_in_an_export_are_printed_escaped() {
    let ws = Workspace::new();
    let patients = ws.path().join("escapes.csv");
    std::fs::write(
        &patients,
        format!(
            "id,line_user_id,name,stage,stage_entered_at\n\
             \"E1\x1b[2J\",U{:032x},\"山田\x1b]0;owned\x07\",booked,2026-11-25 09:30\n",
            1
        ),
    )
    .unwrap();
    let steprule = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
        command
            .args(args)
            .arg(fixtures().join("run/clinic.step"))
            .arg("--patients")
            .arg(&patients)
            .args(["--now", NOW])
            .env_remove("LINE_CHANNEL_ACCESS_TOKEN");
        output(command)
    };
    for run in [
        steprule(&["plan", "--format", "table"]),
        steprule(&["plan", "--format", "csv"]),
        steprule(&["explain", "--patient", "E1\x1b[2J"]),
        steprule(&["explain", "--patient", "nobody\x1b[2J"]),
    ] {
        for text in [&run.stdout, &run.stderr] {
            assert!(!text.contains('\x1b'), "a raw ESC:\n{text}");
            assert!(!text.contains('\x07'), "a raw BEL:\n{text}");
        }
        assert!(
            run.stdout.contains("E1\\u{1b}[2J") || run.stderr.contains("\\u{1b}[2J"),
            "the id is shown, escaped:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
}

#[test]
fn a_message_over_lines_limits_for_one_patient_is_failed_never_sent() {
    let fake = FakeLine::start(Faults::none());
    let ws = Workspace::new();
    let patients = ws.path().join("long_name.csv");
    let long_name = "あ".repeat(6000);
    std::fs::write(
        &patients,
        format!(
            "id,line_user_id,name,stage,stage_entered_at\n\
             L1,U{:032x},{long_name},booked,2026-11-25 09:30\n\
             L2,U{:032x},山田 花子,booked,2026-11-25 09:30\n",
            1, 2
        ),
    )
    .unwrap();
    let run = ws.run(&patients, Some((TOKEN, &fake)), &[]);
    assert_eq!(
        run.code, 4,
        "a failed send makes the exit code 4\n{}",
        run.stderr
    );
    assert_eq!(
        (run.count("sent"), run.count("failed")),
        (1, 1),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("step `booking_confirm`, 1 patient(s): template booking_confirm"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains(&"あ".repeat(50)),
        "the name is not quoted"
    );
    assert_eq!(
        fake.accepted(),
        1,
        "only the message within LINE's limits went out"
    );
    let row = ledger(&ws.ledger()).row("L1", "booking_confirm").clone();
    assert_eq!(row.status, "failed", "{row:?}");
    let again = ws.run(&patients, Some((TOKEN, &fake)), &[]);
    assert_eq!(
        again.count("settled before"),
        1,
        "not retried: {}",
        again.stderr
    );
    assert_eq!(fake.accepted(), 1);
}
