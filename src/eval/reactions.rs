//! Reactions: what a patient did with the sends of other steps (`clicked survey within 3d`,
//! `answered survey "yes"`, `booked since survey`, `blocked`), and the timing that counts from
//! a step's last delivered send (`3d after sent survey`).
//!
//! The evaluator never reads the ledger. A pass reads the sends and events that can matter
//! once, through the ledger's indexes, into one compact [`Reactions`] per patient who has any
//! (`crate::app::reactions`); a patient who has none evaluates against [`Reactions::NONE`],
//! which costs no allocation.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Context;
use crate::check::{ReactionTest, ReactionTestKind};
use crate::plan::{AnchorField, Offset, TimingPlan};
use crate::time::shift;

/// At most this many sends and this many events are kept per patient (the newest), so that
/// no ledger, however hostile, can make one patient's reactions grow without bound.
pub const MAX_PER_PATIENT: usize = 256;

/// A delivered send of a step that a reaction or an `after sent` timing names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReactionSend {
    pub step: usize,
    pub occurrence: DateTime<Utc>,
    pub sent_at: DateTime<Utc>,
}

/// What the patient did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReactionEvent {
    /// A tracked link of the send (step, occurrence) was opened.
    Clicked {
        step: usize,
        occurrence: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// A tracked postback button of the send (step, occurrence) was tapped; its data is one the
    /// rules test for (shared with the plan's, so keeping it allocates nothing).
    Answered {
        step: usize,
        occurrence: DateTime<Utc>,
        data: Arc<str>,
        at: DateTime<Utc>,
    },
    /// A new booking was seen in the export.
    Booked { at: DateTime<Utc> },
}

impl ReactionEvent {
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            ReactionEvent::Clicked { at, .. }
            | ReactionEvent::Answered { at, .. }
            | ReactionEvent::Booked { at } => *at,
        }
    }
}

/// One patient's sends of the named steps and events, oldest first, each list at most
/// [`MAX_PER_PATIENT`] long.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reactions {
    pub sends: Vec<ReactionSend>,
    pub events: Vec<ReactionEvent>,
}

impl Reactions {
    /// A patient who did nothing the rules can see.
    pub const NONE: Reactions = Reactions {
        sends: Vec::new(),
        events: Vec::new(),
    };

    /// Keeps a send (they come oldest first); past the bound, the oldest goes.
    pub fn push_send(&mut self, send: ReactionSend) {
        if self.sends.len() >= MAX_PER_PATIENT {
            self.sends.remove(0);
        }
        self.sends.push(send);
    }

    /// Keeps an event (in any order: they are sorted by [`Reactions::settle`]).
    pub fn push_event(&mut self, event: ReactionEvent) {
        self.events.push(event);
        if self.events.len() > 2 * MAX_PER_PATIENT {
            self.settle();
        }
    }

    /// Puts the events in time order and keeps the newest [`MAX_PER_PATIENT`].
    pub fn settle(&mut self) {
        self.events.sort_by_key(ReactionEvent::at);
        let extra = self.events.len().saturating_sub(MAX_PER_PATIENT);
        self.events.drain(..extra);
        // Kept for the whole pass, for up to every patient: no room to spare.
        self.events.shrink_to_fit();
        self.sends.shrink_to_fit();
    }

    /// The patient's last delivered send of `step` at or before `at`.
    pub fn last_send(&self, step: usize, at: DateTime<Utc>) -> Option<&ReactionSend> {
        self.sends
            .iter()
            .rev()
            .find(|send| send.step == step && send.sent_at <= at)
    }
}

/// A patient's reactions as the evaluator sees them: their sends and events, and whether
/// their LINE user (the export's, or the one linked) has blocked the account.
#[derive(Debug, Clone, Copy)]
pub struct PatientReactions<'a> {
    pub seen: &'a Reactions,
    pub blocked: bool,
}

/// [`Reactions::NONE`], for borrowing.
pub static NO_REACTIONS: Reactions = Reactions::NONE;

impl PatientReactions<'_> {
    /// A patient who did nothing the rules can see (no ledger, or no events).
    pub fn none() -> PatientReactions<'static> {
        PatientReactions {
            seen: &NO_REACTIONS,
            blocked: false,
        }
    }
}

/// What the rules' reactions ask of the ledger: which steps' sends, which events, and how far
/// back. Worked out once per plan.
#[derive(Debug, Clone, Default)]
pub struct ReactionNeeds {
    /// By step index: whether a reaction or an `after sent` timing names the step.
    pub steps: Vec<bool>,
    pub clicks: bool,
    /// The postback data the rules test for.
    pub answers: Vec<Arc<str>>,
    pub bookings: bool,
    pub blocked: bool,
}

