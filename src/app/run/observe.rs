//! Bookings and visits seen in the export, for `report`: every pass compares each patient's
//! booking and visit fields (the rules' `bookings` and `visits`) with what the ledger saw last
//! and records a `booked` event when a booking moves to a new future instant, a `revisited`
//! event when a visit moves forward. Which step brought the patient back is `report`'s work.
//!
//! A million patients every few minutes: the evaluating thread compares a 64-bit fingerprint
//! of each patient's fields with the one the ledger holds (loaded once per pass, in the order
//! the log wrote them, and looked for where the export's order puts the patient: see
//! `ledger/mark_order.rs`) and hands only the patients whose fingerprint changed to the pass, which reads and
//! writes their exact marks by primary key in its batches (the ledger's one writer). A patient
//! the ledger has no fingerprint for is seen for the first time: no event can come of it and
//! no row needs reading, so their row is built whole before the pass (packed with the other
//! rows of their batch, see `NewMarks`) and the pass only writes it (a first pass sees every
//! patient so; building the rows on the pass's thread was a fifth of its work).
//!
//! Event ids are made of the kind, the field, the new value and the patient, so a value seen
//! again (a rerun over the same export, a booking that moves back and forth) is recorded once.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::report::RunSummary;
use crate::app::AppError;
use crate::ledger::{
    event_stamp, hash64, patient_hash, EventKind, Fnv, MarkRow, Near, NewEvent, NewMarks,
    PassPrints, PrintsBeside, RunLedger,
};
use crate::plan::TimingPlan;
use crate::records::PatientRecord;

/// A watched field: a booking or a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Watched {
    Booking,
    Visit,
}

/// What a pass watches: the fields, in the rules' order, and a hash of their names.
#[derive(Debug)]
pub(super) struct Watch {
    /// (index into the record's dates, field name, what it holds)
    fields: Vec<(usize, String, Watched)>,
    booked_at: Option<usize>,
    /// Changes when the rules watch other fields, so that a field newly watched is not taken
    /// for one that was empty.
    names_hash: u64,
}

/// The watch and the fingerprints the ledger holds, for one pass.
pub(super) struct Observer {
    watch: Arc<Watch>,
    prints: PassPrints,
    /// The pass's instant: when a first sighting saw each field.
    now: DateTime<Utc>,
}

/// What looking at a patient found.
#[derive(Debug)]
pub(super) enum Look {
    /// Their fields are as the ledger saw them last.
    Same,
    /// Their fingerprint changed: the pass compares their fields with their marks.
    Changed(Observation),
    /// The ledger has no fingerprint for them: their fingerprint, for
    /// [`Observer::first_sighting`].
    First(u64),
}

/// A patient whose fingerprint changed: what the pass compares and records.
#[derive(Debug)]
pub(super) struct Observation {
    watch: Arc<Watch>,
    patient: String,
    print: u64,
    /// Where the ledger's prints say their row is ([`crate::ledger::MarkPrints::pack_of`]).
    pack: u32,
    /// The watched fields' values, in the watch's order.
    values: Vec<Option<DateTime<Utc>>>,
    booked_at: Option<DateTime<Utc>>,
}

/// What the ledger knew of a field before this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Previous {
    /// The patient or the field was not watched before: nothing is known to be new.
    Unknown,
    Empty,
    Seen {
        value: DateTime<Utc>,
        seen_at: DateTime<Utc>,
    },
}

/// What comparing one field gives: an event (at its instant) and whether the mark changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Verdict {
    pub event: Option<DateTime<Utc>>,
    pub remark: bool,
}

impl Watch {
    fn new(plan: &TimingPlan) -> Option<Watch> {
        let observed = &plan.observed;
        if observed.is_empty() {
            return None;
        }
        let name = |index: usize| plan.schema.date_fields[index].clone();
        let fields: Vec<(usize, String, Watched)> = (observed.bookings.iter())
            .map(|&i| (i, name(i), Watched::Booking))
            .chain(
                observed
                    .visits
                    .iter()
                    .map(|&i| (i, name(i), Watched::Visit)),
            )
            .collect();
        let names: Vec<&[u8]> = fields.iter().map(|(_, name, _)| name.as_bytes()).collect();
        let kinds: Vec<u8> = fields.iter().map(|f| f.2 as u8).collect();
        let names_hash = hash64(&[&hash64(&names).to_le_bytes(), &kinds]);
        Some(Watch {
            fields,
            booked_at: observed.booked_at,
            names_hash,
        })
    }
}

