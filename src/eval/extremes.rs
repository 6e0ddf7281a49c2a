//! Durations at and beyond their limits, through check → plan → evaluate: whatever `check`
//! lets through is evaluated right, and nothing — even a duration `check` would have
//! rejected, forced into a plan — panics.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::*;
use crate::check::check_file;
use crate::plan::Offset;
use crate::source::SourceFile;
use crate::template::TemplateStore;
use crate::time::local_to_utc;
use crate::values::{Duration, DurationUnit};

const UNITS: [DurationUnit; 6] = [
    DurationUnit::Minutes,
    DurationUnit::Hours,
    DurationUnit::Days,
    DurationUnit::Weeks,
    DurationUnit::Months,
    DurationUnit::Years,
];

/// 0, 1, the largest `check` takes, one more, and the largest the parser takes.
fn amounts(unit: DurationUnit) -> [u32; 5] {
    [0, 1, unit.max_amount(), unit.max_amount() + 1, u32::MAX]
}

/// Each place a duration can stand in a step, with `{}` for the duration.
const PLACES: [&str; 7] = [
    "after {}",
    "{} after appointment_at",
    "{} before appointment_at",
    "every {}",
    "after 1d send a within {}\n#",
    "every 1d send a within {}\n#",
    "every {} at 10:00",
];

fn check(text: &str) -> crate::check::CheckOutcome {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), "text = \"x\"").unwrap();
    let file = SourceFile::new("t.step", crate::check::privacy::as_care(text));
    check_file(&file, &mut TemplateStore::new(dir.path()))
}

fn tokyo(text: &str) -> DateTime<Utc> {
    local_to_utc(
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap(),
        chrono_tz::Asia::Tokyo,
    )
}

fn patient(plan: &TimingPlan, anchor: DateTime<Utc>) -> PatientRecord {
    PatientRecord {
        id: "P1".into(),
        line_user_id: Some("U1".into()),
        name: None,
        stage: Some(0),
        stage_entered_at: Some(anchor),
        birth_date: None,
        tags: vec![],
        opted_out: false,
        dates: vec![Some(anchor); plan.schema.date_fields.len()],
        fields: vec![None; plan.schema.fields.len()],
        other: Default::default(),
        unknown: Default::default(),
        line: 2,
    }
}

/// Anchors and windows from the ordinary to the first and last instants patient files and
/// `--now` can name (years 1000 to 9999).
fn evaluate_everywhere(plan: &TimingPlan) {
    let instants = [
        tokyo("2026-11-20 10:00"),
        tokyo("1000-01-01 00:00"),
        tokyo("9999-12-31 23:59"),
    ];
    let windows = instants.map(|now| Window {
        now,
        from: now,
        to: now + chrono::Duration::days(7),
    });
    let anchors = instants;
    let mut outcome = PatientOutcome::default();
    for anchor in anchors {
        let patient = patient(plan, anchor);
        for window in windows {
            Evaluator::explaining(plan).evaluate(&patient, window, &mut outcome);
            Evaluator::new(plan).evaluate(&patient, window, &mut outcome);
        }
    }
}

#[test]
fn extreme_durations_never_panic_from_check_to_evaluation() {
    let header = "quiet 21:00-09:00\ncap 1 per day\nstages regular\ndates appointment_at\n";
    for unit in UNITS {
        for amount in amounts(unit) {
            let duration = format!("{amount}{}", unit.suffix());
            for place in PLACES {
                let timing = place.replace("{}", &duration);
                let text = format!("{header}step s: when stage=regular {timing} send a\n");
                let outcome = check(&text);
                let accepted = outcome.rules.is_some();
                let zero_not_allowed = place.contains("every {}") || place.contains("within");
                let in_range = amount <= unit.max_amount() && !(amount == 0 && zero_not_allowed);
                if !in_range {
                    assert!(!accepted, "`{timing}` must be rejected");
                    continue;
                }
                if let Some(rules) = outcome.rules {
                    evaluate_everywhere(&TimingPlan::compile(&rules));
                }
            }
        }
    }
}

#[test]
fn durations_check_rejects_still_do_not_panic_when_forced_into_a_plan() {
    let text = "stages regular\ndates appointment_at\nquiet 21:00-09:00\ncap 1 per week\n\
        step a: when stage=regular after 1d send a\n\
        step b: when stage=regular 1d before appointment_at send a\n\
        step c: when stage=regular every 1d send a\n";
    let rules = check(text).rules.expect("valid rules");
    let base = TimingPlan::compile(&rules);
    for unit in UNITS {
        for amount in amounts(unit) {
            let offset = Offset::of(Duration { amount, unit });
            let mut plan = base.clone();
            for step in &mut plan.steps {
                step.offset = offset;
            }
            evaluate_everywhere(&plan);
            for step in &mut plan.steps {
                step.offset = Offset::of(Duration {
                    amount: 1,
                    unit: DurationUnit::Days,
                });
                step.sendable_for = offset;
            }
            evaluate_everywhere(&plan);
        }
    }
}

