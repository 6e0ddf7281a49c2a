//! What the ledger says of one send: where it went ([`SinkKind`]), how it stands
//! ([`SendStatus`]), its key, and the answers of claiming and settling it. Shared by the SQLite
//! and PostgreSQL ledgers.

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};

use super::error::UnknownStatus;

/// Where a send went. A send counts as delivered only for its own sink: an outbox (or
/// `--dry-run`) send never stands in for a LINE delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SinkKind {
    Line,
    Outbox,
}

impl SinkKind {
    /// The sink a `sink` column names (its CHECK constraint allows only these two).
    pub(crate) fn from_column(text: &str) -> SinkKind {
        if text == "outbox" {
            SinkKind::Outbox
        } else {
            SinkKind::Line
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Line => "line",
            SinkKind::Outbox => "outbox",
        }
    }
}

/// Where a send stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SendStatus {
    /// Claimed and about to go out, or interrupted: the next run retries it with the same key.
    Pending,
    /// Its template failed for this patient's data: every run tries again until it renders
    /// (the data was fixed) or the send expires.
    Held,
    /// Came due while the patient had blocked the account: not pushed, and not a failure. It
    /// goes out if they follow again before it expires.
    Blocked,
    Sent,
    /// Refused for good (LINE's 4xx, or a rendered message over LINE's limits): not retried.
    Failed,
    /// Not delivered before it stopped being sendable.
    Expired,
    /// Deliberately not sent.
    Skipped,
}

impl SendStatus {
    pub const ALL: [SendStatus; 7] = [
        SendStatus::Pending,
        SendStatus::Held,
        SendStatus::Blocked,
        SendStatus::Sent,
        SendStatus::Failed,
        SendStatus::Expired,
        SendStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SendStatus::Pending => "pending",
            SendStatus::Held => "held",
            SendStatus::Blocked => "blocked",
            SendStatus::Sent => "sent",
            SendStatus::Failed => "failed",
            SendStatus::Expired => "expired",
            SendStatus::Skipped => "skipped",
        }
    }

    /// The status named `text`; an unknown one is an error, never a guess (a guess of
    /// `pending` would send again).
    pub fn parse(text: &str) -> Result<SendStatus, UnknownStatus> {
        SendStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_owned()))
    }
}

impl FromSql for SendStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        SendStatus::parse(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// What identifies a send: the same sink, patient, step and occurrence is the same message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendKey<'a> {
    pub sink: SinkKind,
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
    /// For the outbox: its length when the send is claimed.
    pub outbox_from: Option<u64>,
}

/// The answer to "may I send this?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time: a new pending row with this retry key.
    New { retry_key: String },
    /// A pending row from an earlier, interrupted run, or a held one: retry with the same key.
    Resume { retry_key: String, attempts: u32 },
    /// Already settled; nothing to do.
    Done(SendStatus),
    /// Another worker on the same (shared) ledger holds it: its lease is live, or its claim
    /// or settlement is being written. Not this worker's to send.
    Taken,
}

/// How a claimed send ended in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The sink took it. `note` records anything unusual about the answer.
    Sent {
        request_id: Option<String>,
        note: Option<String>,
    },
    Failed(String),
    Expired(String),
    /// Still pending; the next run retries it with the same key.
    RetryLater(String),
    /// The template failed for this patient's data; retried by later runs.
    Held(String),
    /// The patient has blocked the account: not pushed; later runs look again.
    Blocked,
    /// Deliberately not sent, for this reason (e.g. "before start"); never retried.
    Skipped(String),
}

impl Settlement {
    pub fn status(&self) -> SendStatus {
        match self {
            Settlement::Sent { .. } => SendStatus::Sent,
            Settlement::Failed(_) => SendStatus::Failed,
            Settlement::Expired(_) => SendStatus::Expired,
            Settlement::RetryLater(_) => SendStatus::Pending,
            Settlement::Held(_) => SendStatus::Held,
            Settlement::Blocked => SendStatus::Blocked,
            Settlement::Skipped(_) => SendStatus::Skipped,
        }
    }
}

/// The outbox's open rows: their retry keys, and the outbox length before which none of their
/// lines can be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingInOutbox {
    pub keys: Vec<String>,
    pub from: u64,
}

/// A send that went out and still matters at a run's `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentSend<'a> {
    pub patient: &'a str,
    pub step: &'a str,
    pub occurrence: DateTime<Utc>,
    pub sent_at: DateTime<Utc>,
}
