//! Streaming a JSONL export: one JSON object per line, read as bytes into a reused buffer
//! (bounded in size) and decoded in the file's one encoding. Keys play the part of CSV headers
//! and are resolved once per distinct key.

use std::collections::HashMap;
use std::io::BufRead;

use super::bounded::{read_line, Limits, Line};
use super::columns::{first_duplicate, Column, Resolver};
use super::csv_rows::Checked;
use super::decode::Decoder;
use super::jsonl_line::{parse_line, JsonLine, JsonValue};
use super::row::{Cell, RowBuilder, RowTyper, TypedRow};
use super::seen_ids::keyed_hasher;
use super::spent::Spares;
use super::{PatientRecord, RowError};
use crate::printable::printable;

/// Real exports have a few dozen distinct keys; past this many, keys are resolved per row so a
/// file with ever-new keys cannot grow memory without bound.
const KEY_CACHE_LIMIT: usize = 1024;

/// The rows of one JSONL export, each a record or the reason it was skipped.
pub(super) struct JsonlRows {
    input: Box<dyn BufRead>,
    decoder: Decoder,
    limits: Limits,
    line_buf: Vec<u8>,
    /// The decoded line (and its one "field" end, for the decoder).
    text: String,
    ends: Vec<usize>,
    line: usize,
    keys: JsonlKeys,
    rows: RowBuilder,
    /// Rows typed here get new records (nobody hands spent ones back to this thread).
    spares: Spares,
    done: bool,
}

/// Types JSONL lines: the keys met so far resolved to columns, each once. One per thread
/// typing lines; the notices its resolver finds are the first line's that brings them there.
pub(super) struct JsonlKeys {
    resolver: Resolver,
    /// Looked up twice per key of every line: hashed with aHash (SipHash was a sixth of a
    /// JSONL line's typing), keyed per process as the ids are.
    columns: HashMap<String, Column, ahash::RandomState>,
}

impl JsonlRows {
    pub(super) fn new(
        input: Box<dyn BufRead>,
        decoder: Decoder,
        limits: Limits,
        resolver: Resolver,
        rows: RowBuilder,
    ) -> Self {
        JsonlRows {
            input,
            decoder,
            limits,
            line_buf: Vec::new(),
            text: String::new(),
            ends: Vec::new(),
            line: 0,
            keys: JsonlKeys::new(resolver),
            rows,
            spares: Spares::default(),
            done: false,
        }
    }

    /// The decoded text of the line [`Self::next_checked`] last gave as [`Checked::Cells`].
    pub(super) fn text(&self) -> &str {
        self.text.trim()
    }

    /// The rows' builder: its typer types rows on other threads.
    pub(super) fn builder(&self) -> &RowBuilder {
        &self.rows
    }

    /// The next non-blank line: decoded (in [`Self::text`]), or why it is skipped; `None` at
    /// the end.
    pub(super) fn next_checked(&mut self) -> Option<Checked> {
        while !self.done {
            let read = read_line(self.input.as_mut(), &mut self.line_buf, &self.limits);
            self.line += 1;
            let line = self.line;
            match read {
                Err(err) => {
                    self.done = true;
                    let message = format!("cannot read the rest of the file: {err}");
                    return Some(Checked::Skipped(self.rows.error(line, message)));
                }
                Ok(Line::End) => self.done = true,
                Ok(Line::TooLong) => {
                    let message = format!(
                        "the line is longer than {} (not a patient row); read on from the next line",
                        self.limits.record_size()
                    );
                    return Some(Checked::Skipped(self.rows.error(line, message)));
                }
                Ok(Line::Runaway) => {
                    self.done = true;
                    let message = self.limits.runaway_message();
                    return Some(Checked::Skipped(self.rows.error(line, message)));
                }
                Ok(Line::Text) => {
                    let decoded = self.decoder.decode(
                        line,
                        std::iter::once(self.line_buf.as_slice()),
                        &mut self.text,
                        &mut self.ends,
                    );
                    if let Err(err) = decoded {
                        let message = err.message("the line");
                        return Some(Checked::Skipped(self.rows.error(line, message)));
                    }
                    if !self.text.trim().is_empty() {
                        return Some(Checked::Cells { line });
                    }
                }
            }
        }
        None
    }
}

