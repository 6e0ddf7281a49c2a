//! CSV records as raw bytes, read with csv-core into buffers that never grow past
//! [`Limits`]: the tokenizer only splits fields (commas, quotes and line ends mean the same in
//! both encodings an export may use), and [`super::decode`] turns the fields into text after.

use std::io::{self, BufRead};

use super::bounded::{count_lines, skip_line, Limits, Skipped};
use super::csv_line;

/// One read by [`CsvRecords::next_record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Raw {
    /// A record starting on `line`; its fields are in [`CsvRecords::fields`].
    Record {
        line: usize,
    },
    /// The record starting on `line` passed the size bound; it was skipped to the end of the
    /// line where it did.
    TooLong {
        line: usize,
    },
    /// The record starting on `line` passed the size bound and no line end followed within the
    /// runaway bound: nothing more can be read.
    Runaway {
        line: usize,
    },
    End,
}

/// Records of one CSV file, one at a time, with the physical line each starts on.
pub(super) struct CsvRecords {
    input: Box<dyn BufRead>,
    parser: csv_core::Reader,
    /// The fields of the last record, one after another; `ends[..fields]` are their ends.
    bytes: Vec<u8>,
    len: usize,
    ends: Vec<usize>,
    fields: usize,
    /// Line ends consumed so far.
    lines: usize,
    limits: Limits,
    /// Plain lines read without csv-core ([`Self::plain_line`]); off only in tests, which
    /// compare the two ways.
    quick: bool,
}

impl CsvRecords {
    /// `input` has its line ends made LF (see `LineEnds`), so every line end is one LF.
    pub(super) fn new(input: Box<dyn BufRead>, limits: Limits) -> Self {
        CsvRecords {
            input,
            parser: {
                let mut parser = csv_core::Reader::new();
                start(&mut parser);
                parser
            },
            bytes: vec![0; limits.record.min(4096)],
            len: 0,
            ends: vec![0; limits.fields.min(64)],
            fields: 0,
            lines: 0,
            limits,
            quick: true,
        }
    }

