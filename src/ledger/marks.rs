//! What `run` last saw of each patient's booking and visit fields (the rules' `bookings` and
//! `visits`), so that a pass can tell a new booking or a new visit from one it has seen.
//!
//! One row per patient, keyed by the patient's id: a fingerprint of the watched fields' values,
//! a hash of the watched fields' names (in the rules' order), and the values with when each was
//! first seen, packed in the order of those names (see `app::run::observe` for the two
//! layouts). A pass loads the fingerprints once, by a hash of the id (16 bytes a patient, no
//! strings kept), from the log every write here appends to (`mark_log.rs`), and reads or
//! writes the row only for the patients whose fingerprint changed. Keyed by the id, a
//! first pass over an export in id order appends its million rows in key order: keyed by a
//! hash, the same rows landed at random and the pass took four times as long.

use rusqlite::OptionalExtension;

use super::mark_log::{self, patient_hash};
use super::{Ledger, LedgerError};

/// The fingerprints the ledger holds, by patient hash.
///
/// Looked up once per patient per pass, at random: the lookup's cost is its cache misses. A
/// binary search over a million sorted pairs (16 MB) missed at nearly each of its 20 steps and
/// took a sixth of a rerun's time; a directory of where each hash prefix starts still took two
/// misses. An open-addressed table at most half full takes one: the hashes are uniform, so a
/// hash's top bits are its slot, and the pair is there or a slot or two on.
#[derive(Debug, Default)]
pub struct MarkPrints {
    /// (hash, print), hash 0 marking an empty slot; a power of two long, or empty.
    slots: Vec<(u64, u64)>,
    /// How far a hash is shifted right to give its slot.
    shift: u32,
    /// The print of the patient whose hash is 0, which no slot can hold.
    zero: Option<u64>,
    len: usize,
}

