//! From a patient's anchors to sends: occurrences of each step, `at` times, quiet hours,
//! catching up after downtime, expiry, `unless`, the cap and the variant.

use chrono::{DateTime, Utc};

use super::cap::{apply_cap, CapScratch};
use super::flat::Answers;
use super::place::{place, Candidate};
use super::script::ScriptRuntime;
use super::series::{every_occurrence, occurrence_bounds, Bounds};
use super::unknown::Part;
use super::{variant_bucket, Context, PatientOutcome, Reason, SentBefore, StepNote, Window};
use crate::fields::Field;
use crate::plan::{AnchorField, Direction, FieldRef, PlannedStep, TimingPlan};
use crate::time::{calendar_start, local_to_utc, UnixTime, ZoneClock};

/// At most this many occurrences of one `every` step are looked at per evaluation, so that no
/// window, however long, can stall a run or fill memory. The count starts at the first
/// occurrence that can still matter, never earlier; `check` keeps `every` at 1h or more and
/// `within` at most the period, so a run (a few days of slack around `now`) looks at about a
/// hundred and explain's 400 days at under 9,700. Only a longer window is cut short, at its
/// far end, with a [`Reason::TooManyOccurrences`] note.
pub const MAX_OCCURRENCES: u32 = 10_000;

/// How far `at` times and quiet hours can move a send from its step's own time.
pub(super) const SLACK_DAYS: i64 = 2;

/// How much further before `occurrence_bounds`' first instant an occurrence is skipped
/// without being placed: `at` (within its local day), the next day for an `after` send put
/// before its anchor, and quiet hours can together move a send up to about three days, so
/// twice the slack.
pub(super) const EXPIRED_MARGIN: i64 = 2 * SLACK_DAYS * 86_400;

/// How much further past `occurrence_bounds`' last instant (or past `now`, if that is later)
/// an occurrence is skipped without being placed when only `explain` would say anything of it.
/// `at` moves a send less than a day and a bit earlier than its occurrence, so such a send
/// lands over a week after both: after the window, in a later day and week than any instant
/// in it (the cap counts it against none of the window's sends), and after any send the
/// history can hold. A one-off step timed months ahead (`3mo after last_visit_at`) is such
/// for most patients.
pub(super) const LATER_MARGIN: i64 = 8 * 86_400;

#[derive(Debug, Default)]
pub(super) struct Scratch {
    candidates: Vec<Candidate>,
    cap: CapScratch,
    /// Each step's [`occurrence_bounds`] for `bounds_for`: they depend on the window alone, so
    /// they are worked out once per window, not for every patient.
    bounds: Vec<Bounds>,
    bounds_for: Option<Window>,
    /// `bounds_for`'s `from` and `to` as seconds.
    from_to: (UnixTime, UnixTime),
    /// The patient's history as seconds: each send's step and occurrence, and when each
    /// went out (for the cap).
    history: Vec<(usize, UnixTime)>,
    history_at: Vec<UnixTime>,
    /// The patient's conditions tested so far.
    answers: Answers,
    /// The patient's anchors converted so far.
    anchors: Anchors,
}

/// A patient's anchors as seconds, each converted on the first step counting from it rather
/// than for every step (a birth date is a look-up in the zone). Reused across patients.
#[derive(Debug, Default)]
struct Anchors {
    /// By date field, then `stage_entered_at` and the birth date: `None` until converted.
    seconds: Vec<Option<Option<UnixTime>>>,
}

impl Anchors {
    fn next_patient(&mut self, dates: usize) {
        self.seconds.clear();
        self.seconds.resize(dates + 2, None);
    }

    fn get(&mut self, ctx: &Context<'_>, anchor: AnchorField) -> Option<UnixTime> {
        let dates = self.seconds.len() - 2;
        let slot = match anchor {
            AnchorField::Date(i) if i < dates => i,
            AnchorField::StageEnteredAt => dates,
            AnchorField::BirthDate => dates + 1,
            // The calendar's start is one constant; a sent step's time comes from the ledger
            // and is asked for once per step anyway.
            _ => return anchor_instant(ctx, anchor).map(UnixTime::from),
        };
        *self.seconds[slot].get_or_insert_with(|| anchor_instant(ctx, anchor).map(UnixTime::from))
    }
}

