//! The write-ahead log checkpointed beside a pass, on a connection and a thread of their own.
//!
//! SQLite copies the log's pages into the ledger (a checkpoint) on the connection whose
//! commit made the log long: the pass's thread, which is the one thread of a first run that
//! cannot be shared (one writer). At a million patients its checkpoints took ~7% of its time,
//! and the one it made on closing ran after every other thread had finished, with a core
//! idle. Here a commit that leaves the log at [`BESIDE_FROM`] frames or more wakes a thread
//! that checkpoints them (`PASSIVE`: it never waits on the writer, nor the writer on it) while
//! the pass goes on writing. The log starts again from its beginning only at a transaction
//! begun once every frame is copied, so the first commit after the thread's checkpoint
//! copies the frames committed meanwhile, on the writer (a few commits' worth instead of the
//! whole log), and the writer's next transaction starts the log again, as after its own.
//!
//! A checkpoint only copies what the log already holds: what a commit promises is unchanged.
//! When the thread falls behind (a reader keeping an old snapshot, a slow disk), the writer
//! checkpoints itself once the log holds [`WRITER_FROM`] frames, as it did before past a
//! quarter of that: the log stays bounded.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rusqlite::{ffi, Connection};

use super::tuning::WAL_CHECKPOINT_PAGES;

/// Frames in the log after which a commit asks the thread beside for a checkpoint: where the
/// writer checkpointed itself before.
pub(super) const BESIDE_FROM: c_int = WAL_CHECKPOINT_PAGES as c_int;

/// Frames in the log after which the writer checkpoints itself, whatever the thread is doing:
/// four times [`BESIDE_FROM`] (256 MiB of 4 KiB pages).
pub(super) const WRITER_FROM: c_int = 4 * BESIDE_FROM;

/// Asks the thread beside a ledger's writer for a checkpoint now, from any thread: when the
/// writer is about to go on alone (a pass's evaluation has ended, and the writer has its queue
/// left to write), the log so far is copied beside it, and its close copies only the rest.
#[derive(Clone)]
pub struct CheckpointNow(Arc<Shared>);

impl CheckpointNow {
    pub fn ask(&self) {
        if let Ok(mut cycle) = self.0.cycle.lock() {
            cycle.stage = Stage::Asked;
        }
        self.0.wake.notify_one();
    }
}

impl std::fmt::Debug for CheckpointNow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointNow")
    }
}

/// A thread checkpointing a ledger's log beside its writer, asked by the writer's commits.
pub(super) struct CheckpointsBeside {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// What the writer's hook and the thread share. The hook holds a pointer to it, which stays
/// valid while the [`CheckpointsBeside`] holding it lives: it is dropped only after the hook
/// is replaced ([`CheckpointsBeside::stop`]).
struct Shared {
    cycle: Mutex<Cycle>,
    wake: Condvar,
    /// Frames in the log after which a commit asks, and after which the writer checkpoints
    /// itself ([`BESIDE_FROM`], [`WRITER_FROM`]; smaller in tests).
    beside_from: c_int,
    writer_from: c_int,
    /// Checkpoints the thread has made (for tests).
    done: AtomicU64,
}

/// Where the log is between two starts.
#[derive(Default)]
struct Cycle {
    stage: Stage,
    /// The thread is to end.
    stop: bool,
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    /// Shorter than the threshold: nothing to do.
    #[default]
    Short,
    /// Past it: the thread is asked to checkpoint, or checkpointing.
    Asked,
    /// The thread's checkpoint is made: the writer's next commit copies the rest.
    Copied,
}

impl CheckpointsBeside {
    /// Starts the thread, with its own connection to `path`, and hooks the writer's commits
    /// (`writer`, the ledger's connection) to it; `None`, with the writer left checkpointing
    /// itself as before, when the connection or the thread cannot be had.
    pub(super) fn start(
        writer: &Connection,
        path: &std::path::Path,
        beside_from: c_int,
        writer_from: c_int,
    ) -> Option<CheckpointsBeside> {
        super::configure_sqlite();
        let conn = Connection::open(path).ok()?;
        // A checkpoint syncs as the writer's would (synchronous is per connection).
        conn.pragma_update(None, "synchronous", "NORMAL").ok()?;
        let shared = Arc::new(Shared {
            cycle: Mutex::new(Cycle::default()),
            wake: Condvar::new(),
            beside_from,
            writer_from,
            done: AtomicU64::new(0),
        });
        let beside = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("checkpoints".into())
            .spawn(move || checkpoint_when_asked(&conn, &beside))
            .ok()?;
        // SAFETY: `writer` is a live connection, used on this thread only. The pointer is to
        // `shared`, which outlives the hook: `stop` replaces the hook before it is dropped.
        unsafe {
            ffi::sqlite3_wal_hook(
                writer.handle(),
                Some(commit_hook),
                Arc::as_ptr(&shared).cast_mut().cast::<c_void>(),
            );
        }
        Some(CheckpointsBeside {
            shared,
            thread: Some(thread),
        })
    }

