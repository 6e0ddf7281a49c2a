//! The typed syntax tree of a `.step` file. It says what was written and where; whether it makes
//! sense (known stages, valid times, templates that exist) is `check`'s job.

use crate::source::{Span, Spanned};
pub use crate::values::{
    CapPeriod, ClockTime, CompareOp, Duration, DurationUnit, Literal, MonthDay, Priority,
    DURATION_RANGE,
};

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
    /// `track "https://go.example-clinic.jp"`: where tracked links point; turns click
    /// tracking on.
    Track(Spanned<String>),
    /// `stages booked, first_visit`: the care stages a patient record can be in.
    Stages(Vec<Ident>),
    /// `dates appointment_at, visited_at`: patient columns holding instants that timings can
    /// be anchored to.
    Dates(Vec<Ident>),
    /// `fields doctor, department`: other patient columns that conditions and templates use.
    Fields(Vec<Ident>),
    /// `bookings next_booking_at`: date fields holding a patient's next booking; `run` records
    /// a `booked` event when one moves to a new future instant.
    Bookings(Vec<Ident>),
    /// `visits visited_at`: date fields holding a patient's last visit; `run` records a
    /// `revisited` event when one moves forward.
    Visits(Vec<Ident>),
    /// `attribution 14d`: how long after a send a booking is credited to it (by `report`).
    Attribution(Spanned<Duration>),
    /// `revisit 90d`: how long after a send a visit is credited to it (by `report`).
    Revisit(Spanned<Duration>),
    /// `start 2026-12-01`: sends whose time is before this day (clinic time) are recorded as
    /// skipped and never sent, so a first run sends no backlog.
    Start(Spanned<chrono::NaiveDate>),
    /// `consent marketing_ok`: the export column holding the patient's marketing consent;
    /// promo steps are sent only to patients whose cell says yes.
    Consent(Ident),
    /// `sensitive diagnosis, medication`: declared fields holding special-care information
    /// (要配慮個人情報), kept out of previews and out of steps sent without consent.
    Sensitive(Vec<Ident>),
    Step(Box<StepDecl>),
}

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
    /// `priority high|normal|low`; more than one is reported by `check`.
    pub priority: Vec<Spanned<Priority>>,
    /// The warning codes named by `allow` clauses, as written (checked by `check`).
    pub allow: Vec<Ident>,
    /// `care` or `promo` as written; more than one is reported by `check`. Without one, the
    /// timing decides (see [`Anchor::default_purpose`]).
    pub purpose: Vec<Spanned<Purpose>>,
    /// `requires consent`: the step is sent only to patients who gave consent. Its span.
    pub needs_consent: Option<Span>,
    pub span: Span,
}

/// What a step is for, which decides who may get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The patient's own care: reminders, follow-up, notices about their visits.
    Care,
    /// Marketing: newsletters, campaigns, greetings. Sent only with marketing consent.
    Promo,
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
    /// What the patient did (`clicked survey within 3d`), as `steprule serve` recorded it.
    Reaction(Reaction),
}

/// A reaction condition: what, to which step's send, and within how long after it.
#[derive(Debug, Clone)]
pub struct Reaction {
    pub kind: ReactionKind,
    /// `within D` after the step's send; `None`: any time since it.
    pub window: Option<Spanned<Duration>>,
}

#[derive(Debug, Clone)]
pub enum ReactionKind {
    /// `clicked STEP`: a tracked link of STEP's last send was opened.
    Clicked(Ident),
    /// `answered STEP "DATA"`: a postback button of STEP's last send with this data was tapped.
    Answered(Ident, Spanned<String>),
    /// `booked since STEP`: a booking was seen after STEP's last send.
    BookedSince(Ident),
    /// `blocked`: the patient's LINE user has blocked the account.
    Blocked,
}

impl ReactionKind {
    /// The step the reaction is to, if any.
    pub fn step(&self) -> Option<&Ident> {
        match self {
            ReactionKind::Clicked(step)
            | ReactionKind::Answered(step, _)
            | ReactionKind::BookedSince(step) => Some(step),
            ReactionKind::Blocked => None,
        }
    }
}

/// When a step fires, relative to what.
#[derive(Debug, Clone)]
pub struct Timing {
    pub anchor: Anchor,
    pub at: Option<Spanned<ClockTime>>,
    /// `even on the day`: a `before` reminder may go out on the anchor's own day. Its span.
    pub on_the_day: Option<Span>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum Anchor {
    /// `after D`: D after the patient entered the current stage.
    AfterStageEntry(Spanned<Duration>),
    /// `every D`: stage entry + k·D for k = 1, 2, …
    Every(Spanned<Duration>),
    /// `every D after FIELD`: FIELD + k·D for k = 1, 2, … (a birthday, a recall); a new
    /// value of FIELD starts a new series.
    EveryAfterField(Spanned<Duration>, Ident),
    /// `D after FIELD`
    AfterField(Spanned<Duration>, Ident),
    /// `D before FIELD`
    BeforeField(Spanned<Duration>, Ident),
    /// `on 2026-12-28`: once, on that day (a year-end notice, a campaign).
    OnDate(Spanned<chrono::NaiveDate>),
    /// `every year on 06-04`: on that day each year (`02-29` only in leap years).
    Yearly(Spanned<MonthDay>),
    /// `D after sent STEP`: D after the patient's last delivered send of STEP.
    AfterSent(Spanned<Duration>, Ident),
}

impl Anchor {
    /// The duration the timing counts, for the timings that count one.
    pub fn duration(&self) -> Option<&Spanned<Duration>> {
        match self {
            Anchor::AfterStageEntry(d)
            | Anchor::Every(d)
            | Anchor::EveryAfterField(d, _)
            | Anchor::AfterField(d, _)
            | Anchor::BeforeField(d, _)
            | Anchor::AfterSent(d, _) => Some(d),
            Anchor::OnDate(_) | Anchor::Yearly(_) => None,
        }
    }

    /// What a step with this timing is for when it does not say: counted from the patient's
    /// own visits, stage or an earlier send it is care; on the calendar or repeating it is a
    /// newsletter or a campaign (promo).
    pub fn default_purpose(&self) -> Purpose {
        match self {
            Anchor::AfterStageEntry(_)
            | Anchor::AfterField(..)
            | Anchor::BeforeField(..)
            | Anchor::AfterSent(..) => Purpose::Care,
            Anchor::Every(_)
            | Anchor::EveryAfterField(..)
            | Anchor::OnDate(_)
            | Anchor::Yearly(_) => Purpose::Promo,
        }
    }

    /// Whether the step repeats (its messages then need opt-out wording).
    pub fn is_periodic(&self) -> bool {
        matches!(
            self,
            Anchor::Every(_) | Anchor::EveryAfterField(..) | Anchor::Yearly(_)
        )
    }

    pub fn field(&self) -> Option<&Ident> {
        match self {
            Anchor::AfterField(_, field)
            | Anchor::BeforeField(_, field)
            | Anchor::EveryAfterField(_, field) => Some(field),
            _ => None,
        }
    }
}

/// One template to send, with its share of patients when there are several (`A 50% | B 50%`).
#[derive(Debug, Clone)]
pub struct Variant {
    pub template: Ident,
    pub weight: Option<Spanned<u32>>,
    pub span: Span,
}
