//! Bounds on what one row may take: a row longer than [`Limits::record`] is skipped to its line
//! end without being stored, and a file that goes on for [`Limits::runaway`] bytes without a
//! line end (a binary file, `/dev/zero`) is given up on, so memory stays flat and reading ends.

use std::io::{self, BufRead};

/// How large a row may be, and how far to look for the end of one that is too large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    /// Bytes in one row (CSV record or JSONL line, without its line end). Real rows are a few
    /// hundred bytes; a megabyte is a broken quote or not an export at all.
    pub record: usize,
    /// Bytes skipped after a too-long row while looking for its line end before the rest of
    /// the file is given up on.
    pub runaway: usize,
    /// Fields in one CSV record: Excel's own column limit.
    pub fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            record: 1024 * 1024,
            runaway: 64 * 1024 * 1024,
            fields: 16_384,
        }
    }
}

impl Limits {
    /// "1 MiB" for messages.
    pub(super) fn record_size(&self) -> String {
        size(self.record)
    }

    /// "64 MiB" for messages.
    pub(super) fn runaway_size(&self) -> String {
        size(self.runaway)
    }

    /// Why a file was given up on at a line with no end.
    pub(super) fn runaway_message(&self) -> String {
        format!(
            "the line is longer than {} and has no end within {}; this is not a patient \
             export, and the rest of it is not read",
            self.record_size(),
            self.runaway_size()
        )
    }
}

fn size(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// What the skip after a too-long row found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Skipped {
    /// The line end (consumed) or the end of the file: reading can go on after it.
    LineEnd,
    /// No line end within the runaway bound: the rest of the file is not read.
    Runaway,
}

/// Consumes `input` through the next LF without storing it.
pub(super) fn skip_line(input: &mut dyn BufRead, limits: &Limits) -> io::Result<Skipped> {
    let mut skipped = 0usize;
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(Skipped::LineEnd);
        }
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            input.consume(end + 1);
            return Ok(Skipped::LineEnd);
        }
        let len = buf.len();
        input.consume(len);
        skipped += len;
        if skipped > limits.runaway {
            return Ok(Skipped::Runaway);
        }
    }
}

/// One line read by [`read_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Line {
    /// The line is in the buffer, without its LF.
    Text,
    /// The line was longer than the bound and has been skipped through its LF.
    TooLong,
    /// The line was longer than the bound and no LF came within the runaway bound.
    Runaway,
    /// Nothing left.
    End,
}

/// Reads one line into `line` (cleared first), storing at most `limits.record` bytes of it.
pub(super) fn read_line(
    input: &mut dyn BufRead,
    line: &mut Vec<u8>,
    limits: &Limits,
) -> io::Result<Line> {
    line.clear();
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(if line.is_empty() {
                Line::End
            } else {
                Line::Text
            });
        }
        // memchr: a byte at a time was a third of a JSONL file's reading thread.
        let (take, found) = match memchr::memchr(b'\n', buf) {
            Some(end) => (end, true),
            None => (buf.len(), false),
        };
        if line.len() + take > limits.record {
            return Ok(match skip_line(input, limits)? {
                Skipped::LineEnd => Line::TooLong,
                Skipped::Runaway => Line::Runaway,
            });
        }
        line.extend_from_slice(&buf[..take]);
        input.consume(take + usize::from(found));
        if found {
            return Ok(Line::Text);
        }
    }
}

/// Trims the text appended to `text` after `start` (as `str::trim` does) where it is, and
/// whether anything is left (nothing: `text` is as it was before `start`).
pub(super) fn keep_trimmed(text: &mut String, start: usize) -> bool {
    let line = &text[start..];
    let (lead, len) = (line.len() - line.trim_start().len(), line.trim().len());
    if len == 0 {
        text.truncate(start);
        return false;
    }
    text.truncate(start + lead + len);
    if lead > 0 {
        text.drain(start..start + lead);
    }
    true
}

/// How many LFs `bytes` holds.
pub(super) fn count_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Cursor, Read};

    use super::*;

    fn small() -> Limits {
        Limits {
            record: 8,
            runaway: 64,
            fields: 4,
        }
    }

    fn lines(bytes: &[u8], limits: &Limits) -> Vec<(Line, String)> {
        // A tiny buffer, so lines cross buffer boundaries.
        let mut input = BufReader::with_capacity(3, Cursor::new(bytes.to_vec()));
        let mut line = Vec::new();
        let mut out = Vec::new();
        loop {
            let read = read_line(&mut input, &mut line, limits).unwrap();
            out.push((read, String::from_utf8_lossy(&line).into_owned()));
            if matches!(read, Line::End | Line::Runaway) {
                return out;
            }
        }
    }

    #[test]
    fn a_line_over_the_bound_is_skipped_and_the_next_one_read() {
        let read = lines(b"short\n0123456789abc\nafter\nlast", &small());
        let kinds: Vec<Line> = read.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(
            kinds,
            [Line::Text, Line::TooLong, Line::Text, Line::Text, Line::End]
        );
        assert_eq!(read[0].1, "short");
        assert_eq!(read[2].1, "after");
        assert_eq!(read[3].1, "last");
        // Exactly at the bound is still a line.
        assert_eq!(
            lines(b"12345678\n", &small())[0],
            (Line::Text, "12345678".into())
        );
    }

    #[test]
    fn no_line_end_within_the_runaway_bound_gives_up() {
        let read = lines(&[b'x'; 1000], &small());
        assert_eq!(read.last().unwrap().0, Line::Runaway);
        // A long line whose end comes in time is only too long.
        let mut bytes = vec![b'x'; 60];
        bytes.extend(b"\nok\n");
        let kinds: Vec<Line> = lines(&bytes, &small())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(kinds, [Line::TooLong, Line::Text, Line::End]);
    }

    #[test]
    fn an_endless_input_ends_promptly() {
        let mut input = BufReader::new(std::io::repeat(0));
        let mut line = Vec::new();
        assert_eq!(
            read_line(&mut input, &mut line, &small()).unwrap(),
            Line::Runaway
        );
        assert!(line.capacity() <= small().record * 2);
        let mut zeros = BufReader::new(std::io::repeat(0).take(10));
        assert_eq!(skip_line(&mut zeros, &small()).unwrap(), Skipped::LineEnd);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(Limits::default().record_size(), "1 MiB");
        assert_eq!(Limits::default().runaway_size(), "64 MiB");
        assert_eq!(small().record_size(), "8 bytes");
    }

    #[test]
    fn a_line_is_trimmed_where_it_was_appended_and_a_blank_one_taken_back() {
        let mut text = String::from("kept ");
        assert!(keep_trimmed(&mut text, 0));
        assert_eq!(text, "kept");
        text.push_str("\u{3000} {\"id\": 1}\u{a0}\t");
        assert!(keep_trimmed(&mut text, 4));
        assert_eq!(text, "kept{\"id\": 1}");
        let before = text.clone();
        text.push_str(" \u{3000}\r");
        assert!(!keep_trimmed(&mut text, before.len()));
        assert_eq!(text, before);
        let end = text.len();
        assert!(!keep_trimmed(&mut text, end));
    }
}
