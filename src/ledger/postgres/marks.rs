//! Patients' booking and visit marks on PostgreSQL, written a batch at a time: a first pass
//! over a new export marks every patient it watches, and one upsert per patient was as many
//! round trips as the claims themselves. The marks of the open batch are written in one
//! statement when it commits, and before anything reads marks back.

use std::collections::HashSet;

use super::{to_sql, PgLedger};
use crate::ledger::MarkRow;

/// Upserts a batch of marks, one array per column.
const MARK: &str = "
    INSERT INTO steprule_marks (clinic, patient, print, fields, seen)
    SELECT $1::text, * FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bytea[])
    ON CONFLICT (clinic, patient) DO UPDATE
    SET print = excluded.print, fields = excluded.fields, seen = excluded.seen";

/// Marks in one statement at most: a bound on its size.
const MOST_UNMARKED: usize = 4096;

/// Marks waiting for their batch's commit.
#[derive(Default)]
pub(super) struct Unmarked {
    patient: Vec<String>,
    print: Vec<i64>,
    fields: Vec<i64>,
    seen: Vec<Vec<u8>>,
    /// The patients above: one statement may not upsert a row twice, so a patient marked again
    /// writes the batch first.
    patients: HashSet<String>,
}

impl PgLedger {
    /// Records `patient`'s marks with the batch (at once outside a batch).
    pub(super) fn buffer_marks(
        &mut self,
        patient: &str,
        print: u64,
        row: &MarkRow,
    ) -> Result<(), postgres::Error> {
        let full = {
            let unmarked = self.unmarked.get_mut();
            unmarked.patients.contains(patient) || unmarked.patients.len() >= MOST_UNMARKED
        };
        if full {
            self.write_marks()?;
        }
        let unmarked = self.unmarked.get_mut();
        unmarked.patient.push(patient.to_owned());
        unmarked.print.push(to_sql(print));
        unmarked.fields.push(to_sql(row.fields));
        unmarked.seen.push(row.seen.clone());
        unmarked.patients.insert(patient.to_owned());
        if !self.in_batch {
            self.write_marks()?;
        }
        Ok(())
    }

    /// Writes the marks recorded since the last write, in one statement.
    pub(super) fn write_marks(&self) -> Result<(), postgres::Error> {
        if self.unmarked.borrow().patients.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut *self.unmarked.borrow_mut());
        self.client.borrow_mut().execute(
            MARK,
            &[
                &self.clinic,
                &batch.patient,
                &batch.print,
                &batch.fields,
                &batch.seen,
            ],
        )?;
        Ok(())
    }
}