impl ReactionNeeds {
    pub fn of(plan: &TimingPlan) -> ReactionNeeds {
        let mut needs = ReactionNeeds {
            steps: vec![false; plan.steps.len()],
            ..ReactionNeeds::default()
        };
        for step in &plan.steps {
            if let AnchorField::Sent(sent) = step.anchor {
                needs.name(sent);
            }
            let mut each = |reaction: &ReactionTest| needs.add(&reaction.kind);
            step.when.for_each_reaction(&mut each);
            if let Some(unless) = &step.unless {
                unless.for_each_reaction(&mut each);
            }
        }
        needs
    }

    fn name(&mut self, step: usize) {
        if let Some(named) = self.steps.get_mut(step) {
            *named = true;
        }
    }

    fn add(&mut self, kind: &ReactionTestKind) {
        if let Some(step) = kind.step() {
            self.name(step);
        }
        match kind {
            ReactionTestKind::Clicked(_) => self.clicks = true,
            ReactionTestKind::Answered(_, data) => {
                if !self.answers.contains(data) {
                    self.answers.push(data.clone());
                }
            }
            ReactionTestKind::BookedSince(_) => self.bookings = true,
            ReactionTestKind::Blocked => self.blocked = true,
        }
    }

    /// Whether the rules react to anything (else the pass reads nothing for them).
    pub fn any(&self) -> bool {
        self.steps.iter().any(|named| *named) || self.blocked
    }

    /// The postback data as the plan holds it, if the rules test for it.
    pub fn answer(&self, data: &str) -> Option<&Arc<str>> {
        self.answers.iter().find(|known| known.as_ref() == data)
    }
}

impl Context<'_> {
    /// Whether the patient reacted as `reaction` says, as of `at`.
    pub(super) fn reacted(&self, reaction: &ReactionTest, at: DateTime<Utc>) -> bool {
        let seen = self.reactions.seen;
        let step = match reaction.kind {
            ReactionTestKind::Blocked => return self.reactions.blocked,
            ref kind => kind.step().unwrap_or_default(),
        };
        let Some(send) = seen.last_send(step, at) else {
            return false;
        };
        // The window ends this long after the send; beyond the calendar it never ends.
        let until = match reaction.window {
            Some(window) => shift(send.sent_at, Offset::of(window), false, self.plan.timezone)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            None => DateTime::<Utc>::MAX_UTC,
        };
        let counts = |when: DateTime<Utc>| when <= at && when <= until;
        seen.events
            .iter()
            .any(|event| match (&reaction.kind, event) {
                (
                    ReactionTestKind::Clicked(_),
                    ReactionEvent::Clicked {
                        step: clicked,
                        occurrence,
                        at: when,
                    },
                ) => *clicked == step && *occurrence == send.occurrence && counts(*when),
                (
                    ReactionTestKind::Answered(_, wanted),
                    ReactionEvent::Answered {
                        step: answered,
                        occurrence,
                        data,
                        at: when,
                    },
                ) => {
                    *answered == step
                        && *occurrence == send.occurrence
                        && data == wanted
                        && counts(*when)
                }
                (ReactionTestKind::BookedSince(_), ReactionEvent::Booked { at: when }) => {
                    *when > send.sent_at && counts(*when)
                }
                _ => false,
            })
    }

    /// What a reaction leaf found, for `explain`.
    pub(super) fn describe_reaction(&self, reaction: &ReactionTest, at: DateTime<Utc>) -> String {
        let step_id = |step: usize| self.plan.steps.get(step).map_or("", |s| s.id.as_str());
        match reaction.kind.step() {
            None => match self.reactions.blocked {
                true => "the account is blocked".to_owned(),
                false => "the account is not blocked".to_owned(),
            },
            Some(step) => match self.reactions.seen.last_send(step, at) {
                None => format!("{} was not sent to them", step_id(step)),
                Some(send) => format!(
                    "{} was sent {}",
                    step_id(step),
                    send.sent_at
                        .with_timezone(&self.plan.timezone)
                        .format("%Y-%m-%d %H:%M")
                ),
            },
        }
    }

    /// The instant an `after sent STEP` timing counts from: the last delivered send of STEP.
    pub(super) fn sent_anchor(&self, step: usize) -> Option<DateTime<Utc>> {
        self.reactions
            .seen
            .last_send(step, self.now)
            .map(|send| send.sent_at)
    }
}

#[cfg(test)]
#[path = "reactions_tests.rs"]
mod tests;
