//! The evaluator: for one patient at one instant, which sends are due when, and for every step
//! that sends nothing, why. Runs the [`TimingPlan`] without parsing or allocating per step
//! beyond the sends it returns, so a million patients evaluate in a few seconds.

mod cap;
mod consent;
mod fixed;
mod flat;
mod place;
mod reactions;
mod schedule;
mod script;
mod series;
mod test;
mod unknown;

pub use consent::Consent;
pub use reactions::{
    PatientReactions, ReactionEvent, ReactionNeeds, ReactionSend, Reactions, NO_REACTIONS,
};
pub use schedule::{anchor_name, MAX_OCCURRENCES};
pub use script::patient_map;

use chrono::{DateTime, NaiveDate, Utc};

use crate::fields::{Field, FieldRef};
use crate::plan::calendar::leave_quiet;
use crate::plan::TimingPlan;
use crate::records::PatientRecord;
use crate::time::{local_date, UnixTime, ZoneClock};

/// How far ahead `explain` looks for a step's next send; the evaluator's occurrence bound is
/// sized so that an hourly step fits in it.
pub const EXPLAIN_HORIZON_DAYS: i64 = 400;

/// The instants an evaluation looks at: `now` decides what is overdue or expired; sends are
/// reported when they go out within `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub now: DateTime<Utc>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// One message to one patient: which step, which occurrence, when it goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueSend {
    /// Index of the step in the plan.
    pub step: usize,
    /// The instant the step's timing names before `at`, quiet hours, caps or catching up move
    /// it: with the patient and the step, it identifies the send in the ledger.
    pub occurrence: DateTime<Utc>,
    /// When it goes out.
    pub at: DateTime<Utc>,
    /// After this it is no longer sent.
    pub expires: DateTime<Utc>,
    /// Index of the chosen variant in the step's `send` list.
    pub variant: usize,
    /// Why `at` is later than the step's own time, if it is.
    pub moved: Option<Moved>,
    /// The step's own time (after `at`) is before the plan's `start`: this send is recorded as
    /// skipped ("before start") and never sent; it takes no slot of the cap.
    pub before_start: bool,
}

/// A [`DueSend`] as `plan` keeps it: the instants as Unix seconds, and not why it was moved.
/// An evaluator made with [`Evaluator::in_seconds`] hands its sends out so, in
/// [`PatientOutcome::in_seconds`]: turned into chrono's instants and straight back, a
/// million patients' sends cost `plan` ~3% of its instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueSeconds {
    pub step: usize,
    pub variant: usize,
    pub occurrence: i64,
    pub at: i64,
    pub expires: i64,
    pub before_start: bool,
}

/// Why a send goes out later than its step's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// Held by quiet hours from this instant.
    QuietHours { from: DateTime<Utc> },
    /// Was due at this instant, before `now`, and goes out at the next chance.
    Overdue { due: DateTime<Utc> },
    /// The cap was full on the day (or week) of this instant.
    Cap { from: DateTime<Utc> },
    /// `at` put an `after` send at this instant, before its anchor on the anchor's own day
    /// (`after 0m at 19:00` for a 19:30 visit): it goes out at that time the next day.
    NextDay {
        from: DateTime<Utc>,
        anchor: DateTime<Utc>,
    },
}

/// Why a step sends nothing (for `explain`).
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    OptedOut,
    /// The step needs marketing consent (a promo step, or `requires consent`) and the
    /// patient's consent cell does not give it.
    NoConsent(Consent),
    NoLineUserId,
    /// The `when` condition is false; the parts that are false, as written.
    ConditionFalse(Vec<String>),
    /// The field the timing counts from is empty.
    NoAnchor(String),
    /// The step is timed `after sent STEP` and STEP was never delivered to the patient (in
    /// the year the ledger is read for): the step is not evaluated. The step's id.
    NotSentYet(String),
    /// The step needs this field, and the patient's cell for it could not be read (the step
    /// is not evaluated for them).
    Unreadable(String),
    Expired {
        due: DateTime<Utc>,
        expired: DateTime<Utc>,
    },
    /// A `before FIELD` send would go out at or after FIELD (no reminder after the
    /// appointment).
    NotBeforeAnchor {
        due: DateTime<Utc>,
        anchor: DateTime<Utc>,
    },
    /// A `before FIELD` send timed on an earlier day would go out at `at`, on FIELD's own day
    /// or later (a day-before reminder saying "tomorrow" on the day); the step does not say
    /// `even on the day`.
    OnAnchorDay {
        at: DateTime<Utc>,
        anchor: DateTime<Utc>,
    },
    /// The `unless` condition holds at the send instant.
    Unless {
        at: DateTime<Utc>,
        parts: Vec<String>,
    },
    /// The cap was full on every day until the send expired.
    Capped {
        due: DateTime<Utc>,
    },
    /// A rhai condition failed for this patient.
    Script(String),
    /// The step's time cannot be computed: it falls beyond the calendar (year ±262,000).
    BeyondCalendar,
    /// [`MAX_OCCURRENCES`] occurrences of an `every` step were
    /// looked at, through this one; the rest of a very long window was not.
    TooManyOccurrences {
        through: DateTime<Utc>,
    },
    /// Nothing falls in the window; the next send, if any, after it.
    NotInWindow {
        next: Option<DateTime<Utc>>,
    },
}

