//! The log of requests to LINE's insight endpoints (migration 8's `insight_requests`): every
//! request is claimed here before it leaves, so that LINE's hourly limit per endpoint is
//! counted across processes, and settled with its outcome, kept a week for reading what went
//! wrong.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, TransactionBehavior};

use super::events::event_stamp;
use super::{parse_stamp, Ledger, LedgerError};

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
pub(super) const TAKEN_MINUTES: i64 = 10;

/// How long the request log is kept: long enough to read what went wrong last week.
pub(super) const REQUEST_LOG_DAYS: i64 = 7;

impl Ledger {
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

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn ledger(dir: &tempfile::TempDir) -> Ledger {
        Ledger::open(&dir.path().join("l.db")).unwrap()
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
