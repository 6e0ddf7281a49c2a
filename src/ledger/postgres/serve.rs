//! What `serve` keeps on PostgreSQL, per clinic: events (once per webhook event id, however many
//! `serve` instances receive it), friends' follow and block state, links and linking attempts,
//! tracked tokens, and the aggregation units `run --custom-aggregation` used; and the reads a
//! pass makes of them (links, blocks, a send's tokens, the reactions' sends and events).
//!
//! The same statements as the SQLite ledger's (events.rs, friends.rs, line_state.rs,
//! reactions.rs, insights.rs), with the clinic in every key. Long reads are streamed.

use std::ops::ControlFlow;

use chrono::{DateTime, NaiveDate, Utc};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;

use super::super::events::track_kind;
use super::super::{
    DeliveredSend, EventFilter, EventKind, EventRecord, FriendChange, FriendState, LedgerError,
    LinkAttempts, NewEvent, PatientEvent, PatientLink, SendKey, SendRef, SinkKind, TrackKind,
    Tracked, UnitUse,
};
use super::PgLedger;

/// `at` if PostgreSQL can hold it (4713 BC to 294276 AD); an instant outside that (a
/// lookback from a `--now` far in the past) is no lower bound at all.
pub(super) fn bound(at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    (-4712..=294_275).contains(&at.year()).then_some(at)
}

