//! The ledger on PostgreSQL: the same sends, marks, events, links, blocks and tracked tokens as
//! the SQLite ledger, for many clinics (every row carries its clinic) and many workers and
//! `serve` instances at once (claims carry leases, see `sends.rs`; events are stored once per
//! id, see `serve.rs`). Connected with the synchronous `postgres` client: a pass owns its ledger on one
//! thread, as it owns the SQLite connection, and delivery never touches it.
//!
//! The connection URL may hold a password: it is never printed. Messages name the ledger by
//! [`shown_url`], and PostgreSQL's own errors (which do not quote the URL) are passed on.

mod insights;
mod marks;
mod reads;
mod schema;
mod sends;
mod serve;

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::{Client, NoTls, Statement};

use super::{Claim, RunLedger, ServeLedger};
use super::{
    DeliveredSend, EventFilter, EventKind, EventRecord, FriendChange, FriendState, LedgerError,
    LinkAttempts, MarkPrints, MarkRow, NewEvent, PatientEvent, PendingInOutbox, RecentSend,
    SendDetails, SendKey, SendRef, SendStatus, Settlement, SinkKind, TrackKind, Tracked, UnitUse,
};
pub use schema::MIGRATIONS;

/// How long a worker holds the sends it claimed unless told otherwise (`run --lease`): longer
/// than a claimed send waits in the delivery queue and retries, so that no other worker takes
/// over a send that is still on its way. A worker that dies leaves its sends to others after it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);

/// How long connecting may take before the pass gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The clinic whose rows the rules in `rules_file` read and write on a shared ledger: the rules'
/// `clinic` name, else the file's name without its extension. `run`, `serve` and `events` name
/// it alike, so that they meet on the same rows.
pub fn clinic_name(clinic: Option<&str>, rules_file: &std::path::Path) -> String {
    clinic.map(str::to_owned).unwrap_or_else(|| {
        rules_file
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default()
    })
}

/// `url` as every message that names the ledger shows it: without its password.
pub fn shown_url(url: &str) -> String {
    crate::postgres_url::shown(url)
}

/// Whether connecting may bring the tables to this steprule's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// `run`, `serve`, `insights fetch`: they write, so they migrate.
    Migrate,
    /// The reading commands: the version is checked, never changed.
    Read,
}

/// The statements a pass runs for every send, prepared once per connection.
struct Prepared {
    insert: Statement,
    insert_many: Statement,
    existing: Statement,
    lock: Statement,
    take_over: Statement,
    settle: Statement,
}

/// A PostgreSQL ledger, seen as one clinic's.
pub struct PgLedger {
    /// In a cell: the client needs `&mut` even to read, and the reads take `&self`.
    client: RefCell<Client>,
    clinic: String,
    /// This worker's name in `claimed_by`: the host's name, the process id and a random part.
    worker: String,
    lease: Duration,
    shown: String,
    /// The URL, password and all, to connect again after the connection was lost (`serve`
    /// outlives a server restart). Never printed.
    url: String,
    prepared: Prepared,
    in_batch: bool,
    opening: Opening,
    /// Settlements of the open batch, written in one statement when it commits.
    unsettled: sends::Unsettled,
    /// Marks of the open batch, likewise (in a cell: the reads that write them first take
    /// `&self`).
    unmarked: RefCell<marks::Unmarked>,
}

impl PgLedger {
    /// Connects to the ledger at `url` as `clinic`'s, migrating it as needed.
    pub fn open(url: &str, clinic: &str, lease: Duration) -> Result<PgLedger, LedgerError> {
        // One name per process: the passes of `run --every` are one worker, and a pass finds
        // what the last one left under its lease its own.
        static WORKER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let worker = WORKER.get_or_init(worker_name).clone();
        PgLedger::open_as(url, clinic, lease, worker)
    }

    /// Connects to the ledger at `url` as `clinic`'s for a command that only reads (`report`,
    /// `plan`, `explain`, `preview`, `events`): nothing is written, not even a migration, so
    /// a user with only `SELECT` rights or a hot standby will do. A ledger older than this
    /// steprule (or none at all) is refused, saying which command migrates (or creates) it.
    pub fn open_to_read(url: &str, clinic: &str) -> Result<PgLedger, LedgerError> {
        let worker = "reader".to_owned();
        PgLedger::connect(url, clinic, DEFAULT_LEASE, worker, Opening::Read)
    }

