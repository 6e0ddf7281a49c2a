//! What the clinic might change next month, as data: steps that lose patients (a block rate
//! well above the clinic's median) and steps whose links are not tapped (a click rate far below
//! it). The rules and their thresholds are here; the words are the renderers'.

use serde::Serialize;

use super::build::Row;

/// A block rate at least this many times the median stands out…
pub const BLOCK_FACTOR: f64 = 2.0;
/// …when at least this many patients blocked (a couple of blocks is noise).
pub const MIN_BLOCKS: u64 = 5;
/// A click rate at most this fraction of the median stands out…
pub const CTR_FACTOR: f64 = 0.5;
/// …when the step went to at least this many patients.
pub const MIN_SENT_FOR_CTR: u64 = 100;

/// One recommendation. Serialized with its `kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recommendation {
    /// Patients block the account after this step far more than after the others: send it
    /// less often, shorten it, or stop it.
    HighBlockRate {
        step: String,
        variant: Option<String>,
        block_rate: f64,
        blocked: u64,
        median: f64,
    },
    /// An A/B test has a winner with enough patients behind it: send that variant to
    /// everyone ("make checkup_b 100%").
    Winner { step: String, variant: String },
    /// Patients rarely tap this step's links: reword the link or the button.
    LowClickRate {
        step: String,
        variant: Option<String>,
        ctr: f64,
        sent: u64,
        median: f64,
    },
}

/// The recommendations for this period's LINE rows and the A/B tests' `winners` (step,
/// variant): block rates first, then winners, then click rates, each in the rows' order.
pub fn recommend(rows: &[Row], winners: &[(&str, &str)]) -> Vec<Recommendation> {
    let sent: Vec<&Row> = rows.iter().filter(|r| r.counts.sent > 0).collect();
    let mut found = Vec::new();
    let block_rates: Vec<f64> = sent
        .iter()
        .filter_map(|r| r.counts.rate(r.counts.blocked))
        .collect();
    if let Some(median) = median(block_rates) {
        for row in &sent {
            let Some(rate) = row.counts.rate(row.counts.blocked) else {
                continue;
            };
            if row.counts.blocked >= MIN_BLOCKS && rate > median && rate >= BLOCK_FACTOR * median {
                found.push(Recommendation::HighBlockRate {
                    step: row.key.step.clone(),
                    variant: row.key.variant.clone(),
                    block_rate: rate,
                    blocked: row.counts.blocked,
                    median,
                });
            }
        }
    }
    found.extend(
        winners
            .iter()
            .map(|(step, variant)| Recommendation::Winner {
                step: (*step).to_owned(),
                variant: (*variant).to_owned(),
            }),
    );
    let click_rates: Vec<f64> = sent
        .iter()
        .filter_map(|r| r.counts.rate(r.counts.clicked))
        .collect();
    // With no clicks anywhere, links are not tracked: nothing to compare.
    if let Some(median) = median(click_rates).filter(|m| *m > 0.0) {
        for row in &sent {
            let Some(rate) = row.counts.rate(row.counts.clicked) else {
                continue;
            };
            if row.counts.sent >= MIN_SENT_FOR_CTR && rate <= CTR_FACTOR * median {
                found.push(Recommendation::LowClickRate {
                    step: row.key.step.clone(),
                    variant: row.key.variant.clone(),
                    ctr: rate,
                    sent: row.counts.sent,
                    median,
                });
            }
        }
    }
    found
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{ArmKey, SinkKind};
    use crate::report::build::Opened;
    use crate::report::tally::Counts;

    fn row(step: &str, sent: u64, clicked: u64, blocked: u64) -> Row {
        Row {
            key: ArmKey {
                sink: SinkKind::Line,
                step: step.into(),
                variant: None,
            },
            stage: None,
            in_rules: true,
            counts: Counts {
                sent,
                clicked,
                blocked,
                ..Counts::default()
            },
            previous: Counts::default(),
            opened: Opened::NotMeasured,
        }
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn a_block_rate_twice_the_median_with_five_blocks_is_named() {
        let rows = [
            row("a", 1000, 0, 10), // 1%
            row("b", 1000, 0, 10), // 1%: the median
            row("f", 1000, 0, 10), // 1%
            row("c", 1000, 0, 30), // 3%: three times the median, 30 blocks
            row("d", 100, 0, 4),   // 4%, but only 4 blocks
            row("e", 0, 0, 0),     // nothing sent: not in the median
        ];
        let found = recommend(&rows, &[]);
        assert_eq!(found.len(), 1, "{found:?}");
        let Recommendation::HighBlockRate { step, median, .. } = &found[0] else {
            panic!("{found:?}")
        };
        assert_eq!((step.as_str(), *median), ("c", 0.01));
    }

    #[test]
    fn a_click_rate_half_the_median_over_a_hundred_sends_is_named() {
        let rows = [
            row("a", 1000, 100, 0), // 10%
            row("b", 1000, 100, 0), // 10%: the median
            row("e", 1000, 100, 0), // 10%
            row("c", 1000, 50, 0),  // 5%: half the median
            row("d", 99, 0, 0),     // 0%, but only 99 sent
        ];
        let found = recommend(&rows, &[]);
        let steps: Vec<&str> = found
            .iter()
            .map(|r| match r {
                Recommendation::LowClickRate { step, .. } => step.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(steps, ["c"]);
        // Without tracked links there are no clicks, and no click advice.
        assert!(recommend(&[row("a", 1000, 0, 0), row("b", 1000, 0, 0)], &[]).is_empty());
    }
}