    /// A handle to ask for a checkpoint now.
    pub(super) fn asker(&self) -> CheckpointNow {
        CheckpointNow(Arc::clone(&self.shared))
    }

    /// Checkpoints the thread has made so far.
    #[cfg(test)]
    pub(super) fn done(&self) -> u64 {
        self.shared.done.load(Ordering::Relaxed)
    }

    /// Whether the thread is asked for a checkpoint it has not finished.
    #[cfg(test)]
    pub(super) fn asked(&self) -> bool {
        self.shared.cycle.lock().unwrap().stage == Stage::Asked
    }

    /// Gives the writer its own checkpoints back (`wal_autocheckpoint` replaces the hook) and
    /// ends the thread, after the checkpoint it is making, if any.
    pub(super) fn stop(mut self, writer: &Connection) {
        // Replaced first: no commit may reach the hook once `shared` can be dropped.
        if writer
            .pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)
            .is_err()
        {
            // SAFETY: as in `start`; no hook at all is always valid.
            unsafe {
                ffi::sqlite3_wal_hook(writer.handle(), None, std::ptr::null_mut());
            }
        }
        self.end_thread();
    }

    fn end_thread(&mut self) {
        if let Ok(mut cycle) = self.shared.cycle.lock() {
            cycle.stop = true;
        }
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for CheckpointsBeside {
    /// Only reached without [`CheckpointsBeside::stop`] when the ledger's connection is
    /// already gone with its hook (the ledger drops this first otherwise, see `Ledger`'s
    /// `Drop`): the thread is ended all the same.
    fn drop(&mut self) {
        self.end_thread();
    }
}

/// The thread: a `PASSIVE` checkpoint each time it is asked, until told to stop. One that
/// fails (a full disk) loses nothing (the log keeps the pages); the writer's next commit
/// checkpoints on the writer, as it would have without this thread.
fn checkpoint_when_asked(conn: &Connection, shared: &Shared) {
    loop {
        {
            let Ok(mut cycle) = shared.cycle.lock() else {
                return;
            };
            while cycle.stage != Stage::Asked && !cycle.stop {
                cycle = match shared.wake.wait(cycle) {
                    Ok(cycle) => cycle,
                    Err(_) => return,
                };
            }
            if cycle.stop {
                return;
            }
        }
        let made = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(0)
        });
        if made.is_ok() {
            shared.done.fetch_add(1, Ordering::Relaxed);
        }
        let Ok(mut cycle) = shared.cycle.lock() else {
            return;
        };
        if cycle.stage == Stage::Asked {
            cycle.stage = Stage::Copied;
        }
    }
}

/// SQLite's WAL hook, called by the writer's connection after each commit with the frames the
/// log holds: past `beside_from`, asks the thread for a checkpoint, and once it is made
/// copies the rest on the writer; past `writer_from`, checkpoints on the writer whatever the
/// thread is doing (as SQLite's own hook does past its threshold).
unsafe extern "C" fn commit_hook(
    context: *mut c_void,
    db: *mut ffi::sqlite3,
    name: *const c_char,
    frames: c_int,
) -> c_int {
    // SAFETY: `context` is the `Shared` that `start` installed, alive until `stop` replaced
    // this hook.
    let shared = unsafe { &*context.cast_const().cast::<Shared>() };
    let mut on_writer = frames >= shared.writer_from;
    if let Ok(mut cycle) = shared.cycle.lock() {
        match cycle.stage {
            Stage::Short if frames >= shared.beside_from => {
                cycle.stage = Stage::Asked;
                shared.wake.notify_one();
            }
            // Not taken back: a checkpoint asked for now (`CheckpointNow`) is asked below the
            // threshold, and the thread may not have woken yet.
            Stage::Short | Stage::Asked => {}
            // The log started again.
            Stage::Copied if frames < shared.beside_from => cycle.stage = Stage::Short,
            // Until the log starts again (a reader's old snapshot may hold it), every commit
            // copies its frames, as SQLite's own hook does.
            Stage::Copied => on_writer = true,
        }
    }
    if on_writer {
        // SAFETY: `db` and `name` are the ones SQLite called this hook with. A checkpoint
        // that cannot run now (the thread is making one) returns at once.
        unsafe {
            ffi::sqlite3_wal_checkpoint_v2(
                db,
                name,
                ffi::SQLITE_CHECKPOINT_PASSIVE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    }
    ffi::SQLITE_OK
}

#[cfg(test)]
#[path = "checkpoints_beside_tests.rs"]
mod tests;
