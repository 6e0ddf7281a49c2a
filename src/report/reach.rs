//! Whom each stage can reach on LINE, from the patient export (`report --patients`): the
//! patients now in the stage, how many of them have a LINE user (the export's `line_user_id`
//! or a link in the ledger, as `run` decides), and how many of those blocked the account.
//! Counters per stage only: the export is streamed through [`Reach::count`], never kept.

use serde::Serialize;

/// One stage's patients and their LINE reach. `blocked` ≤ `linked` ≤ `patients`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageReach {
    /// The stage as the rules name it; `None` for patients whose stage cell is empty.
    pub stage: Option<String>,
    pub patients: u64,
    pub linked: u64,
    pub blocked: u64,
}

/// The export's patients per stage, in the rules' stage order (patients without a stage last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// One entry per stage of the rules, then one for patients without a stage.
    counters: Vec<StageReach>,
    /// Rows of the export that could not be read (reported with their line and skipped).
    pub skipped_rows: u64,
}

impl Reach {
    /// Zero counters for `stages` (the rules' stages, in their order).
    pub fn new(stages: &[String]) -> Reach {
        let mut counters: Vec<StageReach> = stages
            .iter()
            .map(|stage| StageReach {
                stage: Some(stage.clone()),
                patients: 0,
                linked: 0,
                blocked: 0,
            })
            .collect();
        counters.push(StageReach {
            stage: None,
            patients: 0,
            linked: 0,
            blocked: 0,
        });
        Reach {
            counters,
            skipped_rows: 0,
        }
    }

    /// Counts one patient in stage `stage` (an index into the rules' stages; `None` or an
    /// index past them counts without a stage), with a LINE user or not, blocked or not.
    pub fn count(&mut self, stage: Option<usize>, linked: bool, blocked: bool) {
        let without_stage = self.counters.len() - 1;
        let index = stage
            .filter(|i| *i < without_stage)
            .unwrap_or(without_stage);
        let counter = &mut self.counters[index];
        counter.patients += 1;
        if linked {
            counter.linked += 1;
            counter.blocked += u64::from(blocked);
        }
    }

    /// The stages to show: every stage of the rules, and patients without a stage when
    /// there are any.
    pub fn stages(&self) -> impl Iterator<Item = &StageReach> {
        self.counters
            .iter()
            .filter(|counter| counter.stage.is_some() || counter.patients > 0)
    }

    /// The counters of `stage` (`None`: patients without one).
    pub fn of(&self, stage: Option<&str>) -> Option<&StageReach> {
        self.stages()
            .find(|counter| counter.stage.as_deref() == stage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patients_are_counted_in_their_stage_and_blocks_only_among_the_linked() {
        let mut reach = Reach::new(&["booked".into(), "regular".into()]);
        reach.count(Some(0), true, false);
        reach.count(Some(0), true, true);
        reach.count(Some(0), false, true); // no LINE user: nobody to have blocked
        reach.count(Some(1), false, false);
        let shown: Vec<(Option<&str>, u64, u64, u64)> = reach
            .stages()
            .map(|s| (s.stage.as_deref(), s.patients, s.linked, s.blocked))
            .collect();
        assert_eq!(
            shown,
            [(Some("booked"), 3, 2, 1), (Some("regular"), 1, 0, 0)],
            "no row for patients without a stage while there are none"
        );
        reach.count(None, true, false);
        reach.count(Some(7), false, false);
        assert_eq!(reach.of(None).map(|s| s.patients), Some(2));
        assert_eq!(reach.stages().count(), 3);
    }

    #[test]
    fn a_million_patients_are_a_handful_of_counters() {
        let stages: Vec<String> = (0..4).map(|i| format!("s{i}")).collect();
        let mut reach = Reach::new(&stages);
        for i in 0..1_000_000_u64 {
            let stage = (i % 5 != 4).then_some((i % 5) as usize);
            reach.count(stage, i % 2 == 0, i % 10 == 0);
        }
        let total: u64 = reach.stages().map(|s| s.patients).sum();
        assert_eq!(total, 1_000_000);
        assert_eq!(
            reach.of(Some("s0")).map(|s| (s.linked, s.blocked)),
            Some((100_000, 100_000))
        );
        // What is held does not grow with the patients: one counter per stage.
        assert_eq!(reach.counters.len(), stages.len() + 1);
    }
}
