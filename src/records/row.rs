//! One row of an export → one [`PatientRecord`], the same for CSV and JSONL: every cell is
//! parsed once here, and everything wrong with the row becomes one [`RowError`].
//!
//! Messages name the column and the line, never a cell's value: names, phone numbers, LINE ids,
//! birth dates and ids are patient data, and a misplaced column can put any of them where a
//! date or a stage should be. The one exception is a stage that is a near miss of one of the
//! rules' stages and spelt like one (`first_vist`): that is the clinic's vocabulary misspelt,
//! and quoting it is what lets staff find it.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use super::columns::{Column, Role};
use super::{HeaderMapping, PatientRecord, RecordSchema, RecordsError, RowError};
use crate::diagnostic::suggest;
use crate::printable::printable;
use crate::time::{date, instant, DateProblem, Expected};

/// A cell's value before it is typed. JSONL may give a list (for `tags`).
pub(super) enum Cell<'a> {
    Text(Cow<'a, str>),
    List(Vec<Cow<'a, str>>),
}

/// Builds records for one file and remembers which ids it has seen there.
pub(super) struct RowBuilder {
    file: String,
    schema: RecordSchema,
    /// Stage names and the mapping's stage values → index into the schema's stages.
    stages: HashMap<String, usize>,
    /// Candidates for "did you mean" on an unknown stage.
    stage_names: Vec<String>,
    /// id → line where it first appeared; grows with the patients, nothing else does.
    seen: HashMap<String, usize>,
}

impl RowBuilder {
    /// Fails when the mapping translates a stage value into a stage the rules do not have:
    /// otherwise every such row would fail one by one.
    pub(super) fn new(
        file: &str,
        schema: &RecordSchema,
        mapping: Option<&HeaderMapping>,
    ) -> Result<Self, RecordsError> {
        let mut stages: HashMap<String, usize> = schema
            .stages
            .iter()
            .enumerate()
            .map(|(index, stage)| (stage.clone(), index))
            .collect();
        let mut stage_names = schema.stages.clone();
        for (value, stage) in mapping.into_iter().flat_map(HeaderMapping::stages) {
            let Some(index) = schema.stage_index(stage) else {
                let hint = suggest(stage, schema.stages.iter().map(String::as_str))
                    .map(|close| format!(" (did you mean `{close}`?)"))
                    .unwrap_or_default();
                return Err(RecordsError::Mapping {
                    path: mapping
                        .and_then(HeaderMapping::source)
                        .unwrap_or("header mapping")
                        .to_owned(),
                    message: format!(
                        "[stages] maps `{}` to `{}`, which is not a stage of the rules{hint}; \
                         the stages are {}",
                        printable(value),
                        printable(stage),
                        schema.stages.join(", ")
                    ),
                });
            };
            stages.insert(value.to_owned(), index);
            stage_names.push(value.to_owned());
        }
        Ok(RowBuilder {
            file: file.to_owned(),
            schema: schema.clone(),
            stages,
            stage_names,
            seen: HashMap::new(),
        })
    }

    /// An error about the row starting at `line` of this file.
    pub(super) fn error(&self, line: usize, message: String) -> RowError {
        RowError {
            file: self.file.clone(),
            line,
            message,
        }
    }

    /// The record for the row at `line`, or every problem with it in one message. The id is
    /// remembered even when the row is bad, so a later row with the same id is still reported.
    pub(super) fn build<'c, 'v>(
        &mut self,
        line: usize,
        cells: impl IntoIterator<Item = (&'c Column, Cell<'v>)>,
    ) -> Result<PatientRecord, RowError> {
        let mut record = PatientRecord {
            id: String::new(),
            line_user_id: None,
            name: None,
            stage: None,
            stage_entered_at: None,
            birth_date: None,
            tags: Vec::new(),
            opted_out: false,
            dates: vec![None; self.schema.date_fields.len()],
            fields: vec![None; self.schema.fields.len()],
            other: BTreeMap::new(),
            line,
        };
        let mut problems = Vec::new();
        let mut id_column = None;
        for (column, cell) in cells {
            if column.role == Role::Id {
                id_column = Some(column);
            }
            if let Err(problem) = self.fill(&mut record, column, cell) {
                problems.push(problem);
            }
        }
        if record.id.is_empty() {
            problems.insert(
                0,
                match id_column {
                    Some(column) => format!("the id is empty (column {})", column.label()),
                    None => "no id (every patient needs an `id`)".to_owned(),
                },
            );
        } else {
            match self.seen.entry(record.id.clone()) {
                Entry::Occupied(first) => {
                    problems.insert(0, format!("the same id is already on line {}", first.get()));
                }
                Entry::Vacant(slot) => {
                    slot.insert(line);
                }
            }
        }
        if problems.is_empty() {
            Ok(record)
        } else {
            Err(self.error(line, problems.join("; ")))
        }
    }

    /// Puts one cell into the record. Empty cells leave the default (not set).
    fn fill(
        &self,
        record: &mut PatientRecord,
        column: &Column,
        cell: Cell<'_>,
    ) -> Result<(), String> {
        if column.role == Role::Tags {
            record.tags = tags(cell);
            return Ok(());
        }
        let text = match cell {
            Cell::Text(text) => text,
            Cell::List(items) => Cow::Owned(items.join(";")),
        };
        let text = text.trim();
        if text.is_empty() {
            return Ok(());
        }
        let tz = self.schema.timezone;
        let in_column = |message: String| format!("column {}: {message}", column.label());
        let bad_instant =
            |problem: DateProblem| in_column(problem.message(Expected::Instant, None));
        let bad_date = |problem: DateProblem| in_column(problem.message(Expected::Date, None));
        match column.role {
            Role::Id => record.id = text.to_owned(),
            Role::LineUserId => record.line_user_id = Some(text.to_owned()),
            Role::Name => record.name = Some(text.to_owned()),
            Role::Stage => record.stage = Some(self.stage(text).map_err(in_column)?),
            Role::StageEnteredAt => {
                record.stage_entered_at = Some(instant(text, tz).map_err(bad_instant)?);
            }
            Role::BirthDate => record.birth_date = Some(date(text).map_err(bad_date)?),
            Role::OptedOut => {
                record.opted_out = flag(text).ok_or_else(|| {
                    in_column(
                        "not a yes/no value (expected true/false, 1/0, yes/no or はい/いいえ)"
                            .to_owned(),
                    )
                })?;
            }
            Role::Date(index) => {
                record.dates[index] = Some(instant(text, tz).map_err(bad_instant)?)
            }
            Role::Field(index) => record.fields[index] = Some(text.to_owned()),
            Role::Other => {
                record.other.insert(column.name.clone(), text.to_owned());
            }
            Role::Tags | Role::Ignored | Role::Shadowing => {}
        }
        Ok(())
    }

    fn stage(&self, value: &str) -> Result<usize, String> {
        if let Some(&index) = self.stages.get(value) {
            return Ok(index);
        }
        let stages = self.schema.stages.join(", ");
        match suggest(value, self.stage_names.iter().map(String::as_str)) {
            Some(close) if spelt_like_a_stage(value) => Err(format!(
                "unknown stage `{value}`; did you mean `{close}`? (the stages are {stages})"
            )),
            Some(close) => Err(format!(
                "not one of the stages; did you mean `{}`? (the stages are {stages})",
                printable(close)
            )),
            None => Err(format!("not one of the stages (the stages are {stages})")),
        }
    }
}

/// Short and made of the characters stage names are made of: a misspelt stage, not a name, a
/// phone number with spaces or a sentence.
fn spelt_like_a_stage(value: &str) -> bool {
    value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `a;b` in a CSV cell, a list or an `a;b` string in JSONL.
fn tags(cell: Cell<'_>) -> Vec<String> {
    let items = match cell {
        Cell::Text(text) => vec![text],
        Cell::List(items) => items,
    };
    items
        .iter()
        .flat_map(|item| item.split(';'))
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The yes/no spellings exports use (Excel writes TRUE/FALSE, Japanese systems はい/いいえ).
fn flag(text: &str) -> Option<bool> {
    const YES: &[&str] = &["true", "1", "yes", "y", "はい"];
    const NO: &[&str] = &["false", "0", "no", "n", "いいえ"];
    if YES.iter().any(|yes| text.eq_ignore_ascii_case(yes)) {
        Some(true)
    } else if NO.iter().any(|no| text.eq_ignore_ascii_case(no)) {
        Some(false)
    } else {
        None
    }
}
