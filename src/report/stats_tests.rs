//! The statistics against scipy and statsmodels (values computed outside steprule by
//! `tests/fixtures/stats/reference.py`, printed into `reference.txt`), and the properties
//! every input must keep.

use super::*;
use proptest::prelude::*;

const REFERENCE: &str = include_str!("../../tests/fixtures/stats/reference.txt");

/// The reference lines of one kind, split into their fields.
fn reference_cases(kind: &str) -> Vec<Vec<&'static str>> {
    let cases: Vec<Vec<&str>> = REFERENCE
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next() == Some(kind)).then(|| fields.collect())
        })
        .collect();
    assert!(
        cases.len() >= 20,
        "{kind}: only {} reference cases",
        cases.len()
    );
    cases
}

fn number<T: std::str::FromStr>(field: &str) -> T {
    field
        .parse()
        .unwrap_or_else(|_| panic!("reference field {field:?}"))
}

#[test]
fn fisher_matches_scipy() {
    for case in reference_cases("fisher") {
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| number::<u64>(case[i]));
        let expected: f64 = number(case[4]);
        let got = fisher_exact_two_sided(a, b, c, d);
        assert!(
            (got - expected).abs() <= 1e-6,
            "fisher [[{a}, {b}], [{c}, {d}]]: {got} against scipy's {expected}"
        );
    }
}

#[test]
fn wilson_matches_statsmodels() {
    for case in reference_cases("wilson") {
        let (x, n, confidence) = (number(case[0]), number(case[1]), number(case[2]));
        let (low, high): (f64, f64) = (number(case[3]), number(case[4]));
        let interval = wilson(x, n, confidence).unwrap_or_else(|| panic!("{x}/{n}: None"));
        assert!(
            (interval.low - low).abs() <= 1e-6 && (interval.high - high).abs() <= 1e-6,
            "wilson {x}/{n} at {confidence}: {interval:?} against ({low}, {high})"
        );
    }
}

#[test]
fn sample_size_matches_statsmodels() {
    for case in reference_cases("samplesize") {
        let [p1, p2, alpha, power] = [0, 1, 2, 3].map(|i| number::<f64>(case[i]));
        let expected: f64 = number(case[4]);
        let got = required_n_per_arm_exact(p1, p2, alpha, power)
            .unwrap_or_else(|| panic!("{p1} vs {p2}: None"));
        assert!(
            (got - expected).abs() <= 1e-6 * expected.max(1.0),
            "n for {p1} vs {p2} (alpha {alpha}, power {power}): {got} against {expected}"
        );
        assert_eq!(
            required_n_per_arm(p1, p2, alpha, power),
            Some(expected.ceil() as u64)
        );
    }
}

#[test]
fn normal_quantile_is_scipys_at_the_levels_used() {
    // scipy.stats.norm.ppf(q) for each q (scipy 1.17.1).
    for (q, expected) in [
        (0.975, 1.959963984540054),
        (0.8, 0.8416212335729143),
        (0.5, 0.0),
        (0.995, 2.5758293035489004),
        (1e-10, -6.361340902404056),
        (0.9999999, 5.199337582290661),
        (0.3, -0.5244005127080409),
        (0.05, -1.6448536269514729),
        (1e-300, -37.0470962993612),
    ] {
        let got = normal_quantile(q);
        assert!(
            (got - expected).abs() <= 1e-12,
            "ppf({q}) = {got}, not {expected}"
        );
    }
}

#[test]
fn degenerate_inputs_have_defined_answers() {
    assert_eq!(wilson(0, 0, 0.95), None);
    assert_eq!(wilson(11, 10, 0.95), None);
    assert_eq!(wilson(3, 10, f64::NAN), None);
    assert_eq!(wilson(3, 10, 1.0), None);
    assert_eq!(required_n_per_arm(0.1, 0.1, 0.05, 0.8), None);
    assert_eq!(required_n_per_arm(0.0, 0.1, 0.05, 0.8), None);
    assert_eq!(required_n_per_arm(0.1, 1.0, 0.05, 0.8), None);
    assert_eq!(required_n_per_arm(f64::NAN, 0.1, 0.05, 0.8), None);
    assert_eq!(required_n_per_arm(0.1, 0.2, 0.05, f64::NAN), None);
    // A difference of 1e-12 needs ~1e23 patients per arm: more than is ever reported.
    assert_eq!(required_n_per_arm(0.5, 0.5 + 1e-12, 0.05, 0.8), None);
    assert_eq!(fisher_exact_two_sided(0, 0, 0, 0), 1.0);
    let huge = u64::MAX / 2;
    for p in [
        fisher_exact_two_sided(huge, huge, huge, huge),
        fisher_exact_two_sided(u64::MAX, 0, 0, u64::MAX),
        fisher_exact_two_sided(u64::MAX, u64::MAX, u64::MAX, u64::MAX),
        fisher_exact_two_sided(1, u64::MAX, 1_000_000, u64::MAX),
    ] {
        assert!((0.0..=1.0).contains(&p), "{p}");
    }
}

