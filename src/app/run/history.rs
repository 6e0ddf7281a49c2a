//! What the ledger says went out already, read once per pass: the sends that can still matter
//! at `now` (not expired, or within a cap's reach), by patient. One indexed read instead of a
//! query per patient keeps a pass linear in patients however long the ledger's history is.
//!
//! A rerun builds this before its first patient is evaluated, for a few hundred thousand
//! sends, so it is kept compact: every send in one array grouped by patient, each patient
//! once (their id in one shared string), and a map from a patient's id hash to them. Building
//! it allocates only to grow those arrays, never a string or a vector per patient or send. A
//! hash never stands for the id: two patients whose ids hash the same are both kept, each in
//! a slot of their own, and a look-up compares the id itself, so no patient is given another's
//! sends.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};

use crate::app::AppError;
use crate::eval::SentBefore;
use crate::ledger::{LedgerError, RecentSend, RunLedger, SendsReader, SinkKind};
use crate::plan::TimingPlan;
use crate::records::keyed_hasher;

/// A pass's sent history, read on a thread of its own while the pass reads what else it needs
/// and the export's first rows are typed (~700 M instructions at a million patients, serial
/// before). The first evaluation waits for it. A failed read gives no history at all: the
/// evaluation then evaluates no one, and the pass stops with the read's error before its
/// first batch ([`PassHistory::check`]), so no send is claimed as if nothing had been sent.
#[derive(Debug)]
pub(super) struct PassHistory {
    read: OnceLock<Result<SentHistory, Failed>>,
    /// Taken by the first to wait; a pass that fails before that joins on drop, so that no
    /// reader outlives its pass (`--every` runs passes for months).
    reading: Mutex<Option<JoinHandle<Result<SentHistory, LedgerError>>>>,
}

/// Why the history could not be read; the error is handed to the first to ask.
#[derive(Debug)]
struct Failed(Mutex<Option<LedgerError>>);

impl PassHistory {
    /// Begins reading the history of `sink` at `now`: beside the caller where the ledger
    /// offers a reader of its own (SQLite), else here. To be called after anything the pass
    /// changes in the sent rows before its first batch (the outbox's crash recovery): the
    /// reader sees the ledger as last committed.
    pub fn start(
        ledger: &dyn RunLedger,
        sink: SinkKind,
        plan: &TimingPlan,
        now: DateTime<Utc>,
    ) -> Result<PassHistory, LedgerError> {
        if let Some(reader) = ledger.sends_reader() {
            let steps = steps_of(plan);
            let reading = std::thread::Builder::new()
                .name("sent-history".into())
                .spawn(move || SentHistory::read(&reader, sink, now, steps));
            // No thread: read here, as before.
            if let Ok(handle) = reading {
                return Ok(PassHistory {
                    read: OnceLock::new(),
                    reading: Mutex::new(Some(handle)),
                });
            }
        }
        let history = SentHistory::load(ledger, sink, plan, now)?;
        Ok(PassHistory::ready(history))
    }

    /// A history read already.
    pub fn ready(history: SentHistory) -> PassHistory {
        PassHistory {
            read: OnceLock::from(Ok(history)),
            reading: Mutex::new(None),
        }
    }

    /// The history, once read (the first caller waits for the reader, the others for the
    /// first); `None` when the read failed.
    pub fn get(&self) -> Option<&SentHistory> {
        let read = self.read.get_or_init(|| {
            let handle = (self.reading.lock())
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            match handle.map(JoinHandle::join) {
                Some(Ok(read)) => read.map_err(|e| Failed(Mutex::new(Some(e)))),
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                // Only a reader that panicked leaves no handle and nothing read.
                None => Err(Failed(Mutex::new(None))),
            }
        });
        read.as_ref().ok()
    }

    /// The history if it is read already, without waiting for it.
    pub fn if_read(&self) -> Option<&SentHistory> {
        self.read.get().and_then(|read| read.as_ref().ok())
    }

    /// The read's error, once it is done, for the pass to stop with before it claims
    /// anything.
    pub fn check(&self) -> Result<(), AppError> {
        if self.get().is_some() {
            return Ok(());
        }
        let taken = match self.read.get() {
            Some(Err(Failed(error))) => (error.lock())
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
            _ => None,
        };
        Err(match taken {
            Some(error) => AppError::Ledger(error),
            // Given to an earlier caller already: the pass stops all the same.
            None => AppError::Io(std::io::Error::other(
                "the ledger's sent history could not be read",
            )),
        })
    }
}

