//! Problems that stop a whole export from being read (a bad row is a [`super::RowError`]
//! instead, and the rest of the file is still read).

use crate::printable::printable;

/// Why a patient export (or its header mapping) could not be read at all. Messages name the
/// file and the columns, never a patient's data; text from a file is escaped when displayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read the file: {message}")]
    Io { path: String, message: String },
    /// A patient database could not be reached or queried. `database` is its URL without the
    /// password; the message never holds the password or a value from the rows.
    #[error("{database}: {message}")]
    Database { database: String, message: String },
    /// No format was given and the extension does not name one.
    #[error(
        "{path}: cannot tell the format from the file name (expected .csv, .jsonl or .ndjson); \
         choose the format explicitly"
    )]
    UnknownFormat { path: String },
    /// The header mapping file is not valid TOML, has an unknown section, or maps a stage
    /// value to a stage the rules do not declare.
    #[error("{path}: header mapping: {message}")]
    Mapping { path: String, message: String },
    /// The header line is missing or unreadable (e.g. a Shift_JIS file read as UTF-8).
    #[error("{file}: {message}")]
    Header { file: String, message: String },
    /// Every row needs the clinic's patient id, so an export without an `id` column is unusable.
    #[error(
        "{file}: the header has no `id` column (found: {}); {}",
        listed(.header),
        id_hint(.suggestion.as_deref())
    )]
    MissingIdColumn {
        file: String,
        header: Vec<String>,
        suggestion: Option<String>,
    },
    /// The first line holds dates, so it is a patient row of an export saved without its
    /// header. The cells are not repeated: they are patient data.
    #[error(
        "{file}: the first line looks like a patient row, not a header (it has a date in it); \
         export the file with its header line, which needs an `id` column"
    )]
    NoHeader { file: String },
    /// The first line has no column steprule or the mapping knows, so it may as well be a
    /// patient row as a header in other names. Its cells are not repeated, in case they are a
    /// patient's.
    #[error(
        "{file}: line {line} has none of the columns steprule knows ({columns} cells, no `id`); \
         if it is a patient row, export the file with its header line; if it is the header, \
         map its columns in a header mapping file, e.g. \"患者ID\" = \"id\" (its cells are not \
         shown here, in case they are patient data)"
    )]
    UnknownHeader {
        file: String,
        line: usize,
        columns: usize,
    },
    /// Two columns mean the same thing (directly or through the mapping), so a row would be
    /// ambiguous.
    #[error(
        "{file}: columns `{}` and `{}` both mean `{}`",
        printable(.first),
        printable(.second),
        printable(.name)
    )]
    DuplicateColumn {
        file: String,
        name: String,
        first: String,
        second: String,
    },
}

fn listed(headers: &[String]) -> String {
    let escaped: Vec<_> = headers.iter().map(|header| printable(header)).collect();
    escaped.join(", ")
}

fn id_hint(suggestion: Option<&str>) -> String {
    match suggestion.map(printable) {
        Some(close) => format!(
            "did you mean `{close}`? Rename it to `id`, or map it in a header mapping file: \
             \"{close}\" = \"id\""
        ),
        None => "rename the patient-id column to `id`, or map it in a header mapping file, \
                 e.g. \"患者ID\" = \"id\""
            .to_owned(),
    }
}
