//! One row of an export → one [`PatientRecord`], the same for CSV and JSONL: every cell is
//! parsed once here. A row without a usable id is skipped, with everything wrong with it in one
//! [`RowError`]; a cell that cannot be read only leaves its field unknown
//! ([`PatientRecord::unknown`]), and the row is kept with one report of its unreadable cells.
//!
//! Messages name the column and the line, never a cell's value: names, phone numbers, LINE ids,
//! birth dates and ids are patient data, and a misplaced column can put any of them where a
//! date or a stage should be. The one exception is a stage that is a near miss of one of the
//! rules' stages and spelt like one (`first_vist`): that is the clinic's vocabulary misspelt,
//! and quoting it is what lets staff find it.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::cells::{means_empty, read_date, read_instant, trim_cell, OptOutReader, TagSplitter};
use super::columns::{Column, Role};
use super::mapping::NO_STAGE;
use super::seen_ids::{id_hash, keyed_hasher, SeenIds};
use super::spent::{set_text, Spares};
use super::{HeaderMapping, PatientRecord, RecordSchema, RecordsError, RowError};
use crate::diagnostic::suggest;
use crate::fields::{Field, FieldRef};
use crate::printable::printable;

/// A cell's value before it is typed. JSONL may give a list (for `tags`).
pub(super) enum Cell<'a> {
    Text(Cow<'a, str>),
    List(Vec<Cow<'a, str>>),
}

/// The reports of rows kept with unreadable cells, shared between the row builder (which
/// finds them) and [`super::PatientRecords`] (which hands them out after each row).
#[derive(Debug, Clone, Default)]
pub(super) struct Unreadable(Rc<RefCell<Vec<RowError>>>);

impl Unreadable {
    pub(super) fn push(&self, report: RowError) {
        self.0.borrow_mut().push(report);
    }

    /// The reports found since the last call.
    pub(super) fn take(&self) -> Vec<RowError> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

/// Builds records for one file and remembers which ids it has seen there: a [`RowTyper`]
/// (which may type rows on other threads) and the file-order checks on what it typed.
pub(super) struct RowBuilder {
    typer: Arc<RowTyper>,
    ids: SeenIds,
    unreadable: Unreadable,
    /// Rows typed here get new records (nobody hands spent ones back to this thread).
    spares: Spares,
}

/// Types the cells of one row into a record: everything about a row that does not depend on
/// the rows before it, so rows can be typed on several threads at once.
pub(super) struct RowTyper {
    file: String,
    schema: RecordSchema,
    /// Stage names and the mapping's stage values → index into the schema's stages (`None`:
    /// a status the mapping says means no stage). Looked up once per row: aHash, not SipHash.
    stages: HashMap<String, Option<usize>, ahash::RandomState>,
    /// Candidates for "did you mean" on an unknown stage.
    stage_names: Vec<String>,
    opt_out: OptOutReader,
    tags: TagSplitter,
}

/// A row as [`RowTyper::type_row`] leaves it: the record and what was wrong with its cells,
/// before the checks that need the rows before it (is the id new?). The default is an empty
/// place for [`RowTyper::type_row_into`] to type rows into again and again.
#[derive(Default)]
pub(super) struct TypedRow {
    record: PatientRecord,
    /// One message per unreadable cell, and the steprule name of its column.
    problems: Vec<String>,
    unknown_names: Vec<String>,
    /// Why the row has no usable id, when it has none.
    no_id: Option<String>,
    /// The id's [`id_hash`], computed where the row was typed (on any thread) so that the
    /// check in file order only looks it up.
    id_hash: u64,
}

impl RowBuilder {
    /// Fails when the mapping translates a stage value into a stage the rules do not have:
    /// otherwise every such row would fail one by one.
    pub(super) fn new(
        file: &str,
        schema: &RecordSchema,
        mapping: Option<&HeaderMapping>,
    ) -> Result<Self, RecordsError> {
        let mut stages = HashMap::with_hasher(keyed_hasher());
        stages.extend(
            schema
                .stages
                .iter()
                .enumerate()
                .map(|(index, stage)| (stage.clone(), Some(index))),
        );
        let mut stage_names = schema.stages.clone();
        for (value, stage) in mapping.into_iter().flat_map(HeaderMapping::stages) {
            if stage == NO_STAGE {
                stages.insert(value.to_owned(), None);
                continue;
            }
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
                         the stages are {} (or \"-\" for no stage)",
                        printable(value),
                        printable(stage),
                        schema.stages.join(", ")
                    ),
                });
            };
            stages.insert(value.to_owned(), Some(index));
            stage_names.push(value.to_owned());
        }
        let typer = RowTyper {
            file: file.to_owned(),
            schema: schema.clone(),
            stages,
            stage_names,
            opt_out: OptOutReader::new(mapping.map(HeaderMapping::opted_out)),
            tags: TagSplitter::new(mapping.and_then(HeaderMapping::tag_separators)),
        };
        Ok(RowBuilder {
            typer: Arc::new(typer),
            ids: SeenIds::on_lines(),
            unreadable: Unreadable::default(),
            spares: Spares::default(),
        })
    }

    /// The typing half, on this thread.
    pub(super) fn typer_ref(&self) -> &RowTyper {
        &self.typer
    }

    /// The typing half, to share with threads that type rows.
    pub(super) fn typer(&self) -> Arc<RowTyper> {
        Arc::clone(&self.typer)
    }

    /// For a source whose rows are numbered rather than on lines (a database query).
    pub(super) fn counting_rows(mut self) -> Self {
        self.ids = SeenIds::on_rows();
        self
    }

    /// Where the reports of rows kept with unreadable cells go.
    pub(super) fn unreadable(&self) -> Unreadable {
        self.unreadable.clone()
    }

    /// An error about the row starting at `line` of this file.
    pub(super) fn error(&self, line: usize, message: String) -> RowError {
        self.typer.error(line, message)
    }

    /// The record for the row at `line`, or every problem with it in one message when it has
    /// no usable id. The id is remembered even when the row is bad, so a later row with the
    /// same id is still reported. A kept row's unreadable cells are reported to
    /// [`Self::unreadable`].
    pub(super) fn build<'c, 'v>(
        &mut self,
        line: usize,
        cells: impl IntoIterator<Item = (&'c Column, Cell<'v>)>,
    ) -> Result<PatientRecord, RowError> {
        let typed = self.typer.type_row(line, cells, &mut self.spares);
        self.finish(typed)
    }

    /// Readies the check of `rows`' ids, about to be made ([`SeenIds::touch`]).
    pub(super) fn touch<'t>(&self, rows: impl Iterator<Item = &'t TypedRow>) {
        let hashes = rows.filter(|typed| typed.no_id.is_none());
        self.ids.touch(hashes.map(|typed| typed.id_hash));
    }

    /// The checks on a typed row that need the rows before it, made in file order: the id is
    /// new (or the row is skipped), and a kept row's unreadable cells are reported.
    pub(super) fn finish(&mut self, mut typed: TypedRow) -> Result<PatientRecord, RowError> {
        self.finish_in_place(&mut typed)?;
        Ok(typed.record)
    }

    /// [`Self::finish`] on a row left where it was typed: the record is lent, not moved (a
    /// million rows' records each moved through several hands was a tenth of the thread taking
    /// them). The row is not to be finished twice: it is typed into again first.
    pub(super) fn finish_in_place<'t>(
        &mut self,
        typed: &'t mut TypedRow,
    ) -> Result<&'t PatientRecord, RowError> {
        let duplicate = match typed.no_id {
            Some(_) => None,
            None => self
                .ids
                .check(&typed.record.id, typed.id_hash, typed.record.line),
        };
        let line = typed.record.line;
        if let Some(reason) = typed.no_id.take().or(duplicate) {
            let mut problems = std::mem::take(&mut typed.problems);
            problems.insert(0, reason);
            return Err(self.typer.error(line, problems.join("; ")));
        }
        if !typed.problems.is_empty() {
            let report = unreadable_report(&typed.problems, &typed.unknown_names, &typed.record);
            self.unreadable.push(self.typer.error(line, report));
        }
        Ok(&typed.record)
    }
}