    /// [`PgLedger::open`] as the worker named `worker`.
    fn open_as(
        url: &str,
        clinic: &str,
        lease: Duration,
        worker: String,
    ) -> Result<PgLedger, LedgerError> {
        PgLedger::connect(url, clinic, lease, worker, Opening::Migrate)
    }

    /// Connects as the worker named `worker`, migrating or only checking the version.
    fn connect(
        url: &str,
        clinic: &str,
        lease: Duration,
        worker: String,
        opening: Opening,
    ) -> Result<PgLedger, LedgerError> {
        let shown = shown_url(url);
        // PostgreSQL's errors do not quote the URL; scrubbed all the same, as a last guard.
        let secret = crate::postgres_url::password_in(url);
        let fail = |message: String| LedgerError::Postgres {
            ledger: shown.clone(),
            message: crate::postgres_url::scrub(&message, secret.as_deref()),
        };
        // The parser's own message may quote the URL: say what is wrong without it.
        let mut config: postgres::Config = url.parse().map_err(|_| {
            fail(
                "not a PostgreSQL connection URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)"
                    .into(),
            )
        })?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("steprule");
        // A lost server or a stuck lock stops the pass with an error instead of hanging it:
        // the only lock a pass waits for is another worker's claim batch, a fraction of a
        // second; keepalives notice a server that went away without closing the connection.
        let options = match config.get_options() {
            Some(given) => format!("-c lock_timeout=60s {given}"),
            None => "-c lock_timeout=60s".to_owned(),
        };
        config.options(&options);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        let mut client = config
            .connect(NoTls)
            .map_err(|e| fail(format!("cannot connect: {}", said(&e))))?;
        let migrated = match opening {
            Opening::Migrate => schema::migrate(&mut client),
            Opening::Read => {
                schema::version(&mut client).map(|found| match found.cmp(&MIGRATIONS.len()) {
                    std::cmp::Ordering::Equal => schema::Migrated::Current,
                    std::cmp::Ordering::Greater => schema::Migrated::TooNew {
                        found,
                        known: MIGRATIONS.len(),
                    },
                    std::cmp::Ordering::Less => schema::Migrated::Behind { found },
                })
            }
        };
        match migrated.map_err(|e| fail(said(&e)))? {
            schema::Migrated::Current => {}
            schema::Migrated::TooNew { found, known } => {
                return Err(LedgerError::TooNew {
                    path: shown,
                    found,
                    known,
                })
            }
            schema::Migrated::Behind { found: 0 } => {
                return Err(LedgerError::Missing { path: shown })
            }
            schema::Migrated::Behind { found } => {
                return Err(LedgerError::Behind {
                    path: shown,
                    found,
                    known: MIGRATIONS.len(),
                })
            }
        }
        let prepared = sends::prepare(&mut client).map_err(|e| fail(said(&e)))?;
        Ok(PgLedger {
            client: RefCell::new(client),
            clinic: clinic.to_owned(),
            worker,
            lease,
            shown,
            url: url.to_owned(),
            prepared,
            in_batch: false,
            opening,
            unsettled: sends::Unsettled::default(),
            unmarked: RefCell::default(),
        })
    }

    /// Connects again (as the same worker, to the same clinic's rows) if the connection was
    /// lost: a server restarted, a connection killed. What was in flight failed with it.
    pub fn reconnect_if_lost(&mut self) -> Result<(), LedgerError> {
        if !self.client.get_mut().is_closed() {
            return Ok(());
        }
        *self = PgLedger::connect(
            &self.url,
            &self.clinic,
            self.lease,
            self.worker.clone(),
            self.opening,
        )?;
        Ok(())
    }

    /// The clinic whose rows this ledger reads and writes.
    pub fn clinic(&self) -> &str {
        &self.clinic
    }

    /// This worker's name, as `claimed_by` holds it.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Writes the batch's settlements, commits it, then writes its marks (see marks.rs).
    fn commit_batch(&mut self) -> Result<(), postgres::Error> {
        self.write_settlements()?;
        if self.in_batch {
            self.in_batch = false;
            if let Err(error) = self.client.get_mut().batch_execute("COMMIT") {
                // Not committed: neither are the events these marks go with.
                *self.unmarked.get_mut() = marks::Unmarked::default();
                return Err(error);
            }
        }
        self.write_marks()
    }

    fn fail(&self, error: postgres::Error) -> LedgerError {
        LedgerError::Postgres {
            ledger: self.shown.clone(),
            message: said(&error),
        }
    }

