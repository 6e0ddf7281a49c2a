//! Small value types every stage shares: times of day, durations, comparison operators, caps
//! and quiet hours. They sit below the pipeline (this module imports none of its stages) so
//! that `plan` and `eval` can name them without reaching back into `syntax` or `check`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapPeriod {
    Day,
    Week,
}

/// How much a step matters when the cap cannot send everything on a day (or week): the cap
/// keeps higher priorities first, then earlier sends. Ordered low < normal < high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

impl Priority {
    /// The word the rules use for it.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

// A time of day is the clock's; it lives with the clock and is named here with the rest.
pub use crate::time::ClockTime;

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

/// A day of the year, `06-04`, for `every year on 06-04`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MonthDay {
    pub month: u32,
    pub day: u32,
}

impl MonthDay {
    /// Whether the day exists in some year (`02-29` does, in leap years).
    pub fn is_valid(self) -> bool {
        self.in_year(2000).is_some()
    }

    /// This day in `year`; `None` when the year does not have it (`02-29` outside leap years).
    pub fn in_year(self, year: i32) -> Option<chrono::NaiveDate> {
        chrono::NaiveDate::from_ymd_opt(year, self.month, self.day)
    }
}

impl std::fmt::Display for MonthDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}-{:02}", self.month, self.day)
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

/// The daily window in which nothing is delivered; `from > to` wraps midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub from: ClockTime,
    pub to: ClockTime,
}

impl QuietHours {
    /// Whether a clock time falls inside the window (`from` inclusive, `to` exclusive).
    pub fn contains(self, time: ClockTime) -> bool {
        let (t, from, to) = (
            time.minutes_since_midnight(),
            self.from.minutes_since_midnight(),
            self.to.minutes_since_midnight(),
        );
        if from <= to {
            from <= t && t < to
        } else {
            t >= from || t < to
        }
    }
}

/// At most `count` sends to one patient per day or week.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub count: u32,
    pub period: CapPeriod,
}
