//! The flat programs held to the trees they were lowered from ([`Context::test`], kept as the
//! reference): random conditions (`and` / `or` / `not` nested, stages, tags, `age`, set and
//! empty fields, dates, free text, `blocked`, the rhai escape hatch) as the `when` and
//! `unless` of a plan's steps, on random patients (stages, ages, missing fields, unread
//! cells), evaluated both ways, for `plan` and for `explain`.

use chrono::{Duration, NaiveDate};
use proptest::prelude::*;

use super::*;
use crate::eval::tests::{patient, plan, tokyo};
use crate::eval::{Evaluator, PatientOutcome, Window};
use crate::fields::FieldRef;
use crate::plan::TimingPlan;
use crate::records::PatientRecord;

/// One step whose `when` holds every kind of leaf the rules can write, for taking them apart.
const LEAVES: &str = "step leaves: when stage=booked and stage in (first_visit, follow_up) \
    and tag=vip and tag in (chronic, vip) and age >= 65 and age < 40 and age != 50 \
    and cancelled_at and department and department = \"健診\" \
    and department in (\"健診\", \"内科\") and department > \"M\" \
    and last_visit_at < 2026-11-01 and blocked and rhai { patient.age > 45 } \
    after 0m send a\n";

/// Steps of every kind of timing, whose conditions the tests replace.
const STEPS: &str = "\
step s0: when stage=booked after 0m send a
step s1: when stage=booked 1d before appointment_at at 18:00 send b unless cancelled_at
step s2: when stage=first_visit after 1d at 10:00 send a
step s3: when stage=follow_up 2w after last_visit_at at 12:00 send c unless next_booking_at
step s4: when stage=follow_up 3h before appointment_at send b unless cancelled_at within 2h
step s5: when stage=regular after 2d send c
";

fn leaves(plan: &TimingPlan) -> Vec<Test> {
    match &plan.steps[0].when {
        Test::And(tests) => tests.clone(),
        other => panic!("not an `and`: {other:?}"),
    }
}

/// A random condition over `leaves`, `depth` levels deep at most.
fn condition(leaves: Vec<Test>, depth: u32) -> impl Strategy<Value = Test> {
    let leaf = (0..leaves.len()).prop_map(move |i| leaves[i].clone());
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Test::And),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Test::Or),
            inner.prop_map(|test| Test::Not(Box::new(test))),
        ]
    })
}

/// What a random patient is made of: stage, birth year, tags, which dates and which text are
/// set, whether a cell was unreadable.
#[derive(Debug, Clone)]
struct Someone {
    stage: Option<usize>,
    born: Option<(i32, u32)>,
    tags: Vec<&'static str>,
    dates: Vec<Option<i64>>,
    department: Option<&'static str>,
    unread: bool,
}

fn someone() -> impl Strategy<Value = Someone> {
    (
        prop::option::of(0usize..4),
        prop::option::of((1930i32..2020, 1u32..366)),
        prop::sample::subsequence(vec!["vip", "chronic", "new"], 0..3),
        prop::collection::vec(prop::option::of(-400i64..400), 4),
        prop::option::of(prop::sample::select(vec!["健診", "内科", "Zoo", "A"])),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(stage, born, tags, dates, department, unread)| Someone {
            stage,
            born,
            tags,
            dates,
            department,
            unread,
        })
}

fn record(plan: &TimingPlan, someone: &Someone) -> PatientRecord {
    let mut record = patient(plan, "booked", "2026-11-20 10:00");
    record.stage = someone.stage;
    record.birth_date = someone
        .born
        .and_then(|(year, day)| NaiveDate::from_yo_opt(year, day.min(365)));
    record.tags = someone.tags.iter().map(|t| t.to_string()).collect();
    let base = tokyo("2026-11-25 09:00");
    record.dates = someone
        .dates
        .iter()
        .map(|hours| hours.map(|h| base + Duration::hours(h)))
        .collect();
    record.fields = vec![someone.department.map(str::to_owned)];
    if someone.unread {
        record.unknown.insert(FieldRef::Date(
            plan.schema.date_index("cancelled_at").unwrap(),
        ));
    }
    record
}

