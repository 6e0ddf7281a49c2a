//! The cap and priorities: a reminder (a step timed `before` a date field) that the cap can
//! drop because other steps, no less important than it, fill the patient's day first.

use std::collections::BTreeSet;

use super::timing::{overlap, stage_set};
use super::{CheckedStep, Checker};
use crate::diagnostic::{Code, Related};
use crate::syntax::{Anchor, Priority};
use crate::values::CapPeriod;

/// At most this many rival steps are named and pointed at.
const RIVALS_SHOWN: usize = 4;

impl Checker<'_> {
    /// Warns when the cap can drop a reminder: a `before FIELD` step has, among the steps that
    /// can reach the same patients, at least `cap` others of the same or a higher priority.
    /// The cap keeps higher priorities first and then earlier sends, so on a day all of them
    /// fall on, those others can take every slot and the reminder, which cannot move past its
    /// date, is dropped.
    pub(super) fn reminders_capped(&mut self, steps: &[CheckedStep<'_>]) {
        let Some(cap) = self.decls.cap else {
            return;
        };
        let all_stages: BTreeSet<String> =
            self.decls.stages.iter().map(|s| s.node.clone()).collect();
        let stages: Vec<_> = steps
            .iter()
            .map(|step| stage_set(&step.decl.when.node, &all_stages))
            .collect();
        let priority = |step: &CheckedStep<'_>| {
            step.decl
                .priority
                .first()
                .map_or_else(Priority::default, |p| p.node)
        };
        for (index, reminder) in steps.iter().enumerate() {
            let Anchor::BeforeField(_, field) = &reminder.decl.timing.anchor else {
                continue;
            };
            let own = priority(reminder);
            // Enough to tell whether they fill the cap and to name a few: a file of 10,000
            // steps is checked in well under a second, and no message grows with it.
            let wanted = (cap.count as usize).max(RIVALS_SHOWN) + 1;
            let rivals: Vec<&CheckedStep<'_>> = steps
                .iter()
                .enumerate()
                .filter(|(other, step)| {
                    *other != index
                        && priority(step) >= own
                        && overlap(&stages[index], &stages[*other])
                })
                .map(|(_, step)| step)
                .take(wanted)
                .collect();
            if rivals.len() < cap.count as usize {
                continue;
            }
            let period = match cap.period {
                CapPeriod::Day => "day",
                CapPeriod::Week => "week",
            };
            let mut names: Vec<String> = rivals
                .iter()
                .take(RIVALS_SHOWN)
                .map(|r| format!("`{}`", r.id))
                .collect();
            if rivals.len() > RIVALS_SHOWN {
                names.push("others".into());
            }
            let help = if own < Priority::High {
                format!(
                    "give it `priority high`: the cap keeps higher priorities first, so the \
                     reminder before `{}` goes out and a lower-priority step waits or is dropped \
                     instead",
                    field.node
                )
            } else {
                format!(
                    "{} or more other `priority high` steps can reach the same patient; raise \
                     the cap, or lower their priority",
                    cap.count
                )
            };
            let diag = self.report(
                Code::ReminderCapped,
                reminder.decl.timing.span,
                format!(
                    "with `cap {} per {period}`, the reminder `{}` can be dropped by the cap: {} \
                     (priority {} or higher) can fill the {period} first",
                    cap.count,
                    reminder.id,
                    names.join(", "),
                    own.name()
                ),
            );
            diag.label = Some("can be dropped by the cap".into());
            for rival in rivals.iter().take(RIVALS_SHOWN) {
                diag.related.push(Related {
                    span: rival.decl.timing.span,
                    label: format!("`{}` competes for the same slots", rival.id),
                });
            }
            diag.help = Some(help);
        }
    }
}
