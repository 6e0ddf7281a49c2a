//! The timing plan: checked rules compiled into what the evaluator runs for every patient —
//! conditions with resolved fields, anchors, calendar offsets, expiry windows and variant
//! weights. Compiled once per run, shared by every patient.

pub mod calendar;
pub mod condition;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

pub use crate::time::Offset;
pub use condition::{FieldRef, Leaf, Test, Value};

pub use crate::check::{AnchorField, Direction, Observed, Purpose};

use crate::check::RuleSet;
use crate::line::track::TrackBase;
use crate::records::RecordSchema;
use crate::template::Template;
use crate::time::local_to_utc;
use crate::values::{Cap, ClockTime, Duration, Priority, QuietHours};

/// How long a due send stays sendable when the step has no `within` (an `every` step with a
/// shorter period: until the next occurrence).
pub const DEFAULT_SENDABLE: Offset = Offset::Minutes(24 * 60);

/// The compiled rules of one clinic.
#[derive(Debug, Clone)]
pub struct TimingPlan {
    pub clinic: Option<String>,
    pub timezone: Tz,
    pub quiet: Option<QuietHours>,
    pub cap: Option<Cap>,
    /// Where tracked links point, when clicks are tracked.
    pub track: Option<TrackBase>,
    /// Sends whose own time is before this instant are skipped, never sent: the start of the
    /// rules' `start` day in the clinic's zone, or `run --since`.
    pub start: Option<DateTime<Utc>>,
    pub schema: RecordSchema,
    pub steps: Vec<PlannedStep>,
    /// Whether any condition is a rhai script.
    pub has_scripts: bool,
    /// `consent FIELD`: the index of the declared field holding marketing consent, which
    /// every step that needs consent reads (one cell per patient).
    pub consent: Option<usize>,
    /// The booking and visit fields `run` watches, and the windows `report` credits them in.
    pub observed: Observed,
}

/// One step, ready to evaluate.
#[derive(Debug, Clone)]
pub struct PlannedStep {
    pub id: String,
    /// Position in the rules file; ties between sends at the same instant go in file order.
    pub index: usize,
    pub when: Test,
    pub unless: Option<Test>,
    pub anchor: AnchorField,
    pub direction: Direction,
    pub offset: Offset,
    pub at: Option<ClockTime>,
    /// `even on the day`: a `before` send timed on an earlier day may go out on the anchor's
    /// own day; without it, it must go out before that day begins.
    pub on_the_day: bool,
    pub sendable_for: Offset,
    /// On a day (or week) the cap cannot send everything, higher priorities go first.
    pub priority: Priority,
    pub variants: Vec<PlannedVariant>,
    /// What the step is for (`care` or `promo`).
    pub purpose: Purpose,
    /// Sent only to patients whose consent field says yes.
    pub needs_consent: bool,
    /// 1-based line of the step in the rules file.
    pub line: usize,
}

/// A template and the upper end of its share in 0..100 (shares are cumulative).
#[derive(Debug, Clone)]
pub struct PlannedVariant {
    pub template: Arc<Template>,
    pub upto: u32,
}

impl TimingPlan {
    /// Compiles checked rules. Cannot fail: everything that could go wrong was reported by
    /// `check`, which only yields a `RuleSet` for a file without errors.
    pub fn compile(rules: &RuleSet) -> TimingPlan {
        let schema = rules.record_schema();
        let tz = rules.timezone;
        let steps: Vec<PlannedStep> = rules
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let mut upto = 0;
                let variants = step
                    .variants
                    .iter()
                    .map(|variant| {
                        upto += variant.weight;
                        PlannedVariant {
                            template: variant.template.clone(),
                            upto,
                        }
                    })
                    .collect();
                let timing = step.timing;
                PlannedStep {
                    id: step.id.clone(),
                    index,
                    when: condition::compile(&step.when, tz),
                    unless: step.unless.as_ref().map(|u| condition::compile(u, tz)),
                    anchor: timing.anchor,
                    direction: timing.direction,
                    offset: Offset::of(timing.offset),
                    at: timing.at,
                    on_the_day: timing.on_the_day,
                    sendable_for: step.within.map_or_else(
                        || default_sendable(timing.direction, timing.offset),
                        Offset::of,
                    ),
                    priority: step.priority,
                    variants,
                    purpose: step.purpose,
                    needs_consent: step.needs_consent,
                    line: step.line,
                }
            })
            .collect();
        let has_scripts = steps
            .iter()
            .any(|s| s.when.has_script() || s.unless.as_ref().is_some_and(Test::has_script));
        let schema_field = |fields: &[String], name: &str| fields.iter().position(|f| f == name);
        TimingPlan {
            clinic: rules.clinic.clone(),
            timezone: tz,
            quiet: rules.quiet,
            cap: rules.cap,
            track: rules.track.clone(),
            start: rules
                .start
                .map(|day| local_to_utc(day.and_time(chrono::NaiveTime::MIN), tz)),
            schema,
            steps,
            has_scripts,
            consent: rules
                .consent
                .as_ref()
                .and_then(|field| schema_field(&rules.fields, field)),
            observed: rules.observed.clone(),
        }
    }
}

/// [`DEFAULT_SENDABLE`], or the period of an `every` step shorter than that: an occurrence
/// stops being sendable when the next one is due, so an outage never releases two at once.
fn default_sendable(direction: Direction, offset: Duration) -> Offset {
    match direction {
        Direction::Every => match Offset::of(offset) {
            Offset::Minutes(minutes) if minutes < DEFAULT_SENDABLE.max_minutes() => {
                Offset::Minutes(minutes)
            }
            _ => DEFAULT_SENDABLE,
        },
        _ => DEFAULT_SENDABLE,
    }
}
