//! How SQLite is set up for the ledger's writer: what a pass's batches cost it in memory,
//! system calls and disk writes. Durability is `open_file`'s (WAL, `synchronous = NORMAL`);
//! nothing here changes what a commit promises.

use std::os::raw::c_int;

use rusqlite::Connection;

/// The bytes of a statement journal SQLite keeps in memory before it spills to a temporary
/// file (its default is 64 KiB). A statement that writes many rows and may abort inside a
/// transaction (the marks' `INSERT OR REPLACE`, a batch's settling `UPDATE`) first copies each
/// page it changes there, so that it alone can be undone: past 64 KiB, a write and a read of
/// a temporary file per page. Bounded: a statement that changes more spills as before.
const STATEMENT_JOURNAL_IN_MEMORY: c_int = 8 * 1024 * 1024;

/// The write-ahead log's pages (4 KiB each) after which a commit checkpoints them into the
/// ledger (SQLite's default is 1,000). Each checkpoint writes every page the log holds once
/// and syncs: the fewer of them, the fewer times a page that every batch changes (the marks'
/// and the indexes' pages, spread over the file by their random keys) is written again.
/// Bounded: the log grows to about this size plus a batch (past it only while a reader keeps
/// a snapshot older than the log's start, as `status` beside a run does for a moment).
const WAL_CHECKPOINT_PAGES: i64 = 16_384;

/// What the log's file is cut back to once a checkpoint has emptied it: its size on disk stays
/// bounded whatever the run's length.
const WAL_KEPT_BYTES: i64 = 64 * 1024 * 1024;

/// Statements kept prepared per connection. A pass's batches come in a few shapes per size
/// (settling, claiming, looking claims up, marks: nine powers of two each), more than
/// rusqlite's default of 16: evicted, a 256-row statement was parsed again each time (a
/// quarter of a first run's instructions on the pass's thread).
const STATEMENT_CACHE: usize = 128;

/// 32 MiB of page cache (SQLite's default is 2 MiB): a first run over a million patients keeps
/// its index pages in memory instead of reading them back.
const PAGE_CACHE_KIB: i64 = 32 * 1024;

/// Sets the writer's connection up for a pass's batches.
pub(super) fn tune_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
    conn.pragma_update(None, "journal_size_limit", WAL_KEPT_BYTES)?;
    conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Turns off SQLite's global memory statistics and keeps statement journals in memory up to
/// [`STATEMENT_JOURNAL_IN_MEMORY`], once per process, before its first connection. Kept by
/// default, the statistics take a process-wide mutex around every allocation and free SQLite
/// makes (~2.1 million `pthread_mutex_lock` calls, ~130 M instructions on a first run's pass
/// at 100,000 patients); steprule reads none of them. SQLite accepts these settings only
/// before it is initialised (rusqlite initialises it with the first connection), so every
/// connection the ledger opens calls this first; after that, or if anything else opened a
/// connection before, SQLite refuses them (`SQLITE_MISUSE`) and keeps its defaults: slower,
/// never wrong.
pub(crate) fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int. `sqlite3_config` must not run beside
        // other SQLite calls; the `Once` runs it once, before this process's first connection,
        // and a call after initialisation only returns an error.
        let _ = unsafe {
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int)
        };
        // SAFETY: as above; SQLITE_CONFIG_STMTJRNL_SPILL takes one int.
        let _ = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_STMTJRNL_SPILL,
                STATEMENT_JOURNAL_IN_MEMORY,
            )
        };
    });
}
