//! Series on a date field (`every 1y after birth_date`, `every 6mo after last_visit_at`): the
//! occurrences count from the field's current value, month ends clamp without drifting, and a
//! field years old is jumped over, not walked.

use super::tests::{evaluate, patient, plan, sends, set_date, show};
use super::*;
use crate::plan::Offset;

#[test]
fn a_recall_counts_from_the_last_visit_and_clamps_month_ends() {
    // Visited 01-31 15:00: + 1mo is 02-28, + 2mo 03-31 (from the visit, not from 02-28).
    let plan =
        plan("step recall: when stage=follow_up every 1mo after last_visit_at at 11:00 send a");
    let mut p = patient(&plan, "follow_up", "2026-01-31 15:00");
    set_date(&plan, &mut p, "last_visit_at", "2026-01-31 15:00");
    assert_eq!(
        sends(&plan, &p, "2026-02-01 08:00", 60),
        ["2026-02-28 11:00 recall", "2026-03-31 11:00 recall"]
    );
}

#[test]
fn the_occurrence_key_is_the_fields_value_plus_k_periods() {
    // The same field seen from two windows gives the same key (nothing is sent twice); a new
    // value gives keys of its own.
    let plan = plan("step recall: when stage=follow_up every 6mo after last_visit_at send a");
    let mut p = patient(&plan, "follow_up", "2026-01-10 15:00");
    set_date(&plan, &mut p, "last_visit_at", "2026-01-10 15:00");
    let key = |p: &PatientRecord, now: &str| {
        evaluate(&plan, p, now, 3)
            .sends
            .iter()
            .map(|s| show(s.occurrence))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&p, "2026-07-10 09:00"), ["2026-07-10 15:00"]);
    assert_eq!(key(&p, "2026-07-10 14:00"), ["2026-07-10 15:00"]);
    set_date(&plan, &mut p, "last_visit_at", "2026-01-12 15:00");
    assert_eq!(key(&p, "2026-07-10 09:00"), ["2026-07-12 15:00"]);
}

#[test]
fn no_field_value_no_series() {
    let plan = plan("step recall: when stage=follow_up every 6mo after last_visit_at send a");
    let p = patient(&plan, "follow_up", "2026-01-10 15:00");
    let outcome = evaluate(&plan, &p, "2026-07-10 09:00", 3);
    assert!(outcome.sends.is_empty());
    assert_eq!(
        outcome.notes[0].reason,
        Reason::NoAnchor("last_visit_at".into())
    );
}

#[test]
fn a_minute_series_on_a_ten_year_old_field_jumps_to_the_window() {
    // `check` keeps periods at 1h or more; forced to one minute over a field ten years old
    // (over five million occurrences ago), the evaluator jumps to the window: the hour from
    // 10:00 has its sixty occurrences, and nothing before the window is walked or noted.
    let mut plan = plan("step s: when stage=follow_up every 1h after last_visit_at send a");
    plan.steps[0].offset = Offset::Minutes(1);
    plan.steps[0].sendable_for = Offset::Minutes(1);
    let mut p = patient(&plan, "follow_up", "2016-11-20 10:00");
    set_date(&plan, &mut p, "last_visit_at", "2016-11-20 10:00");
    let started = std::time::Instant::now();
    let now = tests::tokyo("2026-11-20 10:00");
    let window = Window {
        now,
        from: now,
        to: now + chrono::Duration::hours(1),
    };
    let mut outcome = PatientOutcome::default();
    Evaluator::explaining(&plan).evaluate(&p, window, &mut outcome);
    assert_eq!(outcome.sends.len(), 60, "{:?}", outcome.notes);
    assert_eq!(outcome.sends[0].at, now);
    assert!(
        outcome
            .notes
            .iter()
            .all(|n| !matches!(n.reason, Reason::TooManyOccurrences { .. })),
        "{:?}",
        outcome.notes
    );
    // Walking five million occurrences takes seconds in a debug build; the jump, microseconds.
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn a_birthday_takes_its_turn_under_the_cap_and_expires_as_any_step() {
    // Born 1980-01-01 (the test patient). Cap 1 a day: the high-priority news at 09:30 on
    // 2027-01-01 takes the day; the birthday (10:00, sendable 1d to 01-02 10:00) moves to
    // 01-02 09:00, out of quiet hours. With `within 30m` it cannot move: dropped by the cap.
    let rules = |within: &str| {
        format!(
            "cap 1 per day\n\
             step news: when stage=regular after 1d at 09:30 send a priority high\n\
             step birthday: when stage=regular every 1y after birth_date at 10:00 send b {within}"
        )
    };
    let lenient = plan(&rules("within 1d"));
    let p = patient(&lenient, "regular", "2026-12-31 09:30");
    assert_eq!(
        sends(&lenient, &p, "2026-12-31 10:00", 3),
        ["2027-01-01 09:30 news", "2027-01-02 09:00 birthday"]
    );
    let strict = plan(&rules("within 30m"));
    let outcome = evaluate(&strict, &p, "2026-12-31 10:00", 3);
    assert_eq!(outcome.sends.len(), 1);
    assert!(
        outcome.notes.iter().any(|n| n.reason
            == Reason::Capped {
                due: tests::tokyo("2027-01-01 10:00")
            }),
        "{:?}",
        outcome.notes
    );
}

#[test]
fn the_jumps_to_the_first_occurrence_that_matters_never_pass_it() {
    // Against a walk one period at a time: every 1, 2, 7, 14 and 30 days (and 1 and 2 months)
    // from anchors up to 30 years back, at every hour of the day in turn, in zones with
    // daylight saving time (the offsets between the jumps change) and without.
    use super::series::first_at_or_after;
    use crate::time::{shift, UnixTime};
    use chrono::TimeDelta;
    use chrono_tz::{America::New_York, Asia::Tokyo, Australia::Lord_Howe, Europe::London};
    let earliest = crate::time::tokyo::tokyo("2026-03-29 01:30");
    let offsets = [1, 2, 7, 14, 30]
        .map(Offset::Days)
        .into_iter()
        .chain([Offset::Months(1), Offset::Months(2)]);
    for offset in offsets {
        for tz in [New_York, London, Lord_Howe, Tokyo] {
            let mut anchor = earliest - TimeDelta::days(30 * 366);
            while anchor < earliest + TimeDelta::days(3) {
                let nth = |k: u32| shift(anchor, offset.times(k)?, false, tz).map(UnixTime::from);
                let walked = (1..).find(|&k| nth(k).is_some_and(|at| at >= earliest.into()));
                assert_eq!(
                    first_at_or_after(offset, earliest.into(), &nth),
                    walked,
                    "{offset:?} {tz} from {anchor}"
                );
                anchor += TimeDelta::hours(24 * 97 + 1);
            }
        }
    }
}
