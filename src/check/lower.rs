//! The checked program: each step lowered once, after every check passed, into what later
//! stages use without looking at the syntax tree again — fields resolved to where they live in
//! a record, stages to indexes, rhai scripts compiled, one `unless` and one `within` at most,
//! and each variant carrying its template. As casey/just's analyzer turns unresolved recipes
//! into resolved ones, the types say so: nothing here names a field by text.

use std::collections::HashMap;
use std::sync::Arc;

use super::{CheckedStep, Checker};
use crate::fields::{Field, FieldRef};
use crate::source::Spanned;
use crate::syntax::{Anchor, Condition, Purpose};
use crate::template::Template;
use crate::values::{ClockTime, CompareOp, Duration, DurationUnit, Literal, MonthDay, Priority};

/// A resolved condition over values of type `V`: `check` yields literals as written, `plan`
/// types them in the clinic's time zone. Each leaf keeps its source text so `explain` can say
/// which part was false. `and` and `or` chains are flat lists, as in the syntax tree.
#[derive(Debug, Clone)]
pub enum Test<V> {
    /// Every test holds.
    And(Vec<Test<V>>),
    /// Some test holds.
    Or(Vec<Test<V>>),
    Not(Box<Test<V>>),
    Leaf(Leaf<V>, Arc<str>),
}

#[derive(Debug, Clone)]
pub enum Leaf<V> {
    /// The patient's stage is one of these (indexes into the rules' stages).
    StageIn(Vec<usize>),
    /// The patient has one of these tags.
    TagIn(Vec<String>),
    Compare {
        field: FieldRef,
        op: CompareOp,
        value: V,
    },
    /// `field in (…)` on a non-stage, non-tag field.
    OneOf {
        field: FieldRef,
        values: Vec<V>,
    },
    IsSet(FieldRef),
    Script(Arc<rhai::AST>),
    /// What the patient did (`clicked survey within 3d`): read from the ledger's events.
    Reaction(ReactionTest),
}

/// A reaction condition with its step resolved to an index.
#[derive(Debug, Clone, PartialEq)]
pub struct ReactionTest {
    pub kind: ReactionTestKind,
    /// How long after the step's send the reaction counts; `None`: any time since.
    pub window: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReactionTestKind {
    /// A tracked link of this step's last send was opened.
    Clicked(usize),
    /// A tracked postback button of this step's last send, with this data, was tapped.
    Answered(usize, Arc<str>),
    /// A booking was seen after this step's last send.
    BookedSince(usize),
    /// The patient's LINE user has blocked the account.
    Blocked,
}

impl ReactionTestKind {
    /// The step whose send the reaction is to.
    pub fn step(&self) -> Option<usize> {
        match self {
            ReactionTestKind::Clicked(step)
            | ReactionTestKind::Answered(step, _)
            | ReactionTestKind::BookedSince(step) => Some(*step),
            ReactionTestKind::Blocked => None,
        }
    }
}

impl<V> Test<V> {
    /// The same condition with every literal turned into a `W`.
    pub fn map<W>(&self, f: &mut impl FnMut(&V) -> W) -> Test<W> {
        match self {
            Test::And(tests) => Test::And(tests.iter().map(|t| t.map(f)).collect()),
            Test::Or(tests) => Test::Or(tests.iter().map(|t| t.map(f)).collect()),
            Test::Not(inner) => Test::Not(Box::new(inner.map(f))),
            Test::Leaf(leaf, text) => {
                let leaf = match leaf {
                    Leaf::StageIn(stages) => Leaf::StageIn(stages.clone()),
                    Leaf::TagIn(tags) => Leaf::TagIn(tags.clone()),
                    Leaf::Compare { field, op, value } => Leaf::Compare {
                        field: *field,
                        op: *op,
                        value: f(value),
                    },
                    Leaf::OneOf { field, values } => Leaf::OneOf {
                        field: *field,
                        values: values.iter().map(&mut *f).collect(),
                    },
                    Leaf::IsSet(field) => Leaf::IsSet(*field),
                    Leaf::Script(ast) => Leaf::Script(ast.clone()),
                    Leaf::Reaction(reaction) => Leaf::Reaction(reaction.clone()),
                };
                Test::Leaf(leaf, text.clone())
            }
        }
    }

    /// Every reaction leaf, for the pass to know which sends and events to read.
    pub fn for_each_reaction(&self, each: &mut impl FnMut(&ReactionTest)) {
        match self {
            Test::And(tests) | Test::Or(tests) => {
                for test in tests {
                    test.for_each_reaction(each);
                }
            }
            Test::Not(inner) => inner.for_each_reaction(each),
            Test::Leaf(Leaf::Reaction(reaction), _) => each(reaction),
            Test::Leaf(..) => {}
        }
    }

