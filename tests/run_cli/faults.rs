//! Delivery when things fail: LINE's 500s, 429s and dropped connections, steprule killed or
//! stopped mid-run, sends left pending for the next run, and recipients LINE refuses for good.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::fake_line::{self, FakeLine, Fault, Faults, TOKEN};
use crate::ledger::{assert_delivered_exactly_once, ledger};
use crate::workspace::{fixture_patients, fixture_user_id, spawn, terminate, Workspace};
use crate::DUE_IN_FIXTURE;

#[test]
fn ten_thousand_sends_with_faults_are_delivered_exactly_once() {
    const N: usize = 10_000;
    let fake = FakeLine::start(Faults {
        seed: 20261125,
        error_before: 0.025,
        error_after: 0.025,
        too_many_requests: 0.005,
        drop_before: 0.005,
        drop_after: 0.005,
        ..Faults::none()
    });
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let runs = ws.run_until_settled(
        &patients,
        &fake,
        &["--rate", "5000", "--custom-aggregation"],
    );
    assert_delivered_exactly_once(&fake, &ws.ledger(), N);

    let sent: u64 = runs.iter().map(|r| r.count("sent")).sum();
    assert_eq!(
        sent,
        N as u64,
        "summaries: {:?}",
        runs.iter().map(|r| r.summary()).collect::<Vec<_>>()
    );
    assert_eq!(runs[0].count("due"), N as u64);
    assert_eq!(runs[0].count("failed"), 0);
    let faults = fake.faults();
    assert!(
        faults.get(&Fault::ErrorAfter).copied().unwrap_or(0) > 100,
        "{faults:?}"
    );
    assert!(
        fake.keys_answered_conflict() > 100,
        "sends accepted before a 500 were retried and met 409 ({} keys)",
        fake.keys_answered_conflict()
    );

    assert!(
        faults.get(&Fault::DropBefore).copied().unwrap_or(0)
            + faults.get(&Fault::DropAfter).copied().unwrap_or(0)
            > 20,
        "connections were dropped: {faults:?}"
    );

    // Once LINE's answer (200 or 409) reached steprule, the key was not sent again.
    let requests = fake.requests();
    let mut acknowledged = HashSet::new();
    let mut in_order: Vec<&fake_line::Request> = requests.iter().collect();
    in_order.sort_by_key(|r| r.at);
    for r in in_order {
        let key = r.retry_key.as_deref().expect("a retry key");
        assert!(
            !acknowledged.contains(key),
            "{key} sent again after LINE answered it"
        );
        if r.status == 200 || r.status == 409 {
            acknowledged.insert(key);
        }
    }

    // A 429 said `Retry-After: 1`: the same key did not come back sooner.
    let mut by_key: HashMap<&str, Vec<&fake_line::Request>> = HashMap::new();
    for r in &requests {
        if let Some(key) = &r.retry_key {
            by_key.entry(key).or_default().push(r);
        }
    }
    let mut checked = 0;
    for attempts in by_key.values_mut() {
        attempts.sort_by_key(|r| r.at);
        for pair in attempts.windows(2) {
            if pair[0].status == 429 {
                checked += 1;
                let waited = pair[1].at.duration_since(pair[0].at);
                assert!(
                    waited >= Duration::from_millis(950),
                    "retried {waited:?} after a 429 with Retry-After: 1"
                );
            }
        }
    }
    assert!(checked > 10, "429s were retried ({checked})");
}

#[test]
fn killed_mid_run_then_rerun_delivers_each_exactly_once() {
    const N: usize = 10_000;
    let fake = FakeLine::start(Faults::with_latency(Duration::from_millis(2)));
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let args = ["--rate", "5000", "--custom-aggregation"];
    let mut child = spawn(ws.command(&patients, Some((TOKEN, &fake)), &args));
    assert!(
        fake.wait_for_accepted(2_000, Duration::from_secs(60)),
        "2,000 deliveries within a minute (got {})",
        fake.accepted()
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reap the killed run");
    let at_kill = fake.accepted();
    assert!(
        at_kill < N,
        "the run was killed before it finished ({at_kill} delivered)"
    );

    // What the killed run left: every message LINE accepted has its row, with the same retry
    // key, because the row is written before the request leaves.
    let left = ledger(&ws.ledger());
    let rows = left.by_key();
    for delivery in fake.deliveries() {
        let key = delivery.retry_key.as_deref().expect("a retry key");
        let row = rows
            .get(key)
            .unwrap_or_else(|| panic!("no ledger row for accepted key {key} ({})", delivery.to));
        assert!(row.status == "sent" || row.status == "pending", "{row:?}");
    }

    let run = ws.run(&patients, Some((TOKEN, &fake)), &args);
    assert_eq!(
        run.code, 0,
        "the next run is not blocked by the dead one\n{}",
        run.stderr
    );
    assert_delivered_exactly_once(&fake, &ws.ledger(), N);
    eprintln!(
        "killed after {at_kill} deliveries; the rerun met {} 409s",
        fake.conflicts()
    );
}

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_cleanly() {
    const N: usize = 300;
    let fake = FakeLine::start(Faults::with_latency(Duration::from_millis(300)));
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let args = ["--concurrency", "8", "--custom-aggregation"];
    let child = spawn(ws.command(&patients, Some((TOKEN, &fake)), &args));
    assert!(fake.wait_for_accepted(16, Duration::from_secs(30)));
    let signalled = Instant::now();
    let run = terminate(child);
    assert!(
        run.code >= 0,
        "exited by itself, not killed by the signal\n{}",
        run.stderr
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "stopped promptly ({:?})",
        signalled.elapsed()
    );
    let accepted = fake.accepted();
    assert!(
        accepted < N,
        "stopped before the end ({accepted} delivered)"
    );
    eprintln!(
        "SIGTERM after {accepted} deliveries: exit {}, {:?} later; {}",
        run.code,
        signalled.elapsed(),
        run.stderr.lines().last().unwrap_or("")
    );
    // The summary adds up: every due send is accounted for, and what was not sent is said to
    // stay pending.
    let summary = run.summary();
    let parts: u64 = [
        "sent",
        "already sent",
        "settled before",
        "expired",
        "failed",
        "held",
        "retrying later",
    ]
    .iter()
    .map(|name| summary[*name])
    .sum();
    assert_eq!(summary["due"], parts, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "stopped by a signal: {} send(s) stay pending for the next run",
            summary["retrying later"]
        )),
        "{}",
        run.stderr
    );
    // Requests in flight at the signal were answered and recorded, not abandoned.
    let left = ledger(&ws.ledger());
    let rows = left.by_key();
    for delivery in fake.deliveries() {
        let row = rows[delivery.retry_key.as_deref().unwrap()];
        assert_eq!(row.status, "sent", "accepted before the signal: {row:?}");
    }

    let rest = ["--concurrency", "64", "--custom-aggregation"];
    let run = ws.run(&patients, Some((TOKEN, &fake)), &rest);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_delivered_exactly_once(&fake, &ws.ledger(), N);
}

