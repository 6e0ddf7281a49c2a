//! From a patient's anchors to sends: occurrences of each step, `at` times, quiet hours,
//! catching up after downtime, expiry, `unless`, the cap and the variant.

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use chrono_tz::Tz;

use super::script::ScriptRuntime;
use super::{
    variant_bucket, Context, DueSend, Moved, PatientOutcome, Reason, SentBefore, StepNote, Window,
};
use crate::check::Cap;
use crate::plan::calendar::{at_time, leave_quiet, local_date, next_day, next_week, shift};
use crate::plan::{AnchorField, Direction, FieldRef, PlannedStep, TimingPlan};
use crate::syntax::CapPeriod;

/// At most this many occurrences of one `every` step are looked at per evaluation, so that a
/// step like `every 1m` over a long window cannot stall a run.
pub const MAX_OCCURRENCES: u32 = 1000;

/// How far `at` times and quiet hours can move a send from its step's own time.
const SLACK_DAYS: i64 = 2;

#[derive(Debug, Default)]
pub(super) struct Scratch {
    candidates: Vec<DueSend>,
    periods: Vec<(NaiveDate, u32)>,
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
    scratch.candidates.clear();
    for step in &plan.steps {
        let note = |reason| StepNote {
            step: step.index,
            reason,
        };
        match ctx.test(&step.when, window.now, scripts) {
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
        let Some(anchor) = anchor_instant(ctx, step.anchor) else {
            if ctx.explain {
                out.notes
                    .push(note(Reason::NoAnchor(anchor_name(plan, step.anchor))));
            }
            continue;
        };
        let before = scratch.candidates.len();
        let mut problem = None;
        for nominal in occurrences(step, anchor, window, plan.timezone) {
            match place(step, nominal, anchor, window.now, plan) {
                Ok(send) => scratch.candidates.push(send),
                Err(reason) => problem = Some(reason),
            }
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
                parts: ctx.why_true(unless),
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
        apply_cap(
            &mut candidates,
            cap,
            plan,
            history,
            &mut scratch.periods,
            out,
        );
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
        AnchorField::StageEnteredAt => ctx.instant(FieldRef::StageEnteredAt),
        AnchorField::Date(i) => ctx.instant(FieldRef::Date(i)),
        AnchorField::BirthDate => {
            let birth = ctx.patient.birth_date?;
            Some(crate::plan::calendar::from_local(
                birth.and_time(chrono::NaiveTime::MIN),
                ctx.plan.timezone,
            ))
        }
    }
}

fn anchor_name(plan: &TimingPlan, anchor: AnchorField) -> String {
    match anchor {
        AnchorField::StageEnteredAt => "stage_entered_at".to_owned(),
        AnchorField::BirthDate => "birth_date".to_owned(),
        AnchorField::Date(i) => plan.schema.date_fields[i].clone(),
    }
}

/// The step's own instants that can matter for this window.
fn occurrences(
    step: &PlannedStep,
    anchor: DateTime<Utc>,
    window: Window,
    tz: Tz,
) -> impl Iterator<Item = DateTime<Utc>> {
    let single = match step.direction {
        Direction::After => shift(anchor, step.offset, false, tz),
        Direction::Before => shift(anchor, step.offset, true, tz),
        Direction::Every => None,
    };
    let every = (step.direction == Direction::Every)
        .then(|| every_occurrences(step, anchor, window, tz))
        .into_iter()
        .flatten();
    single.into_iter().chain(every)
}

fn every_occurrences(
    step: &PlannedStep,
    anchor: DateTime<Utc>,
    window: Window,
    tz: Tz,
) -> impl Iterator<Item = DateTime<Utc>> {
    let slack = chrono::Duration::days(SLACK_DAYS);
    let sendable = chrono::Duration::minutes(step.sendable_for.max_minutes());
    let earliest = window.now.min(window.from) - sendable - slack;
    let latest = window.to + slack;
    let period = step.offset.max_minutes().max(1);
    let skipped = ((earliest - anchor).num_minutes() / period).max(0);
    let first_k = u32::try_from(skipped).unwrap_or(u32::MAX).max(1);
    let offset = step.offset;
    (first_k..first_k.saturating_add(MAX_OCCURRENCES))
        .map_while(move |k| shift(anchor, offset.times(k)?, false, tz))
        .skip_while(move |nominal| *nominal < earliest)
        .take_while(move |nominal| *nominal <= latest)
}

/// Where one occurrence lands: `at` time, quiet hours, expiry, catching up.
fn place(
    step: &PlannedStep,
    nominal: DateTime<Utc>,
    anchor: DateTime<Utc>,
    now: DateTime<Utc>,
    plan: &TimingPlan,
) -> Result<DueSend, Reason> {
    let tz = plan.timezone;
    let timed = step.at.map_or(nominal, |at| at_time(nominal, at, tz));
    let due = leave_quiet(timed, plan.quiet, tz);
    let mut moved = (due != timed).then_some(Moved::QuietHours { from: timed });
    let mut expires = shift(due, step.sendable_for, false, tz).unwrap_or(due);
    if step.direction == Direction::Before {
        if due >= anchor {
            return Err(Reason::NotBeforeAnchor { due, anchor });
        }
        expires = expires.min(anchor);
    }
    let mut at = due;
    if at < now {
        at = leave_quiet(now, plan.quiet, tz);
        moved = Some(Moved::Overdue { due });
    }
    if at >= expires {
        return Err(Reason::Expired {
            due,
            expired: expires,
        });
    }
    Ok(DueSend {
        step: step.index,
        occurrence: nominal,
        at,
        expires,
        variant: 0,
        moved,
    })
}

/// Keeps at most `cap.count` sends per local day (or week); the rest move to the start of the
/// next period (out of quiet hours) in time and file order, or are dropped once expired.
fn apply_cap(
    sends: &mut Vec<DueSend>,
    cap: Cap,
    plan: &TimingPlan,
    history: &[SentBefore],
    periods: &mut Vec<(NaiveDate, u32)>,
    out: &mut PatientOutcome,
) {
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
        let key = period(sent.at);
        match periods.iter_mut().find(|(k, _)| *k == key) {
            Some((_, used)) => *used += 1,
            None => periods.push((key, 1)),
        }
    }
    // Latest first, so that `pop` takes the earliest.
    let mut pending: Vec<DueSend> = sends.drain(..).rev().collect();
    while let Some(mut send) = pending.pop() {
        let key = period(send.at);
        let used = match periods.iter_mut().find(|(k, _)| *k == key) {
            Some((_, used)) => used,
            None => {
                periods.push((key, 0));
                &mut periods.last_mut().expect("just pushed").1
            }
        };
        if *used < cap.count {
            *used += 1;
            sends.push(send);
            continue;
        }
        let next_start = match cap.period {
            CapPeriod::Day => next_day(send.at, tz),
            CapPeriod::Week => next_week(send.at, tz),
        };
        let next = next_start.map(|start| leave_quiet(start, plan.quiet, tz));
        match next.filter(|next| *next < send.expires) {
            Some(next) => {
                if send.moved.is_none() || matches!(send.moved, Some(Moved::QuietHours { .. })) {
                    send.moved = Some(Moved::Cap { from: send.at });
                }
                send.at = next;
                let position = pending
                    .iter()
                    .position(|p| (p.at, p.step) < (send.at, send.step))
                    .unwrap_or(pending.len());
                pending.insert(position, send);
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
}
