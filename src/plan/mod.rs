//! The timing plan: checked rules compiled into what the evaluator runs for every patient —
//! conditions with resolved fields, anchors, calendar offsets, expiry windows and variant
//! weights. Compiled once per run, shared by every patient.

pub mod calendar;
pub mod condition;

use std::collections::HashMap;
use std::sync::Arc;

use chrono_tz::Tz;

pub use crate::time::Offset;
pub use condition::{FieldRef, Leaf, Test, Value};

use crate::check::{Cap, QuietHours, RuleSet, ScriptEngine};
use crate::records::RecordSchema;
use crate::syntax::{Anchor, ClockTime};

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
    pub schema: RecordSchema,
    pub steps: Vec<PlannedStep>,
    /// Whether any condition is a rhai script.
    pub has_scripts: bool,
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
    pub sendable_for: Offset,
    pub variants: Vec<PlannedVariant>,
    /// 1-based line of the step in the rules file.
    pub line: usize,
}

/// The instant a step counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorField {
    StageEnteredAt,
    BirthDate,
    /// A declared date field, by index.
    Date(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Once, `offset` after the anchor.
    After,
    /// Once, `offset` before the anchor; never at or after the anchor itself.
    Before,
    /// At anchor + k·offset for k = 1, 2, …
    Every,
}

/// A template and the upper end of its share in 0..100 (shares are cumulative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedVariant {
    pub template: String,
    pub upto: u32,
}

impl TimingPlan {
    /// Compiles checked rules. Cannot fail: everything that could go wrong was reported by
    /// `check`, which only yields a `RuleSet` for a file without errors.
    pub fn compile(rules: &RuleSet) -> TimingPlan {
        let schema = RecordSchema::from_rules(rules);
        let engine = ScriptEngine::new();
        let mut compiled_scripts: HashMap<String, Arc<rhai::AST>> = HashMap::new();
        let mut scripts = |code: &str| -> Arc<rhai::AST> {
            compiled_scripts
                .entry(code.to_owned())
                .or_insert_with(|| {
                    Arc::new(engine.compile(code).expect("checked scripts compile").ast)
                })
                .clone()
        };
        let tz = rules.timezone;
        let steps: Vec<PlannedStep> = rules
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let decl = &step.decl;
                let when = condition::compile(&decl.when, &rules.file, &schema, tz, &mut scripts);
                let unless = decl
                    .unless
                    .first()
                    .map(|u| condition::compile(u, &rules.file, &schema, tz, &mut scripts));
                let (anchor, direction) = match &decl.timing.anchor {
                    Anchor::AfterStageEntry(_) => (AnchorField::StageEnteredAt, Direction::After),
                    Anchor::Every(_) => (AnchorField::StageEnteredAt, Direction::Every),
                    Anchor::AfterField(_, field) => {
                        (anchor_field(&field.node, &schema), Direction::After)
                    }
                    Anchor::BeforeField(_, field) => {
                        (anchor_field(&field.node, &schema), Direction::Before)
                    }
                };
                let mut upto = 0;
                let variants = decl
                    .send
                    .iter()
                    .map(|variant| {
                        upto += variant.weight.as_ref().map_or(100, |w| w.node);
                        PlannedVariant {
                            template: variant.template.node.clone(),
                            upto,
                        }
                    })
                    .collect();
                PlannedStep {
                    id: step.id.clone(),
                    index,
                    when,
                    unless,
                    anchor,
                    direction,
                    offset: Offset::of(decl.timing.anchor.duration().node),
                    at: decl.timing.at.as_ref().map(|at| at.node),
                    sendable_for: decl.within.first().map_or_else(
                        || default_sendable(&decl.timing.anchor),
                        |w| Offset::of(w.node),
                    ),
                    variants,
                    line: rules.file.line_column(decl.span.start).0,
                }
            })
            .collect();
        let has_scripts = steps
            .iter()
            .any(|s| s.when.has_script() || s.unless.as_ref().is_some_and(Test::has_script));
        TimingPlan {
            clinic: rules.clinic.clone(),
            timezone: tz,
            quiet: rules.quiet,
            cap: rules.cap,
            schema,
            steps,
            has_scripts,
        }
    }
}

/// [`DEFAULT_SENDABLE`], or the period of an `every` step shorter than that: an occurrence
/// stops being sendable when the next one is due, so an outage never releases two at once.
fn default_sendable(anchor: &Anchor) -> Offset {
    match anchor {
        Anchor::Every(period) => match Offset::of(period.node) {
            Offset::Minutes(minutes) if minutes < DEFAULT_SENDABLE.max_minutes() => {
                Offset::Minutes(minutes)
            }
            _ => DEFAULT_SENDABLE,
        },
        _ => DEFAULT_SENDABLE,
    }
}

fn anchor_field(name: &str, schema: &RecordSchema) -> AnchorField {
    match name {
        "stage_entered_at" => AnchorField::StageEnteredAt,
        "birth_date" => AnchorField::BirthDate,
        other => AnchorField::Date(schema.date_index(other).expect("checked date field")),
    }
}
