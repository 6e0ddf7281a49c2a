//! A CSV export's rows read ahead: split (and, until a file is known to be Shift_JIS, decoded
//! and checked) on the reading thread, typed and worked on on the typing threads. A Shift_JIS
//! file's rows are decoded and checked on the typing threads instead, with the reading
//! thread's decoder, which no longer changes once the file is known to be Shift_JIS: the
//! rows, their skip messages and lines are the same, and the reading thread, which the typing
//! threads wait behind, only splits.

use super::super::columns::Column;
use super::super::csv_rows::{
    check_record, field_spans, laid_out_cells, Checked, CsvRows, Deferred, Layout,
};
use super::super::decode::{decode_shift_jis_line, Decoder};
use super::super::row::{Cell, RowTyper};
use super::super::spent::Spares;
use super::super::worked::RowWork;
use super::super::RowError;
use super::{place, with_room, Batch, Behind, Block, ReadRow, BATCH};

/// A row of a CSV file as the reading thread hands it over.
pub(super) enum CsvSlot {
    Skipped(RowError),
    /// A row to type, its text and field ends in the block, laid out as `layout` says.
    Cells {
        line: usize,
        text_end: usize,
        ends_end: usize,
        layout: Layout,
    },
    /// Decoded and checked by the typing thread with `decoder`, as the reading thread would
    /// have: that decoding is most of the reading thread's work on a Shift_JIS file.
    Raw {
        line: usize,
        decoder: Decoder,
        raw_end: usize,
        ends_end: usize,
        layout: Layout,
    },
}

/// The next [`BATCH`] rows of the file, split and decoded but not typed (fewer at its end),
/// each decoded straight into the block; a Shift_JIS file's rows left to the typing threads
/// to decode, once it is known to be one. `sizes` is how much the block before held: the
/// block is made that large at once (with room, see [`with_room`]) rather than grown (and
/// copied) row by row.
pub(super) fn read_block(rows: &mut CsvRows, sizes: &mut (usize, usize, usize)) -> Block<CsvSlot> {
    let mut block = Block {
        text: String::with_capacity(with_room(sizes.0)),
        raw: Vec::with_capacity(with_room(sizes.1)),
        ends: Vec::with_capacity(with_room(sizes.2)),
        rows: Vec::with_capacity(BATCH),
    };
    while block.rows.len() < BATCH {
        let Some(read) = rows.next_deferring(&mut block.text, &mut block.raw, &mut block.ends)
        else {
            break;
        };
        let (text_end, ends_end) = (block.text.len(), block.ends.len());
        let cells = |line, layout| CsvSlot::Cells {
            line,
            text_end,
            ends_end,
            layout,
        };
        let slot = match read {
            Deferred::Checked(Checked::Skipped(err)) => CsvSlot::Skipped(err),
            Deferred::Checked(Checked::Cells { line }) => cells(line, Layout::Packed),
            Deferred::Line { line } => cells(line, Layout::Line),
            Deferred::Raw {
                line,
                decoder,
                layout,
            } => CsvSlot::Raw {
                line,
                decoder,
                raw_end: block.raw.len(),
                ends_end,
                layout,
            },
        };
        block.rows.push(slot);
    }
    *sizes = (block.text.len(), block.raw.len(), block.ends.len());
    block
}

/// A typing thread's text and field ends of the row it decoded last, laid out as `layout`
/// says, and a raw line's fields put one after another for the long way (reused row to row).
#[derive(Default)]
pub(super) struct Decoded {
    text: String,
    ends: Vec<usize>,
    layout: Layout,
    packed: Vec<u8>,
    packed_ends: Vec<usize>,
}

/// What a typing thread types CSV rows with.
pub(super) struct Typing<'t, W> {
    pub(super) typer: &'t RowTyper,
    pub(super) columns: &'t [Column],
    pub(super) work: &'t mut W,
    pub(super) spares: &'t mut Spares,
    pub(super) decoded: &'t mut Decoded,
}

