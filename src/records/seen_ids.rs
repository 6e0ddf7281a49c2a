//! The ids met so far in one export, to catch a patient exported twice. At a million patients
//! this map was the largest part of the reading thread: a `String` per id (allocated, then
//! freed at the end, each on its own) and the id hashed where the rows are checked in file
//! order. Here every new id is appended to one buffer, the table holds only where each starts,
//! and the hash is computed by whoever typed the row ([`id_hash`]), on any thread.

use std::sync::OnceLock;

use hashbrown::HashTable;

/// The ids met so far in one file, checked in file order.
pub(super) struct SeenIds {
    /// Every id met, one after another.
    text: String,
    /// For the `n`th id met: where it starts in `text` and the line it first appeared on (it
    /// ends where the next one starts).
    firsts: Vec<(usize, usize)>,
    /// Each id's hash and its index in `firsts`; grows with the patients, nothing else does.
    table: HashTable<(u64, usize)>,
    /// What `line` counts, in messages that point at another row: "line" or "row".
    unit: &'static str,
}

impl SeenIds {
    pub(super) fn on_lines() -> Self {
        SeenIds {
            text: String::new(),
            firsts: Vec::new(),
            table: HashTable::new(),
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
        let found = self.table.find(hash, |&(_, index)| self.id(index) == id);
        if let Some(&(_, index)) = found {
            let first = self.firsts[index].1;
            return Some(format!("the same id is already on {} {first}", self.unit));
        }
        let index = self.firsts.len();
        self.firsts.push((self.text.len(), line));
        self.text.push_str(id);
        // Moving an entry when the table grows needs its hash: it is kept with the entry.
        self.table
            .insert_unique(hash, (hash, index), |&(hash, _)| hash);
        None
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

fn keyed_hasher() -> ahash::RandomState {
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
    }

    #[test]
    fn the_hash_is_the_same_on_every_thread() {
        let here = id_hash("P0000001");
        let there = std::thread::spawn(|| id_hash("P0000001")).join().unwrap();
        assert_eq!(here, there);
        assert_ne!(id_hash("P0000001"), id_hash("P0000002"));
    }
}
