//! Why a command could not do its work: one typed error for every command, with its exit code,
//! printed once by the binary (as casey/just does in `src/error.rs`). Commands never print an
//! `error:` line of their own.

use std::path::PathBuf;

use crate::deliver::{LineClientError, OutboxError};
use crate::ledger::{LedgerError, LockError};
use crate::records::RecordsError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The rules file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadRules {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The rules have errors (their diagnostics were printed).
    #[error(
        "{} has errors; run `steprule check {}` and fix them first",
        path.display(),
        path.display()
    )]
    RuleErrors { path: PathBuf },
    /// The patient export could not be read at all.
    #[error(transparent)]
    Patients(#[from] RecordsError),
    /// A patient id that is not in the export.
    #[error("no patient with id `{id}` in {}", file.display())]
    NoSuchPatient { id: String, file: PathBuf },
    /// Arguments that do not fit together or do not parse.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    LineClient(#[from] LineClientError),
    /// LINE refused the channel access token (401) or the channel's access to statistics
    /// (403): every further request would meet the same.
    #[error(
        "{message}: {}; nothing more was asked (what was fetched before is kept)",
        if *status == 401 {
            "the channel access token was refused, check LINE_CHANNEL_ACCESS_TOKEN"
        } else {
            "this channel may not read these statistics (per-unit statistics or insights are \
             not enabled for it, or the token lacks the permission)"
        }
    )]
    LineRefused { status: u16, message: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The exit code for rules with errors.
pub const EXIT_RULE_ERRORS: u8 = 1;
/// The exit code for every other error: usage, I/O, the ledger, the sink.
pub const EXIT_ERROR: u8 = 2;

impl AppError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::RuleErrors { .. } => EXIT_RULE_ERRORS,
            _ => EXIT_ERROR,
        }
    }

    /// Whether this is only a closed pipe (`steprule plan … | head`): not worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, AppError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}
