//! Shift_JIS decoded from a table of what each byte and pair of bytes means, read once from
//! encoding_rs (its strict decoding, WHATWG's Shift_JIS: Windows-31J). encoding_rs's own
//! decoder cost ~300 instructions for a field of two kanji (its set-up per call and a state
//! machine byte by byte), most of what a Shift_JIS row cost beyond a UTF-8 one; a look-up a
//! character is a few. Strict decoding is context-free beyond a pair: a lead byte always takes
//! the byte after it, so decoding byte by byte and pair by pair with the same meanings gives
//! exactly what encoding_rs gives (checked for every byte and pair, and on random fields).

use std::sync::OnceLock;

/// A character of the table as UTF-8: its bytes (a character of Shift_JIS is in the Basic
/// Multilingual Plane, so three at most) and how many; 0 for none.
#[derive(Debug, Clone, Copy, Default)]
struct Utf8Char {
    bytes: [u8; 3],
    len: u8,
}

impl Utf8Char {
    /// `c` as UTF-8; none for NUL (no character of Shift_JIS decodes to U+0000 but the ASCII
    /// byte, which is not looked up) and for what does not fit.
    fn of(c: char) -> Utf8Char {
        let mut buffer = [0; 4];
        let encoded = c.encode_utf8(&mut buffer).as_bytes();
        match encoded.len() {
            len @ 1..=3 if c != '\0' => {
                let mut bytes = [0; 3];
                bytes[..len].copy_from_slice(encoded);
                Utf8Char {
                    bytes,
                    len: len as u8,
                }
            }
            _ => Utf8Char::default(),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// What the bytes from 0x80 up mean alone, and what each pair starting with one means: the
/// character, written as UTF-8 once here rather than once per time it is read.
struct Table {
    single: [Utf8Char; 128],
    /// Indexed by `(lead - 0x80) * 256 + trail`.
    pairs: Vec<Utf8Char>,
}

static TABLE: OnceLock<Table> = OnceLock::new();

impl Table {
    /// Asked of encoding_rs, once: every byte from 0x80 alone and, for those that are no
    /// character alone, every pair they begin (~16,000 short decodings, a few milliseconds).
    fn from_encoding_rs() -> Table {
        let one = |bytes: &[u8]| -> Utf8Char {
            let decoded =
                encoding_rs::SHIFT_JIS.decode_without_bom_handling_and_without_replacement(bytes);
            let mut chars = decoded.as_deref().unwrap_or("").chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Utf8Char::of(c),
                _ => Utf8Char::default(),
            }
        };
        let mut single = [Utf8Char::default(); 128];
        let mut pairs = vec![Utf8Char::default(); 128 * 256];
        for lead in 0x80..=0xFF_u8 {
            let index = usize::from(lead - 0x80);
            single[index] = one(&[lead]);
            if single[index].len != 0 {
                continue;
            }
            for trail in 0..=0xFF_u8 {
                pairs[index * 256 + usize::from(trail)] = one(&[lead, trail]);
            }
        }
        Table { single, pairs }
    }
}

/// `field` decoded strictly from Shift_JIS onto `text`; `false` (with part of the field
/// perhaps appended) when it is not Shift_JIS.
pub(super) fn push_decoded(field: &[u8], text: &mut String) -> bool {
    let table = TABLE.get_or_init(Table::from_encoding_rs);
    // SAFETY: only whole characters are appended, as UTF-8: an ASCII byte, or the bytes of a
    // character of the table (`Utf8Char::of`), so `text` is UTF-8 whenever this returns.
    // Pushed as chars, each character was encoded again from its code point.
    let out = unsafe { text.as_mut_vec() };
    // A byte becomes three at most (a half-width katakana): no growth inside the loop.
    out.reserve(field.len().saturating_mul(3));
    let mut bytes = field.iter();
    while let Some(&byte) = bytes.next() {
        if byte.is_ascii() {
            out.push(byte);
            continue;
        }
        let lead = usize::from(byte - 0x80);
        let decoded = match table.single[lead] {
            Utf8Char { len: 0, .. } => match bytes.next() {
                Some(&trail) => table.pairs[lead * 256 + usize::from(trail)],
                None => Utf8Char::default(),
            },
            single => single,
        };
        if decoded.len == 0 {
            return false;
        }
        // All three bytes written, the length then moved past those of the character: as
        // `extend_from_slice`, one to three bytes were a call to `memcpy`, and pushed one by
        // one, three checks of the room reserved above.
        let at = out.len();
        match out.spare_capacity_mut().get_mut(..3) {
            Some(room) => {
                for (slot, &byte) in room.iter_mut().zip(&decoded.bytes) {
                    slot.write(byte);
                }
                // SAFETY: the `decoded.len` (at most three) bytes past the length were just
                // written, within the capacity.
                unsafe { out.set_len(at + usize::from(decoded.len)) };
            }
            None => out.extend_from_slice(decoded.as_bytes()),
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_encoding_rs(bytes: &[u8]) -> Option<String> {
        encoding_rs::SHIFT_JIS
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(|text| text.into_owned())
    }

    fn by_table(bytes: &[u8]) -> Option<String> {
        let mut text = String::new();
        push_decoded(bytes, &mut text).then_some(text)
    }

    #[test]
    fn every_byte_and_pair_decodes_as_encoding_rs_decodes_it() {
        for first in 0..=0xFF_u8 {
            assert_eq!(by_table(&[first]), by_encoding_rs(&[first]), "{first:02x}");
            for second in 0..=0xFF_u8 {
                let pair = [first, second];
                assert_eq!(by_table(&pair), by_encoding_rs(&pair), "{pair:02x?}");
            }
        }
    }

    #[test]
    fn text_round_trips_and_broken_text_is_refused() {
        let text = "患者1 高橋、内科ｱｲｳ①髙﨑～ＡＢＣ";
        let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(text);
        assert!(!unmappable);
        assert_eq!(by_table(&bytes).as_deref(), Some(text));
        let mut cut = bytes.to_vec();
        cut.pop();
        assert_eq!(by_table(&cut), None);
        assert_eq!(by_table(b"a\x82 b"), None);
        assert_eq!(by_table(b""), Some(String::new()));
    }

    /// Half-width katakana take one byte in Shift_JIS and three in UTF-8, the most a field
    /// can grow: a long field of them, and of them mixed with kanji and ASCII, decodes as
    /// encoding_rs decodes it, onto text already there.
    #[test]
    fn a_long_field_growing_threefold_decodes_as_encoding_rs_decodes_it() {
        for text in ["ｱｲｳｴｵ".repeat(2_000), "ｶﾅ漢字a".repeat(1_000)] {
            let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&text);
            assert!(!unmappable);
            let mut decoded = String::from("before,");
            assert!(push_decoded(&bytes, &mut decoded));
            assert_eq!(decoded, format!("before,{text}"));
            assert_eq!(by_table(&bytes), by_encoding_rs(&bytes));
        }
    }

    #[test]
    fn random_bytes_decode_as_encoding_rs_decodes_them() {
        // A fixed xorshift: three-byte and longer runs mixing ASCII, singles, leads and trails.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let alphabet = [
            0x00, 0x20, 0x41, 0x7F, 0x80, 0x81, 0x82, 0x9F, 0xA0, 0xA1, 0xDF, 0xE0,
        ];
        let more = [
            0xEA, 0xEB, 0xF0, 0xF9, 0xFA, 0xFC, 0xFD, 0xFF, 0x40, 0x7E, 0x9E, 0xFB,
        ];
        for _ in 0..200_000 {
            let mut bytes = Vec::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            for at in 0..(state % 6) {
                let pick = (state >> (8 * at + 8)) as usize;
                bytes.push(match pick % 3 {
                    0 => alphabet[(pick >> 2) % alphabet.len()],
                    1 => more[(pick >> 2) % more.len()],
                    _ => (pick >> 2) as u8,
                });
            }
            assert_eq!(by_table(&bytes), by_encoding_rs(&bytes), "{bytes:02x?}");
        }
    }
}
