//! Evaluating compiled conditions against one patient at one instant, and saying which part of
//! a false condition was false.

use std::cmp::Ordering;

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::script::ScriptRuntime;
use super::Context;
use crate::plan::{FieldRef, Leaf, Test, Value};
use crate::records::parse_instant;
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
            Test::Leaf(Leaf::Script(ast), _) => {
                let runtime = runtime.get_or_insert_with(ScriptRuntime::new);
                runtime.eval(ast, self.patient, self.plan, at)?
            }
            Test::Leaf(leaf, _) => self.leaf(leaf, at),
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
                .why_true(inner)
                .into_iter()
                .map(|part| format!("not {part}"))
                .collect(),
            Test::Leaf(leaf, text) => vec![self.describe(leaf, text)],
        }
    }

    /// The leaves of a condition that holds, for saying why an `unless` stopped a send.
    pub(super) fn why_true(&self, test: &Test) -> Vec<String> {
        match test {
            Test::Leaf(leaf, text) => vec![self.describe(leaf, text)],
            Test::And(tests) | Test::Or(tests) => {
                tests.iter().flat_map(|test| self.why_true(test)).collect()
            }
            Test::Not(inner) => self.why_true(inner),
        }
    }

    fn describe(&self, leaf: &Leaf, text: &str) -> String {
        let value = match leaf {
            Leaf::StageIn(_) => Some(format!("stage is {}", self.stage_name())),
            Leaf::TagIn(_) => Some(match self.patient.tags.as_slice() {
                [] => "no tags".to_owned(),
                tags => format!("tags are {}", tags.join(";")),
            }),
            Leaf::Compare { field, .. } | Leaf::OneOf { field, .. } | Leaf::IsSet(field) => {
                Some(self.show(*field, text))
            }
            Leaf::Script(_) => None,
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
    fn show(&self, field: FieldRef, text: &str) -> String {
        let name = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .find(|w| !w.is_empty())
            .unwrap_or("field");
        let value = match field {
            FieldRef::Name => {
                return format!(
                    "{name} is {}",
                    if self.patient.name.is_some() {
                        "set"
                    } else {
                        "empty"
                    }
                )
            }
            FieldRef::Age => self.age(self.now).map(|a| a.to_string()),
            FieldRef::Date(_) | FieldRef::StageEnteredAt => self.instant(field).map(|i| {
                i.with_timezone(&self.plan.timezone)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            }),
            FieldRef::BirthDate => self.patient.birth_date.map(|d| d.to_string()),
            FieldRef::OptedOut => Some(self.patient.opted_out.to_string()),
            _ => self.text(field, name).map(str::to_owned),
        };
        format!("{name} is {}", value.unwrap_or_else(|| "empty".to_owned()))
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
            Leaf::Script(_) => unreachable!("scripts are evaluated by `test`"),
        }
    }

    fn is_set(&self, field: FieldRef) -> bool {
        let p = self.patient;
        match field {
            FieldRef::Id => true,
            FieldRef::Name => p.name.is_some(),
            FieldRef::LineUserId => p.line_user_id.is_some(),
            FieldRef::Stage => p.stage.is_some(),
            FieldRef::StageEnteredAt | FieldRef::Date(_) => self.instant(field).is_some(),
            FieldRef::BirthDate | FieldRef::Age => p.birth_date.is_some(),
            FieldRef::Tags => !p.tags.is_empty(),
            FieldRef::OptedOut => p.opted_out,
            FieldRef::Field(i) => p.fields.get(i).is_some_and(Option::is_some),
            FieldRef::Other => false,
        }
    }

    pub(super) fn instant(&self, field: FieldRef) -> Option<DateTime<Utc>> {
        match field {
            FieldRef::StageEnteredAt => self.patient.stage_entered_at,
            FieldRef::Date(i) => self.patient.dates.get(i).copied().flatten(),
            _ => None,
        }
    }

    fn text<'a>(&'a self, field: FieldRef, name: &str) -> Option<&'a str> {
        let p = self.patient;
        match field {
            FieldRef::Id => Some(p.id.as_str()),
            FieldRef::Name => p.name.as_deref(),
            FieldRef::LineUserId => p.line_user_id.as_deref(),
            FieldRef::Stage => p.stage.map(|s| self.plan.schema.stages[s].as_str()),
            FieldRef::Field(i) => p.fields.get(i).and_then(|f| f.as_deref()),
            FieldRef::Other => p.other.get(name).map(String::as_str),
            _ => None,
        }
    }

    /// Whole years of age on the clinic's calendar day of `at`.
    pub(super) fn age(&self, at: DateTime<Utc>) -> Option<i64> {
        let birth = self.patient.birth_date?;
        Some(age_on(
            birth,
            at.with_timezone(&self.plan.timezone).date_naive(),
        ))
    }

    fn compare(&self, field: FieldRef, value: &Value, at: DateTime<Utc>) -> Option<Ordering> {
        match (field, value) {
            (FieldRef::Age, Value::Number(n)) => (self.age(at)? as f64).partial_cmp(n),
            (FieldRef::StageEnteredAt | FieldRef::Date(_), Value::Instant(v)) => {
                Some(self.instant(field)?.cmp(v))
            }
            (FieldRef::BirthDate, Value::Instant(v)) => {
                let birth = self.patient.birth_date?;
                let day = v.with_timezone(&self.plan.timezone).date_naive();
                Some(birth.cmp(&day))
            }
            (FieldRef::OptedOut, Value::Text(t)) => {
                Some(self.patient.opted_out.to_string().as_str().cmp(t.as_str()))
            }
            (_, value) => {
                let text = self.text(field, "")?;
                compare_text(text, value, self.plan.timezone)
            }
        }
    }
}

fn holds(op: CompareOp, ordering: Ordering) -> bool {
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

pub(super) fn age_on(birth: NaiveDate, day: NaiveDate) -> i64 {
    let mut age = i64::from(day.year() - birth.year());
    if (day.month(), day.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

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
