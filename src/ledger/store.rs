//! What a pass of `run` (and of `serve --run-every`) needs of a ledger, whichever database
//! holds it: the SQLite file ([`Ledger`]) or PostgreSQL ([`super::postgres::PgLedger`]).
//! Everything else (`status`, `report`, `serve`'s events) still reads the SQLite ledger
//! directly; see docs/postgres.md for what is on PostgreSQL so far.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::{
    Claim, Ledger, LedgerError, MarkPrints, MarkRow, NewEvent, PendingInOutbox, RecentSend,
    SendDetails, SendKey, SendStatus, Settlement, SinkKind, TrackKind, UnitUse,
};

/// Where `--ledger` (or `STEPRULE_LEDGER_URL`) points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerLocation {
    /// An SQLite file.
    File(PathBuf),
    /// A PostgreSQL connection URL (`postgres://…` or `postgresql://…`), password and all:
    /// never print it, print [`super::postgres::shown_url`] of it.
    Postgres(String),
}

impl LedgerLocation {
    /// A `postgres://` or `postgresql://` URL is PostgreSQL; anything else is a file path.
    pub fn of(given: &Path) -> LedgerLocation {
        match given.to_str() {
            Some(text) if is_postgres_url(text) => LedgerLocation::Postgres(text.to_owned()),
            _ => LedgerLocation::File(given.to_path_buf()),
        }
    }
}

pub fn is_postgres_url(text: &str) -> bool {
    crate::postgres_url::is_url(text)
}

/// A ledger a pass can claim, settle and read its history through.
pub trait RunLedger {
    /// The ledger for messages: the file's path, or the URL without its password.
    fn describe(&self) -> String;

    /// The mode the ledger file had if it was readable by others and has been made private.
    fn tightened_from(&self) -> Option<u32> {
        None
    }

    /// Whether several workers may use this ledger at once (claims then carry leases).
    fn shared(&self) -> bool {
        false
    }

    /// Starts grouping writes in one transaction (until [`RunLedger::commit`]).
    fn begin(&mut self) -> Result<(), LedgerError>;

    /// Commits the writes since [`RunLedger::begin`].
    fn commit(&mut self) -> Result<(), LedgerError>;

    /// Records a send as pending before it goes out, or says what became of it before (or,
    /// on a shared ledger, that another worker holds it).
    fn claim(
        &mut self,
        key: &SendKey<'_>,
        details: &SendDetails<'_>,
        now: DateTime<Utc>,
    ) -> Result<Claim, LedgerError>;