#[test]
fn a_window_beyond_the_calendar_never_expires() {
    // `within 4294967295y` used to make the expiry unrepresentable, and the send expired at
    // once. Forced past check, it now never expires.
    let rules = check("stages regular\nstep s: when stage=regular after 0m send a\n")
        .rules
        .unwrap();
    let mut plan = TimingPlan::compile(&rules);
    plan.steps[0].sendable_for = Offset::of(Duration {
        amount: u32::MAX,
        unit: DurationUnit::Years,
    });
    let now = tokyo("2026-11-20 10:00");
    let patient = patient(&plan, tokyo("1990-01-01 10:00"));
    let window = Window {
        now,
        from: now,
        to: now + chrono::Duration::days(1),
    };
    let mut outcome = PatientOutcome::default();
    Evaluator::explaining(&plan).evaluate(&patient, window, &mut outcome);
    assert_eq!(outcome.sends.len(), 1, "{:?}", outcome.notes);
    assert_eq!(outcome.sends[0].expires, crate::time::calendar_end());
}

#[test]
fn the_longest_within_really_waits() {
    // Entered the stage 99 years and 11 months ago; `within 100y` still sends it now.
    let text = "stages regular\nstep s: when stage=regular after 0m send a within 100y\n";
    let plan = TimingPlan::compile(&check(text).rules.unwrap());
    let now = tokyo("2026-11-20 10:00");
    let patient = patient(&plan, tokyo("1926-12-20 10:00"));
    let window = Window {
        now,
        from: now,
        to: now + chrono::Duration::days(1),
    };
    let mut outcome = PatientOutcome::default();
    Evaluator::new(&plan).evaluate(&patient, window, &mut outcome);
    assert_eq!(outcome.sends.len(), 1, "{:?}", outcome.notes);
    assert_eq!(outcome.sends[0].expires, tokyo("2026-12-20 10:00"));
}

#[test]
fn every_hour_sends_every_hour_of_a_week_however_old_the_anchor() {
    let text = "stages regular\nstep s: when stage=regular every 1h send a\n";
    let plan = TimingPlan::compile(&check(text).rules.unwrap());
    let now = tokyo("2026-11-20 10:30");
    for entered in ["2026-11-20 09:00", "2016-01-01 00:00", "1900-01-01 00:00"] {
        let patient = patient(&plan, tokyo(entered));
        let window = Window {
            now,
            from: now,
            to: now + chrono::Duration::days(7),
        };
        let mut outcome = PatientOutcome::default();
        Evaluator::explaining(&plan).evaluate(&patient, window, &mut outcome);
        // The 10:00 occurrence is still sendable until 11:00 and goes out now; then one an
        // hour from 11:00 to 10:00 seven days later.
        assert_eq!(outcome.sends.len(), 7 * 24 + 1, "entered {entered}");
        assert_eq!(outcome.sends[0].at, now);
        assert!(
            outcome
                .sends
                .windows(2)
                .all(|pair| pair[1].occurrence - pair[0].occurrence == chrono::Duration::hours(1)),
            "entered {entered}"
        );
    }
}

#[test]
fn explains_horizon_of_an_hourly_step_fits_the_occurrence_limit() {
    // 400 days ahead, the sendable hour before `now` and the slack on both sides.
    let needed = super::EXPLAIN_HORIZON_DAYS * 24 + 1 + 4 * 24;
    assert!(needed <= i64::from(MAX_OCCURRENCES), "{needed}");
}

#[test]
fn a_window_longer_than_the_occurrence_limit_is_cut_at_its_end_and_noted() {
    let text = "stages regular\nstep s: when stage=regular every 1h send a\n";
    let plan = TimingPlan::compile(&check(text).rules.unwrap());
    let now = tokyo("2026-11-20 10:30");
    let patient = patient(&plan, tokyo("2020-01-01 00:00"));
    let window = Window {
        now,
        from: now,
        to: now + chrono::Duration::days(1000),
    };
    let mut outcome = PatientOutcome::default();
    Evaluator::new(&plan).evaluate(&patient, window, &mut outcome);
    // The sends due now are there; only the far end of the window is missing.
    assert_eq!(outcome.sends[0].at, now);
    assert!(
        matches!(
            outcome.notes.as_slice(),
            [StepNote {
                reason: Reason::TooManyOccurrences { .. },
                ..
            }]
        ),
        "{:?}",
        outcome.notes
    );
}