    /// The fields of the last [`Raw::Record`], as bytes.
    pub(super) fn fields(&self) -> impl Iterator<Item = &[u8]> + Clone + '_ {
        let ends = &self.ends[..self.fields];
        let starts = std::iter::once(0).chain(ends.iter().copied());
        starts
            .zip(ends.iter().copied())
            .map(|(start, end)| &self.bytes[start..end])
    }

    /// The fields of the last [`Raw::Record`] as they lie one after another, and where each
    /// ends there.
    pub(super) fn raw(&self) -> (&[u8], &[usize]) {
        (&self.bytes[..self.len], &self.ends[..self.fields])
    }

    /// The line being read: where reading stopped.
    pub(super) fn line(&self) -> usize {
        self.lines + 1
    }

    pub(super) fn next_record(&mut self) -> io::Result<Raw> {
        self.len = 0;
        self.fields = 0;
        if !self.skip_blank_lines()? {
            return Ok(Raw::End);
        }
        let line = self.line();
        if self.quick && self.plain_line()? {
            return Ok(Raw::Record { line });
        }
        let mut taken = 0usize;
        loop {
            // One byte over the bound, so that a row of exactly the bound still fits: csv-core
            // stops at a full buffer before it looks at the line end that would have ended it.
            let room = self.limits.record.saturating_add(1);
            if self.len == self.bytes.len() && !grow(&mut self.bytes, room) {
                return self.skip(line);
            }
            if self.fields == self.ends.len() && !grow(&mut self.ends, self.limits.fields) {
                return self.skip(line);
            }
            let input = self.input.fill_buf()?;
            let at_end = input.is_empty();
            let (result, read, written, ended) = self.parser.read_record(
                input,
                &mut self.bytes[self.len..],
                &mut self.ends[self.fields..],
            );
            self.lines += count_lines(&input[..read]);
            self.input.consume(read);
            taken += read;
            self.len += written;
            self.fields += ended;
            match result {
                csv_core::ReadRecordResult::Record => return Ok(Raw::Record { line }),
                csv_core::ReadRecordResult::End => return Ok(Raw::End),
                // Cannot happen (csv-core ends a record at the end of its input), but must not
                // loop if it did.
                csv_core::ReadRecordResult::InputEmpty if at_end => return Ok(Raw::End),
                _ if taken > self.limits.record => return self.skip(line),
                _ => {}
            }
        }
    }

    /// Skips blank lines (they are nobody; skipping them here keeps the start line exact);
    /// false at the end of the input.
    fn skip_blank_lines(&mut self) -> io::Result<bool> {
        loop {
            let buf = self.input.fill_buf()?;
            let (blank, len) = (buf.iter().take_while(|&&b| b == b'\n').count(), buf.len());
            self.input.consume(blank);
            self.lines += blank;
            if len == 0 {
                return Ok(false);
            }
            if blank < len {
                return Ok(true);
            }
        }
    }

    /// The next record when it is a plain line (see [`csv_line::scan`]) already buffered
    /// within the record bound, of exactly `fields` fields, valid UTF-8 and not blank (some
    /// cell has an ASCII letter or digit): the line itself appended to `text`, its commas
    /// kept, and the end of each field, counted from where the line starts there, to `ends`;
    /// the line it is on returned. Such a line is what the long way ([`Self::next_record`],
    /// then decoding and checking the fields) reads as a row to type, with the same cells;
    /// it is read here in one pass and copied once. `None` (nothing consumed, `text` and
    /// `ends` as they were) leaves it to the long way, which reads anything else as before.
    pub(super) fn plain_utf8_line(
        &mut self,
        text: &mut String,
        ends: &mut Vec<usize>,
        fields: usize,
    ) -> io::Result<Option<usize>> {
        self.plain_line_taken(ends, fields, |line| {
            let line = simdutf8::basic::from_utf8(line)
                .ok()
                .filter(|line| line.bytes().any(|byte| byte.is_ascii_alphanumeric()));
            line.map(|line| text.push_str(line)).is_some()
        })
    }

    /// [`Self::plain_utf8_line`] for a file in another encoding whose commas and line ends
    /// are ASCII (Shift_JIS): the line's bytes appended to `raw` as they are, to be decoded
    /// and checked on another thread.
    pub(super) fn plain_raw_line(
        &mut self,
        raw: &mut Vec<u8>,
        ends: &mut Vec<usize>,
        fields: usize,
    ) -> io::Result<Option<usize>> {
        self.plain_line_taken(ends, fields, |line| {
            raw.extend_from_slice(line);
            true
        })
    }

    /// The next record, when it is a plain line of exactly `fields` fields and `take` takes
    /// it (false: it left everything as it was).
    fn plain_line_taken(
        &mut self,
        ends: &mut Vec<usize>,
        fields: usize,
        take: impl FnOnce(&[u8]) -> bool,
    ) -> io::Result<Option<usize>> {
        if !self.quick || !self.skip_blank_lines()? {
            return Ok(None);
        }
        let line_number = self.line();
        let buf = self.input.fill_buf()?;
        let window = &buf[..buf.len().min(self.limits.record)];
        let start = ends.len();
        let csv_line::Scanned::Plain { end } = csv_line::scan(window, ends, fields) else {
            return Ok(None);
        };
        if ends.len() - start != fields || !take(&window[..end]) {
            ends.truncate(start);
            return Ok(None);
        }
        self.lines += 1;
        self.input.consume(end + 1);
        Ok(Some(line_number))
    }

    /// The next record read without csv-core when it is one line, already buffered, without a
    /// quote or a carriage return, that fits the buffers as they are: its fields are then only
    /// the bytes between commas, which is what csv-core makes of such a line. csv-core's state
    /// machine and counting the line ends it consumed were a byte at a time, most of the
    /// reading thread of a million-row `plan`. False (nothing consumed) sends the record the
    /// long way, which reads anything else (and every bound) as it did.
    fn plain_line(&mut self) -> io::Result<bool> {
        let buf = self.input.fill_buf()?;
        // The line and its end within the record bound, and the buffers never filled: near
        // either the long way decides (csv-core grows a buffer or gives the record up, and the
        // bound is checked where the input's chunks end), so the quick way never disagrees.
        let window = &buf[..buf.len().min(self.limits.record)];
        let Some(end) = memchr::memchr(b'\n', window) else {
            return Ok(false);
        };
        let line = &window[..end];
        if memchr::memchr2(b'"', b'\r', line).is_some() {
            return Ok(false);
        }
        let commas = memchr::memchr_iter(b',', line).count();
        if commas + 1 >= self.ends.len() || end - commas >= self.bytes.len() {
            return Ok(false);
        }
        let (mut len, mut start) = (0, 0);
        let field_ends = memchr::memchr_iter(b',', line).chain([end]);
        for (field, field_end) in self.ends.iter_mut().zip(field_ends) {
            let piece = &line[start..field_end];
            self.bytes[len..len + piece.len()].copy_from_slice(piece);
            len += piece.len();
            *field = len;
            start = field_end + 1;
        }
        self.len = len;
        self.fields = commas + 1;
        self.lines += 1;
        self.input.consume(end + 1);
        Ok(true)
    }

    /// Skips the rest of a record that is too large, through the end of the current line, and
    /// starts the parser over there.
    fn skip(&mut self, line: usize) -> io::Result<Raw> {
        self.parser.reset();
        start(&mut self.parser);
        self.len = 0;
        self.fields = 0;
        let runaway_line = self.line();
        match skip_line(self.input.as_mut(), &self.limits)? {
            Skipped::LineEnd => {
                self.lines += 1;
                Ok(Raw::TooLong { line })
            }
            Skipped::Runaway => Ok(Raw::Runaway { line: runaway_line }),
        }
    }
}

