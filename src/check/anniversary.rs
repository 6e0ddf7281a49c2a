//! Timings on `birth_date`: a birthday comes back every year, but `0d after birth_date` counts
//! once from the day of birth, so it could only fire on that one day, long past.

use super::Checker;
use crate::diagnostic::Code;
use crate::fields::Field;
use crate::syntax::{Anchor, StepDecl};

impl Checker<'_> {
    /// Warns when a step counts once from `birth_date` (`D after` or `D before`, not `every`):
    /// its only occurrence is D from the day the patient was born.
    pub(super) fn birth_date_once(&mut self, step: &StepDecl) {
        let (duration, field, direction) = match &step.timing.anchor {
            Anchor::AfterField(duration, field) => (duration, field, "after"),
            Anchor::BeforeField(duration, field) => (duration, field, "before"),
            _ => return,
        };
        let birth_date = Field::BirthDate.name();
        if field.node != birth_date {
            return;
        }
        let at = step
            .timing
            .at
            .as_ref()
            .map(|at| format!(" at {}", at.node))
            .unwrap_or_default();
        let when = match (direction, duration.node.amount) {
            ("after", 0) => "on the day of birth".to_owned(),
            _ => format!("{} {direction} the day of birth", duration.node),
        };
        let diag = self.report(
            Code::BirthDateOnce,
            step.timing.span,
            format!(
                "`{} {direction} {birth_date}` fires once, {when}, not on each birthday",
                duration.node
            ),
        );
        diag.label = Some("once, from the day of birth".into());
        diag.help = Some(format!(
            "for each birthday write `every 1y after {birth_date}{at}`; a birthday on 02-29 \
             then falls on 02-28 in common years"
        ));
    }
}
