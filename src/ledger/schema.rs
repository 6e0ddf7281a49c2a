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
    // 3: what patients do comes back (`steprule serve`). `blocked`: a send that came due while
    // its patient had blocked the account; it stays open (like `held`) so that it goes out if
    // they follow again before it expires. Events are kept once per LINE `webhookEventId`
    // (LINE redelivers); a friend's blocked state follows the newest event seen, not the last
    // to arrive (redeliveries come out of order). Event instants have milliseconds, written
    // with a fixed width so that text order is time order.
    "CREATE TABLE sends_v3 (
        sink            TEXT NOT NULL CHECK (sink IN ('line','outbox')),
        patient         TEXT NOT NULL,
        step            TEXT NOT NULL,
        occurrence      TEXT NOT NULL,
        variant         TEXT,
        template        TEXT NOT NULL,
        status          TEXT NOT NULL
                        CHECK (status IN ('pending','held','blocked','sent','failed','expired',
                                          'skipped')),
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
        outbox_from     INTEGER,
        PRIMARY KEY (sink, patient, step, occurrence)
    ) WITHOUT ROWID;
    INSERT INTO sends_v3 SELECT sink, patient, step, occurrence, variant, template, status,
        retry_key, attempts, due_at, expires_at, created_at, updated_at, sent_at, line_request_id,
        last_error, note, outbox_from FROM sends;
    DROP TABLE sends;
    ALTER TABLE sends_v3 RENAME TO sends;
    CREATE INDEX sends_open ON sends (sink, expires_at) WHERE status IN ('pending', 'held', 'blocked');
    CREATE INDEX sends_live ON sends (sink, expires_at) WHERE status = 'sent';
    CREATE INDEX sends_problems ON sends (updated_at) WHERE status IN ('failed', 'held', 'expired');

    CREATE TABLE events (
        id          TEXT NOT NULL PRIMARY KEY,
        type        TEXT NOT NULL,
        at          TEXT NOT NULL,
        received_at TEXT NOT NULL,
        line_user   TEXT,
        patient     TEXT,
        sink        TEXT,
        step        TEXT,
        occurrence  TEXT,
        detail      TEXT
    ) WITHOUT ROWID;
    CREATE INDEX events_at ON events (at);
    CREATE INDEX events_type_at ON events (type, at);

    CREATE TABLE line_friends (
        line_user TEXT NOT NULL PRIMARY KEY,
        blocked   INTEGER NOT NULL,
        since     TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX line_friends_blocked ON line_friends (line_user) WHERE blocked = 1;

    CREATE TABLE line_links (
        line_user TEXT NOT NULL PRIMARY KEY,
        patient   TEXT NOT NULL,
        linked_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX line_links_patient ON line_links (patient, linked_at);

    CREATE TABLE link_failures (
        line_user TEXT NOT NULL,
        day       TEXT NOT NULL,
        failures  INTEGER NOT NULL,
        PRIMARY KEY (line_user, day)
    ) WITHOUT ROWID;

    CREATE TABLE tracked (
        token      TEXT NOT NULL PRIMARY KEY,
        kind       TEXT NOT NULL CHECK (kind IN ('url','postback')),
        sink       TEXT NOT NULL,
        patient    TEXT NOT NULL,
        step       TEXT NOT NULL,
        occurrence TEXT NOT NULL,
        target     TEXT NOT NULL,
        created_at TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 4: a send's tokens, found by its key: a claim resumed after a crash sends the tokens it
    // recorded the first time, read through this index instead of a scan of every token.
    "CREATE INDEX tracked_send ON tracked (sink, patient, step, occurrence);",
    // 5: `report` counts a period's sends per step and arm: the delivered sends in order of
    // delivery, carrying every column the count reads (status too: SQLite checks a partial
    // index's condition on the row), so that a month of a long history is one range of one
    // index and no read of the table.
    "CREATE INDEX sends_delivered ON sends (sent_at, sink, step, variant, status)
        WHERE status = 'sent';",
    // 6: what `run` last saw of each patient's booking and visit fields (see marks.rs): one
    // row per patient, keyed by the patient's id, so that a first pass over an export in id
    // order (as clinics' systems write them) appends its rows in key order.
    "CREATE TABLE marks (
        patient TEXT NOT NULL PRIMARY KEY,
        print   INTEGER NOT NULL,
        fields  INTEGER NOT NULL,
        seen    BLOB NOT NULL
    ) WITHOUT ROWID;",
    // 7: every pass reads the live sent history (`recent_sends`: patient, step, occurrence,
    // sent_at). The index's entries already hold the key (patient, step, occurrence): with
    // `sent_at` and `status` in them too, the read never visits the table, one random B-tree
    // search fewer per send (a pass at a million patients read its 214,000 sends in 0.39 s
    // through the table, 0.15 s from the index alone).
    "DROP INDEX sends_live;
    CREATE INDEX sends_live ON sends (sink, expires_at, sent_at, status) WHERE status = 'sent';",
    // 8: LINE's statistics (`steprule insights fetch`, see insights.rs). Days are LINE's (Japan
    // time), half-months are named by their first day. `insight_units`: the aggregation units
    // `run --custom-aggregation` named LINE pushes with, per half-month, with the arm, the days
    // used and the sends delivered: units × half-months rows, never a column on `sends`.
    // `insight_chunks`: LINE's answer per unit and half-month (a NULL figure: LINE withheld it,
    // below 20). `insight_followers`: the account's friends per day. `insight_requests`: every
    // request to an insight endpoint, claimed before it leaves, so that LINE's hourly limit is
    // counted across processes.
    "CREATE TABLE insight_units (
        unit       TEXT NOT NULL,
        half_first TEXT NOT NULL,
        step       TEXT NOT NULL,
        variant    TEXT,
        first_day  TEXT NOT NULL,
        last_day   TEXT NOT NULL,
        sends      INTEGER NOT NULL,
        PRIMARY KEY (unit, half_first)
    ) WITHOUT ROWID;
    CREATE TABLE insight_chunks (
        unit                    TEXT NOT NULL,
        half_first              TEXT NOT NULL,
        -- The last day asked for: the half-month's, or the day before the fetch while it ran.
        last_day                TEXT NOT NULL,
        unique_impression       INTEGER,
        unique_click            INTEGER,
        unique_media_played     INTEGER,
        unique_media_played_100 INTEGER,
        fetched_at              TEXT NOT NULL,
        settled                 INTEGER NOT NULL,
        PRIMARY KEY (unit, half_first)
    ) WITHOUT ROWID;
    CREATE TABLE insight_followers (
        day              TEXT NOT NULL PRIMARY KEY,
        status           TEXT NOT NULL,
        followers        INTEGER,
        targeted_reaches INTEGER,
        blocks           INTEGER,
        fetched_at       TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE insight_requests (
        id       INTEGER PRIMARY KEY,
        endpoint TEXT NOT NULL,
        at       TEXT NOT NULL,
        subject  TEXT NOT NULL,
        outcome  TEXT
    );
    CREATE INDEX insight_requests_at ON insight_requests (endpoint, at);",
    // 9: `plan` marks the sends the ledger already has, reading the window's rows once
    // (`sends_in_window`): sent ones through `sends_live`, open ones through `sends_open`, and
    // the ones settled without going out (failed, expired, skipped) through this index, each a
    // range on `expires_at`, so that years of history cost a plan nothing. Partial: a send that
    // goes out never enters it.
    "CREATE INDEX sends_settled ON sends (sink, expires_at, status)
        WHERE status IN ('failed', 'expired', 'skipped');",
    // 10: a send's problem (failed, held, expired, skipped) and when it became one, in columns
    // of their own that the problem indexes are built on. Indexed on `status`, they were kept
    // up by SQLite on every send's settling UPDATE (it changes `status` and `updated_at`), and
    // a first run of 200,000 sends took 10.5 s instead of 8.6 s; a send that goes out never
    // touches these columns, so those indexes cost it nothing.
    "ALTER TABLE sends ADD COLUMN problem TEXT;
    ALTER TABLE sends ADD COLUMN problem_at TEXT;
    UPDATE sends SET problem = status, problem_at = updated_at
        WHERE status IN ('failed', 'held', 'expired', 'skipped');
    DROP INDEX sends_problems;
    DROP INDEX sends_settled;
    CREATE INDEX sends_problems ON sends (problem_at) WHERE problem IN ('failed', 'held', 'expired');
    CREATE INDEX sends_settled ON sends (sink, expires_at, problem)
        WHERE problem IN ('failed', 'expired', 'skipped');",
    // 11: an outbox batch recorded sent with its claims before its lines are written (see
    // claims.rs, `OutboxClaims`): where its lines begin in the outbox and when its rows were
    // sent, so that a run after a crash looks for those lines and reopens the rows whose line
    // is not there. One row at most, none once the lines are written.
    "CREATE TABLE outbox_unwritten (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        from_byte INTEGER NOT NULL,
        sent_at   TEXT NOT NULL
    );",
    // 12: the fingerprints of `marks` again, as (patient hash, print) pairs packed in blobs
    // (see mark_log.rs): a pass loads them from a few rows instead of scanning every patient's
    // row. `mark_print_state` counts the pairs logged and those live after the last
    // compaction. Filled from the ledger's `marks` by the migration (`MARK_PRINT_LOG`).
    "CREATE TABLE mark_print_log (
        seq   INTEGER PRIMARY KEY,
        pairs BLOB NOT NULL
    );
    CREATE TABLE mark_print_state (
        live   INTEGER NOT NULL,
        logged INTEGER NOT NULL
    );
    INSERT INTO mark_print_state VALUES (0, 0);",
    // 13: the partial indexes of open and problem sends say their statuses as `=` comparisons
    // joined by OR instead of `IN` lists. SQLite checks an index's condition (and a CHECK) on
    // every row an INSERT or UPDATE writes, and an `IN` list of three or more constants there
    // is a temporary b-tree built anew for each row: with three such indexes and the `status`
    // CHECK, a new send's row cost ~55,000 instructions, most of it building and freeing those
    // trees. The queries that read through these indexes say the same OR (SQLite uses a
    // partial index only for a query whose condition implies the index's). The CHECK is
    // rewritten the same way by `STATUS_CHECK`, without rebuilding the table.
    "DROP INDEX sends_open;
    CREATE INDEX sends_open ON sends (sink, expires_at)
        WHERE status = 'pending' OR status = 'held' OR status = 'blocked';
    DROP INDEX sends_problems;
    CREATE INDEX sends_problems ON sends (problem_at)
        WHERE problem = 'failed' OR problem = 'held' OR problem = 'expired';
    DROP INDEX sends_settled;
    CREATE INDEX sends_settled ON sends (sink, expires_at, problem)
        WHERE problem = 'failed' OR problem = 'expired' OR problem = 'skipped';",
    // 14: first sightings' marks packed, up to 64 rows to a row of `mark_packs` (see
    // mark_packs.rs), instead of a `marks` row a patient: a first pass wrote a million. The fingerprints' log says which pack a patient's row is in, so its
    // entries grow a field: emptied here and filled again from `marks` (`MARK_PACKS`).
    "CREATE TABLE mark_packs (
        seq  INTEGER PRIMARY KEY,
        rows BLOB NOT NULL
    );
    DELETE FROM mark_print_log;
    UPDATE mark_print_state SET live = 0, logged = 0;",
    // 15: a send's instants (due, expiry, creation, last change, delivery, problem) as whole
    // seconds since the Unix epoch, UTC, instead of RFC 3339 text. Text made each row ~250
    // bytes and each key of `sends_live` and `sends_delivered` ~100: a first run at a million
    // patients wrote 90 MB of them, twice (the log, then its checkpoint), and compared 20-byte
    // strings on every step down a B-tree. As integers (4 to 6 bytes) the same sends take
    // ~40% less room and a first run ~1 s less CPU (benches/README.md, session 24). STRICT:
    // a value of another type (a text instant from code that missed the change) is refused
    // with an error instead of being stored and then compared as text, which sorts after every
    // integer. An instant SQLite cannot read (none that steprule wrote) is copied as the text it
    // is, which STRICT refuses: the migration fails and changes nothing, rather than lose it.
    // `occurrence` stays text: it is part of the key, and events and tracked links name their
    // send by it. `outbox_unwritten.sent_at` is compared with `sends.sent_at`: an integer too.
    "CREATE TABLE sends_v15 (
        sink            TEXT NOT NULL CHECK (sink = 'line' OR sink = 'outbox'),
        patient         TEXT NOT NULL,
        step            TEXT NOT NULL,
        occurrence      TEXT NOT NULL,
        variant         TEXT,
        template        TEXT NOT NULL,
        status          TEXT NOT NULL
                        CHECK (status = 'sent' OR status = 'pending' OR status = 'held' OR status = 'blocked' OR status = 'failed' OR status = 'expired' OR status = 'skipped'),
        retry_key       TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        due_at          INTEGER NOT NULL,
        expires_at      INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        sent_at         INTEGER,
        line_request_id TEXT,
        last_error      TEXT,
        note            TEXT,
        outbox_from     INTEGER,
        problem         TEXT,
        problem_at      INTEGER,
        PRIMARY KEY (sink, patient, step, occurrence)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO sends_v15 SELECT sink, patient, step, occurrence, variant, template, status,
        retry_key, attempts, coalesce(unixepoch(due_at), due_at),
        coalesce(unixepoch(expires_at), expires_at), coalesce(unixepoch(created_at), created_at),
        coalesce(unixepoch(updated_at), updated_at), coalesce(unixepoch(sent_at), sent_at),
        line_request_id, last_error, note, outbox_from, problem,
        coalesce(unixepoch(problem_at), problem_at)
        FROM sends;
    DROP TABLE sends;
    ALTER TABLE sends_v15 RENAME TO sends;
    CREATE INDEX sends_open ON sends (sink, expires_at)
        WHERE status = 'pending' OR status = 'held' OR status = 'blocked';
    CREATE INDEX sends_live ON sends (sink, expires_at, sent_at, status) WHERE status = 'sent';
    CREATE INDEX sends_delivered ON sends (sent_at, sink, step, variant, status)
        WHERE status = 'sent';
    CREATE INDEX sends_problems ON sends (problem_at)
        WHERE problem = 'failed' OR problem = 'held' OR problem = 'expired';
    CREATE INDEX sends_settled ON sends (sink, expires_at, problem)
        WHERE problem = 'failed' OR problem = 'expired' OR problem = 'skipped';
    CREATE TABLE outbox_unwritten_v15 (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        from_byte INTEGER NOT NULL,
        sent_at   INTEGER NOT NULL
    ) STRICT;
    INSERT INTO outbox_unwritten_v15
        SELECT id, from_byte, coalesce(unixepoch(sent_at), sent_at) FROM outbox_unwritten;
    DROP TABLE outbox_unwritten;
    ALTER TABLE outbox_unwritten_v15 RENAME TO outbox_unwritten;",
];

