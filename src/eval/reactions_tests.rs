//! Reaction conditions and `after sent` timings, with the sends worked out by hand.

use super::*;
use crate::eval::tests::{patient, plan, show, tokyo};
use crate::eval::{Evaluator, PatientOutcome, Reason, Window};

const STEPS: &str = "bookings next_booking_at\n\
step survey: when stage=first_visit after 4d at 12:00 send a within 3d\n\
step survey_again: when stage=first_visit 3d after sent survey at 12:00 send b unless clicked survey\n";

/// survey (step 0) went out 2026-12-05 12:00 for the occurrence at that instant.
fn surveyed() -> Reactions {
    let mut reactions = Reactions::default();
    reactions.push_send(ReactionSend {
        step: 0,
        occurrence: tokyo("2026-12-05 12:00"),
        sent_at: tokyo("2026-12-05 12:00"),
    });
    reactions
}

fn clicked(reactions: &mut Reactions, at: &str) {
    reactions.push_event(ReactionEvent::Clicked {
        step: 0,
        occurrence: tokyo("2026-12-05 12:00"),
        at: tokyo(at),
    });
    reactions.settle();
}

/// The sends in the 10 days from `now`, as "time step" lines, and the notes.
fn run(plan: &TimingPlan, reactions: &Reactions, blocked: bool, now: &str) -> PatientOutcome {
    let patient = patient(plan, "first_visit", "2026-12-01 10:00");
    let now = tokyo(now);
    let window = Window {
        now,
        from: now,
        to: now + chrono::Duration::days(10),
    };
    let mut out = PatientOutcome::default();
    let seen = PatientReactions {
        seen: reactions,
        blocked,
    };
    Evaluator::explaining(plan).evaluate_reacting(&patient, window, &[], seen, &mut out);
    out
}

/// The reminder's sends (survey itself is overdue here, with no history given).
fn lines(plan: &TimingPlan, out: &PatientOutcome) -> Vec<String> {
    (out.sends.iter().filter(|s| s.step == 1))
        .map(|s| format!("{} {}", show(s.at), plan.steps[s.step].id))
        .collect()
}

#[test]
fn not_clicked_sends_three_days_after_the_survey_at_noon() {
    let plan = plan(STEPS);
    let out = run(&plan, &surveyed(), false, "2026-12-06 09:00");
    assert_eq!(lines(&plan, &out), ["2026-12-08 12:00 survey_again"]);
}

#[test]
fn clicked_survey_stops_the_reminder() {
    let plan = plan(STEPS);
    let mut reactions = surveyed();
    clicked(&mut reactions, "2026-12-06 20:00");
    let out = run(&plan, &reactions, false, "2026-12-06 21:00");
    assert!(lines(&plan, &out).is_empty(), "{:?}", lines(&plan, &out));
    let reason = out.notes.iter().find(|n| n.step == 1).map(|n| &n.reason);
    assert!(
        matches!(reason, Some(Reason::Unless { parts, .. }) if parts[0].contains("survey was sent 2026-12-05 12:00")),
        "{reason:?}"
    );
}

#[test]
fn a_click_on_an_older_send_or_after_the_window_does_not_count() {
    let plan = plan(&STEPS.replace("unless clicked survey", "unless clicked survey within 1d"));
    // After the 1-day window: the reminder still goes.
    let mut late = surveyed();
    clicked(&mut late, "2026-12-07 12:01");
    let out = run(&plan, &late, false, "2026-12-06 09:00");
    assert_eq!(lines(&plan, &out), ["2026-12-08 12:00 survey_again"]);
    // Within it: stopped.
    let mut early = surveyed();
    clicked(&mut early, "2026-12-06 11:59");
    assert!(lines(&plan, &run(&plan, &early, false, "2026-12-06 13:00")).is_empty());
    // A click on another send of the step (another occurrence) is not this send's.
    let mut other = surveyed();
    other.push_event(ReactionEvent::Clicked {
        step: 0,
        occurrence: tokyo("2026-01-01 12:00"),
        at: tokyo("2026-12-06 10:00"),
    });
    let out = run(&plan, &other, false, "2026-12-06 11:00");
    assert_eq!(lines(&plan, &out), ["2026-12-08 12:00 survey_again"]);
}

