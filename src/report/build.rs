//! The report as data: one row per step and arm (the rules' steps, with what the ledger adds),
//! each with its stage, this period's figures and the previous period's; the experiments'
//! arms; and the recommendations. Rendered as a table or JSON elsewhere.

use std::collections::BTreeMap;

use chrono_tz::Tz;

use super::experiment::{judge, Arm, Experiment, Verdict};
use super::months::MonthFigures;
use super::opened::LineFigures;
use super::period::Periods;
use super::reach::Reach;
use super::recommend::{recommend, Recommendation};
use super::tally::Counts;
use crate::check::{Leaf, RuleSet, Step, Test};
use crate::ledger::{ArmKey, SinkKind};

/// LINE's unique impressions of a step's arm in the period, from the figures `steprule
/// insights fetch` cached (see `opened.rs` for when a row is measured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// No usable insight figures for this arm and period: shown as "not measured".
    NotMeasured,
    /// LINE withheld the figure (fewer than 20): never shown as 0.
    Suppressed,
    Unique(u64),
}

/// What an experiment's arms are compared on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Booked,
    Clicked,
    Blocked,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Booked => "booked",
            Metric::Clicked => "clicked",
            Metric::Blocked => "blocked",
        }
    }

    /// What an arm's `x` counts. Blocks are counted the other way round (the patients who
    /// stayed), so that the arm with the higher rate is the better one for every metric.
    pub fn arm_label(self) -> &'static str {
        match self {
            Metric::Booked => "booked",
            Metric::Clicked => "clicked",
            Metric::Blocked => "not_blocked",
        }
    }

    /// `x` of an arm with `counts`.
    pub fn count(self, counts: &Counts) -> u64 {
        match self {
            Metric::Booked => counts.booked,
            Metric::Clicked => counts.clicked,
            Metric::Blocked => counts.sent.saturating_sub(counts.blocked),
        }
    }
}

/// One step's arm on one sink, in the period and the one before.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: ArmKey,
    /// The stage the step's `when` requires, when it names exactly one.
    pub stage: Option<String>,
    /// Whether the rules still have this step (a ledger keeps the sends of removed ones).
    pub in_rules: bool,
    pub counts: Counts,
    pub previous: Counts,
    pub opened: Opened,
}

/// A step with several templates on LINE, its arms judged on `metric`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepExperiment {
    pub step: String,
    pub metric: Metric,
    pub result: Experiment,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub periods: Periods,
    pub timezone: Tz,
    /// The clinic's name as the rules write it (`clinic "…"`).
    pub clinic: Option<String>,
    /// LINE's figures for each of the six months ending with the period's, for the HTML
    /// report's trend; empty unless asked for ([`super::months::monthly`]).
    pub months: Vec<MonthFigures>,
    /// With the patient export: whom each stage can reach on LINE.
    pub reach: Option<Reach>,
    /// The ledger's file name, for the HTML report's note on where its figures come from.
    pub ledger_name: Option<String>,
    /// LINE deliveries, grouped by stage in the rules' order (steps of no one stage last).
    pub rows: Vec<Row>,
    /// Outbox and `--dry-run` sends: never LINE deliveries, so never in `rows`' figures.
    pub outbox: Vec<Row>,
    pub experiments: Vec<StepExperiment>,
    pub recommendations: Vec<Recommendation>,
    /// Why some `opened` are not measured, and the account's friends (LINE's statistics).
    pub line: LineFigures,
}

/// The stage a step's `when` requires: a `stage=X` (or `stage in (X)`) on its own or among
/// the `and`ed tests. `None` for several stages or none.
pub fn stage_of(step: &Step, stages: &[String]) -> Option<String> {
    let single = |test: &Test<_>| match test {
        Test::Leaf(Leaf::StageIn(indexes), _) if indexes.len() == 1 => {
            stages.get(indexes[0]).cloned()
        }
        _ => None,
    };
    match &step.when {
        Test::And(tests) => tests.iter().find_map(single),
        test => single(test),
    }
}

/// Where a row goes: the rules' stage order, then the rules' step and variant order, then
/// steps only the ledger knows by name.
type Position = (usize, usize, usize);