/// What one step came to for one patient, when it sends nothing in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct StepNote {
    pub step: usize,
    pub reason: Reason,
}

/// The evaluation of one patient: sends in the window in time order, and notes for steps that
/// send nothing. Reused across patients to avoid allocating.
#[derive(Debug, Default)]
pub struct PatientOutcome {
    pub sends: Vec<DueSend>,
    pub notes: Vec<StepNote>,
    /// Sends after the window, for `explain`'s "next": only an evaluator made with
    /// [`Evaluator::explaining`] fills it.
    pub later: Vec<DueSend>,
    /// Sends the history says went out already (not in `sends`).
    pub already_sent: usize,
    /// The sends in the window, from an evaluator made with [`Evaluator::in_seconds`] (which
    /// leaves `sends` empty).
    pub in_seconds: Vec<DueSeconds>,
}

impl PatientOutcome {
    pub fn clear(&mut self) {
        self.sends.clear();
        self.notes.clear();
        self.later.clear();
        self.already_sent = 0;
        self.in_seconds.clear();
    }
}

/// A send that already went out (from the ledger): it is not proposed again, and it counts
/// toward the cap of the day (or week) it went out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentBefore {
    pub step: usize,
    pub occurrence: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// Evaluates patients against one plan. Holds the rhai runtime (built only if the plan has
/// scripts) and scratch space, so one evaluator serves many patients.
pub struct Evaluator<'p> {
    plan: &'p TimingPlan,
    scripts: Option<script::ScriptRuntime>,
    scratch: schedule::Scratch,
    /// Whether to say why each step sends nothing. `plan` and `run` only need the sends (and
    /// failing scripts); building the reasons would be most of the work.
    explain: bool,
    /// Hand the sends out as [`DueSeconds`].
    in_seconds: bool,
    /// `now` on the clinic's clock, kept while the patients' `now` stays the same.
    today: Option<Today>,
    /// The clinic's zone with its table of offsets, looked up once.
    clock: ZoneClock,
    /// The fields each step reads, by step index: a patient with one of them unknown is not
    /// evaluated for the step.
    needs: Vec<unknown::StepNeeds>,
    /// The steps worth looking at for a patient in each stage, in plan order: index 0 for no
    /// stage, `s + 1` for stage `s`.
    by_stage: Vec<Vec<usize>>,
    /// Every step, in plan order.
    all_steps: Vec<usize>,
    /// The steps' conditions as flat programs, each distinct one once; for a step whose `when`
    /// starts with a stage test also the rest of it, which is all that is left to test for a
    /// patient whose stage chose the step from `by_stage` (the stage test holds there by
    /// construction).
    conditions: flat::Conditions,
    /// Test conditions by walking their trees ([`Context::test`]), not as programs: the
    /// reference the tests hold the programs to.
    by_tree: bool,
}

/// What the steps ask of `now` on the clinic's clock, worked out once per `now` rather than
/// for every step of every patient (conditions on `age`, overdue sends).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Today {
    now: DateTime<Utc>,
    /// The clinic's calendar day at `now`.
    date: NaiveDate,
    /// What placing a send needs, `now` and the first instant from it outside quiet hours
    /// (when an overdue send goes out) among it, on Unix seconds.
    frame: place::Frame,
}

