//! What `run` last saw of each patient's booking and visit fields (the rules' `bookings` and
//! `visits`), so that a pass can tell a new booking or a new visit from one it has seen.
//!
//! One row per patient, keyed by a 64-bit hash of the patient id: a fingerprint of the watched
//! fields' values, a hash of the watched fields' names (in the rules' order), and the values
//! with when each was first seen, packed in the order of those names (17 bytes a field). A pass
//! loads the fingerprints once (16 bytes a patient, sorted, no strings) and reads or writes the
//! row only for the patients whose fingerprint changed. The row keeps the patient's id too, so
//! that two ids with the same hash are never taken for one patient.

use rusqlite::{params, OptionalExtension};

use super::{Ledger, LedgerError};

/// The fingerprints the ledger holds, by patient hash.
#[derive(Debug, Default)]
pub struct MarkPrints {
    prints: Vec<(u64, u64)>,
}

impl MarkPrints {
    /// The fingerprint stored for `patient_hash`.
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

/// One patient's row: whose it is, which fields it packs (their names' hash) and the packed
/// values (see `app::run::observe` for the layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRow {
    pub patient: String,
    pub fields: u64,
    pub seen: Vec<u8>,
}

/// SQLite integers are signed: the hashes are stored bit for bit.
fn to_sql(bits: u64) -> i64 {
    i64::from_ne_bytes(bits.to_ne_bytes())
}

fn from_sql(value: i64) -> u64 {
    u64::from_ne_bytes(value.to_ne_bytes())
}

impl Ledger {
    /// Every patient's fingerprint, sorted by patient hash.
    pub fn mark_prints(&self) -> Result<MarkPrints, LedgerError> {
        let mut prints = Vec::new();
        self.conn
            .prepare_cached("SELECT patient_hash, print FROM marks")
            .and_then(|mut select| {
                let mut rows = select.query([])?;
                while let Some(row) = rows.next()? {
                    prints.push((from_sql(row.get(0)?), from_sql(row.get(1)?)));
                }
                Ok(())
            })
            .map_err(|e| self.fail(e))?;
        prints.sort_unstable_by_key(|&(hash, _)| hash);
        Ok(MarkPrints { prints })
    }

    /// The row of the patient whose id hashes to `patient_hash`.
    pub fn mark_row(&self, patient_hash: u64) -> Result<Option<MarkRow>, LedgerError> {
        self.conn
            .prepare_cached("SELECT patient, fields, seen FROM marks WHERE patient_hash = ?1")
            .and_then(|mut select| {
                select
                    .query_row([to_sql(patient_hash)], |row| {
                        Ok(MarkRow {
                            patient: row.get(0)?,
                            fields: from_sql(row.get(1)?),
                            seen: row.get(2)?,
                        })
                    })
                    .optional()
            })
            .map_err(|e| self.fail(e))
    }

    /// Writes the patient's row (replacing the one under the same hash).
    pub fn set_marks(
        &mut self,
        patient_hash: u64,
        print: u64,
        row: &MarkRow,
    ) -> Result<(), LedgerError> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO marks (patient_hash, patient, print, fields, seen)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut upsert| {
                upsert.execute(params![
                    to_sql(patient_hash),
                    row.patient,
                    to_sql(print),
                    to_sql(row.fields),
                    row.seen
                ])
            })
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rows_and_prints_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        assert!(ledger.mark_prints().unwrap().is_empty());
        assert_eq!(ledger.mark_row(7).unwrap(), None);
        let row = |patient: &str, seen: &[u8]| MarkRow {
            patient: patient.into(),
            fields: 9,
            seen: seen.to_vec(),
        };
        // The top bit set: stored signed, read back the same.
        ledger
            .set_marks(u64::MAX - 1, 42, &row("P2", &[1]))
            .unwrap();
        ledger.set_marks(7, 1, &row("P1", &[1, 2])).unwrap();
        ledger.set_marks(7, 2, &row("P1", &[3])).unwrap();
        let prints = ledger.mark_prints().unwrap();
        assert_eq!(prints.len(), 2);
        assert_eq!(prints.get(7), Some(2));
        assert_eq!(prints.get(u64::MAX - 1), Some(42));
        assert_eq!(prints.get(8), None);
        assert_eq!(ledger.mark_row(7).unwrap(), Some(row("P1", &[3])));
    }
}
