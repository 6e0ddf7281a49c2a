//! The typed syntax tree of a `.step` file. It says what was written and where; whether it makes
//! sense (known stages, valid times, templates that exist) is `check`'s job.

use crate::source::{Span, Spanned};

pub type Ident = Spanned<String>;

/// A parsed `.step` file: its statements in source order.
#[derive(Debug, Clone, Default)]
pub struct RuleFile {
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
pub enum Statement {
    /// `clinic "さくら内科クリニック"`: the name templates see as `{{ clinic }}`.
    Clinic(Spanned<String>),
    /// `timezone "Asia/Tokyo"`: the IANA zone in which `at` times and days are counted.
    Timezone(Spanned<String>),
    /// `quiet 21:00-09:00`: a daily window in which nothing is delivered.
    Quiet {
        from: Spanned<ClockTime>,
        to: Spanned<ClockTime>,
        span: Span,
    },
    /// `cap 2 per day`: at most this many sends to one patient per period.
    Cap {
        count: Spanned<u32>,
        period: Spanned<CapPeriod>,
        span: Span,
    },
    /// `stages booked, first_visit`: the care stages a patient record can be in.
    Stages(Vec<Ident>),
    /// `dates appointment_at, visited_at`: patient columns holding instants that timings can
    /// be anchored to.
    Dates(Vec<Ident>),
    /// `fields doctor, department`: other patient columns that conditions and templates use.
    Fields(Vec<Ident>),
    Step(Box<StepDecl>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapPeriod {
    Day,
    Week,
}

// A time of day is the clock's, not the syntax tree's; the parser builds it from there.
pub use crate::time::ClockTime;

/// One step: which patients, when, what to send, and what stops it.
#[derive(Debug, Clone)]
pub struct StepDecl {
    /// `step ID:`; `None` for the unnamed form, which gets a derived id.
    pub name: Option<Ident>,
    pub when: Spanned<Condition>,
    pub timing: Timing,
    pub send: Vec<Variant>,
    pub unless: Vec<Spanned<Condition>>,
    pub within: Vec<Spanned<Duration>>,
    pub span: Span,
}

/// A `when` or `unless` condition. `and` and `or` chains are flat lists (two or more
/// operands), so that a chain of any length is walked without recursion; only parentheses and
/// `not` nest, at most [`MAX_NESTING`](super::MAX_NESTING) deep.
#[derive(Debug, Clone)]
pub enum Condition {
    /// `a and b and …`: every operand holds.
    And(Vec<Spanned<Condition>>),
    /// `a or b or …`: some operand holds.
    Or(Vec<Spanned<Condition>>),
    Not(Box<Spanned<Condition>>),
    /// `field op value`, e.g. `stage=booked`, `age >= 40`.
    Compare {
        field: Ident,
        op: Spanned<CompareOp>,
        value: Spanned<Literal>,
    },
    /// `field in (a, b)`.
    In {
        field: Ident,
        values: Vec<Spanned<Literal>>,
    },
    /// A bare field name: the field is set (not empty).
    IsSet(Ident),
    /// `rhai { ... }`: the span is that of the code between the braces.
    Script(Spanned<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }

    pub fn is_equality(self) -> bool {
        matches!(self, CompareOp::Eq | CompareOp::Ne)
    }
}

/// A value on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Number(f64),
    String(String),
    /// `2026-04-01`
    Date(chrono::NaiveDate),
    /// `2026-04-01T10:00`, in the clinic's time zone.
    DateTime(chrono::NaiveDateTime),
    /// A bare word, e.g. the `booked` in `stage=booked`.
    Symbol(String),
}

impl Literal {
    pub fn kind(&self) -> &'static str {
        match self {
            Literal::Number(_) => "a number",
            Literal::String(_) => "a string",
            Literal::Date(_) | Literal::DateTime(_) => "a date",
            Literal::Symbol(_) => "a name",
        }
    }
}

/// When a step fires, relative to what.
#[derive(Debug, Clone)]
pub struct Timing {
    pub anchor: Anchor,
    pub at: Option<Spanned<ClockTime>>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum Anchor {
    /// `after D`: D after the patient entered the current stage.
    AfterStageEntry(Spanned<Duration>),
    /// `every D`: stage entry + k·D for k = 1, 2, …
    Every(Spanned<Duration>),
    /// `D after FIELD`
    AfterField(Spanned<Duration>, Ident),
    /// `D before FIELD`
    BeforeField(Spanned<Duration>, Ident),
}

impl Anchor {
    pub fn duration(&self) -> &Spanned<Duration> {
        match self {
            Anchor::AfterStageEntry(d)
            | Anchor::Every(d)
            | Anchor::AfterField(d, _)
            | Anchor::BeforeField(d, _) => d,
        }
    }

