//! A patient's LINE state read back for people (`status --patient`, `explain`): when each LINE
//! user was linked to them, and whether a LINE user has blocked the account and since when. The
//! run does not use these (it reads every link and block once per pass); they cost one
//! patient's rows through the tables' keys.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{parse_stamp, Ledger, LedgerError};

/// A LINE user linked to a patient. The LINE user id is kept for lookups and never printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientLink {
    pub line_user: String,
    pub linked_at: DateTime<Utc>,
}

/// Whether a LINE user has the account as a friend now, as the newest follow or unfollow said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FriendState {
    pub blocked: bool,
    /// When the newest follow or unfollow happened.
    pub since: DateTime<Utc>,
}

impl Ledger {
    /// The LINE users linked to `patient` with when, latest link last (the one `run` uses).
    pub fn links_of(&self, patient: &str) -> Result<Vec<PatientLink>, LedgerError> {
        let run = || -> rusqlite::Result<Vec<PatientLink>> {
            let mut statement = self.conn.prepare_cached(
                "SELECT line_user, linked_at FROM line_links INDEXED BY line_links_patient
                 WHERE patient = ?1 ORDER BY linked_at, line_user",
            )?;
            let mut rows = statement.query(params![patient])?;
            let mut links = Vec::new();
            while let Some(row) = rows.next()? {
                if let Some(linked_at) = parse_stamp(row.get_ref(1)?.as_str()?) {
                    links.push(PatientLink {
                        line_user: row.get(0)?,
                        linked_at,
                    });
                }
            }
            Ok(links)
        };
        run().map_err(|e| self.fail(e))
    }

    /// What the newest follow or unfollow of `line_user` said; `None` if none was received.
    pub fn friend_state(&self, line_user: &str) -> Result<Option<FriendState>, LedgerError> {
        let found: Option<(i64, String)> = self
            .conn
            .prepare_cached("SELECT blocked, since FROM line_friends WHERE line_user = ?1")
            .and_then(|mut select| {
                select
                    .query_row(params![line_user], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.fail(e))?;
        Ok(found.and_then(|(blocked, since)| {
            Some(FriendState {
                blocked: blocked == 1,
                since: parse_stamp(&since)?,
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::FriendChange;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_patients_links_come_with_their_times_latest_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        ledger.link("U2", "P1", at("2026-11-25T11:00:00Z")).unwrap();
        ledger.link("U1", "P1", at("2026-11-25T10:00:00Z")).unwrap();
        ledger.link("U3", "P2", at("2026-11-25T09:00:00Z")).unwrap();
        let links = ledger.links_of("P1").unwrap();
        let users: Vec<&str> = links.iter().map(|l| l.line_user.as_str()).collect();
        assert_eq!(users, ["U1", "U2"]);
        assert_eq!(links[1].linked_at, at("2026-11-25T11:00:00Z"));
        assert!(ledger.links_of("P9").unwrap().is_empty());
    }

    #[test]
    fn a_friend_state_says_blocked_or_not_and_since_when() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        assert_eq!(ledger.friend_state("U1").unwrap(), None);
        let blocked_at = at("2026-11-25T10:00:00.250Z");
        ledger
            .set_friend("U1", FriendChange::Blocked, blocked_at)
            .unwrap();
        assert_eq!(
            ledger.friend_state("U1").unwrap(),
            Some(FriendState {
                blocked: true,
                since: blocked_at
            })
        );
        let followed_at = at("2026-11-26T08:00:00Z");
        ledger
            .set_friend("U1", FriendChange::Followed, followed_at)
            .unwrap();
        assert_eq!(
            ledger.friend_state("U1").unwrap(),
            Some(FriendState {
                blocked: false,
                since: followed_at
            })
        );
    }
}
