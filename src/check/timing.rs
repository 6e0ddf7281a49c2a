//! Timings (`after 7d`, `1d before appointment_at at 18:00`, `every 30d`) and the lints that
//! compare steps with each other: two steps landing on the same instant, an `at` time that
//! quiet hours swallow, a stage no step uses, more aggregation unit names than LINE counts.

use std::collections::{BTreeSet, HashMap};

use super::{CheckedStep, Checker};
use crate::diagnostic::{suggest, Code};
use crate::source::Spanned;
use crate::syntax::{Anchor, CompareOp, Condition, Duration, Literal, StepDecl, DURATION_RANGE};

/// Unit names past which `check` warns: LINE counts 1,000 a month, and a margin is kept.
const UNIT_NAMES_WARNING: usize = 900;

/// The shortest `every` period, in minutes (see `every_period`).
pub const MIN_EVERY_MINUTES: u64 = 60;

const EVERY_RANGE: &str =
    "`every` takes a period from 1h to 100y, and from 1d when it has `at HH:MM`; e.g. `every 30d`";

impl Checker<'_> {
    pub(super) fn timing(&mut self, step: &StepDecl) {
        let timing = &step.timing;
        if let Some(at) = &timing.at {
            self.valid_time(at);
        }
        self.birth_date_once(step);
        if let (Some(span), false) = (
            timing.on_the_day,
            matches!(timing.anchor, Anchor::BeforeField(..)),
        ) {
            self.report(
                Code::InvalidValue,
                span,
                "`even on the day` is for reminders timed `before` a date field",
            )
            .help = Some(
                "only a `D before FIELD` step is held back from FIELD's own day; remove \
                 `even on the day` here"
                    .into(),
            );
        }
        match &timing.anchor {
            Anchor::Every(every) | Anchor::EveryAfterField(every, _) => {
                if self.positive(
                    every,
                    "`every` needs a period longer than zero, e.g. `every 30d`",
                ) && self.in_range(every)
                {
                    self.every_period(every, timing.at.is_some());
                }
            }
            Anchor::Yearly(day) => {
                if !day.node.is_valid() {
                    self.report(
                        Code::InvalidValue,
                        day.span,
                        format!("`{}` is not a day of the year", day.node),
                    )
                    .help = Some(
                        "write the month and the day as MM-DD, e.g. `every year on 06-04`".into(),
                    );
                }
            }
            Anchor::OnDate(_) => {}
            other => {
                if let Some(duration) = other.duration() {
                    self.in_range(duration);
                }
            }
        }
        for within in &step.within {
            if self.positive(
                within,
                "`within` needs a window longer than zero, e.g. `within 2d`",
            ) && self.in_range(within)
            {
                match &timing.anchor {
                    Anchor::Every(every) | Anchor::EveryAfterField(every, _) => {
                        self.within_period(within, every)
                    }
                    Anchor::Yearly(day) => {
                        let year = Spanned::new(
                            Duration {
                                amount: 1,
                                unit: crate::values::DurationUnit::Years,
                            },
                            day.span,
                        );
                        self.within_period(within, &year);
                    }
                    _ => {}
                }
            }
        }
        if let Some(field) = timing.anchor.field() {
            if !self.date_field_names().contains(&field.node.as_str()) {
                let direction = match timing.anchor {
                    Anchor::BeforeField(..) => "before",
                    _ => "after",
                };
                let dates = self.date_field_names();
                let help = match suggest(&field.node, dates.iter().copied()) {
                    Some(name) => format!("did you mean `{name}`?"),
                    None if super::fields::builtin(&field.node).is_some() => format!(
                        "`{}` is not a date; a timing is anchored on a date field: {}",
                        field.node,
                        dates.join(", ")
                    ),
                    None if self.field_kind(&field.node).is_some() => format!(
                        "`{}` is not a date; only date fields can anchor a timing. Declare it \
                         in `dates` instead of `fields` if it holds a date",
                        field.node
                    ),
                    None if field.node == "sent" => "to count from another step's send, name \
                         the step: `3d after sent survey`"
                        .to_owned(),
                    None => format!("declare it with `dates {}`", field.node),
                };
                let diag = self.report(
                    Code::NotADateField,
                    field.span,
                    format!(
                        "`{direction} {}`: `{}` is not a declared date field",
                        field.node, field.node
                    ),
                );
                diag.label = Some("needs a date field".into());
                diag.help = Some(help);
            }
        }
    }

    /// Reports a zero duration; true when it is not zero.
    fn positive(&mut self, duration: &Spanned<Duration>, help: &str) -> bool {
        if duration.node.amount == 0 {
            self.report(
                Code::InvalidDuration,
                duration.span,
                format!("`{}` is zero", duration.node),
            )
            .help = Some(help.into());
            return false;
        }
        true
    }

    /// Reports a duration longer than 100 years; true when it is in range.
    fn in_range(&mut self, duration: &Spanned<Duration>) -> bool {
        if duration.node.in_range() {
            return true;
        }
        let diag = self.report(
            Code::DurationOutOfRange,
            duration.span,
            format!("`{}` is longer than 100 years", duration.node),
        );
        diag.label = Some("too long".into());
        diag.help = Some(DURATION_RANGE.into());
        false
    }

    /// Each occurrence of an `every` step is a message of its own, and the evaluator looks at
    /// every occurrence from before `now` to the end of the window it is asked about (explain
    /// looks 400 days ahead). At one an hour that stays under 10,000 occurrences per patient and
    /// step; with `at`, every occurrence of a day would land on the same time.
    fn every_period(&mut self, every: &Spanned<Duration>, has_at: bool) {
        let minutes = every.node.fixed_minutes();
        let (shortest, why) = match minutes {
            Some(m) if m < MIN_EVERY_MINUTES => ("1h", "the shortest period is an hour"),
            Some(m) if has_at && m < 24 * 60 => (
                "1d",
                "with `at HH:MM` every occurrence of a day would go out at that one time",
            ),
            _ => return,
        };
        let diag = self.report(
            Code::DurationOutOfRange,
            every.span,
            format!("`every {}` is too short: {why}", every.node),
        );
        diag.label = Some(format!("at least {shortest}"));
        diag.help = Some(EVERY_RANGE.into());
    }

    /// A `within` longer than an `every` period would keep two occurrences sendable at once,
    /// and both would go out together after an outage.
    fn within_period(&mut self, within: &Spanned<Duration>, every: &Spanned<Duration>) {
        if within.node.longest_minutes() <= every.node.longest_minutes() {
            return;
        }
        let diag = self.report(
            Code::DurationOutOfRange,
            within.span,
            format!(
                "`within {}` is longer than the step's period, `every {}`",
                within.node, every.node
            ),
        );
        diag.label = Some(format!("at most {}", every.node));
        diag.related.push(crate::diagnostic::Related {
            span: every.span,
            label: "the period".into(),
        });
        diag.help = Some(format!(
            "an occurrence must stop being sendable before the next one is due, or a patient \
             would get both at once after an outage; use `within {}` or less (a month counts \
             31 days here)",
            every.node
        ));
    }

    pub(super) fn cross_step_lints(&mut self, steps: &[CheckedStep<'_>]) {
        self.same_instant(steps);
        self.quiet_hours_at(steps);
        self.unused_stages(steps);
        self.unit_names(steps);
        self.reminders_capped(steps);
    }

    /// Warns when the rules need more aggregation unit names (one per step and A/B arm) than
    /// LINE counts in a month with room to spare: past 1,000 distinct names a month LINE drops
    /// the rest without a word, and those steps' statistics are lost.
    fn unit_names(&mut self, steps: &[CheckedStep<'_>]) {
        let mut names = 0;
        for step in steps {
            names += step.templates.len().max(1);
            if names > UNIT_NAMES_WARNING {
                self.report(
                    Code::TooManyUnitNames,
                    step.decl.span,
                    format!(
                        "from this step on, the rules use more than {UNIT_NAMES_WARNING} \
                         aggregation unit names (one per step and A/B arm)"
                    ),
                )
                .help = Some(format!(
                    "LINE counts at most {} distinct `customAggregationUnits` names a month and \
                     silently drops the rest; with --custom-aggregation, fewer steps or arms \
                     keep every step's statistics",
                    crate::line::unit::MONTHLY_UNIT_NAMES
                ));
                return;
            }
        }
    }

    /// Warns when two steps can reach the same patient at the same instant: LINE shows them as
    /// two notifications at once, and the cap then drops one.
    fn same_instant(&mut self, steps: &[CheckedStep<'_>]) {
        let all_stages: BTreeSet<String> =
            self.decls.stages.iter().map(|s| s.node.clone()).collect();
        let mut by_instant: HashMap<InstantKey, Vec<(usize, StageSet)>> = HashMap::new();
        for (index, step) in steps.iter().enumerate() {
            let stages = stage_set(&step.decl.when.node, &all_stages);
            by_instant
                .entry(InstantKey::of(step.decl))
                .or_default()
                .push((index, stages));
        }
        let mut pairs = Vec::new();
        for group in by_instant.values().filter(|g| g.len() > 1) {
            for (i, (a, stages_a)) in group.iter().enumerate() {
                let overlap = group[i + 1..]
                    .iter()
                    .find(|(_, stages_b)| overlap(stages_a, stages_b));
                if let Some((b, _)) = overlap {
                    pairs.push((*a, *b));
                }
            }
        }
        pairs.sort();
        for (first, second) in pairs {
            let (first, second) = (&steps[first], &steps[second]);
            let diag = self.report(
                Code::SameInstant,
                second.decl.timing.span,
                format!(
                    "steps `{}` and `{}` can send to the same patient at the same instant",
                    first.id, second.id
                ),
            );
            diag.label = Some("same timing".into());
            diag.related.push(crate::diagnostic::Related {
                span: first.decl.timing.span,
                label: format!("as step `{}`", first.id),
            });
            diag.help = Some(
                "stagger them (e.g. a different `at` time) or merge them into one message".into(),
            );
        }
    }

    fn quiet_hours_at(&mut self, steps: &[CheckedStep<'_>]) {
        let Some((quiet, quiet_span)) = self.decls.quiet else {
            return;
        };
        for step in steps {
            let Some(at) = &step.decl.timing.at else {
                continue;
            };
            if at.node.is_valid() && quiet.contains(at.node) {
                let diag = self.report(
                    Code::QuietHoursAt,
                    at.span,
                    format!(
                        "`at {}` is inside quiet hours ({}-{}); step `{}` will go out at {} instead",
                        at.node, quiet.from, quiet.to, step.id, quiet.to
                    ),
                );
                diag.label = Some("inside quiet hours".into());
                diag.related.push(crate::diagnostic::Related {
                    span: quiet_span,
                    label: "quiet hours set here".into(),
                });
                diag.help = Some(format!(
                    "choose a time outside {}-{}, or change the quiet hours",
                    quiet.from, quiet.to
                ));
            }
        }
    }

    fn unused_stages(&mut self, steps: &[CheckedStep<'_>]) {
        if steps.is_empty() {
            return;
        }
        let all: BTreeSet<String> = self.decls.stages.iter().map(|s| s.node.clone()).collect();
        let mut named = BTreeSet::new();
        for step in steps {
            collect_stage_names(&step.decl.when.node, &all, &mut named);
        }
        let unused: Vec<_> = self
            .decls
            .stages
            .iter()
            .filter(|s| !named.contains(&s.node) && all.contains(&s.node))
            .cloned()
            .collect();
        for stage in unused {
            self.report(
                Code::UnusedStage,
                stage.span,
                format!("no step is for stage `{}`", stage.node),
            )
            .help = Some(format!(
                "patients in `{}` get no messages; add a step `when stage={} …` or remove the stage",
                stage.node, stage.node
            ));
        }
    }
}

/// Two steps with the same key fire at the same instant for a patient both apply to.
#[derive(Debug, PartialEq, Eq, Hash)]
struct InstantKey {
    anchor: &'static str,
    field: Option<String>,
    offset: Offset,
    at: Option<(u32, u32)>,
}

#[derive(Debug, PartialEq, Eq, Hash)]
enum Offset {
    Minutes(u64),
    Months(u32),
}

impl InstantKey {
    fn of(step: &StepDecl) -> Self {
        let anchor = &step.timing.anchor;
        let offset = match anchor.duration().map(|d| d.node) {
            Some(duration) => match duration.fixed_minutes() {
                Some(minutes) => Offset::Minutes(minutes),
                None => Offset::Months(duration.calendar_months().unwrap_or(u32::MAX)),
            },
            None => Offset::Minutes(0),
        };
        // A fixed date stands where a field would: steps on the same day compare equal.
        let field = match anchor {
            Anchor::OnDate(day) => Some(day.node.to_string()),
            Anchor::Yearly(day) => Some(day.node.to_string()),
            Anchor::AfterSent(_, step) => Some(format!("sent {}", step.node)),
            other => other.field().map(|f| f.node.clone()),
        };
        InstantKey {
            anchor: match anchor {
                Anchor::AfterStageEntry(_) => "after",
                Anchor::Every(_) => "every",
                Anchor::EveryAfterField(..) => "every-field",
                Anchor::AfterField(..) => "after-field",
                Anchor::BeforeField(..) => "before-field",
                Anchor::OnDate(_) => "on",
                Anchor::Yearly(_) => "every-year",
                Anchor::AfterSent(..) => "after-sent",
            },
            field,
            offset,
            at: step
                .timing
                .at
                .as_ref()
                .map(|at| (at.node.hour, at.node.minute)),
        }
    }
}

/// The stages a condition can hold in; `None` when it does not limit the stage.
pub(super) type StageSet = Option<BTreeSet<String>>;

pub(super) fn stage_set(condition: &Condition, all: &BTreeSet<String>) -> StageSet {
    match condition {
        Condition::And(operands) => operands
            .iter()
            .map(|operand| stage_set(&operand.node, all))
            .fold(None, |so_far, next| match (so_far, next) {
                (Some(a), Some(b)) => Some(a.intersection(&b).cloned().collect()),
                (one, None) | (None, one) => one,
            }),
        Condition::Or(operands) => {
            let mut union = BTreeSet::new();
            for operand in operands {
                union.extend(stage_set(&operand.node, all)?);
            }
            Some(union)
        }
        Condition::Compare { field, op, value } if super::fields::is_stage(&field.node) => {
            let named: BTreeSet<String> = stage_name(&value.node).into_iter().collect();
            match op.node {
                CompareOp::Eq => Some(named),
                _ => Some(all.difference(&named).cloned().collect()),
            }
        }
        Condition::In { field, values } if super::fields::is_stage(&field.node) => {
            Some(values.iter().filter_map(|v| stage_name(&v.node)).collect())
        }
        _ => None,
    }
}

pub(super) fn overlap(a: &StageSet, b: &StageSet) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => !a.is_disjoint(b),
        _ => true,
    }
}

fn stage_name(literal: &Literal) -> Option<String> {
    match literal {
        Literal::Symbol(s) | Literal::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The stages a condition can reach a patient in, whatever the polarity: `stage != archived`
/// uses every stage but `archived`.
fn collect_stage_names(condition: &Condition, all: &BTreeSet<String>, into: &mut BTreeSet<String>) {
    match condition {
        Condition::And(operands) | Condition::Or(operands) => {
            for operand in operands {
                collect_stage_names(&operand.node, all, into);
            }
        }
        Condition::Not(inner) => {
            // `not stage=x` reaches the other stages.
            let mut inside = BTreeSet::new();
            collect_stage_names(&inner.node, all, &mut inside);
            into.extend(all.difference(&inside).cloned());
        }
        Condition::Compare { field, .. } | Condition::In { field, .. }
            if super::fields::is_stage(&field.node) =>
        {
            into.extend(stage_set(condition, all).unwrap_or_default());
        }
        // A script may test any stage; it counts as using none, which only risks a warning.
        _ => {}
    }
}

/// The id of an unnamed step, from what it sends and when: `followup_after_7d`.
pub(super) fn derived_id(step: &StepDecl) -> String {
    let template = step
        .send
        .first()
        .map(|v| v.template.node.as_str())
        .unwrap_or("step");
    let timing = match &step.timing.anchor {
        Anchor::AfterStageEntry(d) => format!("after_{}", d.node),
        Anchor::Every(d) => format!("every_{}", d.node),
        Anchor::EveryAfterField(d, field) => format!("every_{}_after_{}", d.node, field.node),
        Anchor::AfterField(d, field) => format!("{}_after_{}", d.node, field.node),
        Anchor::BeforeField(d, field) => format!("{}_before_{}", d.node, field.node),
        Anchor::OnDate(day) => format!("on_{}", day.node.format("%Y_%m_%d")),
        Anchor::Yearly(day) => format!("every_year_on_{:02}_{:02}", day.node.month, day.node.day),
        Anchor::AfterSent(d, sent) => format!("{}_after_sent_{}", d.node, sent.node),
    };
    let at = step
        .timing
        .at
        .as_ref()
        .map(|at| format!("_at_{:02}{:02}", at.node.hour, at.node.minute))
        .unwrap_or_default();
    format!("{template}_{timing}{at}")
}
