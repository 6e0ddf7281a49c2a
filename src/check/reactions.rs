//! Reactions (`clicked survey within 3d`, `answered survey "yes"`, `booked since survey`,
//! `blocked`) and timings after another step's send (`3d after sent survey`): every step they
//! name exists, no step waits on itself, their windows are bounded, and a reaction that
//! nothing can ever record is a warning.

use super::{CheckedStep, Checker};
use crate::diagnostic::{suggest, Code};
use crate::source::{Span, Spanned};
use crate::syntax::{Anchor, Condition, Duration, Ident, Reaction, ReactionKind, StepDecl};

/// The longest a reaction window or an `after sent` timing may be: a pass reads the sends and
/// events of this long back (plus sendable windows), so it bounds what a pass reads.
pub const MAX_REACTION_DAYS: u64 = 366;

const REACTION_RANGE: &str = "reaction windows and `after sent` timings go up to 1 year: \
`within 366d`, `12mo`, `1y`; steprule reads the sends and events of the last year for them";

/// What the rules ask of the ledger, besides the steps: whether clicks and postbacks are
/// tracked, and whether bookings are watched.
pub(super) struct Recorded {
    pub tracked: bool,
    pub bookings: bool,
}

impl Checker<'_> {
    pub(super) fn reactions(&mut self, checked: &[CheckedStep<'_>], recorded: &Recorded) {
        let ids: Vec<&str> = checked.iter().map(|step| step.id.as_str()).collect();
        self.step_index = (ids.iter().enumerate())
            .map(|(index, id)| ((*id).to_owned(), index))
            .collect();
        // The step each step's timing waits for (`after sent`), by index.
        let mut waits_for: Vec<Option<usize>> = vec![None; checked.len()];
        for (index, step) in checked.iter().enumerate() {
            if let Anchor::AfterSent(duration, sent) = &step.decl.timing.anchor {
                // Past 100 years the timing check has said so already.
                if duration.node.in_range() {
                    self.bounded(duration);
                }
                if let Some(target) = self.known_step(sent, &ids) {
                    if target == index {
                        let diag = self.report(
                            Code::ReactionCycle,
                            sent.span,
                            format!("step `{}` is timed after its own send", sent.node),
                        );
                        diag.label = Some("this step".into());
                        diag.help = Some(
                            "a step cannot wait for itself; for a repeat, write `every D`".into(),
                        );
                    } else {
                        waits_for[index] = Some(target);
                    }
                }
            }
            let mut reactions = Vec::new();
            collect(&step.decl.when, &mut reactions);
            for unless in &step.decl.unless {
                collect(unless, &mut reactions);
            }
            for (reaction, span) in reactions {
                self.reaction(reaction, span, index, &step.id, &ids, recorded);
            }
        }
        self.cycles(checked, &waits_for);
    }

    fn reaction(
        &mut self,
        reaction: &Reaction,
        span: Span,
        index: usize,
        id: &str,
        ids: &[&str],
        recorded: &Recorded,
    ) {
        if let Some(window) = &reaction.window {
            self.bounded(window);
        }
        if let Some(step) = reaction.kind.step() {
            if self.known_step(step, ids) == Some(index) {
                let diag = self.report(
                    Code::ReactionCycle,
                    step.span,
                    format!("step `{id}` reacts to its own send"),
                );
                diag.label = Some("this step".into());
                diag.help = Some(format!(
                    "a step's condition is decided before it sends, so it can never see a \
                     reaction to itself; react to the step before it, or time a new step \
                     `after sent {id}`"
                ));
                return;
            }
        }
        let never = match &reaction.kind {
            ReactionKind::Clicked(_) if !recorded.tracked => Some((
                "no link is tracked",
                "`clicked` needs tracked links: add `track \"https://…\"` and run `steprule serve`",
            )),
            ReactionKind::Answered(..) if !recorded.tracked => Some((
                "no postback is tracked",
                "`answered` needs tracked postback buttons: add `track \"https://…\"` and run \
                 `steprule serve`",
            )),
            ReactionKind::BookedSince(_) if !recorded.bookings => Some((
                "no booking field is watched",
                "`booked since` needs the export's booking field: declare it with `bookings \
                 next_booking_at`",
            )),
            _ => None,
        };
        if let Some((why, help)) = never {
            let diag = self.report(
                Code::ReactionNeverRecorded,
                span,
                format!("this reaction can never be true: {why}"),
            );
            diag.label = Some("never recorded".into());
            diag.help = Some(help.into());
        }
    }

    /// The index of the step `name` names, or a report that there is none.
    fn known_step(&mut self, name: &Ident, ids: &[&str]) -> Option<usize> {
        if let Some(index) = ids.iter().position(|id| *id == name.node) {
            return Some(index);
        }
        let help = match suggest(&name.node, ids.iter().copied()) {
            Some(id) => format!("did you mean `{id}`?"),
            None if ids.is_empty() => "name the step with `step NAME:`".into(),
            None => format!("the steps are: {}", ids.join(", ")),
        };
        let diag = self.report(
            Code::UnknownStep,
            name.span,
            format!("unknown step `{}`", name.node),
        );
        diag.label = Some("no step has this id".into());
        diag.help = Some(help);
        None
    }

    /// Reports a window of zero or longer than [`MAX_REACTION_DAYS`].
    fn bounded(&mut self, duration: &Spanned<Duration>) {
        let fits = match duration.node.fixed_minutes() {
            Some(minutes) => minutes <= MAX_REACTION_DAYS * 24 * 60,
            None => duration.node.calendar_months().is_some_and(|m| m <= 12),
        };
        if fits && duration.node.amount > 0 {
            return;
        }
        let diag = self.report(
            Code::DurationOutOfRange,
            duration.span,
            match duration.node.amount {
                0 => format!("`{}` is zero", duration.node),
                _ => format!("`{}` is longer than 1 year", duration.node),
            },
        );
        diag.label = Some("out of range".into());
        diag.help = Some(REACTION_RANGE.into());
    }

    /// Reports each cycle of `after sent` steps once, at the step of it that comes first.
    fn cycles(&mut self, checked: &[CheckedStep<'_>], waits_for: &[Option<usize>]) {
        // 0: not seen, 1: on the current path, 2: done.
        let mut state = vec![0u8; waits_for.len()];
        for start in 0..waits_for.len() {
            let mut path = Vec::new();
            let mut at = Some(start);
            while let Some(index) = at {
                match state[index] {
                    2 => break,
                    1 => {
                        let from = path.iter().position(|p| *p == index).unwrap_or(0);
                        self.report_cycle(checked, &path[from..]);
                        break;
                    }
                    _ => {}
                }
                state[index] = 1;
                path.push(index);
                at = waits_for[index];
            }
            for index in path {
                state[index] = 2;
            }
        }
    }

    fn report_cycle(&mut self, checked: &[CheckedStep<'_>], cycle: &[usize]) {
        let Some(&first) = cycle.iter().min() else {
            return;
        };
        let names: Vec<&str> = cycle.iter().map(|i| checked[*i].id.as_str()).collect();
        let span = sent_span(checked[first].decl).unwrap_or(checked[first].decl.span);
        let diag = self.report(
            Code::ReactionCycle,
            span,
            format!(
                "steps wait for each other's sends: {} → {}",
                names.join(" → "),
                names[0]
            ),
        );
        diag.label = Some("waits for a step that waits for this one".into());
        diag.help = Some(
            "none of them can ever send: time one of them on a field or the stage instead".into(),
        );
    }
}

fn sent_span(step: &StepDecl) -> Option<Span> {
    match &step.timing.anchor {
        Anchor::AfterSent(_, sent) => Some(sent.span),
        _ => None,
    }
}

/// Every reaction in a condition, with its span.
fn collect<'c>(condition: &'c Spanned<Condition>, into: &mut Vec<(&'c Reaction, Span)>) {
    match &condition.node {
        Condition::Reaction(reaction) => into.push((reaction, condition.span)),
        Condition::And(operands) | Condition::Or(operands) => {
            for operand in operands {
                collect(operand, into);
            }
        }
        Condition::Not(inner) => collect(inner, into),
        _ => {}
    }
}

#[cfg(test)]
#[path = "reactions_tests.rs"]
mod tests;
