//! Which patient each step's messages are rendered for on the review sheet: the first in the
//! export that the step's stage and conditions apply to, else the first in its stage, else the
//! first patient; or the one the clinic chose with `--patient`. Only the records chosen are
//! kept, however long the export is, and reading stops once every step has its sample.

use std::io::Write;

use super::super::{for_each_patient, AppError, PatientSource, RowCounts};
use crate::eval::{Evaluator, PatientOutcome, Reason, Window};
use crate::plan::TimingPlan;
use crate::records::{PatientRecord, RecordSchema};
use crate::review::outline::StepOutline;

/// How a step's sample was chosen, for the sheet to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// The clinic chose the patient (`--patient`).
    Given,
    /// The step's stage and conditions apply to the patient.
    Applies,
    /// The patient is in the step's stage, but its conditions hold for no one in the export
    /// (or could not be evaluated: the rules have errors, or the step follows another send).
    InStage,
    /// No patient fits: the first of the export.
    First,
}

/// The samples: one per step (by outline index), each a record and how it was chosen.
pub struct Samples {
    pub records: Vec<PatientRecord>,
    /// For each step: the index into `records`, and why; `None` when the export is empty.
    pub of_step: Vec<Option<(usize, Chosen)>>,
    pub rows: RowCounts,
}

impl Samples {
    /// The step's sample, when there is one.
    pub fn of(&self, step: usize) -> Option<(&PatientRecord, Chosen)> {
        let (record, chosen) = self.of_step.get(step).copied().flatten()?;
        Some((&self.records[record], chosen))
    }
}

/// The patient `id` for every step.
pub fn given(
    source: &PatientSource,
    schema: &RecordSchema,
    steps: usize,
    id: &str,
    err: &mut dyn Write,
) -> Result<Samples, AppError> {
    let mut found: Option<PatientRecord> = None;
    let rows = for_each_patient(source, schema, err, |patient| {
        if patient.id == id {
            found = Some(patient.clone());
            return Ok(false);
        }
        Ok(true)
    })?;
    let Some(found) = found else {
        return Err(AppError::NoSuchPatient {
            id: id.to_owned(),
            file: source.file.clone(),
        });
    };
    Ok(Samples {
        records: vec![found],
        of_step: vec![Some((0, Chosen::Given)); steps],
        rows,
    })
}

/// The first patient each step applies to (see the module's comment). `plan` is there when
/// the rules have no errors: only then are conditions evaluated.
pub fn first_fitting(
    source: &PatientSource,
    schema: &RecordSchema,
    steps: &[StepOutline],
    plan: Option<(&TimingPlan, Window)>,
    err: &mut dyn Write,
) -> Result<Samples, AppError> {
    let count = steps.iter().map(|s| s.index + 1).max().unwrap_or(0);
    let mut records: Vec<PatientRecord> = Vec::new();
    let mut applies: Vec<Option<usize>> = vec![None; count];
    let mut in_stage: Vec<Option<usize>> = vec![None; count];
    let mut evaluator = plan.map(|(plan, window)| (Evaluator::explaining(plan), window));
    let mut outcome = PatientOutcome::default();
    let mut fits = vec![Fit::Nothing; count];
    let rows = for_each_patient(source, schema, err, |patient| {
        // Kept only when it is some step's sample (or the first, the last resort).
        let mut keep = records.is_empty();
        let here = records.len();
        if let Some((evaluator, window)) = evaluator.as_mut() {
            outcome.clear();
            evaluator.evaluate(patient, *window, &mut outcome);
            fitting(&outcome, &mut fits);
            for step in steps {
                if applies[step.index].is_none() && fits[step.index] == Fit::Fits {
                    applies[step.index] = Some(here);
                    keep = true;
                }
            }
        }
        for step in steps {
            let stage_fits = patient
                .stage
                .is_some_and(|stage| step.stages.contains(&stage));
            if in_stage[step.index].is_none() && stage_fits {
                in_stage[step.index] = Some(here);
                keep = true;
            }
        }
        if keep {
            records.push(patient.clone());
        }
        // Without conditions to evaluate, the stage is all that is looked for.
        let done = if evaluator.is_some() {
            applies.iter().all(Option::is_some)
        } else {
            steps
                .iter()
                .all(|s| s.stages.is_empty() || in_stage[s.index].is_some())
        };
        Ok(!done)
    })?;
    let of_step = (0..count)
        .map(|step| {
            if records.is_empty() {
                return None;
            }
            Some(match (applies[step], in_stage[step]) {
                (Some(record), _) => (record, Chosen::Applies),
                (None, Some(record)) => (record, Chosen::InStage),
                (None, None) => (0, Chosen::First),
            })
        })
        .collect();
    Ok(Samples {
        records,
        of_step,
        rows,
    })
}

/// What evaluation said of a step for one patient, as a sample needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Neither a send nor a note: the step was not looked at.
    Nothing,
    /// It sends, or it does not for a reason that is not about who the patient is (timing,
    /// the window, `unless`…).
    Fits,
    /// A reason about the patient: a condition, consent, opt-out, a missing field.
    NotThisPatient,
}

/// Each step's [`Fit`] for the patient of `outcome`, in one pass over its sends and notes
/// (not one per step: rules with thousands of steps stay linear).
fn fitting(outcome: &PatientOutcome, fits: &mut [Fit]) {
    fits.fill(Fit::Nothing);
    let mut mark = |step: usize, fit: Fit| {
        if let Some(slot) = fits.get_mut(step) {
            if *slot != Fit::NotThisPatient {
                *slot = fit;
            }
        }
    };
    for send in &outcome.sends {
        mark(send.step, Fit::Fits);
    }
    for note in &outcome.notes {
        let about_the_patient = matches!(
            note.reason,
            Reason::ConditionFalse(_)
                | Reason::Script(_)
                | Reason::Unreadable(_)
                | Reason::NoAnchor(_)
                | Reason::OptedOut
                | Reason::NoConsent(_)
                | Reason::NoLineUserId
                | Reason::NotSentYet(_)
        );
        mark(
            note.step,
            if about_the_patient {
                Fit::NotThisPatient
            } else {
                Fit::Fits
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Consent, StepNote};

    fn fits_of(notes: Vec<StepNote>) -> Vec<Fit> {
        let outcome = PatientOutcome {
            notes,
            ..PatientOutcome::default()
        };
        let mut fits = vec![Fit::Nothing; 3];
        fitting(&outcome, &mut fits);
        fits
    }

    #[test]
    fn a_patient_without_consent_is_no_sample_for_a_promo_step() {
        let fits = fits_of(vec![
            StepNote {
                step: 0,
                reason: Reason::NoConsent(Consent::Empty),
            },
            StepNote {
                step: 1,
                reason: Reason::BeyondCalendar,
            },
        ]);
        assert_eq!(fits, [Fit::NotThisPatient, Fit::Fits, Fit::Nothing]);
    }

    #[test]
    fn a_reason_about_the_patient_wins_over_one_about_timing() {
        let fits = fits_of(vec![
            StepNote {
                step: 2,
                reason: Reason::BeyondCalendar,
            },
            StepNote {
                step: 2,
                reason: Reason::OptedOut,
            },
        ]);
        assert_eq!(fits[2], Fit::NotThisPatient);
    }
}
