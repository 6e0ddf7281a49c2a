//! LINE's statistics on PostgreSQL (migration 3): the same cache `insights fetch` keeps in an
//! SQLite ledger (insights.rs, insight_log.rs), with the clinic in every key, so that one
//! clinic's fetch and report never see another's answers or spend another's hourly budget.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::super::insight_log::{REQUEST_LOG_DAYS, TAKEN_MINUTES};
use super::super::{
    CachedHalf, FollowerFigures, FollowerStatus, InsightClaim, InsightEndpoint, InsightLedger,
    LedgerError, UnitFigures, UnitHalf,
};
use super::PgLedger;

/// A figure as a `BIGINT` (LINE's figures are far below `i64::MAX`; the client refuses larger
/// ones).
fn figure_to_sql(figure: Option<u64>) -> Option<i64> {
    figure.and_then(|f| i64::try_from(f).ok())
}

fn figure(row: &postgres::Row, index: usize) -> Option<u64> {
    row.get::<_, Option<i64>>(index)
        .and_then(|f| u64::try_from(f).ok())
}

/// One unit's row of `steprule_unit_uses` joined with its cached answer, if any.
const UNIT_HALVES: &str = "SELECT u.unit, u.half_first, u.step, u.variant, u.last_day, u.sends,
            c.last_day, c.unique_impression, c.unique_click, c.unique_media_played,
            c.unique_media_played_100, c.fetched_at, c.settled
     FROM steprule_unit_uses AS u
     LEFT JOIN steprule_insight_chunks AS c
            ON c.clinic = u.clinic AND c.unit = u.unit AND c.half_first = u.half_first
     WHERE u.clinic = $1 AND u.half_first >= $2 AND u.half_first <= $3
     ORDER BY u.half_first, u.unit";

fn unit_half(row: &postgres::Row) -> UnitHalf {
    let cached = row
        .get::<_, Option<NaiveDate>>(6)
        .map(|last_day| CachedHalf {
            last_day,
            figures: UnitFigures {
                unique_impression: figure(row, 7),
                unique_click: figure(row, 8),
                unique_media_played: figure(row, 9),
                unique_media_played_100: figure(row, 10),
            },
            fetched_at: row.get(11),
            settled: row.get(12),
        });
    UnitHalf {
        unit: row.get(0),
        half_first: row.get(1),
        step: row.get(2),
        variant: row.get(3),
        last_day: row.get(4),
        sends: u64::try_from(row.get::<_, i64>(5)).unwrap_or(0),
        cached,
    }
}

impl PgLedger {
    /// The clinic's units used in the half-months from `first` to `last`, with LINE's cached
    /// answers: units × half-months rows, a small table.
    pub(super) fn unit_halves(
        &self,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<UnitHalf>, LedgerError> {
        let mut halves = Vec::new();
        self.stream(UNIT_HALVES, &[&self.clinic, &first, &last], |row| {
            halves.push(unit_half(row))
        })?;
        Ok(halves)
    }

    /// The clinic's cached friends per day from `first` to `last`, oldest first.
    pub(super) fn followers(
        &self,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<(NaiveDate, FollowerFigures)>, LedgerError> {
        let mut days = Vec::new();
        self.stream(
            "SELECT day, status, followers, targeted_reaches, blocks
             FROM steprule_insight_followers
             WHERE clinic = $1 AND day >= $2 AND day <= $3 ORDER BY day",
            &[&self.clinic, &first, &last],
            |row| {
                days.push((
                    row.get(0),
                    FollowerFigures {
                        // The CHECK constraint allows only these three words.
                        status: FollowerStatus::parse(row.get(1))
                            .unwrap_or(FollowerStatus::Unready),
                        followers: figure(row, 2),
                        targeted_reaches: figure(row, 3),
                        blocks: figure(row, 4),
                    },
                ))
            },
        )?;
        Ok(days)
    }

    /// The claim's checks and insert in one transaction, serialised per clinic and endpoint by
    /// an advisory lock, so that two fetches never both take the last request of the hour.
    fn claim_request(
        &mut self,
        endpoint: InsightEndpoint,
        subject: &str,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<InsightClaim, postgres::Error> {
        let clinic = self.clinic.clone();
        let mut tx = self.client.get_mut().transaction()?;
        let lock = format!("steprule insight {} {clinic}", endpoint.as_str());
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&lock],
        )?;
        let hour = Duration::hours(1);
        let made: i64 = tx
            .query_one(
                "SELECT count(*) FROM steprule_insight_requests
                 WHERE clinic = $1 AND endpoint = $2 AND at > $3 AND at <= $4",
                &[&clinic, &endpoint.as_str(), &(now - hour), &(now + hour)],
            )?
            .get(0);
        if made >= i64::from(limit) {
            return Ok(InsightClaim::Spent);
        }
        let taken: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM steprule_insight_requests
                                WHERE clinic = $1 AND endpoint = $2 AND at > $3 AND at <= $4
                                  AND subject = $5 AND (outcome IS NULL OR outcome = 'ok'))",
                &[
                    &clinic,
                    &endpoint.as_str(),
                    &(now - Duration::minutes(TAKEN_MINUTES)),
                    &(now + hour),
                    &subject,
                ],
            )?
            .get(0);
        if taken {
            return Ok(InsightClaim::Taken);
        }
        let id: i64 = tx
            .query_one(
                "INSERT INTO steprule_insight_requests (clinic, endpoint, at, subject)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&clinic, &endpoint.as_str(), &now, &subject],
            )?
            .get(0);
        tx.commit()?;
        Ok(InsightClaim::Granted(id))
    }
}

