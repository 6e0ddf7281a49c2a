//! The ledger: one row per (patient, step, occurrence), written as `pending` with its retry key
//! before a message leaves and marked after LINE answers, so that a rerun, a crash or an outage
//! never sends a message twice and never loses one. SQLite (bundled) in WAL mode.

mod lock;

pub use lock::{LedgerLock, LockError};

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension};

/// Where a send stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SendStatus {
    /// Claimed and about to go out, or interrupted: the next run retries it with the same key.
    Pending,
    Sent,
    /// LINE refused it for good (e.g. 400): not retried.
    Failed,
    /// Not delivered before it stopped being sendable.
    Expired,
    /// Could not be prepared (e.g. the template failed for this patient).
    Skipped,
}

impl SendStatus {
    pub const ALL: [SendStatus; 5] = [
        SendStatus::Pending,
        SendStatus::Sent,
        SendStatus::Failed,
        SendStatus::Expired,
        SendStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SendStatus::Pending => "pending",
            SendStatus::Sent => "sent",
            SendStatus::Failed => "failed",
            SendStatus::Expired => "expired",
            SendStatus::Skipped => "skipped",
        }
    }

    fn parse(text: &str) -> SendStatus {
        SendStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .unwrap_or(SendStatus::Pending)
    }
}

/// What identifies a send: the same patient, step and occurrence is the same message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendKey<'a> {
    pub patient: &'a str,
    pub step: &'a str,
    pub occurrence: DateTime<Utc>,
}

/// What is recorded with a new send.
#[derive(Debug, Clone)]
pub struct SendDetails<'a> {
    pub template: &'a str,
    pub variant: Option<&'a str>,
    pub due_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The answer to "may I send this?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time: a new pending row with this retry key.
    New { retry_key: String },
    /// A pending row from an earlier, interrupted run: retry with the same key.
    Resume { retry_key: String, attempts: u32 },
    /// Already settled; nothing to do.
    Done(SendStatus),
}

/// A send that went out: which step, which occurrence, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRow {
    pub step: String,
    pub occurrence: DateTime<Utc>,
    pub sent_at: DateTime<Utc>,
}

/// One row, as `report` and the tests read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub patient: String,
    pub step: String,
    pub occurrence: String,
    pub variant: Option<String>,
    pub template: String,
    pub status: SendStatus,
    pub retry_key: String,
    pub attempts: u32,
    pub line_request_id: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {message}")]
    Open { path: String, message: String },
    #[error("ledger: {0}")]
    Sql(#[from] rusqlite::Error),
}

const MIGRATIONS: &[&str] = &[
    // 1: the sends table.
    "CREATE TABLE sends (
        patient         TEXT NOT NULL,
        step            TEXT NOT NULL,
        occurrence      TEXT NOT NULL,
        variant         TEXT,
        template        TEXT NOT NULL,
        status          TEXT NOT NULL CHECK (status IN ('pending','sent','failed','expired','skipped')),
        retry_key       TEXT NOT NULL UNIQUE,
        attempts        INTEGER NOT NULL DEFAULT 0,
        due_at          TEXT NOT NULL,
        expires_at      TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        sent_at         TEXT,
        line_request_id TEXT,
        last_error      TEXT,
        PRIMARY KEY (patient, step, occurrence)
    );
    CREATE INDEX sends_status ON sends (status);",
];

