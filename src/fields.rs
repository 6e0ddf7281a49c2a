//! The patient fields built into steprule: their names, kinds and descriptions, written once.
//! `check` resolves condition fields and suggests names from here, `records` maps columns with
//! it, and the rhai map, the template context and `check`'s sample patient are all built by
//! walking [`Field::ALL`] through one value function
//! ([`PatientRecord::value`](crate::records::PatientRecord::value)). Adding a field is one
//! variant here; every `match` on it then fails to compile until it says what the field is.

/// A field every patient record has, whatever the rules declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Id,
    Name,
    LineUserId,
    Stage,
    StageEnteredAt,
    BirthDate,
    /// Whole years since `birth_date` on the clinic's calendar day; computed, not a column.
    Age,
    Tags,
    /// `tag=vip`: a condition-only spelling of [`Field::Tags`].
    Tag,
    OptedOut,
}

/// What a field holds, which decides the comparisons that make sense on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// The care stage; compared with declared stage names.
    Stage,
    /// The patient's tags (`tag=vip` means "has the tag vip").
    Tags,
    /// An instant (declared in `dates`, or built in).
    Date,
    Number,
    /// Anything else; compared as text, or as a number when both sides are numbers.
    Text,
}

impl Field {
    /// Every built-in field, in the order messages list them.
    pub const ALL: [Field; 10] = [
        Field::Id,
        Field::Name,
        Field::LineUserId,
        Field::Stage,
        Field::StageEnteredAt,
        Field::BirthDate,
        Field::Age,
        Field::Tags,
        Field::Tag,
        Field::OptedOut,
    ];

    /// The name rules, columns, rhai (`patient.NAME`) and templates use.
    pub fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Name => "name",
            Field::LineUserId => "line_user_id",
            Field::Stage => "stage",
            Field::StageEnteredAt => "stage_entered_at",
            Field::BirthDate => "birth_date",
            Field::Age => "age",
            Field::Tags => "tags",
            Field::Tag => "tag",
            Field::OptedOut => "opted_out",
        }
    }

    pub fn kind(self) -> FieldKind {
        match self {
            Field::Id | Field::Name | Field::LineUserId | Field::OptedOut => FieldKind::Text,
            Field::Stage => FieldKind::Stage,
            Field::StageEnteredAt | Field::BirthDate => FieldKind::Date,
            Field::Age => FieldKind::Number,
            Field::Tags | Field::Tag => FieldKind::Tags,
        }
    }

    /// What the field is, for help texts.
    pub fn about(self) -> &'static str {
        match self {
            Field::Id => "the patient's id in the clinic's system",
            Field::Name => "the patient's name",
            Field::LineUserId => "the patient's LINE user id",
            Field::Stage => "the patient's care stage",
            Field::StageEnteredAt => "when the patient entered the current stage",
            Field::BirthDate => "the patient's date of birth",
            Field::Age => "whole years since birth_date",
            Field::Tags => "the patient's tags",
            Field::Tag => "one of the patient's tags, as in `tag=vip`",
            Field::OptedOut => "set when the patient asked for no messages",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|field| field.name() == name)
    }

    /// The field a value is read from: `tag` is another spelling of `tags`.
    pub fn canonical(self) -> Field {
        match self {
            Field::Tag => Field::Tags,
            other => other,
        }
    }

    /// Whether an export has a column for this field. A column named after a field without
    /// one (`age`, `tag`) would shadow a computed value: records warns and ignores it.
    pub fn has_column(self) -> bool {
        match self {
            Field::Id
            | Field::Name
            | Field::LineUserId
            | Field::Stage
            | Field::StageEnteredAt
            | Field::BirthDate
            | Field::Tags
            | Field::OptedOut => true,
            Field::Age | Field::Tag => false,
        }
    }

    /// Whether the field is a variable of the patient in rhai and templates (`tag` is a
    /// condition spelling only).
    pub fn is_variable(self) -> bool {
        self.canonical() == self
    }

    /// Whether templates are given the field. `line_user_id` and `opted_out` are delivery's
    /// business, not message text; `check` still knows them as names so that a template
    /// using one renders empty rather than failing.
    pub fn in_templates(self) -> bool {
        match self {
            Field::Id
            | Field::Name
            | Field::Stage
            | Field::StageEnteredAt
            | Field::BirthDate
            | Field::Age
            | Field::Tags => true,
            Field::LineUserId | Field::OptedOut | Field::Tag => false,
        }
    }
}

/// Where a field a condition names lives in a patient record, resolved once by `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldRef {
    /// A built-in field (never [`Field::Tag`]: it resolves to [`Field::Tags`]).
    Builtin(Field),
    /// A declared date field, by index into the rules' `dates`.
    Date(usize),
    /// A declared field, by index into the rules' `fields`.
    Declared(usize),
}

/// A patient's value of one field at one instant, before rhai or a template sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// Not set (an empty cell, no birth date for `age`).
    Empty,
    Text(&'a str),
    Number(i64),
    Instant(chrono::DateTime<chrono::Utc>),
    /// A calendar day (`birth_date`), shown as `YYYY-MM-DD`.
    Day(chrono::NaiveDate),
    List(&'a [String]),
    Flag(bool),
}

/// Whole years from `birth` to `day`: one less until the birthday comes round (a Feb 29
/// birthday comes round on Mar 1 in other years).
pub fn age_on(birth: chrono::NaiveDate, day: chrono::NaiveDate) -> i64 {
    use chrono::Datelike;
    let mut age = i64::from(day.year() - birth.year());
    if (day.month(), day.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_round_trip() {
        for field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(field));
        }
        let mut names: Vec<_> = Field::ALL.iter().map(|f| f.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Field::ALL.len());
    }

    #[test]
    fn computed_fields_have_no_column() {
        assert!(!Field::Age.has_column());
        assert!(!Field::Tag.has_column());
        assert!(Field::Tags.has_column());
    }
}
