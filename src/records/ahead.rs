//! Reading an export on threads of their own, a few batches ahead of whoever uses the rows: on
//! two cores the rows of a large export are decoded, typed and evaluated side by side. One
//! thread reads the file in order (splitting CSV records, multi-line quoted cells and all, and
//! decoding them in the file's one encoding, except that a Shift_JIS file's rows, once it is
//! known to be one, are decoded on the typing threads: see [`csv_block`]); typing the cells
//! (dates, stages, opt-outs, the id's hash) and then the caller's work on each patient (evaluating them: most of the work) is
//! shared among [`typing_threads`] threads, a batch each in turn, each with work of its own;
//! the caller's thread only takes the rows, and what the work came to, in order, checking that
//! each id is new (a row found a duplicate there has what the work came to dropped unseen).
//! Each record is lent where it was typed and its batch given back whole to be typed into
//! again: no record is moved or freed per row. The rows, each row's unreadable-cell reports
//! and the notices found while reading it come out exactly as [`super::open`] gives them.
//! Memory stays flat: each typing thread has at most four batches of [`BATCH`] rows.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use super::columns::{Notices, Resolver};
use super::csv_rows::Checked;
use super::jsonl_keys::JsonlKeys;
use super::jsonl_rows::JsonlRows;
use super::reader::{open_parts, Opened, Rows, RowsAre};
use super::row::{RowBuilder, RowTyper, TypedRow, Unreadable};
use super::spent::Spares;
use super::worked::{LendRows, LentRow, RowWork, WorkedRows};
use super::{open, ReadOptions, RecordSchema, RecordsError, RowError};
use csv_block::{read_block, type_block, Decoded, Typing};

mod csv_block;

/// Rows per batch handed over: large enough that the hand-over costs nothing per row, small
/// enough that the first rows are evaluated soon.
const BATCH: usize = 512;
/// Batches waiting for a typing thread, and typed batches waiting to be used, per thread.
const BATCHES_IN_FLIGHT: usize = 2;
/// Rows whose ids are readied for checking at once ([`SeenIds::touch`]): about as many cache
/// misses as a core waits for together.
///
/// [`SeenIds::touch`]: super::seen_ids::SeenIds::touch
const TOUCH_AHEAD: usize = 16;
/// Threads typing rows, at most: past the cores there are, more only take turns.
const MAX_TYPING_THREADS: usize = 4;
/// Batches given back to a typing thread and not yet typed into again, at most: never more
/// than it made (it makes one only when none is waiting), which is as many as wait before the
/// rows' user and are taken, plus the one it types.
const SPENT_IN_FLIGHT: usize = BATCHES_IN_FLIGHT + 2;

/// One row as the reading threads saw it, with what they had to say while reading it, and
/// what the caller's work on it came to (when it was a patient to work on). A batch of them
/// goes from a typing thread to the thread taking the rows and back, to be typed into again:
/// the records are filled, checked and lent where they are, never moved.
struct ReadRow<T> {
    /// Typed, with its id still to be checked in file order (the rows before it are typed on
    /// other threads); what a row typed here before left, when `skipped`.
    typed: TypedRow,
    /// Why the row was skipped where it was read (it could not be split, decoded or parsed).
    skipped: Option<RowError>,
    /// What the work on this row came to, when `worked_now`; else what it came to on a row
    /// typed here before (its room filled again by [`RowWork::work_into`]), or nothing.
    worked: Option<T>,
    worked_now: bool,
    notices: Vec<String>,
}

impl<T> Default for ReadRow<T> {
    fn default() -> Self {
        ReadRow {
            typed: TypedRow::default(),
            skipped: None,
            worked: None,
            worked_now: false,
            notices: Vec::new(),
        }
    }
}

impl<T> ReadRow<T> {
    /// The row, typed, when it was not skipped where it was read.
    fn typed(&self) -> Option<&TypedRow> {
        self.skipped.is_none().then_some(&self.typed)
    }
}

/// A batch of rows, in file order.
type Batch<T> = Vec<ReadRow<T>>;

/// Where a typing thread hands over its typed (and worked) batches, and where the thread
/// taking them gives them back to be typed into again.
struct Typed<T> {
    batches: SyncSender<Batch<T>>,
    spent: Receiver<Batch<T>>,
}

