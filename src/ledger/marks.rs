//! What `run` last saw of each patient's booking and visit fields (the rules' `bookings` and
//! `visits`), so that a pass can tell a new booking or a new visit from one it has seen.
//!
//! A row per patient: a fingerprint of the watched fields' values, a hash of the watched
//! fields' names (in the rules' order), and the values with when each was first seen, packed in
//! the order of those names (see `app::run::observe` for the two layouts). A pass loads the
//! fingerprints once, by a hash of the id (16 bytes a patient, no strings kept), from the log
//! every write here appends to (`mark_log.rs`), and reads or writes the row only for the
//! patients whose fingerprint changed. A first sighting's row is not a row of `marks` but one
//! of a pack of them (`mark_packs.rs`, the log saying which); a patient whose fields change
//! later gets a row of `marks`, keyed by the id, which is read first.

use rusqlite::OptionalExtension;

use super::mark_log::{self, patient_hash, Appended};
use super::mark_packs;
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
    /// Beside each slot, the pack its patient's row is in (see `mark_packs.rs`; 0: a row of
    /// its own): apart from the slots, so that the look-up every patient costs reads 16 bytes
    /// a slot, and only a patient whose print changed asks for this. Empty when no patient's
    /// row is packed.
    packs: Vec<u32>,
    /// How far a hash is shifted right to give its slot.
    shift: u32,
    /// The print and pack of the patient whose hash is 0, which no slot can hold.
    zero: Option<(u64, u32)>,
    len: usize,
}

/// A fingerprint as the log keeps it: the patient's hash, the print, and the pack their row
/// is in (0: a row of its own in `marks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Logged {
    pub hash: u64,
    pub print: u64,
    pub pack: u32,
}

impl MarkPrints {
    /// Stores `print` for `patient_hash`; a second print for the same hash replaces the first.
    pub(crate) fn insert(&mut self, patient_hash: u64, print: u64) {
        self.insert_at(Logged {
            hash: patient_hash,
            print,
            pack: 0,
        });
    }

    /// Stores `logged`; a second print for the same hash replaces the first, with its pack.
    pub(super) fn insert_at(&mut self, logged: Logged) {
        let Logged {
            hash: patient_hash,
            print,
            pack,
        } = logged;
        if patient_hash == 0 {
            self.len += usize::from(self.zero.replace((print, pack)).is_none());
            return;
        }
        // At most half full, so that a probe ends within a slot or two.
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        if pack != 0 && self.packs.is_empty() {
            self.packs = crate::zeroed::written(self.slots.len(), 0);
        }
        let mask = self.slots.len() - 1;
        let mut slot = self.home(patient_hash);
        loop {
            match self.slots[slot].0 {
                0 => {
                    self.len += 1;
                    break;
                }
                hash if hash == patient_hash => break,
                _ => slot = (slot + 1) & mask,
            }
        }
        self.set(slot, logged);
    }

    fn set(&mut self, slot: usize, logged: Logged) {
        self.slots[slot] = (logged.hash, logged.print);
        if let Some(pack) = self.packs.get_mut(slot) {
            *pack = logged.pack;
        }
    }

    /// The table of the log's entries (a later print for the same hash replacing an earlier
    /// one), sized once for all of them: grown pair by pair, a million patients' table was
    /// rebuilt twenty times on its way, each time into fresh memory. Inserted in the given
    /// order (grouping the entries by their hash's top bits first, so that the inserts went
    /// front to back, cost a rerun's reader at a million patients more than the cache misses
    /// it saved).
    pub(crate) fn from_logged(logged: Vec<Logged>) -> MarkPrints {
        let mut prints = MarkPrints::with_room(logged.len());
        if logged.iter().any(|entry| entry.pack != 0) {
            prints.packs = crate::zeroed::written(prints.slots.len(), 0);
        }
        for entry in logged {
            prints.insert_at(entry);
        }
        prints
    }

    /// An empty table sized for `count` prints (it grows if given more).
    pub(super) fn with_room(count: usize) -> MarkPrints {
        let mut prints = MarkPrints::default();
        if count > 0 {
            prints.resize((count * 2).next_power_of_two().max(16));
        }
        prints
    }

