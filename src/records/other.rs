//! [`OtherColumns`]: a record's undeclared columns (`other`), read by templates, rhai
//! conditions and explain as a map from column name to value, in name order.
//!
//! It was a `BTreeMap`, emptied and refilled in place for every row: each row walked the
//! tree three times (to drop huge values, to empty the values, to drop those the row left
//! empty), and the tree's node, allocated apart from the record, cost a cache miss a row on a
//! million-row `plan`. Now the few columns a file has are a sorted list, kept with their names
//! from row to row; a value left empty is a column the row did not set and is not shown, so
//! emptying a row is one pass over a short list and nothing is removed.

use std::collections::{btree_map, BTreeMap};
use std::fmt;
use std::ops::Index;

use super::spent::LONGEST_KEPT;

/// Columns kept in a sorted list, at most; past that (a file with hundreds of undeclared
/// columns, or a JSONL file whose lines each name new keys) a tree, so that inserting stays
/// cheap however many there are.
const FEW: usize = 256;
/// Columns kept in the tree from one row to the next, at most: past it the tree is dropped,
/// so that a file of ever new keys does not grow a record without bound.
const MANY_KEPT: usize = 4 * FEW;

/// Every non-empty column of a row that the rules do not declare, by name: the same contents,
/// order and `Debug` output as a `BTreeMap<String, String>` of them. An empty value is no
/// value (a row's empty cells are not set), so inserting one removes nothing and shows
/// nothing.
#[derive(Clone, Default)]
pub struct OtherColumns {
    kept: Kept,
}

#[derive(Clone)]
enum Kept {
    /// Sorted by name, each name once; empty values are columns not set this row.
    Few(Vec<(String, String)>),
    /// As `Few`, for more than [`FEW`] columns.
    Many(BTreeMap<String, String>),
}

impl Default for Kept {
    fn default() -> Self {
        Kept::Few(Vec::new())
    }
}

impl OtherColumns {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of column `name`, when the row set it.
    pub fn get(&self, name: &str) -> Option<&String> {
        let value = match &self.kept {
            Kept::Few(entries) => entries
                .binary_search_by(|(key, _)| key.as_str().cmp(name))
                .ok()
                .map(|index| &entries[index].1),
            Kept::Many(map) => map.get(name),
        };
        value.filter(|value| !value.is_empty())
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// How many columns are set.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The columns set, by name.
    pub fn iter(&self) -> Iter<'_> {
        Iter(match &self.kept {
            Kept::Few(entries) => Walk::Few(entries.iter()),
            Kept::Many(map) => Walk::Many(map.iter()),
        })
    }

    /// The values set, in their columns' name order.
    pub fn values(&self) -> impl Iterator<Item = &String> {
        self.iter().map(|(_, value)| value)
    }

    /// How many names are kept, set or not: what the list holds, for tests of its bounds.
    #[cfg(test)]
    pub(super) fn names_kept(&self) -> usize {
        match &self.kept {
            Kept::Few(entries) => entries.len(),
            Kept::Many(map) => map.len(),
        }
    }

    /// Sets column `name` to `value`, returning the value it had (an empty `value` unsets it).
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        let old = self.slot(&name, |name| name.to_owned());
        let old = std::mem::replace(old, value);
        (!old.is_empty()).then_some(old)
    }

    /// Sets column `name` to `text` (not empty) in the string the column kept from the rows
    /// before, when it has one.
    pub(super) fn set(&mut self, name: &str, text: &str) {
        let value = self.slot(name, str::to_owned);
        value.clear();
        value.push_str(text);
    }

    /// Every column not set, for the next row: names and strings kept, a huge value not; the
    /// tree, when there is one, emptied or dropped ([`MANY_KEPT`]).
    pub(super) fn empty(&mut self) {
        match &mut self.kept {
            Kept::Few(entries) => entries.iter_mut().for_each(|(_, value)| empty(value)),
            Kept::Many(map) if map.len() > MANY_KEPT => self.kept = Kept::default(),
            Kept::Many(map) => map.values_mut().for_each(empty),
        }
    }

    /// The string of column `name`, added (empty) when the list has none.
    fn slot(&mut self, name: &str, owned: impl FnOnce(&str) -> String) -> &mut String {
        if let Kept::Few(entries) = &mut self.kept {
            let found = entries.binary_search_by(|(key, _)| key.as_str().cmp(name));
            if found.is_err() && entries.len() >= FEW {
                // Columns of rows before that this one has not set make room first.
                entries.retain(|(_, value)| !value.is_empty());
            }
            if found.is_err() && entries.len() >= FEW {
                self.kept = Kept::Many(std::mem::take(entries).into_iter().collect());
            }
        }
        match &mut self.kept {
            Kept::Few(entries) => {
                let index = match entries.binary_search_by(|(key, _)| key.as_str().cmp(name)) {
                    Ok(index) => index,
                    Err(index) => {
                        entries.insert(index, (owned(name), String::new()));
                        index
                    }
                };
                &mut entries[index].1
            }
            // Files this wide are rare: the name is copied for each cell.
            Kept::Many(map) => map.entry(owned(name)).or_default(),
        }
    }
}

/// A value emptied for the next row, or dropped when it is huge.
fn empty(value: &mut String) {
    if value.capacity() > LONGEST_KEPT {
        *value = String::new();
    }
    value.clear();
}

impl PartialEq for OtherColumns {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for OtherColumns {}

impl fmt::Debug for OtherColumns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Index<&str> for OtherColumns {
    type Output = String;

    // A missing column panics, as indexing the map it replaces did: for tests and callers
    // that have just checked.
    #[allow(clippy::expect_used)]
    fn index(&self, name: &str) -> &String {
        self.get(name).expect("no such column in `other`")
    }
}

impl FromIterator<(String, String)> for OtherColumns {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(columns: I) -> Self {
        let mut other = OtherColumns::new();
        for (name, value) in columns {
            other.insert(name, value);
        }
        other
    }
}

impl<'a> IntoIterator for &'a OtherColumns {
    type Item = (&'a String, &'a String);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The columns set, by name ([`OtherColumns::iter`]).
pub struct Iter<'a>(Walk<'a>);

enum Walk<'a> {
    Few(std::slice::Iter<'a, (String, String)>),
    Many(btree_map::Iter<'a, String, String>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a String);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (name, value) = match &mut self.0 {
                Walk::Few(entries) => entries.next().map(|(name, value)| (name, value))?,
                Walk::Many(map) => map.next()?,
            };
            if !value.is_empty() {
                return Some((name, value));
            }
        }
    }
}
