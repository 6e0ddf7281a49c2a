//! Evaluating compiled conditions against one patient at one instant, and saying which part of
//! a false condition was false.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use super::script::ScriptRuntime;
use super::Context;
use crate::fields::{age_on, Field, FieldValue};
use crate::plan::{FieldRef, Leaf, Test, Value};
use crate::time::{local_date, parse_instant};
use crate::values::CompareOp;

/// A rhai condition that failed at run time for this patient (not a crash: a finding).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptFailure(pub String);

impl Context<'_> {
    pub(super) fn test(
        &mut self,
        test: &Test,
        at: DateTime<Utc>,
        runtime: &mut Option<ScriptRuntime>,
    ) -> Result<bool, ScriptFailure> {
        Ok(match test {
            Test::And(tests) => {
                for test in tests {
                    if !self.test(test, at, runtime)? {
                        return Ok(false);
                    }
                }
                true
            }
            Test::Or(tests) => {
                for test in tests {
                    if self.test(test, at, runtime)? {
                        return Ok(true);
                    }
                }
                false
            }
            Test::Not(inner) => !self.test(inner, at, runtime)?,
            Test::Leaf(leaf, written) => self.test_leaf(leaf, written, at, runtime)?,
        })
    }

    /// One leaf of a condition, written as `written` in the rules.
    pub(super) fn test_leaf(
        &mut self,
        leaf: &Leaf,
        written: &str,
        at: DateTime<Utc>,
        runtime: &mut Option<ScriptRuntime>,
    ) -> Result<bool, ScriptFailure> {
        Ok(match leaf {
            Leaf::Script(ast) => {
                let runtime = runtime.get_or_insert_with(ScriptRuntime::new);
                runtime.eval(ast, written, self.patient, self.plan, at)?
            }
            Leaf::Reaction(reaction) => self.reacted(reaction, at),
            leaf => self.leaf(leaf, at),
        })
    }

    /// The leaves that made `test` false, as written in the rules, with the patient's value.
    pub(super) fn why_false(
        &mut self,
        test: &Test,
        at: DateTime<Utc>,
        runtime: &mut Option<ScriptRuntime>,
    ) -> Vec<String> {
        match test {
            Test::And(tests) => {
                // The first operand that is false (or fails) is the reason.
                let first_false = tests
                    .iter()
                    .find(|test| !self.test(test, at, runtime).unwrap_or(false));
                match first_false {
                    Some(test) => self.why_false(test, at, runtime),
                    None => Vec::new(),
                }
            }
            Test::Or(tests) => {
                let mut parts = Vec::new();
                for test in tests {
                    parts.extend(self.why_false(test, at, runtime));
                }
                parts
            }
            Test::Not(inner) => self
                .why_true(inner, at)
                .into_iter()
                .map(|part| format!("not {part}"))
                .collect(),
            Test::Leaf(leaf, text) => vec![self.describe(leaf, text, at)],
        }
    }

    /// The leaves of a condition that holds, for saying why an `unless` stopped a send.
    pub(super) fn why_true(&self, test: &Test, at: DateTime<Utc>) -> Vec<String> {
        match test {
            Test::Leaf(leaf, text) => vec![self.describe(leaf, text, at)],
            Test::And(tests) | Test::Or(tests) => tests
                .iter()
                .flat_map(|test| self.why_true(test, at))
                .collect(),
            Test::Not(inner) => self.why_true(inner, at),
        }
    }

    fn describe(&self, leaf: &Leaf, text: &str, at: DateTime<Utc>) -> String {
        let value = match leaf {
            Leaf::StageIn(_) => Some(format!("stage is {}", self.stage_name())),
            Leaf::TagIn(_) => Some(match self.patient.tags.as_slice() {
                [] => "no tags".to_owned(),
                tags => format!("tags are {}", tags.join(";")),
            }),
            Leaf::Compare { field, .. } | Leaf::OneOf { field, .. } | Leaf::IsSet(field) => {
                Some(self.show(*field))
            }
            Leaf::Script(_) => None,
            Leaf::Reaction(reaction) => Some(self.describe_reaction(reaction, at)),
        };
        match value {
            Some(value) => format!("`{text}` ({value})"),
            None => format!("`{text}`"),
        }
    }

    fn stage_name(&self) -> &str {
        self.patient
            .stage
            .map_or("empty", |s| self.plan.schema.stages[s].as_str())
    }

    /// The patient's value of a field, for messages; names are never shown.
    fn show(&self, field: FieldRef) -> String {
        let name = self.field_name(field);
        let shown = match self.patient.value(field, &self.plan.schema, self.now) {
            FieldValue::Empty => None,
            // A name is patient data: only whether it is set.
            FieldValue::Text(_) if field == FieldRef::Builtin(Field::Name) => {
                Some("set".to_owned())
            }
            FieldValue::Text(text) => Some(text.to_owned()),
            FieldValue::Number(n) => Some(n.to_string()),
            FieldValue::Instant(at) => Some(
                at.with_timezone(&self.plan.timezone)
                    .format("%Y-%m-%d %H:%M")
                    .to_string(),
            ),
            FieldValue::Day(day) => Some(day.to_string()),
            FieldValue::List(items) => Some(items.join(";")),
            FieldValue::Flag(flag) => Some(flag.to_string()),
        };
        format!("{name} is {}", shown.unwrap_or_else(|| "empty".to_owned()))
    }

    /// The name a resolved field has in the rules.
    fn field_name(&self, field: FieldRef) -> &str {
        let schema = &self.plan.schema;
        match field {
            FieldRef::Builtin(builtin) => builtin.name(),
            FieldRef::Date(index) => schema.date_fields.get(index).map_or("", String::as_str),
            FieldRef::Declared(index) => schema.fields.get(index).map_or("", String::as_str),
        }
    }

    fn leaf(&self, leaf: &Leaf, at: DateTime<Utc>) -> bool {
        let patient = self.patient;
        match leaf {
            Leaf::StageIn(stages) => patient.stage.is_some_and(|s| stages.contains(&s)),
            Leaf::TagIn(tags) => patient.tags.iter().any(|t| tags.contains(t)),
            Leaf::IsSet(field) => self.is_set(*field),
            Leaf::Compare { field, op, value } => match self.compare(*field, value, at) {
                Some(ordering) => holds(*op, ordering),
                // An empty field is different from every value, and in no order with it.
                None => *op == CompareOp::Ne,
            },
            Leaf::OneOf { field, values } => values
                .iter()
                .any(|v| self.compare(*field, v, at) == Some(Ordering::Equal)),
            Leaf::Script(_) | Leaf::Reaction(_) => {
                unreachable!("scripts and reactions are evaluated by `test`")
            }
        }
    }

    fn is_set(&self, field: FieldRef) -> bool {
        match self.patient.value(field, &self.plan.schema, self.now) {
            FieldValue::Empty => false,
            FieldValue::List(items) => !items.is_empty(),
            FieldValue::Flag(flag) => flag,
            _ => true,
        }
    }

    pub(super) fn instant(&self, field: FieldRef) -> Option<DateTime<Utc>> {
        match field {
            FieldRef::Builtin(Field::StageEnteredAt) => self.patient.stage_entered_at,
            FieldRef::Date(i) => self.patient.dates.get(i).copied().flatten(),
            _ => None,
        }
    }

    fn text(&self, field: FieldRef) -> Option<&str> {
        match self.patient.value(field, &self.plan.schema, self.now) {
            FieldValue::Text(text) => Some(text),
            _ => None,
        }
    }

    fn compare(&self, field: FieldRef, value: &Value, at: DateTime<Utc>) -> Option<Ordering> {
        match (field, value) {
            (FieldRef::Builtin(Field::Age), Value::Number(n)) => {
                // `PatientRecord::age`, with the day of `now` worked out once.
                let day = if at == self.today.now {
                    self.today.date
                } else {
                    local_date(at, self.plan.timezone)
                };
                (age_on(self.patient.birth_date?, day) as f64).partial_cmp(n)
            }
            (FieldRef::Builtin(Field::StageEnteredAt) | FieldRef::Date(_), Value::Instant(v)) => {
                Some(self.instant(field)?.cmp(v))
            }
            (FieldRef::Builtin(Field::BirthDate), Value::Instant(v)) => {
                let birth = self.patient.birth_date?;
                let day = local_date(*v, self.plan.timezone);
                Some(birth.cmp(&day))
            }
            (FieldRef::Builtin(Field::OptedOut), Value::Text(t)) => {
                Some(self.patient.opted_out.to_string().as_str().cmp(t.as_str()))
            }
            (_, value) => {
                let text = self.text(field)?;
                compare_text(text, value, self.plan.timezone)
            }
        }
    }
}

