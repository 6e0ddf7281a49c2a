//! What `run` last saw of each patient's booking and visit fields (the rules' `bookings` and
//! `visits`), so that a pass can tell a new booking or a new visit from one it has seen.
//!
//! One row per patient, keyed by the patient's id: a fingerprint of the watched fields' values,
//! a hash of the watched fields' names (in the rules' order), and the values with when each was
//! first seen, packed in the order of those names (17 bytes a field). A pass loads the
//! fingerprints once, by a hash of the id (16 bytes a patient, sorted, no strings kept), and
//! reads or writes the row only for the patients whose fingerprint changed. Keyed by the id, a
//! first pass over an export in id order appends its million rows in key order: keyed by a
//! hash, the same rows landed at random and the pass took four times as long.

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

/// One patient's row: which fields it packs (their names' hash) and the packed values (see
/// `app::run::observe` for the layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRow {
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
    /// Every patient's fingerprint, by `hash` of the patient's id, sorted.
    pub fn mark_prints(&self, hash: impl Fn(&str) -> u64) -> Result<MarkPrints, LedgerError> {
        let mut prints = Vec::new();
        self.conn
            .prepare_cached("SELECT patient, print FROM marks")
            .and_then(|mut select| {
                let mut rows = select.query([])?;
                while let Some(row) = rows.next()? {
                    prints.push((hash(row.get_ref(0)?.as_str()?), from_sql(row.get(1)?)));
                }
                Ok(())
            })
            .map_err(|e| self.fail(e))?;
        prints.sort_unstable_by_key(|&(hash, _)| hash);
        Ok(MarkPrints { prints })
    }

    /// The row of `patient`.
    pub fn mark_row(&self, patient: &str) -> Result<Option<MarkRow>, LedgerError> {
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

    /// Writes `patient`'s row.
    pub fn set_marks(
        &mut self,
        patient: &str,
        print: u64,
        row: &MarkRow,
    ) -> Result<(), LedgerError> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO marks (patient, print, fields, seen)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut upsert| {
                upsert.execute(params![
                    patient,
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
        let hash = |id: &str| if id == "P2" { u64::MAX - 1 } else { 7 };
        assert!(ledger.mark_prints(hash).unwrap().is_empty());
        assert_eq!(ledger.mark_row("P1").unwrap(), None);
        let row = |seen: &[u8]| MarkRow {
            fields: 9,
            seen: seen.to_vec(),
        };
        // The top bit set: stored signed, read back the same.
        ledger.set_marks("P2", u64::MAX - 2, &row(&[1])).unwrap();
        ledger.set_marks("P1", 1, &row(&[1, 2])).unwrap();
        ledger.set_marks("P1", 2, &row(&[3])).unwrap();
        let prints = ledger.mark_prints(hash).unwrap();
        assert_eq!(prints.len(), 2);
        assert_eq!(prints.get(7), Some(2));
        assert_eq!(prints.get(u64::MAX - 1), Some(u64::MAX - 2));
        assert_eq!(prints.get(8), None);
        assert_eq!(ledger.mark_row("P1").unwrap(), Some(row(&[3])));
    }
}
