//! The fingerprints in the order the log wrote them, looked up where a patient's entry is
//! expected to be.
//!
//! A pass meets the export's patients in the export's order, and the log holds a first pass's
//! prints in that same order (a first sighting is logged as its patient is evaluated). A
//! rerun over the same export, or over one that only grew or shrank here and there, finds
//! nearly every patient's entry at their line, or a place or two from where the last one was:
//! a read in order, which the processor fetches ahead. Looked up by hash instead, each patient
//! was a read at random in a table of 40 MB at a million patients (a miss in the cache and in
//! the TLB: 17% of the samples of a patient's work in a rerun fell on its wait), and the table
//! took a write at random per patient to fill before the first patient could be looked at.
//!
//! Which entry is a patient's latest: a hash's first entry is a first sighting, logged only for
//! a hash the log did not hold, with the pack its row is in; every later entry for it is a row
//! of its own (pack 0, see `marks.rs`). So an entry found where it was expected is the latest
//! unless a later entry of a row of its own has its hash, and those are kept by hash apart (few:
//! patients whose fields changed since they were first seen; a log where they are many is
//! looked up by hash as before, see [`PassPrints::of_log`]). Two ids whose 64-bit hashes are
//! the same are two patients the table by hash takes for one; found where expected, each gets
//! their own print here, so at most such a pair is compared with the marks one pass less.
//!
//! A patient not found near their place is either new (no entry) or moved in the export; a
//! bit per hash's low bits says "new" for all but a few percent of those, and only the rest
//! build the table by hash, once per pass.

use std::sync::OnceLock;

use super::marks::{Logged, MarkPrints};

/// The fingerprints as a pass looks them up: by hash (a table, from PostgreSQL or a log that
/// could not be read), or in the log's order.
#[derive(Debug)]
pub enum PassPrints {
    ByHash(MarkPrints),
    InLogOrder(LoggedPrints),
}

/// Where a looking thread expects its next patient's entry: their line plus the offset at
/// which it found the last one. Each thread keeps its own: the export's rows come to the
/// threads in blocks, each block in the file's order.
#[derive(Debug, Clone, Copy)]
pub struct Near {
    offset: i64,
}

impl Default for Near {
    /// A CSV export's first patient is on line 2 (after the header), and the log's first
    /// entry is theirs. Other sources find their offset at their first patient.
    fn default() -> Near {
        Near { offset: -2 }
    }
}

/// How far either side of the expected place an entry is looked for before the hash decides:
/// a patient added to or removed from the export moves the ones after it by one.
const NEAR_BY: [i64; 5] = [0, -1, 1, -2, 2];

/// Bits in the "may hold" set per entry: a hash absent from the log finds its bit set with a
/// chance of about 1 in 32.
const BITS_PER_ENTRY: usize = 32;

/// The most bits that set takes (16 MiB), whatever the log's length.
const MOST_BITS: usize = 1 << 27;

/// Rows of their own beyond which the log is looked up by hash after all (an eighth of its
/// entries). A patient found in place is also looked for among those rows, by hash: a ledger
/// whose patients' fields changed over years holds nearly one a patient, and its look-ups
/// would be at random again, now beside the reads in order.
const OWN_ROWS_AT_MOST: usize = 8;

impl PassPrints {
    /// The log's entries (in the order written) as a pass looks them up: in that order, unless
    /// more than an eighth of them are rows of their own.
    pub(super) fn of_log(entries: Vec<Logged>) -> PassPrints {
        let own_rows = entries.iter().filter(|entry| entry.pack == 0).count();
        if own_rows > entries.len() / OWN_ROWS_AT_MOST {
            return PassPrints::ByHash(MarkPrints::from_logged(entries));
        }
        PassPrints::InLogOrder(LoggedPrints::new(entries))
    }

    /// The print stored for `hash` (the patient on `line`), `near` being the caller's own.
    pub fn print_of(&self, hash: u64, line: usize, near: &mut Near) -> Option<u64> {
        match self {
            PassPrints::ByHash(prints) => prints.get(hash),
            PassPrints::InLogOrder(prints) => prints.find(hash, line, near).map(|(print, _)| print),
        }
    }

    /// The pack the patient's row is in (0: a row of its own, or none), asked only for a
    /// patient whose print changed: by hash, the packs are a table of their own, and reading
    /// it for every patient would be a second miss each.
    pub fn pack_of(&self, hash: u64, line: usize, near: &mut Near) -> u32 {
        match self {
            PassPrints::ByHash(prints) => prints.pack_of(hash),
            PassPrints::InLogOrder(prints) => {
                prints.find(hash, line, near).map_or(0, |(_, pack)| pack)
            }
        }
    }

