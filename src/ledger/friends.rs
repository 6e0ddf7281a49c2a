//! LINE friends: who blocked the account, which LINE user is which patient, and how often a
//! LINE user failed to link today (so that patient numbers cannot be guessed).

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::events::event_stamp;
use super::{Ledger, LedgerError};

/// A follow or an unfollow, as LINE reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FriendChange {
    Followed,
    Blocked,
}

/// A LINE user's failed linking attempts on one clinic day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkAttempts {
    pub failures: u32,
}

impl Ledger {
    /// Records that `line_user` followed or blocked the account at `at`, unless an event newer
    /// than `at` already set their state (LINE redelivers late and out of order). Returns
    /// whether the state was written.
    pub fn set_friend(
        &mut self,
        line_user: &str,
        change: FriendChange,
        at: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let blocked = i64::from(change == FriendChange::Blocked);
        self.conn
            .prepare_cached(
                "INSERT INTO line_friends (line_user, blocked, since) VALUES (?1, ?2, ?3)
                 ON CONFLICT (line_user) DO UPDATE SET blocked = excluded.blocked,
                                                       since = excluded.since
                 WHERE excluded.since >= line_friends.since",
            )
            .and_then(|mut upsert| upsert.execute(params![line_user, blocked, event_stamp(at)]))
            .map(|written| written == 1)
            .map_err(|e| self.fail(e))
    }

    /// Whether `line_user` has blocked the account (as of the newest event seen).
    pub fn is_blocked(&self, line_user: &str) -> Result<bool, LedgerError> {
        Ok(self
            .friend_state(line_user)?
            .is_some_and(|state| state.blocked))
    }