impl MarkPrints {
    /// Stores `print` for `patient_hash`; a second print for the same hash replaces the first.
    pub(crate) fn insert(&mut self, patient_hash: u64, print: u64) {
        if patient_hash == 0 {
            self.len += usize::from(self.zero.replace(print).is_none());
            return;
        }
        // At most half full, so that a probe ends within a slot or two.
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut slot = self.home(patient_hash);
        loop {
            match self.slots[slot].0 {
                0 => {
                    self.slots[slot] = (patient_hash, print);
                    self.len += 1;
                    return;
                }
                hash if hash == patient_hash => {
                    self.slots[slot].1 = print;
                    return;
                }
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// The table of `pairs` (a later print for the same hash replacing an earlier one), sized
    /// once for all of them: grown pair by pair, a million patients' table was rebuilt twenty
    /// times on its way, each time into fresh memory.
    pub(crate) fn from_pairs(pairs: Vec<(u64, u64)>) -> MarkPrints {
        let mut prints = MarkPrints::default();
        if !pairs.is_empty() {
            prints.resize((pairs.len() * 2).next_power_of_two().max(16));
        }
        for (hash, print) in pairs {
            prints.insert(hash, print);
        }
        prints
    }

    fn grow(&mut self) {
        self.resize((self.slots.len() * 2).max(16));
    }

    fn resize(&mut self, size: usize) {
        let old = std::mem::replace(&mut self.slots, vec![(0, 0); size]);
        self.shift = 64 - size.trailing_zeros();
        let (zero, len) = (self.zero, self.len);
        self.len = 0;
        for (hash, print) in old.into_iter().filter(|&(hash, _)| hash != 0) {
            self.insert(hash, print);
        }
        (self.zero, self.len) = (zero, len);
    }

    /// The slot a hash belongs in (the table is not empty).
    fn home(&self, patient_hash: u64) -> usize {
        // The shift leaves fewer bits than the table's length has: the value fits usize.
        usize::try_from(patient_hash >> self.shift).unwrap_or(0) & (self.slots.len() - 1)
    }

    /// Asks the processor to bring `patient_hash`'s slot into the cache, without waiting for
    /// it: a rerun's look-up per patient was a cache miss (a million slots are 16 MB), about a
    /// tenth of its time, and a patient's evaluation is long enough to hide it when the slot
    /// is asked for before and read after.
    pub fn prefetch(&self, patient_hash: u64) {
        if patient_hash == 0 || self.slots.is_empty() {
            return;
        }
        let slot = &self.slots[self.home(patient_hash)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE, which `_mm_prefetch` needs, is part of every x86_64; a prefetch reads
        // nothing the program sees and cannot fault, and the address is a slot of the table.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(slot).cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    /// The fingerprint stored for `patient_hash`.
    pub fn get(&self, patient_hash: u64) -> Option<u64> {
        if patient_hash == 0 {
            return self.zero;
        }
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut slot = self.home(patient_hash);
        loop {
            match self.slots[slot] {
                (0, _) => return None,
                (hash, print) if hash == patient_hash => return Some(print),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Every (hash, print) stored, in no particular order.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let zero = self.zero.map(|print| (0, print));
        (self.slots.iter().copied())
            .filter(|&(hash, _)| hash != 0)
            .chain(zero)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One patient's row: which fields it packs (their names' hash) and the packed values (see
/// `app::run::observe` for the layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRow {
    pub fields: u64,
    pub seen: Vec<u8>,
}

/// Rows to write as they are: patients seen for the first time (no fingerprint in the ledger
/// when the pass began), whose rows were built where they were evaluated, so that the pass
/// only hands them to the ledger. Packed in three buffers, not a `String` and a `Vec` a row:
/// a first pass has a row for every patient, and a row built on one thread and freed on
/// another cost both threads' allocators more than building it on the pass's thread did.
#[derive(Debug, Default)]
pub struct NewMarks {
    /// The patients' ids, one after the other.
    ids: String,
    /// The rows' packed values, one after the other.
    seen: Vec<u8>,
    rows: Vec<NewMarkAt>,
}

/// Where a row of [`NewMarks`] ends in its buffers, and its numbers.
#[derive(Debug)]
struct NewMarkAt {
    id_end: usize,
    seen_end: usize,
    print: i64,
    fields: i64,
}

impl NewMarks {
    /// Adds `patient`'s row; `seen` appends its packed values to the buffer it is given.
    pub fn push(
        &mut self,
        patient: &str,
        print: u64,
        fields: u64,
        seen: impl FnOnce(&mut Vec<u8>),
    ) {
        self.ids.push_str(patient);
        seen(&mut self.seen);
        self.rows.push(NewMarkAt {
            id_end: self.ids.len(),
            seen_end: self.seen.len(),
            print: to_sql(print),
            fields: to_sql(fields),
        });
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Each row: the patient, the print, the fields' hash and the packed values, as stored.
    fn rows(&self) -> impl Iterator<Item = (&str, i64, i64, &[u8])> {
        let mut start = (0, 0);
        self.rows.iter().map(move |row| {
            let (id, seen) = (start.0..row.id_end, start.1..row.seen_end);
            start = (row.id_end, row.seen_end);
            (&self.ids[id], row.print, row.fields, &self.seen[seen])
        })
    }

    /// Each row as [`MarkRow`]s are (for ledgers that write them one by one).
    pub fn each(&self) -> impl Iterator<Item = (&str, u64, MarkRow)> {
        self.rows().map(|(patient, print, fields, seen)| {
            let row = MarkRow {
                fields: from_sql(fields),
                seen: seen.to_vec(),
            };
            (patient, from_sql(print), row)
        })
    }
}

/// SQLite integers are signed: the hashes are stored bit for bit.
fn to_sql(bits: u64) -> i64 {
    i64::from_ne_bytes(bits.to_ne_bytes())
}

pub(super) fn from_sql(value: i64) -> u64 {
    u64::from_ne_bytes(value.to_ne_bytes())
}

impl Ledger {
    /// Every patient's fingerprint, by [`patient_hash`] of the patient's id (read from the
    /// fingerprints' log, see `mark_log.rs`).
    pub fn mark_prints(&self) -> Result<MarkPrints, LedgerError> {
        self.write_marks()?;
        self.read_mark_prints()
    }

    /// The row of `patient`.
    pub fn mark_row(&self, patient: &str) -> Result<Option<MarkRow>, LedgerError> {
        self.write_marks()?;
        self.conn
            .prepare_cached("SELECT fields, seen FROM marks WHERE patient = ?1")
            .and_then(|mut select| {
                select
                    .query_row([patient], |row| {
                        Ok(MarkRow {
                            fields: from_sql(row.get(0)?),
                            seen: row.get(1)?,
                        })
                    })
                    .optional()
            })
            .map_err(|e| self.fail(e))
    }

    /// Writes `patient`'s row. In a transaction ([`Ledger::begin`]) the row is written with
    /// others, one statement for [`MARKS_CHUNK`] rows, before anything reads the marks and at
    /// the commit: a first pass writes a row for each of a million patients.
    pub fn set_marks(
        &mut self,
        patient: &str,
        print: u64,
        row: &MarkRow,
    ) -> Result<(), LedgerError> {
        self.marks.get_mut().push(PendingMark {
            patient: patient.to_owned(),
            print: to_sql(print),
            fields: to_sql(row.fields),
            seen: row.seen.clone(),
        });
        if !self.in_batch || self.marks.get_mut().len() >= MARKS_CHUNK {
            self.write_marks()?;
        }
        Ok(())
    }

    /// Writes first sightings' rows (see [`NewMarks`]) after the marks set before them, in
    /// the open transaction if there is one.
    pub fn set_new_marks(&mut self, marks: &NewMarks) -> Result<(), LedgerError> {
        self.write_marks()?;
        self.insert_marks(&marks.rows().collect::<Vec<_>>())
    }

    /// Writes the marks set since the last write, in the order they were set (a later row for
    /// the same patient replaces an earlier one).
    pub(super) fn write_marks(&self) -> Result<(), LedgerError> {
        let pending = std::mem::take(&mut *self.marks.borrow_mut());
        let rows: Vec<_> = (pending.iter())
            .map(|mark| {
                (
                    mark.patient.as_str(),
                    mark.print,
                    mark.fields,
                    &mark.seen[..],
                )
            })
            .collect();
        self.insert_marks(&rows)
    }

    /// Inserts (or replaces) `rows` (patient, print, fields, seen), in their order, and
    /// appends their fingerprints to the log.
    fn insert_marks(&self, rows: &[(&str, i64, i64, &[u8])]) -> Result<(), LedgerError> {
        let pairs: Vec<(u64, u64)> = (rows.iter())
            .map(|&(patient, print, ..)| (patient_hash(patient), from_sql(print)))
            .collect();
        mark_log::append(&self.conn, &pairs).map_err(|e| self.fail(e))?;
        let mut rest = rows;
        while !rest.is_empty() {
            // Chunks of a power of two: a handful of statements, each prepared once.
            let size = MARKS_CHUNK.min(1 << rest.len().ilog2());
            let (chunk, later) = rest.split_at(size);
            rest = later;
            let mut sql =
                String::from("INSERT OR REPLACE INTO marks (patient, print, fields, seen) VALUES ");
            sql.push_str(&vec!["(?, ?, ?, ?)"; size].join(", "));
            let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(size * 4);
            for (patient, print, fields, seen) in chunk {
                values.extend([patient as &dyn rusqlite::ToSql, print, fields, seen]);
            }
            self.conn
                .prepare_cached(&sql)
                .and_then(|mut insert| insert.execute(values.as_slice()))
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }
}

/// The most marks rows written with one statement (four parameters each).
const MARKS_CHUNK: usize = 256;

/// A row [`Ledger::set_marks`] set in the open transaction, not written yet.
#[derive(Debug)]
pub(super) struct PendingMark {
    patient: String,
    print: i64,
    fields: i64,
    seen: Vec<u8>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rows_and_prints_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        let hash = patient_hash;
        assert!(ledger.mark_prints().unwrap().is_empty());
        assert_eq!(ledger.mark_row("P1").unwrap(), None);
        let row = |seen: &[u8]| MarkRow {
            fields: 9,
            seen: seen.to_vec(),
        };
        // The top bit set: stored signed, read back the same.
        ledger.set_marks("P2", u64::MAX - 2, &row(&[1])).unwrap();
        ledger.set_marks("P1", 1, &row(&[1, 2])).unwrap();
        ledger.set_marks("P1", 2, &row(&[3])).unwrap();
        let prints = ledger.mark_prints().unwrap();
        assert_eq!(prints.len(), 2);
        assert_eq!(prints.get(hash("P1")), Some(2));
        assert_eq!(prints.get(hash("P2")), Some(u64::MAX - 2));
        assert_eq!(prints.get(hash("P3")), None);
        assert_eq!(ledger.mark_row("P1").unwrap(), Some(row(&[3])));
    }

    #[test]
    fn marks_set_in_a_transaction_are_written_together_and_read_back_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        let row = |n: u8| MarkRow {
            fields: 9,
            seen: vec![n; 17],
        };
        let hash = patient_hash;
        ledger.begin().unwrap();
        // 300 rows: one chunk of 256 written as it fills, the rest held until read.
        for i in 0..300u64 {
            ledger.set_marks(&format!("P{i}"), i, &row(1)).unwrap();
        }
        // A later row for the same patient replaces the earlier one, in the same chunk.
        ledger.set_marks("P299", 7, &row(2)).unwrap();
        assert_eq!(ledger.mark_row("P299").unwrap(), Some(row(2)));
        ledger.set_marks("P300", 300, &row(3)).unwrap();
        let prints = ledger.mark_prints().unwrap();
        assert_eq!(
            (
                prints.len(),
                prints.get(hash("P299")),
                prints.get(hash("P300"))
            ),
            (301, Some(7), Some(300))
        );
        // Held at the commit are written by it; a rollback drops what it holds.
        ledger.set_marks("P301", 301, &row(4)).unwrap();
        ledger.commit().unwrap();
        ledger.begin().unwrap();
        ledger.set_marks("P302", 302, &row(5)).unwrap();
        ledger.rollback().unwrap();
        drop(ledger);
        let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        assert_eq!(ledger.mark_row("P301").unwrap(), Some(row(4)));
        assert_eq!(ledger.mark_row("P302").unwrap(), None);
        assert_eq!(ledger.mark_prints().unwrap().len(), 302);
    }

    #[test]
    fn new_marks_are_written_after_the_marks_set_before_them_and_kept_by_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let mut ledger = Ledger::open(&path).unwrap();
        let seen = |n: u8| move |buffer: &mut Vec<u8>| buffer.extend([n; 17]);
        let row = |n: u8| MarkRow {
            fields: 9,
            seen: vec![n; 17],
        };
        let hash = patient_hash;
        ledger.begin().unwrap();
        // A row set before, held in the transaction: the batch's row for the same patient
        // comes later and wins.
        ledger.set_marks("P5", 1, &row(9)).unwrap();
        let mut marks = NewMarks::default();
        for i in 0..300u64 {
            marks.push(&format!("P{i}"), u64::MAX - i, 9, seen((i % 256) as u8));
        }
        assert_eq!(marks.len(), 300);
        ledger.set_new_marks(&marks).unwrap();
        assert_eq!(ledger.mark_row("P5").unwrap(), Some(row(5)));
        let mut more = NewMarks::default();
        more.push("P1000", 7, 9, seen(3));
        more.push("P1", 8, 9, seen(4));
        let each: Vec<_> = more.each().collect();
        assert_eq!(each, [("P1000", 7, row(3)), ("P1", 8, row(4))]);
        ledger.set_new_marks(&more).unwrap();
        ledger.commit().unwrap();
        drop(ledger);
        let ledger = Ledger::open(&path).unwrap();
        let prints = ledger.mark_prints().unwrap();
        assert_eq!(prints.len(), 301);
        assert_eq!(prints.get(hash("P0")), Some(u64::MAX));
        assert_eq!(prints.get(hash("P1")), Some(8));
        assert_eq!(ledger.mark_row("P1000").unwrap(), Some(row(3)));
        assert_eq!(
            ledger.mark_row("P299").unwrap(),
            Some(row((299 % 256) as u8))
        );
    }

    #[test]
    fn every_stored_hash_is_found_and_no_other() {
        // Clustered hashes (many in one bucket, empty buckets between) and both ends of the range.
        let mut hashes: Vec<u64> = (0..1000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .chain((0..50).map(|i| (1 << 60) + i))
            .chain([0, 1, u64::MAX, u64::MAX - 1])
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        let mut prints = MarkPrints::default();
        for &hash in &hashes {
            prints.insert(hash, hash ^ 0xFF);
        }
        assert_eq!(prints.len(), hashes.len());
        for &hash in &hashes {
            assert_eq!(prints.get(hash), Some(hash ^ 0xFF), "{hash:#x}");
        }
        for absent in [2, (1 << 60) + 50, u64::MAX - 2, 0x8000_0000_0000_0000] {
            assert_eq!(prints.get(absent), None, "{absent:#x}");
        }
        prints.insert(u64::MAX, 7);
        assert_eq!(
            (prints.get(u64::MAX), prints.len()),
            (Some(7), hashes.len())
        );
        // Hashes whose home is the last slot: the probe wraps round to the first ones.
        let mut last = MarkPrints::default();
        for i in 0..6 {
            last.insert(u64::MAX - i, i);
        }
        assert!((0..6).all(|i| last.get(u64::MAX - i) == Some(i)));
        assert_eq!((last.get(u64::MAX - 6), last.len()), (None, 6));
        // Built at once from the pairs: the same table.
        let pairs: Vec<(u64, u64)> = hashes.iter().map(|&h| (h, h ^ 0xFF)).collect();
        let built = MarkPrints::from_pairs(pairs);
        assert_eq!(built.len(), hashes.len());
        assert!(hashes.iter().all(|&h| built.get(h) == Some(h ^ 0xFF)));
        assert_eq!(built.slots.len(), (hashes.len() * 2).next_power_of_two());
        assert_eq!(built.get(2), None);
        let twice = MarkPrints::from_pairs(vec![(5, 1), (0, 2), (5, 3)]);
        assert_eq!(
            (twice.get(5), twice.get(0), twice.len()),
            (Some(3), Some(2), 2)
        );
        let mut one = MarkPrints::default();
        one.insert(u64::MAX, 3);
        assert_eq!(
            (one.get(u64::MAX), one.get(0), one.get(1)),
            (Some(3), None, None)
        );
        assert_eq!(MarkPrints::default().get(5), None);
    }

    /// Asking for a slot in advance changes no answer, on an empty table, for hash 0 (kept
    /// beside the slots), and for a hash whose home is the last slot.
    #[test]
    fn a_prefetched_slot_answers_as_before() {
        let empty = MarkPrints::default();
        empty.prefetch(5);
        empty.prefetch(0);
        assert_eq!(empty.get(5), None);
        let prints = MarkPrints::from_pairs(vec![(0, 1), (u64::MAX, 2), (7, 3)]);
        for hash in [0, u64::MAX, 7, 8] {
            prints.prefetch(hash);
        }
        assert_eq!(
            [0, u64::MAX, 7, 8].map(|hash| prints.get(hash)),
            [Some(1), Some(2), Some(3), None]
        );
    }
}
