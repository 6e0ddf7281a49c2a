//! Typing a JSONL line: its keys resolved to columns (each spelling once, kept from line to
//! line, see [`super::jsonl_order`]) and its values typed as those columns' cells. Nearly every
//! line is typed as it is scanned ([`super::jsonl_cells::ScannedCells`]); any other line, by a
//! list of its entries, put in order and checked for two cells meaning one field.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::hash_map::Entry as HashEntry;
use std::collections::HashMap;

use super::columns::{Column, Resolver, Role};
use super::jsonl_cells::ScannedCells;
use super::jsonl_line::{parse_entries_serde, sort_entries, Entry, JsonValue, Shape};
use super::jsonl_order::{order, place_by_slots, KeyOrder};
use super::jsonl_rows::json_error;
use super::jsonl_scan::scan_keyed;
use super::row::{Cell, RowTyper, TypedRow};
use super::seen_ids::keyed_hasher;
use super::spent::Spares;
use super::RowError;
use crate::printable::printable;

/// Real exports have a few dozen distinct keys; past this many, keys are resolved per row so a
/// file with ever-new keys cannot grow memory without bound.
const KEY_CACHE_LIMIT: usize = 1024;
/// Entries of a line, and bytes of its numbers' text, kept for the next line at most.
const ENTRIES_KEPT: usize = 1024;
const NUMBERS_KEPT: usize = 1 << 16;

/// What typing a line as it was scanned came to.
enum Scanned {
    /// The line's row.
    Typed(TypedRow),
    /// The line is to be typed again (into this row, when there is one).
    Again(Option<TypedRow>),
}

/// Types JSONL lines: the keys met so far resolved to columns, each once. One per thread
/// typing lines; the notices its resolver finds are the first line's that brings them there.
pub(super) struct JsonlKeys {
    resolver: Resolver,
    /// Every key met so far (trimmed) → its place in `columns`. Hashed with aHash (SipHash was
    /// a sixth of a JSONL line's typing), keyed per process as the ids are.
    known: HashMap<String, usize, ahash::RandomState>,
    columns: Vec<Column>,
    /// Per column of `columns`, which of their distinct names it has: two cells of a line
    /// with one name are refused, and this finds them without comparing names.
    name_of: Vec<usize>,
    /// Whether two of `columns` have one name, or one column two spellings: until then no
    /// line can have two cells meaning one field, and the check for them is not needed.
    names_shared: bool,
    /// Columns resolved for the line being typed past [`KEY_CACHE_LIMIT`], after `columns`.
    fresh: Vec<Column>,
    /// Every spelling of a key met so far (while fewer than [`KEY_CACHE_LIMIT`]), sorted, with
    /// its place in `columns`: a line's keys are found along it as the line is scanned, most
    /// by the order the line before had them in (whatever it is), with no hashing.
    order: KeyOrder,
    /// The line's keys' slots in `order`, while all are found there.
    slots: Vec<usize>,
    /// The places of the line's entries in their keys' sorted order (see `place_by_slots`,
    /// which keeps its table in `at_slot`).
    placed: Vec<usize>,
    at_slot: Vec<usize>,
    /// The line's keys' places in `columns` (or, past it, in `fresh`), one per entry.
    keys: Vec<usize>,
    /// The list each line is parsed into, kept empty between lines.
    entries: Vec<Entry<'static>>,
    /// The line's numbers as text, one after another ([`JsonValue::Number`]).
    numbers: String,
    /// Per name, the line it was last seen on ([`Self::stamp`]) and the cell there.
    seen: Vec<(u64, usize)>,
    /// Per slot of `order`, the line it was last scanned on ([`Self::stamp`]).
    slot_seen: Vec<u64>,
    stamp: u64,
}

impl JsonlKeys {
    pub(super) fn new(resolver: Resolver) -> Self {
        JsonlKeys {
            resolver,
            known: HashMap::with_hasher(keyed_hasher()),
            columns: Vec::new(),
            name_of: Vec::new(),
            names_shared: false,
            fresh: Vec::new(),
            order: KeyOrder::default(),
            slots: Vec::new(),
            placed: Vec::new(),
            at_slot: Vec::new(),
            keys: Vec::new(),
            entries: Vec::new(),
            numbers: String::new(),
            seen: Vec::new(),
            slot_seen: Vec::new(),
            stamp: 0,
        }
    }

    /// The notices found since the last call.
    pub(super) fn take_notices(&self) -> Vec<String> {
        self.resolver.notices().take()
    }