impl InsightLedger for PgLedger {
    fn first_unit_day(&self) -> Result<Option<NaiveDate>, LedgerError> {
        let row = self.one(
            "SELECT min(first_day) FROM steprule_unit_uses WHERE clinic = $1",
            &[&self.clinic],
        )?;
        Ok(row.and_then(|row| row.get(0)))
    }

    fn first_line_delivery(&self) -> Result<Option<DateTime<Utc>>, LedgerError> {
        // Through `steprule_sends_delivered` (clinic, sent_at), in time order.
        let row = self.one(
            "SELECT sent_at FROM steprule_sends
             WHERE clinic = $1 AND status = 'sent' AND sent_at IS NOT NULL AND sink = 'line'
             ORDER BY sent_at LIMIT 1",
            &[&self.clinic],
        )?;
        Ok(row.and_then(|row| row.get(0)))
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
        let clinic = self.clinic.clone();
        self.write(
            "INSERT INTO steprule_insight_chunks
                 (clinic, unit, half_first, last_day, unique_impression, unique_click,
                  unique_media_played, unique_media_played_100, fetched_at, settled)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (clinic, unit, half_first) DO UPDATE SET
                 last_day = excluded.last_day,
                 unique_impression = excluded.unique_impression,
                 unique_click = excluded.unique_click,
                 unique_media_played = excluded.unique_media_played,
                 unique_media_played_100 = excluded.unique_media_played_100,
                 fetched_at = excluded.fetched_at,
                 settled = excluded.settled",
            &[
                &clinic,
                &unit,
                &half_first,
                &last_day,
                &figure_to_sql(figures.unique_impression),
                &figure_to_sql(figures.unique_click),
                &figure_to_sql(figures.unique_media_played),
                &figure_to_sql(figures.unique_media_played_100),
                &fetched_at,
                &settled,
            ],
        )
        .map(drop)
    }

    fn store_followers(
        &mut self,
        day: NaiveDate,
        figures: &FollowerFigures,
        fetched_at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let clinic = self.clinic.clone();
        self.write(
            "INSERT INTO steprule_insight_followers
                 (clinic, day, status, followers, targeted_reaches, blocks, fetched_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (clinic, day) DO UPDATE SET
                 status = excluded.status,
                 followers = excluded.followers,
                 targeted_reaches = excluded.targeted_reaches,
                 blocks = excluded.blocks,
                 fetched_at = excluded.fetched_at",
            &[
                &clinic,
                &day,
                &figures.status.as_str(),
                &figure_to_sql(figures.followers),
                &figure_to_sql(figures.targeted_reaches),
                &figure_to_sql(figures.blocks),
                &fetched_at,
            ],
        )
        .map(drop)
    }

    fn claim_insight_request(
        &mut self,
        endpoint: InsightEndpoint,
        subject: &str,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<InsightClaim, LedgerError> {
        self.claim_request(endpoint, subject, now, limit)
            .map_err(|e| self.fail(e))
    }

    fn settle_insight_request(&mut self, id: i64, outcome: &str) -> Result<(), LedgerError> {
        let clinic = self.clinic.clone();
        self.write(
            "UPDATE steprule_insight_requests SET outcome = $3 WHERE clinic = $1 AND id = $2",
            &[&clinic, &id, &outcome],
        )
        .map(drop)
    }

    fn prune_insight_requests(&mut self, now: DateTime<Utc>) -> Result<usize, LedgerError> {
        let clinic = self.clinic.clone();
        let pruned = self.write(
            "DELETE FROM steprule_insight_requests
             WHERE clinic = $1 AND (at < $2 OR at > $3)",
            &[
                &clinic,
                &(now - Duration::days(REQUEST_LOG_DAYS)),
                &(now + Duration::days(1)),
            ],
        )?;
        Ok(usize::try_from(pruned).unwrap_or(usize::MAX))
    }
}