impl PgLedger {
    /// Stores `event` unless the clinic has one with its id already: whether it was new. An
    /// instance whose insert meets another's uncommitted one waits for that commit, then
    /// finds the event stored (and does nothing of what it means).
    pub(super) fn store_event(
        &mut self,
        event: &NewEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let send = event.send;
        let inserted = self
            .client
            .get_mut()
            .execute(
                "INSERT INTO steprule_events (clinic, id, type, at, received_at, line_user,
                                              patient, sink, step, occurrence, detail)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (clinic, id) DO NOTHING",
                &[
                    &self.clinic,
                    &event.id,
                    &event.kind.as_str(),
                    &event.at,
                    &now,
                    &event.line_user,
                    &event.patient.or(send.map(|s| s.patient.as_str())),
                    &send.map(|s| s.sink.as_str()),
                    &send.map(|s| s.step.as_str()),
                    &send.map(|s| s.occurrence),
                    &event.detail,
                ],
            )
            .map_err(|e| self.fail(e))?;
        Ok(inserted == 1)
    }

    /// Runs `sql` and hands each row to `each`, streamed.
    pub(super) fn stream(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        mut each: impl FnMut(&postgres::Row),
    ) -> Result<(), LedgerError> {
        self.stream_until(sql, params, |row| {
            each(row);
            ControlFlow::Continue(())
        })
    }

    /// Runs `sql` and hands each row to `each` until it has had enough.
    fn stream_until(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        mut each: impl FnMut(&postgres::Row) -> ControlFlow<()>,
    ) -> Result<(), LedgerError> {
        let mut client = self.client.borrow_mut();
        let mut rows = client
            .query_raw(sql, params.iter().copied())
            .map_err(|e| self.fail(e))?;
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            if each(&row).is_break() {
                break;
            }
        }
        Ok(())
    }

    pub(super) fn one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<postgres::Row>, LedgerError> {
        self.client
            .borrow_mut()
            .query_opt(sql, params)
            .map_err(|e| self.fail(e))
    }

    fn write(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, LedgerError> {
        let written = self.client.get_mut().execute(sql, params);
        written.map_err(|e| self.fail(e))
    }

    pub(super) fn all_links(&self, each: &mut dyn FnMut(&str, &str)) -> Result<(), LedgerError> {
        self.stream(
            "SELECT patient, line_user FROM steprule_links WHERE clinic = $1
             ORDER BY patient, linked_at, line_user",
            &[&self.clinic],
            |row| each(row.get(0), row.get(1)),
        )
    }

    pub(super) fn all_blocked(&self, each: &mut dyn FnMut(&str)) -> Result<(), LedgerError> {
        self.stream(
            "SELECT line_user FROM steprule_friends WHERE clinic = $1 AND blocked",
            &[&self.clinic],
            |row| each(row.get(0)),
        )
    }

    pub(super) fn add_token(
        &mut self,
        token: &str,
        kind: TrackKind,
        key: &SendKey<'_>,
        target: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let clinic = self.clinic.clone();
        self.write(
            "INSERT INTO steprule_tracked (clinic, token, kind, sink, patient, step, occurrence,
                                           target, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &clinic,
                &token,
                &kind.as_str(),
                &key.sink.as_str(),
                &key.patient,
                &key.step,
                &key.occurrence,
                &target,
                &now,
            ],
        )
        .map(drop)
    }

    pub(super) fn tokens_of(
        &self,
        key: &SendKey<'_>,
    ) -> Result<Vec<(String, TrackKind, String)>, LedgerError> {
        let mut tokens = Vec::new();
        self.stream(
            "SELECT token, kind, target FROM steprule_tracked
             WHERE clinic = $1 AND sink = $2 AND patient = $3 AND step = $4 AND occurrence = $5",
            &[
                &self.clinic,
                &key.sink.as_str(),
                &key.patient,
                &key.step,
                &key.occurrence,
            ],
            |row| tokens.push((row.get(0), track_kind(row.get(1)), row.get(2))),
        )?;
        Ok(tokens)
    }

    pub(super) fn add_unit_uses(&mut self, uses: &[UnitUse]) -> Result<(), LedgerError> {
        let clinic = self.clinic.clone();
        for used in uses {
            let sends = i64::try_from(used.sends).unwrap_or(i64::MAX);
            self.write(
                "INSERT INTO steprule_unit_uses (clinic, unit, half_first, step, variant,
                                                 first_day, last_day, sends)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (clinic, unit, half_first) DO UPDATE SET
                     first_day = least(steprule_unit_uses.first_day, excluded.first_day),
                     last_day = greatest(steprule_unit_uses.last_day, excluded.last_day),
                     sends = steprule_unit_uses.sends + excluded.sends",
                &[
                    &clinic,
                    &used.unit,
                    &used.half_first,
                    &used.step,
                    &used.variant,
                    &used.first_day,
                    &used.last_day,
                    &sends,
                ],
            )?;
        }
        Ok(())
    }

    pub(super) fn delivered(
        &self,
        since: DateTime<Utc>,
        steps: &[&str],
        each: &mut dyn FnMut(DeliveredSend<'_>),
    ) -> Result<(), LedgerError> {
        if steps.is_empty() {
            return Ok(());
        }
        self.stream(
            "SELECT patient, step, occurrence, sent_at FROM steprule_sends
             WHERE clinic = $1 AND status = 'sent' AND ($2::timestamptz IS NULL OR sent_at >= $2)
               AND sink IN ('line', 'outbox') AND step = ANY($3)
             ORDER BY sent_at",
            &[&self.clinic, &bound(since), &steps],
            |row| {
                if let Some(sent_at) = row.get::<_, Option<DateTime<Utc>>>(3) {
                    each(DeliveredSend {
                        patient: row.get(0),
                        step: row.get(1),
                        occurrence: row.get(2),
                        sent_at,
                    });
                }
            },
        )
    }

    pub(super) fn events_of_kind(
        &self,
        kind: EventKind,
        since: DateTime<Utc>,
        each: &mut dyn FnMut(PatientEvent<'_>),
    ) -> Result<(), LedgerError> {
        self.stream(
            "SELECT at, patient, step, occurrence, detail FROM steprule_events
             WHERE clinic = $1 AND type = $2 AND ($3::timestamptz IS NULL OR at >= $3)
               AND patient IS NOT NULL
             ORDER BY at",
            &[&self.clinic, &kind.as_str(), &bound(since)],
            |row| {
                let step: Option<&str> = row.get(2);
                let occurrence: Option<DateTime<Utc>> = row.get(3);
                each(PatientEvent {
                    patient: row.get(1),
                    at: row.get(0),
                    send: step.zip(occurrence),
                    detail: row.get(4),
                });
            },
        )
    }

    pub(super) fn rollback_batch(&mut self) -> Result<(), LedgerError> {
        self.in_batch = false;
        // Outside a transaction PostgreSQL only warns: safe after a commit that failed.
        let rolled = self.client.get_mut().batch_execute("ROLLBACK");
        rolled.map_err(|e| self.fail(e))
    }

    pub(super) fn answers(&mut self) -> Result<(), LedgerError> {
        let answered = self.client.get_mut().batch_execute("SELECT 1");
        answered.map_err(|e| self.fail(e))
    }

    pub(super) fn set_friend_state(
        &mut self,
        line_user: &str,
        change: FriendChange,
        at: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let clinic = self.clinic.clone();
        // Redeliveries come late and out of order: only a newer event changes the state.
        let written = self.write(
            "INSERT INTO steprule_friends (clinic, line_user, blocked, since)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (clinic, line_user) DO UPDATE
             SET blocked = excluded.blocked, since = excluded.since
             WHERE excluded.since >= steprule_friends.since",
            &[&clinic, &line_user, &(change == FriendChange::Blocked), &at],
        )?;
        Ok(written == 1)
    }

    pub(super) fn friend(&self, line_user: &str) -> Result<Option<FriendState>, LedgerError> {
        let row = self.one(
            "SELECT blocked, since FROM steprule_friends WHERE clinic = $1 AND line_user = $2",
            &[&self.clinic, &line_user],
        )?;
        Ok(row.map(|row| FriendState {
            blocked: row.get(0),
            since: row.get(1),
        }))
    }

    pub(super) fn add_link(
        &mut self,
        line_user: &str,
        patient: &str,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let clinic = self.clinic.clone();
        self.write(
            "INSERT INTO steprule_links (clinic, line_user, patient, linked_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (clinic, line_user) DO UPDATE
             SET patient = excluded.patient, linked_at = excluded.linked_at",
            &[&clinic, &line_user, &patient, &at],
        )
        .map(drop)
    }

    pub(super) fn patient_of(&self, line_user: &str) -> Result<Option<String>, LedgerError> {
        let row = self.one(
            "SELECT patient FROM steprule_links WHERE clinic = $1 AND line_user = $2",
            &[&self.clinic, &line_user],
        )?;
        Ok(row.map(|row| row.get(0)))
    }

    /// The LINE users linked to `patient` with when, latest link last.
    pub fn links_of(&self, patient: &str) -> Result<Vec<PatientLink>, LedgerError> {
        let mut links = Vec::new();
        self.stream(
            "SELECT line_user, linked_at FROM steprule_links WHERE clinic = $1 AND patient = $2
             ORDER BY linked_at, line_user",
            &[&self.clinic, &patient],
            |row| {
                links.push(PatientLink {
                    line_user: row.get(0),
                    linked_at: row.get(1),
                })
            },
        )?;
        Ok(links)
    }

    /// A clinic day as the writer names it (`YYYY-MM-DD`).
    fn day(&self, day: &str) -> Result<NaiveDate, LedgerError> {
        NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| LedgerError::Postgres {
            ledger: self.shown.clone(),
            message: "a linking attempt's day is not a date (YYYY-MM-DD)".into(),
        })
    }

    pub(super) fn failures_on(
        &self,
        line_user: &str,
        day: &str,
    ) -> Result<LinkAttempts, LedgerError> {
        let day = self.day(day)?;
        let row = self.one(
            "SELECT failures FROM steprule_link_failures
             WHERE clinic = $1 AND line_user = $2 AND day = $3",
            &[&self.clinic, &line_user, &day],
        )?;
        let failures: i32 = row.map(|row| row.get(0)).unwrap_or(0);
        Ok(LinkAttempts {
            failures: u32::try_from(failures).unwrap_or(0),
        })
    }

    pub(super) fn add_failure(
        &mut self,
        line_user: &str,
        day: &str,
    ) -> Result<LinkAttempts, LedgerError> {
        let day = self.day(day)?;
        let clinic = self.clinic.clone();
        // Only today's count matters: the table never grows with every day a user tried.
        self.write(
            "DELETE FROM steprule_link_failures
             WHERE clinic = $1 AND line_user = $2 AND day <> $3",
            &[&clinic, &line_user, &day],
        )?;
        let row = self
            .client
            .get_mut()
            .query_one(
                "INSERT INTO steprule_link_failures (clinic, line_user, day, failures)
                 VALUES ($1, $2, $3, 1)
                 ON CONFLICT (clinic, line_user, day)
                 DO UPDATE SET failures = steprule_link_failures.failures + 1
                 RETURNING failures",
                &[&clinic, &line_user, &day],
            )
            .map_err(|e| self.fail(e))?;
        let failures: i32 = row.get(0);
        Ok(LinkAttempts {
            failures: u32::try_from(failures).unwrap_or(0),
        })
    }

    pub(super) fn last_sent_to(
        &self,
        patient: &str,
        at: DateTime<Utc>,
        within: chrono::Duration,
    ) -> Result<Option<SendRef>, LedgerError> {
        let from = at
            .checked_sub_signed(within)
            .unwrap_or(DateTime::UNIX_EPOCH);
        let row = self.one(
            "SELECT sink, step, occurrence FROM steprule_sends
             WHERE clinic = $1 AND sink IN ('line', 'outbox') AND patient = $2
               AND status = 'sent' AND sent_at >= $3 AND sent_at <= $4
             ORDER BY sent_at DESC, occurrence DESC LIMIT 1",
            &[&self.clinic, &patient, &from, &at],
        )?;
        Ok(row.map(|row| SendRef {
            sink: SinkKind::from_column(row.get(0)),
            patient: patient.to_owned(),
            step: row.get(1),
            occurrence: row.get(2),
        }))
    }

    pub(super) fn token(&self, token: &str) -> Result<Option<Tracked>, LedgerError> {
        let row = self.one(
            "SELECT kind, sink, patient, step, occurrence, target FROM steprule_tracked
             WHERE clinic = $1 AND token = $2",
            &[&self.clinic, &token],
        )?;
        Ok(row.map(|row| Tracked {
            kind: track_kind(row.get(0)),
            send: SendRef {
                sink: SinkKind::from_column(row.get(1)),
                patient: row.get(2),
                step: row.get(3),
                occurrence: row.get(4),
            },
            target: row.get(5),
        }))
    }

    /// Events that pass `filter`, oldest first; with `latest`, only the latest that many (read
    /// newest first through the time index, put back in order by the server).
    pub(super) fn stored_events(
        &self,
        filter: &EventFilter,
        latest: Option<u64>,
        each: &mut dyn FnMut(EventRecord) -> ControlFlow<()>,
    ) -> Result<(), LedgerError> {
        let kind = filter.kind.map(EventKind::as_str);
        let since = filter.since.and_then(bound);
        let limit = latest.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        // All of them in index order, streamed; the latest N sorted back by the server.
        let sql = match limit {
            None => {
                "SELECT id, type, at, patient, step, detail FROM steprule_events
                 WHERE clinic = $1 AND ($2::text IS NULL OR type = $2)
                   AND ($3::timestamptz IS NULL OR at >= $3)
                 ORDER BY at, id"
            }
            Some(_) => {
                "SELECT id, type, at, patient, step, detail FROM (
                     SELECT id, type, at, patient, step, detail FROM steprule_events
                     WHERE clinic = $1 AND ($2::text IS NULL OR type = $2)
                       AND ($3::timestamptz IS NULL OR at >= $3)
                     ORDER BY at DESC, id DESC LIMIT $4) AS chosen
                 ORDER BY at, id"
            }
        };
        let all: [&(dyn ToSql + Sync); 3] = [&self.clinic, &kind, &since];
        let latest: [&(dyn ToSql + Sync); 4] = [&self.clinic, &kind, &since, &limit];
        let params: &[&(dyn ToSql + Sync)] = if limit.is_some() { &latest } else { &all };
        self.stream_until(sql, params, |row| {
            // Types this steprule does not know (a newer one wrote them) are passed over.
            let Some(kind) = EventKind::parse(row.get(1)) else {
                return ControlFlow::Continue(());
            };
            each(EventRecord {
                id: row.get(0),
                kind,
                at: row.get(2),
                patient: row.get(3),
                step: row.get(4),
                detail: row.get(5),
            })
        })
    }
}
