//! Reading an export on threads of their own, a few batches ahead of whoever uses the rows: on
//! two cores the rows of a large export are decoded and typed while the rows before them are
//! evaluated. One thread reads the file in order (splitting CSV records, multi-line quoted
//! cells and all, decoding them in the file's one encoding, and checking that each id is new);
//! for CSV, typing the cells (dates, stages, opt-outs: most of the work) is shared among
//! [`typing_threads`] threads, a batch each in turn, and the caller's thread, which evaluates,
//! only takes the rows in order. The rows, each row's unreadable-cell reports and the
//! notices found while reading it come out exactly as [`super::open`] gives them. Memory stays
//! flat: each typing thread holds at most a few batches of [`BATCH`] rows.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use super::columns::{Column, Notices, Resolver, Role};
use super::csv_rows::{cells, Checked, CsvRows};
use super::jsonl_rows::{JsonlKeys, JsonlRows};
use super::reader::{open_parts, Opened, PatientRecords, Rows, RowsAre};
use super::row::{Cell, RowBuilder, RowTyper, SeenIds, TypedRow, Unreadable};
use super::{open, PatientRecord, ReadOptions, RecordSchema, RecordsError, RowError};

/// Rows per batch handed over: large enough that the hand-over costs nothing per row, small
/// enough that the first rows are evaluated soon.
const BATCH: usize = 512;
/// Batches waiting for a typing thread, and typed batches waiting to be used, per thread.
const BATCHES_IN_FLIGHT: usize = 2;
/// Threads typing rows, at most: past the cores there are, more only take turns.
const MAX_TYPING_THREADS: usize = 4;

/// One row as the reading threads saw it, with what they had to say while reading it.
struct ReadRow {
    row: Pending,
    unreadable: Vec<RowError>,
    notices: Vec<String>,
}

/// A row as it comes from the reading threads.
enum Pending {
    /// Finished where it was read.
    Done(Result<PatientRecord, RowError>),
    /// Typed, with its id still to be checked in file order (JSONL: the id is only known once
    /// the line is parsed, on a typing thread).
    Typed(TypedRow),
}

/// Decoded CSV rows for a typing thread: the text of all of them one after another, where each
/// field ends in its row's text, and for each row where its text and field ends stop.
#[derive(Default)]
struct Block {
    text: String,
    ends: Vec<usize>,
    rows: Vec<Slot>,
}

enum Slot {
    Cells {
        line: usize,
        text_end: usize,
        ends_end: usize,
        /// Why the row's id is a duplicate, when it is (checked in file order).
        duplicate: Option<String>,
    },
    Skipped(RowError),
}

/// How many threads type CSV rows: one per core, within [`MAX_TYPING_THREADS`].
pub fn typing_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |cores| cores.get())
        .clamp(1, MAX_TYPING_THREADS)
}

/// What the reading thread sends once the file is open: its name and first notices, and where
/// the batches will come from, in turn.
type OpenedMessage = Result<(String, Vec<String>, Vec<Receiver<Vec<ReadRow>>>), RecordsError>;