impl TypedRow {
    /// The record, when the row can be kept (it has an id; whether the id is new is only
    /// known in file order): to work on before that is known.
    pub(super) fn kept(&self) -> Option<&PatientRecord> {
        self.no_id.is_none().then_some(&self.record)
    }

    /// The record, taken out to be filled again elsewhere (this row is left empty).
    pub(super) fn take_record(&mut self) -> PatientRecord {
        std::mem::take(&mut self.record)
    }

    /// How many of the row's cells could not be read.
    pub(super) fn problem_count(&self) -> usize {
        self.problems.len()
    }

    /// Puts the row's problems in the order of `rank`, given each one's column's name: as if
    /// the cells had been typed in that order (the problems are the same, only their order
    /// follows the cells').
    pub(super) fn order_problems(&mut self, rank: impl Fn(&str) -> usize) {
        let mut ranks: Vec<usize> = self.unknown_names.iter().map(|name| rank(name)).collect();
        // An insertion sort moving each problem with its name: a row has a few at most.
        for next in 1..ranks.len() {
            let mut at = next;
            while at > 0 && ranks[at - 1] > ranks[at] {
                ranks.swap(at - 1, at);
                self.problems.swap(at - 1, at);
                self.unknown_names.swap(at - 1, at);
                at -= 1;
            }
        }
    }
}

