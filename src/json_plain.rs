//! How much of a JSON string's text needs no escaping: the scan the JSONL reader finds a
//! string's end with, and the one the outbox's and LINE's JSON writer finds the next byte to
//! escape with. The same bytes end both (a quote, a backslash, a control character), and a
//! message's or an export's text is mostly Japanese, which never needs one: so both look at
//! sixteen bytes at a time.

/// How many bytes `bytes` starts with before its first `"`, `\` or control character (all of
/// it if none). `bytes` is the rest of the line or text, so even a short string's end is found
/// in the first sixteen, looked at together (SSE2, which every x86_64 has); eight at a time
/// elsewhere and for the last few bytes.
#[inline]
pub(crate) fn plain_len(bytes: &[u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };
        let mut sixteens = bytes.chunks_exact(16);
        let mut at = 0;
        for sixteen in sixteens.by_ref() {
            // SAFETY: SSE2 is part of x86_64, and the unaligned load reads exactly the sixteen
            // bytes of `sixteen`.
            let found = unsafe {
                let block = _mm_loadu_si128(sixteen.as_ptr().cast());
                let quotes = _mm_cmpeq_epi8(block, _mm_set1_epi8(b'"' as i8));
                let slashes = _mm_cmpeq_epi8(block, _mm_set1_epi8(b'\\' as i8));
                // Below 0x20 (unsigned): the smaller of it and 0x1f is the byte itself.
                let low = _mm_min_epu8(block, _mm_set1_epi8(0x1f));
                let controls = _mm_cmpeq_epi8(low, block);
                _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quotes, slashes), controls))
            };
            if found != 0 {
                return at + found.trailing_zeros() as usize;
            }
            at += 16;
        }
        at + plain_len_by_eights(sixteens.remainder())
    }
    #[cfg(not(target_arch = "x86_64"))]
    plain_len_by_eights(bytes)
}

/// [`plain_len`] eight bytes at a time: a byte at a time was most of the scanner's time.
#[inline]
fn plain_len_by_eights(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = ONES << 7;
    let mut eights = bytes.chunks_exact(8);
    let mut at = 0;
    for eight in eights.by_ref() {
        let word = u64::from_le_bytes(eight.try_into().unwrap_or_default());
        let quotes = word ^ (ONES * u64::from(b'"'));
        let slashes = word ^ (ONES * u64::from(b'\\'));
        // A byte's top bit is set here where the byte is zero (a quote or a backslash in
        // `quotes`, `slashes`) or below 0x20 in `word`. A match borrows from the bytes above it
        // and can set theirs too, so only the lowest set bit is sure, and that one is wanted.
        let found = (quotes.wrapping_sub(ONES) & !quotes)
            | (slashes.wrapping_sub(ONES) & !slashes)
            | (word.wrapping_sub(ONES * 0x20) & !word);
        let found = found & HIGHS;
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let tail = eights.remainder();
    at + tail
        .iter()
        .position(|&byte| ends_plain(byte))
        .unwrap_or(tail.len())
}

/// Whether `byte` ends the plain start of a string: a quote, a backslash or a control
/// character (which serde_json refuses in a string).
fn ends_plain(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn sixteen_or_eight_bytes_at_a_time_find_what_one_at_a_time_finds(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::num::u8::ANY,
                    proptest::sample::select(vec![b'"', b'\\', 0, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0xff]),
                    b'a'..=b'z',
                ],
                0..80,
            )
        ) {
            let one_at_a_time = bytes.iter().position(|&byte| ends_plain(byte));
            let one_at_a_time = one_at_a_time.unwrap_or(bytes.len());
            proptest::prop_assert_eq!(plain_len(&bytes), one_at_a_time);
            proptest::prop_assert_eq!(plain_len_by_eights(&bytes), one_at_a_time);
        }
    }
}
