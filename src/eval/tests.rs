use chrono::{DateTime, NaiveDateTime, Utc};

use super::*;
use crate::check::check_file;
use crate::source::SourceFile;
use crate::template::TemplateStore;
use crate::time::local_to_utc;

const HEADER: &str = "clinic \"さくら\"\nquiet 21:00-09:00\nstages booked, first_visit, follow_up, regular\ndates appointment_at, last_visit_at, next_booking_at, cancelled_at\nfields department\n";

pub(super) fn plan(steps: &str) -> TimingPlan {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b", "c"] {
        std::fs::write(dir.path().join(format!("{name}.toml")), "text = \"x\"").unwrap();
    }
    let file = SourceFile::new(
        "t.step",
        format!("{HEADER}{}", crate::check::privacy::as_care(steps)),
    );
    let outcome = check_file(&file, &mut TemplateStore::new(dir.path()));
    let errors: Vec<_> = outcome
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    TimingPlan::compile(&outcome.rules.unwrap())
}

pub(super) fn tokyo(text: &str) -> DateTime<Utc> {
    local_to_utc(
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap(),
        chrono_tz::Asia::Tokyo,
    )
}

pub(super) fn show(at: DateTime<Utc>) -> String {
    at.with_timezone(&chrono_tz::Asia::Tokyo)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

pub(super) fn patient(plan: &TimingPlan, stage: &str, entered: &str) -> PatientRecord {
    PatientRecord {
        id: "P1".into(),
        line_user_id: Some("U1".into()),
        name: Some("山田".into()),
        stage: plan.schema.stage_index(stage),
        stage_entered_at: Some(tokyo(entered)),
        birth_date: chrono::NaiveDate::from_ymd_opt(1980, 1, 1),
        tags: vec![],
        opted_out: false,
        dates: vec![None; plan.schema.date_fields.len()],
        fields: vec![None; plan.schema.fields.len()],
        other: Default::default(),
        unknown: Default::default(),
        line: 2,
    }
}

pub(super) fn set_date(plan: &TimingPlan, patient: &mut PatientRecord, field: &str, at: &str) {
    patient.dates[plan.schema.date_index(field).unwrap()] = Some(tokyo(at));
}

/// Evaluates with `now` and a window of `days` from it; returns "time step" lines.
pub(super) fn sends(
    plan: &TimingPlan,
    patient: &PatientRecord,
    now: &str,
    days: i64,
) -> Vec<String> {
    let outcome = evaluate(plan, patient, now, days);
    outcome
        .sends
        .iter()
        .map(|s| format!("{} {}", show(s.at), plan.steps[s.step].id))
        .collect()
}

pub(super) fn evaluate(
    plan: &TimingPlan,
    patient: &PatientRecord,
    now: &str,
    days: i64,
) -> PatientOutcome {
    let now = tokyo(now);
    let window = Window {
        now,
        from: now,
        to: now + chrono::Duration::days(days),
    };
    let mut outcome = PatientOutcome::default();
    Evaluator::explaining(plan).evaluate(patient, window, &mut outcome);
    outcome
}

pub(super) fn reasons(outcome: &PatientOutcome) -> Vec<&Reason> {
    outcome.notes.iter().map(|n| &n.reason).collect()
}

#[test]
fn after_with_at_and_quiet_hours() {
    let plan = plan("step thanks: when stage=first_visit after 1d at 10:00 send a\nstep late: when stage=first_visit after 0m send b");
    let p = patient(&plan, "first_visit", "2026-11-20 22:15");
    assert_eq!(
        sends(&plan, &p, "2026-11-20 22:15", 3),
        ["2026-11-21 09:00 late", "2026-11-21 10:00 thanks"]
    );
    let outcome = evaluate(&plan, &p, "2026-11-20 22:15", 3);
    assert!(matches!(
        outcome.sends[0].moved,
        Some(Moved::QuietHours { .. })
    ));
}

#[test]
fn reminder_never_sent_after_appointment() {
    let plan = plan("step remind: when stage=booked 1d before appointment_at at 18:00 send a");
    let mut p = patient(&plan, "booked", "2026-11-20 10:00");
    set_date(&plan, &mut p, "appointment_at", "2026-11-25 10:00");
    assert_eq!(
        sends(&plan, &p, "2026-11-20 10:00", 10),
        ["2026-11-24 18:00 remind"]
    );
    // Down from the 24th 17:00 to the 25th 10:30: the appointment has begun, no reminder
    // (and on the appointment day a day-before reminder is not sent at all).
    let outcome = evaluate(&plan, &p, "2026-11-25 10:30", 3);
    assert!(outcome.sends.is_empty());
    assert!(
        matches!(reasons(&outcome)[0], Reason::OnAnchorDay { .. }),
        "{:?}",
        outcome.notes
    );
    // `2h before` a 09:00 appointment is 07:00, inside quiet hours until 09:00: too late.
    let early =
        super::tests::plan("step remind: when stage=booked 2h before appointment_at send a");
    let mut p = patient(&early, "booked", "2026-11-20 10:00");
    set_date(&early, &mut p, "appointment_at", "2026-11-21 09:00");
    let outcome = evaluate(&early, &p, "2026-11-20 10:00", 3);
    assert_eq!(
        reasons(&outcome),
        [&Reason::NotBeforeAnchor {
            due: tokyo("2026-11-21 09:00"),
            anchor: tokyo("2026-11-21 09:00")
        }]
    );
}

#[test]
fn overdue_sends_go_out_now_until_they_expire() {
    let plan = plan("step thanks: when stage=first_visit after 1d at 10:00 send a\nstep survey: when stage=first_visit after 1d at 10:00 send b within 3d");
    let p = patient(&plan, "first_visit", "2026-11-20 15:00");
    // 26 hours late: the default 24 h has passed, `within 3d` has not.
    let outcome = evaluate(&plan, &p, "2026-11-22 12:00", 1);
    let sent: Vec<_> = outcome
        .sends
        .iter()
        .map(|s| (show(s.at), s.moved))
        .collect();
    assert_eq!(
        sent,
        [(
            "2026-11-22 12:00".to_owned(),
            Some(Moved::Overdue {
                due: tokyo("2026-11-21 10:00")
            })
        )]
    );
    assert_eq!(
        reasons(&outcome),
        [&Reason::Expired {
            due: tokyo("2026-11-21 10:00"),
            expired: tokyo("2026-11-22 10:00")
        }]
    );
}

#[test]
fn overdue_during_quiet_hours_waits_for_the_morning() {
    let plan = plan("step thanks: when stage=first_visit after 1d at 20:00 send a");
    let p = patient(&plan, "first_visit", "2026-11-20 15:00");
    assert_eq!(
        sends(&plan, &p, "2026-11-21 23:00", 2),
        ["2026-11-22 09:00 thanks"]
    );
}

#[test]
fn months_are_calendar_months_at_month_end() {
    let plan = plan(
        "step checkup: when stage=follow_up 3mo after last_visit_at at 10:00 send a within 30d",
    );
    let mut p = patient(&plan, "follow_up", "2026-11-30 11:00");
    set_date(&plan, &mut p, "last_visit_at", "2026-11-30 11:00");
    assert_eq!(
        sends(&plan, &p, "2027-02-01 00:00", 60),
        ["2027-02-28 10:00 checkup"]
    );
}

#[test]
fn every_sends_each_occurrence() {
    let plan = plan("step news: when stage=regular every 30d at 12:00 send a");
    let p = patient(&plan, "regular", "2026-01-01 09:00");
    assert_eq!(
        sends(&plan, &p, "2026-03-01 00:00", 60),
        ["2026-03-02 12:00 news", "2026-04-01 12:00 news"]
    );
    let outcome = evaluate(&plan, &p, "2026-03-01 00:00", 60);
    let occurrences: Vec<_> = outcome.sends.iter().map(|s| show(s.occurrence)).collect();
    assert_eq!(occurrences, ["2026-03-02 09:00", "2026-04-01 09:00"]);
}

#[test]
fn unless_is_checked_at_the_send_instant() {
    let plan = plan("step followup: when stage=first_visit after 7d send a unless next_booking_at");
    let mut p = patient(&plan, "first_visit", "2026-11-20 10:00");
    assert_eq!(
        sends(&plan, &p, "2026-11-20 10:00", 10),
        ["2026-11-27 10:00 followup"]
    );
    set_date(&plan, &mut p, "next_booking_at", "2026-12-10 10:00");
    let outcome = evaluate(&plan, &p, "2026-11-20 10:00", 10);
    assert!(outcome.sends.is_empty());
    assert!(matches!(reasons(&outcome)[0], Reason::Unless { .. }));
}

#[test]
fn cap_moves_extra_sends_to_the_next_day_in_file_order() {
    let plan = plan(
        "cap 1 per day\nstep one: when stage=first_visit after 1d at 10:00 send a\nstep two: when stage=first_visit after 1d at 10:00 send b within 2d\nstep three: when stage=first_visit after 1d at 11:00 send c",
    );
    let p = patient(&plan, "first_visit", "2026-11-20 08:00");
    let outcome = evaluate(&plan, &p, "2026-11-20 08:00", 5);
    let sent: Vec<_> = outcome
        .sends
        .iter()
        .map(|s| format!("{} {}", show(s.at), plan.steps[s.step].id))
        .collect();
    // `two` moves to the next morning (out of quiet hours); `three` would too, but its 24 h
    // run out first.
    assert_eq!(sent, ["2026-11-21 10:00 one", "2026-11-22 09:00 two"]);
    assert_eq!(
        reasons(&outcome),
        [&Reason::Capped {
            due: tokyo("2026-11-21 11:00")
        }]
    );
}

#[test]
fn opted_out_and_unlinked_patients_get_nothing() {
    let plan = plan("step thanks: when stage=first_visit after 1d send a");
    let mut p = patient(&plan, "first_visit", "2026-11-20 10:00");
    p.opted_out = true;
    let outcome = evaluate(&plan, &p, "2026-11-20 10:00", 5);
    assert!(outcome.sends.is_empty());
    assert_eq!(reasons(&outcome), [&Reason::OptedOut]);
    p.opted_out = false;
    p.line_user_id = None;
    assert_eq!(
        reasons(&evaluate(&plan, &p, "2026-11-20 10:00", 5)),
        [&Reason::NoLineUserId]
    );
}

#[test]
fn a_promo_step_waits_for_a_clear_yes_and_explaining_changes_no_send() {
    // The header's one declared field stands in for a consent column here.
    let plan = plan(
        "consent department\nstep news: when stage=regular every 30d send a promo\n\
         step care: when stage=regular after 1d send b\n",
    );
    let mut p = patient(&plan, "regular", "2026-11-01 10:00");
    let at = "2026-11-30 10:00";
    for (cell, consent) in [
        (None, Consent::Empty),
        (Some("no"), Consent::Refused),
        (Some("maybe"), Consent::Unreadable),
    ] {
        p.fields[0] = cell.map(str::to_owned);
        let outcome = evaluate(&plan, &p, at, 5);
        assert!(outcome.sends.iter().all(|s| s.step != 0), "{cell:?}");
        assert!(reasons(&outcome).contains(&&Reason::NoConsent(consent)));
        // Without explanations the sends are the same, and no note is made.
        let now = tokyo(at);
        let window = Window {
            now,
            from: now,
            to: now + chrono::Duration::days(5),
        };
        let mut quiet = PatientOutcome::default();
        Evaluator::new(&plan).evaluate(&p, window, &mut quiet);
        assert_eq!(quiet.sends, outcome.sends);
        assert!(quiet.notes.is_empty());
    }
    p.fields[0] = Some("はい".into());
    assert_eq!(sends(&plan, &p, at, 5), ["2026-12-01 10:00 news"]);
}

#[test]
fn variants_are_stable_and_split_by_weight() {
    let plan = plan("step checkup: when stage=follow_up after 1d send a 30% | b 70%");
    let mut counts = [0; 2];
    for i in 0..2000 {
        let mut p = patient(&plan, "follow_up", "2026-11-20 10:00");
        p.id = format!("P{i:05}");
        let first = evaluate(&plan, &p, "2026-11-20 10:00", 3).sends[0].variant;
        let again = evaluate(&plan, &p, "2026-11-20 10:00", 3).sends[0].variant;
        assert_eq!(first, again);
        counts[first] += 1;
    }
    assert!((500..700).contains(&counts[0]), "{counts:?}");
    assert_eq!(
        variant_bucket("P00001", "checkup"),
        variant_bucket("P00001", "checkup")
    );
}

#[test]
fn false_conditions_say_which_part() {
    let plan = plan("step news: when stage=regular and age >= 60 after 1d send a");
    let p = patient(&plan, "regular", "2026-11-20 10:00");
    let outcome = evaluate(&plan, &p, "2026-11-20 10:00", 3);
    assert_eq!(
        reasons(&outcome),
        [&Reason::ConditionFalse(vec![
            "`age >= 60` (age is 46)".into()
        ])]
    );
}

#[test]
fn script_errors_are_per_patient_notes() {
    let plan = plan(
        "step s: when stage=regular and rhai { parse_int(patient.visits) > 3 } after 1d send a",
    );
    let mut p = patient(&plan, "regular", "2026-11-20 10:00");
    let outcome = evaluate(&plan, &p, "2026-11-20 10:00", 3);
    assert!(
        matches!(reasons(&outcome)[0], Reason::Script(_)),
        "{:?}",
        outcome.notes
    );
    p.other.insert("visits".into(), "5".into());
    assert_eq!(
        sends(&plan, &p, "2026-11-20 10:00", 3),
        ["2026-11-21 10:00 s"]
    );
}

#[test]
fn script_failures_say_what_and_where_but_not_the_value() {
    let cases = [
        (
            "parse_int(patient.name) > 3",
            "cannot parse an integer (line 1, column 2)",
        ),
        (
            "parse_float(patient.name) > 3.0",
            "cannot parse a number (line 1, column 2)",
        ),
        (
            "patient.name.pad(1000000000, \"x\") == ()",
            "length of string too large",
        ),
        ("patient.tags[7] == \"x\"", "index out of bounds"),
        (
            "patient.name / 2 > 0",
            "no function / (&str | ImmutableString | String, i64)",
        ),
        (
            "patient.name",
            "the rhai condition gave a string, not true or false",
        ),
    ];
    for (code, expected) in cases {
        let plan = plan(&format!(
            "step s: when stage=regular and rhai {{ {code} }} after 1d send a"
        ));
        let mut p = patient(&plan, "regular", "2026-11-20 10:00");
        p.name = Some("山田 花子".into());
        let outcome = evaluate(&plan, &p, "2026-11-20 10:00", 3);
        let [Reason::Script(message)] = reasons(&outcome)[..] else {
            panic!("{code}: {:?}", outcome.notes)
        };
        assert!(message.contains(expected), "{code}: {message}");
        assert!(!message.contains("山田"), "{code}: {message}");
    }
}

#[test]
fn rhai_conditions_see_the_patient() {
    let plan =
        plan("step s: when rhai { patient.age >= 40 && \"vip\" in patient.tags } after 1d send a");
    let mut p = patient(&plan, "regular", "2026-11-20 10:00");
    assert!(evaluate(&plan, &p, "2026-11-20 10:00", 3).sends.is_empty());
    p.tags.push("vip".into());
    assert_eq!(
        sends(&plan, &p, "2026-11-20 10:00", 3),
        ["2026-11-21 10:00 s"]
    );
}

#[test]
fn missing_anchor_is_named() {
    let plan = plan("step checkup: when stage=follow_up 3mo after last_visit_at send a");
    let p = patient(&plan, "follow_up", "2026-11-20 10:00");
    assert_eq!(
        reasons(&evaluate(&plan, &p, "2026-11-20 10:00", 3)),
        [&Reason::NoAnchor("last_visit_at".into())]
    );
}

#[test]
fn the_sends_are_the_same_with_or_without_explanations() {
    let plan = plan(
        "cap 1 per day\nstep thanks: when stage=first_visit after 1d at 10:00 send a\nstep survey: when stage=first_visit after 1d at 11:00 send b within 3d\nstep news: when stage=regular every 30d send c\nstep f: when stage=first_visit after 7d send a unless next_booking_at",
    );
    let mut p = patient(&plan, "first_visit", "2026-11-20 08:00");
    set_date(&plan, &mut p, "next_booking_at", "2026-12-01 10:00");
    let now = tokyo("2026-11-20 08:00");
    let window = Window {
        now,
        from: now,
        to: now + chrono::Duration::days(10),
    };
    let (mut quiet, mut explained) = (PatientOutcome::default(), PatientOutcome::default());
    Evaluator::new(&plan).evaluate(&p, window, &mut quiet);
    Evaluator::explaining(&plan).evaluate(&p, window, &mut explained);
    assert_eq!(quiet.sends, explained.sends);
    assert_eq!(quiet.sends.len(), 2);
    assert!(quiet.notes.is_empty(), "{:?}", quiet.notes);
    assert!(explained.notes.len() >= 2, "{:?}", explained.notes);
}

#[test]
fn sends_made_before_count_toward_the_cap_and_are_not_proposed_again() {
    // The survey (within 3d) went out yesterday; today it must neither come back nor take
    // today's only slot from the recap.
    let plan = plan(
        "cap 1 per day\nstep survey: when stage=first_visit after 1d at 10:00 send a within 3d\nstep recap: when stage=first_visit after 2d at 11:00 send b",
    );
    let p = patient(&plan, "first_visit", "2026-11-20 08:00");
    let now = tokyo("2026-11-22 11:00");
    let window = Window {
        now,
        from: now,
        to: now + chrono::Duration::hours(1),
    };
    let history = [SentBefore {
        step: 0,
        occurrence: tokyo("2026-11-21 08:00"),
        at: tokyo("2026-11-21 10:00"),
    }];
    let mut outcome = PatientOutcome::default();
    Evaluator::new(&plan).evaluate_after(&p, window, &history, &mut outcome);
    let sent: Vec<_> = outcome
        .sends
        .iter()
        .map(|s| plan.steps[s.step].id.as_str())
        .collect();
    assert_eq!(sent, ["recap"]);
    assert_eq!(outcome.already_sent, 1);
    // Without the history the survey would come back today and take the slot.
    Evaluator::new(&plan).evaluate(&p, window, &mut outcome);
    let sent: Vec<_> = outcome
        .sends
        .iter()
        .map(|s| plan.steps[s.step].id.as_str())
        .collect();
    assert_eq!(sent, ["survey"]);
    // A send of today counts too: with the recap already out at 11:00, nothing else fits.
    let history = [SentBefore {
        step: 1,
        occurrence: tokyo("2026-11-22 08:00"),
        at: tokyo("2026-11-22 11:00"),
    }];
    Evaluator::new(&plan).evaluate_after(&p, window, &history, &mut outcome);
    assert!(outcome.sends.is_empty(), "{:?}", outcome.sends);
}

#[test]
fn one_evaluator_follows_each_new_now() {
    // The evaluator keeps `now`'s day and its first instant out of quiet hours between
    // patients; a later `now` must not see the earlier one's. Born 1980-01-01: 46 on New
    // Year's Eve 2026, 47 the next day.
    let plan = plan("step thanks: when stage=first_visit after 1d at 20:00 send a within 3d\nstep senior: when stage=first_visit and age >= 47 after 0m send b within 30d");
    let p = patient(&plan, "first_visit", "2026-12-30 15:00");
    let mut evaluator = Evaluator::new(&plan);
    let mut sent = Vec::new();
    for now in ["2026-12-31 23:00", "2027-01-01 23:30", "2026-12-31 23:00"] {
        let at = tokyo(now);
        let window = Window {
            now: at,
            from: at,
            to: at + chrono::Duration::days(2),
        };
        let mut reused = PatientOutcome::default();
        evaluator.evaluate(&p, window, &mut reused);
        let mut fresh = PatientOutcome::default();
        Evaluator::new(&plan).evaluate(&p, window, &mut fresh);
        assert_eq!(reused.sends, fresh.sends, "{now}");
        let shown = reused
            .sends
            .iter()
            .map(|s| format!("{} {}", show(s.at), plan.steps[s.step].id));
        sent.push(shown.collect::<Vec<_>>());
    }
    // Overdue from 20:00 and held by quiet hours until 09:00 the next morning; `senior` only
    // once the birthday has come.
    assert_eq!(
        sent,
        [
            vec!["2027-01-01 09:00 thanks"],
            vec!["2027-01-02 09:00 thanks", "2027-01-02 09:00 senior"],
            vec!["2027-01-01 09:00 thanks"],
        ]
    );
}

/// `plan` and `run` look only at the steps whose `when` may hold for the patient's stage: a
/// `when` that starts with a stage test (alone or first of an `and`) that leaves the stage out
/// is false before anything else in it is read. A stage test after another test is not
/// relied on: the test before it is still made (a rhai condition may fail and be reported).
#[test]
fn steps_are_looked_at_only_for_stages_their_when_may_hold_in() {
    let plan = plan(
        "step a1: when stage=booked after 0m send a\n\
         step a2: when stage in (booked, regular) and department = \"x\" after 0m send a\n\
         step a3: when department = \"x\" and stage=booked after 0m send a\n\
         step a4: when not stage=booked after 0m send a\n\
         step a5: when stage=regular and rhai { parse_int(patient.visits) > 0 } after 0m send a\n\
         step a6: when rhai { parse_int(patient.visits) > 0 } and stage=regular after 0m send a\n",
    );
    let by_stage = steps_by_stage(&plan);
    // No stage; booked, first_visit, follow_up, regular.
    assert_eq!(by_stage[0], [2, 3, 5]);
    assert_eq!(by_stage[1], [0, 1, 2, 3, 5]);
    assert_eq!(by_stage[2], [2, 3, 5]);
    assert_eq!(by_stage[3], [2, 3, 5]);
    assert_eq!(by_stage[4], [1, 2, 3, 4, 5]);
    // A booked patient without `visits`: a5 is not looked at, a6's rhai fails as before.
    let now = tokyo("2026-11-25 10:00");
    let window = Window {
        now,
        from: now,
        to: now + chrono::Duration::days(1),
    };
    let mut out = PatientOutcome::default();
    let booked = patient(&plan, "booked", "2026-11-25 09:00");
    Evaluator::new(&plan).evaluate(&booked, window, &mut out);
    let steps = |out: &PatientOutcome| -> Vec<usize> { out.sends.iter().map(|s| s.step).collect() };
    assert_eq!(steps(&out), [0]);
    let failed: Vec<usize> = out.notes.iter().map(|n| n.step).collect();
    assert_eq!(failed, [5]);
    assert!(matches!(out.notes[0].reason, Reason::Script(_)));
    // Explaining looks at every step and gives the same sends.
    let mut explained = PatientOutcome::default();
    Evaluator::explaining(&plan).evaluate(&booked, window, &mut explained);
    assert_eq!(steps(&explained), steps(&out));
}
