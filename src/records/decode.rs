//! An export's text encoding, decided and checked row by row on the raw bytes. A file is one
//! encoding: in `auto` its first row with non-ASCII text decides which (a UTF-8 BOM decides at
//! once), and a row that is not in that encoding is rejected rather than decoded into garbage.
//! CSV and JSONL are split into rows (and CSV into fields) on the raw bytes, which is safe for
//! both encodings: line ends, commas and quotes are below 0x40, and no byte of a UTF-8 or
//! Shift_JIS multi-byte character is (Shift_JIS trail bytes start at 0x40).

use std::borrow::Cow;
use std::io::{self, Cursor, Read};

use super::{shift_jis, Encoding};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// `reader` without a leading UTF-8 BOM, and whether it had one.
pub(super) fn without_bom(mut reader: Box<dyn Read>) -> io::Result<(Box<dyn Read>, bool)> {
    let mut head = Vec::with_capacity(UTF8_BOM.len());
    reader
        .by_ref()
        .take(UTF8_BOM.len() as u64)
        .read_to_end(&mut head)?;
    if head == UTF8_BOM {
        return Ok((reader, true));
    }
    Ok((Box::new(Cursor::new(head).chain(reader)), false))
}

/// Line ends made uniform: CRLF and a lone CR become LF, and the last line gets an LF if it
/// had none. The readers then count a line per LF and every record ends with one, which is
/// what makes their line numbers exact (Windows exports use CRLF, Excel for Mac a lone CR).
pub(super) struct LineEnds<R> {
    inner: R,
    after_cr: bool,
    last: Option<u8>,
    finished: bool,
}

impl<R: Read> LineEnds<R> {
    pub(super) fn new(inner: R) -> Self {
        LineEnds {
            inner,
            after_cr: false,
            last: None,
            finished: false,
        }
    }
}

impl<R: Read> Read for LineEnds<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while !self.finished && !buf.is_empty() {
            let read = self.inner.read(buf)?;
            if read == 0 {
                self.finished = true;
                if self.last.is_some_and(|last| last != b'\n') {
                    buf[0] = b'\n';
                    return Ok(1);
                }
                break;
            }
            // Most exports have no CR at all (or only CRLF): a block without one, not after a
            // CR, passes through as it is. Looked for with memchr's SIMD: `contains` went
            // through a million-row export eight bytes at a time.
            if !self.after_cr && memchr::memchr(b'\r', &buf[..read]).is_none() {
                self.last = Some(buf[read - 1]);
                return Ok(read);
            }
            let mut written = 0;
            for index in 0..read {
                let byte = buf[index];
                let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
                if byte == b'\n' && after_cr {
                    continue;
                }
                buf[written] = if byte == b'\r' { b'\n' } else { byte };
                written += 1;
            }
            if written > 0 {
                self.last = Some(buf[written - 1]);
                return Ok(written);
            }
            // Only the LF of a CRLF split across reads: nothing to hand out yet.
        }
        Ok(0)
    }
}

/// The encoding a file's text is in, once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Utf8,
    ShiftJis,
}

/// What made the encoding known, for messages about a row that does not fit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Basis {
    /// The clinic chose it (`utf-8` or `shift_jis`).
    Asked,
    /// The file starts with a UTF-8 BOM.
    Bom,
    /// The first row with non-ASCII text, in `auto`.
    Line(usize),
}

impl Basis {
    fn because(self) -> String {
        match self {
            Basis::Asked => "as asked".to_owned(),
            Basis::Bom => "it starts with a UTF-8 byte order mark".to_owned(),
            Basis::Line(line) => format!("as line {line} shows"),
        }
    }
}

/// Decodes the rows of one file, holding it to one encoding.
#[derive(Debug, Clone)]
pub(super) struct Decoder {
    known: Option<(Known, Basis)>,
}

