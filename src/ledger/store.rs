//! What a pass of `run` (and of `serve --run-every`) needs of a ledger ([`RunLedger`]), and what
//! `serve` writes and reads ([`ServeLedger`]), whichever database holds it: the SQLite file
//! ([`Ledger`]) or PostgreSQL ([`super::postgres::PgLedger`]). What `report`, `plan`,
//! `explain` and `preview` read is [`super::ReadLedger`], what `insights fetch` caches is
//! [`super::InsightLedger`]; `status` still reads the SQLite ledger directly (docs/postgres.md
//! says what is on PostgreSQL so far).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::{
    Claim, DeliveredSend, EventFilter, EventKind, EventRecord, FriendChange, FriendState, Ledger,
    LedgerError, LinkAttempts, MarkPrints, MarkRow, NewEvent, NewMarks, OutboxClaims, PatientEvent,
    PendingInOutbox, RecentSend, SendDetails, SendKey, SendRef, SendStatus, Settlement, SinkKind,
    TrackKind, Tracked, UnitUse,
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

    /// [`RunLedger::claim`] for each of `sends` in order, with the same answers, which a
    /// ledger may find in fewer statements (SQLite: one look-up and one insert per chunk).
    fn claim_all(
        &mut self,
        sends: &[(SendKey<'_>, SendDetails<'_>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, LedgerError> {
        (sends.iter())
            .map(|(key, details)| self.claim(key, details, now))
            .collect()
    }

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

    /// Outbox sends recorded sent with their claims, where this ledger can (one writer).
    fn outbox_claims(&mut self) -> Option<&mut dyn OutboxClaims> {
        None
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

    /// Checkpoints the ledger's log beside the caller's writes from now on, where the ledger
    /// can (SQLite, see [`Ledger::checkpoint_beside`]); a no-op elsewhere.
    fn checkpoint_beside(&mut self) {}

    /// A handle asking for a checkpoint beside now (see [`Ledger::checkpoint_now`]).
    fn checkpoint_now(&self) -> Option<crate::ledger::CheckpointNow> {
        None
    }

    /// A reader of [`RunLedger::recent_sends`] on a connection of its own, to read beside the
    /// caller, when the ledger can (SQLite, outside a transaction); `None` when the caller is
    /// to read them itself.
    fn sends_reader(&self) -> Option<crate::ledger::SendsReader> {
        None
    }

    /// Whether any send of `sink` was ever delivered.
    fn has_sent(&self, sink: SinkKind) -> Result<bool, LedgerError>;

    /// The outbox's open rows (see [`Ledger::pending_in_outbox`]).
    fn pending_in_outbox(&self) -> Result<PendingInOutbox, LedgerError>;

    /// Counts per status.
    fn status_counts(&self) -> Result<Vec<(SendStatus, u64)>, LedgerError>;

    /// Every patient's booking and visit fingerprint, by [`super::patient_hash`] of the
    /// patient's id.
    fn mark_prints(&self) -> Result<MarkPrints, LedgerError>;

    /// [`RunLedger::mark_prints`] read beside the caller, on a connection of its own, when the
    /// ledger can (SQLite); `None` when the caller is to read them itself.
    fn mark_prints_beside(&self) -> Result<Option<crate::ledger::PrintsBeside>, LedgerError> {
        Ok(None)
    }

    fn mark_row(&self, patient: &str) -> Result<Option<MarkRow>, LedgerError>;

    /// [`RunLedger::mark_row`], `pack` being where the prints say the row is
    /// ([`MarkPrints::pack_of`]; SQLite packs first sightings' rows).
    fn mark_row_at(&self, patient: &str, pack: u32) -> Result<Option<MarkRow>, LedgerError> {
        let _ = pack;
        self.mark_row(patient)
    }

    fn set_marks(&mut self, patient: &str, print: u64, row: &MarkRow) -> Result<(), LedgerError>;

    /// Sets whole rows, in order, as [`RunLedger::set_marks`] would each.
    fn set_new_marks(&mut self, marks: &NewMarks) -> Result<(), LedgerError> {
        for (patient, print, row) in marks.each() {
            self.set_marks(patient, print, &row)?;
        }
        Ok(())
    }

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

    /// Every send of one of `steps` delivered (to LINE or the outbox) since `since`, oldest
    /// first (the reactions' sends). No steps, no sends.
    fn delivered_since(
        &self,
        since: DateTime<Utc>,
        steps: &[&str],
        each: &mut dyn FnMut(DeliveredSend<'_>),
    ) -> Result<(), LedgerError>;

    /// Every event of `kind` that names a patient, since `since`, oldest first (the reactions'
    /// clicks, answers and bookings).
    fn patient_events(
        &self,
        kind: EventKind,
        since: DateTime<Utc>,
        each: &mut dyn FnMut(PatientEvent<'_>),
    ) -> Result<(), LedgerError>;
}

/// What `serve` writes and reads besides what a pass does: friends (follows and blocks), links
/// and linking attempts, tracked tokens, and the stored events. Its one writer thread owns the
/// ledger, so it must be [`Send`].
pub trait ServeLedger: RunLedger + Send {
    /// Drops the writes since [`RunLedger::begin`]: a batch fails whole (its requests are
    /// answered with an error and LINE redelivers). Also after a failed commit.
    fn rollback(&mut self) -> Result<(), LedgerError>;

    /// Whether the ledger answers (`GET /healthz`): the file is still the one opened, the
    /// server is reachable.
    fn ping(&mut self) -> Result<(), LedgerError>;

    /// Connects again if the connection to a database server was lost (the batch that met the
    /// loss failed, and LINE redelivers it to a server that answers again). A file has none.
    fn reconnect_if_lost(&mut self) -> Result<(), LedgerError> {
        Ok(())
    }

    /// Records that `line_user` followed or blocked the account at `at`, unless an event newer
    /// than `at` already set their state; whether the state was written.
    fn set_friend(
        &mut self,
        line_user: &str,
        change: FriendChange,
        at: DateTime<Utc>,
    ) -> Result<bool, LedgerError>;

    /// What the newest follow or unfollow of `line_user` said; `None` if none was received.
    fn friend_state(&self, line_user: &str) -> Result<Option<FriendState>, LedgerError>;

    /// Whether `line_user` has blocked the account (as of the newest event seen).
    fn is_blocked(&self, line_user: &str) -> Result<bool, LedgerError> {
        Ok(self
            .friend_state(line_user)?
            .is_some_and(|state| state.blocked))
    }

    /// Links `line_user` to `patient` (replacing an earlier link of that LINE user).
    fn link(
        &mut self,
        line_user: &str,
        patient: &str,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError>;

    /// The patient `line_user` is linked to.
    fn linked_patient(&self, line_user: &str) -> Result<Option<String>, LedgerError>;

    /// `line_user`'s failed linking attempts on `day` (the clinic's date, `YYYY-MM-DD`).
    fn link_attempts(&self, line_user: &str, day: &str) -> Result<LinkAttempts, LedgerError>;

    /// Counts one more failed attempt of `line_user` on `day`, forgetting their earlier days.
    fn add_link_failure(&mut self, line_user: &str, day: &str)
        -> Result<LinkAttempts, LedgerError>;

    /// The last send that reached `patient` in the `within` before `at`, on either sink (the
    /// step an unfollow is put down to).
    fn last_send_before(
        &self,
        patient: &str,
        at: DateTime<Utc>,
        within: chrono::Duration,
    ) -> Result<Option<SendRef>, LedgerError>;

    /// What `token` stands for, if it is one of ours.
    fn tracked(&self, token: &str) -> Result<Option<Tracked>, LedgerError>;

    /// Every stored event that passes `filter`, oldest first, streamed.
    fn events(
        &self,
        filter: &EventFilter,
        each: &mut dyn FnMut(EventRecord) -> ControlFlow<()>,
    ) -> Result<(), LedgerError>;

    /// The latest `limit` events that pass `filter`, oldest first (`events --limit`).
    fn latest_events(
        &self,
        filter: &EventFilter,
        limit: u64,
        each: &mut dyn FnMut(EventRecord) -> ControlFlow<()>,
    ) -> Result<(), LedgerError>;
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

    fn claim_all(
        &mut self,
        sends: &[(SendKey<'_>, SendDetails<'_>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, LedgerError> {
        Ledger::claim_all(self, sends, now)
    }

    fn outbox_claims(&mut self) -> Option<&mut dyn OutboxClaims> {
        Some(self)
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

    fn sends_reader(&self) -> Option<crate::ledger::SendsReader> {
        Ledger::sends_reader(self)
    }

    fn checkpoint_beside(&mut self) {
        Ledger::checkpoint_beside(self);
    }

    fn checkpoint_now(&self) -> Option<crate::ledger::CheckpointNow> {
        Ledger::checkpoint_now(self)
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

    fn mark_prints(&self) -> Result<MarkPrints, LedgerError> {
        Ledger::mark_prints(self)
    }

    fn mark_prints_beside(&self) -> Result<Option<crate::ledger::PrintsBeside>, LedgerError> {
        Ledger::mark_prints_beside(self)
    }

    fn mark_row(&self, patient: &str) -> Result<Option<MarkRow>, LedgerError> {
        Ledger::mark_row(self, patient)
    }

    fn mark_row_at(&self, patient: &str, pack: u32) -> Result<Option<MarkRow>, LedgerError> {
        Ledger::mark_row_at(self, patient, pack)
    }

    fn set_marks(&mut self, patient: &str, print: u64, row: &MarkRow) -> Result<(), LedgerError> {
        Ledger::set_marks(self, patient, print, row)
    }

    fn set_new_marks(&mut self, marks: &NewMarks) -> Result<(), LedgerError> {
        Ledger::set_new_marks(self, marks)
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

    fn delivered_since(
        &self,
        since: DateTime<Utc>,
        steps: &[&str],
        each: &mut dyn FnMut(DeliveredSend<'_>),
    ) -> Result<(), LedgerError> {
        Ledger::delivered_since(self, since, steps, each)
    }

    fn patient_events(
        &self,
        kind: EventKind,
        since: DateTime<Utc>,
        each: &mut dyn FnMut(PatientEvent<'_>),
    ) -> Result<(), LedgerError> {
        Ledger::patient_events(self, kind, since, each)
    }
}

impl ServeLedger for Ledger {
    fn rollback(&mut self) -> Result<(), LedgerError> {
        Ledger::rollback(self)
    }

    fn ping(&mut self) -> Result<(), LedgerError> {
        self.check_in_place()?;
        Ledger::has_sent(self, SinkKind::Line).map(drop)
    }

    fn set_friend(
        &mut self,
        line_user: &str,
        change: FriendChange,
        at: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        Ledger::set_friend(self, line_user, change, at)
    }

    fn friend_state(&self, line_user: &str) -> Result<Option<FriendState>, LedgerError> {
        Ledger::friend_state(self, line_user)
    }

    fn link(
        &mut self,
        line_user: &str,
        patient: &str,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        Ledger::link(self, line_user, patient, at)
    }

    fn linked_patient(&self, line_user: &str) -> Result<Option<String>, LedgerError> {
        Ledger::linked_patient(self, line_user)
    }

    fn link_attempts(&self, line_user: &str, day: &str) -> Result<LinkAttempts, LedgerError> {
        Ledger::link_attempts(self, line_user, day)
    }

    fn add_link_failure(
        &mut self,
        line_user: &str,
        day: &str,
    ) -> Result<LinkAttempts, LedgerError> {
        Ledger::add_link_failure(self, line_user, day)
    }

    fn last_send_before(
        &self,
        patient: &str,
        at: DateTime<Utc>,
        within: chrono::Duration,
    ) -> Result<Option<SendRef>, LedgerError> {
        Ledger::last_send_before(self, patient, at, within)
    }

    fn tracked(&self, token: &str) -> Result<Option<Tracked>, LedgerError> {
        Ledger::tracked(self, token)
    }

    fn events(
        &self,
        filter: &EventFilter,
        each: &mut dyn FnMut(EventRecord) -> ControlFlow<()>,
    ) -> Result<(), LedgerError> {
        Ledger::events(self, filter, each)
    }

    fn latest_events(
        &self,
        filter: &EventFilter,
        limit: u64,
        each: &mut dyn FnMut(EventRecord) -> ControlFlow<()>,
    ) -> Result<(), LedgerError> {
        Ledger::latest_events(self, filter, limit, each)
    }
}