/// Rows for a typing thread: the text of the decoded ones one after another, the bytes of
/// those still to be decoded (a Shift_JIS CSV file's, once it is known to be one) one after
/// another, where each field ends in its row's text or bytes, and for each row (an `S`) where
/// its text or bytes and field ends stop. A JSONL file's lines are all decoded, each a
/// [`Slot`].
struct Block<S> {
    text: String,
    raw: Vec<u8>,
    ends: Vec<usize>,
    rows: Vec<S>,
}

impl<S> Default for Block<S> {
    fn default() -> Self {
        Block {
            text: String::new(),
            raw: Vec::new(),
            ends: Vec::new(),
            rows: Vec::new(),
        }
    }
}

/// A JSONL line to type (its text ending at `text_end` in the block), or a line skipped where
/// it was read.
enum Slot {
    Cells { line: usize, text_end: usize },
    Skipped(RowError),
}

/// How many threads type (and work on) rows: one per core, within [`MAX_TYPING_THREADS`], or
/// `STEPRULE_THREADS` when set (1 to 4; tests compare one worker with several).
pub fn typing_threads() -> usize {
    let asked = std::env::var("STEPRULE_THREADS")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok());
    asked
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |cores| cores.get()))
        .clamp(1, MAX_TYPING_THREADS)
}

/// What the reading thread sends once the file is open: its name and first notices, and where
/// the batches will come from, in turn.
type OpenedMessage<T> = Result<(String, Vec<String>, Vec<Taken<T>>), RecordsError>;

/// Where the thread taking the rows gets one typing thread's batches, and where it gives each
/// back once taken.
struct Taken<T> {
    batches: Receiver<Batch<T>>,
    spent: SyncSender<Batch<T>>,
}

