//! Which of a patient's fields are unknown: their cell was there but could not be read (a date
//! that is not a date, a stage the rules do not have, an opt-out word nobody listed). One
//! machine word per record, so marking and testing cost nothing on a million-row export.

use crate::fields::{Field, FieldRef};

/// A set of fields that can be unknown, as bits: `stage`, `stage_entered_at`, `birth_date`
/// (and so `age`), `opted_out`, and the rules' date fields. Text fields (`name`, `line_user_id`,
/// declared `fields`, `tags`) are taken as written and are never unknown.
///
/// Date fields past the 60th share the last bit: a step that needs one of them is then left
/// out when any of them is unknown — more than needed, never less, which is the safe side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FieldSet(u64);

/// Bits before the first date field.
const FIRST_DATE: usize = 4;

impl FieldSet {
    pub const EMPTY: FieldSet = FieldSet(0);
    /// Every field: what a rhai condition may read, since which fields a script reads is not
    /// known before it runs.
    pub const ALL: FieldSet = FieldSet(u64::MAX);

    /// The set of one field (empty for fields that are never unknown).
    pub fn of(field: FieldRef) -> FieldSet {
        FieldSet(slot(field).map_or(0, |bit| 1 << bit))
    }

    pub fn insert(&mut self, field: FieldRef) {
        self.0 |= FieldSet::of(field).0;
    }

    pub fn union(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 | other.0)
    }

    pub fn intersects(self, other: FieldSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn contains(self, field: FieldRef) -> bool {
        self.intersects(FieldSet::of(field))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The first field of both sets, by its name in the rules (`date_fields` are the rules'
    /// date names): what a message about a step left out names.
    pub fn first_shared(self, other: FieldSet, date_fields: &[String]) -> Option<String> {
        let shared = FieldSet(self.0 & other.0);
        let builtins = [
            Field::Stage,
            Field::StageEnteredAt,
            Field::BirthDate,
            Field::OptedOut,
        ];
        builtins
            .into_iter()
            .find(|&field| shared.contains(FieldRef::Builtin(field)))
            .map(|field| field.name().to_owned())
            .or_else(|| {
                (0..date_fields.len())
                    .find(|&index| shared.contains(FieldRef::Date(index)))
                    .map(|index| date_fields[index].clone())
            })
    }
}

/// The bit of a field that can be unknown.
fn slot(field: FieldRef) -> Option<u32> {
    let bit = match field {
        FieldRef::Builtin(Field::Stage) => 0,
        FieldRef::Builtin(Field::StageEnteredAt) => 1,
        // `age` is computed from `birth_date`: unknown with it.
        FieldRef::Builtin(Field::BirthDate | Field::Age) => 2,
        FieldRef::Builtin(Field::OptedOut) => 3,
        FieldRef::Builtin(
            Field::Id | Field::Name | Field::LineUserId | Field::Tags | Field::Tag,
        ) => return None,
        FieldRef::Date(index) => FIRST_DATE + index.min(63 - FIRST_DATE),
        FieldRef::Declared(_) => return None,
    };
    u32::try_from(bit).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_is_unknown_with_birth_date() {
        let mut unknown = FieldSet::EMPTY;
        unknown.insert(FieldRef::Builtin(Field::BirthDate));
        assert!(unknown.contains(FieldRef::Builtin(Field::Age)));
        assert!(!unknown.contains(FieldRef::Builtin(Field::Stage)));
        assert!(!unknown.contains(FieldRef::Date(0)));
    }

    #[test]
    fn text_fields_are_never_unknown() {
        let mut unknown = FieldSet::EMPTY;
        for field in [Field::Id, Field::Name, Field::LineUserId, Field::Tags] {
            unknown.insert(FieldRef::Builtin(field));
        }
        unknown.insert(FieldRef::Declared(3));
        assert!(unknown.is_empty());
        assert!(!FieldSet::ALL.contains(FieldRef::Declared(0)));
    }

    #[test]
    fn many_date_fields_share_the_last_bit_on_the_safe_side() {
        let mut unknown = FieldSet::EMPTY;
        unknown.insert(FieldRef::Date(70));
        assert!(unknown.contains(FieldRef::Date(70)));
        assert!(
            unknown.contains(FieldRef::Date(59)),
            "shares the bit: left out too"
        );
        assert!(!unknown.contains(FieldRef::Date(58)));
    }

    #[test]
    fn the_first_shared_field_is_named() {
        let dates = vec!["appointment_at".to_owned(), "visited_at".to_owned()];
        let mut unknown = FieldSet::EMPTY;
        unknown.insert(FieldRef::Date(1));
        unknown.insert(FieldRef::Builtin(Field::Stage));
        let needs = FieldSet::of(FieldRef::Date(1)).union(FieldSet::of(FieldRef::Date(0)));
        assert_eq!(
            unknown.first_shared(needs, &dates).as_deref(),
            Some("visited_at")
        );
        assert_eq!(
            unknown.first_shared(FieldSet::ALL, &dates).as_deref(),
            Some("stage")
        );
        assert_eq!(unknown.first_shared(FieldSet::EMPTY, &dates), None);
    }
}
