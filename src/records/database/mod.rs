//! Patients straight from a reservation system's PostgreSQL database, without an export step:
//! the rows of a query (or a table) read as the rows of a CSV export are, with the same column
//! mapping — column names are headers, values are turned into the text a CSV cell would hold,
//! NULL is an empty cell. Rows are numbered from 1 in the query's order and the number stands
//! in for a line number in messages (`row 5012`).
//!
//! Reading happens in a read-only transaction, through a portal fetched in batches, in a thread
//! of its own ([`stream`]); memory stays flat however many rows there are. A row longer than
//! the CSV reader's bound is skipped without its cells crossing the network.

mod source;
mod stream;

use std::borrow::Cow;
use std::sync::mpsc::{Receiver, RecvTimeoutError};

use serde_json::Value;

pub use source::{Database, PatientQuery};

use super::bounded::Limits;
use super::columns::{first_duplicate, Column, Resolver, Role};
use super::reader::{PatientRecords, RowsAre};
use super::row::{Cell, RowBuilder};
use super::{PatientRecord, ReadOptions, RecordSchema, RecordsError, RowError};
use stream::{Fetched, Kind, Message, ResultColumn};

/// Opens the patients `database` lists. Fails for problems with the source as a whole (it
/// cannot be reached, the password is wrong, the query is not valid, it has no `id` column,
/// the mapping does not fit the rules); row problems come out of the iterator. The encoding
/// and format options do not apply (the server sends UTF-8 text).
pub fn open_database(
    database: &Database,
    schema: &RecordSchema,
    options: &ReadOptions,
) -> Result<PatientRecords, RecordsError> {
    open_bounded(database, schema, options, Limits::default())
}

fn open_bounded(
    database: &Database,
    schema: &RecordSchema,
    options: &ReadOptions,
    limits: Limits,
) -> Result<PatientRecords, RecordsError> {
    let name = database.name();
    let mapping = options.mapping.as_ref();
    let rows = RowBuilder::new(name, schema, mapping)?.counting_rows();
    let unreadable = rows.unreadable();
    let resolver = Resolver::new(schema, mapping);
    let notices = resolver.notices();
    let sql = database
        .query
        .sql()
        .map_err(|message| database.error(message))?;
    let receiver = stream::start(database, sql, limits.record);
    let result = match receiver.recv_timeout(database.answer_within) {
        Ok(Message::Columns(columns)) => columns,
        Ok(Message::Failed(message)) => return Err(database.error(message)),
        Ok(_) | Err(RecvTimeoutError::Disconnected) => {
            return Err(database.error(
                "the database reader stopped before the query's columns were known".to_owned(),
            ))
        }
        Err(RecvTimeoutError::Timeout) => {
            return Err(database.error(format!(
                "no answer from the database within {} s (set connect_timeout=SECONDS in the URL \
                 to wait longer)",
                database.answer_within.as_secs()
            )))
        }
    };
    let columns = resolve(name, &resolver, &result)?;
    let kinds = result.iter().map(|column| column.kind).collect();
    // A query that fails before its first row (a cast that fails, a table it may not read) is
    // a bad query, not a bad row: it stops the command as an unreadable file does. How long
    // the first rows take is the query's own business (no bound here).
    let (first, done) = match receiver.recv() {
        Ok(Message::Rows(rows)) => (rows, false),
        Ok(Message::End) => (Vec::new(), true),
        Ok(Message::Failed(message)) => return Err(database.error(message)),
        Ok(Message::Columns(_)) | Err(_) => {
            return Err(database.error("the database reader stopped unexpectedly".to_owned()))
        }
    };
    let rows = DatabaseRows {
        receiver,
        pending: first.into_iter(),
        columns,
        kinds,
        rows,
        row: 0,
        limits,
        done,
    };
    Ok(PatientRecords::from_parts(
        name.to_owned(),
        RowsAre::Numbered,
        notices,
        unreadable,
        Box::new(rows),
    ))
}

/// The result's columns, checked once as a CSV header is: an `id` column is needed and no two
/// columns may mean the same thing.
fn resolve(
    name: &str,
    resolver: &Resolver,
    result: &[ResultColumn],
) -> Result<Vec<Column>, RecordsError> {
    let columns: Vec<Column> = result
        .iter()
        .map(|column| resolver.resolve(&column.name))
        .collect();
    if let Some((first, second)) = first_duplicate(columns.iter()) {
        return Err(RecordsError::DuplicateColumn {
            file: name.to_owned(),
            name: second.name.clone(),
            first: first.header.clone(),
            second: second.header.clone(),
        });
    }
    if !columns.iter().any(|column| column.role == Role::Id) {
        let header: Vec<String> = columns.iter().map(|c| c.header.clone()).collect();
        let suggestion =
            crate::diagnostic::suggest("id", header.iter().map(String::as_str)).map(str::to_owned);
        return Err(RecordsError::MissingIdColumn {
            file: name.to_owned(),
            header,
            suggestion,
        });
    }
    Ok(columns)
}