/// [`open`], with the rows read on threads of their own. Problems with the whole file are
/// returned here as `open` returns them. Without a thread to be had, this is `open`.
pub fn open_ahead(
    path: &Path,
    schema: &RecordSchema,
    options: &ReadOptions,
) -> Result<PatientRecords, RecordsError> {
    // Made here so that the checks in file order can be made here; a mapping that does not fit
    // the rules is refused by `open` with the error it gives.
    let name = path.display().to_string();
    let Ok(checker) = RowBuilder::new(&name, schema, options.mapping.as_ref()) else {
        return open(path, schema, options);
    };
    let (opened_tx, opened_rx) = sync_channel::<OpenedMessage>(1);
    let (path_owned, schema_owned, options_owned) =
        (path.to_owned(), schema.clone(), options.clone());
    let threads = typing_threads();
    let spawned = std::thread::Builder::new()
        .name("read-patients".into())
        .spawn(move || {
            read(
                &path_owned,
                &schema_owned,
                &options_owned,
                threads,
                opened_tx,
            )
        });
    let Ok(thread) = spawned else {
        return open(path, schema, options);
    };
    let (name, first_notices, batches) = match opened_rx.recv() {
        Ok(opened) => opened?,
        // The thread ended without a word: it panicked, and the panic is passed on.
        Err(_) => return Err(rethrow(thread)),
    };
    let notices = Notices::default();
    for notice in first_notices {
        notices.push(notice);
    }
    let unreadable = checker.unreadable();
    let rows = Ahead {
        batches,
        next_batch: 0,
        current: Vec::new().into_iter(),
        checker,
        notices_seen: BTreeSet::new(),
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

/// The reading thread: opens the file, says so, and hands over its rows.
fn read(
    path: &Path,
    schema: &RecordSchema,
    options: &ReadOptions,
    threads: usize,
    opened_tx: SyncSender<OpenedMessage>,
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
    let mut inputs = Vec::with_capacity(threads);
    let mut outputs = Vec::with_capacity(threads);
    let mut receivers = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (input_tx, input_rx) = sync_channel::<Block>(BATCHES_IN_FLIGHT);
        let (output_tx, output_rx) = sync_channel(BATCHES_IN_FLIGHT);
        inputs.push(input_tx);
        outputs.push((input_rx, output_tx));
        receivers.push(output_rx);
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
            let id_column = columns.iter().position(|column| column.role == Role::Id);
            let mut ids = SeenIds::on_lines();
            let worker = || |block| type_block(&typer, &columns, block);
            in_parallel(
                || read_block(&mut rows, id_column, &mut ids),
                &worker,
                inputs,
                outputs,
            );
        }
        Rows::Jsonl(mut rows) => {
            let typer = rows.builder().typer();
            let mapping = options.mapping.as_ref();
            let typer = &*typer;
            let worker = || {
                let mut keys = JsonlKeys::new(Resolver::new(schema, mapping));
                move |block| type_lines(typer, &mut keys, block)
            };
            in_parallel(|| read_lines(&mut rows), &worker, inputs, outputs);
        }
    }
}

