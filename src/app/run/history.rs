//! What the ledger says went out already, read once per pass: the sends that can still matter
//! at `now` (not expired, or within a cap's reach), by patient. One indexed read instead of a
//! query per patient keeps a pass linear in patients however long the ledger's history is.
//! Its maps hash with the crate's keyed hasher, not std's SipHash: a rerun looks a step and a
//! patient up for each of a few hundred thousand sends before the first patient is evaluated,
//! and every patient's history once while evaluating.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::eval::SentBefore;
use crate::ledger::{LedgerError, RunLedger, SinkKind};
use crate::plan::TimingPlan;
use crate::records::keyed_hasher;

#[derive(Debug)]
pub(super) struct SentHistory {
    by_patient: HashMap<Box<str>, Vec<SentBefore>, ahash::RandomState>,
}

impl SentHistory {
    pub(super) fn load(
        ledger: &dyn RunLedger,
        sink: SinkKind,
        plan: &TimingPlan,
        now: DateTime<Utc>,
    ) -> Result<SentHistory, LedgerError> {
        let mut steps = HashMap::with_hasher(keyed_hasher());
        steps.extend(plan.steps.iter().map(|s| (s.id.as_str(), s.index)));
        let mut by_patient: HashMap<Box<str>, Vec<SentBefore>, _> =
            HashMap::with_hasher(keyed_hasher());
        ledger.recent_sends(sink, now, &mut |send| {
            // A step renamed or removed since no longer has a say.
            let Some(&step) = steps.get(send.step) else {
                return;
            };
            let sent = SentBefore {
                step,
                occurrence: send.occurrence,
                at: send.sent_at,
            };
            match by_patient.get_mut(send.patient) {
                Some(sends) => sends.push(sent),
                None => {
                    by_patient.insert(send.patient.into(), vec![sent]);
                }
            }
        })?;
        Ok(SentHistory { by_patient })
    }

    pub(super) fn of(&self, patient: &str) -> &[SentBefore] {
        self.by_patient.get(patient).map_or(&[], Vec::as_slice)
    }
}