/// The plan's steps with these conditions: `whens[i]` after step i's own stage test (as the
/// rules would write it, so that choosing steps by stage still applies), `unlesses[i]` as
/// its `unless`.
fn with_conditions(plan: &TimingPlan, whens: &[Test], unlesses: &[Option<Test>]) -> TimingPlan {
    let mut plan = plan.clone();
    for (step, (when, unless)) in plan.steps.iter_mut().zip(whens.iter().zip(unlesses)) {
        let stage = step.when.clone();
        step.when = match when {
            Test::And(rest) => Test::And([vec![stage], rest.clone()].concat()),
            other => Test::And(vec![stage, other.clone()]),
        };
        step.unless = unless.clone();
    }
    plan
}

fn both_ways(plan: &TimingPlan, people: &[PatientRecord], explain: bool) {
    let now = tokyo("2026-11-25 09:00");
    let window = Window {
        now,
        from: now,
        to: now + Duration::days(7),
    };
    let mut flat = match explain {
        true => Evaluator::explaining(plan),
        false => Evaluator::new(plan),
    };
    let mut by_tree = Evaluator::by_tree(plan, explain);
    let (mut fast, mut slow) = (PatientOutcome::default(), PatientOutcome::default());
    // One evaluator each for all the patients: nothing may be remembered across them.
    for person in people {
        flat.evaluate(person, window, &mut fast);
        by_tree.evaluate(person, window, &mut slow);
        assert_eq!(fast.sends, slow.sends, "{person:?}");
        assert_eq!(fast.notes, slow.notes, "{person:?}");
        assert_eq!(fast.later, slow.later, "{person:?}");
    }
}

fn rules() -> (TimingPlan, Vec<Test>) {
    let leaves_plan = plan(&format!("{LEAVES}{STEPS}"));
    let leaves = leaves(&leaves_plan);
    assert_eq!(leaves.len(), 15, "{leaves:?}");
    let mut steps = leaves_plan.clone();
    steps.steps.remove(0);
    for (index, step) in steps.steps.iter_mut().enumerate() {
        step.index = index;
    }
    (steps, leaves)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn programs_answer_as_the_trees_do(
        (whens, unlesses) in {
            let (_, leaves) = rules();
            (
                prop::collection::vec(condition(leaves.clone(), 4), 6),
                prop::collection::vec(prop::option::of(condition(leaves, 3)), 6),
            )
        },
        people in prop::collection::vec(someone(), 1..12),
        explain in any::<bool>(),
    ) {
        let (steps, _) = rules();
        let plan = with_conditions(&steps, &whens, &unlesses);
        let people: Vec<PatientRecord> = people.iter().map(|p| record(&plan, p)).collect();
        both_ways(&plan, &people, explain);
    }
}

#[test]
fn steps_sharing_a_condition_share_its_program() {
    let (steps, _) = rules();
    let conditions = Conditions::new(&steps.steps);
    // s1 and s4 both say `unless cancelled_at`.
    assert_eq!(conditions.unless(1), conditions.unless(4));
    assert_ne!(conditions.unless(1), conditions.unless(3));
    // Past their stage tests every `when` is the same empty `and`.
    let past: Vec<ConditionId> = (0..6).map(|i| conditions.when(i, true)).collect();
    assert!(past.iter().all(|&id| id == past[0]), "{past:?}");
    assert_ne!(conditions.when(0, false), conditions.when(2, false));
}

#[test]
fn a_remembered_answer_is_not_carried_to_the_next_patient() {
    let (steps, leaves) = rules();
    // `unless cancelled_at` for every step: remembered per patient, different between them.
    let cancelled = leaves[7].clone();
    let plan = with_conditions(
        &steps,
        &vec![Test::And(Vec::new()); 6],
        &vec![Some(cancelled); 6],
    );
    let mut with = patient(&plan, "booked", "2026-11-25 08:00");
    with.dates = vec![None; 4];
    with.dates[plan.schema.date_index("appointment_at").unwrap()] = Some(tokyo("2026-11-28 10:00"));
    let mut cancelled = with.clone();
    cancelled.dates[plan.schema.date_index("cancelled_at").unwrap()] =
        Some(tokyo("2026-11-24 10:00"));
    both_ways(
        &plan,
        &[with.clone(), cancelled.clone(), with, cancelled],
        false,
    );
}
