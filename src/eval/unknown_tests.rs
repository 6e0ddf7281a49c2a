//! Patients whose export row had an unreadable cell: the steps that need the field are left out
//! (and say so, even when not explaining, so the pass can count them per step); the others are
//! evaluated as usual; an unreadable opt-out sends nothing.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::*;
use crate::check::check_file;
use crate::fields::{Field, FieldRef};
use crate::records::FieldSet;
use crate::source::SourceFile;
use crate::template::TemplateStore;
use crate::time::local_to_utc;

const HEADER: &str = "quiet 21:00-09:00\nstages booked, first_visit, regular\n\
                      dates appointment_at, cancelled_at\n";

fn plan(steps: &str) -> TimingPlan {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), "text = \"x\"").unwrap();
    let steps = crate::check::privacy::as_care(steps);
    let file = SourceFile::new("t.step", format!("{HEADER}{steps}"));
    let outcome = check_file(&file, &mut TemplateStore::new(dir.path()));
    assert!(
        !outcome.diagnostics.iter().any(|d| d.is_error()),
        "{:#?}",
        outcome.diagnostics
    );
    TimingPlan::compile(&outcome.rules.unwrap())
}

fn tokyo(text: &str) -> DateTime<Utc> {
    local_to_utc(
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap(),
        chrono_tz::Asia::Tokyo,
    )
}

/// A booked patient who entered the stage on 11-20 10:00 and has `unknown` fields.
fn patient(plan: &TimingPlan, unknown: &[FieldRef]) -> PatientRecord {
    let mut set = FieldSet::EMPTY;
    for field in unknown {
        set.insert(*field);
    }
    PatientRecord {
        id: "P1".into(),
        line_user_id: Some("U1".into()),
        name: None,
        stage: plan.schema.stage_index("booked"),
        stage_entered_at: Some(tokyo("2026-11-20 10:00")),
        birth_date: None,
        tags: vec![],
        opted_out: false,
        dates: vec![None; plan.schema.date_fields.len()],
        fields: vec![],
        other: Default::default(),
        unknown: set,
        line: 2,
    }
}

/// (step id, reason) of every note, and the ids of the steps sent, evaluating at 11-20 10:00
/// for 3 days.
fn outcome(
    plan: &TimingPlan,
    patient: &PatientRecord,
    explain: bool,
) -> (Vec<String>, Vec<String>) {
    let now = tokyo("2026-11-20 10:00");
    let window = Window {
        now,
        from: now,
        to: now + chrono::Duration::days(3),
    };
    let mut out = PatientOutcome::default();
    let mut evaluator = if explain {
        Evaluator::explaining(plan)
    } else {
        Evaluator::new(plan)
    };
    evaluator.evaluate(patient, window, &mut out);
    let sent = out
        .sends
        .iter()
        .map(|s| plan.steps[s.step].id.clone())
        .collect();
    let notes = out
        .notes
        .iter()
        .map(|n| format!("{} {:?}", plan.steps[n.step].id, n.reason))
        .collect();
    (sent, notes)
}

const STEPS: &str = "step confirm: when stage=booked after 0m send a\n\
                     step remind: when stage=booked 1d before appointment_at at 18:00 send a\n\
                     step stop: when stage=booked after 1h send a unless cancelled_at\n\
                     step regular: when stage=regular after 0m send a\n";

#[test]
fn only_the_steps_that_need_an_unknown_field_are_left_out() {
    let plan = plan(STEPS);
    let p = patient(&plan, &[FieldRef::Date(0)]);
    let (sent, notes) = outcome(&plan, &p, false);
    assert_eq!(sent, ["confirm", "stop"]);
    assert_eq!(notes, ["remind Unreadable(\"appointment_at\")"]);
    // An unknown `unless` field: the step cannot be known not to be stopped, so it is left out.
    let p = patient(&plan, &[FieldRef::Date(1)]);
    let (sent, notes) = outcome(&plan, &p, false);
    assert_eq!(sent, ["confirm"]);
    assert_eq!(notes, ["stop Unreadable(\"cancelled_at\")"]);
}

#[test]
fn a_condition_false_on_known_fields_is_just_false() {
    let plan = plan(STEPS);
    // The anchor of `regular` is unknown, but the patient is not regular anyway.
    let p = patient(&plan, &[FieldRef::Builtin(Field::StageEnteredAt)]);
    let (sent, notes) = outcome(&plan, &p, true);
    assert!(sent.is_empty());
    assert!(notes.contains(&"confirm Unreadable(\"stage_entered_at\")".to_owned()));
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("regular ConditionFalse")),
        "{notes:?}"
    );
    assert!(!notes.iter().any(|n| n.starts_with("regular Unreadable")));
    // An unknown stage: every step asks for it.
    let p = patient(&plan, &[FieldRef::Builtin(Field::Stage)]);
    let (sent, notes) = outcome(&plan, &p, false);
    assert!(sent.is_empty());
    assert_eq!(notes.len(), 4, "{notes:?}");
    assert!(notes.iter().all(|n| n.ends_with("Unreadable(\"stage\")")));
}

#[test]
fn an_unreadable_opt_out_sends_nothing() {
    let plan = plan(STEPS);
    // The reader also sets `opted_out`; the evaluator must not rely on it.
    let p = patient(&plan, &[FieldRef::Builtin(Field::OptedOut)]);
    assert!(!p.opted_out);
    for explain in [false, true] {
        let (sent, notes) = outcome(&plan, &p, explain);
        assert!(sent.is_empty(), "{sent:?}");
        assert_eq!(notes.len(), 4);
        assert!(notes
            .iter()
            .all(|n| n.ends_with("Unreadable(\"opted_out\")")));
    }
}

#[test]
fn age_and_rhai_need_their_fields() {
    let plan = plan(
        "step senior: when age >= 65 after 0m send a\n\
         step script: when rhai { patient.stage == \"booked\" } after 0m send a\n\
         step plain: when stage=booked after 0m send a\n",
    );
    let p = patient(&plan, &[FieldRef::Builtin(Field::BirthDate)]);
    let (sent, notes) = outcome(&plan, &p, false);
    assert_eq!(sent, ["plain"]);
    assert_eq!(
        notes,
        [
            "senior Unreadable(\"birth_date\")",
            "script Unreadable(\"birth_date\")"
        ]
    );
    // With nothing unknown, the script runs as before.
    let (sent, _) = outcome(&plan, &patient(&plan, &[]), false);
    assert_eq!(sent, ["script", "plain"]);
}
