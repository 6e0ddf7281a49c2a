//! Conditions as flat programs, run in one loop: the evaluator tests a step's `when` for every
//! patient and its `unless` for every send, and walking the condition's tree made a call per
//! `and` / `or` operand and worked `age` out again for each leaf reading it. A program is the
//! tree in order with jumps for the short cuts; the patient's age on `now` is worked out once
//! per patient ([`Context::age_now`]), and a condition several steps share (`unless
//! cancelled_at`) is tested once per patient and remembered ([`Answers`]). The tree stays for
//! `explain`'s reasons and as the reference the tests hold the programs to
//! ([`Context::test`]).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::script::ScriptRuntime;
use super::test::{holds, ScriptFailure};
use super::Context;
use crate::fields::{age_on, Field};
use crate::plan::{FieldRef, Leaf, PlannedStep, Test, Value};
use crate::time::{local_date, UnixTime};
use crate::values::CompareOp;

/// One instruction. The program keeps one answer as it runs: the last leaf's, or a constant.
#[derive(Debug, Clone)]
enum Op {
    /// The answer becomes this leaf's.
    Test(FastLeaf),
    /// The answer becomes this (an empty `and` holds, an empty `or` does not).
    Set(bool),
    /// Go on at instruction `to` when the answer is `when` (an `and` stops at the first false
    /// operand, an `or` at the first true one, with that as the answer).
    JumpIf {
        when: bool,
        to: usize,
    },
    Not,
}

/// A leaf, with the common ones read straight off the patient.
#[derive(Debug, Clone)]
enum FastLeaf {
    Stage(Box<[usize]>),
    /// `age OP number`: the age on `now` is worked out once per patient.
    Age {
        op: CompareOp,
        than: f64,
    },
    /// A date field is set (`unless cancelled_at`).
    DateSet(usize),
    Tag(Box<[String]>),
    /// Everything else, the way [`Context::test`] answers it.
    Other(Leaf, Arc<str>),
}

/// A condition as instructions, and what its answer may depend on.
#[derive(Debug)]
struct Program {
    /// Its index among the plan's programs (where [`Answers`] keeps its answer).
    id: usize,
    ops: Box<[Op]>,
    /// The answer can change with the instant tested at (`age`, a reaction, a script): it is
    /// remembered only for `now`.
    reads_the_instant: bool,
    /// A rhai condition runs every time it is asked, as it did before.
    scripted: bool,
    /// The answer whoever is asked, without running anything: most steps chosen by the
    /// patient's stage have nothing left to test (an empty `and`).
    constant: Option<bool>,
}

/// Every distinct condition of a plan as a program, and which one each step's `when` (whole,
/// and past its stage test) and `unless` is. Built once per evaluator.
#[derive(Debug, Default)]
pub(super) struct Conditions {
    programs: Vec<Program>,
    when: Vec<usize>,
    when_past_stage: Vec<Option<usize>>,
    unless: Vec<Option<usize>>,
    /// By step, the tree of the `when` past its stage test, for testing by the tree.
    past_stage_trees: Vec<Option<Test>>,
}

/// A condition of [`Conditions`], by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ConditionId(usize);

impl Conditions {
    pub fn new(steps: &[PlannedStep]) -> Conditions {
        let mut conditions = Conditions::default();
        // Two conditions are the same when their trees print the same (leaves, values and
        // the text as written): then they answer the same for every patient and instant.
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut add = |test: &Test, programs: &mut Vec<Program>| {
            *seen.entry(format!("{test:?}")).or_insert_with(|| {
                programs.push(Program::of(test, programs.len()));
                programs.len() - 1
            })
        };
        for step in steps {
            let when = add(&step.when, &mut conditions.programs);
            let past_tree = past_stage(&step.when);
            let past = past_tree
                .as_ref()
                .map(|rest| add(rest, &mut conditions.programs));
            conditions.past_stage_trees.push(past_tree);
            let unless = step
                .unless
                .as_ref()
                .map(|test| add(test, &mut conditions.programs));
            conditions.when.push(when);
            conditions.when_past_stage.push(past);
            conditions.unless.push(unless);
        }
        conditions
    }

    pub fn count(&self) -> usize {
        self.programs.len()
    }

    /// The step's `when`; past its stage test when `past_stage` (the patient's stage chose
    /// the step, so that test holds) and it starts with one.
    pub fn when(&self, step: usize, past_stage: bool) -> ConditionId {
        let past = match past_stage {
            true => self.when_past_stage[step],
            false => None,
        };
        ConditionId(past.unwrap_or(self.when[step]))
    }

