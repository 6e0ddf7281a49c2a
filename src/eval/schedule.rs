//! From a patient's anchors to sends: occurrences of each step, `at` times, quiet hours,
//! catching up after downtime, expiry, `unless`, the cap and the variant.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use chrono_tz::Tz;

use super::script::ScriptRuntime;
use super::series::{every_occurrence, occurrence_bounds, Bounds};
use super::unknown::Part;
use super::{
    variant_bucket, Context, DueSend, Moved, PatientOutcome, Reason, SentBefore, StepNote, Today,
    Window,
};
use crate::fields::Field;
use crate::plan::calendar::leave_quiet;
use crate::plan::{AnchorField, Direction, FieldRef, Offset, PlannedStep, TimingPlan};
use crate::time::{
    at_time, calendar_end, calendar_start, local_date, local_to_utc, next_day, next_week, shift,
};
use crate::values::{Cap, CapPeriod, Priority};

/// At most this many occurrences of one `every` step are looked at per evaluation, so that no
/// window, however long, can stall a run or fill memory. The count starts at the first
/// occurrence that can still matter, never earlier; `check` keeps `every` at 1h or more and
/// `within` at most the period, so a run (a few days of slack around `now`) looks at about a
/// hundred and explain's 400 days at under 9,700. Only a longer window is cut short, at its
/// far end, with a [`Reason::TooManyOccurrences`] note.
pub const MAX_OCCURRENCES: u32 = 10_000;

/// How many times the cap may move sends to a later day (or week) in one evaluation. Rules
/// that pass `check` need a few hundred at most: a send moves only until its `within` ends,
/// and an `every` step's `within` is at most its period. Sends that would need more moves are
/// dropped by the cap, so that nothing can walk the calendar one day at a time for ever.
const MAX_CAP_MOVES: u32 = 100_000;

/// How far `at` times and quiet hours can move a send from its step's own time.
pub(super) const SLACK_DAYS: i64 = 2;

#[derive(Debug, Default)]
pub(super) struct Scratch {
    candidates: Vec<DueSend>,
    cap: CapScratch,
    /// Each step's [`occurrence_bounds`] for `bounds_for`: they depend on the window alone, so
    /// they are worked out once per window, not for every patient.
    bounds: Vec<Bounds>,
    bounds_for: Option<Window>,
}

/// The cap's working space, kept across patients so that capping allocates nothing once warm.
#[derive(Debug, Default)]
struct CapScratch {
    periods: HashMap<NaiveDate, u32, BuildHasherDefault<DayHasher>>,
    pending: Vec<DueSend>,
    queue: BinaryHeap<Reverse<CapOrder>>,
}

/// A hasher for calendar days: a day is one small integer, so SipHash's protection against
/// chosen keys buys nothing here and costs a third of a capped evaluation.
#[derive(Debug, Default)]
struct DayHasher(u64);