#[test]
fn permanent_4xx_is_failed_not_retried() {
    for ws in Workspace::on_both_ledgers("failed_4xx") {
        permanent_4xx_is_failed_not_retried_on(&ws);
    }
}

fn permanent_4xx_is_failed_not_retried_on(ws: &Workspace) {
    let units = crate::delivery::units_where_kept(ws);
    let refused = fixture_user_id("R2");
    let fake = FakeLine::start(Faults {
        reject_to: HashSet::from([refused.clone()]),
        ..Faults::none()
    });
    let run = ws.run(&fixture_patients(), Some((TOKEN, &fake)), units);
    assert_eq!(
        run.code, 4,
        "failed sends make the exit code 4\n{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("error: step `booking_confirm`, 1 patient(s): LINE answered 400"),
        "the reason is shown with the step and a count of patients:\n{}",
        run.stderr
    );
    assert_eq!(
        (run.count("sent"), run.count("failed")),
        (4, 1),
        "{}",
        run.stderr
    );
    assert_eq!(fake.requests_to(&refused), 1, "a 400 is not retried");
    let row = ledger(&ws.ledger()).row("R2", "booking_confirm").clone();
    assert_eq!(row.status, "failed", "{row:?}");
    assert_eq!(row.attempts, 1, "{row:?}");
    let error = row.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("400"),
        "last_error says what LINE said: {row:?}"
    );

    // Not on the next run either.
    let again = ws.run(&fixture_patients(), Some((TOKEN, &fake)), units);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        fake.requests_to(&refused),
        1,
        "a failed send is not retried by a rerun"
    );
    assert_eq!(
        ledger(&ws.ledger()).row("R2", "booking_confirm").status,
        "failed"
    );
}

#[test]
fn sends_left_pending_after_max_attempts_are_retried_next_run_with_the_same_key() {
    for ws in Workspace::on_both_ledgers("same_key") {
        sends_left_pending_after_max_attempts_are_retried_next_run_with_the_same_key_on(&ws);
    }
}

fn sends_left_pending_after_max_attempts_are_retried_next_run_with_the_same_key_on(ws: &Workspace) {
    let down = FakeLine::start(Faults {
        error_before: 1.0,
        ..Faults::none()
    });
    let run = ws.run(
        &fixture_patients(),
        Some((TOKEN, &down)),
        &["--max-attempts", "2"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("sent"), run.count("retrying later")),
        (0, 5),
        "{}",
        run.stderr
    );
    let pending = ledger(&ws.ledger());
    for (patient, step) in DUE_IN_FIXTURE {
        let row = pending.row(patient, step);
        assert_eq!(row.status, "pending", "{row:?}");
        assert_eq!(down.attempts_for_key(&row.retry_key), 2, "{row:?}");
        assert!(
            row.last_error.as_deref().unwrap_or("").contains("500"),
            "{row:?}"
        );
    }

    let up = FakeLine::start(Faults::none());
    let run = ws.run(&fixture_patients(), Some((TOKEN, &up)), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("sent"), 5, "{}", run.stderr);
    let sent = ledger(&ws.ledger());
    for (patient, step) in DUE_IN_FIXTURE {
        let before = pending.row(patient, step);
        let after = sent.row(patient, step);
        assert_eq!(after.status, "sent");
        assert_eq!(
            after.retry_key, before.retry_key,
            "the same retry key on the next run"
        );
        assert_eq!(
            up.accepted_request_id(&after.retry_key),
            after.line_request_id
        );
    }
}

#[test]
fn a_retry_within_the_run_is_judged_at_the_runs_now_not_the_wall_clock() {
    // Every first attempt gets a 500; the retry a moment later succeeds. At --now 10:00 none of
    // the five sends expires before 11:00 (R3's reminder), so all five go out on attempt 2,
    // whatever the wall clock says.
    let fake = FakeLine::start(Faults {
        error_first_attempts: 1,
        ..Faults::none()
    });
    let ws = Workspace::new();
    let run = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("sent"), run.count("expired")),
        (5, 0),
        "{}",
        run.stderr
    );
    let ledger = ledger(&ws.ledger());
    for (patient, step) in DUE_IN_FIXTURE {
        let row = ledger.row(patient, step);
        assert_eq!((row.status.as_str(), row.attempts), ("sent", 2), "{row:?}");
    }
}