    fn lease_seconds(&self) -> f64 {
        self.lease.as_secs_f64()
    }
}

/// PostgreSQL's own words: the client's `Display` says only "db error" for an error the server
/// sent, so its severity, code, message, detail and hint are spelled out.
fn said(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
            // An integrity violation's detail quotes the row or key (`Failing row contains
            // (…)`), patient ids among them: left out, the message and code say enough.
            let quotes_values = db.code().code().starts_with("23");
            if let Some(detail) = db.detail().filter(|_| !quotes_values) {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; {hint}"));
            }
            text
        }
        None => error.to_string(),
    }
}

/// `host:pid:random`, unique among the workers of one ledger.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().chars().take(64).collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &random[..8])
}

/// SQL integers are signed: the mark hashes are stored bit for bit.
fn to_sql(bits: u64) -> i64 {
    i64::from_ne_bytes(bits.to_ne_bytes())
}

fn from_sql(value: i64) -> u64 {
    u64::from_ne_bytes(value.to_ne_bytes())
}

impl RunLedger for PgLedger {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn shared(&self) -> bool {
        true
    }

    fn begin(&mut self) -> Result<(), LedgerError> {
        if !self.in_batch {
            self.client
                .get_mut()
                .batch_execute("BEGIN")
                .map_err(|e| self.fail(e))?;
            self.in_batch = true;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), LedgerError> {
        self.commit_batch().map_err(|e| self.fail(e))
    }

    fn claim(
        &mut self,
        key: &SendKey<'_>,
        details: &SendDetails<'_>,
        now: DateTime<Utc>,
    ) -> Result<Claim, LedgerError> {
        self.claim_send(key, details, now).map_err(|e| self.fail(e))
    }

    fn claim_all(
        &mut self,
        sends: &[(SendKey<'_>, SendDetails<'_>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, LedgerError> {
        self.claim_sends(sends, now).map_err(|e| self.fail(e))
    }

    fn settle(
        &mut self,
        key: &SendKey<'_>,
        retry_key: &str,
        attempts: u32,
        settlement: &Settlement,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.settle_send(key, retry_key, attempts, settlement, now)
            .map_err(|e| self.fail(e))
    }

    fn expire_open(&mut self, sink: SinkKind, now: DateTime<Utc>) -> Result<usize, LedgerError> {
        self.expire(sink, now).map_err(|e| self.fail(e))
    }

    fn recent_sends(
        &self,
        sink: SinkKind,
        now: DateTime<Utc>,
        each: &mut dyn FnMut(RecentSend<'_>),
    ) -> Result<(), LedgerError> {
        self.recent(sink, now, each)
    }

    fn has_sent(&self, sink: SinkKind) -> Result<bool, LedgerError> {
        self.any_sent(sink)
    }

    fn pending_in_outbox(&self) -> Result<PendingInOutbox, LedgerError> {
        self.open_in_outbox()
    }

    fn status_counts(&self) -> Result<Vec<(SendStatus, u64)>, LedgerError> {
        self.counts()
    }

    fn mark_prints(&self) -> Result<MarkPrints, LedgerError> {
        use postgres::fallible_iterator::FallibleIterator;
        self.write_marks().map_err(|e| self.fail(e))?;
        // Streamed: a million patients' rows are never held at once, only their prints.
        let mut prints = MarkPrints::default();
        let mut client = self.client.borrow_mut();
        let mut rows = client
            .query_raw(
                "SELECT patient, print FROM steprule_marks WHERE clinic = $1",
                [&self.clinic],
            )
            .map_err(|e| self.fail(e))?;
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            let patient: &str = row.get(0);
            prints.insert(super::patient_hash(patient), from_sql(row.get(1)));
        }
        Ok(prints)
    }

    fn mark_row(&self, patient: &str) -> Result<Option<MarkRow>, LedgerError> {
        if let Some(row) = self.buffered_marks(patient) {
            return Ok(Some(row));
        }
        let row = self
            .client
            .borrow_mut()
            .query_opt(
                "SELECT fields, seen FROM steprule_marks WHERE clinic = $1 AND patient = $2",
                &[&self.clinic, &patient],
            )
            .map_err(|e| self.fail(e))?;
        Ok(row.map(|row| MarkRow {
            fields: from_sql(row.get(0)),
            seen: row.get(1),
        }))
    }

    fn set_marks(&mut self, patient: &str, print: u64, row: &MarkRow) -> Result<(), LedgerError> {
        self.buffer_marks(patient, print, row)
            .map_err(|e| self.fail(e))
    }

    fn record_event(
        &mut self,
        event: &NewEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        self.store_event(event, now)
    }

    fn links(&self, each: &mut dyn FnMut(&str, &str)) -> Result<(), LedgerError> {
        self.all_links(each)
    }

    fn blocked_users(&self, each: &mut dyn FnMut(&str)) -> Result<(), LedgerError> {
        self.all_blocked(each)
    }

    fn track(
        &mut self,
        token: &str,
        kind: TrackKind,
        key: &SendKey<'_>,
        target: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.add_token(token, kind, key, target, now)
    }

    fn tracked_for(
        &self,
        key: &SendKey<'_>,
    ) -> Result<Vec<(String, TrackKind, String)>, LedgerError> {
        self.tokens_of(key)
    }

    fn record_unit_uses(&mut self, uses: &[UnitUse]) -> Result<(), LedgerError> {
        self.add_unit_uses(uses)
    }

    fn delivered_since(
        &self,
        since: DateTime<Utc>,
        steps: &[&str],
        each: &mut dyn FnMut(DeliveredSend<'_>),
    ) -> Result<(), LedgerError> {
        self.delivered(since, steps, each)
    }

    fn patient_events(
        &self,
        kind: EventKind,
        since: DateTime<Utc>,
        each: &mut dyn FnMut(PatientEvent<'_>),
    ) -> Result<(), LedgerError> {
        self.events_of_kind(kind, since, each)
    }
}

impl ServeLedger for PgLedger {
    fn rollback(&mut self) -> Result<(), LedgerError> {
        // What the batch recorded but had not written yet goes with it.
        self.unsettled = sends::Unsettled::default();
        *self.unmarked.get_mut() = marks::Unmarked::default();
        self.rollback_batch()
    }

    fn ping(&mut self) -> Result<(), LedgerError> {
        self.answers()
    }

    fn reconnect_if_lost(&mut self) -> Result<(), LedgerError> {
        PgLedger::reconnect_if_lost(self)
    }

    fn set_friend(
        &mut self,
        line_user: &str,
        change: FriendChange,
        at: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        self.set_friend_state(line_user, change, at)
    }

    fn friend_state(&self, line_user: &str) -> Result<Option<FriendState>, LedgerError> {
        self.friend(line_user)
    }

    fn link(
        &mut self,
        line_user: &str,
        patient: &str,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.add_link(line_user, patient, at)
    }

    fn linked_patient(&self, line_user: &str) -> Result<Option<String>, LedgerError> {
        self.patient_of(line_user)
    }

    fn link_attempts(&self, line_user: &str, day: &str) -> Result<LinkAttempts, LedgerError> {
        self.failures_on(line_user, day)
    }

    fn add_link_failure(
        &mut self,
        line_user: &str,
        day: &str,
    ) -> Result<LinkAttempts, LedgerError> {
        self.add_failure(line_user, day)
    }

    fn last_send_before(
        &self,
        patient: &str,
        at: DateTime<Utc>,
        within: chrono::Duration,
    ) -> Result<Option<SendRef>, LedgerError> {
        self.last_sent_to(patient, at, within)
    }

    fn tracked(&self, token: &str) -> Result<Option<Tracked>, LedgerError> {
        self.token(token)
    }

    fn events(
        &self,
        filter: &EventFilter,
        each: &mut dyn FnMut(EventRecord) -> ControlFlow<()>,
    ) -> Result<(), LedgerError> {
        self.stored_events(filter, None, each)
    }

    fn latest_events(
        &self,
        filter: &EventFilter,
        limit: u64,
        each: &mut dyn FnMut(EventRecord) -> ControlFlow<()>,
    ) -> Result<(), LedgerError> {
        self.stored_events(filter, Some(limit), each)
    }
}

#[cfg(test)]
#[path = "../../../tests/support/postgres.rs"]
pub(crate) mod pg;

#[cfg(test)]
#[path = "tests.rs"]
mod workers;

#[cfg(test)]
#[path = "serve_tests.rs"]
mod serve_tests;

#[cfg(test)]
#[path = "insights_tests.rs"]
mod insights_tests;

#[cfg(test)]
#[path = "claims_tests.rs"]
mod claims_tests;