impl Today {
    fn at(now: DateTime<Utc>, plan: &TimingPlan, clock: ZoneClock) -> Today {
        Today {
            now,
            date: local_date(now, plan.timezone),
            frame: place::Frame {
                clock,
                quiet: plan.quiet,
                start: plan.start.map(UnixTime::from),
                now: UnixTime::from(now),
                sendable: UnixTime::from(leave_quiet(now, plan.quiet, plan.timezone)),
            },
        }
    }
}

/// What the condition code needs: the plan, the patient and the evaluation's `now`.
pub(crate) struct Context<'a> {
    plan: &'a TimingPlan,
    patient: &'a PatientRecord,
    now: DateTime<Utc>,
    today: Today,
    explain: bool,
    /// Hand the sends out as [`DueSeconds`].
    in_seconds: bool,
    needs: &'a [unknown::StepNeeds],
    /// What the patient did, as far as reactions can see (nothing without a ledger).
    reactions: PatientReactions<'a>,
    /// The patient's marketing consent, read once: steps that need it go only with
    /// [`Consent::Given`].
    consent: Consent,
    /// The steps to look at, in plan order: every step, or (when nothing about a step whose
    /// `when` starts with another stage would be said) only those that may hold.
    steps: &'a [usize],
    /// Whether `steps` were chosen by the patient's stage: then only what is left of each
    /// step's `when` past its stage test is tested (see [`Evaluator::conditions`]).
    past_stage: bool,
    /// The steps' conditions as programs.
    conditions: &'a flat::Conditions,
    /// Test them by their trees instead (see [`Evaluator::by_tree`]).
    by_tree: bool,
    /// The patient's age on `now`'s day, once a condition has asked for it.
    age_now: Option<Option<i64>>,
}

impl<'p> Evaluator<'p> {
    /// An evaluator for sends only: notes are limited to failing scripts, expiry and caps.
    pub fn new(plan: &'p TimingPlan) -> Self {
        Evaluator {
            plan,
            scripts: None,
            scratch: schedule::Scratch::default(),
            explain: false,
            in_seconds: false,
            today: None,
            clock: ZoneClock::new(plan.timezone),
            needs: plan.steps.iter().map(unknown::needs).collect(),
            by_stage: steps_by_stage(plan),
            all_steps: (0..plan.steps.len()).collect(),
            conditions: flat::Conditions::new(&plan.steps),
            by_tree: false,
        }
    }

    /// An evaluator testing conditions by walking their trees, as before they were programs:
    /// the reference for the tests.
    #[cfg(test)]
    pub(crate) fn by_tree(plan: &'p TimingPlan, explain: bool) -> Self {
        Evaluator {
            explain,
            by_tree: true,
            ..Evaluator::new(plan)
        }
    }

    /// An evaluator for sends only, handed out as [`DueSeconds`] in
    /// [`PatientOutcome::in_seconds`].
    pub fn in_seconds(plan: &'p TimingPlan) -> Self {
        Evaluator {
            in_seconds: true,
            ..Evaluator::new(plan)
        }
    }

    /// An evaluator that also says, for every step that sends nothing, exactly why.
    pub fn explaining(plan: &'p TimingPlan) -> Self {
        Evaluator {
            explain: true,
            ..Evaluator::new(plan)
        }
    }

    pub fn plan(&self) -> &TimingPlan {
        self.plan
    }

    /// The patient's marketing consent: one cell read, no allocation. Without a `consent`
    /// field nobody consents (and `check` allows no step that needs it).
    pub fn consent(&self, patient: &PatientRecord) -> Consent {
        match self.plan.consent {
            Some(index) => consent::read(patient.fields.get(index).and_then(|f| f.as_deref())),
            None => Consent::Empty,
        }
    }

    /// Evaluates one patient into `out` (cleared first).
    pub fn evaluate(&mut self, patient: &PatientRecord, window: Window, out: &mut PatientOutcome) {
        self.evaluate_after(patient, window, &[], out);
    }

    /// Evaluates one patient who was already sent `history` (for `run`, from the ledger).
    pub fn evaluate_after(
        &mut self,
        patient: &PatientRecord,
        window: Window,
        history: &[SentBefore],
        out: &mut PatientOutcome,
    ) {
        self.evaluate_reacting(patient, window, history, PatientReactions::none(), out);
    }