/// The version whose migration also fills the fingerprints' log from `marks`, in Rust: SQL
/// cannot compute the patients' hashes.
pub const MARK_PRINT_LOG: usize = 12;

/// The version whose migration also fills the fingerprints' log again, its entries saying
/// where each row is (see mark_packs.rs).
pub const MARK_PACKS: usize = 14;

/// The version whose migration also rewrites the `status` CHECK of `sends` (see
/// [`rewrite_status_check`]).
pub const STATUS_CHECK: usize = 13;

/// The version that writes the instants of `sends` as seconds (see [`unreadable_instant`]).
pub const INTEGER_INSTANTS: usize = 15;

/// The column whose text instant stopped migration `version` (SQLite read none in it, and
/// STRICT refused the text), so that the operator is told which and what to do.
pub fn unreadable_instant(version: usize, error: &rusqlite::Error) -> Option<&'static str> {
    const COLUMNS: [&str; 6] = [
        "due_at",
        "expires_at",
        "created_at",
        "updated_at",
        "sent_at",
        "problem_at",
    ];
    let message = error.to_string();
    if version != INTEGER_INSTANTS || !message.contains("cannot store TEXT value in INTEGER") {
        return None;
    }
    COLUMNS
        .into_iter()
        .find(|column| message.ends_with(&format!(".{column}")))
}

