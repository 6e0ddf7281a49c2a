//! Turning an export's bytes into UTF-8 text as they stream in: a UTF-8 BOM is dropped and
//! Shift_JIS is transcoded, without reading the whole file first.

use std::io::{self, Cursor, Read};

use encoding_rs_io::DecodeReaderBytesBuilder;

use super::Encoding;

/// How much of the file decides between UTF-8 and Shift_JIS in [`Encoding::Auto`].
const SNIFF_LEN: usize = 64 * 1024;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// `reader` as UTF-8 text without a BOM, with [`LineEnds`]. Lines stay where they were: both
/// encodings write line ends as the same ASCII bytes, so line numbers in the text are line
/// numbers in the file.
pub(super) fn utf8_text(
    mut reader: Box<dyn Read>,
    encoding: Encoding,
) -> io::Result<Box<dyn Read>> {
    if encoding == Encoding::ShiftJis {
        return Ok(Box::new(LineEnds::new(shift_jis(reader))));
    }
    let mut head = Vec::new();
    reader
        .by_ref()
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)?;
    let has_bom = head.starts_with(UTF8_BOM);
    let at_end = head.len() < SNIFF_LEN;
    let is_utf8 = encoding == Encoding::Utf8 || has_bom || looks_like_utf8(&head, at_end);
    let mut head = Cursor::new(head);
    if has_bom {
        head.set_position(UTF8_BOM.len() as u64);
    }
    let text: Box<dyn Read> = Box::new(head.chain(reader));
    let text = if is_utf8 { text } else { shift_jis(text) };
    Ok(Box::new(LineEnds::new(text)))
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

/// Whether `head` is UTF-8. When the sniffed chunk stops inside a multi-byte character, the
/// cut-off tail is not held against it.
fn looks_like_utf8(head: &[u8], at_end: bool) -> bool {
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(err) => err.error_len().is_none() && !at_end,
    }
}

/// Invalid bytes become U+FFFD rather than errors: one damaged name should not stop a file.
fn shift_jis(reader: Box<dyn Read>) -> Box<dyn Read> {
    Box::new(
        DecodeReaderBytesBuilder::new()
            .encoding(Some(encoding_rs::SHIFT_JIS))
            .build(reader),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: Vec<u8>, encoding: Encoding) -> String {
        let mut text = String::new();
        utf8_text(Box::new(Cursor::new(bytes)), encoding)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    fn sjis(text: &str) -> Vec<u8> {
        encoding_rs::SHIFT_JIS.encode(text).0.into_owned()
    }

    #[test]
    fn line_ends_become_lf() {
        let text = decode(b"a\r\nb\rc\n\r\nd".to_vec(), Encoding::Auto);
        assert_eq!(text, "a\nb\nc\n\nd\n");
        assert_eq!(decode(Vec::new(), Encoding::Auto), "");
        assert_eq!(decode(b"x\n".to_vec(), Encoding::Utf8), "x\n");
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

    #[test]
    fn bom_is_dropped() {
        let bytes = [UTF8_BOM, "id,氏名\n".as_bytes()].concat();
        assert_eq!(decode(bytes.clone(), Encoding::Auto), "id,氏名\n");
        assert_eq!(decode(bytes, Encoding::Utf8), "id,氏名\n");
    }

    #[test]
    fn auto_detects_shift_jis() {
        assert_eq!(decode(sjis("id,氏名\n"), Encoding::Auto), "id,氏名\n");
        assert_eq!(decode(sjis("id,氏名\n"), Encoding::ShiftJis), "id,氏名\n");
        assert_eq!(decode("id,氏名\n".into(), Encoding::Auto), "id,氏名\n");
    }

    #[test]
    fn a_character_cut_at_the_sniff_boundary_is_still_utf8() {
        // "あ" is 3 bytes; put its first byte at the last position of the sniffed chunk.
        let mut text = "a".repeat(SNIFF_LEN - 1);
        text.push_str("あいう\n");
        assert_eq!(decode(text.clone().into_bytes(), Encoding::Auto), text);
    }

    #[test]
    fn shift_jis_after_a_long_ascii_start_is_detected_when_in_the_first_chunk() {
        let mut text = "x".repeat(SNIFF_LEN - 10);
        text.push_str("山田太郎\n");
        let bytes = sjis(&text);
        assert_eq!(decode(bytes, Encoding::Auto), text);
    }
}
