//! Issue 11's timing rules in the evaluator: priorities under the cap, the anchor's day.

use super::tests::{evaluate, patient, plan, reasons, sends, set_date, tokyo};
use super::*;

#[test]
fn the_cap_keeps_higher_priority_first_then_earlier() {
    // Cap 1 a day on 11-21: `low` at 10:00 and `normal` at 11:00 lose to `high` at 20:00.
    // `normal` (within 2d) moves to 11-22 09:00 and beats `low` (within 2d) there too, so `low`
    // goes 11-23 09:00, still before its 11-23 10:00 end.
    let plan = plan(
        "cap 1 per day\nstep low: when stage=first_visit after 1d at 10:00 send a within 2d priority low\nstep normal: when stage=first_visit after 1d at 11:00 send b within 2d\nstep high: when stage=first_visit after 1d at 20:00 send c priority high",
    );
    let p = patient(&plan, "first_visit", "2026-11-20 08:00");
    assert_eq!(
        sends(&plan, &p, "2026-11-20 08:00", 5),
        [
            "2026-11-21 20:00 high",
            "2026-11-22 09:00 normal",
            "2026-11-23 09:00 low"
        ]
    );
    let outcome = evaluate(&plan, &p, "2026-11-20 08:00", 5);
    assert!(matches!(
        outcome.sends[1].moved,
        Some(Moved::Cap { from }) if from == tokyo("2026-11-21 11:00")
    ));
}

#[test]
fn equal_priorities_keep_the_earlier_send() {
    // Cap 1 a day, both normal (one says so): 10:00 keeps 11-21's slot whatever the file
    // order; 11:00 (24 h, to 11-22 11:00) moves to 11-22 09:00.
    let plan = plan(
        "cap 1 per day\nstep late: when stage=first_visit after 1d at 11:00 send b\nstep early: when stage=first_visit after 1d at 10:00 send a priority normal",
    );
    let p = patient(&plan, "first_visit", "2026-11-20 08:00");
    assert_eq!(
        sends(&plan, &p, "2026-11-20 08:00", 5),
        ["2026-11-21 10:00 early", "2026-11-22 09:00 late"]
    );
    let outcome = evaluate(&plan, &p, "2026-11-20 08:00", 5);
    assert!(reasons(&outcome).is_empty(), "{:?}", outcome.notes);
}

#[test]
fn a_reminder_on_the_anchor_day_itself_is_still_sent_before_the_anchor() {
    // `2h before` a 17:00 appointment is 15:00 on the day: timed on the day, so only the
    // appointment bounds it. `1d before … at 18:00`, seen at 23:00 the evening before, would
    // go out at 09:00 on the day: not sent, and said why.
    let plan = plan(
        "step soon: when stage=booked 2h before appointment_at send a\nstep eve: when stage=booked 1d before appointment_at at 18:00 send b",
    );
    let mut p = patient(&plan, "booked", "2026-11-20 10:00");
    set_date(&plan, &mut p, "appointment_at", "2026-11-27 17:00");
    assert_eq!(
        sends(&plan, &p, "2026-11-26 23:00", 2),
        ["2026-11-27 15:00 soon"]
    );
    let outcome = evaluate(&plan, &p, "2026-11-26 23:00", 2);
    assert_eq!(
        reasons(&outcome),
        [&Reason::OnAnchorDay {
            at: tokyo("2026-11-27 09:00"),
            anchor: tokyo("2026-11-27 17:00"),
        }]
    );
}

#[test]
fn a_day_before_reminder_expires_at_midnight_not_at_the_appointment() {
    // Due 11-26 18:00 for an 11-27 10:00 appointment; at 23:30 (quiet) it would wait for
    // 09:00 on the day. Its window now ends at 11-27 00:00.
    let plan = plan("step eve: when stage=booked 1d before appointment_at at 18:00 send b");
    let mut p = patient(&plan, "booked", "2026-11-20 10:00");
    set_date(&plan, &mut p, "appointment_at", "2026-11-27 10:00");
    let outcome = evaluate(&plan, &p, "2026-11-26 20:00", 1);
    assert_eq!(outcome.sends.len(), 1);
    assert_eq!(outcome.sends[0].expires, tokyo("2026-11-27 00:00"));
}