/// An observer whose fingerprints are being read beside the rest of the pass's start (see
/// [`Observer::start`]).
pub(super) struct Preparing {
    watch: Watch,
    /// `None`: read on the pass's connection when ready (PostgreSQL).
    beside: Option<PrintsBeside>,
}

impl Preparing {
    /// The observer, once its fingerprints are in.
    pub fn ready(self, ledger: &dyn RunLedger, now: DateTime<Utc>) -> Result<Observer, AppError> {
        let prints = match self.beside.map(PrintsBeside::wait).transpose()?.flatten() {
            Some(prints) => prints,
            None => PassPrints::ByHash(ledger.mark_prints()?),
        };
        Ok(Observer {
            watch: Arc::new(self.watch),
            prints,
            now,
        })
    }
}

impl Observer {
    /// The observer of a pass, when the rules watch bookings or visits and the pass may write
    /// (a dry run observes nothing: a later real pass sees the same changes).
    #[cfg(test)]
    pub fn prepare(
        plan: &TimingPlan,
        dry_run: bool,
        ledger: &dyn RunLedger,
        now: DateTime<Utc>,
    ) -> Result<Option<Observer>, AppError> {
        (Observer::start(plan, dry_run, ledger)?)
            .map(|preparing| preparing.ready(ledger, now))
            .transpose()
    }

    /// [`Observer::prepare`] begun: the fingerprints (a scan of the whole `marks` table, the
    /// largest part of a rerun's start) are read on a thread of their own where the ledger
    /// allows it, while the pass reads what it needs to evaluate.
    pub fn start(
        plan: &TimingPlan,
        dry_run: bool,
        ledger: &dyn RunLedger,
    ) -> Result<Option<Preparing>, AppError> {
        let Some(watch) = Watch::new(plan).filter(|_| !dry_run) else {
            return Ok(None);
        };
        Ok(Some(Preparing {
            watch,
            beside: ledger.mark_prints_beside()?,
        }))
    }

    /// The patient's hash, with their fingerprint's slot asked into the cache: work done
    /// between this and [`Self::look_hashed`] hides the cache miss the look-up would wait on.
    pub fn prefetch(&self, patient: &PatientRecord) -> u64 {
        let hash = patient_hash(&patient.id);
        self.prints.prefetch(hash);
        hash
    }

    /// [`Self::look_near`] for a caller that keeps no place of its own.
    #[cfg(test)]
    pub fn look_hashed(&self, patient: &PatientRecord, hash: u64) -> Look {
        self.look_near(patient, hash, &mut Near::default())
    }

    /// How the patient's fields compare with what the ledger holds, `hash` being theirs from
    /// [`Self::prefetch`] and `near` where the calling thread found the last patient's.
    pub fn look_near(&self, patient: &PatientRecord, hash: u64, near: &mut Near) -> Look {
        // Most patients are as the ledger saw them: nothing is gathered or copied for them.
        let value = |index: usize| patient.dates.get(index).copied().flatten();
        let print = fingerprint(
            self.watch.fields.iter().map(|&(index, ..)| value(index)),
            self.watch.names_hash,
        );
        let values = self.watch.fields.iter().map(|&(index, ..)| value(index));
        match self.prints.print_of(hash, patient.line, near) {
            Some(stored) if stored == print => Look::Same,
            Some(_) => Look::Changed(Observation {
                watch: self.watch.clone(),
                patient: patient.id.clone(),
                print,
                pack: self.prints.pack_of(hash, patient.line, near),
                values: values.collect(),
                booked_at: self.watch.booked_at.and_then(value),
            }),
            None => Look::First(print),
        }
    }

    /// Adds the row of `patient`, seen for the first time with the fingerprint `print`, to
    /// `marks`: what `record` comes to for a patient it knows nothing of (no event, a field
    /// first seen is not news; each field set marked as seen now), without a row to read.
    pub fn first_sighting(&self, patient: &PatientRecord, print: u64, marks: &mut NewMarks) {
        let value = |index: usize| patient.dates.get(index).copied().flatten();
        let seen =
            (self.watch.fields.iter()).map(|&(index, ..)| value(index).map(|v| (v, self.now)));
        marks.push(&patient.id, print, self.watch.names_hash, |buffer| {
            pack_into(seen, buffer)
        });
    }
}

