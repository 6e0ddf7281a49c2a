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
    // 2: what `serve` keeps (see serve.rs), mirroring the SQLite ledger's version 3 to 8 tables,
    // every row carrying its clinic. An event is stored once per (clinic, webhook event id):
    // two `serve` instances behind a load balancer that both receive a redelivered event insert
    // it with `ON CONFLICT DO NOTHING`, and only the one whose insert wins acts on it. A
    // friend's blocked state follows the newest follow or unfollow seen; a LINE user is linked
    // to one patient; failed linking attempts are counted per clinic day; a tracked token
    // stands for a link or postback of one send; `steprule_unit_uses` counts the pushes named
    // with each LINE aggregation unit per half-month.
    //
    // Indexes for the reads a pass makes: reactions read one event type since an instant, and
    // the sends delivered since an instant; a resumed claim reads its send's tokens.
    "CREATE INDEX steprule_events_type_at ON steprule_events (clinic, type, at)
        WHERE patient IS NOT NULL;
    CREATE INDEX steprule_sends_delivered ON steprule_sends (clinic, sent_at)
        INCLUDE (sink, patient, step, occurrence) WHERE status = 'sent';

    CREATE TABLE steprule_friends (
        clinic    TEXT NOT NULL,
        line_user TEXT NOT NULL,
        blocked   BOOLEAN NOT NULL,
        since     TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (clinic, line_user)
    );
    CREATE INDEX steprule_friends_blocked ON steprule_friends (clinic, line_user)
        WHERE blocked;

    CREATE TABLE steprule_links (
        clinic    TEXT NOT NULL,
        line_user TEXT NOT NULL,
        patient   TEXT NOT NULL,
        linked_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (clinic, line_user)
    );
    CREATE INDEX steprule_links_patient ON steprule_links (clinic, patient, linked_at);

    CREATE TABLE steprule_link_failures (
        clinic    TEXT NOT NULL,
        line_user TEXT NOT NULL,
        day       DATE NOT NULL,
        failures  INTEGER NOT NULL,
        PRIMARY KEY (clinic, line_user, day)
    );

    CREATE TABLE steprule_tracked (
        clinic     TEXT NOT NULL,
        token      TEXT NOT NULL,
        kind       TEXT NOT NULL CHECK (kind IN ('url','postback')),
        sink       TEXT NOT NULL,
        patient    TEXT NOT NULL,
        step       TEXT NOT NULL,
        occurrence TIMESTAMPTZ NOT NULL,
        target     TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (clinic, token)
    );
    CREATE INDEX steprule_tracked_send
        ON steprule_tracked (clinic, sink, patient, step, occurrence);

    CREATE TABLE steprule_unit_uses (
        clinic     TEXT NOT NULL,
        unit       TEXT NOT NULL,
        half_first DATE NOT NULL,
        step       TEXT NOT NULL,
        variant    TEXT,
        first_day  DATE NOT NULL,
        last_day   DATE NOT NULL,
        sends      BIGINT NOT NULL,
        PRIMARY KEY (clinic, unit, half_first)
    );",
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
