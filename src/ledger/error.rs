//! What can go wrong with the ledger, said so that a clinic's operator knows which file and what
//! to do. SQLite's own words ("file is not a database") name neither.

use std::path::Path;

use rusqlite::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot open the ledger {path}: {message}")]
    Open { path: String, message: String },
    #[error(
        "{path} is not a steprule ledger (not an SQLite database, or encrypted); point --ledger \
         at the ledger, or move this file aside to start a new one"
    )]
    NotALedger { path: String },
    #[error(
        "the ledger {path} is damaged (database disk image is malformed): stop every run, keep a \
         copy, then recover it with `sqlite3 {path} .recover` or restore the last backup"
    )]
    Corrupt { path: String },
    #[error(
        "the disk holding the ledger {path} is full: free some space and run again (what was \
         sent is recorded; pending sends resume with their retry keys)"
    )]
    DiskFull { path: String },
    #[error(
        "the ledger {path} cannot be written (read-only file or file system): check the file's \
         owner and permissions, or give --ledger a writable place"
    )]
    ReadOnly { path: String },
    #[error(
        "the ledger {path} was deleted or replaced while this run was using it; stopped so that \
         nothing is sent twice. Put the ledger back (or restore it) before the next run"
    )]
    Replaced { path: String },
    #[error(
        "the ledger {path} has a send with the unknown status `{status}` (written by a newer \
         steprule?); stopped rather than guess: use the steprule that wrote it"
    )]
    UnknownStatus { path: String, status: String },
    /// A sent row's instant that steprule cannot read (an `occurrence` neither its own form
    /// nor RFC 3339, another instant not seconds of chrono's calendar): without it the pass
    /// cannot tell what was sent when (a cap could be exceeded), so it stops.
    #[error(
        "the ledger {path} has a sent row whose `{column}` is not an instant (edited by \
         hand?); stopped rather than guess: put back the instant it had (an `occurrence` as \
         2026-11-25T09:00:00Z, the other instants as seconds since 1970-01-01 UTC, such as \
         1795597200) or restore the last backup"
    )]
    UnreadableInstant { path: String, column: &'static str },
    /// A send's text instant that the ledger's version 15 could not read as seconds: the
    /// migration stopped and changed nothing (see schema.rs).
    #[error(
        "the ledger {path} could not be brought up to this steprule's version: a send's \
         `{column}` is not an instant (edited by hand?), and nothing was changed; put back the \
         instant it had (as 2026-11-25T09:00:00Z) or restore the last backup, then run again"
    )]
    UnreadableOldInstant { path: String, column: &'static str },
    #[error(
        "the ledger {path} was written by a newer steprule (schema {found}; this one knows up \
         to {known}); use that version"
    )]
    TooNew {
        path: String,
        found: usize,
        known: usize,
    },
    /// A PostgreSQL ledger older than this steprule, opened by a command that only reads
    /// (and so never migrates: a read-only user or a hot standby may read).
    #[error(
        "the ledger {path} is at schema {found} and this steprule reads schema {known}: \
         `steprule run` (or `serve`) of this version migrates it; reading commands never write"
    )]
    Behind {
        path: String,
        found: usize,
        known: usize,
    },
    /// A write failed part-way through the open transaction, which was then rolled back
    /// whole (see `Ledger::abandon_batch`): nothing of it is recorded.
    #[error(
        "ledger {path}: a write failed, so the open batch was rolled back; nothing of it is \
         recorded, and the next run claims its sends anew"
    )]
    RolledBack { path: String },
    #[error("no ledger at {path}; `steprule run` creates it")]
    Missing { path: String },
    /// PostgreSQL's error; `ledger` is the URL without its password.
    #[error("ledger {ledger}: {message}")]
    Postgres { ledger: String, message: String },
    #[error(
        "ledger {ledger}: {what} is not on the PostgreSQL ledger yet; use an SQLite ledger for it"
    )]
    NotOnPostgres { ledger: String, what: &'static str },
    #[error("ledger {path}: {source}")]
    Sql {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
}

/// The column of a sent row whose instant does not read, raised while reading the row.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an instant")]
pub struct UnreadableInstant(pub &'static str);

/// A status text the ledger does not know, raised while reading a row.
#[derive(Debug, thiserror::Error)]
#[error("unknown status `{0}`")]
pub struct UnknownStatus(pub String);

impl LedgerError {
    /// SQLite's error for the ledger at `path`, in the operator's terms.
    pub fn from_sqlite(path: &Path, source: rusqlite::Error) -> LedgerError {
        let path = path.display().to_string();
        if let rusqlite::Error::FromSqlConversionFailure(_, _, inner) = &source {
            if let Some(UnknownStatus(status)) = inner.downcast_ref::<UnknownStatus>() {
                return LedgerError::UnknownStatus {
                    status: status.clone(),
                    path,
                };
            }
            if let Some(UnreadableInstant(column)) = inner.downcast_ref::<UnreadableInstant>() {
                return LedgerError::UnreadableInstant { column, path };
            }
        }
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => LedgerError::NotALedger { path },
            Some(ErrorCode::DatabaseCorrupt) => LedgerError::Corrupt { path },
            Some(ErrorCode::DiskFull) => LedgerError::DiskFull { path },
            Some(ErrorCode::ReadOnly) => LedgerError::ReadOnly { path },
            _ => LedgerError::Sql { path, source },
        }
    }
}
