//! Which patient fields exist and what kind of value each holds.

use super::Checker;

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

/// Fields every patient record has, whatever the rules declare.
pub const BUILTIN_FIELDS: &[(&str, FieldKind, &str)] = &[
    (
        "id",
        FieldKind::Text,
        "the patient's id in the clinic's system",
    ),
    ("name", FieldKind::Text, "the patient's name"),
    (
        "line_user_id",
        FieldKind::Text,
        "the patient's LINE user id",
    ),
    ("stage", FieldKind::Stage, "the patient's care stage"),
    (
        "stage_entered_at",
        FieldKind::Date,
        "when the patient entered the current stage",
    ),
    ("birth_date", FieldKind::Date, "the patient's date of birth"),
    ("age", FieldKind::Number, "whole years since birth_date"),
    ("tags", FieldKind::Tags, "the patient's tags"),
    (
        "tag",
        FieldKind::Tags,
        "one of the patient's tags, as in `tag=vip`",
    ),
    (
        "opted_out",
        FieldKind::Text,
        "set when the patient asked for no messages",
    ),
];

/// Template variables that come from the rules rather than the patient; reserved as names.
pub(super) const RULE_VARIABLES: &[&str] = &["clinic"];

pub(super) fn builtin(name: &str) -> Option<(FieldKind, &'static str)> {
    BUILTIN_FIELDS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, kind, about)| (*kind, *about))
}

impl Checker<'_> {
    pub(super) fn field_kind(&self, name: &str) -> Option<FieldKind> {
        if let Some((kind, _)) = builtin(name) {
            return Some(kind);
        }
        if self.decls.dates.iter().any(|d| d.node == name) {
            return Some(FieldKind::Date);
        }
        if self.decls.fields.iter().any(|d| d.node == name) {
            return Some(FieldKind::Text);
        }
        None
    }

    /// Every field a condition may name.
    pub(super) fn field_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = BUILTIN_FIELDS.iter().map(|(n, _, _)| *n).collect();
        names.extend(self.decls.dates.iter().map(|d| d.node.as_str()));
        names.extend(self.decls.fields.iter().map(|d| d.node.as_str()));
        names
    }

    /// Every field an anchor may name: the instants.
    pub(super) fn date_field_names(&self) -> Vec<&str> {
        let mut names = vec!["stage_entered_at", "birth_date"];
        names.extend(self.decls.dates.iter().map(|d| d.node.as_str()));
        names
    }

    /// Every variable a template may use.
    pub(super) fn template_variables(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .field_names()
            .into_iter()
            .filter(|n| *n != "tag")
            .collect();
        names.extend(RULE_VARIABLES);
        names
    }
}