fn fingerprint(values: impl Iterator<Item = Option<DateTime<Utc>>>, names_hash: u64) -> u64 {
    let mut hash = Fnv::new();
    for value in values {
        let mut bytes = [0; 9];
        if let Some(at) = value {
            bytes[0] = 1;
            bytes[1..].copy_from_slice(&at.timestamp_millis().to_le_bytes());
        }
        hash.part(&bytes);
    }
    hash.part(&names_hash.to_le_bytes());
    hash.finish()
}

/// Compares one field with what the ledger knew. A booking that moves to a new future instant
/// is `booked`: at `booked_at` when the export says when it was made (not in the future, and
/// not before the old value was seen: that would be an older booking's), else at `now`. A
/// visit that moves forward, to an instant not after `now`, is `revisited` at that instant (a
/// future visit is a booking in the wrong column, or a typo). Anything else only moves the
/// mark. An emptied field keeps its last value as the mark: an export that lost the column
/// (every cell empty) must not make every booking look new when the column comes back.
pub(super) fn compare(
    watched: Watched,
    previous: Previous,
    current: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    booked_at: Option<DateTime<Utc>>,
) -> Verdict {
    let (old, seen_at) = match previous {
        Previous::Seen { value, seen_at } => (Some(value), Some(seen_at)),
        Previous::Empty | Previous::Unknown => (None, None),
    };
    let remark = current.is_some() && current != old;
    let Some(new) = current.filter(|_| remark && previous != Previous::Unknown) else {
        return Verdict {
            event: None,
            remark,
        };
    };
    let event = match watched {
        Watched::Booking if new > now => Some(
            booked_at
                .filter(|&made| made <= now && seen_at.is_none_or(|seen| made >= seen))
                .unwrap_or(now),
        ),
        Watched::Visit if new <= now && old.is_none_or(|old| new > old) => Some(new),
        _ => None,
    };
    Verdict { event, remark }
}

/// Compares an observation with the patient's marks, records the events and the new marks,
/// in the pass's open transaction.
pub(super) fn record(
    ledger: &mut dyn RunLedger,
    seen: &Observation,
    now: DateTime<Utc>,
    summary: &mut RunSummary,
) -> Result<(), AppError> {
    let watch = &seen.watch;
    // None when another patient's id has the same hash (the print was theirs).
    let row = ledger.mark_row_at(&seen.patient, seen.pack)?;
    // Marks packed for other fields (the rules now watch others) say nothing of these.
    let known = row.as_ref().filter(|row| row.fields == watch.names_hash);
    let before = match known {
        Some(row) => unpack(&row.seen, watch.fields.len()),
        None => vec![None; watch.fields.len()],
    };
    let mut after = before.clone();
    for (index, ((_, field, watched), &current)) in
        watch.fields.iter().zip(&seen.values).enumerate()
    {
        let previous = match (known, before[index]) {
            (Some(_), Some((value, seen_at))) => Previous::Seen { value, seen_at },
            (Some(_), None) => Previous::Empty,
            (None, _) => Previous::Unknown,
        };
        let verdict = compare(*watched, previous, current, now, seen.booked_at);
        if let (Some(at), Some(value)) = (verdict.event, current) {
            let kind = match watched {
                Watched::Booking => EventKind::Booked,
                Watched::Visit => EventKind::Revisited,
            };
            let id = format!(
                "{}:{field}:{}:{}",
                kind.as_str(),
                event_stamp(value),
                seen.patient
            );
            let event = NewEvent {
                id: &id,
                kind,
                at,
                line_user: None,
                patient: Some(&seen.patient),
                send: None,
                detail: Some(field),
            };
            if ledger.record_event(&event, now)? {
                match watched {
                    Watched::Booking => summary.booked += 1,
                    Watched::Visit => summary.revisited += 1,
                }
            }
        }
        if let (true, Some(value)) = (verdict.remark, current) {
            after[index] = Some((value, now));
        }
    }
    let row = MarkRow {
        fields: watch.names_hash,
        seen: pack(&after),
    };
    ledger.set_marks(&seen.patient, seen.print, &row)?;
    Ok(())
}

