//! One step's A/B test: each arm's rate with its Wilson interval, a Fisher exact p-value,
//! the sample size per arm the difference needs, and the verdict the report prints.
//!
//! The verdict is deliberately conservative: a clinic acts on "checkup_b better" by sending
//! checkup_b to everyone, so no winner is named until every arm has the patients the
//! difference needs (80% power at α = 0.05), however convincing the rates look before that.

use serde::{Serialize, Serializer};

use super::stats::{fisher_exact_two_sided, required_n_per_arm, wilson};

/// Significance level of the verdict (before the Bonferroni split over comparisons).
pub const ALPHA: f64 = 0.05;
/// Power the sample size is computed for.
pub const POWER: f64 = 0.8;
/// Confidence level of each arm's interval.
pub const CONFIDENCE: f64 = 0.95;

/// One variant of a step as the ledger counted it: `n` patients sent it (the metric's
/// denominator), `x` of them did what the metric counts (booked, clicked, blocked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arm {
    pub variant: String,
    pub n: u64,
    pub x: u64,
}

/// An arm as the report shows it: its counts, rate and 95% Wilson interval (all None when
/// n is 0, or when x > n, which a consistent ledger never gives).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmResult {
    pub variant: String,
    pub n: u64,
    pub x: u64,
    pub rate: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

/// What the clinic may conclude from the arms so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Too few patients in some arm to tell the difference apart from chance: keep sending.
    Underpowered,
    /// Enough patients, and the arms do not differ significantly.
    NoDifference,
    /// This variant's rate is significantly higher than every other arm's.
    Better(String),
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Verdict::Underpowered => serializer.serialize_str("underpowered"),
            Verdict::NoDifference => serializer.serialize_str("no difference"),
            Verdict::Better(variant) => serializer.serialize_str(&format!("{variant} better")),
        }
    }
}

/// A step's A/B test as the report shows it. `p_value` is None only when there are not two
/// arms with patients to compare; `required_n` is None when no sample size would do (the
/// difference to detect is 0, or too small to be reached).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    pub arms: Vec<ArmResult>,
    pub p_value: Option<f64>,
    pub required_n: Option<u64>,
    pub verdict: Verdict,
}

/// Judges the arms of one step.
///
/// The arm with the highest rate (the first listed on a tie) is compared with each other arm
/// by a two-sided Fisher exact test; with k arms that is k − 1 comparisons, so each p-value
/// is multiplied by k − 1 (Bonferroni, capped at 1) and `p_value` is the largest of them:
/// the winner has to beat every arm. The sample size is computed per comparison at
/// α / (k − 1) for the difference to detect, and `required_n` is the largest.
///
/// The difference to detect is `mde` (absolute, from the other arm's rate upwards, or
/// downwards when that passes 1) or, when None, the observed difference. A rate of 0 or 1
/// is taken as (x + ½) / (n + 1) there, since no sample size separates a rate of exactly 0.
///
/// Underpowered when any arm's n is below `required_n`, or there is no `required_n` (or
/// fewer than two arms, an arm without patients, x > n): then never a winner. Otherwise
/// NoDifference when p >= 0.05, else Better(the arm with the highest rate).
pub fn judge(arms: &[Arm], mde: Option<f64>) -> Experiment {
    let results: Vec<ArmResult> = arms.iter().map(arm_result).collect();
    let valid = arms.len() >= 2 && arms.iter().all(|arm| arm.n > 0 && arm.x <= arm.n);
    if !valid {
        return Experiment {
            arms: results,
            p_value: None,
            required_n: None,
            verdict: Verdict::Underpowered,
        };
    }
    let best = best_arm(arms);
    let comparisons = (arms.len() - 1) as f64;
    let mut p_value = 0.0_f64;
    let mut required_n = Some(0_u64);
    let winner = &arms[best];
    let others = arms.iter().enumerate().filter(|(index, _)| *index != best);
    for (_, other) in others {
        let p = fisher_exact_two_sided(winner.x, winner.n - winner.x, other.x, other.n - other.x);
        p_value = p_value.max((p * comparisons).min(1.0));
        let needed = pair_required_n(winner, other, mde, ALPHA / comparisons);
        required_n = match (required_n, needed) {
            (Some(so_far), Some(needed)) => Some(so_far.max(needed)),
            _ => None,
        };
    }
    let enough = required_n.is_some_and(|needed| arms.iter().all(|arm| arm.n >= needed));
    let verdict = if !enough {
        Verdict::Underpowered
    } else if p_value >= ALPHA {
        Verdict::NoDifference
    } else {
        Verdict::Better(winner.variant.clone())
    };
    Experiment {
        arms: results,
        p_value: Some(p_value),
        required_n,
        verdict,
    }
}

fn arm_result(arm: &Arm) -> ArmResult {
    let interval = wilson(arm.x, arm.n, CONFIDENCE);
    ArmResult {
        variant: arm.variant.clone(),
        n: arm.n,
        x: arm.x,
        rate: interval.map(|_| arm.x as f64 / arm.n as f64),
        ci_low: interval.map(|interval| interval.low),
        ci_high: interval.map(|interval| interval.high),
    }
}

/// The index of the arm with the highest rate, comparing x₁·n₂ with x₂·n₁ exactly (u128),
/// so that equal rates tie and the first listed wins.
fn best_arm(arms: &[Arm]) -> usize {
    let mut best = 0;
    for (index, arm) in arms.iter().enumerate().skip(1) {
        let current = &arms[best];
        if u128::from(arm.x) * u128::from(current.n) > u128::from(current.x) * u128::from(arm.n) {
            best = index;
        }
    }
    best
}

/// Sample size per arm for telling `winner` from `other` (see [`judge`]).
fn pair_required_n(winner: &Arm, other: &Arm, mde: Option<f64>, alpha: f64) -> Option<u64> {
    let baseline = rate_for_sample_size(other);
    let target = match mde {
        None => rate_for_sample_size(winner),
        Some(mde) if mde.is_finite() && mde > 0.0 && mde < 1.0 => {
            if baseline + mde < 1.0 {
                baseline + mde
            } else {
                baseline - mde
            }
        }
        Some(_) => return None,
    };
    if winner.x as u128 * other.n as u128 == other.x as u128 * winner.n as u128 && mde.is_none() {
        // Equal observed rates: no difference to detect (the adjustment must not invent one).
        return None;
    }
    required_n_per_arm(baseline, target, alpha, POWER)
}

/// x / n, with 0 and 1 moved to (x + ½) / (n + 1) (see [`judge`]).
fn rate_for_sample_size(arm: &Arm) -> f64 {
    if arm.x == 0 || arm.x == arm.n {
        (arm.x as f64 + 0.5) / (arm.n as f64 + 1.0)
    } else {
        arm.x as f64 / arm.n as f64
    }
}

#[cfg(test)]
#[path = "experiment_tests.rs"]
mod tests;
