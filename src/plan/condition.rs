//! Conditions compiled for evaluation: every field resolved to where it lives in a
//! [`PatientRecord`](crate::records::PatientRecord), every literal typed, every stage an index.

use std::sync::Arc;

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::records::RecordSchema;
use crate::source::{SourceFile, Spanned};
use crate::syntax::{CompareOp, Condition, Literal};
use crate::time::local_to_utc;

/// A compiled condition. Each leaf keeps its source text so `explain` can say which part was
/// false. `and` and `or` chains are flat lists, as in the syntax tree.
#[derive(Debug, Clone)]
pub enum Test {
    /// Every test holds.
    And(Vec<Test>),
    /// Some test holds.
    Or(Vec<Test>),
    Not(Box<Test>),
    Leaf(Leaf, Arc<str>),
}

#[derive(Debug, Clone)]
pub enum Leaf {
    /// The patient's stage is one of these (indexes into the schema's stages).
    StageIn(Vec<usize>),
    /// The patient has one of these tags.
    TagIn(Vec<String>),
    Compare {
        field: FieldRef,
        op: CompareOp,
        value: Value,
    },
    /// `field in (…)` on a non-stage, non-tag field.
    OneOf {
        field: FieldRef,
        values: Vec<Value>,
    },
    IsSet(FieldRef),
    Script(Arc<rhai::AST>),
}

/// Where a field's value is in a patient record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRef {
    Id,
    Name,
    LineUserId,
    Stage,
    StageEnteredAt,
    BirthDate,
    Age,
    Tags,
    OptedOut,
    /// A declared date field, by index.
    Date(usize),
    /// A declared field, by index.
    Field(usize),
    /// Any other column, looked up by name.
    Other,
}

/// A typed literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Text(String),
    Instant(DateTime<Utc>),
}

/// Compiles a checked condition. `scripts` yields the compiled rhai AST for each script, in
/// source order.
pub(super) fn compile(
    condition: &Spanned<Condition>,
    file: &SourceFile,
    schema: &RecordSchema,
    tz: Tz,
    scripts: &mut dyn FnMut(&str) -> Arc<rhai::AST>,
) -> Test {
    let text = || Arc::<str>::from(file.slice(condition.span));
    match &condition.node {
        Condition::And(operands) => Test::And(
            operands
                .iter()
                .map(|operand| compile(operand, file, schema, tz, scripts))
                .collect(),
        ),
        Condition::Or(operands) => Test::Or(
            operands
                .iter()
                .map(|operand| compile(operand, file, schema, tz, scripts))
                .collect(),
        ),
        Condition::Not(inner) => Test::Not(Box::new(compile(inner, file, schema, tz, scripts))),
        Condition::IsSet(field) => Test::Leaf(Leaf::IsSet(field_ref(&field.node, schema)), text()),
        Condition::Compare { field, op, value } => {
            let leaf = match (field.node.as_str(), op.node) {
                ("stage", CompareOp::Eq) => Leaf::StageIn(stages(schema, [&value.node])),
                ("stage", _) => return not(Leaf::StageIn(stages(schema, [&value.node])), text()),
                ("tag" | "tags", CompareOp::Eq) => Leaf::TagIn(words([&value.node])),
                ("tag" | "tags", _) => return not(Leaf::TagIn(words([&value.node])), text()),
                (name, op) => Leaf::Compare {
                    field: field_ref(name, schema),
                    op,
                    value: typed(&value.node, tz),
                },
            };
            Test::Leaf(leaf, text())
        }
        Condition::In { field, values } => {
            let literals = values.iter().map(|v| &v.node);
            let leaf = match field.node.as_str() {
                "stage" => Leaf::StageIn(stages(schema, literals)),
                "tag" | "tags" => Leaf::TagIn(words(literals)),
                name => Leaf::OneOf {
                    field: field_ref(name, schema),
                    values: literals.map(|l| typed(l, tz)).collect(),
                },
            };
            Test::Leaf(leaf, text())
        }
        Condition::Script(code) => Test::Leaf(Leaf::Script(scripts(&code.node)), text()),
    }
}

fn not(leaf: Leaf, text: Arc<str>) -> Test {
    Test::Not(Box::new(Test::Leaf(leaf, text)))
}

fn field_ref(name: &str, schema: &RecordSchema) -> FieldRef {
    match name {
        "id" => FieldRef::Id,
        "name" => FieldRef::Name,
        "line_user_id" => FieldRef::LineUserId,
        "stage" => FieldRef::Stage,
        "stage_entered_at" => FieldRef::StageEnteredAt,
        "birth_date" => FieldRef::BirthDate,
        "age" => FieldRef::Age,
        "tag" | "tags" => FieldRef::Tags,
        "opted_out" => FieldRef::OptedOut,
        other => schema
            .date_index(other)
            .map(FieldRef::Date)
            .or_else(|| schema.field_index(other).map(FieldRef::Field))
            .unwrap_or(FieldRef::Other),
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

fn stages<'a>(
    schema: &RecordSchema,
    literals: impl IntoIterator<Item = &'a Literal>,
) -> Vec<usize> {
    literals
        .into_iter()
        .filter_map(word)
        .filter_map(|name| schema.stage_index(&name))
        .collect()
}

fn typed(literal: &Literal, tz: Tz) -> Value {
    match literal {
        Literal::Number(n) => Value::Number(*n),
        Literal::String(s) | Literal::Symbol(s) => Value::Text(s.clone()),
        Literal::Date(d) => Value::Instant(local_to_utc(d.and_time(NaiveTime::MIN), tz)),
        Literal::DateTime(dt) => Value::Instant(local_to_utc(*dt, tz)),
    }
}

impl Test {
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