impl Drop for PassHistory {
    fn drop(&mut self) {
        let handle = self.reading.get_mut();
        if let Some(handle) = handle.unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
    }
}

/// One patient with sends: where their id ends in `ids` and where their sends end in `sends`
/// (each starts where the previous patient's ends).
#[derive(Debug, Clone, Copy)]
struct Patient {
    id_end: usize,
    sends_end: usize,
}

#[derive(Debug)]
pub(super) struct SentHistory {
    hasher: ahash::RandomState,
    by_hash: Slots,
    patients: Vec<Patient>,
    /// Every patient's id, one after another.
    ids: String,
    /// Every send, the first patient's first.
    sends: Vec<SentBefore>,
}

/// The patients by the hash of their id, open addressing: a slot per patient (the hash and
/// the patient's index + 1, 0 for an empty slot), at most half full, so that a hash's top bits
/// are its first slot and the patient is there or a slot or two on. Unlike a map's, the slot
/// can be asked into the cache ahead of the look-up ([`SentHistory::prefetch`]): at a million
/// patients the look-up was a cache miss each, about 5% of a rerun.
#[derive(Debug)]
struct Slots {
    slots: Vec<(u64, usize)>,
    /// How far a hash is shifted right to give its first slot.
    shift: u32,
}

impl Slots {
    /// The fewest slots: a shift of 60 bits at most.
    const LEAST: usize = 16;

    fn new() -> Slots {
        Slots {
            slots: crate::zeroed::written(Slots::LEAST, (0, 0)),
            shift: 64 - Slots::LEAST.trailing_zeros(),
        }
    }

    fn first_slot(&self, hash: u64) -> usize {
        // The shift leaves as many bits as the length has: the value fits usize.
        usize::try_from(hash >> self.shift).unwrap_or(0) & (self.slots.len() - 1)
    }

    /// The patients whose ids hash to `hash`, in their slots' order, the first found first.
    fn with_hash(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let mask = self.slots.len() - 1;
        let mut at = self.first_slot(hash);
        std::iter::from_fn(move || loop {
            let (slot_hash, patient) = self.slots[at];
            let index = patient.checked_sub(1)?;
            at = (at + 1) & mask;
            if slot_hash == hash {
                return Some(index);
            }
        })
    }

    /// Puts patient `index`, the next after those in already, in the first free slot from
    /// `hash`'s, with room made first: at most half the slots are taken, so every probe ends
    /// soon at a free one.
    fn insert(&mut self, hash: u64, index: usize) {
        if index.saturating_add(1).saturating_mul(2) > self.slots.len() {
            self.grow();
        }
        self.put(hash, index.saturating_add(1));
    }

    fn put(&mut self, hash: u64, patient: usize) {
        let mask = self.slots.len() - 1;
        let mut at = self.first_slot(hash);
        while self.slots[at].1 != 0 {
            at = (at + 1) & mask;
        }
        self.slots[at] = (hash, patient);
    }

    fn grow(&mut self) {
        let len = self.slots.len().saturating_mul(2);
        // Written, not only mapped: each slot is read before it is written (see `zeroed`).
        let old = std::mem::replace(&mut self.slots, crate::zeroed::written(len, (0, 0)));
        self.shift = 64 - len.trailing_zeros();
        for (hash, patient) in old.into_iter().filter(|&(_, patient)| patient != 0) {
            self.put(hash, patient);
        }
    }

    fn prefetch(&self, hash: u64) {
        crate::prefetch::prefetch(&self.slots[self.first_slot(hash)]);
    }
}

impl SentHistory {
    pub(super) fn load(
        ledger: &dyn RunLedger,
        sink: SinkKind,
        plan: &TimingPlan,
        now: DateTime<Utc>,
    ) -> Result<SentHistory, LedgerError> {
        SentHistory::build(steps_of(plan), |add| ledger.recent_sends(sink, now, add))
    }

    /// [`SentHistory::load`] through a reader of its own.
    fn read(
        reader: &SendsReader,
        sink: SinkKind,
        now: DateTime<Utc>,
        steps: Steps,
    ) -> Result<SentHistory, LedgerError> {
        SentHistory::build(steps, |add| reader.recent_sends(sink, now, add))
    }