pub(super) fn run(
    ctx: &mut Context<'_>,
    window: Window,
    history: &[SentBefore],
    scripts: &mut Option<ScriptRuntime>,
    scratch: &mut Scratch,
    out: &mut PatientOutcome,
) {
    let plan = ctx.plan;
    let frame = ctx.today.frame;
    // Almost every patient's cells all read: then no step needs asking which field it lacks.
    let any_unknown = !ctx.patient.unknown.is_empty();
    let conditions = ctx.conditions;
    scratch.answers.next_patient(conditions.count());
    scratch.anchors.next_patient(ctx.patient.dates.len());
    scratch.candidates.clear();
    if scratch.bounds_for != Some(window) {
        scratch.bounds = plan
            .steps
            .iter()
            .map(|step| occurrence_bounds(step, window))
            .collect();
        scratch.bounds_for = Some(window);
        scratch.from_to = (UnixTime::from(window.from), UnixTime::from(window.to));
    }
    for step in ctx.steps.iter().map(|&index| &plan.steps[index]) {
        let note = |reason| StepNote {
            step: step.index,
            reason,
        };
        // The consent gate, before anything else about the step: plan, run, preview and
        // explain all evaluate through here, so they cannot disagree on who gets a promo.
        if step.needs_consent && ctx.consent != super::Consent::Given {
            if ctx.explain {
                out.notes.push(note(Reason::NoConsent(ctx.consent)));
            }
            continue;
        }
        // Noted even when not explaining: the pass counts these per step.
        if let Some(field) = any_unknown
            .then(|| ctx.unknown_need(step, Part::When))
            .flatten()
        {
            out.notes.push(note(Reason::Unreadable(field)));
            continue;
        }
        // A step chosen by the patient's stage has its stage test behind it already.
        let when = match ctx.by_tree {
            true => ctx.test(
                conditions.when_tree(step, ctx.past_stage),
                window.now,
                scripts,
            ),
            false => {
                let id = conditions.when(step.index, ctx.past_stage);
                ctx.holds(conditions, id, frame.now, scripts, &mut scratch.answers)
            }
        };
        match when {
            Ok(true) => {}
            Ok(false) => {
                if ctx.explain {
                    let parts = ctx.why_false(&step.when, window.now, scripts);
                    out.notes.push(note(Reason::ConditionFalse(parts)));
                }
                continue;
            }
            Err(failure) => {
                out.notes.push(note(Reason::Script(failure.0)));
                continue;
            }
        }
        if let Some(field) = any_unknown
            .then(|| ctx.unknown_need(step, Part::Timing))
            .flatten()
        {
            out.notes.push(note(Reason::Unreadable(field)));
            continue;
        }
        let Some(anchor) = scratch.anchors.get(ctx, step.anchor) else {
            if let AnchorField::Sent(sent) = step.anchor {
                // Only explain says it: nothing is due and nothing is wrong, so `plan` and `run`
                // have nothing to count.
                if ctx.explain {
                    let id = plan.steps.get(sent).map_or("", |s| s.id.as_str());
                    out.notes.push(note(Reason::NotSentYet(id.to_owned())));
                }
                continue;
            }
            if ctx.explain {
                out.notes
                    .push(note(Reason::NoAnchor(anchor_name(plan, step.anchor))));
            }
            continue;
        };
        let before = scratch.candidates.len();
        let mut problem = None;
        let candidates = &mut scratch.candidates;
        let bounds = scratch.bounds[step.index];
        // An occurrence this far before the first that can still matter (`occurrence_bounds`)
        // has expired before `now` wherever `at`, the next day and quiet hours put it (each
        // moves it less than a day and a bit): `place` would refuse it. Most one-off steps of
        // a long-registered patient are such, and only `explain` says why they send nothing.
        let expired_before = match ctx.explain {
            true => None,
            false => bounds.0.plus_seconds(-EXPIRED_MARGIN),
        };
        // A scripted `unless` is run for every candidate, and its failures are counted.
        let beyond = match ctx.explain || conditions.unless_scripted(step.index) {
            true => None,
            false => bounds.1.max(frame.now).plus_seconds(LATER_MARGIN),
        };
        let occurrences = for_each_occurrence(step, anchor, bounds, frame.clock, |nominal| {
            let too_early = expired_before.is_some_and(|first| nominal < first);
            if too_early || beyond.is_some_and(|last| nominal > last) {
                return;
            }
            match place(step, nominal, anchor, &frame) {
                Ok(send) => candidates.push(send),
                Err(refused) => problem = Some(refused),
            }
        });
        let beyond_calendar = matches!(occurrences, Occurrences::BeyondCalendar);
        if let Occurrences::Cut { last } = occurrences {
            out.notes
                .push(note(Reason::TooManyOccurrences { through: last }));
        }
        if ctx.explain && scratch.candidates.len() == before {
            let reason = match (beyond_calendar, problem) {
                (true, _) => Reason::BeyondCalendar,
                (false, Some(refused)) => refused.reason(),
                (false, None) => Reason::NotInWindow { next: None },
            };
            out.notes.push(note(reason));
        }
    }
    scratch.candidates.sort_by_key(|c| (c.at, c.step));
    let mut candidates = std::mem::take(&mut scratch.candidates);
    if !history.is_empty() {
        scratch.history.clear();
        scratch.history.extend(
            history
                .iter()
                .map(|h| (h.step, UnixTime::from(h.occurrence))),
        );
        let seen = &scratch.history;
        let before = candidates.len();
        candidates.retain(|c| {
            !seen
                .iter()
                .any(|&(step, occurrence)| step == c.step && occurrence == c.occurrence)
        });
        out.already_sent = before - candidates.len();
    }
    let answers = &mut scratch.answers;
    candidates.retain(|send| {
        let step = &plan.steps[send.step];
        let Some(unless) = &step.unless else {
            return true;
        };
        let unless_holds = match (ctx.by_tree, conditions.unless(step.index)) {
            (false, Some(id)) => ctx.holds(conditions, id, send.at, scripts, answers),
            _ => ctx.test(unless, send.at.utc(), scripts),
        };
        let reason = match unless_holds {
            Ok(false) => return true,
            Ok(true) if !ctx.explain => return false,
            Ok(true) => Reason::Unless {
                at: send.at.utc(),
                parts: ctx.why_true(unless, send.at.utc()),
            },
            Err(failure) => Reason::Script(failure.0),
        };
        out.notes.push(StepNote {
            step: step.index,
            reason,
        });
        false
    });
    if let Some(cap) = plan.cap {
        scratch.history_at.clear();
        scratch
            .history_at
            .extend(history.iter().map(|h| UnixTime::from(h.at)));
        let sent = &scratch.history_at;
        apply_cap(
            &mut candidates,
            cap,
            plan,
            frame.clock,
            sent,
            &mut scratch.cap,
            out,
        );
    }
    let (from, to) = scratch.from_to;
    for send in candidates.drain(..) {
        // Only `explain` says when a step sends next: `plan` and `run` (a tenth of the
        // candidates at a million patients) do not build the sends after the window.
        let later = send.at >= to;
        if send.at < from || (later && !ctx.explain) {
            continue;
        }
        let step = &plan.steps[send.step];
        let bucket = variant_bucket(&ctx.patient.id, &step.id);
        let variant = step
            .variants
            .iter()
            .position(|v| bucket < v.upto)
            .unwrap_or(step.variants.len() - 1);
        if ctx.in_seconds && !later {
            out.in_seconds.push(send.in_seconds(variant));
            continue;
        }
        let send = send.due_send(variant);
        match later {
            true => out.later.push(send),
            false => out.sends.push(send),
        }
    }
    scratch.candidates = candidates;
    if !ctx.explain {
        return;
    }
    for step in &plan.steps {
        let has_send = out.sends.iter().any(|s| s.step == step.index);
        let has_note = out.notes.iter().any(|n| n.step == step.index);
        if !has_send && !has_note {
            let next = out
                .later
                .iter()
                .find(|s| s.step == step.index)
                .map(|s| s.at);
            out.notes.push(StepNote {
                step: step.index,
                reason: Reason::NotInWindow { next },
            });
        }
    }
}

