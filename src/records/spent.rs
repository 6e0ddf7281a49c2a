//! Records already used, dropped on a thread of their own: freeing a million records' strings,
//! maps and lists was a fifth of the evaluating thread's time, and that thread is the one the
//! whole `plan` waits for. Memory stays flat: at most [`BATCHES_IN_FLIGHT`] batches wait.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use super::PatientRecord;

/// Records per batch handed to the dropping thread.
const BATCH: usize = 512;
/// Batches waiting to be dropped, at most.
const BATCHES_IN_FLIGHT: usize = 4;

/// Where a reader of patients puts each record it is done with.
pub struct SpentRecords {
    batch: Vec<PatientRecord>,
    /// The dropping thread; `None` when no thread could be had (records are dropped here).
    thread: Option<(SyncSender<Vec<PatientRecord>>, JoinHandle<()>)>,
}

impl SpentRecords {
    pub fn new() -> Self {
        let (tx, rx) = sync_channel::<Vec<PatientRecord>>(BATCHES_IN_FLIGHT);
        let spawned = std::thread::Builder::new()
            .name("drop-patients".into())
            .spawn(move || rx.into_iter().for_each(drop));
        SpentRecords {
            batch: Vec::with_capacity(BATCH),
            thread: spawned.ok().map(|thread| (tx, thread)),
        }
    }

    /// Hands `record` over to be dropped.
    pub fn push(&mut self, record: PatientRecord) {
        let Some((tx, _)) = &self.thread else {
            return;
        };
        self.batch.push(record);
        if self.batch.len() == BATCH {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            // A dropping thread that is gone (it panicked) leaves the batch to be dropped here.
            let _ = tx.send(full);
        }
    }
}

impl Default for SpentRecords {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for SpentRecords {
    fn drop(&mut self) {
        if let Some((tx, thread)) = self.thread.take() {
            drop(tx);
            // The records it still has are freed before the reader returns; a panic in `drop`
            // of plain data cannot happen, and would not be worth a second one here.
            let _ = thread.join();
        }
    }
}