/// The embedded SQLite ledger.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Ledger {
    /// Opens (creating and migrating as needed) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let fail = |message: String| LedgerError::Open {
            path: path.display().to_string(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        }
        let conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        // WAL: readers (report) never block the run; NORMAL: a killed process loses nothing
        // committed (only a power cut could lose the last transactions).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut ledger = Ledger {
            conn,
            path: path.to_owned(),
        };
        ledger.migrate()?;
        Ok(ledger)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&mut self) -> Result<(), LedgerError> {
        let version: usize = self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))?;
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", index + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Records a send as pending before it goes out, or says what became of it before.
    pub fn claim(
        &mut self,
        key: &SendKey<'_>,
        details: &SendDetails<'_>,
        now: DateTime<Utc>,
    ) -> Result<Claim, LedgerError> {
        let occurrence = stamp(key.occurrence);
        let retry_key = uuid::Uuid::new_v4().to_string();
        let inserted = self.conn.execute(
            "INSERT INTO sends (patient, step, occurrence, variant, template, status, retry_key,
                                attempts, due_at, expires_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, 0, ?7, ?8, ?9, ?9)
             ON CONFLICT (patient, step, occurrence) DO NOTHING",
            params![
                key.patient,
                key.step,
                occurrence,
                details.variant,
                details.template,
                retry_key,
                stamp(details.due_at),
                stamp(details.expires_at),
                stamp(now),
            ],
        )?;
        if inserted == 1 {
            return Ok(Claim::New { retry_key });
        }
        let (status, retry_key, attempts): (String, String, u32) = self.conn.query_row(
            "SELECT status, retry_key, attempts FROM sends
             WHERE patient = ?1 AND step = ?2 AND occurrence = ?3",
            params![key.patient, key.step, occurrence],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        Ok(match SendStatus::parse(&status) {
            SendStatus::Pending => Claim::Resume {
                retry_key,
                attempts,
            },
            done => Claim::Done(done),
        })
    }

    /// Counts an attempt (before the request goes out).
    pub fn attempt(&mut self, retry_key: &str, now: DateTime<Utc>) -> Result<(), LedgerError> {
        self.conn.execute(
            "UPDATE sends SET attempts = attempts + 1, updated_at = ?2 WHERE retry_key = ?1",
            params![retry_key, stamp(now)],
        )?;
        Ok(())
    }

    pub fn mark_sent(
        &mut self,
        retry_key: &str,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn.execute(
            "UPDATE sends SET status = 'sent', sent_at = ?2, updated_at = ?2, line_request_id = ?3,
                              last_error = NULL
             WHERE retry_key = ?1",
            params![retry_key, stamp(now), request_id],
        )?;
        Ok(())
    }

    /// Settles a row as failed, expired or skipped, with the reason.
    pub fn mark(
        &mut self,
        retry_key: &str,
        status: SendStatus,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn.execute(
            "UPDATE sends SET status = ?2, last_error = ?3, updated_at = ?4 WHERE retry_key = ?1",
            params![retry_key, status.as_str(), error, stamp(now)],
        )?;
        Ok(())
    }

    /// Leaves a row pending for the next run, remembering why this one gave up.
    pub fn retry_later(
        &mut self,
        retry_key: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.mark(retry_key, SendStatus::Pending, error, now)
    }

    /// Pending rows whose time has passed: expired, with the last error kept.
    pub fn expire_pending(&mut self, now: DateTime<Utc>) -> Result<usize, LedgerError> {
        Ok(self.conn.execute(
            "UPDATE sends SET status = 'expired', updated_at = ?1
             WHERE status = 'pending' AND expires_at <= ?1",
            params![stamp(now)],
        )?)
    }

    /// What went out to a patient that can still matter at `now`: sends that would otherwise
    /// be proposed again (not yet expired), and sends of the last week (they count toward the
    /// cap).
    pub fn sent_to(&self, patient: &str, now: DateTime<Utc>) -> Result<Vec<SentRow>, LedgerError> {
        let week_ago = now - chrono::Duration::days(8);
        let mut statement = self.conn.prepare_cached(
            "SELECT step, occurrence, sent_at FROM sends
             WHERE patient = ?1 AND status = 'sent' AND (expires_at > ?2 OR sent_at >= ?3)",
        )?;
        let rows = statement.query_map(params![patient, stamp(now), stamp(week_ago)], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
            ))
        })?;
        let parse = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .ok()
        };
        let mut sent = Vec::new();
        for row in rows {
            let (step, occurrence, sent_at) = row?;
            if let (Some(occurrence), Some(sent_at)) =
                (parse(&occurrence), sent_at.as_deref().and_then(parse))
            {
                sent.push(SentRow {
                    step,
                    occurrence,
                    sent_at,
                });
            }
        }
        Ok(sent)
    }

    /// Pending rows, for the outbox to recognise what it already wrote.
    pub fn pending_keys(&self) -> Result<Vec<String>, LedgerError> {
        let mut statement = self
            .conn
            .prepare("SELECT retry_key FROM sends WHERE status = 'pending'")?;
        let keys = statement
            .query_map([], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(keys)
    }

    pub fn status_counts(&self) -> Result<Vec<(SendStatus, u64)>, LedgerError> {
        let mut statement = self
            .conn
            .prepare("SELECT status, COUNT(*) FROM sends GROUP BY status")?;
        let mut counts = statement
            .query_map([], |row| {
                Ok((SendStatus::parse(&row.get::<_, String>(0)?), row.get(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        counts.sort();
        Ok(counts)
    }

    pub fn row(&self, key: &SendKey<'_>) -> Result<Option<LedgerRow>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT patient, step, occurrence, variant, template, status, retry_key, attempts,
                        line_request_id, last_error
                 FROM sends WHERE patient = ?1 AND step = ?2 AND occurrence = ?3",
                params![key.patient, key.step, stamp(key.occurrence)],
                |row| {
                    Ok(LedgerRow {
                        patient: row.get(0)?,
                        step: row.get(1)?,
                        occurrence: row.get(2)?,
                        variant: row.get(3)?,
                        template: row.get(4)?,
                        status: SendStatus::parse(&row.get::<_, String>(5)?),
                        retry_key: row.get(6)?,
                        attempts: row.get(7)?,
                        line_request_id: row.get(8)?,
                        last_error: row.get(9)?,
                    })
                },
            )
            .optional()?)
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

    fn key(patient: &str) -> SendKey<'_> {
        SendKey {
            patient,
            step: "thanks",
            occurrence: at("2026-11-21T01:00:00Z"),
        }
    }

    const DETAILS: SendDetails<'static> = SendDetails {
        template: "thanks",
        variant: None,
        due_at: DateTime::UNIX_EPOCH,
        expires_at: DateTime::UNIX_EPOCH,
    };

    #[test]
    fn a_send_is_claimed_once_then_resumed_with_the_same_key_until_settled() {
        let dir = tempfile::tempdir().unwrap();
        let now = at("2026-11-21T01:00:00Z");
        let mut ledger = Ledger::open(&dir.path().join("nested/ledger.db")).unwrap();
        let Claim::New { retry_key } = ledger.claim(&key("P1"), &DETAILS, now).unwrap() else {
            panic!("first claim is new")
        };
        ledger.attempt(&retry_key, now).unwrap();
        // The process dies here; the next run finds the row pending with the same key.
        drop(ledger);
        let mut ledger = Ledger::open(&dir.path().join("nested/ledger.db")).unwrap();
        assert_eq!(
            ledger.claim(&key("P1"), &DETAILS, now).unwrap(),
            Claim::Resume {
                retry_key: retry_key.clone(),
                attempts: 1
            }
        );
        ledger.mark_sent(&retry_key, Some("req-1"), now).unwrap();
        assert_eq!(
            ledger.claim(&key("P1"), &DETAILS, now).unwrap(),
            Claim::Done(SendStatus::Sent)
        );
        let row = ledger.row(&key("P1")).unwrap().unwrap();
        assert_eq!(
            (row.status, row.line_request_id.as_deref(), row.attempts),
            (SendStatus::Sent, Some("req-1"), 1)
        );
    }

    #[test]
    fn pending_rows_past_their_expiry_become_expired() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        let details = SendDetails {
            expires_at: at("2026-11-22T01:00:00Z"),
            ..DETAILS
        };
        let now = at("2026-11-21T01:00:00Z");
        ledger.claim(&key("P1"), &details, now).unwrap();
        assert_eq!(ledger.expire_pending(now).unwrap(), 0);
        assert_eq!(
            ledger.expire_pending(at("2026-11-22T01:00:00Z")).unwrap(),
            1
        );
        assert_eq!(ledger.status_counts().unwrap(), [(SendStatus::Expired, 1)]);
    }

    #[test]
    fn migrations_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        Ledger::open(&path).unwrap();
        let ledger = Ledger::open(&path).unwrap();
        let version: usize = ledger
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
    }
}
