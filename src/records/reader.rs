//! Opening an export: choosing the format, decoding the text and handing back the rows as a
//! stream of [`PatientRecord`]s.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::bounded::Limits;
use super::columns::{Notices, Resolver};
use super::csv_rows::CsvRows;
use super::decode::{without_bom, Decoder, LineEnds};
use super::jsonl_rows::JsonlRows;
use super::row::{RowBuilder, Unreadable};
use super::{PatientRecord, ReadOptions, RecordFormat, RecordSchema, RecordsError, RowError};

/// The patients of one export, read one row at a time: memory stays flat however many
/// patients the clinic has (only the ids seen so far are kept, to catch duplicates). A bad row
/// is an `Err` with its line; the rows after it are still read.
pub struct PatientRecords {
    name: String,
    rows_are: RowsAre,
    notices: Notices,
    unreadable: Unreadable,
    rows: Box<dyn Iterator<Item = Result<PatientRecord, RowError>>>,
}

/// What a record's `line` counts: lines of a file, or rows of a database query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RowsAre {
    Lines,
    Numbered,
}

impl RowsAre {
    /// Where the row at `line` of `name` is, for messages.
    pub(super) fn place(self, name: &str, line: usize) -> String {
        match self {
            RowsAre::Lines => format!("{name}:{line}"),
            RowsAre::Numbered => format!("{name}: row {line}"),
        }
    }
}

impl PatientRecords {
    /// Records made from their parts: rows from another source (a database, or the reading
    /// thread of [`super::ahead`]), built as an export's are, with the notices and reports that
    /// come with them put where `take_*` finds them.
    pub(super) fn from_parts(
        name: String,
        rows_are: RowsAre,
        notices: Notices,
        unreadable: Unreadable,
        rows: Box<dyn Iterator<Item = Result<PatientRecord, RowError>>>,
    ) -> Self {
        PatientRecords {
            name,
            rows_are,
            notices,
            unreadable,
            rows,
        }
    }

    /// The file name rows and errors refer to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the row at `line` is, for messages: `patients.csv:12`, or `postgres://…: row 12`.
    pub fn place(&self, line: usize) -> String {
        self.rows_are.place(&self.name, line)
    }

    /// The parts [`Self::from_parts`] takes, to hand the rows on with something more.
    #[allow(clippy::type_complexity)] // the parts, as `from_parts` takes them
    pub(super) fn into_parts(
        self,
    ) -> (
        String,
        RowsAre,
        Notices,
        Unreadable,
        Box<dyn Iterator<Item = Result<PatientRecord, RowError>>>,
    ) {
        (
            self.name,
            self.rows_are,
            self.notices,
            self.unreadable,
            self.rows,
        )
    }

    /// Warnings about the file as a whole found since the last call (a column named like a
    /// computed built-in, which is ignored), each once per file. For CSV they are known when
    /// the file is opened; for JSONL as rows come.
    pub fn take_notices(&mut self) -> Vec<String> {
        self.notices.take()
    }

    /// Rows kept with cells that could not be read, found since the last call: one report per
    /// row, naming the columns and what is left out (never the cells). Taken after each row,
    /// it is that row's.
    pub fn take_unreadable(&mut self) -> Vec<RowError> {
        self.unreadable.take()
    }
}

impl Iterator for PatientRecords {
    type Item = Result<PatientRecord, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rows.next()
    }
}

impl fmt::Debug for PatientRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatientRecords")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Opens the export at `path`. The format comes from `options.format`, else from the
/// extension (`.csv`, `.jsonl`, `.ndjson`). Fails only for problems with the whole file (it
/// cannot be read, has no `id` column, the mapping does not fit the rules); row problems
/// come out of the iterator.
pub fn open(
    path: &Path,
    schema: &RecordSchema,
    options: &ReadOptions,
) -> Result<PatientRecords, RecordsError> {
    open_parts(path, schema, options).map(Opened::into_records)
}