impl Hasher for DayHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_i32(&mut self, n: i32) {
        // Spread consecutive days over the table's buckets.
        self.0 = (self.0 ^ u64::from(n as u32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
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
    let today = ctx.today;
    // Almost every patient's cells all read: then no step needs asking which field it lacks.
    let any_unknown = !ctx.patient.unknown.is_empty();
    scratch.candidates.clear();
    if scratch.bounds_for != Some(window) {
        scratch.bounds = plan
            .steps
            .iter()
            .map(|step| occurrence_bounds(step, window))
            .collect();
        scratch.bounds_for = Some(window);
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
        let when = match ctx.past_stage.and_then(|rest| rest[step.index].as_ref()) {
            Some(rest) => rest,
            None => &step.when,
        };
        match ctx.test(when, window.now, scripts) {
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
        let Some(anchor) = anchor_instant(ctx, step.anchor) else {
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
        let occurrences = for_each_occurrence(step, anchor, bounds, plan.timezone, |nominal| {
            match place(step, nominal, anchor, today, plan) {
                Ok(send) => candidates.push(send),
                Err(reason) => problem = Some(reason),
            }
        });
        match occurrences {
            Occurrences::Complete => {}
            Occurrences::BeyondCalendar => problem = Some(Reason::BeyondCalendar),
            Occurrences::Cut { last } => out
                .notes
                .push(note(Reason::TooManyOccurrences { through: last })),
        }
        if ctx.explain && scratch.candidates.len() == before {
            out.notes
                .push(note(problem.unwrap_or(Reason::NotInWindow { next: None })));
        }
    }
    scratch.candidates.sort_by_key(|c| (c.at, c.step));
    let mut candidates = std::mem::take(&mut scratch.candidates);
    if !history.is_empty() {
        let before = candidates.len();
        candidates.retain(|c| {
            !history
                .iter()
                .any(|h| h.step == c.step && h.occurrence == c.occurrence)
        });
        out.already_sent = before - candidates.len();
    }
    candidates.retain(|send| {
        let step = &plan.steps[send.step];
        let Some(unless) = &step.unless else {
            return true;
        };
        let reason = match ctx.test(unless, send.at, scripts) {
            Ok(false) => return true,
            Ok(true) if !ctx.explain => return false,
            Ok(true) => Reason::Unless {
                at: send.at,
                parts: ctx.why_true(unless, send.at),
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
        apply_cap(&mut candidates, cap, plan, history, &mut scratch.cap, out);
    }
    for mut send in candidates.drain(..) {
        let step = &plan.steps[send.step];
        let bucket = variant_bucket(&ctx.patient.id, &step.id);
        send.variant = step
            .variants
            .iter()
            .position(|v| bucket < v.upto)
            .unwrap_or(step.variants.len() - 1);
        if send.at >= window.to {
            out.later.push(send);
        } else if send.at >= window.from {
            out.sends.push(send);
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
    anchor: DateTime<Utc>,
    bounds: Bounds,
    tz: Tz,
    mut each: impl FnMut(DateTime<Utc>),
) -> Occurrences {
    let backwards = match step.direction {
        Direction::After => false,
        Direction::Before => true,
        Direction::Every => return every_occurrence(step, anchor, bounds, tz, each),
        Direction::On(day) => {
            each(super::fixed::day_start(day, tz));
            return Occurrences::Complete;
        }
        Direction::Yearly(day) => return super::fixed::yearly(day, bounds, tz, each),
    };
    match shift(anchor, step.offset, backwards, tz) {
        Some(nominal) => {
            each(nominal);
            Occurrences::Complete
        }
        None => Occurrences::BeyondCalendar,
    }
}

/// Where one occurrence lands: `at` time, quiet hours, expiry, catching up.
fn place(
    step: &PlannedStep,
    nominal: DateTime<Utc>,
    anchor: DateTime<Utc>,
    today: Today,
    plan: &TimingPlan,
) -> Result<DueSend, Reason> {
    let tz = plan.timezone;
    let mut timed = step.at.map_or(nominal, |at| at_time(nominal, at, tz));
    let mut next_day = None;
    // `after 0m at 19:00` for a 19:30 visit: 19:00 that day is before the visit, so the send
    // goes out at 19:00 the next day. Only `at` can put an `after` send before its anchor.
    if step.direction == Direction::After && timed < anchor {
        if let Some(later) = shift(timed, Offset::Days(1), false, tz) {
            next_day = Some(Moved::NextDay {
                from: timed,
                anchor,
            });
            timed = later;
        }
    }
    let due = leave_quiet(timed, plan.quiet, tz);
    let mut moved = match due != timed {
        true => Some(Moved::QuietHours { from: timed }),
        false => next_day,
    };
    // A window that would end beyond the calendar ends with it, which is never.
    let mut expires = shift(due, step.sendable_for, false, tz).unwrap_or_else(calendar_end);
    // A reminder timed on a day before its anchor's day is never sent on that day or later:
    // "see you tomorrow" must not arrive on the day.
    let mut day_bound = None;
    if step.direction == Direction::Before {
        if due >= anchor {
            return Err(Reason::NotBeforeAnchor { due, anchor });
        }
        // The anchor's day starts less than two days before the anchor in every zone: a send
        // whose window closes earlier than that cannot reach the anchor's day, and most
        // reminders (`3d before … at 12:00`) skip the two calendar look-ups.
        let clear_of_the_day = expires
            .checked_add_signed(chrono::Duration::hours(48))
            .is_some_and(|late| late <= anchor);
        let bound = match step.on_the_day || clear_of_the_day {
            true => anchor,
            false => start_of_earlier_day(timed, anchor, tz).unwrap_or(anchor),
        };
        if bound < anchor {
            day_bound = Some(bound);
        }
        if due >= bound {
            return Err(Reason::OnAnchorDay { at: due, anchor });
        }
        expires = expires.min(bound);
    }
    let mut at = due;
    if at < today.now {
        at = today.sendable;
        moved = Some(Moved::Overdue { due });
    }
    if at >= expires {
        return Err(match day_bound {
            Some(bound) if at >= bound => Reason::OnAnchorDay { at, anchor },
            _ => Reason::Expired {
                due,
                expired: expires,
            },
        });
    }
    Ok(DueSend {
        step: step.index,
        occurrence: nominal,
        at,
        expires,
        variant: 0,
        moved,
        before_start: plan.start.is_some_and(|start| timed < start),
    })
}

/// The start of the anchor's local day, when `timed` falls on an earlier day; `None` when it
/// is on the anchor's day already (`2h before appointment_at`).
fn start_of_earlier_day(
    timed: DateTime<Utc>,
    anchor: DateTime<Utc>,
    tz: Tz,
) -> Option<DateTime<Utc>> {
    let day = local_date(anchor, tz);
    (local_date(timed, tz) < day).then(|| local_to_utc(day.and_time(chrono::NaiveTime::MIN), tz))
}

/// The order the cap hands out its slots in: period by period (the day or week a send falls
/// in), and within one, higher priority first, then time, file order and occurrence; the last
/// field is the send's index.
type CapOrder = (
    NaiveDate,
    Reverse<Priority>,
    DateTime<Utc>,
    usize,
    DateTime<Utc>,
    usize,
);

/// Keeps at most `cap.count` sends per local day (or week), higher priority first, then
/// earlier; the rest move to the start of the next period with room (out of quiet hours), or
/// are dropped once expired. The kept sends come back in time order.
fn apply_cap(
    sends: &mut Vec<DueSend>,
    cap: Cap,
    plan: &TimingPlan,
    history: &[SentBefore],
    scratch: &mut CapScratch,
    out: &mut PatientOutcome,
) {
    // Fewer sends than the cap allows, counting those already sent: nothing can be held back.
    // The order is the one the queue below would give.
    if sends.len() + history.len() <= cap.count as usize {
        sends.sort_by_key(|send| (send.at, send.step, send.occurrence));
        return;
    }
    let CapScratch {
        periods,
        pending,
        queue,
    } = scratch;
    periods.clear();
    let tz = plan.timezone;
    let period = |at: DateTime<Utc>| {
        let date = local_date(at, tz);
        match cap.period {
            CapPeriod::Day => date,
            CapPeriod::Week => date
                .checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday())))
                .unwrap_or(date),
        }
    };
    for sent in history {
        *periods.entry(period(sent.at)).or_default() += 1;
    }
    let next_start = |at: DateTime<Utc>| {
        let start = match cap.period {
            CapPeriod::Day => next_day(at, tz),
            CapPeriod::Week => next_week(at, tz),
        };
        start.map(|start| leave_quiet(start, plan.quiet, tz))
    };
    let order = |send: &DueSend, index: usize| {
        let priority = plan.steps[send.step].priority;
        Reverse((
            period(send.at),
            Reverse(priority),
            send.at,
            send.step,
            send.occurrence,
            index,
        ))
    };
    // A send of the same step at the same time goes in occurrence order.
    pending.clear();
    pending.append(sends);
    queue.clear();
    queue.extend(
        pending
            .iter()
            .enumerate()
            .map(|(index, send)| order(send, index)),
    );
    let mut moves_left = MAX_CAP_MOVES;
    while let Some(Reverse((.., index))) = queue.pop() {
        let send = &mut pending[index];
        // Never sent, so it takes no slot.
        if send.before_start {
            sends.push(send.clone());
            continue;
        }
        let used = periods.entry(period(send.at)).or_default();
        if *used < cap.count {
            *used += 1;
            sends.push(send.clone());
            continue;
        }
        // Straight past the periods that are full already: a send that never expires must
        // not walk the calendar one day at a time.
        let full = |at: DateTime<Utc>| {
            periods
                .get(&period(at))
                .is_some_and(|used| *used >= cap.count)
        };
        let mut next = next_start(send.at);
        while let Some(at) = next.filter(|at| *at < send.expires && full(*at)) {
            next = next_start(at).filter(|_| moves_left > 0);
            moves_left = moves_left.saturating_sub(1);
        }
        moves_left = moves_left.saturating_sub(1);
        match next.filter(|next| *next < send.expires && moves_left > 0) {
            Some(next) => {
                if send.moved.is_none() || matches!(send.moved, Some(Moved::QuietHours { .. })) {
                    send.moved = Some(Moved::Cap { from: send.at });
                }
                send.at = next;
                queue.push(order(send, index));
            }
            None => out.notes.push(StepNote {
                step: send.step,
                reason: Reason::Capped {
                    due: match send.moved {
                        Some(Moved::Cap { from }) => from,
                        _ => send.at,
                    },
                },
            }),
        }
    }
    // Handed out by priority within a period; every later stage reads them in time order.
    // Unstable is exact here (no two sends share a step and an occurrence) and allocates
    // nothing.
    sends.sort_unstable_by_key(|send| (send.at, send.step, send.occurrence));
}
