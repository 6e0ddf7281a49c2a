//! Patients' booking and visit marks on PostgreSQL, written a batch at a time: a first pass
//! over a new export marks every patient it watches, and one upsert per patient was as many
//! round trips as the claims themselves.
//!
//! The marks of a batch are written in one statement right *after* its transaction commits,
//! on their own. Inside it they would be locked after the batch's claims, out of export order:
//! a worker writing its marks would wait for another's uncommitted marks while that one waits
//! for the first one's claims (a deadlock PostgreSQL detected with four workers). On their own,
//! a marks statement waits only for other marks statements, which wait for nothing else. A
//! crash between the commit and the marks loses only marks: the next pass observes those
//! patients again, and the events it records again have the same ids (recorded once).

use std::collections::HashMap;

use super::{to_sql, PgLedger};
use crate::ledger::MarkRow;

/// Upserts a batch of marks, one array per column.
const MARK: &str = "
    INSERT INTO steprule_marks (clinic, patient, print, fields, seen)
    SELECT $1::text, * FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bytea[])
    ON CONFLICT (clinic, patient) DO UPDATE
    SET print = excluded.print, fields = excluded.fields, seen = excluded.seen";

/// Marks a batch holds at most: past it the batch commits early (claims committed sooner are
/// as safe), which bounds the memory a long batch of observations takes.
const MOST_UNMARKED: usize = 4096;

/// Marks waiting for their batch's commit.
#[derive(Default)]
pub(super) struct Unmarked {
    patient: Vec<String>,
    print: Vec<i64>,
    fields: Vec<i64>,
    rows: Vec<MarkRow>,
    /// Where each patient is above: a patient marked again replaces the earlier marks (one
    /// statement may not upsert a row twice).
    index: HashMap<String, usize>,
}

impl PgLedger {
    /// Records `patient`'s marks with the batch (at once outside a batch).
    pub(super) fn buffer_marks(
        &mut self,
        patient: &str,
        print: u64,
        row: &MarkRow,
    ) -> Result<(), postgres::Error> {
        let unmarked = self.unmarked.get_mut();
        match unmarked.index.get(patient) {
            Some(&at) => {
                unmarked.print[at] = to_sql(print);
                unmarked.fields[at] = to_sql(row.fields);
                unmarked.rows[at] = row.clone();
            }
            None => {
                unmarked
                    .index
                    .insert(patient.to_owned(), unmarked.patient.len());
                unmarked.patient.push(patient.to_owned());
                unmarked.print.push(to_sql(print));
                unmarked.fields.push(to_sql(row.fields));
                unmarked.rows.push(row.clone());
            }
        }
        if !self.in_batch {
            return self.write_marks();
        }
        if self.unmarked.get_mut().index.len() >= MOST_UNMARKED {
            self.commit_batch()?;
            self.client.get_mut().batch_execute("BEGIN")?;
            self.in_batch = true;
        }
        Ok(())
    }

    /// The marks of `patient` this batch holds, if it holds any.
    pub(super) fn buffered_marks(&self, patient: &str) -> Option<MarkRow> {
        let unmarked = self.unmarked.borrow();
        let &at = unmarked.index.get(patient)?;
        Some(unmarked.rows[at].clone())
    }

    /// Writes the marks recorded since the last write, in one statement (outside any
    /// transaction: see the module's note).
    pub(super) fn write_marks(&self) -> Result<(), postgres::Error> {
        if self.unmarked.borrow().index.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut *self.unmarked.borrow_mut());
        let seen: Vec<&[u8]> = batch.rows.iter().map(|row| row.seen.as_slice()).collect();
        self.client.borrow_mut().execute(
            MARK,
            &[
                &self.clinic,
                &batch.patient,
                &batch.print,
                &batch.fields,
                &seen,
            ],
        )?;
        Ok(())
    }
}