/// Reads an export from any byte stream (stdin, a test's bytes); `name` is what rows and
/// errors call the file. `options.format` is ignored in favour of `format`.
pub fn read_from(
    reader: impl Read + 'static,
    name: &str,
    format: RecordFormat,
    schema: &RecordSchema,
    options: &ReadOptions,
) -> Result<PatientRecords, RecordsError> {
    read_bounded(reader, name, format, schema, options, Limits::default())
}

/// [`read_from`] with the bounds on a row given, so tests can use small ones.
pub(super) fn read_bounded(
    reader: impl Read + 'static,
    name: &str,
    format: RecordFormat,
    schema: &RecordSchema,
    options: &ReadOptions,
    limits: Limits,
) -> Result<PatientRecords, RecordsError> {
    parts_bounded(reader, name, format, schema, options, limits).map(Opened::into_records)
}

/// An export opened and checked as a whole, its rows not yet read: for readers that hand the
/// rows' typing to other threads.
pub(super) struct Opened {
    pub name: String,
    pub notices: Notices,
    pub unreadable: Unreadable,
    pub rows: Rows,
}

/// The rows of an opened export, by format.
pub(super) enum Rows {
    Csv(Box<CsvRows>),
    Jsonl(Box<JsonlRows>),
}

impl Opened {
    pub(super) fn into_records(self) -> PatientRecords {
        let rows: Box<dyn Iterator<Item = _>> = match self.rows {
            Rows::Csv(rows) => Box::new(rows),
            Rows::Jsonl(rows) => Box::new(rows),
        };
        PatientRecords {
            name: self.name,
            rows_are: RowsAre::Lines,
            notices: self.notices,
            unreadable: self.unreadable,
            rows,
        }
    }
}

/// [`open`], stopping before the rows are read.
pub(super) fn open_parts(
    path: &Path,
    schema: &RecordSchema,
    options: &ReadOptions,
) -> Result<Opened, RecordsError> {
    let name = path.display().to_string();
    let format = match options.format.or_else(|| RecordFormat::from_path(path)) {
        Some(format) => format,
        None => return Err(RecordsError::UnknownFormat { path: name }),
    };
    let file = File::open(path).map_err(|err| RecordsError::Io {
        path: name.clone(),
        message: err.to_string(),
    })?;
    parts_bounded(file, &name, format, schema, options, Limits::default())
}

fn parts_bounded(
    reader: impl Read + 'static,
    name: &str,
    format: RecordFormat,
    schema: &RecordSchema,
    options: &ReadOptions,
    limits: Limits,
) -> Result<Opened, RecordsError> {
    let mapping = options.mapping.as_ref();
    let rows = RowBuilder::new(name, schema, mapping)?;
    let unreadable = rows.unreadable();
    let resolver = Resolver::new(schema, mapping);
    let notices = resolver.notices();
    let (bytes, has_bom) = without_bom(Box::new(reader)).map_err(|err| RecordsError::Io {
        path: name.to_owned(),
        message: err.to_string(),
    })?;
    // Both encodings write line ends as the same ASCII bytes, so lines can be made uniform
    // before anything is decoded, and line numbers in the bytes are line numbers in the file.
    let input: Box<dyn BufRead> =
        Box::new(BufReader::with_capacity(64 * 1024, LineEnds::new(bytes)));
    let decoder = Decoder::new(options.encoding, has_bom);
    let rows = match format {
        RecordFormat::Csv => Rows::Csv(Box::new(CsvRows::new(
            input, decoder, limits, name, &resolver, rows,
        )?)),
        RecordFormat::Jsonl => Rows::Jsonl(Box::new(JsonlRows::new(
            input, decoder, limits, resolver, rows,
        ))),
    };
    Ok(Opened {
        name: name.to_owned(),
        notices,
        unreadable,
        rows,
    })
}
