//! `steprule run` against a fake LINE API (tests/support/fake_line/) on 127.0.0.1: every due
//! send reaches LINE exactly once, whatever fails on the way, and the ledger says so.
//!
//! The rules are tests/fixtures/run/clinic.step at 2026-11-25 10:00 (Asia/Tokyo). In
//! tests/fixtures/run/patients.csv five sends are due, worked out by hand:
//! R1 booked 09:30 → booking_confirm; R2 booked yesterday 12:00 → booking_confirm (its 24 h end
//! at 12:00); R3's booking_confirm has expired, but its visit_reminder (11-24 18:00, for an
//! appointment today at 11:00, `even on the day`) is still sendable; R4 first visit yesterday 11:00 → thanks at
//! 10:00; R8 booked at 06:45, inside quiet hours → booking_confirm at 09:00. R5 opted out, R6
//! has no LINE id, R7's booking_confirm expired and its reminder was stopped by the
//! cancellation. The large tests generate N booked patients whose booking_confirm is due.
//!
//! One test binary (each one relinks the whole crate), its tests grouped by theme:
//! - `fake`: the fake LINE API itself behaves as LINE does;
//! - `blocked`: patients who blocked the account, links used when the export has no LINE id;
//! - `clinics`: `run FOLDER`, a folder of clinics on SQLite and on one PostgreSQL ledger;
//! - `delivery`: due sends, their messages, the outbox, reruns and bad rows;
//! - `faults`: LINE failing (500s, 429s, dropped connections, 4xx) and steprule being killed;
//! - `history`: what earlier passes sent, read back for caps and reruns;
//! - `limits`: `--rate`, `--concurrency` and two runs at once;
//! - `line_answers`: LINE's 409s without an accepted id, error text quoting the token, and
//!   `--line-api-base` checked at start;
//! - `options`: `--custom-aggregation` and `--every`;
//! - `outbox_crash`: steprule killed part way through an outbox batch, then run again;
//! - `postgres_ledger`: `--ledger postgres://…`, several workers on one ledger;
//! - `secrets`: the channel access token never leaks;
//! - `tracking`: with `track`, links and postbacks become tokens that lead back to their send;
//! - `write_failure`: a ledger write failing part-way through a batch;
//! - `workspace` and `ledger`: helpers to run the binary and read what it left.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "../common/mod.rs"]
mod common;
#[path = "../support/fake_line/mod.rs"]
mod fake_line;
#[path = "../support/postgres.rs"]
mod pg;

mod ledger;
mod workspace;

mod blocked;
mod clinics;
mod delivery;
mod disks;
mod fake;
mod faults;
mod history;
mod ledger_views;
mod limits;
mod line_answers;
mod observe;
mod options;
mod outbox_crash;
mod parallel;
mod postgres_ledger;
mod privacy;
mod secrets;
mod status;
mod tracking;
mod trust;
mod write_failure;

const NOW: &str = "2026-11-25 10:00";

/// The (patient, step) pairs due at NOW in patients.csv.
const DUE_IN_FIXTURE: [(&str, &str); 5] = [
    ("R1", "booking_confirm"),
    ("R2", "booking_confirm"),
    ("R3", "visit_reminder"),
    ("R4", "thanks"),
    ("R8", "booking_confirm"),
];
