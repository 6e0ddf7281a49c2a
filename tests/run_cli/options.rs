//! Options that change how `run` works: per-step statistics for LINE, and `--every`.

use std::process::Command;
use std::time::Duration;

use crate::common::fixtures;
use crate::fake_line::{FakeLine, Faults, TOKEN};
use crate::workspace::{fixture_patients, output, spawn, terminate, Workspace};
use crate::DUE_IN_FIXTURE;

#[test]
fn custom_aggregation_sends_each_step_id_as_the_unit() {
    let fake = FakeLine::start(Faults::none());
    let ws = Workspace::new();
    let run = ws.run(
        &fixture_patients(),
        Some((TOKEN, &fake)),
        &["--custom-aggregation"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut units: Vec<String> = fake.deliveries().iter().map(|d| d.unit.clone()).collect();
    units.sort();
    let mut want: Vec<String> = DUE_IN_FIXTURE
        .iter()
        .map(|(_, step)| step.to_string())
        .collect();
    want.sort();
    assert_eq!(units, want);
}

#[test]
fn every_keeps_evaluating_on_the_clock_until_a_signal() {
    let fake = FakeLine::start(Faults::none());
    let ws = Workspace::new();
    let booked = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let patients = ws.path().join("now.csv");
    std::fs::write(
        &patients,
        format!(
            "id,line_user_id,stage,stage_entered_at\nE1,U{:032x},booked,{booked}\n",
            1
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
    command
        .arg("run")
        .arg(fixtures().join("run/always.step"))
        .arg("--templates")
        .arg(fixtures().join("run/templates"))
        .arg("--patients")
        .arg(&patients)
        .arg("--ledger")
        .arg(ws.ledger())
        .args(["--every", "1s", "--line-api-base", &fake.base_url()])
        .env("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
        .env("NO_COLOR", "1");
    let child = spawn(command);
    assert!(
        fake.wait_for_accepted(1, Duration::from_secs(20)),
        "the first pass delivers"
    );
    // Let at least one more pass run: it must find the send in the ledger, not send again.
    std::thread::sleep(Duration::from_millis(2500));
    let run = terminate(child);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let passes = run.stderr.lines().filter(|l| l.starts_with("due ")).count();
    assert!(passes >= 2, "{passes} passes:\n{}", run.stderr);
    assert!(run.stderr.contains("already sent 1"), "{}", run.stderr);
    assert!(run.stderr.contains("stopped by a signal"), "{}", run.stderr);
    assert_eq!(fake.accepted(), 1, "delivered once across passes");
}

#[test]
fn every_with_now_is_a_usage_error() {
    let ws = Workspace::new();
    let run = ws.run(&fixture_patients(), None, &["--every", "5m"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--every runs on the clock"),
        "{}",
        run.stderr
    );
}

#[test]
fn numbers_out_of_range_are_usage_errors_not_panics() {
    let ws = Workspace::new();
    let cases: [&[&str]; 7] = [
        &["--concurrency", "2305843009213693952"],
        &["--concurrency", "0"],
        &["--rate", "0"],
        &["--max-attempts", "0"],
        &["--every", "5124095576030431m"],
        &["--every", "99999999999999999999999h"],
        &["--every", "25h"],
    ];
    for args in cases {
        let run = ws.run(&fixture_patients(), None, args);
        assert_eq!(run.code, 2, "{args:?}\n{}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{args:?}\n{}", run.stderr);
        assert!(!ws.outbox().exists(), "{args:?} sent nothing");
    }
    let mut plan = Command::new(env!("CARGO_BIN_EXE_steprule"));
    plan.arg("plan")
        .arg(fixtures().join("run/clinic.step"))
        .arg("--patients")
        .arg(fixture_patients())
        .args(["--days", "4294967295"]);
    let run = output(plan);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("3660"),
        "says the range:\n{}",
        run.stderr
    );
}