    /// The history of the sends `read` gives, in whatever order.
    fn build(
        steps: Steps,
        read: impl FnOnce(&mut dyn FnMut(RecentSend<'_>)) -> Result<(), LedgerError>,
    ) -> Result<SentHistory, LedgerError> {
        let hasher = keyed_hasher();
        let hash = |id: &str| hasher.hash_one(id);
        let mut building = Building::new(steps, &hash);
        read(&mut |send| building.add(&send))?;
        Ok(building.finish(hasher.clone()))
    }

    pub(super) fn of(&self, patient: &str) -> &[SentBefore] {
        self.of_hashed(patient, self.hasher.hash_one(patient))
    }

    /// Asks the processor for the slot [`Self::of`] will read first for `patient`, without
    /// waiting: the typing of the next row hides the wait (see `RowWork::ahead`).
    pub(super) fn prefetch(&self, patient: &str) {
        self.by_hash.prefetch(self.hasher.hash_one(patient));
    }

    fn of_hashed(&self, patient: &str, hash: u64) -> &[SentBefore] {
        let Some(at) = (self.by_hash.with_hash(hash)).find(|&at| self.id(at) == patient) else {
            return &[];
        };
        let start = at
            .checked_sub(1)
            .map_or(0, |before| self.patients[before].sends_end);
        &self.sends[start..self.patients[at].sends_end]
    }

    fn id(&self, index: usize) -> &str {
        id_of(&self.patients, &self.ids, index)
    }
}

/// The id of patient `index`: from the end of the one before to theirs.
fn id_of<'i>(patients: &[Patient], ids: &'i str, index: usize) -> &'i str {
    let start = index
        .checked_sub(1)
        .map_or(0, |before| patients[before].id_end);
    &ids[start..patients[index].id_end]
}

/// Step ids to indexes: a step renamed or removed since is not in it and no longer has a say.
/// Owned, so that a reader on a thread of its own can hold it.
type Steps = HashMap<Box<str>, usize, ahash::RandomState>;

fn steps_of(plan: &TimingPlan) -> Steps {
    let mut steps = HashMap::with_hasher(keyed_hasher());
    steps.extend(
        plan.steps
            .iter()
            .map(|s| (Box::from(s.id.as_str()), s.index)),
    );
    steps
}

/// A history as its sends come, in the ledger's order (not by patient).
struct Building<H> {
    hash: H,
    steps: Steps,
    by_hash: Slots,
    /// Each patient's id end (`sends_end` is filled at the end).
    patients: Vec<Patient>,
    ids: String,
    /// Each send with the index of its patient.
    sends: Vec<(usize, SentBefore)>,
}

impl<H: Fn(&str) -> u64> Building<H> {
    fn new(steps: Steps, hash: H) -> Self {
        Building {
            hash,
            steps,
            by_hash: Slots::new(),
            patients: Vec::new(),
            ids: String::new(),
            sends: Vec::new(),
        }
    }

    fn add(&mut self, send: &RecentSend<'_>) {
        let Some(&step) = self.steps.get(send.step) else {
            return;
        };
        let patient = self.patient(send.patient);
        self.sends.push((
            patient,
            SentBefore {
                step,
                occurrence: send.occurrence,
                at: send.sent_at,
            },
        ));
    }

    /// The index of `id`'s patient, added if new.
    fn patient(&mut self, id: &str) -> usize {
        let hash = (self.hash)(id);
        let (patients, ids) = (&self.patients, &self.ids);
        let found = (self.by_hash.with_hash(hash)).find(|&at| id_of(patients, ids, at) == id);
        if let Some(at) = found {
            return at;
        }
        let new = self.patients.len();
        self.by_hash.insert(hash, new);
        self.ids.push_str(id);
        self.patients.push(Patient {
            id_end: self.ids.len(),
            sends_end: 0,
        });
        new
    }

    /// The sends grouped by patient (a counting sort: two passes, no comparisons), each
    /// patient's in the order the ledger gave them.
    fn finish(self, hasher: ahash::RandomState) -> SentHistory {
        let Building {
            by_hash,
            mut patients,
            ids,
            sends: unordered,
            ..
        } = self;
        for (patient, _) in &unordered {
            patients[*patient].sends_end += 1;
        }
        let mut end = 0;
        for patient in &mut patients {
            end += patient.sends_end;
            patient.sends_end = end;
        }
        // Filled back to front from each patient's end, so their order is kept.
        let mut sends = vec![
            SentBefore {
                step: 0,
                occurrence: DateTime::UNIX_EPOCH,
                at: DateTime::UNIX_EPOCH,
            };
            unordered.len()
        ];
        let mut next: Vec<usize> = patients.iter().map(|p| p.sends_end).collect();
        for &(patient, send) in unordered.iter().rev() {
            let slot = &mut next[patient];
            *slot -= 1;
            sends[*slot] = send;
        }
        SentHistory {
            hasher,
            by_hash,
            patients,
            ids,
            sends,
        }
    }
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