    /// The same prints as a table by hash: what [`MarkPrints::from_logged`] makes of the log.
    #[cfg(test)]
    pub(crate) fn into_by_hash(self) -> MarkPrints {
        match self {
            PassPrints::ByHash(prints) => prints,
            PassPrints::InLogOrder(prints) => MarkPrints::from_logged(prints.entries),
        }
    }

    /// Asks for the slot `hash` will be looked up in, where there is one to ask for (see
    /// [`MarkPrints::prefetch`]); the log's order needs none.
    pub fn prefetch(&self, hash: u64) {
        if let PassPrints::ByHash(prints) = self {
            prints.prefetch(hash);
        }
    }
}

/// The log's entries in the order written (see the module's notes).
#[derive(Debug)]
pub struct LoggedPrints {
    entries: Vec<Logged>,
    /// The entries of rows of their own (pack 0), by hash: the index of the latest, as its
    /// print. Empty when there are none (a log written by first sightings alone).
    own_rows: MarkPrints,
    /// A bit per hash's low bits, set for every entry's hash: a clear bit means no entry.
    may_hold: Vec<u64>,
    /// Every entry by hash, the index of the latest as its print: built the first time a
    /// patient is neither near their place nor ruled out by `may_hold`.
    by_hash: OnceLock<MarkPrints>,
}

impl LoggedPrints {
    pub(super) fn new(entries: Vec<Logged>) -> LoggedPrints {
        let mut own_rows = MarkPrints::default();
        let bits = (entries.len().saturating_mul(BITS_PER_ENTRY))
            .clamp(64, MOST_BITS)
            .next_power_of_two();
        let mut may_hold = crate::zeroed::written(bits / 64, 0u64);
        for (index, entry) in entries.iter().enumerate() {
            if entry.pack == 0 {
                own_rows.insert(entry.hash, index as u64);
            }
            let bit = bit_of(entry.hash, bits);
            may_hold[bit / 64] |= 1 << (bit % 64);
        }
        LoggedPrints {
            entries,
            own_rows,
            may_hold,
            by_hash: OnceLock::new(),
        }
    }

    fn find(&self, hash: u64, line: usize, near: &mut Near) -> Option<(u64, u32)> {
        let line = i64::try_from(line).unwrap_or(i64::MAX);
        let expected = line.saturating_add(near.offset);
        for step in NEAR_BY {
            let Some(at) = (expected.checked_add(step)).and_then(|at| usize::try_from(at).ok())
            else {
                continue;
            };
            if self.entries.get(at).is_some_and(|entry| entry.hash == hash) {
                near.offset = index_offset(at, line);
                return Some(self.latest(at));
            }
        }
        let bit = bit_of(hash, self.may_hold.len() * 64);
        if self.may_hold[bit / 64] & (1 << (bit % 64)) == 0 {
            return None;
        }
        let at = usize::try_from(self.by_hash().get(hash)?).ok()?;
        near.offset = index_offset(at, line);
        Some(self.latest(at))
    }

    /// The latest entry for the hash of the entry at `at`, as (print, pack).
    fn latest(&self, at: usize) -> (u64, u32) {
        let hash = self.entries[at].hash;
        let own = (self.own_rows.get(hash)).and_then(|own| usize::try_from(own).ok());
        let latest = &self.entries[own.filter(|&own| own > at).unwrap_or(at)];
        (latest.print, latest.pack)
    }

    fn by_hash(&self) -> &MarkPrints {
        self.by_hash.get_or_init(|| {
            let mut by_hash = MarkPrints::with_room(self.entries.len());
            for (index, entry) in self.entries.iter().enumerate() {
                by_hash.insert(entry.hash, index as u64);
            }
            by_hash
        })
    }

    /// Whether the table by hash was built (for tests of when it is).
    #[cfg(test)]
    fn built_by_hash(&self) -> bool {
        self.by_hash.get().is_some()
    }
}

/// Which of `bits` bits (a power of two) stands for `hash`.
fn bit_of(hash: u64, bits: usize) -> usize {
    // `bits` fits usize, so the masked hash does too.
    usize::try_from(hash & (bits as u64 - 1)).unwrap_or(0)
}

/// The offset that takes `line` to the entry at `at`.
fn index_offset(at: usize, line: i64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX).saturating_sub(line)
}

#[cfg(test)]
#[path = "mark_order_tests.rs"]
mod tests;