    /// The row on `line`, typed but not checked against the rows before it.
    pub(super) fn type_line(
        &mut self,
        typer: &RowTyper,
        line: usize,
        text: &str,
        spares: &mut Spares,
    ) -> Result<TypedRow, RowError> {
        // Nearly every line is typed as it is scanned; any other is typed again, into the
        // same record, by the way that handles every line.
        let mut typed_before = match self.type_scanned(typer, line, text, spares) {
            Scanned::Typed(typed) => return Ok(typed),
            Scanned::Again(typed) => typed,
        };
        let mut entries = recycle(std::mem::take(&mut self.entries));
        let typed = self.type_entries(typer, line, text, &mut entries, spares, &mut typed_before);
        if let Some(mut unused) = typed_before {
            spares.keep_record(unused.take_record());
        }
        // What one huge line needed is not kept for the lines after it.
        if entries.capacity() <= ENTRIES_KEPT {
            self.entries = recycle(entries);
        }
        if self.numbers.capacity() > NUMBERS_KEPT {
            self.numbers = String::new();
        }
        // Both are filled anew for each line.
        if self.keys.capacity() > ENTRIES_KEPT {
            self.keys = Vec::new();
        }
        if self.slots.capacity() > ENTRIES_KEPT {
            self.slots = Vec::new();
        }
        if self.placed.capacity() > ENTRIES_KEPT || self.at_slot.capacity() > ENTRIES_KEPT {
            (self.placed, self.at_slot) = (Vec::new(), Vec::new());
        }
        if self.fresh.capacity() > ENTRIES_KEPT {
            self.fresh = Vec::new();
        }
        typed
    }

    /// The line typed straight from its scan ([`ScannedCells`]), when it is a flat object of
    /// known keys each once (nearly every line of an export); else what was typed (nothing,
    /// when two cells may mean one field and the line must be checked first), for the line to
    /// be typed again.
    fn type_scanned(
        &mut self,
        typer: &RowTyper,
        line: usize,
        text: &str,
        spares: &mut Spares,
    ) -> Scanned {
        if self.names_shared {
            return Scanned::Again(None);
        }
        if self.slot_seen.len() < self.order.len() {
            self.slot_seen.resize(self.order.len(), 0);
        }
        self.stamp += 1;
        let (order, columns) = (&self.order, self.columns.as_slice());
        let seen = self.slot_seen.as_mut_slice();
        let mut cells = ScannedCells::new(text, order, columns, &mut self.slots, seen, self.stamp);
        let mut typed = typer.type_row(line, &mut cells, spares);
        let (whole, sorted) = (cells.whole(), cells.sorted());
        if !whole {
            return Scanned::Again(Some(typed));
        }
        if !sorted && typed.problem_count() > 1 {
            self.order_problems(&mut typed);
        }
        self.order.learn(&self.slots);
        Scanned::Typed(typed)
    }

    /// A row's problems are noted in its cells' order; the other way types the cells in their
    /// keys' sorted order, which is their slots'. Puts `typed`'s problems, from the line just
    /// scanned, in that order. A line's columns have names of their own (no names are
    /// shared), so a problem's column name tells its slot. Out of line: nearly no line needs
    /// it, and a row has a few problems at most (one per field that can be unreadable).
    #[cold]
    #[inline(never)]
    fn order_problems(&self, typed: &mut TypedRow) {
        typed.order_problems(|name| {
            let named = |&&slot: &&usize| {
                let column = self.columns.get(self.order.column(slot));
                column.is_some_and(|column| column.name == name)
            };
            self.slots.iter().find(named).copied().unwrap_or(usize::MAX)
        });
    }

