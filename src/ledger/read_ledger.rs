//! What the reading commands (`report`, `plan`, `explain`, `preview`) need of a ledger besides a
//! pass's reads ([`RunLedger`]): a plan window's sends, one patient's sends, links and friend
//! state, and the report's figures per arm. The SQLite file ([`Ledger`]) and PostgreSQL
//! ([`super::postgres::PgLedger`], one clinic's rows) both answer them, so that the commands
//! read either alike.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::{
    ArmKey, EventKind, FollowerFigures, FriendState, Ledger, LedgerError, PatientLink, PatientSend,
    RunLedger, UnitHalf, WindowSend,
};

/// A ledger the reading commands read. Every read that can meet many rows streams them (or is
/// grouped by the database), so that a ledger of years is never held in memory.
pub trait ReadLedger: RunLedger {
    /// Every send, of any status, that a plan of `[from, to)` can meet (see
    /// [`Ledger::sends_in_window`]).
    fn window_sends(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        each: &mut dyn FnMut(WindowSend<'_>),
    ) -> Result<(), LedgerError>;

    /// Every send to `patient`, oldest occurrence first.
    fn patient_sends(&self, patient: &str) -> Result<Vec<PatientSend>, LedgerError>;

    /// The LINE users linked to `patient` with when, latest link last.
    fn patient_links(&self, patient: &str) -> Result<Vec<PatientLink>, LedgerError>;

    /// What the newest follow or unfollow of `line_user` said.
    fn friend(&self, line_user: &str) -> Result<Option<FriendState>, LedgerError>;

    /// How many sends of each arm were delivered in `[from, to)`.
    fn delivered_per_arm(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        each: &mut dyn FnMut(ArmKey, u64),
    ) -> Result<(), LedgerError>;

    /// How many sends of each arm, delivered in `[from, to)`, had a tracked link opened within
    /// `within` of their delivery (see [`Ledger::clicked_per_send`]).
    fn clicked_per_arm(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        within: Duration,
        each: &mut dyn FnMut(ArmKey, u64),
    ) -> Result<(), LedgerError>;

    /// How many sends of each arm, delivered in `[from, to)`, an unfollow was put down to.
    fn blocked_per_arm(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        each: &mut dyn FnMut(ArmKey, u64),
    ) -> Result<(), LedgerError>;

    /// How many sends of each arm, delivered in `[from, to)`, were credited (last touch within
    /// `window`) with a `kind` event (see [`Ledger::credited_per_send`]).
    fn credited_per_arm(
        &self,
        kind: EventKind,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        window: Duration,
        each: &mut dyn FnMut(ArmKey, u64),
    ) -> Result<(), LedgerError>;

    /// Whether any event of `kind` is stored.
    fn any_events(&self, kind: EventKind) -> Result<bool, LedgerError>;

    /// Every aggregation unit used in the half-months from `first` to `last`, with LINE's
    /// cached answer where `insights fetch` stored one.
    fn used_units(&self, first: NaiveDate, last: NaiveDate) -> Result<Vec<UnitHalf>, LedgerError>;

    /// LINE's counts of the account's friends cached for the days `first` to `last`.
    fn follower_days(
        &self,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<(NaiveDate, FollowerFigures)>, LedgerError>;
}

impl ReadLedger for Ledger {
    fn window_sends(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        each: &mut dyn FnMut(WindowSend<'_>),
    ) -> Result<(), LedgerError> {
        Ledger::sends_in_window(self, from, to, each)
    }

    fn patient_sends(&self, patient: &str) -> Result<Vec<PatientSend>, LedgerError> {
        Ledger::sends_to(self, patient)
    }

    fn patient_links(&self, patient: &str) -> Result<Vec<PatientLink>, LedgerError> {
        Ledger::links_of(self, patient)
    }

    fn friend(&self, line_user: &str) -> Result<Option<FriendState>, LedgerError> {
        Ledger::friend_state(self, line_user)
    }

    fn delivered_per_arm(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        each: &mut dyn FnMut(ArmKey, u64),
    ) -> Result<(), LedgerError> {
        Ledger::delivered_per_arm(self, from, to, each)
    }

    fn clicked_per_arm(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        within: Duration,
        each: &mut dyn FnMut(ArmKey, u64),
    ) -> Result<(), LedgerError> {
        Ledger::clicked_per_send(self, from, to, within, |key| each(key, 1))
    }

    fn blocked_per_arm(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        each: &mut dyn FnMut(ArmKey, u64),
    ) -> Result<(), LedgerError> {
        Ledger::blocked_per_send(self, from, to, |key| each(key, 1))
    }

    fn credited_per_arm(
        &self,
        kind: EventKind,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        window: Duration,
        each: &mut dyn FnMut(ArmKey, u64),
    ) -> Result<(), LedgerError> {
        Ledger::credited_per_send(self, kind, from, to, window, |key| each(key, 1))
    }

    fn any_events(&self, kind: EventKind) -> Result<bool, LedgerError> {
        Ledger::has_events(self, kind)
    }

    fn used_units(&self, first: NaiveDate, last: NaiveDate) -> Result<Vec<UnitHalf>, LedgerError> {
        Ledger::unit_halves(self, first, last)
    }

    fn follower_days(
        &self,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<(NaiveDate, FollowerFigures)>, LedgerError> {
        Ledger::followers(self, first, last)
    }
}
