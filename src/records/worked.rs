//! Rows of an export together with what the caller's work on each came to, worked on where
//! the rows were typed ([`super::evaluate_ahead`]) or here, as they are read (a database, or no
//! thread to be had): the same rows, reports and notices as [`super::PatientRecords`] gives,
//! in the same order.

use super::columns::Notices;
use super::reader::{PatientRecords, RowsAre};
use super::row::Unreadable;
use super::spent::SpentRecords;
use super::{PatientRecord, RowError};

/// Work done on each patient record kept, on the thread that typed it: one per thread, so it
/// may keep scratch space (an evaluator) between patients. What it comes to crosses threads.
pub trait RowWork {
    type Out: Send;
    fn work(&mut self, record: &PatientRecord) -> Self::Out;

    /// [`Self::work`] into `out`, which holds what the work on an earlier row came to when the
    /// rows' user left it there ([`Worked::get`]): work that keeps lists may fill them again
    /// instead of making new ones (and having them freed on the thread taking the rows).
    fn work_into(&mut self, record: &PatientRecord, out: &mut Option<Self::Out>) {
        *out = Some(self.work(record));
    }

    /// Called on each row to be worked on as soon as it is typed, where rows are typed on
    /// threads of their own, before the row typed just before it is worked on: work that will
    /// look the row up in a large table may ask the processor for the place here, and the
    /// other row's work hides the wait. A hint: rows worked where they are read skip it.
    fn ahead(&mut self, _record: &PatientRecord) {}
}

/// Work with a look ahead: `ahead` is [`RowWork::ahead`], `work` [`RowWork::work`].
pub struct LookingAhead<A, F> {
    pub ahead: A,
    pub work: F,
}

impl<A, F, T: Send> RowWork for LookingAhead<A, F>
where
    A: FnMut(&PatientRecord),
    F: FnMut(&PatientRecord) -> T,
{
    type Out = T;

    fn work(&mut self, record: &PatientRecord) -> T {
        (self.work)(record)
    }

    fn ahead(&mut self, record: &PatientRecord) {
        (self.ahead)(record);
    }
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

/// One row taken from [`WorkedRows::next_row`]: the record lent until the next row is taken
/// (or why the row was skipped), what the work on it came to (`None` for a row skipped), and
/// the reports of its unreadable cells.
pub struct TakenRow<'r, T> {
    pub row: Result<&'r PatientRecord, RowError>,
    pub worked: Option<Worked<'r, T>>,
    pub unreadable: Vec<RowError>,
}

/// What the work on a row came to, lent with it: taken, or used where it is, to be filled
/// again with a later row ([`RowWork::work_into`]).
pub struct Worked<'r, T>(&'r mut Option<T>);

impl<T> Worked<'_, T> {
    /// What the work came to, taken (`None` only if it was taken before).
    pub fn take(self) -> Option<T> {
        self.0.take()
    }

    /// What the work came to, left where it is.
    pub fn get(&mut self) -> Option<&mut T> {
        self.0.as_mut()
    }
}

/// A row lent, and what the work on it came to (lent too: `None` for a row skipped).
pub(super) type LentRow<'r, T> = (
    Result<&'r PatientRecord, RowError>,
    Option<&'r mut Option<T>>,
);

/// Rows lent one at a time, in file order: what the threads reading ahead give, each record
/// left where it was typed (`super::ahead`).
pub(super) trait LendRows<T> {
    /// The next row and what the work on it came to, as [`TakenRow`] has them.
    fn next_row(&mut self) -> Option<LentRow<'_, T>>;
}

/// Rows read here, one record at a time: each lent until the next one is taken, then dropped on
/// a thread of its own (freeing a million records on the thread taking them was a fifth of its
/// time).
struct Here<'s, T> {
    rows: Box<dyn Iterator<Item = WorkedRow<T>> + 's>,
    lent: Option<PatientRecord>,
    worked: Option<T>,
    spent: SpentRecords,
}

impl<T> LendRows<T> for Here<'_, T> {
    fn next_row(&mut self) -> Option<LentRow<'_, T>> {
        if let Some(record) = self.lent.take() {
            self.spent.push(record);
        }
        let (row, worked) = self.rows.next()?;
        self.worked = worked;
        let worked = self.worked.is_some().then_some(&mut self.worked);
        match row {
            Ok(record) => Some((Ok(&*self.lent.insert(record)), worked)),
            Err(err) => Some((Err(err), worked)),
        }
    }
}

/// Where the rows of one file are, for messages: `patients.csv:12` or `query: row 3`.
#[derive(Debug, Clone)]
pub struct Places {
    name: String,
    rows_are: RowsAre,
}

impl Places {
    /// The file name rows and errors refer to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the row at `line` is (as `PatientRecords::place` says it).
    pub fn of(&self, line: usize) -> String {
        self.rows_are.place(&self.name, line)
    }
}

/// The rows of one export in file order, each kept row with what the work on it came to, and
/// the reports and notices found while reading them (taken as from `PatientRecords`).
pub struct WorkedRows<'s, T> {
    places: Places,
    notices: Notices,
    unreadable: Unreadable,
    rows: Box<dyn LendRows<T> + 's>,
}

impl<'s, T> WorkedRows<'s, T> {
    pub(super) fn from_parts(
        name: String,
        rows_are: RowsAre,
        notices: Notices,
        unreadable: Unreadable,
        rows: Box<dyn LendRows<T> + 's>,
    ) -> Self {
        WorkedRows {
            places: Places { name, rows_are },
            notices,
            unreadable,
            rows,
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
        let here = Here {
            rows: Box::new(rows),
            lent: None,
            worked: None,
            spent: SpentRecords::new(),
        };
        WorkedRows::from_parts(name, rows_are, notices, unreadable, Box::new(here))
    }

    /// Where the rows are, for messages while a row is lent.
    pub fn places(&self) -> Places {
        self.places.clone()
    }

    /// As `PatientRecords::take_notices`.
    pub fn take_notices(&mut self) -> Vec<String> {
        self.notices.take()
    }

    /// The next row, with its unreadable-cell reports (as `PatientRecords` gives them after
    /// it); its record is lent until the next row is taken.
    pub fn next_row(&mut self) -> Option<TakenRow<'_, T>> {
        let (row, worked) = self.rows.next_row()?;
        Some(TakenRow {
            row,
            worked: worked.map(Worked),
            unreadable: self.unreadable.take(),
        })
    }
}