impl Decoder {
    /// A UTF-8 BOM makes the file UTF-8 whatever was asked: the file says so itself, and no
    /// Shift_JIS export starts with those bytes.
    pub(super) fn new(requested: Encoding, has_bom: bool) -> Self {
        let known = match (has_bom, requested) {
            (true, _) => Some((Known::Utf8, Basis::Bom)),
            (false, Encoding::Auto) => None,
            (false, Encoding::Utf8) => Some((Known::Utf8, Basis::Asked)),
            (false, Encoding::ShiftJis) => Some((Known::ShiftJis, Basis::Asked)),
        };
        Decoder { known }
    }

    /// Whether the file is known to be Shift_JIS: from then on decoding a row changes nothing
    /// here, so a copy decodes the later rows exactly as this decoder would.
    pub(super) fn is_shift_jis(&self) -> bool {
        matches!(self.known, Some((Known::ShiftJis, _)))
    }

    /// Whether the file is known to be UTF-8: a row that is valid UTF-8 is then decoded as it
    /// is, and decoding it changes nothing here.
    pub(super) fn is_utf8(&self) -> bool {
        matches!(self.known, Some((Known::Utf8, _)))
    }

    /// The text of the fields of the row starting on `line`, one after another in `text`, with
    /// the end of each in `ends` (both cleared first).
    pub(super) fn decode<'f>(
        &mut self,
        line: usize,
        fields: impl Iterator<Item = &'f [u8]> + Clone,
        text: &mut String,
        ends: &mut Vec<usize>,
    ) -> Result<(), Undecodable> {
        text.clear();
        ends.clear();
        self.decode_onto(line, fields, text, ends)
    }

    /// The record starting on `line` whose fields lie one after another in `bytes`, field `n`
    /// ending at `field_ends[n]`: its text appended to `text`, and the end of each field,
    /// counted from where the record's text starts, to `ends` (neither changed when it cannot
    /// be decoded). A file known to be UTF-8 (or a row of ASCII) is checked once as a whole and
    /// copied as it is: the fields of a CSV export are mostly that, and checking field by field
    /// was most of the reading thread's decoding. A row of a file known to be Shift_JIS that
    /// is not UTF-8 as a whole has only its non-ASCII fields decoded, straight into `text`
    /// ([`decode_shift_jis`]).
    pub(super) fn decode_record(
        &mut self,
        line: usize,
        bytes: &[u8],
        field_ends: &[usize],
        text: &mut String,
        ends: &mut Vec<usize>,
    ) -> Result<(), Undecodable> {
        let utf8 = matches!(self.known, Some((Known::Utf8, _)));
        // A UTF-8 file's rows are not looked at twice: the check below is all they need.
        let ascii = if utf8 {
            0
        } else {
            encoding_rs::Encoding::ascii_valid_up_to(bytes)
        };
        if let Some((Known::ShiftJis, basis)) = self.known {
            // Its ASCII start is UTF-8, so the row is UTF-8 as a whole exactly when the rest
            // is; a row that is not cannot have every field UTF-8, which is what marks a row
            // pasted in from elsewhere (the long way below tells those apart).
            if ascii < bytes.len() && simdutf8::basic::from_utf8(&bytes[ascii..]).is_err() {
                return decode_shift_jis(bytes, field_ends, text, ends).map_err(|field| {
                    Undecodable {
                        field,
                        problem: Problem::NotShiftJis(basis),
                    }
                });
            }
        }
        if utf8 || ascii == bytes.len() {
            // A character split between two fields is valid as a whole but not field by field:
            // that row goes the long way, which says which field it is.
            // Checked with SIMD, as `decode_all` does.
            let whole = simdutf8::basic::from_utf8(bytes)
                .ok()
                .filter(|whole| field_ends.iter().all(|&end| whole.is_char_boundary(end)));
            if let Some(whole) = whole {
                text.push_str(whole);
                ends.extend_from_slice(field_ends);
                return Ok(());
            }
        }
        let starts = std::iter::once(0).chain(field_ends.iter().copied());
        let fields = starts
            .zip(field_ends.iter().copied())
            .map(|(start, end)| &bytes[start..end]);
        self.decode_onto(line, fields, text, ends)
    }

    /// [`Self::decode`] appending, as [`Self::decode_record`] does.
    pub(super) fn decode_onto<'f>(
        &mut self,
        line: usize,
        fields: impl Iterator<Item = &'f [u8]> + Clone,
        text: &mut String,
        ends: &mut Vec<usize>,
    ) -> Result<(), Undecodable> {
        let not_in = |problem: fn(Basis) -> Problem, basis| {
            move |field| Undecodable {
                field,
                problem: problem(basis),
            }
        };
        if fields.clone().all(<[u8]>::is_ascii) {
            // ASCII reads the same in both encodings, so it decides nothing.
            return decode_all(fields, Known::Utf8, text, ends)
                .map_err(not_in(Problem::NotUtf8, Basis::Asked));
        }
        match self.known {
            Some((Known::Utf8, basis)) => {
                decode_all(fields, Known::Utf8, text, ends).map_err(not_in(Problem::NotUtf8, basis))
            }
            Some((Known::ShiftJis, basis)) => {
                // Shift_JIS text is almost never valid UTF-8 as well, while UTF-8 text often
                // decodes as (wrong) Shift_JIS: a UTF-8 row here was pasted in from elsewhere.
                if fields
                    .clone()
                    .all(|field| std::str::from_utf8(field).is_ok())
                {
                    let field = fields.clone().position(|f| !f.is_ascii()).unwrap_or(0);
                    return Err(not_in(Problem::Utf8InShiftJis, basis)(field));
                }
                decode_all(fields, Known::ShiftJis, text, ends)
                    .map_err(not_in(Problem::NotShiftJis, basis))
            }
            None => {
                for encoding in [Known::Utf8, Known::ShiftJis] {
                    if decode_all(fields.clone(), encoding, text, ends).is_ok() {
                        self.known = Some((encoding, Basis::Line(line)));
                        return Ok(());
                    }
                }
                let field = fields
                    .clone()
                    .position(|f| std::str::from_utf8(f).is_err())
                    .unwrap_or(0);
                Err(Undecodable {
                    field,
                    problem: Problem::Neither,
                })
            }
        }
    }
}

