//! Reading an export on a thread of its own, a few batches ahead of whoever uses the rows: on
//! two cores the rows of a large export are decoded and typed while the rows before them are
//! evaluated. The rows, each row's unreadable-cell reports and the notices found while reading
//! it come out in the file's order, exactly as [`super::open`] gives them; memory stays flat
//! (at most [`BATCHES_IN_FLIGHT`] batches of [`BATCH`] rows wait).

use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use super::columns::Notices;
use super::reader::{PatientRecords, RowsAre};
use super::row::Unreadable;
use super::{open, PatientRecord, ReadOptions, RecordSchema, RecordsError, RowError};

/// Rows per batch handed over: large enough that the hand-over costs nothing per row, small
/// enough that the first rows are evaluated soon.
const BATCH: usize = 512;
/// Batches read but not yet used, at most: about 4,000 rows of a few hundred bytes.
const BATCHES_IN_FLIGHT: usize = 8;

/// One row as the reading thread saw it, with what it had to say while reading it.
struct ReadRow {
    row: Result<PatientRecord, RowError>,
    unreadable: Vec<RowError>,
    notices: Vec<String>,
}

/// [`open`], with the rows read on a thread of their own. Problems with the whole file are
/// returned here as `open` returns them. Without a thread to be had, this is `open`.
pub fn open_ahead(
    path: &Path,
    schema: &RecordSchema,
    options: &ReadOptions,
) -> Result<PatientRecords, RecordsError> {
    let (opened_tx, opened_rx) = sync_channel::<Result<(String, Vec<String>), RecordsError>>(1);
    let (rows_tx, rows_rx) = sync_channel::<Vec<ReadRow>>(BATCHES_IN_FLIGHT);
    let (path_owned, schema_owned, options_owned) =
        (path.to_owned(), schema.clone(), options.clone());
    let spawned = std::thread::Builder::new()
        .name("read-patients".into())
        .spawn(move || {
            let mut records = match open(&path_owned, &schema_owned, &options_owned) {
                Ok(records) => records,
                Err(err) => {
                    let _ = opened_tx.send(Err(err));
                    return;
                }
            };
            let first_notices = records.take_notices();
            if opened_tx
                .send(Ok((records.name().to_owned(), first_notices)))
                .is_err()
            {
                return;
            }
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(row) = records.next() {
                let unreadable = records.take_unreadable();
                let notices = records.take_notices();
                batch.push(ReadRow {
                    row,
                    unreadable,
                    notices,
                });
                if batch.len() == BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    // The rows' user stopped early: nothing more to read for.
                    if rows_tx.send(full).is_err() {
                        return;
                    }
                }
            }
            let _ = rows_tx.send(batch);
        });
    let Ok(thread) = spawned else {
        return open(path, schema, options);
    };
    let (name, first_notices) = match opened_rx.recv() {
        Ok(opened) => opened?,
        // The thread ended without a word: it panicked, and the panic is passed on.
        Err(_) => return Err(rethrow(thread)),
    };
    let notices = Notices::default();
    for notice in first_notices {
        notices.push(notice);
    }
    let unreadable = Unreadable::default();
    let rows = Ahead {
        batches: rows_rx,
        current: Vec::new().into_iter(),
        notices: notices.clone(),
        unreadable: unreadable.clone(),
        thread: Some(thread),
    };
    Ok(PatientRecords::from_parts(
        name,
        RowsAre::Lines,
        notices,
        unreadable,
        Box::new(rows),
    ))
}

/// The rows as they arrive from the reading thread.
struct Ahead {
    batches: Receiver<Vec<ReadRow>>,
    current: std::vec::IntoIter<ReadRow>,
    notices: Notices,
    unreadable: Unreadable,
    thread: Option<JoinHandle<()>>,
}

impl Iterator for Ahead {
    type Item = Result<PatientRecord, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(read) = self.current.next() {
                for notice in read.notices {
                    self.notices.push(notice);
                }
                for report in read.unreadable {
                    self.unreadable.push(report);
                }
                return Some(read.row);
            }
            match self.batches.recv() {
                Ok(batch) => self.current = batch.into_iter(),
                Err(_) => {
                    // Every row has been handed over, or the thread panicked: a panic while
                    // reading is passed on rather than taken for the end of the file.
                    if let Some(thread) = self.thread.take() {
                        if let Err(panic) = thread.join() {
                            std::panic::resume_unwind(panic);
                        }
                    }
                    return None;
                }
            }
        }
    }
}

/// The panic of a thread that ended without sending anything, passed on to the caller.
fn rethrow(thread: JoinHandle<()>) -> RecordsError {
    match thread.join() {
        Err(panic) => std::panic::resume_unwind(panic),
        // Cannot happen (the thread sends before it returns), but is not a panic here.
        Ok(()) => RecordsError::Io {
            path: String::new(),
            message: "the thread reading the patients ended early".to_owned(),
        },
    }
}
