//! What `insights fetch` needs of a ledger besides what `report` reads of LINE's cached answers
//! ([`ReadLedger::used_units`], [`ReadLedger::follower_days`]): where to start, storing LINE's
//! answers, and the request log LINE's hourly limit is counted on. The SQLite file ([`Ledger`])
//! and PostgreSQL ([`super::postgres::PgLedger`], one clinic's rows) both keep them.

use chrono::{DateTime, NaiveDate, Utc};

use super::{
    FollowerFigures, InsightClaim, InsightEndpoint, Ledger, LedgerError, ReadLedger, UnitFigures,
};

/// A ledger `insights fetch` caches LINE's statistics in.
pub trait InsightLedger: ReadLedger {
    /// The first day any aggregation unit was used, if any was.
    fn first_unit_day(&self) -> Result<Option<NaiveDate>, LedgerError>;

    /// The first delivery through LINE, if any.
    fn first_line_delivery(&self) -> Result<Option<DateTime<Utc>>, LedgerError>;

    /// Stores LINE's answer for `unit` in the half-month starting `half_first`, covering days
    /// up to `last_day`, in place of any earlier one.
    fn store_unit_figures(
        &mut self,
        unit: &str,
        half_first: NaiveDate,
        last_day: NaiveDate,
        figures: &UnitFigures,
        fetched_at: DateTime<Utc>,
        settled: bool,
    ) -> Result<(), LedgerError>;

    /// Stores LINE's answer about the account's friends on `day`.
    fn store_followers(
        &mut self,
        day: NaiveDate,
        figures: &FollowerFigures,
        fetched_at: DateTime<Utc>,
    ) -> Result<(), LedgerError>;

    /// Claims one request to `endpoint` for `subject` at `now` if fewer than `limit` were made
    /// in the hour before and no other fetch asked for the same subject minutes ago, in one
    /// transaction (see [`Ledger::claim_insight_request`]).
    fn claim_insight_request(
        &mut self,
        endpoint: InsightEndpoint,
        subject: &str,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<InsightClaim, LedgerError>;

    /// Records how a claimed request ended (`ok`, or what went wrong).
    fn settle_insight_request(&mut self, id: i64, outcome: &str) -> Result<(), LedgerError>;

    /// Drops the request log's entries older than a week (or more than a day ahead of `now`).
    fn prune_insight_requests(&mut self, now: DateTime<Utc>) -> Result<usize, LedgerError>;
}

impl InsightLedger for Ledger {
    fn first_unit_day(&self) -> Result<Option<NaiveDate>, LedgerError> {
        Ledger::first_unit_day(self)
    }

    fn first_line_delivery(&self) -> Result<Option<DateTime<Utc>>, LedgerError> {
        Ledger::first_line_delivery(self)
    }

    fn store_unit_figures(
        &mut self,
        unit: &str,
        half_first: NaiveDate,
        last_day: NaiveDate,
        figures: &UnitFigures,
        fetched_at: DateTime<Utc>,
        settled: bool,
    ) -> Result<(), LedgerError> {
        Ledger::store_unit_figures(
            self, unit, half_first, last_day, figures, fetched_at, settled,
        )
    }

    fn store_followers(
        &mut self,
        day: NaiveDate,
        figures: &FollowerFigures,
        fetched_at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        Ledger::store_followers(self, day, figures, fetched_at)
    }

    fn claim_insight_request(
        &mut self,
        endpoint: InsightEndpoint,
        subject: &str,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<InsightClaim, LedgerError> {
        Ledger::claim_insight_request(self, endpoint, subject, now, limit)
    }

    fn settle_insight_request(&mut self, id: i64, outcome: &str) -> Result<(), LedgerError> {
        Ledger::settle_insight_request(self, id, outcome)
    }

    fn prune_insight_requests(&mut self, now: DateTime<Utc>) -> Result<usize, LedgerError> {
        Ledger::prune_insight_requests(self, now)
    }
}