    /// Whether any leaf is a rhai script (the evaluator then builds the patient map).
    pub fn has_script(&self) -> bool {
        match self {
            Test::And(tests) | Test::Or(tests) => tests.iter().any(Test::has_script),
            Test::Not(inner) => inner.has_script(),
            Test::Leaf(Leaf::Script(_), _) => true,
            Test::Leaf(..) => false,
        }
    }
}

/// The instant a step counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorField {
    StageEnteredAt,
    BirthDate,
    /// A declared date field, by index.
    Date(usize),
    /// No field: the step names its days on the calendar (`on 2026-12-28`, `every year on
    /// 06-04`).
    Calendar,
    /// The patient's last delivered send of this step (`3d after sent survey`).
    Sent(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Once, `offset` after the anchor.
    After,
    /// Once, `offset` before the anchor; never at or after the anchor itself.
    Before,
    /// At anchor + k·offset for k = 1, 2, … (the anchor is stage entry for `every D`, the
    /// field for `every D after FIELD`).
    Every,
    /// Once, on this day (clinic time): `on 2026-12-28`.
    On(chrono::NaiveDate),
    /// On this day every year: `every year on 06-04` (`02-29` in leap years only).
    Yearly(MonthDay),
}

/// When a step fires: `offset` from `anchor` in `direction`, then moved to `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub anchor: AnchorField,
    pub direction: Direction,
    pub offset: Duration,
    pub at: Option<ClockTime>,
    /// `even on the day`: a `before` step timed on an earlier day may still go out on the
    /// anchor's own day (before the anchor).
    pub on_the_day: bool,
}

/// One template a step sends, with its share of patients in percent (100 for a lone one).
#[derive(Debug, Clone)]
pub struct Variant {
    pub template: Arc<Template>,
    pub weight: u32,
}

/// A step that passed every check, lowered.
#[derive(Debug, Clone)]
pub struct Step {
    /// The ledger key: the `step ID:` name, or one derived from the step's content.
    pub id: String,
    pub named: bool,
    pub when: Test<Literal>,
    pub unless: Option<Test<Literal>>,
    pub timing: Timing,
    /// How long a due send stays sendable, when the step says.
    pub within: Option<Duration>,
    /// Which sends the cap keeps first on a full day (`normal` unless the step says).
    pub priority: Priority,
    pub variants: Vec<Variant>,
    /// What the step is for (`care` or `promo`, as written or implied by its timing).
    pub purpose: Purpose,
    /// Sent only to patients whose `consent` field says yes: a promo step, or a care step
    /// that says `requires consent`.
    pub needs_consent: bool,
    /// 1-based line of the step in the rules file.
    pub line: usize,
}