/// Reads the export at `path` as [`open`] does, but on threads of their own: one splits and
/// decodes the rows, [`typing_threads`] type them and run work made by `worker` (one per
/// thread) on every row they keep; `use_rows` gets the rows with what the work came to, in
/// file order, with the same reports and notices as `open` gives. Problems with the whole file
/// are returned as `open` returns them. The threads end before this returns, however early
/// `use_rows` stops taking rows. Without a thread to be had, the rows are read and worked on
/// here.
pub fn evaluate_ahead<W: RowWork, R>(
    path: &Path,
    schema: &RecordSchema,
    options: &ReadOptions,
    worker: &(impl Fn() -> W + Sync),
    use_rows: impl FnOnce(&mut WorkedRows<'_, W::Out>) -> R,
) -> Result<R, RecordsError> {
    work_ahead(path, schema, options, typing_threads(), worker, use_rows)
}

/// [`evaluate_ahead`] on `threads` typing threads.
pub(super) fn work_ahead<W: RowWork, R>(
    path: &Path,
    schema: &RecordSchema,
    options: &ReadOptions,
    threads: usize,
    worker: &(impl Fn() -> W + Sync),
    use_rows: impl FnOnce(&mut WorkedRows<'_, W::Out>) -> R,
) -> Result<R, RecordsError> {
    let name = path.display().to_string();
    let checker = match RowBuilder::new(&name, schema, options.mapping.as_ref()) {
        Ok(checker) => checker,
        // The error `open` gives (a missing file is reported before a mapping that misfits).
        Err(err) => return Err(open(path, schema, options).err().unwrap_or(err)),
    };
    let threads = threads.clamp(1, MAX_TYPING_THREADS);
    std::thread::scope(|scope| {
        let (opened_tx, opened_rx) = sync_channel::<OpenedMessage<W::Out>>(1);
        let spawned = std::thread::Builder::new()
            .name("read-patients".into())
            .spawn_scoped(scope, move || {
                read(path, schema, options, threads, worker, opened_tx)
            });
        let Ok(thread) = spawned else {
            let mut rows = WorkedRows::here(open(path, schema, options)?, worker());
            return Ok(use_rows(&mut rows));
        };
        let (name, first_notices, batches) = match opened_rx.recv() {
            Ok(opened) => opened?,
            Err(_) => return Err(rethrow(thread.join())),
        };
        let rows = Ahead::new(batches, checker, first_notices, Box::new(|| thread.join()));
        let mut rows = WorkedRows::from_parts(
            name,
            RowsAre::Lines,
            rows.notices.clone(),
            rows.unreadable.clone(),
            Box::new(rows),
        );
        let used = use_rows(&mut rows);
        // The receivers go first: threads still typing see that nobody waits for their rows
        // and end, which is what the scope waits for.
        drop(rows);
        Ok(used)
    })
}

/// The reading thread: opens the file, says so, and hands over its rows, each worked on by
/// the typing thread's own work made by `worker`.
fn read<W: RowWork>(
    path: &Path,
    schema: &RecordSchema,
    options: &ReadOptions,
    threads: usize,
    worker: &(impl Fn() -> W + Sync),
    opened_tx: SyncSender<OpenedMessage<W::Out>>,
) {
    let opened = match open_parts(path, schema, options) {
        Ok(opened) => opened,
        Err(err) => {
            let _ = opened_tx.send(Err(err));
            return;
        }
    };
    let first_notices = opened.notices.take();
    let Opened {
        name,
        notices,
        unreadable,
        rows,
    } = opened;
    // Shared with the rows' user only through what is handed over.
    drop((notices, unreadable));
    let mut outputs = Vec::with_capacity(threads);
    let mut receivers = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (output_tx, output_rx) = sync_channel(BATCHES_IN_FLIGHT);
        let (spent_tx, spent_rx) = sync_channel(SPENT_IN_FLIGHT);
        outputs.push(Typed {
            batches: output_tx,
            spent: spent_rx,
        });
        receivers.push(Taken {
            batches: output_rx,
            spent: spent_tx,
        });
    }
    if opened_tx
        .send(Ok((name, first_notices, receivers)))
        .is_err()
    {
        return;
    }
    match rows {
        Rows::Csv(mut rows) => {
            let typer = rows.builder().typer();
            let columns = rows.columns().to_vec();
            let typer = &*typer;
            let columns = &columns[..];
            let typing = || {
                let mut work = worker();
                let mut spares = Spares::default();
                let mut decoded = Decoded::default();
                move |block, batch: &mut Batch<_>| {
                    let mut typing = Typing {
                        typer,
                        columns,
                        work: &mut work,
                        spares: &mut spares,
                        decoded: &mut decoded,
                    };
                    type_block(&mut typing, block, batch)
                }
            };
            let mut sizes = (0, 0, 0);
            in_parallel(|| read_block(&mut rows, &mut sizes), &typing, outputs);
        }
        Rows::Jsonl(mut rows) => {
            let typer = rows.builder().typer();
            let mapping = options.mapping.as_ref();
            let typer = &*typer;
            let typing = || {
                let mut keys = JsonlKeys::new(Resolver::new(schema, mapping));
                let mut work = worker();
                let mut spares = Spares::default();
                move |block, batch: &mut Batch<_>| {
                    type_lines(typer, &mut keys, block, batch, &mut work, &mut spares)
                }
            };
            let mut text_size = 0;
            in_parallel(|| read_lines(&mut rows, &mut text_size), &typing, outputs);
        }
    }
}

/// Reads batches in file order on this thread (`read_block`) and has them typed by one thread
/// per `outputs`, each with a typer made by `worker`: batch `n` goes to thread `n % threads`,
/// so taking the typed batches from the threads in turn gives them back in file order. Each is
/// typed into a batch the thread taking them gave back, when one is there.
fn in_parallel<W, S: Send, T: Send>(
    mut read_block: impl FnMut() -> Block<S>,
    worker: &(impl Fn() -> W + Sync),
    outputs: Vec<Typed<T>>,
) where
    W: FnMut(Block<S>, &mut Batch<T>),
{
    let mut inputs = Vec::with_capacity(outputs.len());
    let outputs: Vec<_> = outputs
        .into_iter()
        .map(|typed| {
            let (input_tx, input_rx) = sync_channel::<Block<S>>(BATCHES_IN_FLIGHT);
            inputs.push(input_tx);
            (input_rx, typed)
        })
        .collect();
    std::thread::scope(|scope| {
        // Moved in, so that returning from here drops them: the typing threads see the end of
        // their batches and finish, which is what the scope waits for.
        let inputs = inputs;
        // Where a typing thread could not be started, its batches are typed here instead (into
        // new batches: the spent ones went with the thread that was not started).
        let mut here = Vec::with_capacity(outputs.len());
        for (input, output) in outputs {
            let instead = output.batches.clone();
            let spawned = std::thread::Builder::new()
                .name("type-patients".into())
                .spawn_scoped(scope, move || {
                    let mut type_block = worker();
                    for block in input {
                        let mut batch = output.spent.try_recv().unwrap_or_default();
                        type_block(block, &mut batch);
                        // The rows' user stopped early: nothing more to type for.
                        if output.batches.send(batch).is_err() {
                            return;
                        }
                    }
                });
            here.push(spawned.is_err().then_some(instead));
        }
        let mut typed_here = None;
        let mut next = 0;
        loop {
            let block = read_block();
            let last = block.rows.len() < BATCH;
            let sent = match &here[next] {
                Some(output) => {
                    let type_block = typed_here.get_or_insert_with(worker);
                    let mut batch = Vec::new();
                    type_block(block, &mut batch);
                    output.send(batch).is_ok()
                }
                None => inputs[next].send(block).is_ok(),
            };
            if !sent || last {
                return;
            }
            next = (next + 1) % inputs.len();
        }
    });
}

/// The row at `index` of `batch` to type into, nothing of its last use left but its record:
/// the one given back there, or a new one.
fn place<T>(batch: &mut Batch<T>, index: usize) -> &mut ReadRow<T> {
    if index == batch.len() {
        batch.push(ReadRow::default());
    }
    let read = &mut batch[index];
    read.skipped = None;
    read.worked_now = false;
    read.notices.clear();
    read
}

/// `work` on the row typed into `read`, if it may be kept, into what the work on the row
/// there before came to.
fn work_on<W: RowWork>(read: &mut ReadRow<W::Out>, work: &mut W) {
    if let Some(record) = read.typed.kept() {
        work.work_into(record, &mut read.worked);
        read.worked_now = true;
    }
}

/// The rows of a batch worked on one row behind their typing: each row just typed, if it may
/// be kept, goes to [`RowWork::ahead`] and then the one typed before it is worked on, so that
/// a look-up the work asks for ahead arrives while that row is worked on.
struct Behind(Option<usize>);

impl Behind {
    /// After row `index` of `batch` is typed.
    fn typed<W: RowWork>(&mut self, batch: &mut Batch<W::Out>, index: usize, work: &mut W) {
        let Some(record) = batch[index].typed.kept() else {
            return;
        };
        work.ahead(record);
        if let Some(before) = self.0.replace(index) {
            work_on(&mut batch[before], work);
        }
    }

    /// After the batch's last row is typed.
    fn end<W: RowWork>(&mut self, batch: &mut Batch<W::Out>, work: &mut W) {
        if let Some(before) = self.0.take() {
            work_on(&mut batch[before], work);
        }
    }
}

/// The rows as they arrive from the reading threads: batch `n` from `threads[n % len]`, each
/// given back to its thread once every row of it has been taken.
struct Ahead<'s, T> {
    threads: Vec<Taken<T>>,
    next_batch: usize,
    /// The batch being taken, and the thread it came from and goes back to.
    current: Batch<T>,
    current_from: usize,
    /// The next row of `current` to take.
    at: usize,
    /// The checks in file order for rows typed before their id was known.
    checker: RowBuilder,
    /// Rows to take before the ids of the next [`TOUCH_AHEAD`] are readied.
    untouched: usize,
    notices: Notices,
    /// Notices already passed on (at most one per distinct column header).
    notices_seen: BTreeSet<String>,
    unreadable: Unreadable,
    /// Waits for the reading thread once every row is in (its panic, if it had one).
    join: Option<Joiner<'s>>,
}

