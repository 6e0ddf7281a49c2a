//! LINE's statistics in the ledger (migration 7): which aggregation units `run` used, LINE's
//! answers per unit and half-month, the account's friends per day, and the log of requests
//! to LINE's insight endpoints that LINE's hourly limit is counted on.
//!
//! Days are LINE's days (Japan time) as `YYYY-MM-DD`; a half-month is named by its first day.
//! The ledger only stores and reads them: which half-months exist, and when an answer is final,
//! is `line::insight`'s to say.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::events::event_stamp;
use super::{parse_stamp, stamp, Ledger, LedgerError};

/// One arm's pushes under one aggregation unit in one half-month, as a run adds them up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitUse {
    pub unit: String,
    pub half_first: NaiveDate,
    pub step: String,
    pub variant: Option<String>,
    /// The first and last day (Japan time) a push under the unit was delivered.
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub sends: u64,
}

/// LINE's overview of a unit's messages: unique users who opened them, tapped a URL in them,
/// started a video or audio, played one to the end. `None` is a figure LINE withheld (fewer
/// than 20 users): never 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnitFigures {
    pub unique_impression: Option<u64>,
    pub unique_click: Option<u64>,
    pub unique_media_played: Option<u64>,
    pub unique_media_played_100: Option<u64>,
}

/// A cached answer for one unit and half-month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedHalf {
    /// The last day the answer covers: the half-month's, or an earlier one when it was asked
    /// for before the half-month ended.
    pub last_day: NaiveDate,
    pub figures: UnitFigures,
    pub fetched_at: DateTime<Utc>,
    /// Fetched long enough after the half-month's end that it no longer changes.
    pub settled: bool,
}

/// A unit used in a half-month, with LINE's answer for it when one is cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitHalf {
    pub unit: String,
    pub half_first: NaiveDate,
    pub step: String,
    pub variant: Option<String>,
    pub last_day: NaiveDate,
    pub sends: u64,
    pub cached: Option<CachedHalf>,
}

/// Where LINE's counting of the account's friends stood for a day (`status` of LINE's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerStatus {
    Ready,
    /// Not counted yet: asked again by a later fetch.
    Unready,
    /// LINE has no figures for that day (before the account existed, or too long ago).
    OutOfService,
}

impl FollowerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FollowerStatus::Ready => "ready",
            FollowerStatus::Unready => "unready",
            FollowerStatus::OutOfService => "out_of_service",
        }
    }

    pub fn parse(text: &str) -> Option<FollowerStatus> {
        [
            FollowerStatus::Ready,
            FollowerStatus::Unready,
            FollowerStatus::OutOfService,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// The account's friends on one day: everyone who added it (`followers`), those a message can
/// reach (`targeted_reaches`) and those who blocked it (`blocks`), all counted up to that day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFigures {
    pub status: FollowerStatus,
    pub followers: Option<u64>,
    pub targeted_reaches: Option<u64>,
    pub blocks: Option<u64>,
}

/// A LINE insight endpoint, each with its own hourly limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InsightEndpoint {
    /// `/v2/bot/insight/message/event/aggregation`: a unit's figures.
    Aggregation,
    /// `/v2/bot/insight/followers`: the account's friends on a day.
    Followers,
}

impl InsightEndpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            InsightEndpoint::Aggregation => "aggregation",
            InsightEndpoint::Followers => "followers",
        }
    }
}

/// One request to an insight endpoint, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub endpoint: String,
    pub at: DateTime<Utc>,
    /// What was asked (the unit and days, or the day).
    pub asked: String,
    /// `ok`, what went wrong, or nothing while the request is out (or its process died).
    pub outcome: Option<String>,
}

/// The answer to "may I ask LINE?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsightClaim {
    /// Yes: the request is logged under this id; settle it with its outcome.
    Granted(i64),
    /// The last hour's requests to the endpoint reached the limit.
    Spent,
    /// Another fetch asked for the same thing minutes ago (its request is out, or was
    /// answered): asking again would spend a request on the same answer.
    Taken,
}

/// How long a request for a subject keeps another fetch from asking for it again.
const TAKEN_MINUTES: i64 = 10;

