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

#[test]
fn a_long_log_is_checkpointed_beside_and_started_again_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = filled(dir.path());
    let path = ledger.file.path.clone();
    // Asked past 32 frames; the writer never checkpoints itself.
    let checkpoints = CheckpointsBeside::start(&ledger.conn, &path, 32, c_int::MAX).unwrap();
    let mut seen = 0;
    for batch in 0..200 {
        write(&ledger, batch * 10, 10);
        // Past the threshold, a commit asks; the test waits for the thread's checkpoint, so
        // that the next commit copies the rest and the log starts again (the thread is
        // otherwise free to lag, and the writer copies it all past its own threshold).
        if checkpoints.asked() {
            wait_past(&checkpoints, seen);
            seen = checkpoints.done();
        }
    }
    assert!(
        checkpoints.done() >= 10,
        "{} checkpoints",
        checkpoints.done()
    );
    // 200 commits of ~10 pages each would make an 8 MB log if it never started again.
    assert!(
        log_bytes(dir.path()) < 1 << 20,
        "log of {} bytes",
        log_bytes(dir.path())
    );
    checkpoints.stop(&ledger.conn);
    drop(ledger);
    assert_eq!(count(dir.path()), 2000);
}

#[test]
fn the_writer_checkpoints_itself_when_the_thread_is_never_asked_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = filled(dir.path());
    let path = ledger.file.path.clone();
    // The thread is never asked; the writer checkpoints itself past 32 frames.
    let checkpoints = CheckpointsBeside::start(&ledger.conn, &path, c_int::MAX, 32).unwrap();
    for batch in 0..200 {
        write(&ledger, batch * 10, 10);
    }
    assert_eq!(checkpoints.done(), 0);
    assert!(
        log_bytes(dir.path()) < 1 << 20,
        "log of {} bytes",
        log_bytes(dir.path())
    );
    checkpoints.stop(&ledger.conn);
    drop(ledger);
    assert_eq!(count(dir.path()), 2000);
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
    // The thread's connection closed first, so the writer's close was the last: it
    // checkpointed the whole log and removed it.
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
