//! Which patient fields a rule file can name: the built-in ones ([`Field`]) and those it
//! declares, and what kind of value each holds.

use super::Checker;

pub use crate::fields::FieldKind;
use crate::fields::{Field, FieldRef};

/// Template variables that come from the rules rather than the patient; reserved as names.
pub(super) const RULE_VARIABLES: &[&str] = &["clinic"];

pub(super) fn builtin(name: &str) -> Option<Field> {
    Field::from_name(name)
}

impl Checker<'_> {
    pub(super) fn field_kind(&self, name: &str) -> Option<FieldKind> {
        if let Some(field) = builtin(name) {
            return Some(field.kind());
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
        let mut names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        names.extend(self.decls.dates.iter().map(|d| d.node.as_str()));
        names.extend(self.decls.fields.iter().map(|d| d.node.as_str()));
        names
    }

    /// Every field an anchor may name: the instants.
    pub(super) fn date_field_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Field::ALL
            .iter()
            .filter(|f| f.kind() == FieldKind::Date)
            .map(|f| f.name())
            .collect();
        names.extend(self.decls.dates.iter().map(|d| d.node.as_str()));
        names
    }

    /// Every variable a template may use.
    pub(super) fn template_variables(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .field_names()
            .into_iter()
            .filter(|n| builtin(n).is_none_or(Field::is_variable))
            .collect();
        names.extend(RULE_VARIABLES);
        names
    }
}

/// Whether a condition's field is the patient's stage.
pub(super) fn is_stage(name: &str) -> bool {
    builtin(name) == Some(Field::Stage)
}

/// The built-in a name resolves to in conditions (`tag` reads `tags`).
pub(super) fn builtin_ref(name: &str) -> Option<FieldRef> {
    builtin(name).map(|field| FieldRef::Builtin(field.canonical()))
}