/// Decodes every field strictly (no replacement characters), appending to `text` and each
/// field's end (counted from where the record starts) to `ends`; the error is the index of the
/// first field that is not in `encoding`, with `text` and `ends` as they were.
fn decode_all<'f>(
    fields: impl Iterator<Item = &'f [u8]>,
    encoding: Known,
    text: &mut String,
    ends: &mut Vec<usize>,
) -> Result<(), usize> {
    let (start, ends_start) = (text.len(), ends.len());
    for (index, field) in fields.enumerate() {
        let decoded = match encoding {
            // Sixteen or thirty-two bytes at a time (simdutf8): std's check, which goes a byte
            // at a time through anything but ASCII, was ~3% of `plan`'s instructions on a JSONL
            // export (a line is one field here), whose text is mostly Japanese.
            Known::Utf8 => simdutf8::basic::from_utf8(field).ok().map(Cow::Borrowed),
            Known::ShiftJis => {
                encoding_rs::SHIFT_JIS.decode_without_bom_handling_and_without_replacement(field)
            }
        };
        let Some(decoded) = decoded else {
            text.truncate(start);
            ends.truncate(ends_start);
            return Err(index);
        };
        text.push_str(&decoded);
        ends.push(text.len() - start);
    }
    Ok(())
}

/// [`decode_all`] in Shift_JIS of the fields of a record lying one after another in `bytes`
/// (field `n` ending at `field_ends[n]`): the fields up to the next non-ASCII byte are copied
/// as they are, in one piece, and each field with a non-ASCII byte is decoded straight onto
/// `text` ([`shift_jis::push_decoded`]), which keeps its room from row to row: encoding_rs
/// into a string of its own per field, and every field looked at three times, was most of
/// what a Shift_JIS row cost beyond a UTF-8 one. Each field is decoded on its own, as
/// `decode_all` does: a lead byte at a field's end is an error, not half of a character with
/// the next field's first.
fn decode_shift_jis(
    bytes: &[u8],
    field_ends: &[usize],
    text: &mut String,
    ends: &mut Vec<usize>,
) -> Result<(), usize> {
    let (start, ends_start) = (text.len(), ends.len());
    let undecodable = |text: &mut String, ends: &mut Vec<usize>, field| {
        text.truncate(start);
        ends.truncate(ends_start);
        Err(field)
    };
    // `bytes[from..ascii_end]` is ASCII throughout: set here and after each decoded field.
    let ascii_end = encoding_rs::Encoding::ascii_valid_up_to(bytes);
    let (mut field, mut from, mut ascii_end) = (0, 0, ascii_end);
    while field < field_ends.len() {
        // The fields ending before the next non-ASCII byte, copied as they are.
        let plain = field_ends[field..].partition_point(|&end| end <= ascii_end);
        if plain > 0 {
            let to = field_ends[field + plain - 1];
            let ascii = &bytes[from..to];
            debug_assert!(ascii.is_ascii());
            // SAFETY: `from..to` lies within `from..ascii_end`, which is ASCII, and ASCII is
            // UTF-8. Checked again, this was ~1.7% of `plan`'s instructions on such a file.
            let copied = unsafe { std::str::from_utf8_unchecked(ascii) };
            let copied_from = text.len() - start;
            text.push_str(copied);
            let plain_ends = &field_ends[field..field + plain];
            ends.extend(plain_ends.iter().map(|&end| copied_from + end - from));
            (field, from) = (field + plain, to);
            continue;
        }
        let end = field_ends[field];
        if !shift_jis::push_decoded(&bytes[from..end], text) {
            return undecodable(text, ends, field);
        }
        ends.push(text.len() - start);
        (field, from) = (field + 1, end);
        ascii_end = from + encoding_rs::Encoding::ascii_valid_up_to(&bytes[from..]);
    }
    Ok(())
}

