//! Streaming a CSV export: the header is read and resolved once, then each record is read as
//! bytes (bounded in size), decoded in the file's one encoding, and built into a record.

use std::borrow::Cow;
use std::io::BufRead;

use super::bounded::Limits;
use super::columns::{Column, Resolver};
use super::csv_records::{CsvRecords, Raw};
use super::decode::Decoder;
use super::row::{Cell, RowBuilder, RowTyper};
use super::{PatientRecord, RecordsError, RowError};

/// The rows of one CSV export, each a record or the reason it was skipped.
pub(super) struct CsvRows {
    records: CsvRecords,
    decoder: Decoder,
    columns: Vec<Column>,
    /// The decoded text of the current record, and where each field ends in it (reused from
    /// row to row).
    text: String,
    ends: Vec<usize>,
    rows: RowBuilder,
    limits: Limits,
    /// After an I/O error or a runaway line there is nothing sensible left to read.
    done: bool,
}

impl CsvRows {
    pub(super) fn new(
        input: Box<dyn BufRead>,
        mut decoder: Decoder,
        limits: Limits,
        file: &str,
        resolver: &Resolver,
        rows: RowBuilder,
    ) -> Result<Self, RecordsError> {
        let mut records = CsvRecords::new(input, limits);
        let header_error = |message: String| RecordsError::Header {
            file: file.to_owned(),
            message,
        };
        let raw = records.next_record().map_err(|err| RecordsError::Io {
            path: file.to_owned(),
            message: err.to_string(),
        })?;
        let line = match raw {
            Raw::Record { line } => line,
            Raw::End => {
                return Err(header_error(
                    "the file is empty; expected a header line with an `id` column".to_owned(),
                ))
            }
            Raw::TooLong { line } | Raw::Runaway { line } => {
                return Err(header_error(format!(
                    "line {line}, the header, is longer than {}; this is not a CSV export \
                     (or its header line has an unclosed quote)",
                    limits.record_size()
                )))
            }
        };
        let (mut text, mut ends) = (String::new(), Vec::new());
        if let Err(err) = decoder.decode(line, records.fields(), &mut text, &mut ends) {
            return Err(header_error(err.message("the header line")));
        }
        let header = cells(&text, &ends);
        let columns = resolver.resolve_header(file, line, header)?;
        Ok(CsvRows {
            records,
            decoder,
            columns,
            text,
            ends,
            rows,
            limits,
            done: false,
        })
    }

    /// The columns of the file, in order.
    pub(super) fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The rows' builder: its typer types rows on other threads.
    pub(super) fn builder(&self) -> &RowBuilder {
        &self.rows
    }

    /// Whether the record just read, starting on `line`, is a row to type (see
    /// [`check_record`]).
    fn check(&mut self, line: usize, text: &mut String, ends: &mut Vec<usize>) -> Option<Checked> {
        let (bytes, field_ends) = self.records.raw();
        let (decoder, columns) = (&mut self.decoder, &self.columns[..]);
        let typer = self.rows.typer_ref();
        check_record(decoder, columns, typer, line, bytes, field_ends, text, ends)
    }

    /// The next row in the file: its cells to type, or why it is skipped; `None` at the end.
    /// The text of a row to type is appended to `text`, and the end of each of its fields,
    /// counted from where its text starts, to `ends` (as many as there are columns); `text`
    /// and `ends` are left as they were otherwise.
    pub(super) fn next_onto(
        &mut self,
        text: &mut String,
        ends: &mut Vec<usize>,
    ) -> Option<Checked> {
        loop {
            match self.next_raw()? {
                Err(err) => return Some(Checked::Skipped(err)),
                Ok(line) => {
                    if let Some(checked) = self.check(line, text, ends) {
                        return Some(checked);
                    }
                }
            }
        }
    }