/// `parser` marked as having read something. csv-core drops a UTF-8 BOM from the first bytes it
/// is given (and the first after a reset); the BOM is gone already, and the first bytes of a
/// Shift_JIS row can look like one. An empty line is skipped without changing anything else.
fn start(parser: &mut csv_core::Reader) {
    let _ = parser.read_record(b"\n", &mut [0; 1], &mut [0; 1]);
}

/// Doubles `buf` up to `limit` elements; false when it is already there.
fn grow<T: Default + Clone>(buf: &mut Vec<T>, limit: usize) -> bool {
    if buf.len() >= limit {
        return false;
    }
    let len = (buf.len() * 2).clamp(1, limit);
    buf.resize(len, T::default());
    true
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Cursor, Read};

    use super::*;

    fn records(bytes: &[u8], limits: Limits) -> Vec<(Raw, Vec<String>)> {
        let input = BufReader::with_capacity(5, Cursor::new(bytes.to_vec()));
        let mut records = CsvRecords::new(Box::new(input), limits);
        let mut out = Vec::new();
        loop {
            let raw = records.next_record().unwrap();
            let fields = records
                .fields()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            out.push((raw, fields));
            if matches!(raw, Raw::End | Raw::Runaway { .. }) {
                return out;
            }
        }
    }

    fn small() -> Limits {
        Limits {
            record: 16,
            runaway: 100,
            fields: 4,
        }
    }

    #[test]
    fn records_with_their_start_lines() {
        let read = records(
            b"id,name\n\n\nP1,\"a\nb\"\nP2,\"x,\"\"y\"\"\"\n",
            Limits::default(),
        );
        assert_eq!(
            read[0],
            (Raw::Record { line: 1 }, vec!["id".into(), "name".into()])
        );
        assert_eq!(
            read[1],
            (Raw::Record { line: 4 }, vec!["P1".into(), "a\nb".into()])
        );
        assert_eq!(
            read[2],
            (Raw::Record { line: 6 }, vec!["P2".into(), "x,\"y\"".into()])
        );
        assert_eq!(read[3].0, Raw::End);
    }

    #[test]
    fn a_record_over_the_bound_is_skipped_to_its_line_end() {
        let read = records(b"id\n0123456789,0123456789\nP2\n", small());
        assert_eq!(read[1].0, Raw::TooLong { line: 2 });
        assert_eq!(read[2], (Raw::Record { line: 3 }, vec!["P2".into()]));
        // Exactly at the bound is still a record.
        let read = records(b"0123456789abcdef\nP2\n", small());
        assert_eq!(
            read[0],
            (Raw::Record { line: 1 }, vec!["0123456789abcdef".into()])
        );
        let read = records(b"0123456789abcdefg\nP2\n", small());
        assert_eq!(read[0].0, Raw::TooLong { line: 1 });
        let read = records(b"a,b,c,d,e,f\nP2\n", small());
        assert_eq!(read[0].0, Raw::TooLong { line: 1 });
        assert_eq!(read[1], (Raw::Record { line: 2 }, vec!["P2".into()]));
    }

    #[test]
    fn an_unclosed_quote_is_cut_off_at_the_bound() {
        // The quote swallows lines 2-5 until the record passes 16 bytes inside line 5; reading
        // goes on after that line.
        let read = records(b"id\n\"a\nbbbbb\ncccc\nddddddd\nP6\n", small());
        assert_eq!(read[1].0, Raw::TooLong { line: 2 });
        assert_eq!(read[2], (Raw::Record { line: 6 }, vec!["P6".into()]));
    }

    #[test]
    fn no_line_end_in_sight_gives_up() {
        let input = BufReader::new(std::io::repeat(0));
        let mut records = CsvRecords::new(Box::new(input), small());
        assert_eq!(records.next_record().unwrap(), Raw::Runaway { line: 1 });
        let input = BufReader::new(Cursor::new(b"id\n".to_vec()).chain(std::io::repeat(b'x')));
        let mut records = CsvRecords::new(Box::new(input), small());
        assert_eq!(records.next_record().unwrap(), Raw::Record { line: 1 });
        assert_eq!(records.next_record().unwrap(), Raw::Runaway { line: 2 });
    }

    /// Lines read the quick way ([`CsvRecords::plain_line`]) and through csv-core are read
    /// alike, bounds included, from the same chunks of input.
    #[test]
    fn plain_lines_read_as_csv_core_reads_them() {
        let rows: [&[u8]; 24] = [
            b"id,name",
            b"P1,\x8a\xb3\x8e\xd2",
            b",,,",
            b"a,b,",
            b",a",
            b"x",
            b"a\rb,c",
            b"a,\"b,c\",d",
            b"a,b\"c\",d",
            b"\xEF\xBB\xBFx,1",
            b"0123456789abcdef",
            b"0123456789abcdefg",
            b"012345,789abcdef",
            b"012345,789abcdefg",
            b"a,b,c",
            b"a,b,c,d",
            b"a,b,c,d,e",
            b"\x00\\,\t ,#c",
            b"#comment,x",
            b"  spaced  , cells ",
            b"\x81\x5c,\x83\x5c",
            b"\"",
            b"P9,\"x",
            b"y\"",
        ];
        let mut text = Vec::new();
        for (n, row) in rows.iter().enumerate() {
            text.extend_from_slice(row);
            text.extend_from_slice(if n % 5 == 4 { b"\n\n" } else { b"\n" });
        }
        let read = |text: &[u8], capacity: usize, limits: Limits, quick: bool| {
            let input = BufReader::with_capacity(capacity, Cursor::new(text.to_vec()));
            let mut records = CsvRecords::new(Box::new(input), limits);
            records.quick = quick;
            let mut out = Vec::new();
            loop {
                let raw = records.next_record().unwrap();
                let fields: Vec<String> = (records.fields())
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect();
                out.push((raw, fields));
                if matches!(raw, Raw::End | Raw::Runaway { .. }) {
                    return out;
                }
            }
        };
        let mut unterminated = text.clone();
        unterminated.extend_from_slice(b"last,line");
        for text in [text, unterminated] {
            // Five bytes: only the shortest lines are ever whole in the buffer.
            for (capacity, limits) in [(4096, Limits::default()), (4096, small()), (5, small())] {
                let quick = read(&text, capacity, limits, true);
                assert_eq!(quick, read(&text, capacity, limits, false), "{capacity}");
                assert!(quick.len() > 20, "{quick:?}");
            }
        }
    }

    #[test]
    fn a_row_that_starts_like_a_bom_keeps_its_bytes() {
        let read = records(b"\xEF\xBB\xBFx,1\n\xEF\xBB\xBFy,2\n", Limits::default());
        assert_eq!(read[0].1[0].as_bytes(), b"\xEF\xBB\xBFx");
        assert_eq!(read[1].1[0].as_bytes(), b"\xEF\xBB\xBFy");
    }
}