fn anchor_instant(ctx: &Context<'_>, anchor: AnchorField) -> Option<DateTime<Utc>> {
    match anchor {
        AnchorField::StageEnteredAt => ctx.instant(FieldRef::Builtin(Field::StageEnteredAt)),
        AnchorField::Date(i) => ctx.instant(FieldRef::Date(i)),
        // A calendar step counts from no field; its days are its own (see `fixed`).
        AnchorField::Calendar => Some(calendar_start()),
        AnchorField::Sent(step) => ctx.sent_anchor(step),
        AnchorField::BirthDate => {
            let birth = ctx.patient.birth_date?;
            Some(local_to_utc(
                birth.and_time(chrono::NaiveTime::MIN),
                ctx.plan.timezone,
            ))
        }
    }
}

/// The name of the field a step counts from, as the rules write it.
pub fn anchor_name(plan: &TimingPlan, anchor: AnchorField) -> String {
    match anchor {
        AnchorField::StageEnteredAt => Field::StageEnteredAt.name().to_owned(),
        AnchorField::BirthDate => Field::BirthDate.name().to_owned(),
        AnchorField::Date(i) => plan.schema.date_fields[i].clone(),
        AnchorField::Calendar => "the calendar".to_owned(),
        AnchorField::Sent(step) => format!(
            "sent {}",
            plan.steps.get(step).map_or("", |s| s.id.as_str())
        ),
    }
}

/// Whether every occurrence that matters for the window was looked at.
pub(super) enum Occurrences {
    Complete,
    /// The step's time cannot be computed: it is beyond the calendar (only for durations
    /// `check` rejects, or absurd anchor dates).
    BeyondCalendar,
    /// [`MAX_OCCURRENCES`] were looked at, through this one, and more were left.
    Cut {
        last: DateTime<Utc>,
    },
}

/// Calls `each` with the step's own instants that can matter for this window, in order.
fn for_each_occurrence(
    step: &PlannedStep,
    anchor: UnixTime,
    bounds: Bounds,
    clock: ZoneClock,
    mut each: impl FnMut(UnixTime),
) -> Occurrences {
    let backwards = match step.direction {
        Direction::After => false,
        Direction::Before => true,
        Direction::Every => return every_occurrence(step, anchor, bounds, clock, each),
        Direction::On(day) => {
            each(UnixTime::from(super::fixed::day_start(day, clock.tz())));
            return Occurrences::Complete;
        }
        Direction::Yearly(day) => return super::fixed::yearly(day, bounds, clock.tz(), each),
    };
    match clock.shift(anchor, step.offset, backwards) {
        Some(nominal) => {
            each(nominal);
            Occurrences::Complete
        }
        None => Occurrences::BeyondCalendar,
    }
}
