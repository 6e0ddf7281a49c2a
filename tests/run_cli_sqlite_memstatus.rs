//! SQLite's global memory statistics are off in a process that opened a ledger: kept, they
//! take a process-wide mutex around each of SQLite's allocations (issue 13). A test binary of
//! its own: the setting only takes before the process's first SQLite connection, which other
//! tests in a shared binary would race to open.

#![allow(clippy::unwrap_used)]

use std::os::raw::c_int;

use rusqlite::ffi;

#[path = "support/ledger_in_use.rs"]
mod ledger_in_use;

/// SQLite's count of the bytes it holds, which it keeps only with its statistics on.
fn memory_used() -> i64 {
    let (mut current, mut highest) = (0i64, 0i64);
    // SAFETY: two valid pointers; the reset flag is 0.
    let status = unsafe {
        ffi::sqlite3_status64(
            ffi::SQLITE_STATUS_MEMORY_USED,
            &mut current,
            &mut highest,
            0 as c_int,
        )
    };
    assert_eq!(status, ffi::SQLITE_OK);
    current
}

#[test]
fn a_ledger_in_use_leaves_sqlites_memory_statistics_off() {
    let dir = tempfile::tempdir().unwrap();
    // Its open statements and page cache hold memory: counted, this would not be 0.
    let _ledger = ledger_in_use::ledger_in_use(dir.path(), 100, 0);
    assert_eq!(memory_used(), 0);
}
