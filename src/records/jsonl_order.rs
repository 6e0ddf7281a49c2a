//! The order an export writes a line's keys in, learnt from the lines before. An export writes
//! its keys in one order on every line (leaving out the empty ones), sorted or in its columns'
//! order, so the key after a key is nearly always the one that came after it the last time:
//! the scanner ([`super::jsonl_scan`]) confirms that guess with one compare of the key's bytes
//! and the `":` after them, and only on a miss looks the key it scanned up among the sorted
//! spellings (a binary search).
//! Walking them for every key (a compare or two per spelling passed, the key's end searched
//! for first) was most of what finding a line's columns cost.

use std::cmp::Ordering;

/// Every spelling of a key met so far, sorted, each with its column's place, and for each the
/// spelling that came after it on the last line that had it.
///
/// A place along the spellings is `0` before the first and `slot + 1` just after the one at
/// `slot`: a line's keys, found in order, each start the search for the next at the place
/// after them.
#[derive(Default)]
pub(super) struct KeyOrder {
    spellings: Vec<Spelling>,
    /// Per place (`spellings.len() + 1` of them), the slot of the key that followed it on the
    /// last line found in order, or [`NOT_SEEN`].
    next: Vec<usize>,
}

/// No key followed this place yet (or the spellings changed since).
const NOT_SEEN: usize = usize::MAX;

/// Bytes a key may have to be compared by its bytes: an export's keys are short, and a longer
/// one (a line may have a key of up to the row's bound) is found by walking, so that the
/// copies kept to compare with stay small.
const WRITTEN_KEY_MAX: usize = 64;

struct Spelling {
    /// The key as its line means it (unescaped).
    text: String,
    /// Its place in the caller's columns.
    column: usize,
    /// How a line writes it, when it can without escapes (no quote, backslash or control
    /// character): only then can its bytes be compared with the line's.
    written: Option<Written>,
}

/// A key as a line writes it with the colon after it, `"key":`, for comparing with a line.
pub(super) struct Written {
    bytes: Box<[u8]>,
    /// `bytes` in little-endian words, the last filled out with zeros: compared a word at a
    /// time where the line has that many bytes left (a call to `memcmp` per key cost more
    /// than walking the spellings had).
    words: Box<[u64]>,
    /// The bytes of the last word that are `bytes`'.
    last: u64,
}

impl Written {
    fn new(key: &str) -> Option<Self> {
        if key.len() > WRITTEN_KEY_MAX {
            return None;
        }
        if key
            .bytes()
            .any(|byte| byte == b'"' || byte == b'\\' || byte < 0x20)
        {
            return None;
        }
        let bytes: Box<[u8]> = format!("\"{key}\":").into_bytes().into();
        let words = bytes
            .chunks(8)
            .map(|chunk| {
                let mut word = [0; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                u64::from_le_bytes(word)
            })
            .collect();
        let used = bytes.len() % 8;
        let last = if used == 0 {
            u64::MAX
        } else {
            (1 << (used * 8)) - 1
        };
        Some(Written { bytes, words, last })
    }

    /// How many bytes the key takes between its quotes.
    pub(super) fn key_len(&self) -> usize {
        self.bytes.len() - 3
    }

    /// How many bytes a line takes to write the key, its quotes and the colon.
    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether `line` starts with the key as written here.
    #[inline]
    pub(super) fn starts(&self, line: &[u8]) -> bool {
        let Some((last, whole)) = self.words.split_last() else {
            return false;
        };
        if line.len() < self.words.len() * 8 {
            return line.starts_with(&self.bytes);
        }
        let mut eights = line.chunks_exact(8);
        let mut read = || {
            let eight = eights.next().and_then(|eight| eight.try_into().ok());
            u64::from_le_bytes(eight.unwrap_or_default())
        };
        whole.iter().all(|&word| read() == word) && (read() ^ last) & self.last == 0
    }
}

impl KeyOrder {
    pub(super) fn len(&self) -> usize {
        self.spellings.len()
    }

    /// The spelling at `slot` and its column.
    pub(super) fn get(&self, slot: usize) -> Option<(&str, usize)> {
        let spelling = self.spellings.get(slot)?;
        Some((&spelling.text, spelling.column))
    }

    pub(super) fn column(&self, slot: usize) -> usize {
        self.spellings[slot].column
    }

    /// The key expected at `place`: the slot that came next there on the last line, and the
    /// key as a line writes it, when a line can write it without escapes.
    #[inline]
    pub(super) fn expected(&self, place: usize) -> Option<(usize, &Written)> {
        let slot = *self.next.get(place)?;
        let spelling = self.spellings.get(slot)?;
        Some((slot, spelling.written.as_ref()?))
    }

