//! LINE's statistics in the ledger (migration 8): which aggregation units `run` used, LINE's
//! answers per unit and half-month, and the account's friends per day. The log of requests
//! that LINE's hourly limit is counted on is `insight_log.rs`.
//!
//! Days are LINE's days (Japan time) as `YYYY-MM-DD`; a half-month is named by its first day.
//! The ledger only stores and reads them: which half-months exist, and when an answer is final,
//! is `line::insight`'s to say.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, OptionalExtension};

use super::{from_unix, parse_stamp, stamp, Ledger, LedgerError};

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
        let first: Option<i64> = self
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
        Ok(first.and_then(from_unix))
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
                expires_at: at(when) + chrono::Duration::days(1),
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
}