    /// Every LINE user who has blocked the account now (read once per run: a set as large as
    /// the blocks, not the patients).
    pub fn blocked_users(&self, mut each: impl FnMut(&str)) -> Result<(), LedgerError> {
        let mut run = || -> rusqlite::Result<()> {
            let mut statement = self.conn.prepare(
                "SELECT line_user FROM line_friends INDEXED BY line_friends_blocked
                 WHERE blocked = 1",
            )?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                each(row.get_ref(0)?.as_str()?);
            }
            Ok(())
        };
        run().map_err(|e| self.fail(e))
    }

    /// Links `line_user` to `patient` (replacing an earlier link of that LINE user).
    pub fn link(
        &mut self,
        line_user: &str,
        patient: &str,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn
            .prepare_cached(
                "INSERT INTO line_links (line_user, patient, linked_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (line_user) DO UPDATE SET patient = excluded.patient,
                                                       linked_at = excluded.linked_at",
            )
            .and_then(|mut upsert| upsert.execute(params![line_user, patient, event_stamp(at)]))
            .map(drop)
            .map_err(|e| self.fail(e))
    }

    /// The patient `line_user` is linked to.
    pub fn linked_patient(&self, line_user: &str) -> Result<Option<String>, LedgerError> {
        self.conn
            .prepare_cached("SELECT patient FROM line_links WHERE line_user = ?1")
            .and_then(|mut select| {
                select
                    .query_row(params![line_user], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| self.fail(e))
    }

    /// Every link as (patient, LINE user), each patient's latest link last, so that a map
    /// filled in this order keeps the latest.
    pub fn links(&self, mut each: impl FnMut(&str, &str)) -> Result<(), LedgerError> {
        let mut run = || -> rusqlite::Result<()> {
            let mut statement = self.conn.prepare(
                "SELECT patient, line_user FROM line_links ORDER BY patient, linked_at, line_user",
            )?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                each(row.get_ref(0)?.as_str()?, row.get_ref(1)?.as_str()?);
            }
            Ok(())
        };
        run().map_err(|e| self.fail(e))
    }

    /// `line_user`'s failed linking attempts on `day` (the clinic's date, `YYYY-MM-DD`).
    pub fn link_attempts(&self, line_user: &str, day: &str) -> Result<LinkAttempts, LedgerError> {
        self.conn
            .prepare_cached("SELECT failures FROM link_failures WHERE line_user = ?1 AND day = ?2")
            .and_then(|mut select| {
                select
                    .query_row(params![line_user, day], |row| row.get::<_, u32>(0))
                    .optional()
            })
            .map(|failures| LinkAttempts {
                failures: failures.unwrap_or(0),
            })
            .map_err(|e| self.fail(e))
    }

    /// Counts one more failed attempt of `line_user` on `day`, forgetting their earlier days
    /// (only today's count matters, and the table must not grow with every day a user tried).
    pub fn add_link_failure(
        &mut self,
        line_user: &str,
        day: &str,
    ) -> Result<LinkAttempts, LedgerError> {
        let run = || -> rusqlite::Result<u32> {
            self.conn
                .prepare_cached("DELETE FROM link_failures WHERE line_user = ?1 AND day <> ?2")?
                .execute(params![line_user, day])?;
            self.conn
                .prepare_cached(
                    "INSERT INTO link_failures (line_user, day, failures) VALUES (?1, ?2, 1)
                     ON CONFLICT (line_user, day) DO UPDATE SET failures = failures + 1
                     RETURNING failures",
                )?
                .query_row(params![line_user, day], |row| row.get(0))
        };
        run()
            .map(|failures| LinkAttempts { failures })
            .map_err(|e| self.fail(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn users_of(ledger: &Ledger, patient: &str) -> Vec<String> {
        let links = ledger.links_of(patient).unwrap();
        links.into_iter().map(|link| link.line_user).collect()
    }

    #[test]
    fn the_newest_follow_or_block_wins_whatever_order_they_arrive_in() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        let blocked = |ledger: &Ledger| {
            let mut users = Vec::new();
            ledger.blocked_users(|u| users.push(u.to_owned())).unwrap();
            users
        };
        assert!(ledger
            .set_friend("U1", FriendChange::Blocked, at("2026-11-25T10:00:00.200Z"))
            .unwrap());
        // A redelivered follow from before the block arrives late: the block stands.
        assert!(!ledger
            .set_friend("U1", FriendChange::Followed, at("2026-11-25T10:00:00.100Z"))
            .unwrap());
        assert!(ledger.is_blocked("U1").unwrap());
        assert_eq!(blocked(&ledger), ["U1"]);
        assert!(ledger
            .set_friend("U1", FriendChange::Followed, at("2026-11-26T08:00:00Z"))
            .unwrap());
        assert!(!ledger.is_blocked("U1").unwrap());
        assert!(blocked(&ledger).is_empty());
        assert!(!ledger.is_blocked("U-unknown").unwrap());
    }

    #[test]
    fn a_link_is_kept_per_line_user_and_found_from_both_sides() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        ledger.link("U1", "P1", at("2026-11-25T10:00:00Z")).unwrap();
        ledger.link("U2", "P1", at("2026-11-25T11:00:00Z")).unwrap();
        ledger.link("U3", "P2", at("2026-11-25T09:00:00Z")).unwrap();
        assert_eq!(ledger.linked_patient("U1").unwrap().as_deref(), Some("P1"));
        assert_eq!(users_of(&ledger, "P1"), ["U1", "U2"]);
        let mut latest = std::collections::HashMap::new();
        ledger
            .links(|patient, user| {
                latest.insert(patient.to_owned(), user.to_owned());
            })
            .unwrap();
        assert_eq!(latest["P1"], "U2");
        assert_eq!(latest["P2"], "U3");
        // Relinking a LINE user moves it.
        ledger.link("U3", "P1", at("2026-11-26T09:00:00Z")).unwrap();
        assert_eq!(users_of(&ledger, "P2"), Vec::<String>::new());
    }

    #[test]
    fn failed_attempts_count_per_day_and_old_days_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        for expected in 1..=6 {
            let attempts = ledger.add_link_failure("U1", "2026-11-25").unwrap();
            assert_eq!(attempts.failures, expected);
        }
        assert_eq!(
            ledger.link_attempts("U2", "2026-11-25").unwrap().failures,
            0
        );
        assert_eq!(
            ledger
                .add_link_failure("U1", "2026-11-26")
                .unwrap()
                .failures,
            1
        );
        assert_eq!(
            ledger.link_attempts("U1", "2026-11-25").unwrap().failures,
            0
        );
    }
}