impl RowTyper {
    /// An error about the row starting at `line` of this file.
    pub(super) fn error(&self, line: usize, message: String) -> RowError {
        RowError {
            file: self.file.clone(),
            line,
            message,
        }
    }

    /// Every cell of the row at `line` put into a record: a spent one of `spares`, emptied,
    /// when it has one.
    pub(super) fn type_row<'c, 'v>(
        &self,
        line: usize,
        cells: impl IntoIterator<Item = (&'c Column, Cell<'v>)>,
        spares: &mut Spares,
    ) -> TypedRow {
        let schema = &self.schema;
        let mut typed = TypedRow {
            record: spares.record(line, schema.date_fields.len(), schema.fields.len()),
            ..TypedRow::default()
        };
        self.fill_row(&mut typed, cells, spares);
        typed
    }

    /// [`Self::type_row`] into `typed`, a row typed before: its record emptied and filled
    /// where it is, so that a batch of rows is typed, checked and typed again without moving
    /// any record.
    pub(super) fn type_row_into<'c, 'v>(
        &self,
        typed: &mut TypedRow,
        line: usize,
        cells: impl IntoIterator<Item = (&'c Column, Cell<'v>)>,
        spares: &mut Spares,
    ) {
        let schema = &self.schema;
        let dates = schema.date_fields.len();
        spares.refill(&mut typed.record, line, dates, schema.fields.len());
        typed.problems.clear();
        typed.unknown_names.clear();
        self.fill_row(typed, cells, spares);
    }

    /// Every cell put into `typed`'s emptied record, what was wrong noted beside it.
    fn fill_row<'c, 'v>(
        &self,
        typed: &mut TypedRow,
        cells: impl IntoIterator<Item = (&'c Column, Cell<'v>)>,
        spares: &mut Spares,
    ) {
        let TypedRow {
            record,
            problems,
            unknown_names,
            no_id,
            id_hash: hash,
        } = typed;
        let mut id_column = None;
        for (column, cell) in cells {
            if column.role == Role::Id {
                id_column = Some(column);
            }
            if let Err(problem) = self.fill(record, column, cell, spares) {
                problems.push(problem);
                unknown_names.push(column.name.clone());
            }
        }
        spares.settle(record);
        *no_id = record.id.is_empty().then(|| match id_column {
            Some(column) => format!("the id is empty (column {})", column.label()),
            None => "no id (every patient needs an `id`)".to_owned(),
        });
        *hash = id_hash(&record.id);
    }

