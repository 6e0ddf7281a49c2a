//! Records already used, filled again with the next rows instead of freed: allocating every
//! row's strings and lists on the typing threads and freeing them on another was a tenth of a
//! million-row `plan`'s time. Rows read ahead are typed into the records of a batch the thread
//! taking them handed back whole (`super::ahead`), each emptied in place ([`Spares::refill`]);
//! records read elsewhere are dropped on a thread of their own ([`SpentRecords`]), as before:
//! that thread is the one the whole `plan` waits for. Memory stays flat: at most
//! [`BATCHES_IN_FLIGHT`] batches wait to be dropped, and each typing thread keeps at most
//! [`RECORDS_KEPT`] records and [`STRINGS_KEPT`] strings.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use super::{FieldSet, PatientRecord};

/// Records per batch handed back or to the dropping thread.
pub(super) const BATCH: usize = 512;
/// Batches waiting to be dropped, at most.
const BATCHES_IN_FLIGHT: usize = 4;
/// Spent records a typing thread keeps to fill again, at most: one row is typed at a time.
const RECORDS_KEPT: usize = 4;
/// Spare strings a typing thread keeps for cells that were empty in the rows before, at most
/// (of each kind: text fields' and tags').
const STRINGS_KEPT: usize = 64;
/// Bytes of a spare string, and tags of a record's list, kept at most: a row with a huge cell
/// does not leave every record after it that large.
pub(super) const LONGEST_KEPT: usize = 1024;

/// The thread dropping records, and where they go to it.
type Dropping = (SyncSender<Vec<PatientRecord>>, JoinHandle<()>);

/// Where a reader of patients puts each record it is done with.
pub struct SpentRecords {
    batch: Vec<PatientRecord>,
    /// The dropping thread, started with the first full batch; `Err(())` when no
    /// thread could be had (records are dropped here).
    thread: Option<Result<Dropping, ()>>,
}

impl SpentRecords {
    /// Records dropped on a thread of their own.
    pub fn new() -> Self {
        SpentRecords {
            batch: Vec::with_capacity(BATCH),
            thread: None,
        }
    }

    /// Hands `record` over to be filled again or dropped.
    pub fn push(&mut self, record: PatientRecord) {
        self.batch.push(record);
        if self.batch.len() < BATCH {
            return;
        }
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let thread = self.thread.get_or_insert_with(spawn_dropping);
        if let Ok((tx, _)) = thread {
            // A dropping thread that is gone (it panicked) leaves the batch to be dropped here.
            let _ = tx.send(full);
        }
    }
}

fn spawn_dropping() -> Result<Dropping, ()> {
    let (tx, rx) = sync_channel::<Vec<PatientRecord>>(BATCHES_IN_FLIGHT);
    let spawned = std::thread::Builder::new()
        .name("drop-patients".into())
        .spawn(move || rx.into_iter().for_each(drop));
    spawned.map(|thread| (tx, thread)).map_err(|_| ())
}

impl Default for SpentRecords {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for SpentRecords {
    fn drop(&mut self) {
        if let Some(Ok((tx, thread))) = self.thread.take() {
            drop(tx);
            // The records it still has are freed before the reader returns; a panic in `drop`
            // of plain data cannot happen, and would not be worth a second one here.
            let _ = thread.join();
        }
    }
}

/// A typing thread's records and strings to fill again: each row is typed into a spent record
/// (in place, [`Self::refill`], or one kept, [`Self::record`]; emptied exactly), and a cell
/// that needs a string gets one kept from a cell that was empty this time ([`Self::text`],
/// [`Self::tag`]). In steady state a row allocates nothing.
#[derive(Default)]
pub(super) struct Spares {
    /// Spent records given back one by one ([`Self::keep_record`]), at most [`RECORDS_KEPT`].
    records: Vec<PatientRecord>,
    texts: Vec<String>,
    tags: Vec<String>,
}

impl Spares {
    /// A record for the row at `line` with `dates` date fields and `fields` declared fields,
    /// every one not set once the row is typed into it and [`Self::settle`]d: a spent one
    /// emptied, or a new one.
    pub(super) fn record(&mut self, line: usize, dates: usize, fields: usize) -> PatientRecord {
        let mut record = self.records.pop().unwrap_or_default();
        self.empty(&mut record, line, dates, fields);
        record
    }