    fn type_entries<'t>(
        &mut self,
        typer: &RowTyper,
        line: usize,
        text: &'t str,
        entries: &mut Vec<Entry<'t>>,
        spares: &mut Spares,
        typed_before: &mut Option<TypedRow>,
    ) -> Result<TypedRow, RowError> {
        // Nearly every line of an export is a flat object without escapes, scanned on its own:
        // its values are scalars, so it holds no nested value to refuse.
        let scanned = scan_keyed(
            text,
            entries,
            &mut self.numbers,
            &self.order,
            &mut self.slots,
        );
        let (parsed, flat) = match scanned {
            Some(shape) => (Ok(shape), true),
            None => (parse_entries_serde(text, entries, &mut self.numbers), false),
        };
        // Whether the entries are typed in the order of `placed` (else in their own order).
        let mut by_slot = false;
        match parsed {
            // A line whose keys are all known, each once (nearly every line), has them found as
            // it was scanned (then taken in sorted order by their slots), or in one walk; any
            // other is put in order and resolved key by key.
            Ok(Shape::Object) => {
                let found = if flat && self.slots.len() == entries.len() {
                    // What the next line is expected to hold: this one's keys in its order.
                    self.order.learn(&self.slots);
                    let (order, slots) = (&self.order, &self.slots);
                    // Sorted already (serde_json's maps write them so): taken as they are.
                    let sorted = slots.windows(2).all(|pair| pair[0] < pair[1]);
                    by_slot = !sorted && place_by_slots(slots, &mut self.at_slot, &mut self.placed);
                    self.fresh.clear();
                    self.keys.clear();
                    if sorted {
                        (self.keys).extend(slots.iter().map(|&slot| order.column(slot)));
                    } else if by_slot {
                        (self.keys).extend(self.placed.iter().map(|&at| order.column(slots[at])));
                    }
                    sorted || by_slot
                } else if self.find_in_order(entries) {
                    self.order.learn(&self.slots);
                    true
                } else {
                    false
                };
                if !found {
                    sort_entries(entries);
                    self.resolve(entries);
                }
            }
            Ok(Shape::Not(found)) => {
                let message =
                    format!("expected a JSON object ({{...}}) on the line, found {found}");
                return Err(typer.error(line, message));
            }
            Err(err) => return Err(typer.error(line, json_error(&err))),
        }
        for ((_, value), &index) in entries.iter().zip(&self.keys).filter(|_| !flat) {
            if matches!(value, JsonValue::List(None) | JsonValue::Object) {
                let message = format!(
                    "field {}: nested lists and objects are not supported (use a string, \
                     number, boolean, null, or a list of those)",
                    self.column(index).label()
                );
                return Err(typer.error(line, message));
            }
        }
        if self.names_shared || !self.fresh.is_empty() {
            let placed = std::mem::take(&mut self.placed);
            let clash = match by_slot {
                true => self.first_clash(placed.iter().map(|&at| &entries[at].1)),
                false => self.first_clash(entries.iter().map(|(_, value)| value)),
            };
            let message = clash.map(|(first, second)| {
                format!(
                    "fields `{}` and `{}` both mean `{}`",
                    printable(&first.header),
                    printable(&second.header),
                    printable(&second.name)
                )
            });
            self.placed = placed;
            if let Some(message) = message {
                return Err(typer.error(line, message));
            }
        }
        // Taken from their places, none moved (the line's keys are cleared with it).
        let (mut placed, mut drained);
        let values: &mut dyn Iterator<Item = JsonValue<'_>> = if by_slot {
            placed = (self.placed.iter())
                .map(|&at| std::mem::replace(&mut entries[at].1, JsonValue::Null));
            &mut placed
        } else {
            drained =
                (entries.iter_mut()).map(|(_, value)| std::mem::replace(value, JsonValue::Null));
            &mut drained
        };
        let cells = values.zip(&self.keys).filter_map(|(value, &index)| {
            let cell = match value {
                JsonValue::Text(text) => Cell::Text(text),
                JsonValue::Number(place) => Cell::Text(Cow::Borrowed(&self.numbers[place])),
                JsonValue::List(Some(items)) => Cell::List(items),
                // Nulls are empty cells; nested values were refused above.
                JsonValue::Null | JsonValue::List(None) | JsonValue::Object => return None,
            };
            Some((self.column(index), cell))
        });
        Ok(match typed_before.take() {
            Some(mut typed) => {
                typer.type_row_into(&mut typed, line, cells, spares);
                typed
            }
            None => typer.type_row(line, cells, spares),
        })
    }

    /// Whether every key of `entries` (as parsed, not yet sorted) was found along
    /// [`Self::order`], each after the one before: then the keys are in order and each is
    /// there once (the spellings are sorted and different), [`Self::slots`] holds their slots
    /// and [`Self::keys`] their columns.
    fn find_in_order(&mut self, entries: &[Entry<'_>]) -> bool {
        self.fresh.clear();
        self.keys.clear();
        self.slots.clear();
        let mut place = 0;
        for (key, _) in entries {
            let Some(slot) = self.order.find(place, key) else {
                return false;
            };
            self.slots.push(slot);
            self.keys.push(self.order.column(slot));
            place = slot + 1;
        }
        true
    }

    /// Leaves in [`Self::keys`] the columns of `entries`' keys (sorted): each found along
    /// [`Self::order`], else resolved (and kept while fewer than [`KEY_CACHE_LIMIT`] are).
    fn resolve(&mut self, entries: &[Entry<'_>]) {
        self.fresh.clear();
        self.keys.clear();
        let mut along = 0;
        for (key, _) in entries {
            let key = key.as_ref();
            let found = loop {
                let Some((spelt, index)) = self.order.get(along) else {
                    break None;
                };
                match order(spelt, key) {
                    Ordering::Less => along += 1,
                    Ordering::Equal => break Some(index),
                    Ordering::Greater => break None,
                }
            };
            let index = match found {
                Some(index) => index,
                None => {
                    let index = match self.known.get(key.trim()) {
                        // A second spelling of a known key: one line may have both.
                        Some(&index) => {
                            self.names_shared = true;
                            index
                        }
                        None => self.add(self.resolver.resolve(key)),
                    };
                    let kept = index < self.columns.len();
                    if kept && self.order.len() < KEY_CACHE_LIMIT {
                        self.order.insert(along, key, index);
                    }
                    index
                }
            };
            self.keys.push(index);
        }
    }

    /// `column`'s place: in `columns` while the cache has room, else in `fresh`.
    fn add(&mut self, column: Column) -> usize {
        if self.columns.len() >= KEY_CACHE_LIMIT {
            self.fresh.push(column);
            return self.columns.len() + self.fresh.len() - 1;
        }
        let name = match self
            .columns
            .iter()
            .position(|known| known.name == column.name)
        {
            Some(same) => {
                self.names_shared = true;
                self.name_of[same]
            }
            None => self.seen.len(),
        };
        if name == self.seen.len() {
            self.seen.push((0, 0));
        }
        self.known.insert(column.header.clone(), self.columns.len());
        self.columns.push(column);
        self.name_of.push(name);
        self.columns.len() - 1
    }

    fn column(&self, index: usize) -> &Column {
        match self.columns.get(index) {
            Some(column) => column,
            None => &self.fresh[index - self.columns.len()],
        }
    }

    /// The first two cells (nulls aside) whose columns mean the same field, as
    /// [`super::columns::first_duplicate`] finds them.
    fn first_clash<'v, 'e: 'v>(
        &mut self,
        values: impl Iterator<Item = &'v JsonValue<'e>>,
    ) -> Option<(&Column, &Column)> {
        let present = values.zip(&self.keys);
        let mut present = present.filter(|(value, _)| !matches!(value, JsonValue::Null));
        if !self.fresh.is_empty() {
            // Not quadratic as `first_duplicate` is: a line may have tens of thousands of keys.
            let mut first: HashMap<&str, &Column, ahash::RandomState> =
                HashMap::with_hasher(keyed_hasher());
            for (_, &index) in present {
                let column = self.column(index);
                if column.role == Role::Ignored {
                    continue;
                }
                match first.entry(column.name.as_str()) {
                    HashEntry::Occupied(earlier) => return Some((earlier.get(), column)),
                    HashEntry::Vacant(place) => {
                        place.insert(column);
                    }
                }
            }
            return None;
        }
        self.stamp += 1;
        let stamp = self.stamp;
        let clash = present.find_map(|(_, &index)| {
            if self.columns[index].role == Role::Ignored {
                return None;
            }
            let seen = &mut self.seen[self.name_of[index]];
            if seen.0 == stamp {
                return Some((seen.1, index));
            }
            *seen = (stamp, index);
            None
        });
        clash.map(|(first, second)| (&self.columns[first], &self.columns[second]))
    }
}