/// Waits for a thread and gives its end: a panic is passed on by the one who waited.
type Joiner<'s> = Box<dyn FnOnce() -> std::thread::Result<()> + 's>;

impl<'s, T> Ahead<'s, T> {
    fn new(
        threads: Vec<Taken<T>>,
        checker: RowBuilder,
        first_notices: Vec<String>,
        join: Joiner<'s>,
    ) -> Self {
        let notices = Notices::default();
        for notice in first_notices {
            notices.push(notice);
        }
        Ahead {
            threads,
            next_batch: 0,
            current: Vec::new(),
            current_from: 0,
            at: 0,
            unreadable: checker.unreadable(),
            checker,
            untouched: 0,
            notices_seen: BTreeSet::new(),
            notices,
            join: Some(join),
        }
    }

    /// Gives the batch taken back to its thread and waits for the next one; `false` once
    /// every row has been handed over.
    fn next_batch(&mut self) -> bool {
        let spent = std::mem::take(&mut self.current);
        if let Some(thread) = self.threads.get(self.current_from) {
            // Never full (a thread makes a batch only when none is waiting for it, so it has
            // at most as many as can wait); one that is gone leaves the batch dropped here.
            let _ = thread.spent.try_send(spent);
        }
        self.at = 0;
        let Some(thread) = self.threads.get(self.next_batch) else {
            return false;
        };
        match thread.batches.recv() {
            Ok(batch) => {
                self.current = batch;
                self.current_from = self.next_batch;
                self.next_batch = (self.next_batch + 1) % self.threads.len();
                true
            }
            Err(_) => {
                // Every row has been handed over, or a thread panicked: a panic while reading
                // is passed on rather than taken for the end of the file. The other threads
                // are let go first, so that none waits on this one.
                self.threads.clear();
                if let Some(join) = self.join.take() {
                    if let Err(panic) = join() {
                        std::panic::resume_unwind(panic);
                    }
                }
                false
            }
        }
    }
}

