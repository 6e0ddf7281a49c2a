//! What `run` last saw of each patient's booking and visit fields (the rules' `bookings` and
//! `visits`), so that a pass can tell a new booking or a new visit from one it has seen.
//!
//! Two tables. `marks` holds the exact values, one row per patient and field that was ever
//! set (an emptied field keeps its last value), with when the value was first seen. `mark_prints` holds one
//! 64-bit fingerprint of those values per patient, keyed by a 64-bit hash of the patient id:
//! a pass loads the prints once (16 bytes a patient, sorted, no strings) and reads or writes
//! the exact marks only for the patients whose print changed. A patient without a print has
//! never been seen. The print's row also keeps a hash of the watched field names, so that a
//! pass knows whether a field without a mark was empty or was not watched yet.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::events::event_stamp;
use super::{parse_stamp, Ledger, LedgerError};

/// Every patient's fingerprint, by patient hash: loaded once per pass.
#[derive(Debug, Default)]
pub struct MarkPrints {
    /// Sorted by hash.
    prints: Vec<(u64, u64)>,
}

impl MarkPrints {
    /// The fingerprint last stored for the patient with this hash.
    pub fn get(&self, patient_hash: u64) -> Option<u64> {
        self.prints
            .binary_search_by_key(&patient_hash, |&(hash, _)| hash)
            .ok()
            .map(|index| self.prints[index].1)
    }

    pub fn len(&self) -> usize {
        self.prints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prints.is_empty()
    }
}

/// A field's value as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub field: String,
    pub value: DateTime<Utc>,
    /// When a pass first saw this value.
    pub seen_at: DateTime<Utc>,
}

/// SQLite integers are signed: the 64 bits are stored as they are.
fn to_sql(bits: u64) -> i64 {
    i64::from_ne_bytes(bits.to_ne_bytes())
}

fn from_sql(value: i64) -> u64 {
    u64::from_ne_bytes(value.to_ne_bytes())
}

impl Ledger {
    /// Every patient's fingerprint, read in key order (the table's own order: no sort).
    pub fn mark_prints(&self) -> Result<MarkPrints, LedgerError> {
        let mut prints = Vec::new();
        self.conn
            .prepare_cached("SELECT patient_hash, print FROM mark_prints ORDER BY patient_hash")
            .and_then(|mut select| {
                let mut rows = select.query([])?;
                while let Some(row) = rows.next()? {
                    prints.push((from_sql(row.get(0)?), from_sql(row.get(1)?)));
                }
                Ok(())
            })
            .map_err(|e| self.fail(e))?;
        // SQLite orders the signed values; the lookups search the unsigned ones.
        prints.sort_unstable_by_key(|&(hash, _)| hash);
        Ok(MarkPrints { prints })
    }

    /// The hash of the field names watched when the patient was last seen; `None` when never.
    pub fn marked_fields(&self, patient_hash: u64) -> Result<Option<u64>, LedgerError> {
        self.conn
            .prepare_cached("SELECT fields FROM mark_prints WHERE patient_hash = ?1")
            .and_then(|mut select| {
                select
                    .query_row([to_sql(patient_hash)], |row| row.get::<_, i64>(0))
                    .optional()
            })
            .map(|found| found.map(from_sql))
            .map_err(|e| self.fail(e))
    }

    /// The patient's marks, through the primary key.
    pub fn marks_of(&self, patient: &str) -> Result<Vec<Mark>, LedgerError> {
        let rows: Vec<(String, String, String)> = self
            .conn
            .prepare_cached("SELECT field, value, seen_at FROM marks WHERE patient = ?1")
            .and_then(|mut select| {
                select
                    .query_map([patient], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                    .collect()
            })
            .map_err(|e| self.fail(e))?;
        // A value that does not read back (written by hand?) is as if the field were empty.
        Ok(rows
            .into_iter()
            .filter_map(|(field, value, seen_at)| {
                Some(Mark {
                    field,
                    value: parse_stamp(&value)?,
                    seen_at: parse_stamp(&seen_at)?,
                })
            })
            .collect())
    }

    /// Stores the patient's value of `field`, first seen at `seen_at`.
    pub fn set_mark(
        &mut self,
        patient: &str,
        field: &str,
        value: DateTime<Utc>,
        seen_at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn
            .prepare_cached(
                "INSERT INTO marks (patient, field, value, seen_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (patient, field) DO UPDATE SET value = ?3, seen_at = ?4",
            )
            .and_then(|mut upsert| {
                upsert.execute(params![
                    patient,
                    field,
                    event_stamp(value),
                    event_stamp(seen_at)
                ])
            })
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// Stores the patient's fingerprint and the hash of the fields it was taken over.
    pub fn set_print(
        &mut self,
        patient_hash: u64,
        print: u64,
        fields: u64,
    ) -> Result<(), LedgerError> {
        self.conn
            .prepare_cached(
                "INSERT INTO mark_prints (patient_hash, print, fields) VALUES (?1, ?2, ?3)
                 ON CONFLICT (patient_hash) DO UPDATE SET print = ?2, fields = ?3",
            )
            .and_then(|mut upsert| {
                upsert.execute(params![to_sql(patient_hash), to_sql(print), to_sql(fields)])
            })
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse_stamp(text).unwrap()
    }

    #[test]
    fn marks_and_prints_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        assert!(ledger.mark_prints().unwrap().is_empty());
        assert_eq!(ledger.marked_fields(7).unwrap(), None);
        // The top bit set: stored signed, read back the same.
        ledger.set_print(u64::MAX - 1, 42, 9).unwrap();
        ledger.set_print(7, 1, 9).unwrap();
        ledger.set_print(7, 2, 9).unwrap();
        let prints = ledger.mark_prints().unwrap();
        assert_eq!(prints.len(), 2);
        assert_eq!(prints.get(7), Some(2));
        assert_eq!(prints.get(u64::MAX - 1), Some(42));
        assert_eq!(prints.get(8), None);
        assert_eq!(ledger.marked_fields(7).unwrap(), Some(9));

        let seen = at("2026-11-25T01:00:00Z");
        let booking = at("2026-12-01T01:30:00.250Z");
        ledger
            .set_mark("P1", "next_booking_at", booking, seen)
            .unwrap();
        assert_eq!(
            ledger.marks_of("P1").unwrap(),
            [Mark {
                field: "next_booking_at".into(),
                value: booking,
                seen_at: seen
            }]
        );
        assert!(ledger.marks_of("P2").unwrap().is_empty());
        let later = at("2026-12-08T01:30:00Z");
        ledger
            .set_mark("P1", "next_booking_at", later, later)
            .unwrap();
        assert_eq!(ledger.marks_of("P1").unwrap()[0].value, later);
    }
}
