//! What `plan` does with each patient on the thread that typed them: evaluate them and put
//! their sends in compact rows, with where they go and the notes the warnings count. The lists
//! of a patient taken before are filled again ([`RowWork::work_into`]): a list made on this
//! thread for every patient with sends and freed on the thread taking them was most of that
//! thread's `free`s.

use super::{ledger, order, LedgerMarks, Planned, Recipient, Row};
use crate::app::reactions::PassReactions;
use crate::app::recipients::{Recipients, Source};
use crate::app::StepWarnings;
use crate::eval::{Evaluator, PatientOutcome, Window};
use crate::plan::TimingPlan;
use crate::records::{PatientRecord, RowWork};

/// One typing thread's evaluator and what it needs to say where each send goes.
pub(super) struct PlanWork<'a> {
    evaluator: Evaluator<'a>,
    outcome: PatientOutcome,
    window: Window,
    recipients: &'a Recipients,
    marks: Option<&'a LedgerMarks>,
    reactions: &'a PassReactions,
}

impl<'a> PlanWork<'a> {
    pub(super) fn new(
        plan: &'a TimingPlan,
        window: Window,
        recipients: &'a Recipients,
        marks: Option<&'a LedgerMarks>,
        reactions: &'a PassReactions,
    ) -> Self {
        PlanWork {
            evaluator: Evaluator::in_seconds(plan),
            outcome: PatientOutcome::default(),
            window,
            recipients,
            marks,
            reactions,
        }
    }

    /// `planned` made `patient`'s, its lists emptied and filled again.
    fn fill(&mut self, patient: &PatientRecord, planned: &mut Planned) {
        let resolved = self.recipients.links.resolve(patient);
        let patient = resolved.record.as_ref();
        let reacted = self.reactions.of(patient);
        let outcome = &mut self.outcome;
        self.evaluator
            .evaluate_reacting(patient, self.window, &[], reacted, outcome);
        // One look-up per patient; their few rows are then searched per send.
        let known = self.marks.map_or(&[][..], |m| m.of(&patient.id));
        planned.notes = StepWarnings::worth_noting(outcome);
        planned.recipient = if self.recipients.blocks(patient) {
            Recipient::Blocked
        } else if resolved.source == Source::Link {
            Recipient::Linked
        } else {
            Recipient::Export
        };
        planned.rows.clear();
        planned
            .rows
            .extend(outcome.in_seconds.iter().map(|send| Row {
                at: send.at,
                patient: 0,
                step: send.step as u16,
                variant: send.variant as u16,
                occurrence: send.occurrence,
                expires: send.expires,
                before_start: send.before_start,
                ledger: ledger::status_in(known, send.step, send.occurrence),
            }));
        // The order the rows are sorted in after the pass, put in here on this thread.
        order::in_step_order(&mut planned.rows);
    }
}

impl RowWork for PlanWork<'_> {
    type Out = Planned;

    fn work(&mut self, patient: &PatientRecord) -> Planned {
        let mut planned = Planned {
            rows: Vec::new(),
            recipient: Recipient::Export,
            notes: Vec::new(),
        };
        self.fill(patient, &mut planned);
        planned
    }

    fn work_into(&mut self, patient: &PatientRecord, out: &mut Option<Planned>) {
        match out {
            Some(planned) => self.fill(patient, planned),
            None => *out = Some(self.work(patient)),
        }
    }
}
