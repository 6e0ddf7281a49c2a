//! What the ledger already holds of a plan's sends, read once per plan: every row whose
//! occurrence a planned send of the window can have, indexed by patient in memory. One read
//! instead of a query per patient keeps `plan` linear in patients however long the history.

use std::collections::HashMap;

#[cfg(test)]
use chrono::{DateTime, Utc};

use crate::eval::Window;
use crate::ledger::{LedgerError, ReadLedger, SendStatus};
use crate::plan::TimingPlan;

/// One row of the ledger, compact: at a million patients a window holds as many.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
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
        ledger: &dyn ReadLedger,
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
        ledger.window_sends(window.from, to, &mut |send| {
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

    /// The ledger's rows for one patient (in the window), to search with [`status_in`].
    pub(super) fn of(&self, patient: &str) -> &[Mark] {
        self.by_patient.get(patient).map_or(&[], Vec::as_slice)
    }

    /// What the ledger has for this patient's send of `step` at `occurrence`, if anything.
    #[cfg(test)]
    fn status(&self, patient: &str, step: usize, occurrence: DateTime<Utc>) -> Option<SendStatus> {
        status_in(self.of(patient), step, occurrence.timestamp())
    }
}

/// What `marks` (one patient's) has for the send of `step` at `occurrence`, if anything.
pub(super) fn status_in(marks: &[Mark], step: usize, occurrence: i64) -> Option<SendStatus> {
    marks
        .iter()
        .find(|m| usize::from(m.step) == step && m.occurrence == occurrence)
        .map(|m| m.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check_file;
    use crate::ledger::{Claim, Ledger, SendDetails, SendKey, Settlement, SinkKind};
    use crate::source::SourceFile;
    use crate::template::TemplateStore;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn plan() -> TimingPlan {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hello.toml"), "text = \"x\"").unwrap();
        let file = SourceFile::new(
            "t.step",
            "clinic \"さくら\"\nstages booked\nstep thanks: when stage=booked after 1d send hello\n",
        );
        let outcome = check_file(&file, &mut TemplateStore::new(dir.path()));
        TimingPlan::compile(&outcome.rules.unwrap())
    }

    /// Records a send of `thanks` at `occurrence` (expiring a day later) settled as `how`.
    fn record(
        ledger: &mut Ledger,
        sink: SinkKind,
        patient: &str,
        occurrence: &str,
        how: Settlement,
    ) {
        let occurrence = at(occurrence);
        let key = SendKey {
            sink,
            patient,
            step: "thanks",
            occurrence,
        };
        let details = SendDetails {
            template: "hello",
            variant: None,
            due_at: occurrence,
            expires_at: occurrence + chrono::Duration::days(1),
            outbox_from: None,
        };
        let Claim::New { retry_key } = ledger.claim(&key, &details, occurrence).unwrap() else {
            panic!("a new claim")
        };
        ledger
            .settle(&key, &retry_key, 1, &how, occurrence)
            .unwrap();
    }

    fn sent() -> Settlement {
        Settlement::Sent {
            request_id: None,
            note: None,
        }
    }

    #[test]
    fn marks_hold_the_window_s_rows_and_a_send_wins_over_another_sink() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        // P1: refused by the outbox run, then sent through LINE: it went out.
        record(
            &mut ledger,
            SinkKind::Outbox,
            "P1",
            "2026-11-21T01:00:00Z",
            Settlement::Failed("x".into()),
        );
        record(
            &mut ledger,
            SinkKind::Line,
            "P1",
            "2026-11-21T01:00:00Z",
            sent(),
        );
        // P2: skipped; P3: expired long before the window; P4: occurs after it.
        record(
            &mut ledger,
            SinkKind::Line,
            "P2",
            "2026-11-21T01:00:00Z",
            Settlement::Skipped("before start".into()),
        );
        record(
            &mut ledger,
            SinkKind::Line,
            "P3",
            "2026-10-01T01:00:00Z",
            sent(),
        );
        record(
            &mut ledger,
            SinkKind::Line,
            "P4",
            "2026-12-30T01:00:00Z",
            sent(),
        );
        let window = Window {
            now: at("2026-11-21T00:00:00Z"),
            from: at("2026-11-21T00:00:00Z"),
            to: at("2026-11-28T00:00:00Z"),
        };
        let marks = LedgerMarks::load(&ledger, &plan(), window).unwrap();
        let occurrence = at("2026-11-21T01:00:00Z");
        assert_eq!(marks.status("P1", 0, occurrence), Some(SendStatus::Sent));
        assert_eq!(marks.status("P2", 0, occurrence), Some(SendStatus::Skipped));
        assert_eq!(marks.status("P2", 0, at("2026-11-22T01:00:00Z")), None);
        assert_eq!(marks.by_patient.len(), 2, "{marks:?}");
    }
}