    /// [`Self::next_onto`], except that once the file is known to be Shift_JIS each record is
    /// handed over undecoded: its bytes appended to `raw` and the end of each of its fields,
    /// counted from where its bytes start, to `ends`, for [`check_record`] with the decoder
    /// given to decide on another thread. From then on the decoder no longer changes, so the
    /// rows and their messages are the same wherever they are decoded.
    pub(super) fn next_deferring(
        &mut self,
        text: &mut String,
        raw: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> Option<Deferred> {
        loop {
            if !self.done {
                if let Some(plain) = self.next_plain(text, raw, ends) {
                    return Some(plain);
                }
            }
            let line = match self.next_raw()? {
                Err(err) => return Some(Deferred::Checked(Checked::Skipped(err))),
                Ok(line) => line,
            };
            if self.decoder.is_shift_jis() {
                let (bytes, field_ends) = self.records.raw();
                raw.extend_from_slice(bytes);
                ends.extend_from_slice(field_ends);
                return Some(Deferred::Raw {
                    line,
                    decoder: self.decoder.clone(),
                    layout: Layout::Packed,
                });
            }
            if let Some(checked) = self.check(line, text, ends) {
                return Some(Deferred::Checked(checked));
            }
        }
    }

    /// The next row when it is a plain line of a file whose encoding is known (see
    /// [`CsvRecords::plain_utf8_line`]): a UTF-8 one's text appended to `text`, a Shift_JIS
    /// one's bytes to `raw`; `None` (nothing read) for the long way.
    fn next_plain(
        &mut self,
        text: &mut String,
        raw: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> Option<Deferred> {
        let columns = self.columns.len();
        let utf8 = self.decoder.is_utf8();
        let plain = match utf8 {
            true => self.records.plain_utf8_line(text, ends, columns),
            false if self.decoder.is_shift_jis() => self.records.plain_raw_line(raw, ends, columns),
            false => return None,
        };
        Some(match plain {
            Ok(None) => return None,
            Ok(Some(line)) if utf8 => Deferred::Line { line },
            Ok(Some(line)) => Deferred::Raw {
                line,
                decoder: self.decoder.clone(),
                layout: Layout::Line,
            },
            Err(err) => Deferred::Checked(Checked::Skipped(self.failed(err))),
        })
    }

    /// The next record read whole, by the line it starts on (its bytes in
    /// [`CsvRecords::raw`]), or why what is there is skipped; `None` at the end.
    fn next_raw(&mut self) -> Option<Result<usize, RowError>> {
        while !self.done {
            let raw = match self.records.next_record() {
                Ok(raw) => raw,
                Err(err) => return Some(Err(self.failed(err))),
            };
            match raw {
                Raw::End => self.done = true,
                Raw::Record { line } => return Some(Ok(line)),
                Raw::TooLong { line } => {
                    let message = format!(
                        "the row is longer than {} (an unclosed quote, or not a patient row); \
                         read on from the next line",
                        self.limits.record_size()
                    );
                    return Some(Err(self.rows.error(line, message)));
                }
                Raw::Runaway { line } => {
                    self.done = true;
                    let message = self.limits.runaway_message();
                    return Some(Err(self.rows.error(line, message)));
                }
            }
        }
        None
    }

    /// The input could not be read on: nothing more is.
    fn failed(&mut self, err: std::io::Error) -> RowError {
        self.done = true;
        let message = format!("cannot read the rest of the file: {err}");
        self.rows.error(self.records.line(), message)
    }
}

/// Whether the record starting on `line`, whose fields lie one after another in `bytes` (field
/// `n` ending at `field_ends[n]`), is a row to type: decoded (its text appended to `text` and
/// each field's end, counted from where its text starts, to `ends`), not a row of bare commas
/// (`None`), and with a cell for every column. Anything but a row to type leaves `text` and
/// `ends` as they were.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_record(
    decoder: &mut Decoder,
    columns: &[Column],
    typer: &RowTyper,
    line: usize,
    bytes: &[u8],
    field_ends: &[usize],
    text: &mut String,
    ends: &mut Vec<usize>,
) -> Option<Checked> {
    let (text_start, ends_start) = (text.len(), ends.len());
    if let Err(err) = decoder.decode_record(line, bytes, field_ends, text, ends) {
        let what = match columns.get(err.field) {
            Some(column) => format!("column {}", column.label()),
            None => format!("field {}", err.field + 1),
        };
        return Some(Checked::Skipped(typer.error(line, err.message(&what))));
    }
    let fields = ends.len() - ends_start;
    // Excel leaves rows of bare commas below the data; they are nobody.
    let blank = cells(&text[text_start..], &ends[ends_start..]).all(|cell| cell.trim().is_empty());
    if blank || fields != columns.len() {
        text.truncate(text_start);
        ends.truncate(ends_start);
    }
    if blank {
        return None;
    }
    if fields != columns.len() {
        let message = format!(
            "the row has {} fields but the header has {} \
             (a missing or extra comma, or an unclosed quote?)",
            fields,
            columns.len()
        );
        return Some(Checked::Skipped(typer.error(line, message)));
    }
    Some(Checked::Cells { line })
}

/// A row as [`CsvRows::next_deferring`] hands it over.
pub(super) enum Deferred {
    /// Decided on the reading thread, as [`CsvRows::next_onto`] decides.
    Checked(Checked),
    /// A row to type, starting on `line`, whose text is its plain line as read, of as many
    /// fields as there are columns ([`Layout::Line`]).
    Line { line: usize },
    /// Starting on `line`, still to be decoded and checked with `decoder`: its fields laid out
    /// as `layout` says (a plain line's bytes as they are, or the fields a record had).
    Raw {
        line: usize,
        decoder: Decoder,
        layout: Layout,
    },
}

/// A row of the file before it is typed.
pub(super) enum Checked {
    /// A row to type, starting on `line`.
    Cells { line: usize },
    /// A row that is skipped, and why.
    Skipped(RowError),
}

/// How a row's fields lie in its text, each ending at its `ends`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Layout {
    /// One after another, as decoding a record's fields leaves them.
    #[default]
    Packed,
    /// As the row's plain line had them: each but the last followed by its comma (see
    /// [`Deferred::Line`]).
    Line,
}

