//! The ledger: one row per (sink, patient, step, occurrence), written as `pending` with its
//! retry key before a message leaves and settled after the sink answers, so that a rerun, a
//! crash or an outage never sends a message twice and never loses one. SQLite (bundled) in WAL
//! mode; writes are grouped in transactions by the one owner of the connection (the run).

mod checkpoints_beside;
mod claims;
mod error;
mod event_tail;
mod events;
pub mod file;
mod friends;
mod insight_log;
mod insight_store;
mod insights;
mod instants;
mod line_state;
mod lock;
mod mark_log;
mod mark_order;
mod mark_packs;
mod marks;
mod marks_beside;
pub mod postgres;
mod reactions;
mod read;
mod read_ledger;
mod report_reads;
mod schema;
mod send;
mod sends_beside;
mod settle;
mod store;
mod tuning;

pub use checkpoints_beside::CheckpointNow;
pub use claims::{OutboxClaims, UnwrittenBatch};
pub use error::LedgerError;
pub(crate) use events::event_stamp;
pub use events::{EventFilter, EventKind, EventRecord, NewEvent, SendRef, TrackKind, Tracked};
pub use friends::{FriendChange, LinkAttempts};
pub use insight_log::{InsightClaim, InsightEndpoint, LoggedRequest};
pub use insight_store::InsightLedger;
pub use insights::{CachedHalf, FollowerFigures, FollowerStatus, UnitFigures, UnitHalf, UnitUse};
pub use line_state::{FriendState, PatientLink};
pub use lock::{LedgerLock, LockError};
#[cfg(test)]
pub(crate) use mark_log::make_version_ten;
pub use mark_log::patient_hash;
pub(crate) use mark_log::{hash64, Fnv};
pub use mark_order::{Near, PassPrints};
pub use marks::{MarkPrints, MarkRow, NewMarks};
pub use marks_beside::PrintsBeside;
pub use reactions::{DeliveredSend, PatientEvent};
pub use read::{LedgerRow, PatientSend, Problem, StepCounts, WindowSend};
pub use read_ledger::ReadLedger;
pub use report_reads::ArmKey;
pub use send::{
    Claim, PendingInOutbox, RecentSend, SendDetails, SendKey, SendStatus, Settlement, SinkKind,
};
pub use sends_beside::SendsReader;
#[cfg(test)]
use sends_beside::RECENT_SENDS;
pub use store::{is_postgres_url, LedgerLocation, RunLedger, ServeLedger};
pub(crate) use tuning::configure_sqlite;
pub use tuning::{route_sqlite_memory, Allocator};

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use file::DataFile;
pub(crate) use instants::{from_unix, parse_stamp, stamp, unix};
use instants::{instant, unix_if_readable, unix_or_null};
use schema::MIGRATIONS;

/// The embedded SQLite ledger.
pub struct Ledger {
    conn: Connection,
    file: DataFile,
    in_batch: bool,
    /// The open transaction was rolled back after a write failed part-way through it
    /// ([`Ledger::abandon_batch`]); the next [`Ledger::commit`] fails, so that nothing after
    /// the failure is committed as if the batch were whole.
    abandoned: bool,
    /// Marks set in the open transaction and not yet written (see `marks.rs`).
    marks: std::cell::RefCell<Vec<marks::PendingMark>>,
    /// The thread checkpointing the log beside a pass, once [`Ledger::checkpoint_beside`]
    /// started it.
    checkpoints: Option<checkpoints_beside::CheckpointsBeside>,
}

impl Drop for Ledger {
    /// The thread beside is ended, and the writer's own checkpoints given back, before the
    /// connection closes: its close then checkpoints what the log still holds, as before.
    fn drop(&mut self) {
        if let Some(checkpoints) = self.checkpoints.take() {
            checkpoints.stop(&self.conn);
        }
    }
}

/// Only `run` reads a PostgreSQL ledger so far; to every other command a URL is not a file
/// name to create (nor to print: it may hold a password).
fn refuse_url(path: &Path) -> Result<(), LedgerError> {
    match path.to_str().filter(|p| is_postgres_url(p)) {
        Some(url) => Err(LedgerError::NotOnPostgres {
            ledger: postgres::shown_url(url),
            what: "this command",
        }),
        None => Ok(()),
    }
}

