//! A plain CSV line found in one pass: its end and where each of its fields ends, or that it is
//! not plain (a quote or a carriage return before its end) and is read the long way. Nearly
//! every line of an export is plain; finding its commas one `memchr` call at a time, then
//! copying each field apart and checking it again, was most of the reading thread's work on a
//! million-row file. Here sixteen bytes are looked at together (SSE2, which every x86_64 has)
//! and each comma is a bit of their mask.

/// What [`scan`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scanned {
    /// A plain line of `end` bytes (its LF at `end`); the end of each field, counted from the
    /// line's start, was appended to the ends.
    Plain { end: usize },
    /// Not a plain line, or not one to read this way: the ends are left as they were.
    Other,
}

/// The line at the start of `window`, when it ends (LF) within `window`, has no `"` or CR
/// before its end, and has at most `max_fields` fields: its end, with each field's end (the
/// commas' places, then the line's end) appended to `ends`.
pub(super) fn scan(window: &[u8], ends: &mut Vec<usize>, max_fields: usize) -> Scanned {
    let start = ends.len();
    let found = scan_onto(window, ends, start + max_fields);
    match found {
        Some(end) if ends.len() < start + max_fields => {
            ends.push(end);
            Scanned::Plain { end }
        }
        _ => {
            ends.truncate(start);
            Scanned::Other
        }
    }
}

/// The commas' places pushed onto `ends` up to the line's end, which is returned; `None` at a
/// quote or CR first, with no LF in `window`, or once `ends` holds `limit` (the caller
/// truncates).
#[inline]
fn scan_onto(window: &[u8], ends: &mut Vec<usize>, limit: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        let mut sixteens = window.chunks_exact(16);
        let mut at = 0;
        for sixteen in sixteens.by_ref() {
            // SAFETY: SSE2 is part of x86_64, and the unaligned load reads exactly the sixteen
            // bytes of `sixteen`.
            let (line_ends, commas, others) = unsafe {
                let block = _mm_loadu_si128(sixteen.as_ptr().cast());
                let is = |byte: u8| _mm_cmpeq_epi8(block, _mm_set1_epi8(byte as i8));
                let others = _mm_or_si128(is(b'"'), is(b'\r'));
                (
                    _mm_movemask_epi8(is(b'\n')) as u32,
                    _mm_movemask_epi8(is(b',')) as u32,
                    _mm_movemask_epi8(others) as u32,
                )
            };
            // Only what lies before the line's end counts.
            let before = match line_ends {
                0 => u32::MAX,
                found => (1 << found.trailing_zeros()) - 1,
            };
            if others & before != 0 {
                return None;
            }
            push_commas(ends, at, commas & before, limit)?;
            if line_ends != 0 {
                return Some(at + line_ends.trailing_zeros() as usize);
            }
            at += 16;
        }
        scan_bytes(sixteens.remainder(), at, ends, limit)
    }
    #[cfg(not(target_arch = "x86_64"))]
    scan_bytes(window, 0, ends, limit)
}

/// Each set bit of `commas` as a place (`at` plus the bit's index) pushed onto `ends`.
#[inline]
fn push_commas(ends: &mut Vec<usize>, at: usize, mut commas: u32, limit: usize) -> Option<()> {
    while commas != 0 {
        if ends.len() >= limit {
            return None;
        }
        ends.push(at + commas.trailing_zeros() as usize);
        commas &= commas - 1;
    }
    Some(())
}

/// [`scan_onto`] a byte at a time, over the last few bytes of the window (or all of it where
/// there is no SSE2); `at` is where `bytes` starts in the line.
fn scan_bytes(bytes: &[u8], at: usize, ends: &mut Vec<usize>, limit: usize) -> Option<usize> {
    for (place, &byte) in bytes.iter().enumerate() {
        match byte {
            b'\n' => return Some(at + place),
            b'"' | b'\r' => return None,
            b',' if ends.len() >= limit => return None,
            b',' => ends.push(at + place),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What [`scan`] must find, said the plain way.
    fn reference(window: &[u8], max_fields: usize) -> Option<(usize, Vec<usize>)> {
        let end = window.iter().position(|&b| b == b'\n')?;
        let line = &window[..end];
        if line.iter().any(|&b| b == b'"' || b == b'\r') {
            return None;
        }
        let mut ends: Vec<usize> = (0..end).filter(|&i| line[i] == b',').collect();
        ends.push(end);
        (ends.len() <= max_fields).then_some((end, ends))
    }

    fn scanned(window: &[u8], max_fields: usize) -> Option<(usize, Vec<usize>)> {
        let mut ends = vec![7, 7];
        let found = scan(window, &mut ends, max_fields);
        assert_eq!(ends[..2], [7, 7], "what was there before is kept");
        match found {
            Scanned::Plain { end } => Some((end, ends[2..].to_vec())),
            Scanned::Other => {
                assert_eq!(ends.len(), 2, "nothing is left behind");
                None
            }
        }
    }

    #[test]
    fn plain_lines_and_the_others() {
        let line = b"P1,\xe5\xb1\xb1\xe7\x94\xb0,booked,,2026-11-25 09:00\nP2,x\n";
        assert_eq!(scanned(line, 16), Some((34, vec![2, 9, 16, 17, 34])));
        assert_eq!(scanned(line, 5), Some((34, vec![2, 9, 16, 17, 34])));
        assert_eq!(scanned(line, 4), None, "too many fields");
        assert_eq!(scanned(b"\n", 1), Some((0, vec![0])));
        assert_eq!(scanned(b"a,b", 4), None, "no line end in the window");
        assert_eq!(scanned(b"a,\"b,c\"\n", 4), None);
        assert_eq!(scanned(b"a\rb\n", 4), None);
        // A quote after the line's end is the next line's.
        assert_eq!(scanned(b"a,b\n\"c\"\n", 4), Some((3, vec![1, 3])));
        let long = [b"x,".repeat(20).as_slice(), b"\"\n"].concat();
        assert_eq!(
            scanned(&long, 64),
            None,
            "a quote past the first sixteen bytes"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Lines of commas, quotes, CRs, LFs and other bytes, at every length around the
        /// sixteen-byte blocks, are read as the plain reference reads them.
        #[test]
        fn scan_finds_what_the_reference_finds(
            bytes in proptest::collection::vec(
                prop_oneof![
                    6 => any::<u8>(),
                    4 => Just(b','),
                    1 => Just(b'\n'),
                    1 => Just(b'"'),
                    1 => Just(b'\r'),
                ],
                0..80,
            ),
            max_fields in 1usize..40,
        ) {
            prop_assert_eq!(scanned(&bytes, max_fields), reference(&bytes, max_fields));
        }
    }
}
