//! What the ledger already holds of a plan's sends, read once per plan: every row whose
//! occurrence a planned send of the window can have, indexed by patient in memory. One read
//! instead of a query per patient keeps `plan` linear in patients however long the history.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::eval::Window;
use crate::ledger::{Ledger, LedgerError, SendStatus};
use crate::plan::TimingPlan;

/// One row of the ledger, compact: at a million patients a window holds as many.
#[derive(Debug, Clone, Copy)]
struct Mark {
    step: u16,
    occurrence: i64,
    status: SendStatus,
}

/// The ledger's rows for the window's occurrences, by patient.
#[derive(Debug, Default)]
pub(super) struct LedgerMarks {
    by_patient: HashMap<Box<str>, Vec<Mark>>,
}

impl LedgerMarks {
    pub(super) fn load(
        ledger: &Ledger,
        plan: &TimingPlan,
        window: Window,
    ) -> Result<LedgerMarks, LedgerError> {
        let steps: HashMap<&str, u16> = plan
            .steps
            .iter()
            .map(|s| (s.id.as_str(), s.index as u16))
            .collect();
        let mut by_patient: HashMap<Box<str>, Vec<Mark>> = HashMap::new();
        // A planned send goes out in [from, to) before it expires, and its occurrence is at
        // most a day after its time (an `at` earlier in the day than a `before` step's own
        // time): rows that expired by `from` or occur two days after `to` cannot match one.
        let to = window.to + chrono::Duration::days(2);
        ledger.sends_in_window(window.from, to, |send| {
            // A step renamed or removed since matches no planned send.
            let Some(&step) = steps.get(send.step) else {
                return;
            };
            let mark = Mark {
                step,
                occurrence: send.occurrence.timestamp(),
                status: send.status,
            };
            match by_patient.get_mut(send.patient) {
                Some(marks) => match marks
                    .iter_mut()
                    .find(|m| m.step == mark.step && m.occurrence == mark.occurrence)
                {
                    // The same occurrence in both sinks: what went out is what counts.
                    Some(seen) if mark.status == SendStatus::Sent => seen.status = mark.status,
                    Some(_) => {}
                    None => marks.push(mark),
                },
                None => {
                    by_patient.insert(send.patient.into(), vec![mark]);
                }
            }
        })?;
        Ok(LedgerMarks { by_patient })
    }

    /// What the ledger has for this patient's send of `step` at `occurrence`, if anything.
    pub(super) fn status(
        &self,
        patient: &str,
        step: usize,
        occurrence: DateTime<Utc>,
    ) -> Option<SendStatus> {
        let occurrence = occurrence.timestamp();
        self.by_patient
            .get(patient)?
            .iter()
            .find(|m| usize::from(m.step) == step && m.occurrence == occurrence)
            .map(|m| m.status)
    }
}
