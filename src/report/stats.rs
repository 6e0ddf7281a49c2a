//! The statistics behind an A/B verdict: a Wilson interval for each arm's rate, a two-sided
//! Fisher exact test between two arms, and the sample size per arm a difference needs.
//!
//! Every function takes counts straight from the ledger, so each one is total: n = 0, x > n,
//! counts near `u64::MAX`, NaN or out-of-range probabilities give `None` or a p-value in
//! [0, 1], never a panic, a NaN or a loop whose length grows with n beyond a fixed bound.
//! The reference values the tests hold them to come from scipy and statsmodels
//! (`tests/fixtures/stats/reference.py`).

/// A confidence interval for a rate (both ends in [0, 1], `low <= high`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// Wilson score interval for x successes in n trials at confidence level `confidence`
/// (0.95 → z = 1.959963984540054); None when n == 0, x > n or `confidence` is not in (0, 1).
///
/// The formula of statsmodels' `proportion_confint(x, n, method="wilson")`, clipped to
/// [0, 1] as it clips; the interval also always contains x / n (rounding could otherwise put
/// an end a few ulps past it when x is 0 or n).
pub fn wilson(x: u64, n: u64, confidence: f64) -> Option<Interval> {
    if n == 0 || x > n || !(confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    let z = normal_quantile(0.5 + confidence / 2.0);
    let (nf, rate) = (n as f64, x as f64 / n as f64);
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let center = (rate + z2 / (2.0 * nf)) / denom;
    let half = z * (rate * (1.0 - rate) / nf + z2 / (4.0 * nf * nf)).sqrt() / denom;
    Some(Interval {
        low: (center - half).clamp(0.0, 1.0).min(rate),
        high: (center + half).clamp(0.0, 1.0).max(rate),
    })
}

/// Two pmf values closer than this (relative) count as equal, so a table as likely as the
/// observed one is in the p-value even when rounding makes it a hair less likely. scipy
/// 1.17's own tolerance is 1e-14, which its Boost pmf is accurate enough for; this walk's
/// ratio products lose a few ulps per step, so the tolerance is scipy's older 1e-7. (A
/// Python port of this walk matched scipy 1.17 to 2e-9 with either tolerance on 6,000 random
/// tables, symmetric ones of up to 3 million per cell included; `fisher_matches_scipy`
/// holds the Rust to the reference tables.)
const FISHER_TIE_TOLERANCE: f64 = 1e-7;

/// Terms this far below the mode's (relative) are left out: with at most 2⁵³ of them (see
/// [`FISHER_MAX_EXACT_TOTAL`]) they add under 1e-284 of the total, far under the 1e-6 asked.
const FISHER_NEGLIGIBLE: f64 = 1e-300;

/// Beyond this standard deviation of the hypergeometric (about 1.6e11 patients in the two
/// arms together) the exact walk would take more than ~8 million steps; such tables get the
/// normal approximation, which at that size is off by about one table's weight
/// (1/(2.5·sd) < 4e-6): the only place the p-value is not scipy's.
const FISHER_MAX_EXACT_SD: f64 = 1e5;

/// The walk counts cells in f64, exact up to 2⁵³; larger tables (no clinic has them) get
/// the normal approximation too.
const FISHER_MAX_EXACT_TOTAL: u128 = 1 << 53;

/// A hard stop for each walk, whatever rounding does: 40 standard deviations of the largest
/// exactly-walked table is 4 million steps, well inside it.
const FISHER_MAX_STEPS: u32 = 10_000_000;

/// Two-sided Fisher exact test p-value for the 2×2 table [[a, b], [c, d]], as scipy's
/// `fisher_exact(..., alternative="two-sided")` computes it: the summed probability of all
/// tables with the same margins whose probability is <= the observed one's (relative
/// tolerance [`FISHER_TIE_TOLERANCE`]). 1.0 when a row or a column is empty.
///
/// Rather than ln Γ differences (whose absolute error at n = 10⁷ is ~1e-8, too coarse to
/// see ties), the pmf is walked outwards from the mode with the exact ratio of neighbouring
/// terms, unnormalised (the mode is 1), and normalised by the walked total at the end.
pub fn fisher_exact_two_sided(a: u64, b: u64, c: u64, d: u64) -> f64 {
    let (a, b, c, d) = (a as u128, b as u128, c as u128, d as u128);
    let row1 = a + b;
    let row2 = c + d;
    let col1 = a + c;
    let col2 = b + d;
    if row1 == 0 || row2 == 0 || col1 == 0 || col2 == 0 {
        return 1.0;
    }
    let total = row1 + row2;
    let hypergeom = Hypergeometric {
        successes: row1 as f64,
        failures: row2 as f64,
        draws: col1 as f64,
    };
    if total > FISHER_MAX_EXACT_TOTAL || hypergeom.sd() > FISHER_MAX_EXACT_SD {
        return fisher_normal_approximation(a, row1, row2, col1, total);
    }
    // scipy's mode, the same integer it starts from (no overflow: total <= 2^53).
    let mode = (col1 + 1) * (row1 + 1) / (total + 2);
    let lowest = col1.saturating_sub(row2);
    let highest = col1.min(row1);
    let mode = mode.clamp(lowest, highest);
    let p = hypergeom.two_sided(a as f64, mode as f64, lowest as f64, highest as f64);
    if p.is_nan() {
        1.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// The null distribution of the top-left cell: `draws` patients from `successes + failures`.
struct Hypergeometric {
    successes: f64,
    failures: f64,
    draws: f64,
}

impl Hypergeometric {
    fn sd(&self) -> f64 {
        let total = self.successes + self.failures;
        let variance = self.draws
            * (self.successes / total)
            * (self.failures / total)
            * ((total - self.draws) / (total - 1.0).max(1.0));
        variance.max(0.0).sqrt()
    }

    /// pmf(k + 1) / pmf(k); one division of exact products while they fit in 2⁵³.
    fn ratio_up(&self, k: f64) -> f64 {
        ((self.successes - k) * (self.draws - k))
            / ((k + 1.0) * (self.failures - self.draws + k + 1.0))
    }

    /// scipy's two-sided rule: if the observed cell ties the mode, 1; otherwise its own
    /// tail (observed outwards) plus the far side's terms below pmf(observed) · (1 + tol),
    /// over the walked total. Nothing is stored: two walks, O(standard deviation) steps.
    fn two_sided(&self, observed: f64, mode: f64, lowest: f64, highest: f64) -> f64 {
        if observed == mode {
            return 1.0;
        }
        let toward = if observed < mode { -1.0 } else { 1.0 };
        let (mut total, mut own_tail) = (1.0, 0.0);
        let mut observed_term = None;
        self.walk(mode, toward, lowest, highest, |k, term| {
            total += term;
            if k == observed {
                observed_term = Some(term);
            }
            if observed_term.is_some() {
                own_tail += term;
            }
        });
        let Some(observed_term) = observed_term else {
            // Less likely than 1e-300 of the mode: so is every table at least as extreme.
            return 0.0;
        };
        if (1.0 - observed_term).abs() <= FISHER_TIE_TOLERANCE {
            return 1.0;
        }
        let threshold = observed_term * (1.0 + FISHER_TIE_TOLERANCE);
        let mut far_tail = 0.0;
        self.walk(mode, -toward, lowest, highest, |_, term| {
            total += term;
            if term < threshold {
                far_tail += term;
            }
        });
        (own_tail + far_tail) / total
    }

    /// Visits (k, pmf(k) / pmf(from)) for k = from ± 1, ± 2, … within [lowest, highest],
    /// stopping at the first negligible term (from the mode the terms only fall).
    fn walk(
        &self,
        from: f64,
        direction: f64,
        lowest: f64,
        highest: f64,
        mut visit: impl FnMut(f64, f64),
    ) {
        let (mut k, mut term) = (from, 1.0_f64);
        for _ in 0..FISHER_MAX_STEPS {
            let next = k + direction;
            if next < lowest || next > highest {
                return;
            }
            term = if direction > 0.0 {
                term * self.ratio_up(k)
            } else {
                term / self.ratio_up(next)
            };
            if term.is_nan() || term < FISHER_NEGLIGIBLE {
                return;
            }
            k = next;
            visit(k, term);
        }
    }
}

/// A pooled two-proportion z test, only for tables past [`FISHER_MAX_EXACT_SD`] or
/// [`FISHER_MAX_EXACT_TOTAL`].
fn fisher_normal_approximation(a: u128, row1: u128, row2: u128, col1: u128, total: u128) -> f64 {
    let (rate1, rate2) = (a as f64 / row1 as f64, (col1 - a) as f64 / row2 as f64);
    let pooled = col1 as f64 / total as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / row1 as f64 + 1.0 / row2 as f64)).sqrt();
    if se.is_nan() || se <= 0.0 {
        return 1.0;
    }
    let z = ((rate1 - rate2) / se).abs();
    (2.0 * normal_cdf(-z)).clamp(0.0, 1.0)
}

/// The largest sample size per arm that is reported; past it the difference is, for a
/// clinic, undetectable (and the f64 arithmetic would stop being exact in n).
const MAX_REQUIRED_N: f64 = 1e15;

/// Sample size per arm for a two-sided two-proportion test at `alpha` with `power` to
/// detect p1 vs p2; None when p1 == p2, either is outside (0, 1), alpha or power is outside
/// (0, 1), or the size exceeds 10¹⁵.
///
/// The normal approximation on Cohen's h = 2·asin √p1 − 2·asin √p2 that statsmodels'
/// `NormalIndPower().solve_power(effect_size=proportion_effectsize(p1, p2), alpha=alpha,
/// power=power, ratio=1, alternative="two-sided")` solves: the smallest n with
/// Φ(|h|·√(n/2) − z) + Φ(−|h|·√(n/2) − z) ≥ power, z = Φ⁻¹(1 − alpha/2), rounded up.
pub fn required_n_per_arm(p1: f64, p2: f64, alpha: f64, power: f64) -> Option<u64> {
    let n = required_n_per_arm_exact(p1, p2, alpha, power)?;
    let rounded = n.ceil();
    (rounded <= MAX_REQUIRED_N).then_some(rounded as u64)
}

/// [`required_n_per_arm`] before rounding up: the n statsmodels' `solve_power` returns.
pub fn required_n_per_arm_exact(p1: f64, p2: f64, alpha: f64, power: f64) -> Option<f64> {
    let open_unit = |p: f64| p > 0.0 && p < 1.0;
    if !(open_unit(p1) && open_unit(p2) && open_unit(alpha) && open_unit(power)) || p1 == p2 {
        return None;
    }
    let h = (2.0 * p1.sqrt().asin() - 2.0 * p2.sqrt().asin()).abs();
    let z = normal_quantile(1.0 - alpha / 2.0);
    let power_at = |n: f64| {
        let shift = h * (n / 2.0).sqrt();
        normal_cdf(shift - z) + normal_cdf(-shift - z)
    };
    // The one-tail closed form is a lower bound (the far tail only adds power) and within
    // a few percent; bisect between a bound below and one above it.
    let one_tail = 2.0 * ((z + normal_quantile(power)) / h).powi(2);
    let (mut low, mut high) = (0.0_f64, one_tail.max(1e-9) * 2.0 + 1.0);
    if !high.is_finite() || high > MAX_REQUIRED_N * 4.0 {
        return None;
    }
    if power_at(high) < power {
        return None;
    }
    // Power is increasing in n; 200 halvings take any bracket here to the last ulp.
    for _ in 0..200 {
        let mid = (low + high) / 2.0;
        if mid <= low || mid >= high {
            break;
        }
        if power_at(mid) < power {
            low = mid;
        } else {
            high = mid;
        }
    }
    (high <= MAX_REQUIRED_N).then_some(high)
}

/// Φ(x), the standard normal CDF, to ~1e-15 absolute: Marsaglia (2004)'s Taylor series
/// for |x| <= 5, the continued fraction of Mills' ratio in the tails (where the series
/// would lose its digits to cancellation), 0 or 1 past ±37 (within 1e-299 of it).
pub fn normal_cdf(x: f64) -> f64 {
    if x.is_nan() {
        return 0.5;
    }
    if x < -37.0 {
        return 0.0;
    }
    if x > 37.0 {
        return 1.0;
    }
    if x < -5.0 {
        return lower_tail(-x);
    }
    if x > 5.0 {
        return 1.0 - lower_tail(x);
    }
    let (q, mut sum, mut term, mut previous, mut i) = (x * x, x, x, 0.0, 1.0);
    // The terms shrink once i > x² (25 here), so this ends within ~100 rounds.
    while sum != previous && i < 1_000.0 {
        previous = sum;
        i += 2.0;
        term *= q / i;
        sum += term;
    }
    (0.5 + sum * (-0.5 * q - LN_SQRT_2PI).exp()).clamp(0.0, 1.0)
}

/// ln √(2π).
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Φ(−t) for 5 <= t <= 37: φ(t) / (t + 1/(t + 2/(t + 3/(t + …)))), 120 levels deep (more
/// than enough at t >= 5: relative error below 1e-13).
fn lower_tail(t: f64) -> f64 {
    let fraction = (1..=120)
        .rev()
        .fold(0.0, |inner, k| f64::from(k) / (t + inner));
    (-0.5 * t * t - LN_SQRT_2PI).exp() / (t + fraction)
}

/// Φ⁻¹(p), the standard normal quantile, to ~1e-16 relative: Wichura's AS 241 (PPND16).
/// ±∞ at 0 and 1; NaN never (0 for a NaN p, which no caller passes).
pub fn normal_quantile(p: f64) -> f64 {
    if p.is_nan() {
        return 0.0;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q * polynomial(r, &CENTRAL_NUMERATOR) / polynomial(r, &CENTRAL_DENOMINATOR);
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let value = if r <= 5.0 {
        let r = r - 1.6;
        polynomial(r, &NEAR_NUMERATOR) / polynomial(r, &NEAR_DENOMINATOR)
    } else {
        let r = r - 5.0;
        polynomial(r, &FAR_NUMERATOR) / polynomial(r, &FAR_DENOMINATOR)
    };
    if q < 0.0 {
        -value
    } else {
        value
    }
}

/// c₀ + c₁x + … by Horner's rule (coefficients lowest first).
fn polynomial(x: f64, coefficients: &[f64; 8]) -> f64 {
    coefficients.iter().rev().fold(0.0, |acc, c| acc * x + c)
}

const CENTRAL_NUMERATOR: [f64; 8] = [
    3.387_132_872_796_366_5,
    133.141_667_891_784_38,
    1_971.590_950_306_551_4,
    13_731.693_765_509_46,
    45_921.953_931_549_87,
    67_265.770_927_008_7,
    33_430.575_583_588_13,
    2_509.080_928_730_122_7,
];
const CENTRAL_DENOMINATOR: [f64; 8] = [
    1.0,
    42.313_330_701_600_91,
    687.187_007_492_057_9,
    5_394.196_021_424_751,
    21_213.794_301_586_597,
    39_307.895_800_092_71,
    28_729.085_735_721_943,
    5_226.495_278_852_546,
];
const NEAR_NUMERATOR: [f64; 8] = [
    1.423_437_110_749_683_5,
    4.630_337_846_156_545,
    5.769_497_221_460_691,
    3.647_848_324_763_204_5,
    1.270_458_252_452_368_4,
    0.241_780_725_177_450_6,
    0.022_723_844_989_269_184,
    7.745_450_142_783_414e-4,
];
const NEAR_DENOMINATOR: [f64; 8] = [
    1.0,
    2.053_191_626_637_759,
    1.676_384_830_183_803_8,
    0.689_767_334_985_1,
    0.148_103_976_427_480_08,
    0.015_198_666_563_616_457,
    5.475_938_084_995_345e-4,
    1.050_750_071_644_416_8e-9,
];
const FAR_NUMERATOR: [f64; 8] = [
    6.657_904_643_501_103,
    5.463_784_911_164_114,
    1.784_826_539_917_291_3,
    0.296_560_571_828_504_9,
    0.026_532_189_526_576_124,
    0.001_242_660_947_388_078_4,
    2.711_555_568_743_487_6e-5,
    2.010_334_399_292_288e-7,
];
const FAR_DENOMINATOR: [f64; 8] = [
    1.0,
    0.599_832_206_555_888,
    0.136_929_880_922_735_8,
    0.014_875_361_290_850_615,
    7.868_691_311_456_133e-4,
    1.846_318_317_510_054_8e-5,
    1.421_511_758_316_446e-7,
    2.044_263_103_389_939_7e-15,
];

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
