//! Linking a LINE friend to a patient: the export's patients, held compactly enough for a
//! million of them (one string of ids, twelve bytes a patient, 24 a LINE user id), looked up
//! by patient number and birth date, or by the LINE user id the export gives.

use std::sync::{Arc, RwLock};

use chrono::{Datelike, NaiveDate};

use super::attempt::narrow;
use super::webhook::LineUser;
use crate::records::PatientRecord;

/// Failed attempts a LINE user may make in one clinic day; the next is refused unseen.
pub const MAX_FAILURES_PER_DAY: u32 = 5;

/// One patient: where their id is in [`PatientDirectory::ids`] and their birth date.
#[derive(Debug, Clone, Copy)]
struct Entry {
    start: u32,
    len: u32,
    /// Days from the common era, or `i32::MIN` without a birth date (never linkable).
    birth: i32,
}

/// The patients of the export, as linking needs them.
#[derive(Debug, Default)]
pub struct PatientDirectory {
    ids: String,
    /// Sorted by id as compared for linking (width-folded, ASCII case ignored).
    entries: Vec<Entry>,
    /// The export's `line_user_id`s (`U` + 32 hex digits, as 16 bytes), sorted, with where
    /// their patient's id is in `ids`.
    by_line_user: Vec<([u8; 16], u32, u32)>,
}

/// What a patient number and birth date named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<'a> {
    One(&'a str),
    /// No record, or more than one (ids differing only in case, with the same birth date).
    None,
}

/// Builds a [`PatientDirectory`] one record at a time, as the export is read.
#[derive(Debug, Default)]
pub struct DirectoryBuilder {
    directory: PatientDirectory,
}

impl DirectoryBuilder {
    pub fn add(&mut self, patient: &PatientRecord) {
        let d = &mut self.directory;
        let (Ok(start), Ok(len)) = (u32::try_from(d.ids.len()), u32::try_from(patient.id.len()))
        else {
            return;
        };
        d.ids.push_str(&patient.id);
        d.entries.push(Entry {
            start,
            len,
            birth: patient
                .birth_date
                .map_or(i32::MIN, |b| b.num_days_from_ce()),
        });
        if let Some(user) = patient.line_user_id.as_deref().and_then(user_bytes) {
            d.by_line_user.push((user, start, len));
        }
    }

    pub fn finish(mut self) -> PatientDirectory {
        let d = &mut self.directory;
        let ids = std::mem::take(&mut d.ids);
        d.entries
            .sort_unstable_by(|a, b| folded(slice(&ids, a)).cmp(folded(slice(&ids, b))));
        d.by_line_user.sort_unstable_by_key(|(user, _, _)| *user);
        d.ids = ids;
        d.ids.shrink_to_fit();
        d.entries.shrink_to_fit();
        d.by_line_user.shrink_to_fit();
        self.directory
    }
}

fn slice<'a>(ids: &'a str, entry: &Entry) -> &'a str {
    let start = entry.start as usize;
    ids.get(start..start + entry.len as usize).unwrap_or("")
}

/// An id as linking compares it: full-width narrowed, ASCII letters upper-cased.
fn folded(id: &str) -> impl Iterator<Item = char> + Clone + '_ {
    id.chars().map(|c| narrow(c).to_ascii_uppercase())
}

/// A LINE user id as 16 bytes, when it has LINE's shape.
fn user_bytes(text: &str) -> Option<[u8; 16]> {
    let user = LineUser::parse(text)?;
    let hex = &user.as_str().as_bytes()[1..];
    let mut bytes = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        bytes[i] = u8::try_from(high * 16 + low).ok()?;
    }
    Some(bytes)
}

impl PatientDirectory {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The patient the export gives `user` as their `line_user_id`.
    pub fn patient_of_line_user(&self, user: &LineUser) -> Option<&str> {
        let key = user_bytes(user.as_str())?;
        let at = self
            .by_line_user
            .binary_search_by_key(&key, |(user, _, _)| *user)
            .ok()?;
        let (_, start, len) = self.by_line_user[at];
        let start = start as usize;
        self.ids.get(start..start + len as usize)
    }