#[test]
fn an_after_send_timed_before_its_anchor_moves_to_the_next_day() {
    // Entered 19:30; `after 0m at 19:00` → 19:00 the next day; `after 1d at 09:00` is after
    // the anchor already and stays.
    let plan = plan(
        "step same: when stage=first_visit after 0m at 19:00 send a\nstep next: when stage=first_visit after 1d at 09:30 send b",
    );
    let p = patient(&plan, "first_visit", "2026-11-26 19:30");
    assert_eq!(
        sends(&plan, &p, "2026-11-26 19:30", 3),
        ["2026-11-27 09:30 next", "2026-11-27 19:00 same"]
    );
    let outcome = evaluate(&plan, &p, "2026-11-26 19:30", 3);
    let same = outcome.sends.iter().find(|s| s.step == 0).unwrap();
    assert_eq!(same.occurrence, tokyo("2026-11-26 19:30"));
    assert_eq!(
        same.moved,
        Some(Moved::NextDay {
            from: tokyo("2026-11-26 19:00"),
            anchor: tokyo("2026-11-26 19:30"),
        })
    );
}

#[test]
fn a_send_before_start_is_marked_and_takes_no_slot_of_the_cap() {
    // Start 11-22. Entered 11-20 08:00: `old` (after 1d at 10:00, within 3d) was due 11-21
    // 10:00, before the start; at 11-22 09:30 it is still sendable: marked, at 09:30. `new`
    // (after 2d at 11:00) is 11-22 11:00, after the start, and keeps the day's one slot.
    let plan = plan(
        "start 2026-11-22\ncap 1 per day\nstep old: when stage=first_visit after 1d at 10:00 send a within 3d\nstep new: when stage=first_visit after 2d at 11:00 send b",
    );
    assert_eq!(plan.start, Some(tokyo("2026-11-22 00:00")));
    let p = patient(&plan, "first_visit", "2026-11-20 08:00");
    let outcome = evaluate(&plan, &p, "2026-11-22 09:30", 1);
    let got: Vec<_> = outcome
        .sends
        .iter()
        .map(|s| (plan.steps[s.step].id.as_str(), s.before_start, s.at))
        .collect();
    assert_eq!(
        got,
        [
            ("old", true, tokyo("2026-11-22 09:30")),
            ("new", false, tokyo("2026-11-22 11:00"))
        ]
    );
}

#[test]
fn every_year_on_02_29_sends_in_leap_years_only() {
    let plan = plan("step leap: when stage=regular every year on 02-29 at 10:00 send a");
    let p = patient(&plan, "regular", "2020-01-01 10:00");
    // 2027 has no 02-29; 2028 does.
    assert_eq!(
        sends(&plan, &p, "2027-01-01 00:00", 365),
        Vec::<String>::new()
    );
    assert_eq!(
        sends(&plan, &p, "2028-01-01 00:00", 366),
        ["2028-02-29 10:00 leap"]
    );
}

#[test]
fn only_explaining_keeps_the_sends_after_the_window() {
    // `plan` and `run` never read them; `explain` says when a step sends next.
    let plan = plan("step later: when stage=first_visit after 10d at 10:00 send a");
    let p = patient(&plan, "first_visit", "2026-11-20 08:00");
    let window = window_from("2026-11-20 08:00", 3);
    let mut outcome = PatientOutcome::default();
    Evaluator::explaining(&plan).evaluate(&p, window, &mut outcome);
    let next: Vec<_> = outcome.later.iter().map(|s| s.at).collect();
    assert_eq!(next, [tokyo("2026-11-30 10:00")]);
    assert!(outcome.sends.is_empty());
    Evaluator::new(&plan).evaluate(&p, window, &mut outcome);
    assert!(outcome.later.is_empty() && outcome.sends.is_empty());
}