    /// The slot of `key` at or after `place`, found along the sorted spellings; `None` when
    /// it is not there (a key not met yet, or one out of order).
    pub(super) fn find(&self, place: usize, key: &str) -> Option<usize> {
        let rest = self.spellings.get(place..)?;
        for (offset, spelling) in rest.iter().enumerate() {
            match order(&spelling.text, key) {
                Ordering::Less => {}
                Ordering::Equal => return Some(place + offset),
                Ordering::Greater => return None,
            }
        }
        None
    }

    /// The slot of `key` anywhere along the spellings (`None`: not met yet), for a key that is
    /// not the one the line's order led to expect: an export that writes its keys in its
    /// columns' order, not sorted, has most of its keys before the place of the one before
    /// them.
    pub(super) fn find_anywhere(&self, key: &str) -> Option<usize> {
        self.spellings
            .binary_search_by(|spelling| order(&spelling.text, key))
            .ok()
    }

    /// Keeps `key` (with its column) at `slot`, where it sorts. What followed which key is
    /// forgotten: the slots after it have moved.
    pub(super) fn insert(&mut self, slot: usize, key: &str, column: usize) {
        let spelling = Spelling {
            text: key.to_owned(),
            column,
            written: Written::new(key),
        };
        self.spellings.insert(slot, spelling);
        self.next.clear();
        self.next.resize(self.spellings.len() + 1, NOT_SEEN);
    }

    /// Notes the slots of a line's keys (in order, each after the one before) as the order
    /// to expect on the next line.
    pub(super) fn learn(&mut self, slots: &[usize]) {
        let mut place = 0;
        for &slot in slots {
            if let Some(next) = self.next.get_mut(place) {
                *next = slot;
            }
            place = slot + 1;
        }
    }
}

/// Leaves in `placed` the places of a line's entries (indices into them) in the order of
/// their `slots` (one each), which is their keys' sorted order, the order the cells are typed
/// in (as `sort_entries` leaves a line): an export that writes its keys in its columns' order
/// has them ordered with no entry moved (swapping the 56-byte entries into place was a sixth of
/// a JSONL line's typing) and no compare of keys. Each entry is put at its slot in `at_slot`
/// (a table of the slots, reused) and the table read in order, unless the slots spread much
/// wider than the line (a line of a few keys of a file with a thousand): those are sorted.
/// False when a slot comes twice (a key given twice, whose last value counts, is left to
/// `sort_entries`). Linear in the line and its slots, n log n past that.
pub(super) fn place_by_slots(
    slots: &[usize],
    at_slot: &mut Vec<usize>,
    placed: &mut Vec<usize>,
) -> bool {
    const EMPTY: usize = usize::MAX;
    placed.clear();
    let spread = slots.iter().max().map_or(0, |&most| most + 1);
    if spread > 4 * slots.len() + 64 {
        placed.extend(0..slots.len());
        placed.sort_unstable_by_key(|&at| slots[at]);
        return placed
            .windows(2)
            .all(|pair| slots[pair[0]] != slots[pair[1]]);
    }
    at_slot.clear();
    at_slot.resize(spread, EMPTY);
    for (at, &slot) in slots.iter().enumerate() {
        if at_slot[slot] != EMPTY {
            return false;
        }
        at_slot[slot] = at;
    }
    placed.extend(at_slot.iter().copied().filter(|&at| at != EMPTY));
    true
}

/// `a.cmp(b)`, told by the first bytes when they differ (keys mostly do) without a call to
/// compare the whole.
#[inline]
pub(super) fn order(a: &str, b: &str) -> Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_placed_by_their_slots_and_a_slot_twice_is_refused() {
        let (mut table, mut placed) = (vec![3; 2], vec![9; 7]);
        let mut place = |slots: &[usize]| {
            let whole = place_by_slots(slots, &mut table, &mut placed);
            (whole, placed.clone())
        };
        assert_eq!(place(&[3, 0, 2, 1]), (true, vec![1, 3, 2, 0]));
        assert_eq!(place(&[0, 1, 2]), (true, vec![0, 1, 2]));
        assert_eq!(place(&[9, 4]), (true, vec![1, 0]), "slots left out between");
        // A key given twice, wherever it comes.
        assert!(!place(&[2, 0, 2, 1]).0);
        assert!(!place(&[5, 5]).0);
        // Slots spread far wider than the line (sorted), the same twice in it too.
        assert_eq!(place(&[900, 3, 500]), (true, vec![1, 2, 0]));
        assert!(!place(&[900, 3, 900]).0);
        // A thousand keys backwards.
        let wide: Vec<usize> = (0..1000).rev().collect();
        assert_eq!(place(&wide), (true, wide.clone()));
        assert_eq!(place(&[]), (true, vec![]));
        assert_eq!(place(&[7]), (true, vec![0]));
    }

