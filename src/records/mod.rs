//! Patient records: the clinic's export (CSV, JSONL) read one row at a time into
//! [`PatientRecord`]s that the evaluator can use without parsing anything again.
//!
//! [`open`] (or [`read_from`] for stdin) checks the file as a whole — format, encoding, header,
//! [`HeaderMapping`] — and returns `PatientRecords`, an iterator that yields each row as a
//! record or a [`RowError`] and goes on after bad rows.
//!
//! Columns: `id` (required), `line_user_id`, `name`, `stage`, `stage_entered_at`, `birth_date`,
//! `tags` (split on `;`, `、` or `,`, or a JSON list), `opted_out` (true/false, はい/いいえ,
//! 配信停止/希望する …; empty = false), the rules' `dates` and `fields`, and any other column into
//! [`PatientRecord::other`]. Empty cells are "not set". Dates follow
//! [`parse_instant`](crate::time::parse_instant) or a Japanese form (`2026年11月30日 14:00`,
//! `R8.11.30`). A cell that cannot be read leaves its field unknown, not the row skipped.

mod ahead;
mod bounded;
mod cells;
mod columns;
mod csv_line;
mod csv_records;
mod csv_rows;
mod database;
mod decode;
mod error;
mod field_set;
mod japanese_dates;
mod jsonl_cells;
mod jsonl_keys;
mod jsonl_line;
mod jsonl_order;
mod jsonl_rows;
mod jsonl_scan;
mod mapping;
mod options;
mod other;
mod reader;
mod row;
mod seen_ids;
mod shift_jis;
pub(crate) use seen_ids::keyed_hasher;
mod spent;
#[cfg(test)]
mod tests;
mod worked;

pub use ahead::{evaluate_ahead, typing_threads};
pub use database::{open_database, Database, PatientQuery};
pub use error::RecordsError;
pub use field_set::FieldSet;
pub use mapping::HeaderMapping;
pub use options::{Encoding, ReadOptions, RecordFormat};
pub use other::OtherColumns;
pub use reader::{open, read_from};
pub use worked::{LookingAhead, RowWork, Worked, WorkedRows};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::fields::{age_on, Field, FieldRef, FieldValue};

/// One patient, as the rules see them. Fields the rules declare are resolved to typed values
/// once, when the row is read. The default is a record with nothing set (no id, line 0): what a
/// row is typed into, and the base of tests' patients.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatientRecord {
    /// The clinic's patient id (`id` column); the ledger keys on it.
    pub id: String,
    /// Where LINE messages go; without it the patient gets nothing.
    pub line_user_id: Option<String>,
    pub name: Option<String>,
    /// Index into [`RecordSchema::stages`]; `None` when the cell is empty.
    pub stage: Option<usize>,
    pub stage_entered_at: Option<DateTime<Utc>>,
    pub birth_date: Option<NaiveDate>,
    pub tags: Vec<String>,
    pub opted_out: bool,
    /// The declared date fields, in the order of [`RecordSchema::date_fields`].
    pub dates: Vec<Option<DateTime<Utc>>>,
    /// The declared `fields`, in the order of [`RecordSchema::fields`]; `None` when empty.
    pub fields: Vec<Option<String>>,
    /// Every other non-empty column, for templates and rhai conditions.
    pub other: OtherColumns,
    /// Fields whose cell was there but could not be read: they hold nothing, and steps that
    /// need them are not evaluated for this patient (an unknown `opted_out` also sets
    /// `opted_out`, so nothing is sent).
    pub unknown: FieldSet,
    /// Where the record came from (1-based line in the file, or row of a database query), for
    /// messages about it.
    pub line: usize,
}

impl PatientRecord {
    /// The patient's value of `field` at `at`: the one place a record is read by field, for
    /// conditions, the rhai map and the template context alike.
    pub fn value<'a>(
        &'a self,
        field: FieldRef,
        schema: &'a RecordSchema,
        at: DateTime<Utc>,
    ) -> FieldValue<'a> {
        let text = |value: &'a Option<String>| {
            value.as_deref().map_or(FieldValue::Empty, FieldValue::Text)
        };
        let instant =
            |value: Option<DateTime<Utc>>| value.map_or(FieldValue::Empty, FieldValue::Instant);
        match field {
            FieldRef::Builtin(builtin) => match builtin {
                Field::Id => FieldValue::Text(&self.id),
                Field::Name => text(&self.name),
                Field::LineUserId => text(&self.line_user_id),
                Field::Stage => self
                    .stage
                    .map_or(FieldValue::Empty, |s| FieldValue::Text(&schema.stages[s])),
                Field::StageEnteredAt => instant(self.stage_entered_at),
                Field::BirthDate => self.birth_date.map_or(FieldValue::Empty, FieldValue::Day),
                Field::Age => self
                    .age(at, schema.timezone)
                    .map_or(FieldValue::Empty, FieldValue::Number),
                Field::Tags | Field::Tag => FieldValue::List(&self.tags),
                Field::OptedOut => FieldValue::Flag(self.opted_out),
            },
            FieldRef::Date(index) => instant(self.dates.get(index).copied().flatten()),
            FieldRef::Declared(index) => self.fields.get(index).map_or(FieldValue::Empty, text),
        }
    }

    /// Whole years of age on the clinic's calendar day of `at`; `None` without a birth date.
    pub fn age(&self, at: DateTime<Utc>, tz: Tz) -> Option<i64> {
        let birth = self.birth_date?;
        Some(age_on(birth, at.with_timezone(&tz).date_naive()))
    }
}

/// What a reader needs from the rules to type a row: the clinic's time zone (for naive
/// date-times), the stage names and the declared columns.
#[derive(Debug, Clone)]
pub struct RecordSchema {
    pub timezone: Tz,
    pub stages: Vec<String>,
    pub date_fields: Vec<String>,
    pub fields: Vec<String>,
}

impl RecordSchema {
    pub fn date_index(&self, name: &str) -> Option<usize> {
        self.date_fields.iter().position(|f| f == name)
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f == name)
    }

    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s == name)
    }
}

/// A row that could not be used (it is skipped; the rest go on), or a kept row's unreadable
/// cells (`PatientRecords::take_unreadable`): where it is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}