/// `plan` and `run` skip occurrences timed over a week past the window (only `explain` says
/// anything of them): the sends in the window are the same as when every occurrence is placed,
/// with a weekly cap whose higher-priority steps fall later in the week, windows from an hour
/// to a month and from before the anchor to long after it, and sends already made.
#[test]
fn occurrences_long_after_the_window_change_no_send_in_it() {
    let plan = plan(
        "cap 1 per week\nstep low: when stage=regular every 2d at 10:00 send a within 2d priority low\nstep weekly: when stage=regular every 1w at 11:00 send c within 1w\nstep soon: when stage=regular after 9d at 10:00 send b priority high\nstep later: when stage=regular after 12d at 10:00 send c priority high\nstep far: when stage=regular after 3mo at 09:00 send a priority high\nstep yearly: when stage=regular every 1y send b within 30d",
    );
    let p = patient(&plan, "regular", "2026-11-20 08:00");
    let (mut quiet, mut explained) = (PatientOutcome::default(), PatientOutcome::default());
    let mut compared = 0;
    for day in -20..140 {
        for hours in [1, 24 * 3, 24 * 8, 24 * 31] {
            let now = tokyo("2026-11-20 08:00") + chrono::Duration::days(day);
            let window = Window {
                now,
                from: now,
                to: now + chrono::Duration::hours(hours),
            };
            let history = [SentBefore {
                step: 0,
                occurrence: now - chrono::Duration::hours(20),
                at: now - chrono::Duration::hours(20),
            }];
            Evaluator::new(&plan).evaluate_after(&p, window, &history, &mut quiet);
            Evaluator::explaining(&plan).evaluate_after(&p, window, &history, &mut explained);
            assert_eq!(quiet.sends, explained.sends, "day {day}, {hours}h");
            assert_eq!(quiet.already_sent, explained.already_sent, "day {day}");
            compared += quiet.sends.len();
        }
    }
    assert!(compared > 200, "{compared}");
}

/// An evaluator made `in_seconds` hands out the sends `new` does, as seconds, and leaves
/// `sends` empty; its notes are the same.
#[test]
fn sends_in_seconds_are_the_sends_as_seconds() {
    let plan = plan(
        "cap 1 per day\nstep thanks: when stage=first_visit after 1d at 10:00 send a\nstep survey: when stage=first_visit after 1d at 11:00 send b within 3d\nstep news: when stage=first_visit every 2d send c within 1d",
    );
    let p = patient(&plan, "first_visit", "2026-11-20 08:00");
    let window = window_from("2026-11-20 22:30", 10);
    let (mut sends, mut seconds) = (PatientOutcome::default(), PatientOutcome::default());
    Evaluator::new(&plan).evaluate(&p, window, &mut sends);
    Evaluator::in_seconds(&plan).evaluate(&p, window, &mut seconds);
    assert!(seconds.sends.is_empty());
    assert_eq!(seconds.notes, sends.notes);
    let as_seconds: Vec<DueSeconds> = (sends.sends.iter())
        .map(|send| DueSeconds {
            step: send.step,
            variant: send.variant,
            occurrence: send.occurrence.timestamp(),
            at: send.at.timestamp(),
            expires: send.expires.timestamp(),
            before_start: send.before_start,
        })
        .collect();
    assert!(as_seconds.len() >= 4, "{as_seconds:?}");
    assert_eq!(seconds.in_seconds, as_seconds);
}

/// Outside `explain`, a patient who opted out or has no LINE id gets no note (nothing counts
/// them), one whose opt-out cannot be read a note per step (the pass counts those); `explain`
/// says why for every step either way.
#[test]
fn only_an_unreadable_opt_out_is_noted_per_step_outside_explain() {
    let plan = plan("step thanks: when stage=first_visit after 1d send a\nstep news: when stage=regular every 2d send c within 1d");
    let window = window_from("2026-11-20 10:00", 3);
    let mut opted_out = patient(&plan, "first_visit", "2026-11-20 08:00");
    opted_out.opted_out = true;
    let mut no_line = patient(&plan, "first_visit", "2026-11-20 08:00");
    no_line.line_user_id = None;
    let mut unreadable = opted_out.clone();
    unreadable
        .unknown
        .insert(FieldRef::Builtin(Field::OptedOut));
    let mut outcome = PatientOutcome::default();
    for (who, noted) in [(&opted_out, 0), (&no_line, 0), (&unreadable, 2)] {
        Evaluator::new(&plan).evaluate(who, window, &mut outcome);
        assert!(outcome.sends.is_empty());
        assert_eq!(outcome.notes.len(), noted, "{:?}", outcome.notes);
        Evaluator::explaining(&plan).evaluate(who, window, &mut outcome);
        assert_eq!(outcome.notes.len(), 2, "{:?}", outcome.notes);
    }
    assert!(matches!(outcome.notes[0].reason, Reason::Unreadable(_)));
}

/// A window of `days` from `now` (Tokyo), `now` being when it is evaluated.
fn window_from(now: &str, days: i64) -> Window {
    let now = tokyo(now);
    Window {
        now,
        from: now,
        to: now + chrono::Duration::days(days),
    }
}