    pub fn field(&self) -> Option<&Ident> {
        match self {
            Anchor::AfterField(_, field) | Anchor::BeforeField(_, field) => Some(field),
            _ => None,
        }
    }
}

/// A calendar-aware length of time: months and years follow the calendar (3mo after Nov 30 is
/// Feb 28/29), the rest are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Duration {
    pub amount: u32,
    pub unit: DurationUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DurationUnit {
    Minutes,
    Hours,
    Days,
    Weeks,
    Months,
    Years,
}

impl DurationUnit {
    /// The largest amount steprule takes in this unit: 100 years. Every timing a clinic has
    /// (a check-up at 65 counted from `birth_date`) fits, and every instant it yields stays far
    /// inside the calendar the evaluator can compute with.
    pub fn max_amount(self) -> u32 {
        match self {
            DurationUnit::Minutes => 52_560_000,
            DurationUnit::Hours => 876_000,
            DurationUnit::Days => 36_500,
            DurationUnit::Weeks => 5_214,
            DurationUnit::Months => 1_200,
            DurationUnit::Years => 100,
        }
    }

    pub fn suffix(self) -> &'static str {
        match self {
            DurationUnit::Minutes => "m",
            DurationUnit::Hours => "h",
            DurationUnit::Days => "d",
            DurationUnit::Weeks => "w",
            DurationUnit::Months => "mo",
            DurationUnit::Years => "y",
        }
    }
}

/// The range of a duration, as `check` states it in its help texts.
pub const DURATION_RANGE: &str =
    "a duration goes up to 100 years: `100y`, `1200mo`, `5214w`, `36500d`, `876000h` or `52560000m`";

impl Duration {
    /// Whether the amount is within [`DurationUnit::max_amount`].
    pub fn in_range(self) -> bool {
        self.amount <= self.unit.max_amount()
    }

    /// The longest this duration can be, in minutes: a month counts 31 days and a year 12 such
    /// months, so that comparing two durations this way never calls a longer one shorter.
    pub fn longest_minutes(self) -> u64 {
        let amount = u64::from(self.amount);
        match self.unit {
            DurationUnit::Months => amount * 31 * 24 * 60,
            DurationUnit::Years => amount * 12 * 31 * 24 * 60,
            _ => self.fixed_minutes().unwrap_or(u64::MAX),
        }
    }

    /// Fixed-length durations in minutes; `None` for months and years, whose length depends on
    /// the calendar.
    pub fn fixed_minutes(self) -> Option<u64> {
        let amount = u64::from(self.amount);
        match self.unit {
            DurationUnit::Minutes => Some(amount),
            DurationUnit::Hours => Some(amount * 60),
            DurationUnit::Days => Some(amount * 24 * 60),
            DurationUnit::Weeks => Some(amount * 7 * 24 * 60),
            DurationUnit::Months | DurationUnit::Years => None,
        }
    }

    /// Calendar months, for months and years.
    pub fn calendar_months(self) -> Option<u32> {
        match self.unit {
            DurationUnit::Months => Some(self.amount),
            DurationUnit::Years => self.amount.checked_mul(12),
            _ => None,
        }
    }
}

impl std::fmt::Display for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.suffix())
    }
}

/// One template to send, with its share of patients when there are several (`A 50% | B 50%`).
#[derive(Debug, Clone)]
pub struct Variant {
    pub template: Ident,
    pub weight: Option<Spanned<u32>>,
    pub span: Span,
}