#[test]
fn no_send_of_the_step_means_not_evaluated_and_explain_says_so() {
    let plan = plan(STEPS);
    let out = run(&plan, &Reactions::NONE, false, "2026-12-06 09:00");
    assert!(!lines(&plan, &out).contains(&"2026-12-08 12:00 survey_again".to_owned()));
    let reason = out.notes.iter().find(|n| n.step == 1).map(|n| &n.reason);
    assert_eq!(reason, Some(&Reason::NotSentYet("survey".into())));
}

#[test]
fn answered_needs_the_data_of_the_last_send() {
    let plan = plan(&STEPS.replace(
        "unless clicked survey",
        "unless answered survey \"yes\" within 2d",
    ));
    let answer = |data: &str, at: &str| {
        let mut reactions = surveyed();
        reactions.push_event(ReactionEvent::Answered {
            step: 0,
            occurrence: tokyo("2026-12-05 12:00"),
            data: Arc::from(data),
            at: tokyo(at),
        });
        reactions.settle();
        reactions
    };
    let now = "2026-12-07 09:00";
    assert!(lines(
        &plan,
        &run(&plan, &answer("yes", "2026-12-06 10:00"), false, now)
    )
    .is_empty());
    assert_eq!(
        lines(
            &plan,
            &run(&plan, &answer("no", "2026-12-06 10:00"), false, now)
        ),
        ["2026-12-08 12:00 survey_again"]
    );
    // Three days after the send: outside `within 2d`.
    assert_eq!(
        lines(
            &plan,
            &run(
                &plan,
                &answer("yes", "2026-12-08 11:00"),
                false,
                "2026-12-08 11:30"
            )
        ),
        ["2026-12-08 12:00 survey_again"]
    );
}

#[test]
fn booked_since_counts_bookings_after_the_send_only() {
    let plan = plan(&STEPS.replace("unless clicked survey", "unless booked since survey"));
    let booked = |at: &str| {
        let mut reactions = surveyed();
        reactions.push_event(ReactionEvent::Booked { at: tokyo(at) });
        reactions.settle();
        reactions
    };
    let now = "2026-12-07 09:00";
    assert!(lines(&plan, &run(&plan, &booked("2026-12-06 10:00"), false, now)).is_empty());
    assert_eq!(
        lines(&plan, &run(&plan, &booked("2026-12-04 10:00"), false, now)),
        ["2026-12-08 12:00 survey_again"]
    );
}

#[test]
fn blocked_reads_the_patients_line_user() {
    let plan = plan(&STEPS.replace("unless clicked survey", "unless blocked"));
    let now = "2026-12-07 09:00";
    assert!(lines(&plan, &run(&plan, &surveyed(), true, now)).is_empty());
    assert_eq!(
        lines(&plan, &run(&plan, &surveyed(), false, now)),
        ["2026-12-08 12:00 survey_again"]
    );
}

#[test]
fn a_patient_keeps_at_most_the_newest_events_and_sends() {
    let mut reactions = Reactions::default();
    for minute in 0..(3 * MAX_PER_PATIENT as i64) {
        let at = tokyo("2026-12-05 12:00") + chrono::Duration::minutes(minute);
        reactions.push_event(ReactionEvent::Booked { at });
        reactions.push_send(ReactionSend {
            step: 0,
            occurrence: at,
            sent_at: at,
        });
    }
    reactions.settle();
    assert_eq!(reactions.events.len(), MAX_PER_PATIENT);
    assert_eq!(reactions.sends.len(), MAX_PER_PATIENT);
    let newest =
        tokyo("2026-12-05 12:00") + chrono::Duration::minutes(3 * MAX_PER_PATIENT as i64 - 1);
    assert_eq!(reactions.events.last().map(ReactionEvent::at), Some(newest));
    assert_eq!(reactions.sends.last().map(|s| s.sent_at), Some(newest));
}

#[test]
fn needs_name_the_steps_and_the_answers() {
    let plan = plan(&STEPS.replace(
        "unless clicked survey",
        "unless answered survey \"yes\" or answered survey \"yes\" or blocked",
    ));
    let needs = ReactionNeeds::of(&plan);
    assert_eq!(needs.steps, [true, false]);
    assert_eq!(needs.answers.len(), 1);
    assert!(needs.blocked && !needs.clicks && !needs.bookings);
    assert!(needs.answer("no").is_none());
}