    /// [`Conditions::when`] as a tree: the step's own, or the one past its stage test.
    pub fn when_tree<'s>(&'s self, step: &'s PlannedStep, past_stage: bool) -> &'s Test {
        match past_stage {
            true => self.past_stage_trees[step.index].as_ref(),
            false => None,
        }
        .unwrap_or(&step.when)
    }

    /// Whether the step's `unless` runs a rhai condition (whose failures are noted).
    pub fn unless_scripted(&self, step: usize) -> bool {
        self.unless[step].is_some_and(|id| self.programs[id].scripted)
    }

    pub fn unless(&self, step: usize) -> Option<ConditionId> {
        self.unless[step].map(ConditionId)
    }
}

/// What one patient's conditions came to, by [`ConditionId`]: each answer is kept for the
/// patient it was worked out for ([`Answers::next_patient`]). Reused across patients.
#[derive(Debug, Default)]
pub(super) struct Answers {
    /// The patient's number (from 1), and the answer for them, by condition.
    answers: Vec<(u32, bool)>,
    patient: u32,
}

impl Answers {
    /// Forgets the last patient's answers, for `count` conditions.
    pub fn next_patient(&mut self, count: usize) {
        self.answers.resize(count, (0, false));
        self.patient = match self.patient.checked_add(1) {
            Some(next) => next,
            None => {
                self.answers.fill((0, false));
                1
            }
        };
    }
}

