//! Verdicts on hand-picked arms (expected p-values and sizes from scipy and statsmodels, by
//! the Python at each test), and the property that no winner is ever named too early.

use super::*;
use proptest::prelude::*;

fn arm(variant: &str, x: u64, n: u64) -> Arm {
    Arm {
        variant: variant.to_string(),
        n,
        x,
    }
}

fn close(got: Option<f64>, expected: f64) -> bool {
    got.is_some_and(|got| (got - expected).abs() <= 1e-6)
}

#[test]
fn a_significant_difference_with_enough_patients_names_the_winner() {
    // fisher_exact([[150, 850], [100, 900]]).pvalue = 0.0008950875386906894;
    // NormalIndPower().solve_power(proportion_effectsize(0.1, 0.15), alpha=0.05, power=0.8)
    //   = 680.35 → 681.
    let result = judge(
        &[arm("checkup_a", 100, 1000), arm("checkup_b", 150, 1000)],
        None,
    );
    assert!(close(result.p_value, 0.0008950875386906894), "{result:?}");
    assert_eq!(result.required_n, Some(681));
    assert_eq!(result.verdict, Verdict::Better("checkup_b".into()));
    assert!(close(result.arms[1].rate, 0.15));
}

#[test]
fn too_few_patients_is_underpowered_even_with_p_below_005() {
    // fisher_exact([[5, 15], [0, 20]]).pvalue = 0.04712404712404713 (< 0.05), but the 0/20
    // arm's rate counts as 0.5/21 and solve_power(proportion_effectsize(0.5/21, 0.25))
    // = 28.87 → 29 patients per arm are needed: 20 is not enough to name a winner.
    let result = judge(&[arm("a", 0, 20), arm("b", 5, 20)], None);
    assert!(close(result.p_value, 0.04712404712404713), "{result:?}");
    assert_eq!(result.required_n, Some(29));
    assert_eq!(result.verdict, Verdict::Underpowered);
}

#[test]
fn a_promising_but_small_difference_is_underpowered() {
    // fisher_exact([[20, 80], [10, 90]]).pvalue = 0.07342758972137636;
    // solve_power(proportion_effectsize(0.1, 0.2)) = 194.9 → 195 > 100.
    let result = judge(&[arm("a", 10, 100), arm("b", 20, 100)], None);
    assert!(close(result.p_value, 0.07342758972137636));
    assert_eq!(result.required_n, Some(195));
    assert_eq!(result.verdict, Verdict::Underpowered);
}

#[test]
fn with_an_mde_and_enough_patients_no_difference_is_a_verdict() {
    // fisher_exact([[408, 3592], [400, 3600]]).pvalue = 0.795092110252327;
    // --mde 0.02 from the other arm's 0.1: solve_power(proportion_effectsize(0.1, 0.12))
    // = 3834.6 → 3835 <= 4000.
    let result = judge(&[arm("a", 400, 4000), arm("b", 408, 4000)], Some(0.02));
    assert!(close(result.p_value, 0.795092110252327));
    assert_eq!(result.required_n, Some(3835));
    assert_eq!(result.verdict, Verdict::NoDifference);
    // Without the mde the observed 0.2% difference needs far more than 4000.
    let observed = judge(&[arm("a", 400, 4000), arm("b", 408, 4000)], None);
    assert_eq!(observed.verdict, Verdict::Underpowered);
}

#[test]
fn three_arms_compare_the_best_with_each_other_at_bonferroni_alpha() {
    // Best is b. fisher_exact([[300, 1700], [200, 1800]]).pvalue = 2.072147439312868e-06,
    // fisher_exact([[300, 1700], [210, 1790]]).pvalue = 2.357075237303475e-05: times the
    // 2 comparisons, the larger is 4.71415047460695e-05. Sizes at alpha 0.025:
    // solve_power(proportion_effectsize(0.1, 0.15), alpha=0.025) = 823.9,
    // solve_power(proportion_effectsize(0.105, 0.15), alpha=0.025) = 1036.7 → 1037.
    let arms = [
        arm("a", 200, 2000),
        arm("b", 300, 2000),
        arm("c", 210, 2000),
    ];
    let result = judge(&arms, None);
    assert!(
        close(result.p_value, 2.0 * 2.357075237303475e-05),
        "{result:?}"
    );
    assert_eq!(result.required_n, Some(1037));
    assert_eq!(result.verdict, Verdict::Better("b".into()));
    // The same rates with 1000 per arm: 1000 < 1037, though a two-arm test would need 681.
    let smaller = [
        arm("a", 100, 1000),
        arm("b", 150, 1000),
        arm("c", 105, 1000),
    ];
    assert_eq!(judge(&smaller, None).verdict, Verdict::Underpowered);
}