impl Ledger {
    /// Opens (creating and migrating as needed) the ledger at `path`, or where it leads.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        refuse_url(path)?;
        let file = DataFile::open_database(path).map_err(|e| LedgerError::Open {
            path: path.display().to_string(),
            message: file::advice(&e, "--ledger"),
        })?;
        Ledger::open_file(file)
    }

    /// Opens a ledger that must exist already (for `status`).
    pub fn open_existing(path: &Path) -> Result<Ledger, LedgerError> {
        refuse_url(path)?;
        if !path.exists() {
            return Err(LedgerError::Missing {
                path: path.display().to_string(),
            });
        }
        Ledger::open(path)
    }

    fn open_file(file: DataFile) -> Result<Ledger, LedgerError> {
        let fail = |e| LedgerError::from_sqlite(&file.path, e);
        configure_sqlite();
        let conn = Connection::open(&file.path).map_err(fail)?;
        // WAL: readers (status, report) never block the run; NORMAL: a killed process loses
        // nothing committed (only a power cut could lose the last transactions).
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(fail)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(fail)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(fail)?;
        tuning::tune_writer(&conn).map_err(fail)?;
        for companion in ["-wal", "-shm"] {
            file::tighten_if_present(&file::with_suffix(&file.path, companion)).map_err(|e| {
                LedgerError::Open {
                    path: file.path.display().to_string(),
                    message: e.to_string(),
                }
            })?;
        }
        let mut ledger = Ledger {
            conn,
            file,
            in_batch: false,
            abandoned: false,
            marks: std::cell::RefCell::default(),
            checkpoints: None,
        };
        ledger.migrate()?;
        Ok(ledger)
    }

    /// The ledger's real path (symlinks followed).
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// The mode the ledger file had if it was readable by others and has been made private.
    pub fn tightened_from(&self) -> Option<u32> {
        self.file.tightened_from
    }

    fn fail(&self, error: rusqlite::Error) -> LedgerError {
        LedgerError::from_sqlite(&self.file.path, error)
    }

    fn migrate(&mut self) -> Result<(), LedgerError> {
        let version: usize = self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| self.fail(e))?;
        if version > MIGRATIONS.len() {
            return Err(LedgerError::TooNew {
                path: self.file.path.display().to_string(),
                found: version,
                known: MIGRATIONS.len(),
            });
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            let path = self.file.path.clone();
            let fail = |e| LedgerError::from_sqlite(&path, e);
            let tx = self.conn.transaction().map_err(fail)?;
            tx.execute_batch(migration).map_err(|e| {
                match schema::unreadable_instant(index + 1, &e) {
                    Some(column) => LedgerError::UnreadableOldInstant {
                        path: path.display().to_string(),
                        column,
                    },
                    None => fail(e),
                }
            })?;
            if index + 1 == schema::MARK_PRINT_LOG || index + 1 == schema::MARK_PACKS {
                mark_log::fill(&tx).map_err(fail)?;
            }
            if index + 1 == schema::STATUS_CHECK {
                schema::rewrite_status_check(&tx).map_err(fail)?;
            }
            tx.pragma_update(None, "user_version", index + 1)
                .map_err(fail)?;
            tx.commit().map_err(fail)?;
        }
        Ok(())
    }

    /// Fails when the ledger file was deleted or replaced since it was opened: the rows this
    /// run writes would be lost, and the next run would send everything again.
    pub fn check_in_place(&self) -> Result<(), LedgerError> {
        if self.file.still_in_place() {
            Ok(())
        } else {
            Err(LedgerError::Replaced {
                path: self.file.path.display().to_string(),
            })
        }
    }

    /// From now on, the write-ahead log is checkpointed by a thread beside this connection's
    /// writes (see checkpoints_beside.rs), until the ledger is dropped. A ledger on which no
    /// second connection can be opened goes on checkpointing on its writer, as before.
    pub fn checkpoint_beside(&mut self) {
        if self.checkpoints.is_none() {
            self.checkpoints = checkpoints_beside::CheckpointsBeside::start(
                &self.conn,
                &self.file.path,
                checkpoints_beside::BESIDE_FROM,
                checkpoints_beside::WRITER_FROM,
            );
        }
    }

    /// A handle asking the thread beside for a checkpoint now, once
    /// [`Ledger::checkpoint_beside`] started it.
    pub fn checkpoint_now(&self) -> Option<CheckpointNow> {
        self.checkpoints
            .as_ref()
            .map(|checkpoints| checkpoints.asker())
    }

    /// Starts grouping writes in one transaction (until [`Ledger::commit`]).
    pub fn begin(&mut self) -> Result<(), LedgerError> {
        if !self.in_batch {
            self.conn
                .prepare_cached("BEGIN IMMEDIATE")
                .and_then(|mut begin| begin.execute([]))
                .map_err(|e| self.fail(e))?;
            self.in_batch = true;
        }
        Ok(())
    }

    /// Commits the writes since [`Ledger::begin`], after checking the file is still the one
    /// opened.
    pub fn commit(&mut self) -> Result<(), LedgerError> {
        if self.abandoned {
            // A transaction begun since the roll-back goes too: nothing is committed before
            // the failure is said.
            self.abandoned = false;
            self.rollback()?;
            return Err(LedgerError::RolledBack {
                path: self.file.path.display().to_string(),
            });
        }
        if self.in_batch {
            self.write_marks()?;
            self.in_batch = false;
            self.conn
                .prepare_cached("COMMIT")
                .and_then(|mut commit| commit.execute([]))
                .map_err(|e| self.fail(e))?;
        }
        self.check_in_place()
    }

    /// Drops the writes since [`Ledger::begin`] (for `serve`'s writer, whose batch fails
    /// whole: the requests in it are answered with an error and redelivered by LINE).
    /// Also after a failed [`Ledger::commit`], which can leave the transaction open.
    pub fn rollback(&mut self) -> Result<(), LedgerError> {
        self.in_batch = false;
        self.marks.get_mut().clear();
        if !self.conn.is_autocommit() {
            self.conn
                .execute_batch("ROLLBACK")
                .map_err(|e| self.fail(e))?;
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
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO sends (sink, patient, step, occurrence, variant, template, status,
                                    retry_key, attempts, due_at, expires_at, created_at, updated_at,
                                    outbox_from)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, 0, ?8, ?9, ?10, ?10, ?11)
                 ON CONFLICT (sink, patient, step, occurrence) DO NOTHING",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    key.sink.as_str(),
                    key.patient,
                    key.step,
                    occurrence,
                    details.variant,
                    details.template,
                    retry_key,
                    unix(details.due_at),
                    unix(details.expires_at),
                    unix(now),
                    details
                        .outbox_from
                        .and_then(|from| i64::try_from(from).ok()),
                ])
            })
            .map_err(|e| self.fail(e))?;
        if inserted == 1 {
            return Ok(Claim::New { retry_key });
        }
        let (status, retry_key, attempts): (SendStatus, String, u32) = self
            .conn
            .prepare_cached(
                "SELECT status, retry_key, attempts FROM sends
                 WHERE sink = ?1 AND patient = ?2 AND step = ?3 AND occurrence = ?4",
            )
            .and_then(|mut select| {
                select.query_row(
                    params![key.sink.as_str(), key.patient, key.step, occurrence],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
            })
            .map_err(|e| self.fail(e))?;
        if matches!(status, SendStatus::Held | SendStatus::Blocked) {
            self.reopen(key, details, now)?;
        }
        Ok(match status {
            SendStatus::Pending | SendStatus::Held | SendStatus::Blocked => Claim::Resume {
                retry_key,
                attempts,
            },
            done => Claim::Done(done),
        })
    }

    /// Records how the claimed send `key` (with `retry_key`) ended, and the attempts it took in
    /// this run.
    pub fn settle(
        &mut self,
        key: &SendKey<'_>,
        retry_key: &str,
        attempts: u32,
        settlement: &Settlement,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let now = unix(now);
        let status = settlement.status().as_str();
        let (sink, occurrence) = (key.sink.as_str(), stamp(key.occurrence));
        let (sent_at, request_id, note, error) = match settlement {
            Settlement::Sent { request_id, note } => {
                (Some(now), request_id.as_deref(), note.as_deref(), None)
            }
            Settlement::Failed(why)
            | Settlement::Expired(why)
            | Settlement::RetryLater(why)
            | Settlement::Held(why)
            | Settlement::Skipped(why) => (None, None, None, Some(why.as_str())),
            Settlement::Blocked => (
                None,
                None,
                None,
                Some("the patient has blocked the account"),
            ),
        };
        // Found by its primary key; the retry key makes sure it is the claimed row. A send
        // that went out (or stays open) leaves the problem columns alone, so that their
        // indexes cost it nothing (ledger version 10); a failed, held, expired or skipped one
        // sets them.
        let problem = matches!(
            settlement.status(),
            SendStatus::Failed | SendStatus::Held | SendStatus::Expired | SendStatus::Skipped
        )
        .then_some(status);
        let update = |sql: &str, problem: Option<&str>| -> rusqlite::Result<usize> {
            let mut update = self.conn.prepare_cached(sql)?;
            let common = params![
                sink,
                key.patient,
                key.step,
                occurrence,
                retry_key,
                status,
                attempts,
                now,
                sent_at,
                request_id,
                note,
                error
            ];
            match problem {
                None => update.execute(common),
                Some(problem) => {
                    let mut all = common.to_vec();
                    all.push(&problem);
                    update.execute(all.as_slice())
                }
            }
        };
        match problem {
            None => update(
                "UPDATE sends SET status = ?6, attempts = attempts + ?7, updated_at = ?8,
                                  sent_at = coalesce(?9, sent_at),
                                  line_request_id = coalesce(?10, line_request_id),
                                  note = coalesce(?11, note), last_error = ?12
                 WHERE sink = ?1 AND patient = ?2 AND step = ?3 AND occurrence = ?4
                   AND retry_key = ?5",
                None,
            ),
            Some(problem) => update(
                "UPDATE sends SET status = ?6, attempts = attempts + ?7, updated_at = ?8,
                                  sent_at = coalesce(?9, sent_at),
                                  line_request_id = coalesce(?10, line_request_id),
                                  note = coalesce(?11, note), last_error = ?12,
                                  problem = ?13, problem_at = ?8
                 WHERE sink = ?1 AND patient = ?2 AND step = ?3 AND occurrence = ?4
                   AND retry_key = ?5",
                Some(problem),
            ),
        }
        .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Pending, held and blocked rows of `sink` whose time has passed: expired, with the last error
    /// kept.
    pub fn expire_open(
        &mut self,
        sink: SinkKind,
        now: DateTime<Utc>,
    ) -> Result<usize, LedgerError> {
        self.conn
            .execute(
                "UPDATE sends SET status = 'expired', updated_at = ?2,
                                  problem = 'expired', problem_at = ?2
                 WHERE sink = ?1 AND (status = 'pending' OR status = 'held' OR status = 'blocked')
                   AND expires_at <= ?2",
                params![sink.as_str(), unix(now)],
            )
            .map_err(|e| self.fail(e))
    }

    /// Every send of `sink` that can still matter at `now`, in no particular order: sends that
    /// would otherwise be proposed again (not yet expired), and sends of the last eight days
    /// (they count toward a daily or weekly cap). Read through indexes on exactly those
    /// instants, so years of older history cost nothing.
    pub fn recent_sends(
        &self,
        sink: SinkKind,
        now: DateTime<Utc>,
        mut each: impl FnMut(RecentSend<'_>),
    ) -> Result<(), LedgerError> {
        sends_beside::read_recent(&self.conn, sink, now, &mut each).map_err(|e| self.fail(e))
    }

    /// Whether any send of `sink` was ever delivered.
    pub fn has_sent(&self, sink: SinkKind) -> Result<bool, LedgerError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sends INDEXED BY sends_live
                                WHERE sink = ?1 AND status = 'sent')",
                params![sink.as_str()],
                |row| row.get(0),
            )
            .map_err(|e| self.fail(e))
    }

    /// The outbox's open rows, for it to recognise what a crashed run wrote but could not
    /// mark: their retry keys, and the outbox length from which their lines can be.
    pub fn pending_in_outbox(&self) -> Result<PendingInOutbox, LedgerError> {
        let run = || -> rusqlite::Result<PendingInOutbox> {
            let mut statement = self.conn.prepare(
                "SELECT retry_key, outbox_from FROM sends INDEXED BY sends_open
                 WHERE sink = 'outbox'
                   AND (status = 'pending' OR status = 'held' OR status = 'blocked')
                   AND status != 'blocked'",
            )?;
            let mut pending = PendingInOutbox {
                keys: Vec::new(),
                from: u64::MAX,
            };
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                pending.keys.push(row.get(0)?);
                // A row without it (from a version-1 ledger) may be anywhere.
                let from = row.get::<_, Option<i64>>(1)?.unwrap_or(0);
                pending.from = pending.from.min(u64::try_from(from).unwrap_or(0));
            }
            if pending.keys.is_empty() {
                pending.from = 0;
            }
            Ok(pending)
        };
        run().map_err(|e| self.fail(e))
    }

    pub fn row(&self, key: &SendKey<'_>) -> Result<Option<LedgerRow>, LedgerError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {} FROM sends
                     WHERE sink = ?1 AND patient = ?2 AND step = ?3 AND occurrence = ?4",
                    read::ROW_COLUMNS
                ),
                params![
                    key.sink.as_str(),
                    key.patient,
                    key.step,
                    stamp(key.occurrence)
                ],
                read::ledger_row,
            )
            .optional()
            .map_err(|e| self.fail(e))
    }

    #[cfg(test)]
    fn query_plan(&self, sql: &str) -> String {
        let mut statement = self
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let details: Vec<String> = statement
            .query_map(
                params![SinkKind::Line.as_str(), "2026-01-01", "2026-01-01"],
                |row| row.get(3),
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        details.join("; ")
    }
}

#[cfg(test)]
mod settle_tests;
#[cfg(test)]
pub(crate) mod tests;