impl Program {
    fn of(test: &Test, id: usize) -> Program {
        let mut ops = Vec::new();
        lower(test, &mut ops);
        let mut reads_the_instant = false;
        let mut scripted = false;
        for op in &ops {
            match op {
                Op::Test(FastLeaf::Age { .. }) => reads_the_instant = true,
                Op::Test(FastLeaf::Other(leaf, _)) => match leaf {
                    Leaf::Script(_) => scripted = true,
                    Leaf::Reaction(_) => reads_the_instant = true,
                    Leaf::Compare { field, .. } | Leaf::OneOf { field, .. } => {
                        reads_the_instant |= *field == FieldRef::Builtin(Field::Age);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        let constant = match ops.as_slice() {
            [Op::Set(answer)] => Some(*answer),
            _ => None,
        };
        Program {
            id,
            constant,
            ops: ops.into_boxed_slice(),
            reads_the_instant: reads_the_instant || scripted,
            scripted,
        }
    }
}

/// Appends `test`'s instructions; after them the answer is the test's.
fn lower(test: &Test, ops: &mut Vec<Op>) {
    match test {
        Test::And(tests) | Test::Or(tests) => {
            let stop_at = matches!(test, Test::Or(_));
            let Some((last, rest)) = tests.split_last() else {
                ops.push(Op::Set(!stop_at));
                return;
            };
            let mut jumps = Vec::with_capacity(rest.len());
            for test in rest {
                lower(test, ops);
                jumps.push(ops.len());
                ops.push(Op::JumpIf {
                    when: stop_at,
                    to: usize::MAX,
                });
            }
            lower(last, ops);
            let end = ops.len();
            for jump in jumps {
                ops[jump] = Op::JumpIf {
                    when: stop_at,
                    to: end,
                };
            }
        }
        Test::Not(inner) => {
            lower(inner, ops);
            ops.push(Op::Not);
        }
        Test::Leaf(leaf, text) => ops.push(Op::Test(FastLeaf::of(leaf, text))),
    }
}

impl FastLeaf {
    fn of(leaf: &Leaf, text: &Arc<str>) -> FastLeaf {
        match leaf {
            Leaf::StageIn(stages) => FastLeaf::Stage(stages.clone().into_boxed_slice()),
            Leaf::Compare {
                field: FieldRef::Builtin(Field::Age),
                op,
                value: Value::Number(than),
            } => FastLeaf::Age {
                op: *op,
                than: *than,
            },
            Leaf::IsSet(FieldRef::Date(index)) => FastLeaf::DateSet(*index),
            Leaf::TagIn(tags) => FastLeaf::Tag(tags.clone().into_boxed_slice()),
            leaf => FastLeaf::Other(leaf.clone(), text.clone()),
        }
    }
}

/// The step's `when` past its first test, when that is a stage test (`stage=booked and age >=
/// 65` → `age >= 65`; `stage=booked` alone → an empty `and`, which holds).
fn past_stage(when: &Test) -> Option<Test> {
    match when {
        Test::Leaf(Leaf::StageIn(_), _) => Some(Test::And(Vec::new())),
        Test::And(tests) => match tests.split_first() {
            Some((Test::Leaf(Leaf::StageIn(_), _), rest)) => Some(Test::And(rest.to_vec())),
            _ => None,
        },
        _ => None,
    }
}

impl Context<'_> {
    /// Whether condition `id` holds for the patient at `at`: [`Context::test`]'s answer, from
    /// the program, or remembered from an earlier step of this patient. `at` becomes chrono's
    /// only for a leaf that reads it.
    #[inline]
    pub(super) fn holds(
        &mut self,
        conditions: &Conditions,
        id: ConditionId,
        at: UnixTime,
        runtime: &mut Option<ScriptRuntime>,
        answers: &mut Answers,
    ) -> Result<bool, ScriptFailure> {
        let program = &conditions.programs[id.0];
        if let Some(answer) = program.constant {
            return Ok(answer);
        }
        self.run_remembered(program, at, runtime, answers)
    }

    fn run_remembered(
        &mut self,
        program: &Program,
        at: UnixTime,
        runtime: &mut Option<ScriptRuntime>,
        answers: &mut Answers,
    ) -> Result<bool, ScriptFailure> {
        let id = program.id;
        let at = At {
            seconds: at,
            now: at == self.today.frame.now,
            utc: None,
        };
        let remembered = !program.scripted && (!program.reads_the_instant || at.now);
        if remembered {
            let (patient, answer) = answers.answers[id];
            if patient == answers.patient {
                return Ok(answer);
            }
        }
        let answer = self.run(&program.ops, at, runtime)?;
        if remembered {
            answers.answers[id] = (answers.patient, answer);
        }
        Ok(answer)
    }

    fn run(
        &mut self,
        ops: &[Op],
        mut at: At,
        runtime: &mut Option<ScriptRuntime>,
    ) -> Result<bool, ScriptFailure> {
        let mut answer = false;
        let mut next = 0;
        while let Some(op) = ops.get(next) {
            next += 1;
            match op {
                Op::Test(leaf) => answer = self.fast_leaf(leaf, &mut at, runtime)?,
                Op::Set(value) => answer = *value,
                Op::JumpIf { when, to } => {
                    if answer == *when {
                        next = *to;
                    }
                }
                Op::Not => answer = !answer,
            }
        }
        Ok(answer)
    }

    fn fast_leaf(
        &mut self,
        leaf: &FastLeaf,
        at: &mut At,
        runtime: &mut Option<ScriptRuntime>,
    ) -> Result<bool, ScriptFailure> {
        Ok(match leaf {
            FastLeaf::Stage(stages) => self.patient.stage.is_some_and(|s| stages.contains(&s)),
            FastLeaf::Age { op, than } => {
                let age = match at.now {
                    true => self.age_now(),
                    false => {
                        let day = local_date(at.utc(), self.plan.timezone);
                        self.patient.birth_date.map(|birth| age_on(birth, day))
                    }
                };
                match age.and_then(|age| (age as f64).partial_cmp(than)) {
                    Some(ordering) => holds(*op, ordering),
                    // No birth date: different from every age, and in no order with it.
                    None => *op == CompareOp::Ne,
                }
            }
            FastLeaf::DateSet(index) => self.patient.dates.get(*index).is_some_and(Option::is_some),
            FastLeaf::Tag(tags) => self.patient.tags.iter().any(|t| tags.contains(t)),
            FastLeaf::Other(leaf, written) => {
                return self.test_leaf(leaf, written, at.utc(), runtime)
            }
        })
    }

    /// The patient's age on `now`'s day, worked out on the first leaf that asks.
    fn age_now(&mut self) -> Option<i64> {
        *self.age_now.get_or_insert_with(|| {
            let birth = self.patient.birth_date?;
            Some(age_on(birth, self.today.date))
        })
    }
}

/// The instant a condition is tested at, as chrono's only once a leaf asks.
struct At {
    seconds: UnixTime,
    /// It is the evaluation's `now`.
    now: bool,
    utc: Option<DateTime<Utc>>,
}

impl At {
    fn utc(&mut self) -> DateTime<Utc> {
        *self.utc.get_or_insert_with(|| self.seconds.utc())
    }
}

#[cfg(test)]
#[path = "flat_tests.rs"]
mod tests;