/// Reads batches in file order on this thread (`read_block`) and has them typed by one thread
/// per `inputs`/`outputs` pair, each with a typer made by `worker`: batch `n` goes to thread
/// `n % threads`, so taking the typed batches from the threads in turn gives them back in file
/// order.
fn in_parallel<W>(
    mut read_block: impl FnMut() -> Block,
    worker: &(impl Fn() -> W + Sync),
    inputs: Vec<SyncSender<Block>>,
    outputs: Vec<(Receiver<Block>, SyncSender<Vec<ReadRow>>)>,
) where
    W: FnMut(Block) -> Vec<ReadRow>,
{
    std::thread::scope(|scope| {
        // Moved in, so that returning from here drops them: the typing threads see the end of
        // their batches and finish, which is what the scope waits for.
        let inputs = inputs;
        // Where a typing thread could not be started, its batches are typed here instead.
        let mut here = Vec::with_capacity(outputs.len());
        for (input, output) in outputs {
            let instead = output.clone();
            let spawned = std::thread::Builder::new()
                .name("type-patients".into())
                .spawn_scoped(scope, move || {
                    let mut type_block = worker();
                    for block in input {
                        // The rows' user stopped early: nothing more to type for.
                        if output.send(type_block(block)).is_err() {
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
                    output.send(type_block(block)).is_ok()
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

/// The next [`BATCH`] rows of the file, split and decoded but not typed (fewer at its end).
fn read_block(rows: &mut CsvRows, id_column: Option<usize>, ids: &mut SeenIds) -> Block {
    let mut block = Block::default();
    while block.rows.len() < BATCH {
        let Some(checked) = rows.next_checked() else {
            break;
        };
        let slot = match checked {
            Checked::Skipped(err) => Slot::Skipped(err),
            Checked::Cells { line } => {
                let (text, ends) = rows.text();
                let id = id_column.and_then(|index| {
                    let column = &rows.columns()[index];
                    RowTyper::id_in(column, cells(text, ends).nth(index)?)
                });
                let duplicate = id.and_then(|id| ids.check(id, line));
                block.text.push_str(text);
                block.ends.extend_from_slice(ends);
                Slot::Cells {
                    line,
                    text_end: block.text.len(),
                    ends_end: block.ends.len(),
                    duplicate,
                }
            }
        };
        block.rows.push(slot);
    }
    block
}

/// Every row of `block` typed.
fn type_block(typer: &RowTyper, columns: &[Column], block: Block) -> Vec<ReadRow> {
    let (mut text_start, mut ends_start) = (0, 0);
    let typed = block.rows.into_iter().map(|slot| {
        let (row, report) = match slot {
            Slot::Skipped(err) => (Err(err), None),
            Slot::Cells {
                line,
                text_end,
                ends_end,
                duplicate,
            } => {
                let text = &block.text[text_start..text_end];
                let ends = &block.ends[ends_start..ends_end];
                (text_start, ends_start) = (text_end, ends_end);
                let cells = cells(text, ends).map(|cell| Cell::Text(cell.into()));
                let typed = typer.type_row(line, columns.iter().zip(cells));
                typed.conclude(typer, duplicate)
            }
        };
        ReadRow {
            row: Pending::Done(row),
            unreadable: report.into_iter().collect(),
            notices: Vec::new(),
        }
    });
    typed.collect()
}

/// The rows as they arrive from the reading threads: batch `n` from `batches[n % len]`.
struct Ahead {
    batches: Vec<Receiver<Vec<ReadRow>>>,
    next_batch: usize,
    current: std::vec::IntoIter<ReadRow>,
    /// The checks in file order for rows typed before their id was known.
    checker: RowBuilder,
    notices: Notices,
    /// Notices already passed on (at most one per distinct column header).
    notices_seen: BTreeSet<String>,
    unreadable: Unreadable,
    thread: Option<JoinHandle<()>>,
}

impl Iterator for Ahead {
    type Item = Result<PatientRecord, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(read) = self.current.next() {
                for notice in read.notices {
                    // Each typing thread says each notice once; the file says it once.
                    if self.notices_seen.insert(notice.clone()) {
                        self.notices.push(notice);
                    }
                }
                for report in read.unreadable {
                    self.unreadable.push(report);
                }
                return Some(match read.row {
                    Pending::Done(row) => row,
                    Pending::Typed(typed) => self.checker.finish(typed),
                });
            }
            let from = self.batches.get(self.next_batch)?;
            match from.recv() {
                Ok(batch) => {
                    self.current = batch.into_iter();
                    self.next_batch = (self.next_batch + 1) % self.batches.len();
                }
                Err(_) => {
                    // Every row has been handed over, or a thread panicked: a panic while
                    // reading is passed on rather than taken for the end of the file. The
                    // other threads are let go first, so that none waits on this one.
                    self.batches.clear();
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

/// The next [`BATCH`] non-blank lines of a JSONL file, decoded but not parsed (fewer at its
/// end).
fn read_lines(rows: &mut JsonlRows) -> Block {
    let mut block = Block::default();
    while block.rows.len() < BATCH {
        let Some(checked) = rows.next_checked() else {
            break;
        };
        let slot = match checked {
            Checked::Skipped(err) => Slot::Skipped(err),
            Checked::Cells { line } => {
                block.text.push_str(rows.text());
                Slot::Cells {
                    line,
                    text_end: block.text.len(),
                    ends_end: 0,
                    duplicate: None,
                }
            }
        };
        block.rows.push(slot);
    }
    block
}

/// Every line of `block` parsed and typed, with the notices each brought to this thread.
fn type_lines(typer: &RowTyper, keys: &mut JsonlKeys, block: Block) -> Vec<ReadRow> {
    let mut text_start = 0;
    let typed = block.rows.into_iter().map(|slot| {
        let row = match slot {
            Slot::Skipped(err) => Pending::Done(Err(err)),
            Slot::Cells { line, text_end, .. } => {
                let text = &block.text[text_start..text_end];
                text_start = text_end;
                match keys.type_line(typer, line, text) {
                    Ok(typed) => Pending::Typed(typed),
                    Err(err) => Pending::Done(Err(err)),
                }
            }
        };
        ReadRow {
            row,
            unreadable: Vec::new(),
            notices: keys.take_notices(),
        }
    });
    typed.collect()
}
