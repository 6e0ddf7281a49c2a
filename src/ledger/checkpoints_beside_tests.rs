use std::time::{Duration, Instant};

use super::*;
use crate::ledger::Ledger;

/// A ledger with a table of filler rows: each commit of [`write`] adds a few 4 KiB pages.
fn filled(dir: &std::path::Path) -> Ledger {
    let ledger = Ledger::open(&dir.join("ledger.db")).unwrap();
    (ledger.conn)
        .execute_batch("CREATE TABLE filler (n INTEGER PRIMARY KEY, bytes BLOB NOT NULL)")
        .unwrap();
    ledger
}

/// Commits `rows` rows of 3 KiB each, in one transaction.
fn write(ledger: &Ledger, first: i64, rows: i64) {
    let conn = &ledger.conn;
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    for n in first..first + rows {
        conn.execute("INSERT INTO filler VALUES (?1, zeroblob(3072))", [n])
            .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
}

fn log_bytes(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("ledger.db-wal")).map_or(0, |m| m.len())
}

fn count(dir: &std::path::Path) -> i64 {
    let conn = Connection::open(dir.join("ledger.db")).unwrap();
    conn.query_row("SELECT count(*) FROM filler", [], |row| row.get(0))
        .unwrap()
}

/// Waits until the thread has made more than `made` checkpoints.
fn wait_past(checkpoints: &CheckpointsBeside, made: u64) {
    let started = Instant::now();
    while checkpoints.done() <= made {
        assert!(started.elapsed() < Duration::from_secs(30), "no checkpoint");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Writes 200 commits of 10 rows (~10 pages each: an 8 MB log if it never started again)
/// beside a thread asked past `beside_from` frames, the writer checkpointing itself past
/// `writer_from`; `after_each` runs after every commit. Returns the thread's checkpoints, after
/// checking the log stayed under 1 MB and every row is in the ledger once it is closed.
fn two_hundred_commits(
    beside_from: c_int,
    writer_from: c_int,
    after_each: impl Fn(&CheckpointsBeside),
) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let ledger = filled(dir.path());
    let path = ledger.file.path.clone();
    let checkpoints =
        CheckpointsBeside::start(&ledger.conn, &path, beside_from, writer_from).unwrap();
    for batch in 0..200 {
        write(&ledger, batch * 10, 10);
        after_each(&checkpoints);
    }
    let made = checkpoints.done();
    assert!(
        log_bytes(dir.path()) < 1 << 20,
        "log of {} bytes",
        log_bytes(dir.path())
    );
    checkpoints.stop(&ledger.conn);
    drop(ledger);
    assert_eq!(count(dir.path()), 2000);
    made
}

#[test]
fn a_long_log_is_checkpointed_beside_and_started_again_by_the_writer() {
    // Asked past 32 frames; the writer never checkpoints itself. Past the threshold, a commit
    // asks; the test waits for the thread's checkpoint, so that the next commit copies the
    // rest and the log starts again (the thread is otherwise free to lag, and the writer
    // copies it all past its own threshold).
    let seen = std::cell::Cell::new(0);
    let made = two_hundred_commits(32, c_int::MAX, |checkpoints| {
        if checkpoints.asked() {
            wait_past(checkpoints, seen.get());
            seen.set(checkpoints.done());
        }
    });
    assert!(made >= 10, "{made} checkpoints");
}

#[test]
fn the_writer_checkpoints_itself_when_the_thread_is_never_asked_in_time() {
    // The thread is never asked; the writer checkpoints itself past 32 frames.
    let made = two_hundred_commits(c_int::MAX, 32, |_| {});
    assert_eq!(made, 0);
}

#[test]
fn stopping_gives_the_writer_its_own_checkpoints_back() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = filled(dir.path());
    let path = ledger.file.path.clone();
    let autocheckpoint = |ledger: &Ledger| -> i64 {
        (ledger.conn)
            .pragma_query_value(None, "wal_autocheckpoint", |row| row.get(0))
            .unwrap()
    };
    assert_eq!(autocheckpoint(&ledger), WAL_CHECKPOINT_PAGES);
    let checkpoints = CheckpointsBeside::start(&ledger.conn, &path, 32, 64).unwrap();
    // SQLite reports no automatic checkpoint while another hook is installed.
    assert_eq!(autocheckpoint(&ledger), 0);
    checkpoints.stop(&ledger.conn);
    assert_eq!(autocheckpoint(&ledger), WAL_CHECKPOINT_PAGES);
}

#[test]
fn a_ledger_dropped_with_its_thread_beside_closes_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = filled(dir.path());
    ledger.checkpoint_beside();
    assert!(ledger.checkpoints.is_some());
    for batch in 0..20 {
        write(&ledger, batch * 10, 10);
    }
    drop(ledger);
    // Both connections are closed, the last of them having copied the whole log into the
    // ledger and removed it.
    assert!(!dir.path().join("ledger.db-wal").exists());
    assert_eq!(count(dir.path()), 200);
}

#[test]
fn a_checkpoint_asked_for_now_is_made_below_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = filled(dir.path());
    let path = ledger.file.path.clone();
    let checkpoints =
        CheckpointsBeside::start(&ledger.conn, &path, c_int::MAX, c_int::MAX).unwrap();
    for batch in 0..5 {
        write(&ledger, batch * 10, 10);
    }
    assert_eq!(checkpoints.done(), 0);
    let asker = checkpoints.asker();
    std::thread::spawn(move || asker.ask()).join().unwrap();
    wait_past(&checkpoints, 0);
    // Every frame is copied: the next transaction starts the log again.
    write(&ledger, 50, 1);
    let frames: i64 = (ledger.conn)
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
        .unwrap();
    assert!(frames < 10, "{frames} frames in the log");
    checkpoints.stop(&ledger.conn);
    drop(ledger);
    assert_eq!(count(dir.path()), 51);
}
