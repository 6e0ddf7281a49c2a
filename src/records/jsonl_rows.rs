//! Streaming a JSONL export: one JSON object per line, read as bytes into a reused buffer
//! (bounded in size) and decoded in the file's one encoding. Keys play the part of CSV headers
//! and are resolved once per distinct key.

use std::io::BufRead;

use super::bounded::{keep_trimmed, read_line, Limits, Line};
use super::columns::Resolver;
use super::csv_rows::Checked;
use super::decode::{Decoder, Undecodable};
use super::jsonl_keys::JsonlKeys;
use super::row::RowBuilder;
use super::spent::Spares;
use super::{PatientRecord, RowError};

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

    /// The rows' builder: its typer types rows on other threads.
    pub(super) fn builder(&self) -> &RowBuilder {
        &self.rows
    }

    /// The next non-blank line: decoded and trimmed onto the end of `text`, or why it is
    /// skipped (`text` as it was); `None` at the end. Decoded where it lies in the reader's
    /// buffer when it lies whole there (nearly every line), not first copied into a line of
    /// its own and then into `text`: the reading thread's instructions at 100,000 lines went
    /// from 132 M to 120 M.
    pub(super) fn next_checked_onto(&mut self, text: &mut String) -> Option<Checked> {
        while !self.done {
            let start = text.len();
            self.line += 1;
            let line = self.line;
            let decoded = match self.decode_buffered(line, text) {
                Some(decoded) => decoded,
                None => match read_line(self.input.as_mut(), &mut self.line_buf, &self.limits) {
                    Err(err) => {
                        self.done = true;
                        let message = format!("cannot read the rest of the file: {err}");
                        return Some(Checked::Skipped(self.rows.error(line, message)));
                    }
                    Ok(Line::End) => {
                        self.done = true;
                        continue;
                    }
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
                        self.ends.clear();
                        let bytes = std::iter::once(self.line_buf.as_slice());
                        self.decoder.decode_onto(line, bytes, text, &mut self.ends)
                    }
                },
            };
            if let Err(err) = decoded {
                let message = err.message("the line");
                return Some(Checked::Skipped(self.rows.error(line, message)));
            }
            if keep_trimmed(text, start) {
                return Some(Checked::Cells { line });
            }
        }
        None
    }

    /// The next line, `line`, decoded onto `text` from the reader's buffer when it lies whole
    /// there and is not too long; `None` (nothing read) otherwise, for [`read_line`] to read.
    fn decode_buffered(
        &mut self,
        line: usize,
        text: &mut String,
    ) -> Option<Result<(), Undecodable>> {
        // A failed fill is left for `read_line`, which reports it.
        let buffered = self.input.fill_buf().ok()?;
        let end = memchr::memchr(b'\n', buffered)?;
        if end > self.limits.record {
            return None;
        }
        self.ends.clear();
        let bytes = std::iter::once(&buffered[..end]);
        let decoded = self.decoder.decode_onto(line, bytes, text, &mut self.ends);
        self.input.consume(end + 1);
        Some(decoded)
    }
}

impl Iterator for JsonlRows {
    type Item = Result<PatientRecord, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        let checked = self.next_checked_onto(&mut text);
        self.text = text;
        match checked? {
            Checked::Skipped(err) => Some(Err(err)),
            Checked::Cells { line } => {
                let typer = self.rows.typer_ref();
                let typed = self
                    .keys
                    .type_line(typer, line, &self.text, &mut self.spares);
                Some(typed.and_then(|typed| self.rows.finish(typed)))
            }
        }
    }
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