/// `entries`' list, emptied, for entries of another line: the same allocation (a list of
/// entries borrowed from one line cannot be kept past it; an empty one can).
fn recycle<'a, 'b>(mut entries: Vec<Entry<'a>>) -> Vec<Entry<'b>> {
    entries.clear();
    // Collected in place: the map is never called on an empty list.
    entries
        .into_iter()
        .map(|_| unreachable!("the list is empty"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::row::RowBuilder;
    use crate::records::RecordSchema;

    #[test]
    fn a_lines_list_is_filled_again_not_allocated_again() {
        let text = String::from("{\"id\": \"P1\"}");
        let mut entries: Vec<Entry<'_>> = Vec::with_capacity(16);
        entries.push((Cow::Borrowed(&text[2..4]), JsonValue::Null));
        let place = entries.as_ptr() as usize;
        let kept: Vec<Entry<'static>> = recycle(entries);
        assert!(kept.is_empty() && kept.capacity() >= 16);
        assert_eq!(kept.as_ptr() as usize, place);
    }

    /// A schema of one stage and no fields of its own.
    fn booked_only() -> RecordSchema {
        RecordSchema {
            timezone: chrono_tz::Asia::Tokyo,
            stages: vec!["booked".into()],
            date_fields: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// A line with a hundred thousand numbers is typed, and what it needed is let go.
    #[test]
    fn a_huge_line_leaves_nothing_huge_behind() {
        let schema = booked_only();
        let builder = RowBuilder::new("patients.jsonl", &schema, None).unwrap();
        let mut keys = JsonlKeys::new(Resolver::new(&schema, None));
        let mut spares = Spares::default();
        let mut line = String::from("{\"id\": \"P1\"");
        for n in 0..100_000 {
            line.push_str(&format!(", \"k{n}\": {n}.5"));
        }
        line.push('}');
        let typed = keys.type_line(builder.typer_ref(), 1, &line, &mut spares);
        let record = typed.ok().and_then(|typed| typed.kept().cloned()).unwrap();
        assert_eq!(record.other.len(), 100_000);
        assert_eq!(record.other["k99999"], "99999.5");
        assert_eq!(keys.columns.len(), KEY_CACHE_LIMIT);
        assert!(keys.entries.capacity() <= ENTRIES_KEPT);
        assert!(keys.numbers.capacity() <= NUMBERS_KEPT);
        assert!(keys.keys.capacity() <= ENTRIES_KEPT && keys.fresh.capacity() <= ENTRIES_KEPT);
        let small = keys.type_line(builder.typer_ref(), 2, "{\"id\": 7}", &mut spares);
        let record = small.ok().and_then(|typed| typed.kept().cloned()).unwrap();
        assert_eq!((record.id.as_str(), record.other.len()), ("7", 0));
        // Typed as it was scanned, its one key found among those kept.
        assert!(keys.fresh.is_empty() && keys.slots.len() == 1);
    }

    /// What a careless export or an attacker puts on a line whose keys are known (so that it
    /// is typed as it is scanned): a list of a hundred thousand tags, a name of fifty thousand
    /// escaped characters, values nested ten thousand deep. Each is read in one pass or
    /// refused as serde_json refuses it, and the line after is typed as scanned again.
    #[test]
    fn huge_lists_escapes_and_nesting_on_a_known_line_are_read_or_refused() {
        let schema = booked_only();
        let builder = RowBuilder::new("patients.jsonl", &schema, None).unwrap();
        let typer = builder.typer_ref();
        let mut keys = JsonlKeys::new(Resolver::new(&schema, None));
        let mut spares = Spares::default();
        let first = r#"{"id": "P0", "name": "a", "tags": "x"}"#;
        assert!(keys.type_line(typer, 1, first, &mut spares).is_ok());
        let tags: Vec<String> = (0..100_000).map(|n| format!("\"t{n}\"")).collect();
        let listed = format!(
            r#"{{"id": "P1", "name": "a", "tags": [{}, null]}}"#,
            tags.join(",")
        );
        let typed = keys.type_line(typer, 2, &listed, &mut spares).unwrap();
        assert_eq!(typed.kept().unwrap().tags.len(), 100_000);
        assert_eq!(keys.slots.len(), 3, "typed as it was scanned");
        let escaped = format!(
            r#"{{"id": "P2", "name": "{}", "tags": "x"}}"#,
            "\\u60a3".repeat(50_000)
        );
        let typed = keys.type_line(typer, 3, &escaped, &mut spares).unwrap();
        assert_eq!(typed.kept().unwrap().name, Some("患".repeat(50_000)));
        let deep = format!(
            r#"{{"id": "P3", "name": "a", "tags": {}1{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let Err(refused) = keys.type_line(typer, 4, &deep, &mut spares) else {
            panic!("a line nested ten thousand deep is refused");
        };
        assert!(
            refused.message.starts_with("invalid JSON"),
            "{}",
            refused.message
        );
        let typed = keys.type_line(typer, 5, first, &mut spares).unwrap();
        assert_eq!(typed.kept().unwrap().id, "P0");
        assert_eq!(keys.slots.len(), 3, "typed as it was scanned");
    }
}