    /// [`MarkPrints::from_logged`] of rows of their own.
    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: Vec<(u64, u64)>) -> MarkPrints {
        let logged = pairs.into_iter().map(|(hash, print)| Logged {
            hash,
            print,
            pack: 0,
        });
        MarkPrints::from_logged(logged.collect())
    }

    fn grow(&mut self) {
        self.resize((self.slots.len() * 2).max(16));
    }

    fn resize(&mut self, size: usize) {
        let old = std::mem::replace(&mut self.slots, crate::zeroed::written(size, (0, 0)));
        let old_packs = std::mem::take(&mut self.packs);
        if !old_packs.is_empty() {
            self.packs = crate::zeroed::written(size, 0);
        }
        self.shift = 64 - size.trailing_zeros();
        let (zero, len) = (self.zero, self.len);
        self.len = 0;
        for (slot, (hash, print)) in old.into_iter().enumerate() {
            if hash != 0 {
                let pack = old_packs.get(slot).copied().unwrap_or(0);
                self.insert_at(Logged { hash, print, pack });
            }
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
        crate::prefetch::prefetch(&self.slots[self.home(patient_hash)]);
    }

    /// The fingerprint stored for `patient_hash`.
    pub fn get(&self, patient_hash: u64) -> Option<u64> {
        if patient_hash == 0 {
            return self.zero.map(|(print, _)| print);
        }
        self.slot_of(patient_hash).map(|slot| self.slots[slot].1)
    }

    /// The pack `patient_hash`'s row is in (0: a row of its own, or no row).
    pub fn pack_of(&self, patient_hash: u64) -> u32 {
        if patient_hash == 0 {
            return self.zero.map_or(0, |(_, pack)| pack);
        }
        (self.slot_of(patient_hash))
            .and_then(|slot| self.packs.get(slot).copied())
            .unwrap_or(0)
    }

    fn slot_of(&self, patient_hash: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut slot = self.home(patient_hash);
        loop {
            match self.slots[slot].0 {
                0 => return None,
                hash if hash == patient_hash => return Some(slot),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Every (hash, print) stored, in no particular order.
    #[cfg(test)]
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.logged().map(|entry| (entry.hash, entry.print))
    }

    /// Every fingerprint stored with its pack, in no particular order.
    pub(crate) fn logged(&self) -> impl Iterator<Item = Logged> + '_ {
        let zero = (self.zero).map(|(print, pack)| Logged {
            hash: 0,
            print,
            pack,
        });
        (self.slots.iter().enumerate())
            .filter(|&(_, &(hash, _))| hash != 0)
            .map(|(slot, &(hash, print))| Logged {
                hash,
                print,
                pack: self.packs.get(slot).copied().unwrap_or(0),
            })
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

    /// The row of `patient`, its pack looked for in the fingerprints' log (a pass knows it
    /// from its prints and asks [`Ledger::mark_row_at`]).
    pub fn mark_row(&self, patient: &str) -> Result<Option<MarkRow>, LedgerError> {
        let pack = self.read_mark_prints()?.pack_of(patient_hash(patient));
        self.mark_row_at(patient, pack)
    }

    /// The row of `patient`, whose print was logged with `pack` (see `mark_packs.rs`): their
    /// own row in `marks` if they have one (written when their fields changed after they were
    /// packed), else their row in the pack.
    pub fn mark_row_at(&self, patient: &str, pack: u32) -> Result<Option<MarkRow>, LedgerError> {
        self.write_marks()?;
        let own = || {
            self.conn
                .prepare_cached("SELECT fields, seen FROM marks WHERE patient = ?1")?
                .query_row([patient], |row| {
                    Ok(MarkRow {
                        fields: from_sql(row.get(0)?),
                        seen: row.get(1)?,
                    })
                })
                .optional()
        };
        let row = match own() {
            Ok(None) if pack != 0 => mark_packs::find(&self.conn, pack, patient),
            read => read,
        };
        row.map_err(|e| self.fail(e))
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
    /// the open transaction if there is one: packed (see `mark_packs.rs`), their prints
    /// logged with their packs.
    pub fn set_new_marks(&mut self, marks: &NewMarks) -> Result<(), LedgerError> {
        self.write_marks()?;
        let rows: Vec<_> = (marks.rows())
            .map(|(patient, print, fields, seen)| {
                (patient, from_sql(print), from_sql(fields), seen)
            })
            .collect();
        let write = || {
            let logged = mark_packs::write(&self.conn, &rows)?;
            mark_log::append(&self.conn, &logged, Appended::New)
        };
        write().map_err(|e| self.fail(e))
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
        let pairs: Vec<Logged> = (rows.iter())
            .map(|&(patient, print, ..)| Logged {
                hash: patient_hash(patient),
                print: from_sql(print),
                pack: 0,
            })
            .collect();
        mark_log::append(&self.conn, &pairs, Appended::Known).map_err(|e| self.fail(e))?;
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
#[path = "marks_tests.rs"]
mod tests;