    #[test]
    fn keys_are_ordered_as_str_orders_them() {
        let keys = [
            "", "a", "ab", "b", "id", "id ", " id", "患者ID", "患者", "メモ", "\u{0}",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(order(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    fn learnt(keys: &[&str]) -> KeyOrder {
        let mut order = KeyOrder::default();
        for (column, key) in keys.iter().enumerate() {
            let slot = order.find(0, key).map_or_else(
                || (0..order.len()).find(|&slot| order.get(slot).unwrap().0 > *key),
                Some,
            );
            order.insert(slot.unwrap_or(order.len()), key, column);
        }
        order
    }

    #[test]
    fn the_key_expected_is_the_one_that_came_next_on_the_last_line() {
        let mut order = learnt(&["id", "name", "a\"b", "stage", "memo"]);
        // Sorted: a"b, id, memo, name, stage.
        let expected = |order: &KeyOrder, place| {
            let (slot, written) = order.expected(place)?;
            Some((
                slot,
                std::str::from_utf8(&written.bytes).unwrap().to_owned(),
            ))
        };
        let expect = |slot, written: &str| Some((slot, written.to_owned()));
        assert_eq!(expected(&order, 0), None, "nothing learnt yet");
        order.learn(&[1, 3, 4]);
        assert_eq!(expected(&order, 0), expect(1, "\"id\":"));
        assert_eq!(expected(&order, 2), expect(3, "\"name\":"));
        assert_eq!(expected(&order, 4), expect(4, "\"stage\":"));
        assert_eq!(expected(&order, 5), None, "stage was last");
        // A key a line would have to escape is found by walking, never by its bytes.
        order.learn(&[0, 1]);
        assert_eq!(expected(&order, 0), None);
        assert_eq!(expected(&order, 1), expect(1, "\"id\":"));
        // A new key: the slots move, and what was learnt goes.
        order.insert(0, "Z", 5);
        assert!((0..=order.len()).all(|place| order.expected(place).is_none()));
    }

    /// Every length around a word's, compared with lines as long, shorter and longer, equal
    /// or differing in any one byte.
    #[test]
    fn a_written_key_is_compared_a_word_at_a_time_as_bytes_compare() {
        for len in 0..30 {
            let key: String = (0..len).map(|n| char::from(b'a' + n as u8 % 26)).collect();
            let written = Written::new(&key).unwrap();
            assert_eq!((written.key_len(), written.len()), (len, len + 3));
            let exact = format!("\"{key}\":");
            let longer = format!("{exact}\"v\",\"more\":\"0123456789abcdef\"}}");
            for line in [exact.clone(), longer] {
                for cut in 0..=line.len() {
                    let line = &line.as_bytes()[..cut];
                    assert_eq!(written.starts(line), line.starts_with(exact.as_bytes()));
                }
                for at in 0..line.len() {
                    let mut changed = line.clone().into_bytes();
                    changed[at] ^= 0x20;
                    let same = changed.starts_with(exact.as_bytes());
                    assert_eq!(written.starts(&changed), same, "{len} {at}");
                }
            }
        }
        assert!(Written::new("a\"b").is_none() && Written::new("a\\b").is_none());
        assert!(Written::new("a\tb").is_none() && Written::new("患者ID").is_some());
        assert!(Written::new(&"k".repeat(WRITTEN_KEY_MAX)).is_some());
        assert!(Written::new(&"k".repeat(WRITTEN_KEY_MAX + 1)).is_none());
    }

    #[test]
    fn a_key_is_found_only_at_or_after_the_place_given() {
        let order = learnt(&["id", "i", "idx", "ab", "ba"]);
        // Sorted: ab, ba, i, id, idx.
        assert_eq!(order.find(0, "id"), Some(3));
        assert_eq!(order.find(3, "id"), Some(3));
        assert_eq!(order.find(4, "id"), None, "out of order");
        assert_eq!(order.find(0, "idy"), None);
        assert_eq!(order.find(0, "zz"), None);
        assert_eq!(order.find(9, "ab"), None);
        assert_eq!(order.get(4).map(|(_, column)| column), Some(2));
    }
}