/// Where each field lies: field `n` ends at `ends[n]`, and the next starts there (or, in a
/// line, one byte later, past its comma).
pub(super) fn field_spans(
    ends: &[usize],
    layout: Layout,
) -> impl Iterator<Item = std::ops::Range<usize>> + Clone + '_ {
    let gap = match layout {
        Layout::Packed => 0,
        Layout::Line => 1,
    };
    let starts = std::iter::once(0).chain(ends.iter().map(move |&end| end + gap));
    starts
        .zip(ends.iter().copied())
        .map(|(start, end)| start..end)
}

/// The fields of a decoded record.
pub(super) fn cells<'t>(text: &'t str, ends: &'t [usize]) -> impl Iterator<Item = &'t str> + Clone {
    laid_out_cells(text, ends, Layout::Packed)
}

/// The fields of a row's text laid out as `layout` says.
pub(super) fn laid_out_cells<'t>(
    text: &'t str,
    ends: &'t [usize],
    layout: Layout,
) -> impl Iterator<Item = &'t str> + Clone {
    field_spans(ends, layout).map(move |span| &text[span])
}

impl Iterator for CsvRows {
    type Item = Result<PatientRecord, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (mut text, mut ends) = (
            std::mem::take(&mut self.text),
            std::mem::take(&mut self.ends),
        );
        text.clear();
        ends.clear();
        let row = match self.next_onto(&mut text, &mut ends)? {
            Checked::Skipped(err) => Err(err),
            Checked::Cells { line } => {
                let cells = cells(&text, &ends).map(|cell| Cell::Text(Cow::Borrowed(cell)));
                self.rows.build(line, self.columns.iter().zip(cells))
            }
        };
        // Kept for the next row, so that each row is read into the same buffers.
        (self.text, self.ends) = (text, ends);
        Some(row)
    }
}
