//! The ledger's tables, one migration per version; `PRAGMA user_version` says which have run.

/// Migrations in order; a ledger at version N has run the first N.
pub const MIGRATIONS: &[&str] = &[
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
    // 2: a send belongs to the sink it went to (an outbox send is not a LINE delivery), a
    // template that failed for a patient's data is `held` (retried) instead of `skipped` for
    // good, and the indexes fit the queries a run makes, so that a long history costs nothing.
    // Rows are found by their key; the retry key (a v4 UUID, fixed at the claim) needs no
    // index of its own.
    //
    // Version 1 did not record the sink. LINE answers every accepted push with a request id, so
    // a version-1 `sent` row without one went to the outbox.
    "CREATE TABLE sends_v2 (
        sink            TEXT NOT NULL CHECK (sink IN ('line','outbox')),
        patient         TEXT NOT NULL,
        step            TEXT NOT NULL,
        occurrence      TEXT NOT NULL,
        variant         TEXT,
        template        TEXT NOT NULL,
        status          TEXT NOT NULL
                        CHECK (status IN ('pending','held','sent','failed','expired','skipped')),
        retry_key       TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        due_at          TEXT NOT NULL,
        expires_at      TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        sent_at         TEXT,
        line_request_id TEXT,
        last_error      TEXT,
        note            TEXT,
        -- For an outbox send, the outbox's length when it was claimed: its line, if written,
        -- comes after it, so a run after a crash reads the outbox from there, not from the start.
        outbox_from     INTEGER,
        PRIMARY KEY (sink, patient, step, occurrence)
    ) WITHOUT ROWID;
    INSERT INTO sends_v2 (sink, patient, step, occurrence, variant, template, status, retry_key,
                          attempts, due_at, expires_at, created_at, updated_at, sent_at,
                          line_request_id, last_error)
        SELECT CASE WHEN status = 'sent' AND line_request_id IS NULL THEN 'outbox' ELSE 'line' END,
               patient, step, occurrence, variant, template,
               CASE WHEN status = 'skipped' AND last_error LIKE 'template % failed%' THEN 'held'
                    ELSE status END,
               retry_key, attempts, due_at, expires_at, created_at, updated_at, sent_at,
               line_request_id, last_error
        FROM sends;
    DROP TABLE sends;
    ALTER TABLE sends_v2 RENAME TO sends;
    CREATE INDEX sends_open ON sends (sink, expires_at) WHERE status IN ('pending', 'held');
    CREATE INDEX sends_live ON sends (sink, expires_at) WHERE status = 'sent';
    CREATE INDEX sends_problems ON sends (updated_at) WHERE status IN ('failed', 'held', 'expired');",
];
