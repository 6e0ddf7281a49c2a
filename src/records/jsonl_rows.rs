//! Streaming a JSONL export: one JSON object per line, read into a reused buffer. Keys play the
//! part of CSV headers and are resolved once per distinct key.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use serde_json::Value;

use super::columns::{first_duplicate, Column, Resolver};
use super::row::{Cell, RowBuilder};
use super::{PatientRecord, RowError};

/// Real exports have a few dozen distinct keys; past this many, keys are resolved per row so a
/// file with ever-new keys cannot grow memory without bound.
const KEY_CACHE_LIMIT: usize = 1024;

/// The rows of one JSONL export, each a record or the reason it was skipped.
pub(super) struct JsonlRows {
    reader: BufReader<Box<dyn Read>>,
    line_buf: Vec<u8>,
    line: usize,
    resolver: Resolver,
    columns: HashMap<String, Column>,
    rows: RowBuilder,
    done: bool,
}

impl JsonlRows {
    pub(super) fn new(text: Box<dyn Read>, resolver: Resolver, rows: RowBuilder) -> Self {
        JsonlRows {
            reader: BufReader::new(text),
            line_buf: Vec::new(),
            line: 0,
            resolver,
            columns: HashMap::new(),
            rows,
            done: false,
        }
    }

    /// The record for one non-blank line.
    fn row(&mut self, text: &str) -> Result<PatientRecord, RowError> {
        let line = self.line;
        let object = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object,
            Ok(other) => {
                let found = kind(&other);
                let message =
                    format!("expected a JSON object ({{...}}) on the line, found {found}");
                return Err(self.rows.error(line, message));
            }
            Err(err) => return Err(self.rows.error(line, json_error(&err))),
        };
        let mut fresh = Vec::new();
        for key in object.keys() {
            if !self.columns.contains_key(key.trim()) {
                fresh.push(self.resolver.resolve(key));
            }
        }
        if self.columns.len() + fresh.len() <= KEY_CACHE_LIMIT {
            self.columns.extend(
                fresh
                    .drain(..)
                    .map(|column| (column.header.clone(), column)),
            );
        }
        let mut cells = Vec::with_capacity(object.len());
        for (key, value) in &object {
            let column = match self.columns.get(key.trim()) {
                Some(column) => column,
                None => fresh
                    .iter()
                    .find(|column| column.header == key.trim())
                    .expect("every key was resolved above"),
            };
            match cell(value) {
                Ok(Some(cell)) => cells.push((column, cell)),
                Ok(None) => {}
                Err(problem) => {
                    let message = format!("field {}: {problem}", column.label());
                    return Err(self.rows.error(line, message));
                }
            }
        }
        if let Some((first, second)) = first_duplicate(cells.iter().map(|(column, _)| *column)) {
            let message = format!(
                "fields `{}` and `{}` both mean `{}`",
                first.header, second.header, second.name
            );
            return Err(self.rows.error(line, message));
        }
        self.rows.build(line, cells)
    }
}

impl Iterator for JsonlRows {
    type Item = Result<PatientRecord, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.line_buf.clear();
            match self.reader.read_until(b'\n', &mut self.line_buf) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line += 1;
                    let buf = std::mem::take(&mut self.line_buf);
                    let result = match std::str::from_utf8(&buf) {
                        Ok(text) if text.trim().is_empty() => None,
                        Ok(text) => Some(self.row(text.trim())),
                        Err(_) => Some(Err(self.rows.error(
                            self.line,
                            "the line is not UTF-8 text; if the export is Shift_JIS, read it \
                             with the Shift_JIS encoding (or auto)"
                                .to_owned(),
                        ))),
                    };
                    self.line_buf = buf;
                    if result.is_some() {
                        return result;
                    }
                }
                Err(err) => {
                    self.done = true;
                    let message = format!("cannot read the rest of the file: {err}");
                    return Some(Err(self.rows.error(self.line + 1, message)));
                }
            }
        }
        None
    }
}

/// A JSON value as a cell; `None` for null. Nested objects have no meaning in a patient row.
fn cell(value: &Value) -> Result<Option<Cell<'_>>, &'static str> {
    Ok(match value {
        Value::Null => None,
        Value::Array(items) => {
            let items = items.iter().filter_map(|item| scalar(item).transpose());
            Some(Cell::List(items.collect::<Result<_, _>>()?))
        }
        other => scalar(other)?.map(Cell::Text),
    })
}

fn scalar(value: &Value) -> Result<Option<Cow<'_, str>>, &'static str> {
    Ok(match value {
        Value::Null => None,
        Value::String(text) => Some(Cow::Borrowed(text.as_str())),
        Value::Bool(yes) => Some(Cow::Borrowed(if *yes { "true" } else { "false" })),
        Value::Number(number) => Some(Cow::Owned(number.to_string())),
        Value::Array(_) | Value::Object(_) => {
            return Err(
                "nested lists and objects are not supported (use a string, number, \
                        boolean, null, or a list of those)",
            )
        }
    })
}

/// serde_json's message without its "at line 1" (always 1: each line is parsed alone). Syntax
/// errors never quote the text, so no patient data leaks into the message.
fn json_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(message, _)| message);
    format!("invalid JSON at column {}: {message}", err.column())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