/// Builds the report from both periods' tallies.
pub fn build(
    rules: &RuleSet,
    periods: Periods,
    current: BTreeMap<ArmKey, Counts>,
    previous: BTreeMap<ArmKey, Counts>,
    metric: Metric,
    mde: Option<f64>,
) -> Report {
    let mut arms: BTreeMap<ArmKey, (Counts, Counts)> = BTreeMap::new();
    // Every arm of the rules is reported on LINE, even with nothing sent (its rates are null).
    for step in &rules.steps {
        for variant in variants(step) {
            let key = ArmKey {
                sink: SinkKind::Line,
                step: step.id.clone(),
                variant,
            };
            arms.entry(key).or_default();
        }
    }
    for (key, counts) in current {
        arms.entry(key).or_default().0 = counts;
    }
    for (key, counts) in previous {
        arms.entry(key).or_default().1 = counts;
    }
    let mut placed: Vec<(Position, Row)> = arms
        .into_iter()
        .map(|(key, (counts, previous))| {
            let found = rules.steps.iter().position(|s| s.id == key.step);
            let step = found.map(|i| &rules.steps[i]);
            let stage = step.and_then(|s| stage_of(s, &rules.stages));
            let stage_rank = stage
                .as_ref()
                .and_then(|name| rules.stages.iter().position(|s| s == name))
                .unwrap_or(usize::MAX);
            let variant_rank = step
                .and_then(|s| variants(s).iter().position(|v| *v == key.variant))
                .unwrap_or(usize::MAX);
            let position = (stage_rank, found.unwrap_or(usize::MAX), variant_rank);
            let row = Row {
                key,
                stage,
                in_rules: found.is_some(),
                counts,
                previous,
                // Filled from LINE's cached figures by `opened::fill`.
                opened: Opened::NotMeasured,
            };
            (position, row)
        })
        .collect();
    // Stable: rows at one position (steps not in the rules) keep the keys' order.
    placed.sort_by_key(|(position, _)| *position);
    let (rows, outbox): (Vec<Row>, Vec<Row>) = placed
        .into_iter()
        .map(|(_, row)| row)
        .partition(|row| row.key.sink == SinkKind::Line);
    let experiments = experiments(&rows, metric, mde);
    let winners: Vec<(&str, &str)> = experiments
        .iter()
        .filter_map(|e| match &e.result.verdict {
            Verdict::Better(variant) => Some((e.step.as_str(), variant.as_str())),
            _ => None,
        })
        .collect();
    let recommendations = recommend(&rows, &winners);
    Report {
        periods,
        timezone: rules.timezone,
        clinic: rules.clinic.clone(),
        months: Vec::new(),
        reach: None,
        ledger_name: None,
        rows,
        outbox,
        experiments,
        recommendations,
        line: LineFigures::default(),
    }
}

/// A step's arms as the ledger names them: its templates when it has several, else one arm
/// without a name.
fn variants(step: &Step) -> Vec<Option<String>> {
    if step.variants.len() > 1 {
        step.variants
            .iter()
            .map(|v| Some(v.template.name.clone()))
            .collect()
    } else {
        vec![None]
    }
}

/// Every step with named arms on LINE in this period, arms in the rows' order, judged.
fn experiments(rows: &[Row], metric: Metric, mde: Option<f64>) -> Vec<StepExperiment> {
    let mut found: Vec<(String, Vec<Arm>)> = Vec::new();
    for row in rows {
        let Some(variant) = &row.key.variant else {
            continue;
        };
        let arm = Arm {
            variant: variant.clone(),
            n: row.counts.sent,
            x: metric.count(&row.counts),
        };
        match found.iter_mut().find(|(step, _)| *step == row.key.step) {
            Some((_, arms)) => arms.push(arm),
            None => found.push((row.key.step.clone(), vec![arm])),
        }
    }
    found
        .into_iter()
        .map(|(step, arms)| StepExperiment {
            step,
            metric,
            result: judge(&arms, mde),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(variant: &str, sent: u64, booked: u64, blocked: u64) -> Row {
        Row {
            key: ArmKey {
                sink: SinkKind::Line,
                step: "checkup".into(),
                variant: Some(variant.into()),
            },
            stage: None,
            in_rules: true,
            counts: Counts {
                sent,
                booked,
                blocked,
                ..Counts::default()
            },
            previous: Counts::default(),
            opened: Opened::NotMeasured,
        }
    }

    #[test]
    fn a_steps_arms_are_judged_together_and_fewer_blocks_is_better() {
        // 10% against 14% of 5,000 each: far past the size that difference needs.
        let rows = [
            arm("checkup_a", 5000, 500, 100),
            arm("checkup_b", 5000, 700, 300),
        ];
        let booked = experiments(&rows, Metric::Booked, None);
        assert_eq!(booked.len(), 1);
        assert_eq!(booked[0].result.arms.len(), 2);
        assert_eq!(
            booked[0].result.verdict,
            Verdict::Better("checkup_b".into())
        );
        // On blocks the arm that keeps more patients wins.
        let blocked = experiments(&rows, Metric::Blocked, None);
        assert_eq!(blocked[0].result.arms[0].x, 4900);
        assert_eq!(
            blocked[0].result.verdict,
            Verdict::Better("checkup_a".into())
        );
        // A handful of patients names no winner, however the rates look.
        let few = [arm("checkup_a", 10, 1, 0), arm("checkup_b", 10, 6, 0)];
        let few = experiments(&few, Metric::Booked, None);
        assert_eq!(few[0].result.verdict, Verdict::Underpowered);
    }

    #[test]
    fn a_winner_becomes_a_recommendation_to_send_it_to_everyone() {
        let found = recommend(&[], &[("checkup", "checkup_b")]);
        assert_eq!(
            found,
            [Recommendation::Winner {
                step: "checkup".into(),
                variant: "checkup_b".into()
            }]
        );
    }
}