/// The `status` CHECK as versions 3 to 12 wrote it.
const OLD_STATUS_CHECK: (&str, &str) = ("CHECK (status IN ('pending',", "'skipped'))");

/// The same statuses as OR-ed comparisons (`sent` first: nearly every row written is sent or
/// pending), which SQLite checks without building a temporary b-tree for each row written.
const NEW_STATUS_CHECK: &str = "CHECK (status = 'sent' OR status = 'pending' OR \
    status = 'held' OR status = 'blocked' OR status = 'failed' OR status = 'expired' OR \
    status = 'skipped')";

/// Rewrites the `status` CHECK of `sends` as [`NEW_STATUS_CHECK`], in the table's stored SQL:
/// the same statuses allowed, so every row already written satisfies it and nothing on disk
/// changes. That is the case SQLite documents for `writable_schema` ("Making Other Kinds Of
/// Table Schema Changes" in its ALTER TABLE page): edit the text, bump `schema_version` so
/// every connection reads the schema again, all in the migration's transaction. A table
/// whose text does not hold the old CHECK as written (none that steprule made) keeps it: only
/// slower to write.
pub fn rewrite_status_check(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let sql: String = tx.query_row(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'sends'",
        [],
        |row| row.get(0),
    )?;
    let Some(rewritten) = with_new_status_check(&sql) else {
        return Ok(());
    };
    let version: i64 = tx.pragma_query_value(None, "schema_version", |row| row.get(0))?;
    tx.pragma_update(None, "writable_schema", true)?;
    tx.execute(
        "UPDATE sqlite_schema SET sql = ?1 WHERE type = 'table' AND name = 'sends'",
        [&rewritten],
    )?;
    tx.pragma_update(None, "schema_version", version + 1)?;
    tx.pragma_update(None, "writable_schema", false)
}

/// `sql` with its old `status` CHECK replaced, or `None` when it has none.
fn with_new_status_check(sql: &str) -> Option<String> {
    let (head, tail) = OLD_STATUS_CHECK;
    let start = sql.find(head)?;
    let end = start + sql[start..].find(tail)? + tail.len();
    Some(format!(
        "{}{NEW_STATUS_CHECK}{}",
        &sql[..start],
        &sql[end..]
    ))
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
