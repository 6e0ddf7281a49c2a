//! Issue 11's timing rules in the evaluator: priorities under the cap.

use super::tests::{evaluate, patient, plan, reasons, sends, tokyo};
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