#[test]
fn arms_that_cannot_be_compared_are_underpowered_without_a_p_value() {
    for arms in [
        vec![],
        vec![arm("a", 5, 10)],
        vec![arm("a", 5, 10), arm("b", 0, 0)],
        vec![arm("a", 11, 10), arm("b", 3, 10)],
    ] {
        let result = judge(&arms, None);
        assert_eq!(result.p_value, None, "{arms:?}");
        assert_eq!(result.verdict, Verdict::Underpowered);
    }
    let invalid = judge(&[arm("a", 11, 10), arm("b", 0, 0)], None);
    assert_eq!(invalid.arms[0].rate, None);
    assert_eq!(invalid.arms[1].ci_low, None);
}

#[test]
fn equal_rates_or_an_unusable_mde_never_have_a_size() {
    let equal = judge(&[arm("a", 100, 1000), arm("b", 200, 2000)], None);
    assert_eq!(equal.required_n, None);
    assert_eq!(equal.verdict, Verdict::Underpowered);
    for mde in [f64::NAN, -0.1, 0.0, 1.0, f64::INFINITY] {
        let result = judge(&[arm("a", 100, 1000), arm("b", 150, 1000)], Some(mde));
        assert_eq!(result.required_n, None, "{mde}");
        assert_eq!(result.verdict, Verdict::Underpowered);
    }
}

#[test]
fn serialises_with_the_reports_keys_and_verdict_words() {
    let better = judge(
        &[arm("checkup_a", 100, 1000), arm("checkup_b", 150, 1000)],
        None,
    );
    let json = serde_json::to_value(&better).unwrap_or_default();
    assert_eq!(json["verdict"], "checkup_b better");
    assert_eq!(json["required_n"], 681);
    assert_eq!(
        json["arms"][0],
        serde_json::json!({
            "variant": "checkup_a", "n": 1000, "x": 100, "rate": 0.1,
            "ci_low": better.arms[0].ci_low, "ci_high": better.arms[0].ci_high,
        })
    );
    let words = [Verdict::Underpowered, Verdict::NoDifference]
        .map(|verdict| serde_json::to_string(&verdict).unwrap_or_default());
    assert_eq!(words, ["\"underpowered\"", "\"no difference\""]);
    let empty = serde_json::to_value(judge(&[], None)).unwrap_or_default();
    assert_eq!(empty["p_value"], serde_json::Value::Null);
}

fn arms_strategy() -> impl Strategy<Value = Vec<Arm>> {
    // Sizes from a handful to a large clinic, rates spread so that every verdict occurs.
    let one = (1u64..5000, 0.0f64..=0.6).prop_map(|(n, share)| (n, (n as f64 * share) as u64));
    prop::collection::vec(one, 2..5).prop_map(|arms| {
        arms.into_iter()
            .enumerate()
            .map(|(index, (n, x))| arm(&format!("v{index}"), x, n))
            .collect()
    })
}

proptest! {
    #[test]
    fn never_a_winner_while_an_arm_is_below_the_required_size(
        arms in arms_strategy(), mde in prop::option::of(0.005f64..0.3),
    ) {
        let result = judge(&arms, mde);
        let p = result.p_value.ok_or_else(|| TestCaseError::fail("no p"))?;
        prop_assert!((0.0..=1.0).contains(&p), "{}", p);
        if let Verdict::Better(winner) = &result.verdict {
            let needed = result.required_n.ok_or_else(|| TestCaseError::fail("no size"))?;
            prop_assert!(arms.iter().all(|arm| arm.n >= needed), "{:?}", result);
            prop_assert!(p < ALPHA);
            let best = result.arms.iter().find(|arm| &arm.variant == winner);
            let best_rate = best.and_then(|arm| arm.rate).unwrap_or(-1.0);
            prop_assert!(result.arms.iter().all(|arm| arm.rate.unwrap_or(2.0) <= best_rate));
        }
        if arms.iter().any(|arm| result.required_n.is_none_or(|needed| arm.n < needed)) {
            prop_assert_eq!(&result.verdict, &Verdict::Underpowered);
        }
    }

    #[test]
    fn swapping_two_arms_keeps_p_size_and_verdict(arms in arms_strategy()) {
        let pair = [arms[0].clone(), arms[1].clone()];
        let forward = judge(&pair, None);
        let backward = judge(&[pair[1].clone(), pair[0].clone()], None);
        let (p, q) = (forward.p_value.unwrap_or(-1.0), backward.p_value.unwrap_or(-2.0));
        prop_assert!((p - q).abs() <= 1e-9, "{} vs {}", p, q);
        prop_assert_eq!(forward.required_n, backward.required_n);
        // On a tie for the best rate the first listed is "best", but a tie is never a winner.
        prop_assert_eq!(forward.verdict, backward.verdict);
    }

    #[test]
    fn every_arm_interval_holds_its_rate(arms in arms_strategy()) {
        for result in judge(&arms, None).arms {
            let (rate, low, high) = (result.rate, result.ci_low, result.ci_high);
            let (Some(rate), Some(low), Some(high)) = (rate, low, high) else {
                return Err(TestCaseError::fail("an arm with patients has no interval"));
            };
            prop_assert!(0.0 <= low && low <= rate && rate <= high && high <= 1.0);
        }
    }
}
