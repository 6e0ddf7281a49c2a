//! Limits that protect LINE and the ledger: `--rate`, `--concurrency`, and two runs at once on
//! the same ledger.

use std::time::Duration;

use crate::fake_line::{FakeLine, Faults, TOKEN};
use crate::ledger::assert_delivered_exactly_once;
use crate::workspace::{finish, spawn, Workspace};

#[test]
fn concurrency_limit_is_never_exceeded() {
    const N: usize = 120;
    let fake = FakeLine::start(Faults::with_latency(Duration::from_millis(50)));
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let args = ["--concurrency", "4", "--custom-aggregation"];
    let run = ws.run(&patients, Some((TOKEN, &fake)), &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_delivered_exactly_once(&fake, &ws.ledger(), N);
    assert!(
        fake.max_in_flight() <= 4,
        "{} requests in flight at once",
        fake.max_in_flight()
    );
}

#[test]
fn two_runs_at_once_do_not_double_send() {
    const N: usize = 2_000;
    let fake = FakeLine::start(Faults::with_latency(Duration::from_millis(2)));
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let args = ["--rate", "5000", "--custom-aggregation"];
    let first = spawn(ws.command(&patients, Some((TOKEN, &fake)), &args));
    let second = spawn(ws.command(&patients, Some((TOKEN, &fake)), &args));
    let runs = [finish(first), finish(second)];
    for run in &runs {
        assert!(
            run.code == 0 || run.code == 2,
            "exit {}\n{}",
            run.code,
            run.stderr
        );
        if run.code == 2 {
            assert!(
                run.stderr.contains("another steprule run"),
                "says why it stopped:\n{}",
                run.stderr
            );
        }
    }
    assert!(runs.iter().any(|r| r.code == 0), "one of them ran");
    eprintln!(
        "two runs at once exited {} and {}",
        runs[0].code, runs[1].code
    );
    assert_delivered_exactly_once(&fake, &ws.ledger(), N);
}

#[test]
fn rate_limit_is_never_exceeded() {
    const N: usize = 1_000;
    const RATE: usize = 200;
    let fake = FakeLine::start(Faults::none());
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let rate = RATE.to_string();
    let run = ws.run(
        &patients,
        Some((TOKEN, &fake)),
        &["--rate", &rate, "--custom-aggregation"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_delivered_exactly_once(&fake, &ws.ledger(), N);
    // Any 1 s window: at most RATE, plus one for the window's two ends, plus a little for
    // requests that the loopback delivered closer together than they were sent.
    let max = fake.max_requests_in_any_second();
    eprintln!("at --rate {RATE}: at most {max} requests in any 1 s window");
    assert!(
        max <= RATE + 1 + RATE / 100,
        "{max} requests within one second at --rate {RATE}; per second: {:?}",
        fake.requests_per_second()
    );
}