impl Checker<'_> {
    /// Lowers a step of a file that passed every check, with the scripts compiled while checking.
    pub(super) fn lower(&self, checked: CheckedStep<'_>) -> Step {
        let CheckedStep {
            decl: step,
            id,
            named,
            templates,
        } = checked;
        let scripts = &self.scripts;
        let (anchor, direction) = match &step.timing.anchor {
            Anchor::AfterStageEntry(_) => (AnchorField::StageEnteredAt, Direction::After),
            Anchor::Every(_) => (AnchorField::StageEnteredAt, Direction::Every),
            Anchor::EveryAfterField(_, field) => (self.anchor_field(&field.node), Direction::Every),
            Anchor::AfterField(_, field) => (self.anchor_field(&field.node), Direction::After),
            Anchor::BeforeField(_, field) => (self.anchor_field(&field.node), Direction::Before),
            Anchor::OnDate(day) => (AnchorField::Calendar, Direction::On(day.node)),
            Anchor::Yearly(day) => (AnchorField::Calendar, Direction::Yearly(day.node)),
            Anchor::AfterSent(_, sent) => (self.sent_anchor(&sent.node), Direction::After),
        };
        let variants = step
            .send
            .iter()
            .zip(templates)
            .map(|(variant, template)| Variant {
                template,
                weight: variant.weight.as_ref().map_or(100, |w| w.node),
            })
            .collect();
        Step {
            id,
            named,
            when: self.lower_condition(&step.when, scripts),
            unless: step
                .unless
                .first()
                .map(|u| self.lower_condition(u, scripts)),
            timing: Timing {
                anchor,
                direction,
                offset: step.timing.anchor.duration().map_or(
                    Duration {
                        amount: 0,
                        unit: DurationUnit::Minutes,
                    },
                    |d| d.node,
                ),
                at: step.timing.at.as_ref().map(|at| at.node),
                on_the_day: step.timing.on_the_day.is_some(),
            },
            within: step.within.first().map(|w| w.node),
            priority: step
                .priority
                .first()
                .map_or_else(Priority::default, |p| p.node),
            variants,
            purpose: super::privacy::purpose(step),
            needs_consent: super::privacy::needs_consent(step),
            line: self.file.line_column(step.span.start).0,
        }
    }

    /// A checked `after sent STEP`: STEP is a step of the file.
    fn sent_anchor(&self, step: &str) -> AnchorField {
        AnchorField::Sent(self.step_index.get(step).copied().unwrap_or_default())
    }

    fn lower_reaction(&self, reaction: &crate::syntax::Reaction) -> ReactionTest {
        use crate::syntax::ReactionKind;
        let step = |name: &crate::syntax::Ident| {
            self.step_index.get(&name.node).copied().unwrap_or_default()
        };
        let kind = match &reaction.kind {
            ReactionKind::Clicked(name) => ReactionTestKind::Clicked(step(name)),
            ReactionKind::Answered(name, data) => {
                ReactionTestKind::Answered(step(name), Arc::from(data.node.as_str()))
            }
            ReactionKind::BookedSince(name) => ReactionTestKind::BookedSince(step(name)),
            ReactionKind::Blocked => ReactionTestKind::Blocked,
        };
        ReactionTest {
            kind,
            window: reaction.window.as_ref().map(|w| w.node),
        }
    }

    fn anchor_field(&self, name: &str) -> AnchorField {
        match self.field_ref(name) {
            FieldRef::Builtin(Field::BirthDate) => AnchorField::BirthDate,
            FieldRef::Date(index) => AnchorField::Date(index),
            // Check only lets instants anchor a step; stage entry is the other one.
            _ => AnchorField::StageEnteredAt,
        }
    }

    /// Where a checked field lives. Check reported every unknown name, so a name that is no
    /// built-in and no declared date is a declared field.
    fn field_ref(&self, name: &str) -> FieldRef {
        if let Some(builtin) = super::fields::builtin_ref(name) {
            return builtin;
        }
        let position = |list: &[crate::syntax::Ident]| list.iter().position(|d| d.node == name);
        match position(&self.decls.dates) {
            Some(index) => FieldRef::Date(index),
            None => FieldRef::Declared(position(&self.decls.fields).unwrap_or_default()),
        }
    }

    fn lower_condition(
        &self,
        condition: &Spanned<Condition>,
        scripts: &HashMap<String, Arc<rhai::AST>>,
    ) -> Test<Literal> {
        let text = || Arc::<str>::from(self.file.slice(condition.span));
        let all = |operands: &[Spanned<Condition>]| -> Vec<Test<Literal>> {
            operands
                .iter()
                .map(|operand| self.lower_condition(operand, scripts))
                .collect()
        };
        match &condition.node {
            Condition::And(operands) => Test::And(all(operands)),
            Condition::Or(operands) => Test::Or(all(operands)),
            Condition::Not(inner) => Test::Not(Box::new(self.lower_condition(inner, scripts))),
            Condition::IsSet(field) => Test::Leaf(Leaf::IsSet(self.field_ref(&field.node)), text()),
            Condition::Compare { field, op, value } => {
                let field = self.field_ref(&field.node);
                let leaf = match field {
                    FieldRef::Builtin(Field::Stage) => Leaf::StageIn(self.stages([&value.node])),
                    FieldRef::Builtin(Field::Tags) => Leaf::TagIn(words([&value.node])),
                    field => Leaf::Compare {
                        field,
                        op: op.node,
                        value: value.node.clone(),
                    },
                };
                let negated =
                    op.node != CompareOp::Eq && matches!(leaf, Leaf::StageIn(_) | Leaf::TagIn(_));
                match negated {
                    true => Test::Not(Box::new(Test::Leaf(leaf, text()))),
                    false => Test::Leaf(leaf, text()),
                }
            }
            Condition::In { field, values } => {
                let literals = values.iter().map(|v| &v.node);
                let leaf = match self.field_ref(&field.node) {
                    FieldRef::Builtin(Field::Stage) => Leaf::StageIn(self.stages(literals)),
                    FieldRef::Builtin(Field::Tags) => Leaf::TagIn(words(literals)),
                    field => Leaf::OneOf {
                        field,
                        values: literals.cloned().collect(),
                    },
                };
                Test::Leaf(leaf, text())
            }
            Condition::Reaction(reaction) => {
                Test::Leaf(Leaf::Reaction(self.lower_reaction(reaction)), text())
            }
            Condition::Script(code) => match scripts.get(&code.node) {
                Some(ast) => Test::Leaf(Leaf::Script(ast.clone()), text()),
                // Unreachable for a checked file (a script that does not compile is an
                // error); a condition that never holds is the safe reading.
                None => Test::Or(Vec::new()),
            },
        }
    }

    fn stages<'a>(&self, literals: impl IntoIterator<Item = &'a Literal>) -> Vec<usize> {
        literals
            .into_iter()
            .filter_map(word)
            .filter_map(|name| self.decls.stages.iter().position(|s| s.node == name))
            .collect()
    }
}

fn word(literal: &Literal) -> Option<String> {
    match literal {
        Literal::Symbol(s) | Literal::String(s) => Some(s.clone()),
        Literal::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn words<'a>(literals: impl IntoIterator<Item = &'a Literal>) -> Vec<String> {
    literals.into_iter().filter_map(word).collect()
}