    /// Records how the claimed send `key` (with `retry_key`) ended.
    fn settle(
        &mut self,
        key: &SendKey<'_>,
        retry_key: &str,
        attempts: u32,
        settlement: &Settlement,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError>;

    /// Records the claimed sends `sent` (each with its retry key) as sent at `now`, after
    /// `attempts` each, without a request id or a note: [`RunLedger::settle`] for each, which
    /// a ledger may do in fewer statements.
    fn settle_sent(
        &mut self,
        sent: &[(SendKey<'_>, &str)],
        attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let settlement = Settlement::Sent {
            request_id: None,
            note: None,
        };
        for (key, retry_key) in sent {
            self.settle(key, retry_key, attempts, &settlement, now)?;
        }
        Ok(())
    }

    /// Open rows of `sink` whose time has passed: expired.
    fn expire_open(&mut self, sink: SinkKind, now: DateTime<Utc>) -> Result<usize, LedgerError>;

    /// Every send of `sink` that can still matter at `now` (see [`Ledger::recent_sends`]).
    fn recent_sends(
        &self,
        sink: SinkKind,
        now: DateTime<Utc>,
        each: &mut dyn FnMut(RecentSend<'_>),
    ) -> Result<(), LedgerError>;

    /// Whether any send of `sink` was ever delivered.
    fn has_sent(&self, sink: SinkKind) -> Result<bool, LedgerError>;

    /// The outbox's open rows (see [`Ledger::pending_in_outbox`]).
    fn pending_in_outbox(&self) -> Result<PendingInOutbox, LedgerError>;

    /// Counts per status.
    fn status_counts(&self) -> Result<Vec<(SendStatus, u64)>, LedgerError>;

    /// Every patient's booking and visit fingerprint, by `hash` of the patient's id.
    fn mark_prints(&self, hash: &dyn Fn(&str) -> u64) -> Result<MarkPrints, LedgerError>;

    fn mark_row(&self, patient: &str) -> Result<Option<MarkRow>, LedgerError>;

    fn set_marks(&mut self, patient: &str, print: u64, row: &MarkRow) -> Result<(), LedgerError>;

    /// Stores `event` unless one with its id is stored already; whether it was new.
    fn record_event(
        &mut self,
        event: &NewEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError>;

    /// Every link as (patient, LINE user), each patient's latest last.
    fn links(&self, each: &mut dyn FnMut(&str, &str)) -> Result<(), LedgerError>;

    /// Every LINE user who has blocked the account.
    fn blocked_users(&self, each: &mut dyn FnMut(&str)) -> Result<(), LedgerError>;

    /// Remembers a tracking token of the send `key`, with its claim.
    fn track(
        &mut self,
        token: &str,
        kind: TrackKind,
        key: &SendKey<'_>,
        target: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError>;

    /// The tokens recorded for the send `key`.
    fn tracked_for(
        &self,
        key: &SendKey<'_>,
    ) -> Result<Vec<(String, TrackKind, String)>, LedgerError>;

    /// Adds a run's uses of aggregation units, with the settlements that count them.
    fn record_unit_uses(&mut self, uses: &[UnitUse]) -> Result<(), LedgerError>;

    /// The SQLite ledger itself, for the reads only it has so far (the reactions' events).
    fn sqlite(&self) -> Option<&Ledger> {
        None
    }
}

impl RunLedger for Ledger {
    fn describe(&self) -> String {
        self.path().display().to_string()
    }

    fn tightened_from(&self) -> Option<u32> {
        Ledger::tightened_from(self)
    }

    fn begin(&mut self) -> Result<(), LedgerError> {
        Ledger::begin(self)
    }

    fn commit(&mut self) -> Result<(), LedgerError> {
        Ledger::commit(self)
    }

    fn claim(
        &mut self,
        key: &SendKey<'_>,
        details: &SendDetails<'_>,
        now: DateTime<Utc>,
    ) -> Result<Claim, LedgerError> {
        Ledger::claim(self, key, details, now)
    }

    fn settle(
        &mut self,
        key: &SendKey<'_>,
        retry_key: &str,
        attempts: u32,
        settlement: &Settlement,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        Ledger::settle(self, key, retry_key, attempts, settlement, now)
    }

    fn settle_sent(
        &mut self,
        sent: &[(SendKey<'_>, &str)],
        attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        Ledger::settle_sent(self, sent, attempts, now)
    }

    fn expire_open(&mut self, sink: SinkKind, now: DateTime<Utc>) -> Result<usize, LedgerError> {
        Ledger::expire_open(self, sink, now)
    }

    fn recent_sends(
        &self,
        sink: SinkKind,
        now: DateTime<Utc>,
        each: &mut dyn FnMut(RecentSend<'_>),
    ) -> Result<(), LedgerError> {
        Ledger::recent_sends(self, sink, now, each)
    }

    fn has_sent(&self, sink: SinkKind) -> Result<bool, LedgerError> {
        Ledger::has_sent(self, sink)
    }

    fn pending_in_outbox(&self) -> Result<PendingInOutbox, LedgerError> {
        Ledger::pending_in_outbox(self)
    }

    fn status_counts(&self) -> Result<Vec<(SendStatus, u64)>, LedgerError> {
        Ledger::status_counts(self)
    }

    fn mark_prints(&self, hash: &dyn Fn(&str) -> u64) -> Result<MarkPrints, LedgerError> {
        Ledger::mark_prints(self, hash)
    }

    fn mark_row(&self, patient: &str) -> Result<Option<MarkRow>, LedgerError> {
        Ledger::mark_row(self, patient)
    }

    fn set_marks(&mut self, patient: &str, print: u64, row: &MarkRow) -> Result<(), LedgerError> {
        Ledger::set_marks(self, patient, print, row)
    }

    fn record_event(
        &mut self,
        event: &NewEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        Ledger::record_event(self, event, now)
    }

    fn links(&self, each: &mut dyn FnMut(&str, &str)) -> Result<(), LedgerError> {
        Ledger::links(self, each)
    }

    fn blocked_users(&self, each: &mut dyn FnMut(&str)) -> Result<(), LedgerError> {
        Ledger::blocked_users(self, each)
    }

    fn track(
        &mut self,
        token: &str,
        kind: TrackKind,
        key: &SendKey<'_>,
        target: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        Ledger::track(self, token, kind, key, target, now)
    }

    fn tracked_for(
        &self,
        key: &SendKey<'_>,
    ) -> Result<Vec<(String, TrackKind, String)>, LedgerError> {
        Ledger::tracked_for(self, key)
    }

    fn record_unit_uses(&mut self, uses: &[UnitUse]) -> Result<(), LedgerError> {
        Ledger::record_unit_uses(self, uses)
    }

    fn sqlite(&self) -> Option<&Ledger> {
        Some(self)
    }
}