/// The rows of one query, each a record or the reason it was skipped.
struct DatabaseRows {
    receiver: Receiver<Message>,
    pending: std::vec::IntoIter<Fetched>,
    columns: Vec<Column>,
    kinds: Vec<Kind>,
    rows: RowBuilder,
    /// The number of the last row handed out (1-based).
    row: usize,
    limits: Limits,
    done: bool,
}

impl DatabaseRows {
    fn build(&mut self, fetched: Fetched) -> Result<PatientRecord, RowError> {
        let cells = match fetched {
            Fetched::Cells(cells) => cells,
            Fetched::TooLong => {
                let message = format!(
                    "the row is longer than {} (all its cells together); it was not read",
                    self.limits.record_size()
                );
                return Err(self.rows.error(self.row, message));
            }
        };
        let columns = self.columns.iter().zip(&self.kinds).zip(&cells);
        let cells = columns.filter_map(|((column, kind), value)| {
            let value = value.as_deref()?;
            let cell = match kind {
                Kind::Text => Cell::Text(Cow::Borrowed(value)),
                Kind::Json => json_cell(value)?,
            };
            Some((column, cell))
        });
        self.rows.build(self.row, cells)
    }
}

impl Iterator for DatabaseRows {
    type Item = Result<PatientRecord, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(fetched) = self.pending.next() {
                self.row += 1;
                return Some(self.build(fetched));
            }
            if self.done {
                return None;
            }
            let failed = match self.receiver.recv() {
                Ok(Message::Rows(rows)) => {
                    self.pending = rows.into_iter();
                    continue;
                }
                Ok(Message::End) => {
                    self.done = true;
                    return None;
                }
                Ok(Message::Failed(message)) => message,
                Ok(Message::Columns(_)) | Err(_) => {
                    "the database reader stopped unexpectedly".to_owned()
                }
            };
            self.done = true;
            let message = format!("cannot read the rest of the rows: {failed}");
            return Some(Err(self.rows.error(self.row + 1, message)));
        }
    }
}

/// A json, jsonb or array cell, read as a JSONL export's value is: a string is its text, a
/// number or boolean its JSON text, a list (nested lists flattened) a list (for `tags`), an
/// object its JSON text; null is empty.
fn json_cell(text: &str) -> Option<Cell<'_>> {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Some(Cell::Text(Cow::Borrowed(text)));
    };
    match value {
        Value::Null => None,
        Value::String(text) => Some(Cell::Text(Cow::Owned(text))),
        Value::Array(items) => {
            let mut list = Vec::new();
            flatten(items, &mut list, 0);
            Some(Cell::List(list))
        }
        other => Some(Cell::Text(Cow::Owned(other.to_string()))),
    }
}

/// The scalars of a JSON list, nested lists included (PostgreSQL's multi-dimensional arrays);
/// depth is bounded by serde_json's recursion limit, checked here too.
fn flatten(items: Vec<Value>, list: &mut Vec<Cow<'static, str>>, depth: usize) {
    for item in items {
        match item {
            Value::Null => {}
            Value::String(text) => list.push(Cow::Owned(text)),
            Value::Array(inner) if depth < 128 => flatten(inner, list, depth + 1),
            other => list.push(Cow::Owned(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(cell: Option<Cell<'_>>) -> Option<Vec<String>> {
        cell.map(|cell| match cell {
            Cell::Text(text) => vec![text.into_owned()],
            Cell::List(items) => items.into_iter().map(Cow::into_owned).collect(),
        })
    }

    #[test]
    fn json_cells_read_as_jsonl_values() {
        assert_eq!(texts(json_cell("null")), None);
        assert_eq!(texts(json_cell("\"vip\"")), Some(vec!["vip".to_owned()]));
        assert_eq!(texts(json_cell("true")), Some(vec!["true".to_owned()]));
        assert_eq!(
            texts(json_cell("[[\"a\",null],[\"b\",2]]")),
            Some(vec!["a".to_owned(), "b".to_owned(), "2".to_owned()])
        );
        assert_eq!(
            texts(json_cell("{\"k\": 1}")),
            Some(vec!["{\"k\":1}".to_owned()])
        );
    }
}