/// Bytes a field takes in a row of the general layout: set or not, the value and when it was
/// first seen (Unix milliseconds, little-endian).
const PACKED_FIELD: usize = 17;

/// The first byte of a row in the compact layout: one `seen_at` for every set field, then each
/// field as a byte (set or not) and, if set, its value. A first sighting sees every field at
/// the pass's instant, so a first pass (a row per patient) writes these: 45 bytes for four
/// dates instead of 68. A row of the general layout begins with 0 or 1 (its first field set or
/// not), so the two never mix up, and rows written before the compact layout read as they were.
const COMPACT: u8 = 2;

/// A field's mark: its value and when it was first seen, or nothing seen.
type Mark = Option<(DateTime<Utc>, DateTime<Utc>)>;

/// The marks of a row, one per watched field in the watch's order.
fn pack(marks: &[Option<(DateTime<Utc>, DateTime<Utc>)>]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(marks.len() * PACKED_FIELD);
    pack_into(marks.iter().copied(), &mut bytes);
    bytes
}

/// [`pack`], appending to `bytes`: compact when every set field was first seen at the same
/// instant (or none is set), so that a first sighting's row is the same whoever builds it.
fn pack_into(
    marks: impl Iterator<Item = Option<(DateTime<Utc>, DateTime<Utc>)>> + Clone,
    bytes: &mut Vec<u8>,
) {
    let mut seen_ats = marks.clone().flatten().map(|(_, seen_at)| seen_at);
    let first = seen_ats.next();
    if seen_ats.all(|seen_at| Some(seen_at) == first) {
        bytes.push(COMPACT);
        bytes.extend_from_slice(&first.map_or(0, |at| at.timestamp_millis()).to_le_bytes());
        for mark in marks {
            match mark {
                Some((value, _)) => {
                    bytes.push(1);
                    bytes.extend_from_slice(&value.timestamp_millis().to_le_bytes());
                }
                None => bytes.push(0),
            }
        }
        return;
    }
    for mark in marks {
        let (set, value, seen_at) = match mark {
            Some((value, seen_at)) => (1u8, value.timestamp_millis(), seen_at.timestamp_millis()),
            None => (0, 0, 0),
        };
        bytes.push(set);
        bytes.extend_from_slice(&value.to_le_bytes());
        bytes.extend_from_slice(&seen_at.to_le_bytes());
    }
}

/// The inverse of [`pack`], for either layout; a row that does not read back as `fields`
/// fields (written for other fields) or a value out of range is as if the field were empty.
fn unpack(bytes: &[u8], fields: usize) -> Vec<Mark> {
    let unpacked = match bytes.first() {
        Some(&COMPACT) => unpack_compact(&bytes[1..], fields),
        _ => unpack_general(bytes, fields),
    };
    unpacked.unwrap_or_else(|| vec![None; fields])
}

fn millis_at(bytes: &[u8]) -> Option<Option<DateTime<Utc>>> {
    let eight: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(DateTime::from_timestamp_millis(i64::from_le_bytes(eight)))
}

fn unpack_general(bytes: &[u8], fields: usize) -> Option<Vec<Mark>> {
    if bytes.len() != fields * PACKED_FIELD {
        return None;
    }
    let marks = bytes
        .chunks_exact(PACKED_FIELD)
        .map(|chunk| match chunk[0] {
            1 => Some((millis_at(&chunk[1..9])??, millis_at(&chunk[9..17])??)),
            _ => None,
        });
    Some(marks.collect())
}

fn unpack_compact(bytes: &[u8], fields: usize) -> Option<Vec<Mark>> {
    let seen_at = millis_at(bytes)?;
    let mut rest = &bytes[8..];
    let mut marks = Vec::with_capacity(fields);
    for _ in 0..fields {
        let (&set, after) = rest.split_first()?;
        rest = after;
        marks.push(match set {
            1 => {
                let value = millis_at(rest)?;
                rest = &rest[8..];
                value.zip(seen_at)
            }
            _ => None,
        });
    }
    rest.is_empty().then_some(marks)
}

#[cfg(test)]
#[path = "observe_tests.rs"]
mod tests;
