//! Streaming a CSV export: the header is read and resolved once, then each row is read into the
//! same reused [`StringRecord`].

use std::borrow::Cow;
use std::io::Read;

use csv::{ErrorKind, StringRecord};

use super::columns::{Column, Resolver};
use super::row::{Cell, RowBuilder};
use super::{PatientRecord, RecordsError, RowError};

const NOT_UTF8_HINT: &str =
    "if the export is Shift_JIS, read it with the Shift_JIS encoding (or auto)";

/// The rows of one CSV export, each a record or the reason it was skipped.
pub(super) struct CsvRows {
    reader: csv::Reader<Box<dyn Read>>,
    columns: Vec<Column>,
    record: StringRecord,
    rows: RowBuilder,
    /// After an I/O error there is nothing sensible left to read.
    done: bool,
}

impl CsvRows {
    pub(super) fn new(
        text: Box<dyn Read>,
        file: &str,
        resolver: &Resolver,
        rows: RowBuilder,
    ) -> Result<Self, RecordsError> {
        // Rows of the wrong length are this reader's to report, with their line.
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text);
        let mut header = StringRecord::new();
        let header_error = |message: String| RecordsError::Header {
            file: file.to_owned(),
            message,
        };
        match reader.read_record(&mut header) {
            Ok(true) => {}
            Ok(false) => {
                return Err(header_error(
                    "the file is empty; expected a header line with an `id` column".to_owned(),
                ))
            }
            Err(err) => {
                return Err(match err.kind() {
                    ErrorKind::Utf8 { .. } => header_error(format!(
                        "the header line is not UTF-8 text; {NOT_UTF8_HINT}"
                    )),
                    _ => RecordsError::Io {
                        path: file.to_owned(),
                        message: err.to_string(),
                    },
                })
            }
        }
        let columns = resolver.resolve_header(file, header.iter())?;
        Ok(CsvRows {
            reader,
            columns,
            record: header,
            rows,
            done: false,
        })
    }

    /// The physical line the record just read starts on. csv's own record position is where
    /// reading began, before any blank lines it skipped. Every record ends with an LF (see
    /// `LineEnds`) that csv has counted, so counting back from where the record ended over
    /// that LF and the LFs inside its quoted cells finds the real start.
    fn start_line(&self) -> usize {
        let began = self.record.position().map_or(0, |pos| pos.line());
        let ended = self.reader.position().line();
        let inside: u64 = self
            .record
            .iter()
            .map(|cell| cell.bytes().filter(|&b| b == b'\n').count() as u64)
            .sum();
        began.max(ended.saturating_sub(inside + 1)) as usize
    }

    fn read_error(&mut self, err: csv::Error) -> RowError {
        let ended = self.reader.position().line() as usize;
        match err.kind() {
            ErrorKind::Utf8 { pos, err } => {
                // csv wipes such a record, so its cells cannot be counted back over; the line
                // before where it ended is right for the usual one-line row.
                let began = pos.as_ref().map_or(0, |pos| pos.line() as usize);
                let message = format!(
                    "field {} is not UTF-8 text; {NOT_UTF8_HINT}",
                    err.field() + 1
                );
                self.rows.error(began.max(ended.saturating_sub(1)), message)
            }
            ErrorKind::Io(io) => {
                self.done = true;
                let message = format!("cannot read the rest of the file: {io}");
                self.rows.error(ended, message)
            }
            _ => {
                let line = err.position().map_or(ended, |pos| pos.line() as usize);
                self.rows.error(line, format!("unreadable row: {err}"))
            }
        }
    }
}

impl Iterator for CsvRows {
    type Item = Result<PatientRecord, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.reader.read_record(&mut self.record) {
                Ok(false) => self.done = true,
                Ok(true) => {
                    // Excel leaves rows of bare commas below the data; they are nobody.
                    if self.record.iter().all(|cell| cell.trim().is_empty()) {
                        continue;
                    }
                    let line = self.start_line();
                    if self.record.len() != self.columns.len() {
                        let message = format!(
                            "the row has {} fields but the header has {} \
                             (a missing or extra comma, or an unclosed quote?)",
                            self.record.len(),
                            self.columns.len()
                        );
                        return Some(Err(self.rows.error(line, message)));
                    }
                    let cells = self.columns.iter().zip(
                        self.record
                            .iter()
                            .map(|cell| Cell::Text(Cow::Borrowed(cell))),
                    );
                    return Some(self.rows.build(line, cells));
                }
                Err(err) => return Some(Err(self.read_error(err))),
            }
        }
        None
    }
}
