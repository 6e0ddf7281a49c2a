//! A JSONL line's cells handed straight to the row being typed, as the line is scanned
//! ([`super::jsonl_scan`]): no list of entries between the two (writing and reading back a
//! line's entries, and putting them in order, was most of what a JSONL line cost beyond a CSV
//! row). String values with escapes and lists of scalars are read here too, as serde_json
//! reads them: an export written by Python's `json.dumps` or pandas escapes every character
//! past ASCII, and some write tags as a list.

use std::borrow::Cow;

use super::columns::Column;
use super::jsonl_order::KeyOrder;
use super::jsonl_scan::Scan;
use super::row::Cell;
use crate::json_plain::plain_len;

impl<'a> Scan<'a> {
    /// A string value as serde_json reads it: borrowed when it has no escape, else decoded
    /// into a string of its own (Python's `json.dumps` and pandas' `to_json` escape every
    /// character past ASCII by default, so such an export has escapes on every line).
    /// Declined (`None`) wherever serde_json would refuse the string: a control character,
    /// an unknown escape, a lone surrogate, the line's end.
    #[inline(always)]
    fn string_value(&mut self) -> Option<Cow<'a, str>> {
        let start = self.at + 1;
        match self.string() {
            Some(plain) => Some(Cow::Borrowed(plain)),
            None => self.escaped_string(start),
        }
    }

    /// [`Self::string_value`] past its plain start, from `start` (just after the quote).
    /// Kept out of line: an export without escapes never calls it, and the scan of every
    /// value stays small.
    #[inline(never)]
    fn escaped_string(&mut self, start: usize) -> Option<Cow<'a, str>> {
        let bytes = self.text.as_bytes();
        let mut decoded = String::new();
        let mut at = start;
        loop {
            let len = plain_len(bytes.get(at..)?);
            // Each run starts after a quote or an escape and ends before a quote or a
            // backslash: both ends are characters' boundaries.
            decoded.push_str(self.text.get(at..at + len)?);
            at += len;
            match bytes.get(at)? {
                b'"' => {
                    self.at = at + 1;
                    return Some(Cow::Owned(decoded));
                }
                b'\\' => {}
                _ => return None,
            }
            let escape = *bytes.get(at + 1)?;
            at += 2;
            let char = match escape {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let unit = hex4(bytes.get(at..at + 4)?)?;
                    at += 4;
                    if !(0xD800..0xDC00).contains(&unit) {
                        // A trailing surrogate alone is not a character: declined.
                        char::from_u32(unit)?
                    } else {
                        if bytes.get(at..at + 2)? != b"\\u" {
                            return None;
                        }
                        let low = hex4(bytes.get(at + 2..at + 6)?)?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return None;
                        }
                        at += 6;
                        char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                    }
                }
                _ => return None,
            };
            decoded.push(char);
        }
    }

    /// A value as the cell it makes: `Some(None)` for `null` (no cell); `None` (declined) for
    /// an object, or where serde_json would refuse the value.
    #[inline(always)]
    fn cell(&mut self) -> Option<Option<Cell<'a>>> {
        if self.peek()? == b'[' {
            return self.list().map(Some);
        }
        Some(self.scalar()?.map(Cell::Text))
    }

    /// A string, number, `true` or `false` as its text, `Some(None)` for `null`; declined
    /// (`None`) for anything else.
    #[inline(always)]
    fn scalar(&mut self) -> Option<Option<Cow<'a, str>>> {
        Some(Some(match self.peek()? {
            b'"' => self.string_value()?,
            b'-' | b'0'..=b'9' => self.number_text()?,
            _ => return Some(self.literal()?.map(Cow::Borrowed)),
        }))
    }

    /// A list of scalars (an export's tags, say) as the serde_json way reads it: each item's
    /// text, nulls left out. A list holding a list or an object is declined: the other way
    /// refuses the line with its message.
    #[inline(never)]
    fn list(&mut self) -> Option<Cell<'a>> {
        self.eat(b'[')?;
        let mut items = Vec::new();
        self.skip_space();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(Cell::List(items));
        }
        loop {
            self.skip_space();
            items.extend(self.scalar()?);
            self.skip_space();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(Cell::List(items));
                }
                _ => return None,
            }
        }
    }
}

