//! Conditions as the evaluator runs them: `check`'s lowered conditions (fields resolved, stages
//! indexed, scripts compiled) with every literal typed in the clinic's time zone.

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::check;
use crate::time::local_to_utc;
use crate::values::Literal;

pub use crate::fields::FieldRef;

/// A compiled condition: each leaf keeps its source text so `explain` can say which part was
/// false.
pub type Test = check::Test<Value>;
pub type Leaf = check::Leaf<Value>;

/// A typed literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Text(String),
    Instant(DateTime<Utc>),
}

/// Types the literals of a checked condition.
pub(super) fn compile(condition: &check::Test<Literal>, tz: Tz) -> Test {
    condition.map(&mut |literal| typed(literal, tz))
}

fn typed(literal: &Literal, tz: Tz) -> Value {
    match literal {
        Literal::Number(n) => Value::Number(*n),
        Literal::String(s) | Literal::Symbol(s) => Value::Text(s.clone()),
        Literal::Date(d) => Value::Instant(local_to_utc(d.and_time(NaiveTime::MIN), tz)),
        Literal::DateTime(dt) => Value::Instant(local_to_utc(*dt, tz)),
    }
}