#[test]
fn fisher_at_ten_million_per_arm_is_exact_and_quick() {
    // scipy: fisher_exact([[1_000_000, 9_000_000], [1_001_000, 8_999_000]]).pvalue.
    let started = std::time::Instant::now();
    let p = fisher_exact_two_sided(1_000_000, 9_000_000, 1_001_000, 8_999_000);
    assert!((p - 0.4566071696342482).abs() <= 1e-6, "{p}");
    // The walk is ~40 standard deviations (~1,300 each here) per side, not 10⁷ steps.
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn the_normal_approximation_takes_over_only_past_the_exact_walk() {
    // sd ≈ 2.5e5 > 1e5: the z test. Equal rates → 1; a 0.1% difference at 1e12 → ~0.
    let n = 1_000_000_000_000_u64;
    assert_eq!(fisher_exact_two_sided(n / 2, n / 2, n / 2, n / 2), 1.0);
    assert!(fisher_exact_two_sided(n / 10, n - n / 10, n / 10 + n / 1000, n) < 1e-12);
}

proptest! {
    #[test]
    fn fisher_p_is_in_unit_interval_and_symmetric(
        a in 0u64..3000, b in 0u64..3000, c in 0u64..3000, d in 0u64..3000,
    ) {
        let p = fisher_exact_two_sided(a, b, c, d);
        prop_assert!((0.0..=1.0).contains(&p), "{}", p);
        // Swapping the arms (rows) or the outcomes (columns) asks the same question.
        let swapped_arms = fisher_exact_two_sided(c, d, a, b);
        let swapped_outcomes = fisher_exact_two_sided(b, a, d, c);
        prop_assert!((p - swapped_arms).abs() <= 1e-9, "{} vs {}", p, swapped_arms);
        prop_assert!((p - swapped_outcomes).abs() <= 1e-9, "{} vs {}", p, swapped_outcomes);
    }

    #[test]
    fn wilson_contains_the_rate_within_unit_interval(
        n in 1u64..20_000_000, share in 0.0f64..=1.0, confidence in 0.5f64..0.9999,
    ) {
        let x = ((n as f64) * share).floor() as u64;
        let interval = wilson(x, n, confidence).ok_or_else(|| TestCaseError::fail("None"))?;
        let rate = x as f64 / n as f64;
        prop_assert!(0.0 <= interval.low && interval.low <= rate, "{:?} {}", interval, rate);
        prop_assert!(rate <= interval.high && interval.high <= 1.0, "{:?} {}", interval, rate);
    }

    #[test]
    fn required_n_grows_as_the_difference_shrinks(
        p1 in 0.01f64..0.5, delta in 0.001f64..0.3,
    ) {
        let near = required_n_per_arm(p1, p1 + delta / 2.0, 0.05, 0.8);
        let far = required_n_per_arm(p1, p1 + delta, 0.05, 0.8);
        if let (Some(near), Some(far)) = (near, far) {
            prop_assert!(near >= far, "{} < {}", near, far);
        } else {
            prop_assert!(false, "None for {} + {}", p1, delta);
        }
    }
}

#[test]
fn normal_cdf_is_scipys_from_tail_to_tail() {
    // scipy.stats.norm.cdf(x) (scipy 1.17.1): to 1e-15, and to 1e-12 relative in the tail.
    for (x, expected) in [
        (-36.9, 2.3105244811403487e-298),
        (-8.0, 6.22096057427174e-16),
        (-1.959963984540054, 0.025),
        (0.0, 0.5),
        (0.8416212335729143, 0.8),
        (3.0, 0.9986501019683699),
        (36.9, 1.0),
    ] {
        let got = normal_cdf(x);
        let tolerance = 1e-15_f64.min(expected * 1e-12).max(f64::MIN_POSITIVE);
        assert!(
            (got - expected).abs() <= tolerance,
            "cdf({x}) = {got}, not {expected}"
        );
    }
    assert!([-1e308, -38.0, 38.0, 1e308, f64::NAN]
        .iter()
        .all(|x| normal_cdf(*x).is_finite()));
}
