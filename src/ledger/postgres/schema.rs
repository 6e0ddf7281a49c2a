//! The PostgreSQL ledger's tables, one migration per version, applied automatically when a
//! worker connects. `steprule_ledger_version` holds one row per version applied. Workers that
//! start at once migrate once: each takes a transaction-scoped advisory lock first, so the
//! second waits for the first to commit, then finds nothing left to do.
//!
//! Every table is named `steprule_…` (the database may be a clinic's own) and every row carries
//! its clinic, so that one database serves many clinics.

use postgres::Client;

/// The advisory lock migrations take (an arbitrary number: "steprule" in ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x7374_6570_7275_6c65;

/// Migrations in order; a ledger at version N has applied the first N.
pub const MIGRATIONS: &[&str] = &[
    // 1: sends, marks and the events a pass records (bookings and visits seen new).
    //
    // A send is one row per (clinic, sink, patient, step, occurrence): the primary key makes a
    // second claim of the same send by any worker impossible. Its retry key is fixed when the
    // row is created, so whichever worker retries it makes the same request to LINE, which
    // accepts a retry key once. A worker holds the rows it claimed with a lease
    // (`claimed_by`, `lease_until`, on the database's clock); after the lease another worker
    // may take an open row over. Settling clears the lease.
    "CREATE TABLE steprule_sends (
        clinic          TEXT NOT NULL,
        sink            TEXT NOT NULL CHECK (sink IN ('line','outbox')),
        patient         TEXT NOT NULL,
        step            TEXT NOT NULL,
        occurrence      TIMESTAMPTZ NOT NULL,
        variant         TEXT,
        template        TEXT NOT NULL,
        status          TEXT NOT NULL
                        CHECK (status IN ('pending','held','blocked','sent','failed','expired',
                                          'skipped')),
        retry_key       TEXT NOT NULL,
        attempts        BIGINT NOT NULL DEFAULT 0,
        due_at          TIMESTAMPTZ NOT NULL,
        expires_at      TIMESTAMPTZ NOT NULL,
        created_at      TIMESTAMPTZ NOT NULL,
        updated_at      TIMESTAMPTZ NOT NULL,
        sent_at         TIMESTAMPTZ,
        line_request_id TEXT,
        last_error      TEXT,
        note            TEXT,
        outbox_from     BIGINT,
        problem         TEXT,
        problem_at      TIMESTAMPTZ,
        claimed_by      TEXT,
        lease_until     TIMESTAMPTZ,
        PRIMARY KEY (clinic, sink, patient, step, occurrence)
    );
    CREATE INDEX steprule_sends_open ON steprule_sends (clinic, sink, expires_at)
        WHERE status IN ('pending', 'held', 'blocked');
    CREATE INDEX steprule_sends_live ON steprule_sends (clinic, sink, expires_at)
        INCLUDE (patient, step, occurrence, sent_at) WHERE status = 'sent';

    CREATE TABLE steprule_marks (
        clinic  TEXT NOT NULL,
        patient TEXT NOT NULL,
        print   BIGINT NOT NULL,
        fields  BIGINT NOT NULL,
        seen    BYTEA NOT NULL,
        PRIMARY KEY (clinic, patient)
    );

    CREATE TABLE steprule_events (
        clinic      TEXT NOT NULL,
        id          TEXT NOT NULL,
        type        TEXT NOT NULL,
        at          TIMESTAMPTZ NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        line_user   TEXT,
        patient     TEXT,
        sink        TEXT,
        step        TEXT,
        occurrence  TIMESTAMPTZ,
        detail      TEXT,
        PRIMARY KEY (clinic, id)
    );
    CREATE INDEX steprule_events_at ON steprule_events (clinic, at);",
];

/// What migrating found.
#[derive(Debug)]
pub enum Migrated {
    /// At the newest version this steprule knows.
    Current,
    /// Written by a newer steprule: at `found`, this one knows `known`.
    TooNew { found: usize, known: usize },
}

/// Brings the database's steprule tables to the newest version, once however many workers
/// start at once.
pub fn migrate(client: &mut Client) -> Result<Migrated, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS steprule_ledger_version (
            version    INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM steprule_ledger_version",
            &[],
        )?
        .get(0);
    let found = usize::try_from(found).unwrap_or(0);
    if found > MIGRATIONS.len() {
        return Ok(Migrated::TooNew {
            found,
            known: MIGRATIONS.len(),
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(found) {
        tx.batch_execute(migration)?;
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO steprule_ledger_version (version) VALUES ($1)",
            &[&version],
        )?;
    }
    tx.commit()?;
    Ok(Migrated::Current)
}
