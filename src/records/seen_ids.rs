//! The ids met so far in one export, to catch a patient exported twice. At a million patients
//! this map was the largest part of the reading thread: a `String` per id (allocated, then
//! freed at the end, each on its own), the id hashed where the rows are checked in file order,
//! and two cache misses per id in a table of strings. Here every new id is appended to one
//! buffer, the hash is computed by whoever typed the row ([`id_hash`], on any thread), and the
//! table is one array of 8-byte slots probed in a line: a new id (nearly every one) costs the
//! one slot it reads and then writes.

use std::sync::OnceLock;

/// A slot: 0 when empty, else the top [`TAG_BITS`] bits of the id's hash above its index + 1.
type Slot = u64;
const TAG_BITS: u32 = 24;
const INDEX_BITS: u32 = 64 - TAG_BITS;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

/// The ids met so far in one file, checked in file order.
pub(super) struct SeenIds {
    /// Every id met, one after another.
    text: String,
    /// For the `n`th id met: where it starts in `text` and the line it first appeared on (it
    /// ends where the next one starts).
    firsts: Vec<(usize, usize)>,
    /// Open addressing, probed one slot after another from the hash's low bits; at most half
    /// full. Grows with the patients, as `text` and `firsts` do; nothing else does.
    slots: Vec<Slot>,
    /// What `line` counts, in messages that point at another row: "line" or "row".
    unit: &'static str,
}

impl SeenIds {
    pub(super) fn on_lines() -> Self {
        SeenIds {
            text: String::new(),
            firsts: Vec::new(),
            slots: Vec::new(),
            unit: "line",
        }
    }

    /// For a source whose rows are numbered rather than on lines (a database query).
    pub(super) fn on_rows() -> Self {
        SeenIds {
            unit: "row",
            ..SeenIds::on_lines()
        }
    }

    /// The `index`th id met.
    fn id(&self, index: usize) -> &str {
        let start = self.firsts[index].0;
        let end = self
            .firsts
            .get(index + 1)
            .map_or(self.text.len(), |next| next.0);
        &self.text[start..end]
    }

    /// Why the row at `line` with `id` (whose [`id_hash`] is `hash`) is skipped when the id
    /// came before; a new id is remembered.
    pub(super) fn check(&mut self, id: &str, hash: u64, line: usize) -> Option<String> {
        if (self.firsts.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let tag = hash >> INDEX_BITS;
        let mut at = hash as usize & mask;
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                break;
            }
            let index = (slot & INDEX_MASK) as usize - 1;
            if slot >> INDEX_BITS == tag && self.id(index) == id {
                let first = self.firsts[index].1;
                return Some(format!("the same id is already on {} {first}", self.unit));
            }
            at = (at + 1) & mask;
        }
        let index = self.firsts.len();
        // Past 2⁴⁰ ids (far more than memory holds) an id is no longer remembered.
        if index as u64 >= INDEX_MASK {
            return None;
        }
        self.slots[at] = tag << INDEX_BITS | (index as u64 + 1);
        self.firsts.push((self.text.len(), line));
        self.text.push_str(id);
        None
    }

    /// Reads the first slot of each id whose [`id_hash`] is in `hashes`, so that checking them
    /// next finds those slots in the cache: at a million ids the table is tens of megabytes,
    /// and nearly every check was one cache (and TLB) miss, taken one after another. Loads
    /// that do not depend on each other are waited for together.
    pub(super) fn touch(&self, hashes: impl Iterator<Item = u64>) {
        let Some(mask) = self.slots.len().checked_sub(1) else {
            return;
        };
        let touched = hashes.fold(0, |seen, hash| seen ^ self.slots[hash as usize & mask]);
        std::hint::black_box(touched);
    }

    /// Twice as many slots (at least 1,024), every id put in again.
    fn grow(&mut self) {
        let len = (self.slots.len() * 2).max(1024);
        let mut slots = crate::zeroed::written(len, 0);
        let mask = len - 1;
        for index in 0..self.firsts.len() {
            let hash = id_hash(self.id(index));
            let mut at = hash as usize & mask;
            while slots[at] != 0 {
                at = (at + 1) & mask;
            }
            slots[at] = (hash >> INDEX_BITS) << INDEX_BITS | (index as u64 + 1);
        }
        self.slots = slots;
    }
}

