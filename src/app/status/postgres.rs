//! `steprule status --ledger postgres://…`: the same counts per step and status, latest
//! problems and one patient's sends as on SQLite, read from one clinic's rows of the shared
//! `steprule_sends`, plus what only a shared ledger has: the open sends live workers hold under
//! their leases. The database is only read: never migrated, never created.
//!
//! Which clinic: `--clinic NAME`, else the rules' (their `clinic`, else the file's name, as
//! `run` keys its rows), else the only clinic in the database; with several, they are listed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::{Client, NoTls};

use crate::app::AppError;
use crate::ledger::postgres::MIGRATIONS;
use crate::ledger::{LedgerError, PatientSend, Problem, SendStatus, SinkKind, StepCounts};
use crate::postgres_url;
use crate::printable::printable;

/// The sends of one clinic on a PostgreSQL ledger.
pub(super) struct PgSends {
    client: Client,
    /// The URL without its password.
    pub shown: String,
    secret: Option<String>,
    pub clinic: String,
}

impl PgSends {
    /// Connects to `url` and settles which clinic to read (see the module's note).
    pub fn open(url: &str, clinic: Option<String>) -> Result<PgSends, AppError> {
        let shown = postgres_url::shown(url);
        let secret = postgres_url::password_in(url);
        let fail = |message: String| {
            AppError::Ledger(LedgerError::Postgres {
                ledger: shown.clone(),
                message: postgres_url::scrub(&message, secret.as_deref()),
            })
        };
        let mut config: postgres::Config = url.parse().map_err(|_| {
            fail(
                "not a PostgreSQL connection URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)"
                    .into(),
            )
        })?;
        config.connect_timeout(Duration::from_secs(30));
        config.application_name("steprule status");
        let mut client = config
            .connect(NoTls)
            .map_err(|e| fail(format!("cannot connect: {}", said(&e))))?;
        let version: Option<i32> = client
            .query_one(
                "SELECT CASE WHEN to_regclass('steprule_ledger_version') IS NULL THEN NULL
                        ELSE (SELECT coalesce(max(version), 0) FROM steprule_ledger_version) END",
                &[],
            )
            .map_err(|e| fail(said(&e)))?
            .get(0);
        let version = usize::try_from(version.unwrap_or(0)).unwrap_or(0);
        if version == 0 {
            return Err(fail(
                "no steprule ledger in this database yet (`steprule run --ledger` makes it)".into(),
            ));
        }
        if version > MIGRATIONS.len() {
            return Err(AppError::Ledger(LedgerError::TooNew {
                path: shown,
                found: version,
                known: MIGRATIONS.len(),
            }));
        }
        let clinic = match clinic {
            Some(clinic) => clinic,
            None => only_clinic(&mut client).map_err(|e| match e {
                Found::Error(e) => fail(said(&e)),
                Found::Several(names) => AppError::Usage(format!(
                    "the ledger {shown} holds several clinics ({}): name one with --clinic \
                     NAME, or give its rules file",
                    names
                        .iter()
                        .map(|n| printable(n).into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            })?,
        };
        Ok(PgSends {
            client,
            shown,
            secret,
            clinic,
        })
    }

    fn fail(&self, error: postgres::Error) -> AppError {
        AppError::Ledger(LedgerError::Postgres {
            ledger: self.shown.clone(),
            message: postgres_url::scrub(&said(&error), self.secret.as_deref()),
        })
    }

    /// Sends per step, sink and status, ordered as SQLite's `step_counts`.
    pub fn step_counts(&mut self) -> Result<Vec<StepCounts>, AppError> {
        let rows = self
            .client
            .query(
                "SELECT sink, step, status, count(*) FROM steprule_sends WHERE clinic = $1
                 GROUP BY sink, step, status ORDER BY sink, step, status",
                &[&self.clinic],
            )
            .map_err(|e| self.fail(e))?;
        rows.iter()
            .map(|row| {
                Ok(StepCounts {
                    sink: SinkKind::from_column(row.get(0)),
                    step: row.get(1),
                    status: self.status(row.get(2))?,
                    count: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
                })
            })
            .collect()
    }

    /// The latest `limit` sends that failed, are held or expired, newest first.
    pub fn latest_problems(&mut self, limit: usize) -> Result<Vec<Problem>, AppError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client
            .query(
                "SELECT sink, patient, step, status, due_at, updated_at, last_error
                 FROM steprule_sends
                 WHERE clinic = $1 AND problem IN ('failed', 'held', 'expired')
                 ORDER BY problem_at DESC LIMIT $2",
                &[&self.clinic, &limit],
            )
            .map_err(|e| self.fail(e))?;
        rows.iter()
            .map(|row| {
                Ok(Problem {
                    sink: SinkKind::from_column(row.get(0)),
                    patient: row.get(1),
                    step: row.get(2),
                    status: self.status(row.get(3))?,
                    due_at: row.get(4),
                    updated_at: row.get(5),
                    reason: row.get(6),
                })
            })
            .collect()
    }

    /// Every send to `patient`, as SQLite's `sends_to`.
    pub fn sends_to(&mut self, patient: &str) -> Result<Vec<PatientSend>, AppError> {
        let rows = self
            .client
            .query(
                "SELECT sink, step, occurrence, status, due_at, sent_at, attempts, last_error,
                        note, expires_at
                 FROM steprule_sends WHERE clinic = $1 AND patient = $2
                 ORDER BY occurrence, step, sink",
                &[&self.clinic, &patient],
            )
            .map_err(|e| self.fail(e))?;
        rows.iter()
            .map(|row| {
                Ok(PatientSend {
                    sink: SinkKind::from_column(row.get(0)),
                    step: row.get(1),
                    occurrence: Some(row.get(2)),
                    status: self.status(row.get(3))?,
                    due_at: Some(row.get(4)),
                    sent_at: row.get(5),
                    attempts: u32::try_from(row.get::<_, i64>(6)).unwrap_or(u32::MAX),
                    reason: row.get(7),
                    note: row.get(8),
                    expires_at: Some(row.get(9)),
                })
            })
            .collect()
    }

    /// The open sends each worker holds under a live lease (the database's clock), and when
    /// the last of them runs out.
    pub fn claimed(&mut self) -> Result<Vec<(String, u64, DateTime<Utc>)>, AppError> {
        let rows = self
            .client
            .query(
                "SELECT claimed_by, count(*), max(lease_until) FROM steprule_sends
                 WHERE clinic = $1 AND status IN ('pending', 'held', 'blocked')
                   AND claimed_by IS NOT NULL AND lease_until > clock_timestamp()
                 GROUP BY claimed_by ORDER BY claimed_by",
                &[&self.clinic],
            )
            .map_err(|e| self.fail(e))?;
        Ok(rows
            .iter()
            .map(|row| {
                let count = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
                (row.get(0), count, row.get(2))
            })
            .collect())
    }

    fn status(&self, text: &str) -> Result<SendStatus, AppError> {
        SendStatus::parse(text).map_err(|e| {
            AppError::Ledger(LedgerError::UnknownStatus {
                path: self.shown.clone(),
                status: e.0,
            })
        })
    }
}

/// PostgreSQL's own words (the client's `Display` says only "db error" for the server's).
fn said(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => error.to_string(),
    }
}

enum Found {
    Error(postgres::Error),
    Several(Vec<String>),
}

/// The one clinic with sends in the ledger (or none yet: an empty name, whose rows are none).
fn only_clinic(client: &mut Client) -> Result<String, Found> {
    let rows = client
        .query(
            // A few names are enough to choose from; a thousand clinics are not listed.
            "SELECT DISTINCT clinic FROM steprule_sends ORDER BY clinic LIMIT 20",
            &[],
        )
        .map_err(Found::Error)?;
    let mut names: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    match names.len() {
        0 => Ok(String::new()),
        1 => Ok(names.remove(0)),
        _ => Err(Found::Several(names)),
    }
}
