//! `steprule serve` run as a user runs it: the real binary on 127.0.0.1:0, webhook bodies
//! signed here with the channel secret (HMAC-SHA256 from ring, independently of steprule's own
//! check), a fake LINE reply endpoint, and the ledger read back through steprule's library.
//!
//! Fixtures: tests/fixtures/serve/ (see its README).
//!
//! One test binary, its tests grouped by theme:
//! - `start`: what `serve` needs before it listens (the secret, the link templates, `check --serve`);
//! - `webhooks`: signatures, bad bodies, sizes, duplicates, blocks, health, hostile input;
//! - `linking`: follow → link_request → number and birth date → link_done; failures and the
//!   daily limit;
//! - `clicks`: tracked links and postbacks;
//! - `round_trip`: `run` → a tap on a tracked link in the outbox → a block → the next `run`;
//!   and a day of LINE deliveries, taps and blocks through `serve`, then `report`;
//! - `schedule`: `--run-every` beside webhooks, SIGTERM, the unfollow's step;
//! - `on_postgres`: `serve` on a PostgreSQL ledger: two instances storing a redelivered event once,
//!   follows, blocks, links and taps read by a `run` on the same ledger, the URL's password;
//! - `server`, `events` and `fake_reply`: helpers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "../common/mod.rs"]
mod common;

mod events;
#[path = "../support/fake_line/mod.rs"]
mod fake_line;
mod fake_reply;
#[path = "../support/postgres.rs"]
mod pg;
mod server;

mod clicks;
mod linking;
mod on_postgres;
mod privacy;
mod reactions;
mod round_trip;
mod schedule;
mod start;
mod webhooks;

/// The channel secret the tests sign with.
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";
/// The access token the fake reply endpoint accepts.
pub const TOKEN: &str = "fake-reply-token-9Kp";
