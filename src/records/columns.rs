//! What each column of an export means, decided once from its header (through the clinic's
//! header mapping) so rows are only looked up, never re-interpreted.

use super::{HeaderMapping, RecordSchema, RecordsError};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;

use crate::fields::Field;
use crate::printable::printable;
use crate::time::parse_date;

/// The part of a [`super::PatientRecord`] a column fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Id,
    LineUserId,
    Name,
    Stage,
    StageEnteredAt,
    BirthDate,
    Tags,
    OptedOut,
    /// Index into [`RecordSchema::date_fields`].
    Date(usize),
    /// Index into [`RecordSchema::fields`].
    Field(usize),
    /// Kept in `other` under the column's name.
    Other,
    /// Named like a computed built-in (`age`, `tag`); not used, so that the built-in means the
    /// same in conditions, rhai and templates. Reading the file warns once about it.
    Shadowing,
    /// A column without a header (Excel's trailing commas): nothing to call its values.
    Ignored,
}

/// One column of an export: its header as the file spells it, the steprule name it maps to,
/// and what it fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Column {
    pub header: String,
    pub name: String,
    pub role: Role,
    /// The values the header mapping says mean "empty" in this column.
    pub empty: Option<Arc<[String]>>,
}

impl Column {
    /// How messages name the column: as in the file, with steprule's name when it differs.
    /// Headers are not patient data, but they are text from the file: escaped.
    pub(super) fn label(&self) -> String {
        if self.header == self.name {
            format!("`{}`", printable(&self.header))
        } else {
            format!("`{}` ({})", printable(&self.header), printable(&self.name))
        }
    }
}

/// Decides what headers mean for one schema and mapping.
#[derive(Debug, Clone)]
pub(super) struct Resolver {
    schema: RecordSchema,
    mapping: Option<HeaderMapping>,
    notices: Notices,
}

/// What reading a file has to say about it as a whole, each thing once: columns that are
/// ignored because they are named like a computed built-in. Shared between the resolver
/// (which finds them, for JSONL row by row) and [`super::PatientRecords`] (which hands them
/// out). At most one per distinct header named so, and only the header mapping can make more
/// than two.
#[derive(Debug, Clone, Default)]
pub(super) struct Notices(Rc<RefCell<NoticeLog>>);

#[derive(Debug, Default)]
struct NoticeLog {
    seen: BTreeSet<String>,
    pending: Vec<String>,
}

impl Notices {
    fn shadowing(&self, column: &Column) {
        let mut log = self.0.borrow_mut();
        if log.seen.insert(column.header.clone()) {
            log.pending.push(format!(
                "column {} is ignored: `{}` is a built-in field that steprule computes, and it \
                 means the same in conditions, rhai and templates; rename the column (or map it \
                 to another name in the header mapping) to use it",
                column.label(),
                printable(&column.name)
            ));
        }
    }

    /// A notice found elsewhere (by the thread that read the file ahead).
    pub(super) fn push(&self, notice: String) {
        self.0.borrow_mut().pending.push(notice);
    }

    /// The notices found since the last call.
    pub(super) fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.borrow_mut().pending)
    }
}

impl Resolver {
    pub(super) fn new(schema: &RecordSchema, mapping: Option<&HeaderMapping>) -> Self {
        Resolver {
            schema: schema.clone(),
            mapping: mapping.cloned(),
            notices: Notices::default(),
        }
    }

    pub(super) fn resolve(&self, header: &str) -> Column {
        let header = header.trim();
        let name = self
            .mapping
            .as_ref()
            .and_then(|mapping| mapping.column(header))
            .unwrap_or(header);
        let role = match (name, Field::from_name(name)) {
            ("", _) => Role::Ignored,
            (_, Some(field)) => match field {
                Field::Id => Role::Id,
                Field::LineUserId => Role::LineUserId,
                Field::Name => Role::Name,
                Field::Stage => Role::Stage,
                Field::StageEnteredAt => Role::StageEnteredAt,
                Field::BirthDate => Role::BirthDate,
                Field::Tags => Role::Tags,
                Field::OptedOut => Role::OptedOut,
                // Computed, with no column of their own: a column so named is not used.
                Field::Age | Field::Tag => Role::Shadowing,
            },
            (other, None) => match (
                self.schema.date_index(other),
                self.schema.field_index(other),
            ) {
                (Some(index), _) => Role::Date(index),
                (None, Some(index)) => Role::Field(index),
                (None, None) => Role::Other,
            },
        };
        let empty = self
            .mapping
            .as_ref()
            .and_then(|mapping| mapping.empty_values(header, name));
        let column = Column {
            header: header.to_owned(),
            name: name.to_owned(),
            role,
            empty,
        };
        if role == Role::Shadowing {
            self.notices.shadowing(&column);
        }
        column
    }

    pub(super) fn notices(&self) -> Notices {
        self.notices.clone()
    }

    /// Whether steprule or the clinic's mapping knows the header: a column of the rules or a
    /// built-in one, or one the mapping names.
    fn knows(&self, column: &Column) -> bool {
        let mapped = self
            .mapping
            .as_ref()
            .is_some_and(|mapping| mapping.column(&column.header).is_some());
        mapped || !matches!(column.role, Role::Other | Role::Ignored | Role::Shadowing)
    }

    /// The columns of a CSV header (on `line`), checked once for the whole file: an `id`
    /// column must be there and no two columns may mean the same thing.
    ///
    /// A first line without an `id` may be a patient row of an export saved without its
    /// header. Its cells are then patient data, so they are named only when the line is
    /// clearly a header: when it has a date in it, or no column steprule knows, it is not
    /// repeated at all.
    pub(super) fn resolve_header<'h>(
        &self,
        file: &str,
        line: usize,
        header: impl IntoIterator<Item = &'h str>,
    ) -> Result<Vec<Column>, RecordsError> {
        let columns: Vec<Column> = header.into_iter().map(|h| self.resolve(h)).collect();
        let has_id = columns.iter().any(|c| c.role == Role::Id);
        if !has_id && columns.iter().any(|c| parse_date(&c.header).is_ok()) {
            return Err(RecordsError::NoHeader {
                file: file.to_owned(),
            });
        }
        if !has_id && !columns.iter().any(|c| self.knows(c)) {
            return Err(RecordsError::UnknownHeader {
                file: file.to_owned(),
                line,
                columns: columns.len(),
            });
        }
        if let Some((first, second)) = first_duplicate(columns.iter()) {
            return Err(RecordsError::DuplicateColumn {
                file: file.to_owned(),
                name: second.name.clone(),
                first: first.header.clone(),
                second: second.header.clone(),
            });
        }
        if !has_id {
            let headers: Vec<String> = columns.iter().map(|c| c.header.clone()).collect();
            let suggestion =
                crate::diagnostic::suggest(Field::Id.name(), headers.iter().map(String::as_str))
                    .map(str::to_owned);
            return Err(RecordsError::MissingIdColumn {
                file: file.to_owned(),
                header: headers,
                suggestion,
            });
        }
        Ok(columns)
    }
}

/// The first pair of columns that mean the same thing. Quadratic, but headers are short and
/// this runs once per file (or per JSON row, which has a dozen keys).
pub(super) fn first_duplicate<'c>(
    columns: impl Iterator<Item = &'c Column> + Clone,
) -> Option<(&'c Column, &'c Column)> {
    columns.clone().enumerate().find_map(|(i, later)| {
        if later.role == Role::Ignored {
            return None;
        }
        columns
            .clone()
            .take(i)
            .find(|earlier| earlier.name == later.name)
            .map(|earlier| (earlier, later))
    })
}
