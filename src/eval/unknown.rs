//! Steps left out for a patient whose export row had a cell that could not be read: a step is
//! evaluated only when every field its conditions and timing read is known. What each step
//! reads is worked out once per plan; per patient it is one AND of two words.

use super::Context;
use crate::fields::{Field, FieldRef};
use crate::plan::{AnchorField, Leaf, PlannedStep, Test};
use crate::records::FieldSet;

/// The fields a step reads: its `when` condition first, then its timing and `unless`. A rhai
/// condition may read any field.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct StepNeeds {
    when: FieldSet,
    /// The anchor and the `unless` condition, read once `when` holds.
    timing: FieldSet,
}

/// Which part of a step is about to be read.
#[derive(Debug, Clone, Copy)]
pub(super) enum Part {
    When,
    Timing,
}

pub(super) fn needs(step: &PlannedStep) -> StepNeeds {
    // A fixed date (`on 2026-12-28`, `every year on 06-04`) reads no field of the export.
    let anchor = match step.anchor {
        AnchorField::StageEnteredAt => Some(FieldRef::Builtin(Field::StageEnteredAt)),
        AnchorField::BirthDate => Some(FieldRef::Builtin(Field::BirthDate)),
        AnchorField::Date(index) => Some(FieldRef::Date(index)),
        // Reactions and sends come from the ledger, not the export.
        AnchorField::Calendar | AnchorField::Sent(_) => None,
    };
    let mut timing = anchor.map_or(FieldSet::EMPTY, FieldSet::of);
    if let Some(unless) = &step.unless {
        timing = timing.union(read_by(unless));
    }
    StepNeeds {
        when: read_by(&step.when),
        timing,
    }
}

fn read_by(test: &Test) -> FieldSet {
    match test {
        Test::And(tests) | Test::Or(tests) => tests
            .iter()
            .fold(FieldSet::EMPTY, |set, test| set.union(read_by(test))),
        Test::Not(inner) => read_by(inner),
        Test::Leaf(leaf, _) => match leaf {
            Leaf::StageIn(_) => FieldSet::of(FieldRef::Builtin(Field::Stage)),
            Leaf::TagIn(_) => FieldSet::of(FieldRef::Builtin(Field::Tags)),
            Leaf::Compare { field, .. } | Leaf::OneOf { field, .. } | Leaf::IsSet(field) => {
                FieldSet::of(*field)
            }
            Leaf::Script(_) => FieldSet::ALL,
            Leaf::Reaction(_) => FieldSet::EMPTY,
        },
    }
}

impl Context<'_> {
    /// The field that keeps `step` from being evaluated further for this patient: one that
    /// `part` of it reads whose cell could not be read. A `when` that is false on known fields
    /// is simply false; only a step that would otherwise go on is left out.
    ///
    /// Asked for every step of every patient: the common case (every cell read) is one test,
    /// inlined into the caller; only a patient with an unreadable cell pays for the look-up.
    #[inline]
    pub(super) fn unknown_need(&self, step: &PlannedStep, part: Part) -> Option<String> {
        if self.patient.unknown.is_empty() {
            return None;
        }
        self.unknown_need_of(step, part)
    }

    #[cold]
    fn unknown_need_of(&self, step: &PlannedStep, part: Part) -> Option<String> {
        let needs = self
            .needs
            .get(step.index)
            .map_or(FieldSet::ALL, |needs| match part {
                Part::When => needs.when,
                Part::Timing => needs.timing,
            });
        self.patient
            .unknown
            .first_shared(needs, &self.plan.schema.date_fields)
    }
}
