//! SQLite allocates through the allocator the process routes it to (the binary routes it to
//! mimalloc, see src/main.rs), and a ledger works on it. A test binary of its own: the route
//! only takes before the process's first SQLite connection, which other tests in a shared
//! binary would race to open.

#![allow(clippy::unwrap_used)]

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

use steprule::ledger::{route_sqlite_memory, Allocator};

#[path = "support/ledger_in_use.rs"]
mod ledger_in_use;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn counted_malloc(size: usize) -> *mut c_void {
    ALLOCATED.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the C library's malloc.
    unsafe { libc::malloc(size) }
}

unsafe extern "C" fn counted_realloc(block: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: a block from `counted_malloc` (libc's), or null.
    unsafe { libc::realloc(block, size) }
}

unsafe extern "C" fn counted_free(block: *mut c_void) {
    if !block.is_null() {
        FREED.fetch_add(1, Ordering::Relaxed);
    }
    // SAFETY: a block from `counted_malloc` (libc's), or null.
    unsafe { libc::free(block) }
}

unsafe extern "C" fn counted_size(block: *const c_void) -> usize {
    // SAFETY: a live block from `counted_malloc` (libc's).
    unsafe { libc::malloc_usable_size(block.cast_mut()) }
}

#[test]
fn sqlite_allocates_through_the_routed_allocator() {
    route_sqlite_memory(Allocator {
        malloc: counted_malloc,
        realloc: counted_realloc,
        free: counted_free,
        usable_size: counted_size,
    });
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_in_use::ledger_in_use(dir.path(), 1_000, 7);
    let (allocated, freed) = (
        ALLOCATED.load(Ordering::Relaxed),
        FREED.load(Ordering::Relaxed),
    );
    // The page cache alone is hundreds of blocks; every block freed was one given.
    assert!(allocated > 100, "{allocated} blocks");
    assert!(freed <= allocated, "{freed} freed of {allocated}");
    drop(ledger);
    assert!(
        FREED.load(Ordering::Relaxed) > freed,
        "closing frees the cache"
    );
}
