//! The fingerprints of `marks` read beside a pass's start: a rerun's pass was serial until
//! they were in (a scan of every row, a third of its start), though nothing needs them before
//! the first patient is evaluated.

use super::mark_log;
use super::{Ledger, LedgerError, PassPrints};

impl Ledger {
    /// [`Ledger::mark_prints`] read on a thread of its own, on a read-only connection of its
    /// own, while this connection goes on: a rerun's pass is otherwise serial until the
    /// fingerprints (a scan of every row) are in. WAL lets a reader beside the writer, and the
    /// reader sees the last commit: the marks as they are now, since a pass writes none before
    /// its first batch, which waits for the prints. `None` when no thread could be started
    /// (the caller reads them here, as before).
    pub fn mark_prints_beside(&self) -> Result<Option<PrintsBeside>, LedgerError> {
        self.write_marks()?;
        // Another connection sees only what is committed.
        if self.in_batch {
            return Ok(None);
        }
        let path = self.file.path.clone();
        let reading = std::thread::Builder::new()
            .name("mark-prints".into())
            .spawn(move || read_prints(&path));
        Ok(reading.ok().map(|handle| PrintsBeside {
            handle: Some(handle),
        }))
    }
}

/// The fingerprints being read by [`Ledger::mark_prints_beside`].
#[derive(Debug)]
pub struct PrintsBeside {
    /// Taken by [`PrintsBeside::wait`]; a pass that fails before it waits joins on drop, so
    /// that no reader outlives its pass (`--every` runs passes for months).
    handle: Option<std::thread::JoinHandle<Result<Option<PassPrints>, LedgerError>>>,
}

impl PrintsBeside {
    /// The fingerprints, or the error reading them on the pass's connection would have given;
    /// `None` when the reader could not open a connection of its own (the caller reads them
    /// on its own connection, as before, and meets whatever stopped the reader there).
    pub fn wait(mut self) -> Result<Option<PassPrints>, LedgerError> {
        match self.handle.take().map(std::thread::JoinHandle::join) {
            Some(Ok(read)) => read,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(None),
        }
    }
}

impl Drop for PrintsBeside {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Every fingerprint in the ledger at `path`, on a read-only connection; its errors name the
/// ledger as the writer's do. `None` when that connection cannot be opened: the pass's own
/// connection is open, so the read is left to it rather than failing a pass that would not
/// have failed.
fn read_prints(path: &std::path::Path) -> Result<Option<PassPrints>, LedgerError> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    super::configure_sqlite();
    let Ok(conn) = rusqlite::Connection::open_with_flags(path, flags) else {
        return Ok(None);
    };
    let read = || -> rusqlite::Result<PassPrints> {
        // As the writer waits: a checkpoint's brief lock must not fail the pass.
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // One snapshot for both reads: a log damaged is read again from `marks` as it was.
        let tx = conn.unchecked_transaction()?;
        // In the log's order: a pass meets its patients in that order (see `mark_order.rs`).
        let prints = match mark_log::read_in_order(&tx)? {
            Some(prints) => prints,
            None => PassPrints::ByHash(mark_log::scan_marks(&tx)?),
        };
        tx.finish()?;
        Ok(prints)
    };
    read()
        .map(Some)
        .map_err(|e| LedgerError::from_sqlite(path, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ledger::MarkRow;

    fn hash(id: &str) -> u64 {
        crate::ledger::patient_hash(id)
    }

    fn row(n: u8) -> MarkRow {
        MarkRow {
            fields: 9,
            seen: vec![n; 17],
        }
    }

    #[test]
    fn prints_read_beside_are_those_the_ledger_reads_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        ledger.begin().unwrap();
        for i in 0..600u64 {
            // The top bit set on some: stored signed, read back the same.
            ledger
                .set_marks(&format!("P{i}"), i << 54, &row(1))
                .unwrap();
        }
        ledger.commit().unwrap();
        let beside = ledger.mark_prints_beside().unwrap().unwrap();
        // The writer writes while the reader reads: WAL keeps them apart.
        ledger.begin().unwrap();
        ledger.set_marks("P600", 1, &row(2)).unwrap();
        ledger.commit().unwrap();
        let read = beside.wait().unwrap().unwrap().into_by_hash();
        let here = ledger.mark_prints().unwrap();
        assert!(read.len() == 600 || read.len() == 601, "{}", read.len());
        for i in 0..600u64 {
            assert_eq!(read.get(hash(&format!("P{i}"))), Some(i << 54));
            assert_eq!(here.get(hash(&format!("P{i}"))), Some(i << 54));
        }
    }

    #[test]
    fn inside_a_transaction_the_prints_are_left_to_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        ledger.begin().unwrap();
        ledger.set_marks("P1", 5, &row(1)).unwrap();
        // Uncommitted: another connection would not see it.
        assert!(ledger.mark_prints_beside().unwrap().is_none());
        assert_eq!(ledger.mark_prints().unwrap().get(hash("P1")), Some(5));
        ledger.commit().unwrap();
    }

    #[test]
    fn a_failed_read_names_the_ledger_as_the_writer_would() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let ledger = Ledger::open(&path).unwrap();
        // A ledger whose table went away under the pass: both errors are the same.
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("DROP TABLE mark_print_state").unwrap();
        let here = ledger.mark_prints().unwrap_err().to_string();
        let beside = ledger.mark_prints_beside().unwrap().unwrap();
        let read = beside.wait().unwrap_err().to_string();
        assert_eq!(read, here);
        assert!(read.contains("no such table"), "{read}");
    }

    #[test]
    fn a_reader_that_cannot_open_the_ledger_leaves_the_read_to_the_pass() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone.db");
        assert!(read_prints(&missing).unwrap().is_none());
    }
}