/// A Shift_JIS file's plain line (each field followed by its comma, see
/// [`super::csv_line`]) decoded as a whole onto `text`, commas kept, with the end of each
/// field there pushed onto `ends`; false (`text` and `ends` perhaps changed) for a line to
/// decode and check the long way: one that is not Shift_JIS or is UTF-8 (which the long way
/// tells apart and reports), and one with no ASCII letter or digit (which may be blank).
/// Commas are ASCII and never half of a character, so each field is decoded exactly as on its
/// own ([`decode_shift_jis`] takes each field with the comma before it).
pub(super) fn decode_shift_jis_line(
    line: &[u8],
    comma_ends: &[usize],
    text: &mut String,
    ends: &mut Vec<usize>,
) -> bool {
    let ascii = encoding_rs::Encoding::ascii_valid_up_to(line);
    let decoded = if ascii == line.len() {
        // ASCII is UTF-8: checked by SIMD, as a UTF-8 row is.
        simdutf8::basic::from_utf8(line)
            .map(|line| {
                text.push_str(line);
                ends.extend_from_slice(comma_ends);
            })
            .is_ok()
    } else {
        simdutf8::basic::from_utf8(&line[ascii..]).is_err()
            && decode_shift_jis(line, comma_ends, text, ends).is_ok()
    };
    decoded && text.bytes().any(|byte| byte.is_ascii_alphanumeric())
}

/// A row that is not in the file's encoding: which field, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Undecodable {
    /// Index of the first field that is not in the encoding.
    pub field: usize,
    problem: Problem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    NotUtf8(Basis),
    Utf8InShiftJis(Basis),
    NotShiftJis(Basis),
    Neither,
}

