//! How SQLite is set up for the ledger's writer: what a pass's batches cost it in memory,
//! system calls and disk writes. Durability is `open_file`'s (WAL, `synchronous = NORMAL`);
//! nothing here changes what a commit promises.

use std::os::raw::{c_int, c_void};
use std::sync::OnceLock;

use rusqlite::Connection;

/// The bytes of a statement journal SQLite keeps in memory before it spills to a temporary
/// file (its default is 64 KiB). A statement that writes many rows and may abort inside a
/// transaction (the marks' `INSERT OR REPLACE`, a batch's settling `UPDATE`) first copies each
/// page it changes there, so that it alone can be undone: past 64 KiB, a write and a read of
/// a temporary file per page. It cannot be raised further: SQLite keeps the journal in chunks
/// of this size and spills it a chunk per write, and its unix VFS writes at most 128 KiB − 1
/// bytes in one call (`seekAndWrite` masks the length), so a longer chunk ends the statement
/// as "disk full" (SQLITE_FULL) the moment the journal spills. 8 MiB here did that to any
/// statement past 8 MiB: an upgrade rewriting a long history, a settling `UPDATE` of a batch
/// spread over a large ledger (tests/sqlite_statement_journal.rs).
const STATEMENT_JOURNAL_IN_MEMORY: c_int = 124 * 1024;

/// The write-ahead log's pages (4 KiB each) after which a commit checkpoints them into the
/// ledger (SQLite's default is 1,000). Each checkpoint writes every page the log holds once
/// and syncs: the fewer of them, the fewer times a page that every batch changes (the marks'
/// and the indexes' pages, spread over the file by their random keys) is written again.
/// Bounded: the log grows to about this size plus a batch (past it only while a reader keeps
/// a snapshot older than the log's start, as `status` beside a run does for a moment).
pub(super) const WAL_CHECKPOINT_PAGES: i64 = 16_384;

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
        if ROUTED.get().is_some() {
            let methods = rusqlite::ffi::sqlite3_mem_methods {
                xMalloc: Some(routed_malloc),
                xFree: Some(routed_free),
                xRealloc: Some(routed_realloc),
                xSize: Some(routed_size),
                xRoundup: Some(routed_roundup),
                xInit: Some(routed_init),
                xShutdown: Some(routed_shutdown),
                pAppData: std::ptr::null_mut(),
            };
            // SAFETY: as above; SQLITE_CONFIG_MALLOC takes a pointer to the methods, which
            // SQLite copies before it returns. Refused (already initialised), SQLite keeps its
            // own allocator for every allocation it makes, never a mix of the two.
            let _ = unsafe {
                rusqlite::ffi::sqlite3_config(
                    rusqlite::ffi::SQLITE_CONFIG_MALLOC,
                    &methods as *const rusqlite::ffi::sqlite3_mem_methods,
                )
            };
        }
    });
}

/// An allocator's C entry points, for SQLite to allocate through ([`route_sqlite_memory`]).
/// `usable_size` must answer for any block `malloc` or `realloc` returned: SQLite asks it
/// how large a block is.
#[derive(Debug, Clone, Copy)]
pub struct Allocator {
    pub malloc: unsafe extern "C" fn(usize) -> *mut c_void,
    pub realloc: unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void,
    pub free: unsafe extern "C" fn(*mut c_void),
    pub usable_size: unsafe extern "C" fn(*const c_void) -> usize,
}

static ROUTED: OnceLock<Allocator> = OnceLock::new();

/// Has SQLite allocate through `allocator` instead of the C library's `malloc`: the binary
/// passes the allocator Rust uses (mimalloc), so the ledger's writer (the pass's thread, whose
/// statements allocate and free a few records a row and copy every text they bind) does not
/// also run glibc's. glibc's took ~2% of a first run's instructions at 100,000 patients;
/// through mimalloc the run takes 1.1% fewer. To be called before the first connection;
/// later, or a second time, it changes nothing (see [`configure_sqlite`]).
pub fn route_sqlite_memory(allocator: Allocator) {
    let _ = ROUTED.set(allocator);
}

// The methods are installed only once an allocator is routed (and it is never unset), so
// each finds one; without, they act as an allocator that has no memory.

unsafe extern "C" fn routed_malloc(bytes: c_int) -> *mut c_void {
    match (ROUTED.get(), usize::try_from(bytes)) {
        // SAFETY: the allocator's own `malloc`, for a size SQLite asked for.
        (Some(routed), Ok(bytes)) => unsafe { (routed.malloc)(bytes) },
        _ => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn routed_free(block: *mut c_void) {
    if let Some(routed) = ROUTED.get() {
        // SAFETY: SQLite frees only blocks this allocator gave it (or null).
        unsafe { (routed.free)(block) }
    }
}

unsafe extern "C" fn routed_realloc(block: *mut c_void, bytes: c_int) -> *mut c_void {
    match (ROUTED.get(), usize::try_from(bytes)) {
        // SAFETY: a block this allocator gave SQLite, grown or shrunk as SQLite asks.
        (Some(routed), Ok(bytes)) => unsafe { (routed.realloc)(block, bytes) },
        _ => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn routed_size(block: *mut c_void) -> c_int {
    let Some(routed) = ROUTED.get().filter(|_| !block.is_null()) else {
        return 0;
    };
    // SAFETY: a block this allocator gave SQLite. SQLite's blocks are under 2 GiB (its
    // largest allocation), so the size fits; clamped all the same.
    let size = unsafe { (routed.usable_size)(block) };
    c_int::try_from(size).unwrap_or(c_int::MAX)
}

/// Sizes rounded up to 8 bytes, as SQLite's own allocator rounds them.
unsafe extern "C" fn routed_roundup(bytes: c_int) -> c_int {
    bytes.saturating_add(7) & !7
}

unsafe extern "C" fn routed_init(_: *mut c_void) -> c_int {
    rusqlite::ffi::SQLITE_OK
}

unsafe extern "C" fn routed_shutdown(_: *mut c_void) {}