    /// Puts one cell into the record. Empty cells (and the values the mapping says mean empty)
    /// leave the default (not set); a cell that cannot be read marks its field unknown (an
    /// unreadable opt-out also marks the patient opted out: never send to someone who may
    /// have asked for nothing).
    fn fill(
        &self,
        record: &mut PatientRecord,
        column: &Column,
        cell: Cell<'_>,
        spares: &mut Spares,
    ) -> Result<(), String> {
        let empty = column.empty.as_ref();
        if column.role == Role::Tags {
            let tags = &mut record.tags;
            let mut add = |item: &str| {
                if !means_empty(trim_cell(item), empty) {
                    self.tags.split(item, |tag| tags.push(spares.tag(tag)));
                }
            };
            match cell {
                Cell::Text(text) => add(&text),
                Cell::List(items) => items.iter().for_each(|item| add(item)),
            }
            return Ok(());
        }
        let text = match cell {
            Cell::Text(text) => text,
            Cell::List(items) => Cow::Owned(items.join(";")),
        };
        let text = trim_cell(&text);
        if text.is_empty() || means_empty(text, empty) {
            return Ok(());
        }
        let tz = self.schema.timezone;
        let in_column = |message: String| format!("column {}: {message}", column.label());
        let mut unknown = |field: FieldRef, message: String| {
            record.unknown.insert(field);
            in_column(message)
        };
        match column.role {
            Role::Id => {
                record.id.clear();
                record.id.push_str(text);
            }
            Role::LineUserId => set_text(&mut record.line_user_id, text, spares),
            Role::Name => set_text(&mut record.name, text, spares),
            Role::Stage => match self.stage(text) {
                Ok(stage) => record.stage = stage,
                Err(message) => return Err(unknown(FieldRef::Builtin(Field::Stage), message)),
            },
            Role::StageEnteredAt => match read_instant(text, tz) {
                Ok(at) => record.stage_entered_at = Some(at),
                Err(message) => {
                    return Err(unknown(FieldRef::Builtin(Field::StageEnteredAt), message))
                }
            },
            Role::BirthDate => match read_date(text) {
                Ok(day) => record.birth_date = Some(day),
                Err(message) => return Err(unknown(FieldRef::Builtin(Field::BirthDate), message)),
            },
            Role::OptedOut => match self.opt_out.read(text) {
                Some(opted_out) => record.opted_out = opted_out,
                None => {
                    let message = format!("not a yes/no value ({})", self.opt_out.expected());
                    let message = unknown(FieldRef::Builtin(Field::OptedOut), message);
                    record.opted_out = true;
                    return Err(message);
                }
            },
            Role::Date(index) => match read_instant(text, tz) {
                Ok(at) => record.dates[index] = Some(at),
                Err(message) => return Err(unknown(FieldRef::Date(index), message)),
            },
            Role::Field(index) => set_text(&mut record.fields[index], text, spares),
            // The recycled record's string for the column when it has one (each row of a file
            // has the same columns), else a new entry.
            Role::Other => record.other.set(&column.name, text),
            Role::Tags | Role::Ignored | Role::Shadowing => {}
        }
        Ok(())
    }

    /// The stage a cell names (`None`: a status the mapping says means no stage).
    fn stage(&self, value: &str) -> Result<Option<usize>, String> {
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

/// What a kept row's unreadable cells mean for the patient: each cell's problem, then what is
/// left out. Names columns and fields, never values.
fn unreadable_report(problems: &[String], fields: &[String], record: &PatientRecord) -> String {
    let mut report = problems.join("; ");
    if record.unknown.contains(FieldRef::Builtin(Field::OptedOut)) {
        report.push_str(
            "; the opt-out cannot be read, so nothing is sent to this patient until it is fixed",
        );
    } else {
        let names: Vec<String> = fields
            .iter()
            .map(|name| format!("`{}`", printable(name)))
            .collect();
        report.push_str(&format!(
            "; unknown for this patient, so steps that need {} are not evaluated for them",
            names.join(", ")
        ));
    }
    report
}