    /// The one patient whose id is `id` (as typed: full-width and case do not matter) and
    /// whose birth date is `birth`.
    pub fn find(&self, id: &str, birth: NaiveDate) -> Found<'_> {
        let wanted = folded(id);
        let first = self
            .entries
            .partition_point(|e| folded(slice(&self.ids, e)).lt(wanted.clone()));
        let birth = birth.num_days_from_ce();
        let mut matches = self.entries[first..]
            .iter()
            .take_while(|e| folded(slice(&self.ids, e)).eq(wanted.clone()))
            .filter(|e| e.birth == birth);
        match (matches.next(), matches.next()) {
            (Some(only), None) => Found::One(slice(&self.ids, only)),
            _ => Found::None,
        }
    }
}

/// The directory `serve` uses now; replaced whole when the export changes.
#[derive(Debug, Default)]
pub struct SharedDirectory {
    current: RwLock<Arc<PatientDirectory>>,
}

impl SharedDirectory {
    pub fn new(directory: PatientDirectory) -> Self {
        SharedDirectory {
            current: RwLock::new(Arc::new(directory)),
        }
    }

    pub fn get(&self) -> Arc<PatientDirectory> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn replace(&self, directory: PatientDirectory) {
        let directory = Arc::new(directory);
        match self.current.write() {
            Ok(mut current) => *current = directory,
            Err(poisoned) => *poisoned.into_inner() = directory,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient(id: &str, birth: Option<(i32, u32, u32)>, user: Option<&str>) -> PatientRecord {
        PatientRecord {
            id: id.into(),
            line_user_id: user.map(str::to_owned),
            birth_date: birth.and_then(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d)),
            line: 2,
            ..PatientRecord::default()
        }
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    const USER: &str = "U0123456789abcdef0123456789abcdef";

    fn directory() -> PatientDirectory {
        let mut builder = DirectoryBuilder::default();
        for p in [
            patient("P0002", Some((1990, 5, 6)), Some(USER)),
            patient("P0001", Some((1980, 1, 2)), None),
            patient("p0003", Some((1970, 3, 4)), None),
            patient("P0003", Some((1970, 3, 4)), None),
            patient("P0004", None, None),
            patient("P0005", Some((1980, 1, 2)), Some("not-a-line-id")),
        ] {
            builder.add(&p);
        }
        builder.finish()
    }

    #[test]
    fn a_patient_is_found_by_number_and_birth_date_only() {
        let d = directory();
        assert_eq!(d.len(), 6);
        assert_eq!(d.find("P0001", day(1980, 1, 2)), Found::One("P0001"));
        assert_eq!(d.find("p0001", day(1980, 1, 2)), Found::One("P0001"));
        assert_eq!(d.find("Ｐ０００１", day(1980, 1, 2)), Found::One("P0001"));
        assert_eq!(d.find("P0001", day(1980, 1, 3)), Found::None);
        assert_eq!(d.find("P000", day(1980, 1, 2)), Found::None);
        assert_eq!(d.find("P00011", day(1980, 1, 2)), Found::None);
        // No birth date on record: never linkable.
        assert_eq!(d.find("P0004", day(1980, 1, 2)), Found::None);
        // Two records that differ only in case, with the same birth date: not one patient.
        assert_eq!(d.find("P0003", day(1970, 3, 4)), Found::None);
        assert_eq!(d.find("", day(1970, 3, 4)), Found::None);
    }

    #[test]
    fn the_exports_line_user_ids_lead_to_their_patient() {
        let d = directory();
        let user = LineUser::parse(USER).unwrap();
        assert_eq!(d.patient_of_line_user(&user), Some("P0002"));
        let other = LineUser::parse("U0123456789abcdef0123456789abcdee").unwrap();
        assert_eq!(d.patient_of_line_user(&other), None);
    }

    #[test]
    fn a_replaced_directory_is_seen_by_the_next_lookup() {
        let shared = SharedDirectory::new(PatientDirectory::default());
        let before = shared.get();
        shared.replace(directory());
        assert_eq!(before.len(), 0);
        assert_eq!(shared.get().len(), 6);
    }
}