/// The value of four hexadecimal digits, as a `\u` escape writes a UTF-16 unit.
fn hex4(digits: &[u8]) -> Option<u32> {
    (digits.iter()).try_fold(0, |value, &digit| {
        Some(value * 16 + char::from(digit).to_digit(16)?)
    })
}

/// A line's cells as it is scanned, each with its column, for typing straight from the line.
///
/// It reads a line [`super::jsonl_scan::scan_keyed`] would read whole, and one whose string
/// values have escapes or whose values are lists of scalars, when every key is known and none
/// comes twice. It stops (declined, see [`Self::whole`]) at anything else: an unknown key, a
/// key given twice, an escaped key, an escape serde_json refuses, an object or a list in a
/// list, any syntax error. The caller then types the line again by the way that handles all
/// of those, so the result is the same either way.
///
/// Cells come in the line's order, not the keys' sorted order the other way types them in:
/// only the order of a row's problems depends on that ([`Self::sorted`] says whether they
/// could differ).
pub(super) struct ScannedCells<'a, 'k> {
    scan: Scan<'a>,
    order: &'k KeyOrder,
    columns: &'k [Column],
    /// The slot of each key so far, in the line's order.
    slots: &'k mut Vec<usize>,
    /// Per slot, the stamp of the line that last had it.
    seen: &'k mut [u64],
    stamp: u64,
    open: bool,
    whole: bool,
    sorted: bool,
}

impl<'a, 'k> ScannedCells<'a, 'k> {
    /// The cells of `text`, its keys found along `order` (whose columns are `columns`).
    /// `seen` has a stamp per slot of `order`, each below `stamp` (the caller's count of lines
    /// scanned so, which is never used twice).
    pub(super) fn new(
        text: &'a str,
        order: &'k KeyOrder,
        columns: &'k [Column],
        slots: &'k mut Vec<usize>,
        seen: &'k mut [u64],
        stamp: u64,
    ) -> Self {
        slots.clear();
        let mut scan = Scan { text, at: 0 };
        let (mut open, mut whole) = (false, false);
        scan.skip_space();
        if scan.eat(b'{').is_some() {
            scan.skip_space();
            if scan.peek() == Some(b'}') {
                scan.at += 1;
                scan.skip_space();
                whole = scan.at == text.len();
            } else {
                open = true;
            }
        }
        ScannedCells {
            scan,
            order,
            columns,
            slots,
            seen,
            stamp,
            open,
            whole,
            sorted: true,
        }
    }

    /// Whether the line was read to its end, as a flat object of known keys each once. Only
    /// then are the cells given the line's.
    pub(super) fn whole(&self) -> bool {
        self.whole
    }

    /// Whether the keys came in their sorted order (then the cells came in the order the
    /// other way types them in).
    pub(super) fn sorted(&self) -> bool {
        self.sorted
    }

    /// The next key and value, `Some(None)` for a `null`; `None` when the line is declined.
    #[inline]
    fn step(&mut self) -> Option<Option<(&'k Column, Cell<'a>)>> {
        let place = self.slots.last().map_or(0, |&slot| slot + 1);
        let (_, slot) = self.scan.key(self.order, Some(place))?;
        let slot = slot?;
        let seen = self.seen.get_mut(slot)?;
        if *seen == self.stamp {
            return None;
        }
        *seen = self.stamp;
        self.sorted &= place <= slot;
        self.slots.push(slot);
        self.scan.skip_space();
        let cell = self.scan.cell()?;
        self.scan.skip_space();
        match self.scan.peek()? {
            b',' => {
                self.scan.at += 1;
                self.scan.skip_space();
            }
            b'}' => {
                self.scan.at += 1;
                self.scan.skip_space();
                if self.scan.at != self.scan.text.len() {
                    return None;
                }
                self.open = false;
                self.whole = true;
            }
            _ => return None,
        }
        let column = self.columns.get(self.order.column(slot))?;
        Some(cell.map(|cell| (column, cell)))
    }
}

impl<'a, 'k> Iterator for ScannedCells<'a, 'k> {
    type Item = (&'k Column, Cell<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        while self.open {
            match self.step() {
                Some(Some(cell)) => return Some(cell),
                Some(None) => {}
                None => {
                    self.open = false;
                    self.whole = false;
                }
            }
        }
        None
    }
}