impl<T> LendRows<T> for Ahead<'_, T> {
    fn next_row(&mut self) -> Option<LentRow<'_, T>> {
        while self.at == self.current.len() {
            if !self.next_batch() {
                return None;
            }
        }
        if self.untouched == 0 {
            let ahead = &self.current[self.at..];
            let typed = ahead.iter().take(TOUCH_AHEAD).filter_map(ReadRow::typed);
            self.checker.touch(typed);
            self.untouched = ahead.len().min(TOUCH_AHEAD);
        }
        self.untouched -= 1;
        let read = &mut self.current[self.at];
        self.at += 1;
        for notice in read.notices.drain(..) {
            // Each typing thread says each notice once; the file says it once.
            if self.notices_seen.insert(notice.clone()) {
                self.notices.push(notice);
            }
        }
        let row = match read.skipped.take() {
            Some(err) => Err(err),
            None => self.checker.finish_in_place(&mut read.typed),
        };
        // A row skipped here (its id came before) was worked on for nothing.
        let worked = read.worked_now && row.is_ok() && read.worked.is_some();
        Some((row, worked.then_some(&mut read.worked)))
    }
}

/// The panic of a thread that ended without sending anything, passed on to the caller.
fn rethrow(ended: std::thread::Result<()>) -> RecordsError {
    match ended {
        Err(panic) => std::panic::resume_unwind(panic),
        // Cannot happen (the thread sends before it returns), but is not a panic here.
        Ok(()) => RecordsError::Io {
            path: String::new(),
            message: "the thread reading the patients ended early".to_owned(),
        },
    }
}

/// Room for a block like one that held `size`: an eighth more, so that a block a little
/// larger than the last is not copied whole to grow (sized exactly, about every other one
/// was, ~0.9% of `plan`'s instructions on a JSONL export).
fn with_room(size: usize) -> usize {
    size.saturating_add(size / 8)
}

/// The next [`BATCH`] non-blank lines of a JSONL file, decoded but not parsed (fewer at its
/// end). The text is made room for as the last block's was (`text_size`, see [`with_room`]),
/// as `read_block` does: grown from nothing, it was copied a dozen times a block (~1.4% of a
/// first run's instructions on a JSONL export).
fn read_lines(rows: &mut JsonlRows, text_size: &mut usize) -> Block<Slot> {
    let mut block = Block {
        text: String::with_capacity(with_room(*text_size)),
        rows: Vec::with_capacity(BATCH),
        ..Block::default()
    };
    while block.rows.len() < BATCH {
        let Some(checked) = rows.next_checked_onto(&mut block.text) else {
            break;
        };
        let slot = match checked {
            Checked::Skipped(err) => Slot::Skipped(err),
            Checked::Cells { line } => Slot::Cells {
                line,
                text_end: block.text.len(),
            },
        };
        block.rows.push(slot);
    }
    *text_size = block.text.len();
    block
}

/// Every line of `block` parsed and typed into `batch`, with the notices each brought to this
/// thread, and each row that may be kept worked on (before its id is checked in file order).
/// A line's record is a new one made from the one given back in its place.
fn type_lines<W: RowWork>(
    typer: &RowTyper,
    keys: &mut JsonlKeys,
    block: Block<Slot>,
    batch: &mut Batch<W::Out>,
    work: &mut W,
    spares: &mut Spares,
) {
    let mut text_start = 0;
    let mut behind = Behind(None);
    batch.truncate(block.rows.len());
    for (index, slot) in block.rows.into_iter().enumerate() {
        let read = place(batch, index);
        let mut typed_here = false;
        match slot {
            Slot::Skipped(err) => read.skipped = Some(err),
            Slot::Cells { line, text_end } => {
                let text = &block.text[text_start..text_end];
                text_start = text_end;
                spares.keep_record(read.typed.take_record());
                match keys.type_line(typer, line, text, spares) {
                    Ok(typed) => {
                        read.typed = typed;
                        typed_here = true;
                    }
                    Err(err) => read.skipped = Some(err),
                }
            }
        }
        read.notices = keys.take_notices();
        if typed_here {
            behind.typed(batch, index, work);
        }
    }
    behind.end(batch, work);
}