pub(super) fn holds(op: CompareOp, ordering: Ordering) -> bool {
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
    }
}

/// A free-text column against a literal: as numbers when both are numbers, as instants when
/// the literal is a date, as text otherwise.
fn compare_text(text: &str, value: &Value, tz: chrono_tz::Tz) -> Option<Ordering> {
    match value {
        Value::Number(n) => text.trim().parse::<f64>().ok()?.partial_cmp(n),
        Value::Instant(v) => Some(parse_instant(text, tz).ok()?.cmp(v)),
        Value::Text(t) => Some(text.cmp(t.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn age_counts_whole_years_on_the_birthday() {
        let birth = NaiveDate::from_ymd_opt(1986, 11, 25).unwrap();
        assert_eq!(
            age_on(birth, NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()),
            39
        );
        assert_eq!(
            age_on(birth, NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()),
            40
        );
    }

    #[test]
    fn free_text_compares_as_numbers_when_it_can() {
        let tz = chrono_tz::Asia::Tokyo;
        assert_eq!(
            compare_text("10", &Value::Number(9.0), tz),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare_text("健診", &Value::Text("健診".into()), tz),
            Some(Ordering::Equal)
        );
        assert_eq!(compare_text("abc", &Value::Number(1.0), tz), None);
    }
}
