//! The order an export writes a line's keys in, learnt from the lines before. An export writes
//! its keys in one order on every line (leaving out the empty ones), so the key after a key is
//! nearly always the one that came after it the last time: the scanner
//! ([`super::jsonl_scan`]) confirms that guess with one compare of the key's bytes and the `":`
//! after them, and only on a miss walks the sorted spellings for the key it scanned. Walking
//! them for every key (a compare or two per spelling passed, the key's end searched for first)
//! was most of what finding a line's columns cost.

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

struct Spelling {
    /// The key as its line means it (unescaped).
    text: String,
    /// Its place in the caller's columns.
    column: usize,
    /// Whether a line writes it as it is between its quotes (no quote, backslash or control
    /// character, which a line would have to escape): only then can its bytes be compared
    /// with the line's.
    verbatim: bool,
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

    /// The key expected at `place`: the slot that came next there on the last line, and its
    /// spelling as a line writes it, when a line can write it without escapes.
    #[inline]
    pub(super) fn expected(&self, place: usize) -> Option<(usize, &str)> {
        let slot = *self.next.get(place)?;
        let spelling = self.spellings.get(slot)?;
        spelling.verbatim.then_some((slot, spelling.text.as_str()))
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

    /// Keeps `key` (with its column) at `slot`, where it sorts. What followed which key is
    /// forgotten: the slots after it have moved.
    pub(super) fn insert(&mut self, slot: usize, key: &str, column: usize) {
        let verbatim = key
            .bytes()
            .all(|byte| byte != b'"' && byte != b'\\' && byte >= 0x20);
        let spelling = Spelling {
            text: key.to_owned(),
            column,
            verbatim,
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
        assert_eq!(order.expected(0), None, "nothing learnt yet");
        order.learn(&[1, 3, 4]);
        assert_eq!(order.expected(0), Some((1, "id")));
        assert_eq!(order.expected(2), Some((3, "name")));
        assert_eq!(order.expected(4), Some((4, "stage")));
        assert_eq!(order.expected(5), None, "stage was last");
        // A key a line would have to escape is found by walking, never by its bytes.
        order.learn(&[0, 1]);
        assert_eq!(order.expected(0), None);
        assert_eq!(order.expected(1), Some((1, "id")));
        // A new key: the slots move, and what was learnt goes.
        order.insert(0, "Z", 5);
        assert!((0..=order.len()).all(|place| order.expected(place).is_none()));
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