    /// Evaluates one patient who was already sent `history` and did `reactions` (from the
    /// ledger's sends and events).
    pub fn evaluate_reacting(
        &mut self,
        patient: &PatientRecord,
        window: Window,
        history: &[SentBefore],
        reactions: PatientReactions<'_>,
        out: &mut PatientOutcome,
    ) {
        out.clear();
        // Checked first: an opt-out that cannot be read means "do not send", and says why.
        let gate = if patient.unknown.contains(FieldRef::Builtin(Field::OptedOut)) {
            Some(Reason::Unreadable(Field::OptedOut.name().to_owned()))
        } else if patient.opted_out {
            Some(Reason::OptedOut)
        } else if patient.line_user_id.is_none() {
            Some(Reason::NoLineUserId)
        } else {
            None
        };
        if let Some(reason) = gate {
            // Without explaining, only an unreadable opt-out is worth a note per step (the
            // pass counts those); an opted-out patient or one without a LINE id is 8% of an
            // export, and thirty notes each were made only to be dropped.
            if !self.explain && !matches!(reason, Reason::Unreadable(_)) {
                return;
            }
            for step in &self.plan.steps {
                out.notes.push(StepNote {
                    step: step.index,
                    reason: reason.clone(),
                });
            }
            return;
        }
        let today = match self.today {
            Some(today) if today.now == window.now => today,
            _ => *self
                .today
                .insert(Today::at(window.now, self.plan, self.clock)),
        };
        // A step whose `when` starts with another stage says nothing to `plan` or `run` (its
        // condition is false before anything else in it is read), unless the patient has a
        // cell the step needs unread: that is said before the condition is tested.
        let by_stage = match (self.explain, patient.unknown.is_empty()) {
            (false, true) => patient.stage.map_or(Some(&self.by_stage[0]), |stage| {
                self.by_stage.get(stage + 1)
            }),
            _ => None,
        };
        let mut context = Context {
            plan: self.plan,
            patient,
            now: window.now,
            today,
            explain: self.explain,
            in_seconds: self.in_seconds,
            needs: &self.needs,
            reactions,
            consent: self.consent(patient),
            steps: by_stage.unwrap_or(&self.all_steps),
            past_stage: by_stage.is_some(),
            conditions: &self.conditions,
            by_tree: self.by_tree,
            age_now: None,
        };
        schedule::run(
            &mut context,
            window,
            history,
            &mut self.scripts,
            &mut self.scratch,
            out,
        );
    }
}

/// For each stage (index 0: no stage, `s + 1`: stage `s`), the steps whose `when` may hold for
/// a patient in it: all but those whose `when` is, or starts with (`and` tests in order), a
/// stage test that leaves the stage out.
fn steps_by_stage(plan: &TimingPlan) -> Vec<Vec<usize>> {
    let first_stage_test = |test: &crate::plan::Test| {
        use crate::plan::{Leaf, Test};
        let first = match test {
            Test::And(tests) => tests.first(),
            leaf => Some(leaf),
        };
        match first {
            Some(Test::Leaf(Leaf::StageIn(stages), _)) => Some(stages.clone()),
            _ => None,
        }
    };
    let gates: Vec<Option<Vec<usize>>> = plan
        .steps
        .iter()
        .map(|step| first_stage_test(&step.when))
        .collect();
    (0..=plan.schema.stages.len())
        .map(|slot| {
            let may_hold = |gate: &Option<Vec<usize>>| match (gate, slot.checked_sub(1)) {
                (None, _) => true,
                (Some(stages), Some(stage)) => stages.contains(&stage),
                (Some(_), None) => false,
            };
            (0..gates.len()).filter(|&i| may_hold(&gates[i])).collect()
        })
        .collect()
}

/// The variant a patient gets for a step: a stable hash of (patient id, step id) into 0..100,
/// so every run and every worker agree without storing anything.
pub fn variant_bucket(patient_id: &str, step_id: &str) -> u32 {
    // FNV-1a, 64-bit: tiny, and its output never changes between Rust versions.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in patient_id.bytes().chain([0xff]).chain(step_id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % 100) as u32
}

#[cfg(test)]
mod extremes;
#[cfg(test)]
mod repeat_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod timing_tests;
#[cfg(test)]
mod unknown_tests;
#[cfg(test)]
mod vocabulary_tests;