    /// `record`, spent, emptied where it is for the row at `line` (as [`Self::record`]).
    pub(super) fn refill(
        &mut self,
        record: &mut PatientRecord,
        line: usize,
        dates: usize,
        fields: usize,
    ) {
        self.empty(record, line, dates, fields);
    }

    /// Keeps `record`, spent, for [`Self::record`] to fill again (dropped past a few).
    pub(super) fn keep_record(&mut self, record: PatientRecord) {
        if self.records.len() < RECORDS_KEPT {
            self.records.push(record);
        }
    }

    /// Every field of `record` not set, its strings kept: written out field by field, so that
    /// a field added to [`PatientRecord`] is a compile error here until it is emptied too.
    ///
    /// The text fields and `other`'s values keep their strings in place, emptied: a row's
    /// cells are written into them again ([`set_text`]), and what is still empty after the row
    /// was not set by it ([`Self::settle`]). A value that is set is never empty (empty cells
    /// leave their field alone), so an empty string always means "not set this row".
    fn empty(&mut self, record: &mut PatientRecord, line: usize, dates: usize, fields: usize) {
        let PatientRecord {
            id,
            line_user_id,
            name,
            stage,
            stage_entered_at,
            birth_date,
            tags,
            opted_out,
            dates: date_values,
            fields: field_values,
            other,
            unknown,
            line: record_line,
        } = record;
        if id.capacity() > LONGEST_KEPT {
            *id = String::new();
        }
        id.clear();
        if field_values.len() != fields {
            // A record of another file's shape (never within one reader): its strings are
            // set aside, last to first, so that the row's columns take them back in order.
            for text in field_values.drain(..).rev().flatten() {
                keep(&mut self.texts, text);
            }
            field_values.resize(fields, None);
        }
        for text in field_values.iter_mut().chain([name, line_user_id]) {
            empty_in_place(text);
        }
        for tag in tags.drain(..).rev() {
            keep(&mut self.tags, tag);
        }
        if tags.capacity() > LONGEST_KEPT {
            *tags = Vec::new();
        }
        *stage = None;
        *stage_entered_at = None;
        *birth_date = None;
        *opted_out = false;
        date_values.clear();
        date_values.resize(dates, None);
        // Columns the rules do not declare: each row of a file has the same ones, so their
        // names and strings are kept for it; a huge value is not.
        other.empty();
        *unknown = FieldSet::EMPTY;
        *record_line = line;
    }

    /// After a row is typed into a record from [`Self::record`]: the strings its cells did not
    /// fill (still empty) are not set, and kept for the next cell that needs one.
    pub(super) fn settle(&mut self, record: &mut PatientRecord) {
        let PatientRecord {
            line_user_id,
            name,
            fields,
            ..
        } = record;
        for text in fields.iter_mut().chain([name, line_user_id]) {
            if let Some(string) = text.take_if(|string| string.is_empty()) {
                keep(&mut self.texts, string);
            }
        }
    }

    /// `text` in a kept string, or a new one.
    pub(super) fn text(&mut self, text: &str) -> String {
        overwrite(self.texts.pop(), text)
    }

    /// `tag` in a kept tag's string, or a new one.
    pub(super) fn tag(&mut self, tag: &str) -> String {
        overwrite(self.tags.pop(), tag)
    }
}

fn overwrite(kept: Option<String>, text: &str) -> String {
    let mut string = kept.unwrap_or_default();
    string.clear();
    string.push_str(text);
    string
}

/// A text field's string emptied where it is (or dropped, when it is huge).
fn empty_in_place(text: &mut Option<String>) {
    match text {
        Some(string) if string.capacity() <= LONGEST_KEPT => string.clear(),
        Some(_) => *text = None,
        None => {}
    }
}

fn keep(kept: &mut Vec<String>, string: String) {
    if kept.len() < STRINGS_KEPT && string.capacity() <= LONGEST_KEPT {
        kept.push(string);
    }
}

/// Sets a text field to `text`, in the string it already has when it has one.
pub(super) fn set_text(field: &mut Option<String>, text: &str, spares: &mut Spares) {
    match field {
        Some(string) => {
            string.clear();
            string.push_str(text);
        }
        None => *field = Some(spares.text(text)),
    }
}