/// Every row of `block` typed into `batch` (a batch given back, its records typed into again
/// where they are), and each row that may be kept worked on (before its id is checked in file
/// order, on the thread that takes the rows: the reading thread, which the others wait behind,
/// only splits and decodes). A row left undecoded is decoded and checked here first: one that
/// cannot be decoded or has the wrong number of fields is skipped, and a blank one is no row,
/// as on the reading thread.
pub(super) fn type_block<W: RowWork>(
    typing: &mut Typing<'_, W>,
    block: Block<CsvSlot>,
    batch: &mut Batch<W::Out>,
) {
    let (mut text_start, mut raw_start, mut ends_start) = (0, 0, 0);
    let mut typed = 0;
    let mut behind = Behind(None);
    batch.truncate(block.rows.len());
    for slot in block.rows {
        match slot {
            CsvSlot::Skipped(err) => place(batch, typed).skipped = Some(err),
            CsvSlot::Cells {
                line,
                text_end,
                ends_end,
                layout,
            } => {
                let text = &block.text[text_start..text_end];
                let ends = &block.ends[ends_start..ends_end];
                (text_start, ends_start) = (text_end, ends_end);
                let cells = laid_out_cells(text, ends, layout);
                type_cells(typing, place(batch, typed), line, cells);
                behind.typed(batch, typed, typing.work);
            }
            CsvSlot::Raw {
                line,
                mut decoder,
                raw_end,
                ends_end,
                layout,
            } => {
                let bytes = &block.raw[raw_start..raw_end];
                let field_ends = &block.ends[ends_start..ends_end];
                (raw_start, ends_start) = (raw_end, ends_end);
                let (typer, columns) = (typing.typer, typing.columns);
                let raw = (bytes, field_ends, layout);
                match decode_raw(typing.decoded, &mut decoder, columns, typer, line, raw) {
                    // Blank: no row at all.
                    None => continue,
                    Some(Checked::Skipped(err)) => place(batch, typed).skipped = Some(err),
                    Some(Checked::Cells { line }) => {
                        let decoded = std::mem::take(typing.decoded);
                        let cells = laid_out_cells(&decoded.text, &decoded.ends, decoded.layout);
                        type_cells(typing, place(batch, typed), line, cells);
                        *typing.decoded = decoded;
                        behind.typed(batch, typed, typing.work);
                    }
                }
            }
        }
        typed += 1;
    }
    behind.end(batch, typing.work);
    batch.truncate(typed);
}

/// A raw row (its bytes, field ends and their layout) decoded into `decoded` and checked, as
/// the reading thread would have: a Shift_JIS file's plain line decoded whole, its commas kept;
/// any other row, and a line that cannot be so (see [`decode_shift_jis_line`]), field by
/// field ([`check_record`]), its fields put one after another first. `None` for a blank row.
fn decode_raw(
    decoded: &mut Decoded,
    decoder: &mut Decoder,
    columns: &[Column],
    typer: &RowTyper,
    line: usize,
    (bytes, field_ends, layout): (&[u8], &[usize], Layout),
) -> Option<Checked> {
    let Decoded {
        text,
        ends,
        layout: decoded_layout,
        packed,
        packed_ends,
    } = decoded;
    text.clear();
    ends.clear();
    if layout == Layout::Line && decode_shift_jis_line(bytes, field_ends, text, ends) {
        *decoded_layout = Layout::Line;
        return Some(Checked::Cells { line });
    }
    text.clear();
    ends.clear();
    *decoded_layout = Layout::Packed;
    let (bytes, field_ends) = match layout {
        Layout::Line => {
            packed.clear();
            packed_ends.clear();
            for span in field_spans(field_ends, Layout::Line) {
                packed.extend_from_slice(&bytes[span]);
                packed_ends.push(packed.len());
            }
            (&packed[..], &packed_ends[..])
        }
        Layout::Packed => (bytes, field_ends),
    };
    check_record(decoder, columns, typer, line, bytes, field_ends, text, ends)
}

/// The cells of the row starting on `line` typed into `read` (worked on after the next row is
/// typed: see [`Behind`]).
fn type_cells<'t, W: RowWork>(
    typing: &mut Typing<'_, W>,
    read: &mut ReadRow<W::Out>,
    line: usize,
    cells: impl Iterator<Item = &'t str>,
) {
    let cells = cells.map(|cell| Cell::Text(cell.into()));
    let columns = typing.columns.iter().zip(cells);
    (typing.typer).type_row_into(&mut read.typed, line, columns, typing.spares);
}