impl Undecodable {
    /// What is wrong, about `what` (`column `name``, `the line`); never the bytes themselves.
    pub(super) fn message(&self, what: &str) -> String {
        const GUESS: &str = "a row in another encoding is skipped rather than guessed at";
        match self.problem {
            Problem::NotUtf8(Basis::Asked) => format!(
                "{what} is not valid UTF-8; if the export is Shift_JIS, read it with the \
                 Shift_JIS encoding (or auto)"
            ),
            Problem::NotUtf8(basis) => format!(
                "{what} is not valid UTF-8, though the file is UTF-8 ({}); {GUESS}",
                basis.because()
            ),
            Problem::Utf8InShiftJis(Basis::Asked) => format!(
                "{what} is UTF-8 text, but the export is read as Shift_JIS; if it is UTF-8, \
                 read it with the UTF-8 encoding (or auto)"
            ),
            Problem::Utf8InShiftJis(basis) => format!(
                "{what} is UTF-8 text, though the file is Shift_JIS ({}); {GUESS}",
                basis.because()
            ),
            Problem::NotShiftJis(Basis::Asked) => format!(
                "{what} is not valid Shift_JIS; if the export is UTF-8, read it with the UTF-8 \
                 encoding (or auto)"
            ),
            Problem::NotShiftJis(basis) => format!(
                "{what} is not valid Shift_JIS, though the file is Shift_JIS ({})",
                basis.because()
            ),
            Problem::Neither => format!("{what} is neither UTF-8 nor Shift_JIS text"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sjis(text: &str) -> Vec<u8> {
        encoding_rs::SHIFT_JIS.encode(text).0.into_owned()
    }

    /// Decodes rows of one field each, in order; each row is its text or its error message.
    fn rows(decoder: &mut Decoder, rows: &[Vec<u8>]) -> Vec<Result<String, String>> {
        let (mut text, mut ends) = (String::new(), Vec::new());
        rows.iter()
            .enumerate()
            .map(|(index, row)| {
                decoder
                    .decode(
                        index + 1,
                        std::iter::once(row.as_slice()),
                        &mut text,
                        &mut ends,
                    )
                    .map(|()| text.clone())
                    .map_err(|err| err.message("the row"))
            })
            .collect()
    }

    #[test]
    fn fields_are_decoded_one_after_another() {
        let mut decoder = Decoder::new(Encoding::Auto, false);
        let (mut text, mut ends) = (String::new(), Vec::new());
        let fields = [b"P1".to_vec(), sjis("山田"), Vec::new(), b"x".to_vec()];
        decoder
            .decode(2, fields.iter().map(Vec::as_slice), &mut text, &mut ends)
            .unwrap();
        assert_eq!(text, "P1山田x");
        assert_eq!(ends, [2, 8, 8, 9]);
    }

    #[test]
    fn auto_decides_on_the_first_non_ascii_row_and_holds_to_it() {
        let utf8 = "山田".as_bytes().to_vec();
        let mut decoder = Decoder::new(Encoding::Auto, false);
        let read = rows(&mut decoder, &[b"id".to_vec(), utf8.clone(), sjis("鈴木")]);
        assert_eq!(read[0], Ok("id".to_owned()));
        assert_eq!(read[1], Ok("山田".to_owned()));
        let err = read[2].as_ref().unwrap_err();
        assert!(err.starts_with("the row is not valid UTF-8"), "{err}");
        assert!(err.contains("as line 2 shows"), "{err}");

        let mut decoder = Decoder::new(Encoding::Auto, false);
        let read = rows(&mut decoder, &[sjis("鈴木"), utf8, sjis("佐藤")]);
        assert_eq!(read[0], Ok("鈴木".to_owned()));
        let err = read[1].as_ref().unwrap_err();
        assert!(
            err.contains("is UTF-8 text, though the file is Shift_JIS"),
            "{err}"
        );
        assert_eq!(read[2], Ok("佐藤".to_owned()));
    }

    #[test]
    fn a_row_in_neither_encoding_decides_nothing() {
        let mut decoder = Decoder::new(Encoding::Auto, false);
        // 0x82 0x20: a Shift_JIS lead byte without its trail byte, and not UTF-8 either.
        let read = rows(
            &mut decoder,
            &[b"a\x82 b".to_vec(), "山田".as_bytes().to_vec()],
        );
        assert_eq!(
            read[0],
            Err("the row is neither UTF-8 nor Shift_JIS text".to_owned())
        );
        assert_eq!(read[1], Ok("山田".to_owned()));
    }

    #[test]
    fn an_encoding_asked_for_is_held_to_strictly() {
        let mut decoder = Decoder::new(Encoding::Utf8, false);
        let read = rows(&mut decoder, &[sjis("山田")]);
        let err = read[0].as_ref().unwrap_err();
        assert!(
            err.contains("not valid UTF-8; if the export is Shift_JIS"),
            "{err}"
        );

        let mut decoder = Decoder::new(Encoding::ShiftJis, false);
        let read = rows(
            &mut decoder,
            &[sjis("山田"), b"\x82 ".to_vec(), "山田".as_bytes().to_vec()],
        );
        assert_eq!(read[0], Ok("山田".to_owned()));
        let err = read[1].as_ref().unwrap_err();
        assert!(err.starts_with("the row is not valid Shift_JIS"), "{err}");
        let err = read[2].as_ref().unwrap_err();
        assert!(err.contains("but the export is read as Shift_JIS"), "{err}");
    }

    #[test]
    fn a_bom_makes_the_file_utf8() {
        let mut decoder = Decoder::new(Encoding::ShiftJis, true);
        let read = rows(&mut decoder, &["山田".as_bytes().to_vec(), sjis("鈴木")]);
        assert_eq!(read[0], Ok("山田".to_owned()));
        let err = read[1].as_ref().unwrap_err();
        assert!(err.contains("byte order mark"), "{err}");
    }

    #[test]
    fn the_bom_is_taken_off_and_nothing_else() {
        let read = |bytes: &[u8]| {
            let (mut reader, bom) = without_bom(Box::new(Cursor::new(bytes.to_vec()))).unwrap();
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).unwrap();
            (rest, bom)
        };
        assert_eq!(read(b"\xEF\xBB\xBFid\n"), (b"id\n".to_vec(), true));
        assert_eq!(read(b"id\n"), (b"id\n".to_vec(), false));
        assert_eq!(read(b"\xEF\xBB"), (b"\xEF\xBB".to_vec(), false));
        assert_eq!(read(b""), (Vec::new(), false));
    }

    #[test]
    fn line_ends_become_lf() {
        let mut text = Vec::new();
        LineEnds::new(Cursor::new(b"a\r\nb\rc\n\r\nd".to_vec()))
            .read_to_end(&mut text)
            .unwrap();
        assert_eq!(text, b"a\nb\nc\n\nd\n");
        text.clear();
        LineEnds::new(Cursor::new(Vec::new()))
            .read_to_end(&mut text)
            .unwrap();
        assert!(text.is_empty());
    }

    #[test]
    fn a_crlf_split_across_reads_is_one_line_end() {
        let mut text = String::new();
        let parts = Cursor::new(b"a\r".to_vec()).chain(Cursor::new(b"\nb\r\n".to_vec()));
        let mut reader = LineEnds::new(parts);
        let mut buf = [0u8; 1];
        loop {
            let read = reader.read(&mut buf).unwrap();
            if read == 0 {
                break;
            }
            text.push(buf[0] as char);
        }
        assert_eq!(text, "a\nb\n");
    }
}