impl JsonlKeys {
    pub(super) fn new(resolver: Resolver) -> Self {
        JsonlKeys {
            resolver,
            columns: HashMap::with_hasher(keyed_hasher()),
        }
    }

    /// The notices found since the last call.
    pub(super) fn take_notices(&self) -> Vec<String> {
        self.resolver.notices().take()
    }

    /// The row on `line`, typed but not checked against the rows before it.
    pub(super) fn type_line(
        &mut self,
        typer: &RowTyper,
        line: usize,
        text: &str,
        spares: &mut Spares,
    ) -> Result<TypedRow, RowError> {
        let object = match parse_line(text) {
            Ok(JsonLine::Object(object)) => object,
            Ok(JsonLine::Not(found)) => {
                let message =
                    format!("expected a JSON object ({{...}}) on the line, found {found}");
                return Err(typer.error(line, message));
            }
            Err(err) => return Err(typer.error(line, json_error(&err))),
        };
        let mut fresh = Vec::new();
        for (key, _) in &object {
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
        for (key, value) in object {
            // Every key was resolved above, so one of the two has it.
            let column = match self.columns.get(key.trim()) {
                Some(column) => column,
                None => match fresh.iter().find(|column| column.header == key.trim()) {
                    Some(column) => column,
                    None => continue,
                },
            };
            match cell(value) {
                Ok(Some(cell)) => cells.push((column, cell)),
                Ok(None) => {}
                Err(problem) => {
                    let message = format!("field {}: {problem}", column.label());
                    return Err(typer.error(line, message));
                }
            }
        }
        if let Some((first, second)) = first_duplicate(cells.iter().map(|(column, _)| *column)) {
            let message = format!(
                "fields `{}` and `{}` both mean `{}`",
                printable(&first.header),
                printable(&second.header),
                printable(&second.name)
            );
            return Err(typer.error(line, message));
        }
        Ok(typer.type_row(line, cells, spares))
    }
}

impl Iterator for JsonlRows {
    type Item = Result<PatientRecord, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_checked()? {
            Checked::Skipped(err) => Some(Err(err)),
            Checked::Cells { line } => {
                let typer = self.rows.typer_ref();
                let typed = self
                    .keys
                    .type_line(typer, line, self.text.trim(), &mut self.spares);
                Some(typed.and_then(|typed| self.rows.finish(typed)))
            }
        }
    }
}
/// A JSON value as a cell; `None` for null. Nested objects have no meaning in a patient row.
fn cell(value: JsonValue<'_>) -> Result<Option<Cell<'_>>, &'static str> {
    Ok(match value {
        JsonValue::Null => None,
        JsonValue::Text(text) => Some(Cell::Text(text)),
        JsonValue::List(Some(items)) => Some(Cell::List(items)),
        JsonValue::List(None) | JsonValue::Object => {
            return Err(
                "nested lists and objects are not supported (use a string, number, \
                        boolean, null, or a list of those)",
            )
        }
    })
}

/// serde_json's message without its "at line 1" (always 1: each line is parsed alone). Only
/// syntax and end-of-line messages are kept: they are fixed texts. A data error's message can
/// quote a value from the line (`invalid type: string "…"`), so it is never passed on.
pub(super) fn json_error(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let column = err.column();
    match err.classify() {
        Category::Syntax | Category::Eof => {
            let text = err.to_string();
            let message = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(message, _)| message);
            format!("invalid JSON at column {column}: {message}")
        }
        Category::Data | Category::Io => {
            format!("invalid JSON at column {column}: a value cannot be read")
        }
    }
}
