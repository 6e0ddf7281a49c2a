//! Rows of an export together with what the caller's work on each came to, worked on where
//! the rows were typed ([`super::evaluate_ahead`]) or here, as they are read (a database, or no
//! thread to be had): the same rows, reports and notices as [`super::PatientRecords`] gives,
//! in the same order.

use super::columns::Notices;
use super::reader::{PatientRecords, RowsAre};
use super::row::Unreadable;
use super::spent::{Recycler, SpentRecords};
use super::{PatientRecord, RowError};

/// Work done on each patient record kept, on the thread that typed it: one per thread, so it
/// may keep scratch space (an evaluator) between patients. What it comes to crosses threads.
pub trait RowWork {
    type Out: Send;
    fn work(&mut self, record: &PatientRecord) -> Self::Out;
}

impl<F, T: Send> RowWork for F
where
    F: FnMut(&PatientRecord) -> T,
{
    type Out = T;

    fn work(&mut self, record: &PatientRecord) -> T {
        self(record)
    }
}

/// A row and what the work on it came to: `None` for a row skipped.
pub(super) type WorkedRow<T> = (Result<PatientRecord, RowError>, Option<T>);

/// The rows of one export in file order, each kept row with what the work on it came to, and
/// the reports and notices found while reading them (taken as from `PatientRecords`).
pub struct WorkedRows<'s, T> {
    name: String,
    rows_are: RowsAre,
    notices: Notices,
    unreadable: Unreadable,
    rows: Box<dyn Iterator<Item = WorkedRow<T>> + 's>,
    /// Where records the rows' user is done with go back to be filled again, when the rows
    /// were typed on threads that take them.
    recycler: Option<Recycler>,
}

impl<'s, T> WorkedRows<'s, T> {
    pub(super) fn from_parts(
        name: String,
        rows_are: RowsAre,
        notices: Notices,
        unreadable: Unreadable,
        rows: Box<dyn Iterator<Item = WorkedRow<T>> + 's>,
    ) -> Self {
        WorkedRows {
            name,
            rows_are,
            notices,
            unreadable,
            rows,
            recycler: None,
        }
    }

    /// These rows, typed by threads that fill the records `recycler` is given again.
    pub(super) fn recycling(self, recycler: Recycler) -> Self {
        WorkedRows {
            recycler: Some(recycler),
            ..self
        }
    }

    /// Where to put each record once done with it: given back to be filled with a row after
    /// it when the rows are typed on threads of their own, else dropped on a thread of its own.
    pub fn spent(&self) -> SpentRecords {
        match &self.recycler {
            Some(recycler) => SpentRecords::recycling(recycler.clone()),
            None => SpentRecords::new(),
        }
    }

    /// `records` worked on here by `work`, one row at a time as they are read.
    pub fn here<W>(records: PatientRecords, mut work: W) -> Self
    where
        W: RowWork<Out = T> + 's,
        T: 's,
    {
        let (name, rows_are, notices, unreadable, rows) = records.into_parts();
        let rows = rows.map(move |row| {
            let worked = row.as_ref().ok().map(|record| work.work(record));
            (row, worked)
        });
        WorkedRows::from_parts(name, rows_are, notices, unreadable, Box::new(rows))
    }

    /// The file name rows and errors refer to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the row at `line` is, for messages (as `PatientRecords::place` says it).
    pub fn place(&self, line: usize) -> String {
        self.rows_are.place(&self.name, line)
    }

    /// As `PatientRecords::take_notices`.
    pub fn take_notices(&mut self) -> Vec<String> {
        self.notices.take()
    }

    /// As `PatientRecords::take_unreadable`: taken after each row, it is that row's.
    pub fn take_unreadable(&mut self) -> Vec<RowError> {
        self.unreadable.take()
    }
}

impl<T> Iterator for WorkedRows<'_, T> {
    type Item = WorkedRow<T>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rows.next()
    }
}
