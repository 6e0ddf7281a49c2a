//! The sends due now, found on a thread of their own: reading the export and evaluating
//! patients runs beside the ledger's writes and the rendering, so a pass uses both cores.
//! Only patients with something due cross over, so the channel carries work in proportion to
//! the sends, not to the patients.

use std::sync::mpsc::SyncSender;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::history::SentHistory;
use super::observe::{Observation, Observer};
use crate::app::reactions::PassReactions;
use crate::app::recipients::{Links, Source};
use crate::app::{for_each_patient, AppError, PatientSource, RowCounts, StepWarnings};
use crate::eval::{DueSend, Evaluator, PatientOutcome, Window};
use crate::plan::TimingPlan;
use crate::records::PatientRecord;

/// What the evaluating thread hands to the pass, in the export's order.
pub(super) enum Due {
    /// A patient with sends due now.
    Patient {
        patient: Box<PatientRecord>,
        sends: Vec<DueSend>,
    },
    /// A line for stderr (a skipped row).
    Warning(String),
    /// A patient whose booking or visit fields differ from what the ledger saw last.
    Observed(Box<Observation>),
}

/// What the pass read from the ledger before evaluating: sends, links, booking and visit
/// fingerprints.
pub(super) struct Known<'p> {
    pub history: &'p SentHistory,
    pub links: &'p Links,
    pub observer: Option<&'p Observer>,
    /// What patients did with the sends the rules react to.
    pub reactions: &'p PassReactions,
}

/// How the evaluation ended.
pub(super) struct Evaluated {
    pub counts: RowCounts,
    pub script_failures: StepWarnings,
    /// Sends due now that the ledger says went out already.
    pub already_sent: u64,
    /// Patients (not opted out) with no LINE user: none in the export, no link in the ledger.
    pub not_linked: u64,
}

/// Evaluates every patient at `now`, each with their recipient (the export's LINE user, else
/// their latest link), sending what is due to `due`; stops early on a signal or when the pass
/// stops listening (it failed).
pub(super) fn evaluate(
    plan: &TimingPlan,
    patients: &PatientSource,
    known: &Known<'_>,
    now: DateTime<Utc>,
    stop: &watch::Receiver<bool>,
    due: SyncSender<Due>,
) -> Result<Evaluated, AppError> {
    let window = Window {
        now,
        from: now,
        to: now + chrono::Duration::seconds(1),
    };
    let mut evaluator = Evaluator::new(plan);
    let mut outcome = PatientOutcome::default();
    let mut script_failures = StepWarnings::default();
    let mut already_sent = 0;
    let mut not_linked = 0;
    let mut warnings = WarningLines {
        due: due.clone(),
        line: Vec::new(),
    };
    let counts = for_each_patient(patients, &plan.schema, &mut warnings, |patient| {
        if *stop.borrow() {
            return Ok(false);
        }
        if let Some(seen) = known.observer.and_then(|o| o.look(patient)) {
            if due.send(Due::Observed(Box::new(seen))).is_err() {
                return Ok(false);
            }
        }
        let resolved = known.links.resolve(patient);
        // Nothing is due to them (the evaluator says so): no row is written, so once they link,
        // whatever is still within its window goes out on the next run.
        if resolved.source == Source::Unlinked && !patient.opted_out {
            not_linked += 1;
        }
        let patient = resolved.record.as_ref();
        evaluator.evaluate_reacting(
            patient,
            window,
            known.history.of(&patient.id),
            known.reactions.of(patient),
            &mut outcome,
        );
        script_failures.note(patient.line, &outcome);
        already_sent += outcome.already_sent as u64;
        let sends: Vec<DueSend> = outcome
            .sends
            .iter()
            .filter(|s| s.at <= now)
            .cloned()
            .collect();
        if sends.is_empty() {
            return Ok(true);
        }
        let item = Due::Patient {
            patient: Box::new(resolved.record.into_owned()),
            sends,
        };
        // A closed channel: the pass stopped (an error); nothing more to evaluate.
        Ok(due.send(item).is_ok())
    })?;
    Ok(Evaluated {
        counts,
        script_failures,
        already_sent,
        not_linked,
    })
}

/// stderr for the evaluating thread: each whole line goes to the pass, which prints it.
struct WarningLines {
    due: SyncSender<Due>,
    line: Vec<u8>,
}

impl std::io::Write for WarningLines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        for &byte in bytes {
            if byte == b'\n' {
                let line = String::from_utf8_lossy(&self.line).into_owned();
                self.line.clear();
                if self.due.send(Due::Warning(line)).is_err() {
                    return Err(std::io::ErrorKind::BrokenPipe.into());
                }
            } else if self.line.len() < 64 * 1024 {
                self.line.push(byte);
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