/// The hash [`SeenIds::check`] takes for `id`: the same on every thread of the process. aHash
/// (SipHash was a fifth of the reading thread's time at a million patients) with keys drawn
/// from std's, which are random per process, so an export cannot be made of ids that collide on
/// purpose.
pub(super) fn id_hash(id: &str) -> u64 {
    static KEYED: OnceLock<ahash::RandomState> = OnceLock::new();
    KEYED.get_or_init(keyed_hasher).hash_one(id)
}

/// aHash with keys drawn from std's, which are random per process, so that keys made to
/// collide (ids, instants) cannot slow a table down; one for every such table in the crate.
pub(crate) fn keyed_hasher() -> ahash::RandomState {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new();
    let key = |n: u64| {
        let mut hasher = random.build_hasher();
        hasher.write_u64(n);
        hasher.finish()
    };
    ahash::RandomState::with_seeds(key(0), key(1), key(2), key(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ids: &mut SeenIds, id: &str, line: usize) -> Option<String> {
        ids.check(id, id_hash(id), line)
    }

    #[test]
    fn each_id_points_at_the_line_it_first_came_on() {
        let mut ids = SeenIds::on_lines();
        assert_eq!(check(&mut ids, "P1", 2), None);
        assert_eq!(check(&mut ids, "P10", 3), None);
        // One id the start of another, and one the end of the one before: the arena's
        // boundaries, not a prefix, decide.
        assert_eq!(check(&mut ids, "P", 4), None);
        assert_eq!(check(&mut ids, "1P", 5), None);
        assert_eq!(
            check(&mut ids, "P1", 6).as_deref(),
            Some("the same id is already on line 2")
        );
        assert_eq!(
            check(&mut ids, "P", 7).as_deref(),
            Some("the same id is already on line 4")
        );
        assert_eq!(
            check(&mut ids, "P10", 8).as_deref(),
            Some("the same id is already on line 3")
        );
        let mut rows = SeenIds::on_rows();
        assert_eq!(check(&mut rows, "患者", 1), None);
        assert_eq!(
            check(&mut rows, "患者", 9).as_deref(),
            Some("the same id is already on row 1")
        );
    }

    /// Many ids, so the table grows many times: every one is still found, at its first line.
    #[test]
    fn ids_are_found_after_the_table_grows() {
        let mut ids = SeenIds::on_lines();
        for n in 0..50_000 {
            assert_eq!(check(&mut ids, &format!("P{n}"), n + 2), None);
        }
        for n in (0..50_000).step_by(997) {
            let again = check(&mut ids, &format!("P{n}"), 1_000_000);
            assert_eq!(
                again,
                Some(format!("the same id is already on line {}", n + 2))
            );
        }
        assert_eq!(ids.firsts.len(), 50_000);
        assert!(ids.slots.len() >= 100_000, "at most half full");
    }

    /// Ids whose hashes share their low bits (the same first slot) and even their tags are
    /// told apart by their text.
    #[test]
    fn ids_in_the_same_slot_are_told_apart() {
        let mut ids = SeenIds::on_lines();
        for (n, id) in ["a", "b", "c", "d"].iter().enumerate() {
            assert_eq!(ids.check(id, 7, n + 2), None);
        }
        assert_eq!(
            ids.check("c", 7, 9).as_deref(),
            Some("the same id is already on line 4")
        );
        assert_eq!(ids.check("e", 7, 10), None);
    }

    #[test]
    fn the_hash_is_the_same_on_every_thread() {
        let here = id_hash("P0000001");
        let there = std::thread::spawn(|| id_hash("P0000001")).join().unwrap();
        assert_eq!(here, there);
        assert_ne!(id_hash("P0000001"), id_hash("P0000002"));
    }
}