/// How long the request log is kept: long enough to read what went wrong last week.
const REQUEST_LOG_DAYS: i64 = 7;

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// A figure as SQLite stores it (LINE's figures are far below `i64::MAX`; the client refuses
/// larger ones).
fn figure_to_sql(figure: Option<u64>) -> Option<i64> {
    figure.and_then(|f| i64::try_from(f).ok())
}

fn figure_from_sql(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<u64>> {
    Ok(row
        .get::<_, Option<i64>>(index)?
        .and_then(|f| u64::try_from(f).ok()))
}

fn bad_day(index: usize, text: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("not a day: {text}").into(),
    )
}

fn day_at(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<NaiveDate> {
    let text = row.get_ref(index)?.as_str()?;
    parse_day(text).ok_or_else(|| bad_day(index, text))
}

const UNIT_HALVES: &str = "SELECT u.unit, u.half_first, u.step, u.variant, u.last_day, u.sends,
            c.last_day, c.unique_impression, c.unique_click, c.unique_media_played,
            c.unique_media_played_100, c.fetched_at, c.settled
     FROM insight_units AS u
     LEFT JOIN insight_chunks AS c ON c.unit = u.unit AND c.half_first = u.half_first
     WHERE u.half_first >= ?1 AND u.half_first <= ?2
     ORDER BY u.half_first, u.unit";

fn unit_half(row: &rusqlite::Row<'_>) -> rusqlite::Result<UnitHalf> {
    let cached = match row.get_ref(6)?.as_str_or_null()? {
        None => None,
        Some(text) => Some(CachedHalf {
            last_day: parse_day(text).ok_or_else(|| bad_day(6, text))?,
            figures: UnitFigures {
                unique_impression: figure_from_sql(row, 7)?,
                unique_click: figure_from_sql(row, 8)?,
                unique_media_played: figure_from_sql(row, 9)?,
                unique_media_played_100: figure_from_sql(row, 10)?,
            },
            fetched_at: parse_stamp(row.get_ref(11)?.as_str()?).unwrap_or(DateTime::UNIX_EPOCH),
            settled: row.get::<_, i64>(12)? != 0,
        }),
    };
    Ok(UnitHalf {
        unit: row.get(0)?,
        half_first: day_at(row, 1)?,
        step: row.get(2)?,
        variant: row.get(3)?,
        last_day: day_at(row, 4)?,
        sends: u64::try_from(row.get::<_, i64>(5)?).unwrap_or(0),
        cached,
    })
}

impl Ledger {
    /// Adds a run's uses of aggregation units (in the run's open transaction, with the sends
    /// they count). A unit name two arms share keeps the arm it was first recorded with.
    pub fn record_unit_uses(&mut self, uses: &[UnitUse]) -> Result<(), LedgerError> {
        let run = || -> rusqlite::Result<()> {
            let mut upsert = self.conn.prepare_cached(
                "INSERT INTO insight_units (unit, half_first, step, variant, first_day, last_day,
                                            sends)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (unit, half_first) DO UPDATE SET
                     first_day = min(first_day, excluded.first_day),
                     last_day = max(last_day, excluded.last_day),
                     sends = sends + excluded.sends",
            )?;
            for used in uses {
                upsert.execute(params![
                    used.unit,
                    day_text(used.half_first),
                    used.step,
                    used.variant,
                    day_text(used.first_day),
                    day_text(used.last_day),
                    i64::try_from(used.sends).unwrap_or(i64::MAX),
                ])?;
            }
            Ok(())
        };
        run().map_err(|e| self.fail(e))
    }

    /// Every unit used in a half-month starting from `first` to `last` (both half-months'
    /// first days), with LINE's cached answer, in half-month then unit order. One query over
    /// the small units table.
    pub fn unit_halves(
        &self,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<UnitHalf>, LedgerError> {
        let run = || -> rusqlite::Result<Vec<UnitHalf>> {
            let mut select = self.conn.prepare(UNIT_HALVES)?;
            let rows = select.query_map(params![day_text(first), day_text(last)], unit_half)?;
            rows.collect()
        };
        run().map_err(|e| self.fail(e))
    }

    /// The first day any unit was used, if any was.
    pub fn first_unit_day(&self) -> Result<Option<NaiveDate>, LedgerError> {
        let first: Option<String> = self
            .conn
            .query_row("SELECT min(first_day) FROM insight_units", [], |row| {
                row.get(0)
            })
            .map_err(|e| self.fail(e))?;
        Ok(first.as_deref().and_then(parse_day))
    }

    /// The first delivery through LINE, if any (the delivered sends' index, in time order).
    pub fn first_line_delivery(&self) -> Result<Option<DateTime<Utc>>, LedgerError> {
        let first: Option<String> = self
            .conn
            .query_row(
                "SELECT sent_at FROM sends INDEXED BY sends_delivered
                 WHERE status = 'sent' AND sent_at IS NOT NULL AND sink = 'line'
                 ORDER BY sent_at LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.fail(e))?;
        Ok(first.as_deref().and_then(parse_stamp))
    }

    /// Stores LINE's answer for `unit` in the half-month starting `half_first`, covering days
    /// up to `last_day`, in place of any earlier one.
    pub fn store_unit_figures(
        &mut self,
        unit: &str,
        half_first: NaiveDate,
        last_day: NaiveDate,
        figures: &UnitFigures,
        fetched_at: DateTime<Utc>,
        settled: bool,
    ) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO insight_chunks
                     (unit, half_first, last_day, unique_impression, unique_click,
                      unique_media_played, unique_media_played_100, fetched_at, settled)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    unit,
                    day_text(half_first),
                    day_text(last_day),
                    figure_to_sql(figures.unique_impression),
                    figure_to_sql(figures.unique_click),
                    figure_to_sql(figures.unique_media_played),
                    figure_to_sql(figures.unique_media_played_100),
                    stamp(fetched_at),
                    i64::from(settled),
                ],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// The account's cached friends per day from `first` to `last`, oldest first.
    pub fn followers(
        &self,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<(NaiveDate, FollowerFigures)>, LedgerError> {
        let run = || -> rusqlite::Result<Vec<(NaiveDate, FollowerFigures)>> {
            let mut select = self.conn.prepare(
                "SELECT day, status, followers, targeted_reaches, blocks FROM insight_followers
                 WHERE day >= ?1 AND day <= ?2 ORDER BY day",
            )?;
            let rows = select.query_map(params![day_text(first), day_text(last)], |row| {
                let status = row.get_ref(1)?.as_str()?;
                Ok((
                    day_at(row, 0)?,
                    FollowerFigures {
                        // Only this module writes the column, with these three words.
                        status: FollowerStatus::parse(status).unwrap_or(FollowerStatus::Unready),
                        followers: figure_from_sql(row, 2)?,
                        targeted_reaches: figure_from_sql(row, 3)?,
                        blocks: figure_from_sql(row, 4)?,
                    },
                ))
            })?;
            rows.collect()
        };
        run().map_err(|e| self.fail(e))
    }

    /// Stores LINE's answer about the account's friends on `day`.
    pub fn store_followers(
        &mut self,
        day: NaiveDate,
        figures: &FollowerFigures,
        fetched_at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO insight_followers
                     (day, status, followers, targeted_reaches, blocks, fetched_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    day_text(day),
                    figures.status.as_str(),
                    figure_to_sql(figures.followers),
                    figure_to_sql(figures.targeted_reaches),
                    figure_to_sql(figures.blocks),
                    stamp(fetched_at),
                ],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Claims one request to `endpoint` for `subject` at `now` if fewer than `limit` were made
    /// in the hour before, and no other fetch asked for the same subject in the last minutes
    /// (it is out, or was answered): the checks and the claim are one write transaction, so
    /// that two processes never both take the last request, nor spend two on one answer.
    /// Requests logged more than an hour after `now` (a clock set back, a `--now` in the
    /// future) are not counted, so that they cannot hold the budget for ever.
    pub fn claim_insight_request(
        &mut self,
        endpoint: InsightEndpoint,
        subject: &str,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<InsightClaim, LedgerError> {
        let path = self.file.path.clone();
        let fail = |e| LedgerError::from_sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let hour = Duration::hours(1);
        let made: i64 = tx
            .query_row(
                "SELECT count(*) FROM insight_requests
                 WHERE endpoint = ?1 AND at > ?2 AND at <= ?3",
                params![
                    endpoint.as_str(),
                    event_stamp(now - hour),
                    event_stamp(now + hour)
                ],
                |row| row.get(0),
            )
            .map_err(fail)?;
        if made >= i64::from(limit) {
            return Ok(InsightClaim::Spent);
        }
        let taken: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM insight_requests
                                WHERE endpoint = ?1 AND at > ?2 AND at <= ?3 AND subject = ?4
                                  AND (outcome IS NULL OR outcome = 'ok'))",
                params![
                    endpoint.as_str(),
                    event_stamp(now - Duration::minutes(TAKEN_MINUTES)),
                    event_stamp(now + hour),
                    subject
                ],
                |row| row.get(0),
            )
            .map_err(fail)?;
        if taken {
            return Ok(InsightClaim::Taken);
        }
        tx.execute(
            "INSERT INTO insight_requests (endpoint, at, subject) VALUES (?1, ?2, ?3)",
            params![endpoint.as_str(), event_stamp(now), subject],
        )
        .map_err(fail)?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(fail)?;
        Ok(InsightClaim::Granted(id))
    }

    /// Records how a claimed request ended (`ok`, or what went wrong).
    pub fn settle_insight_request(&mut self, id: i64, outcome: &str) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "UPDATE insight_requests SET outcome = ?2 WHERE id = ?1",
                params![id, outcome],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Drops the request log's entries older than a week (or more than a day ahead of `now`).
    pub fn prune_insight_requests(&mut self, now: DateTime<Utc>) -> Result<usize, LedgerError> {
        self.conn
            .execute(
                "DELETE FROM insight_requests WHERE at < ?1 OR at > ?2",
                params![
                    event_stamp(now - Duration::days(REQUEST_LOG_DAYS)),
                    event_stamp(now + Duration::days(1))
                ],
            )
            .map_err(|e| self.fail(e))
    }

    /// The request log from `since` on, oldest first.
    pub fn insight_requests(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<LoggedRequest>, LedgerError> {
        let run = || -> rusqlite::Result<Vec<_>> {
            let mut select = self.conn.prepare(
                "SELECT endpoint, at, subject, outcome FROM insight_requests
                 WHERE at >= ?1 ORDER BY at, id",
            )?;
            let rows = select.query_map(params![event_stamp(since)], |row| {
                Ok(LoggedRequest {
                    endpoint: row.get(0)?,
                    at: parse_stamp(row.get_ref(1)?.as_str()?).unwrap_or(DateTime::UNIX_EPOCH),
                    asked: row.get(2)?,
                    outcome: row.get(3)?,
                })
            })?;
            rows.collect()
        };
        run().map_err(|e| self.fail(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn ledger(dir: &tempfile::TempDir) -> Ledger {
        Ledger::open(&dir.path().join("l.db")).unwrap()
    }

    fn uses(unit: &str, first: &str, last: &str, sends: u64) -> UnitUse {
        UnitUse {
            unit: unit.into(),
            half_first: day("2026-10-01"),
            step: "thanks".into(),
            variant: Some("thanks_a".into()),
            first_day: day(first),
            last_day: day(last),
            sends,
        }
    }

    #[test]
    fn uses_of_a_unit_add_up_per_half_month() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = ledger(&dir);
        ledger
            .record_unit_uses(&[uses("thanks__thanks_a", "2026-10-05", "2026-10-05", 3)])
            .unwrap();
        ledger
            .record_unit_uses(&[
                uses("thanks__thanks_a", "2026-10-02", "2026-10-09", 2),
                uses("other", "2026-10-03", "2026-10-03", 1),
            ])
            .unwrap();
        let halves = ledger
            .unit_halves(day("2026-10-01"), day("2026-10-16"))
            .unwrap();
        assert_eq!(halves.len(), 2);
        assert_eq!(halves[0].unit, "other");
        let thanks = &halves[1];
        assert_eq!((thanks.sends, thanks.last_day), (5, day("2026-10-09")));
        assert_eq!(thanks.variant.as_deref(), Some("thanks_a"));
        assert_eq!(thanks.cached, None);
        assert_eq!(ledger.first_unit_day().unwrap(), Some(day("2026-10-02")));
        // Outside the half-months asked for.
        assert!(ledger
            .unit_halves(day("2026-10-16"), day("2026-11-16"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_stored_answer_replaces_the_one_before_and_keeps_its_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = ledger(&dir);
        ledger
            .record_unit_uses(&[uses("u", "2026-10-05", "2026-10-05", 40)])
            .unwrap();
        let early = UnitFigures {
            unique_impression: None,
            unique_click: None,
            ..UnitFigures::default()
        };
        let (first, fetched) = (day("2026-10-01"), at("2026-10-10T00:00:00Z"));
        ledger
            .store_unit_figures("u", first, day("2026-10-09"), &early, fetched, false)
            .unwrap();
        let later = UnitFigures {
            unique_impression: Some(31),
            unique_click: None,
            unique_media_played: Some(0),
            unique_media_played_100: None,
        };
        let settled_at = at("2026-11-01T00:00:00Z");
        ledger
            .store_unit_figures("u", first, day("2026-10-15"), &later, settled_at, true)
            .unwrap();
        let halves = ledger.unit_halves(first, first).unwrap();
        assert_eq!(
            halves[0].cached,
            Some(CachedHalf {
                last_day: day("2026-10-15"),
                figures: later,
                fetched_at: settled_at,
                settled: true
            })
        );
    }

    #[test]
    fn the_first_line_delivery_is_found_and_outbox_sends_are_not_it() {
        use crate::ledger::{Claim, SendDetails, SendKey, Settlement, SinkKind};
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = ledger(&dir);
        assert_eq!(ledger.first_line_delivery().unwrap(), None);
        for (sink, when) in [
            (SinkKind::Outbox, "2026-09-01T00:00:00Z"),
            (SinkKind::Line, "2026-10-03T01:00:00Z"),
            (SinkKind::Line, "2026-10-09T01:00:00Z"),
        ] {
            let key = SendKey {
                sink,
                patient: "P1",
                step: "s",
                occurrence: at(when),
            };
            let details = SendDetails {
                template: "s",
                variant: None,
                due_at: at(when),
                expires_at: at(when) + Duration::days(1),
                outbox_from: None,
            };
            let Claim::New { retry_key } = ledger.claim(&key, &details, at(when)).unwrap() else {
                panic!("claimed twice")
            };
            let sent = Settlement::Sent {
                request_id: None,
                note: None,
            };
            ledger.settle(&key, &retry_key, 1, &sent, at(when)).unwrap();
        }
        assert_eq!(
            ledger.first_line_delivery().unwrap(),
            Some(at("2026-10-03T01:00:00Z"))
        );
    }

    #[test]
    fn followers_are_kept_per_day() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = ledger(&dir);
        let ready = FollowerFigures {
            status: FollowerStatus::Ready,
            followers: Some(120),
            targeted_reaches: Some(100),
            blocks: Some(7),
        };
        let unready = FollowerFigures {
            status: FollowerStatus::Unready,
            followers: None,
            targeted_reaches: None,
            blocks: None,
        };
        let now = at("2026-11-02T00:00:00Z");
        ledger
            .store_followers(day("2026-10-31"), &ready, now)
            .unwrap();
        ledger
            .store_followers(day("2026-11-01"), &unready, now)
            .unwrap();
        let found = ledger
            .followers(day("2026-10-01"), day("2026-11-30"))
            .unwrap();
        assert_eq!(
            found,
            [(day("2026-10-31"), ready), (day("2026-11-01"), unready)]
        );
    }

    #[test]
    fn the_hourly_budget_is_a_rolling_hour_per_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = ledger(&dir);
        let aggregation = InsightEndpoint::Aggregation;
        let start = at("2026-11-02T00:00:00Z");
        for i in 0..3 {
            let now = start + Duration::minutes(i * 10);
            let claimed = ledger
                .claim_insight_request(aggregation, &format!("u{i} 20261001"), now, 3)
                .unwrap();
            assert!(matches!(claimed, InsightClaim::Granted(_)));
        }
        let later = start + Duration::minutes(59);
        assert_eq!(
            ledger
                .claim_insight_request(aggregation, "x", later, 3)
                .unwrap(),
            InsightClaim::Spent
        );
        // The other endpoint has its own hour.
        assert!(matches!(
            ledger
                .claim_insight_request(InsightEndpoint::Followers, "20261101", later, 3)
                .unwrap(),
            InsightClaim::Granted(_)
        ));
        // An hour after the first request, one more fits.
        let next = start + Duration::minutes(60) + Duration::milliseconds(1);
        let InsightClaim::Granted(id) = ledger
            .claim_insight_request(aggregation, "y", next, 3)
            .unwrap()
        else {
            panic!("not granted")
        };
        ledger.settle_insight_request(id, "ok").unwrap();
        let log = ledger.insight_requests(start).unwrap();
        assert_eq!(log.len(), 5);
        assert_eq!(log[4].outcome.as_deref(), Some("ok"));
        // A request logged far ahead of the clock does not hold the budget.
        let dir = tempfile::tempdir().unwrap();
        let mut ahead = Ledger::open(&dir.path().join("a.db")).unwrap();
        let future = start + Duration::days(30);
        ahead
            .claim_insight_request(aggregation, "f", future, 1)
            .unwrap();
        assert!(matches!(
            ahead
                .claim_insight_request(aggregation, "now", start, 1)
                .unwrap(),
            InsightClaim::Granted(_)
        ));
        assert_eq!(ahead.prune_insight_requests(start).unwrap(), 1);
    }

    #[test]
    fn what_another_fetch_just_asked_for_is_not_asked_again_unless_it_failed() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = ledger(&dir);
        let aggregation = InsightEndpoint::Aggregation;
        let start = at("2026-11-02T00:00:00Z");
        let claim = |ledger: &mut Ledger, subject: &str, minutes: i64| {
            ledger
                .claim_insight_request(aggregation, subject, start + Duration::minutes(minutes), 60)
                .unwrap()
        };
        let InsightClaim::Granted(out) = claim(&mut ledger, "a", 0) else {
            panic!("not granted")
        };
        // Still out, then answered: taken.
        assert_eq!(claim(&mut ledger, "a", 1), InsightClaim::Taken);
        ledger.settle_insight_request(out, "ok").unwrap();
        assert_eq!(claim(&mut ledger, "a", 2), InsightClaim::Taken);
        // Ten minutes on, a new answer may be asked for.
        assert!(matches!(
            claim(&mut ledger, "a", 11),
            InsightClaim::Granted(_)
        ));
        // A failed request is tried again at once.
        let InsightClaim::Granted(failed) = claim(&mut ledger, "b", 0) else {
            panic!("not granted")
        };
        ledger
            .settle_insight_request(failed, "LINE answered 500")
            .unwrap();
        assert!(matches!(
            claim(&mut ledger, "b", 0),
            InsightClaim::Granted(_)
        ));
    }

    #[test]
    fn two_processes_claiming_at_once_never_exceed_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        drop(Ledger::open(&path).unwrap());
        let now = at("2026-11-02T00:00:00Z");
        let claimers: Vec<_> = (0..4)
            .map(|thread| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut ledger = Ledger::open(&path).unwrap();
                    (0..40)
                        .filter(|i| {
                            let subject = format!("s{thread}-{i}");
                            let claim = ledger
                                .claim_insight_request(
                                    InsightEndpoint::Aggregation,
                                    &subject,
                                    now,
                                    60,
                                )
                                .unwrap();
                            matches!(claim, InsightClaim::Granted(_))
                        })
                        .count()
                })
            })
            .collect();
        let granted: usize = claimers.into_iter().map(|c| c.join().unwrap()).sum();
        assert_eq!(granted, 60);
    }
}
