//! `steprule preview`: one patient's messages exactly as delivery would render them (the same
//! evaluation, patient context, template call and LINE checks), shown as text or as a page that
//! looks like LINE's chat. Nothing is sent and nothing is written to the ledger.
//!
//! Patient data is shown only in the preview itself (stdout or `--out`); what goes to stderr
//! names steps, templates and fields, never a value.

use std::path::PathBuf;

use super::explain::{moved_text, reason_text, time_text, HORIZON_DAYS};
use super::reactions::PassReactions;
use super::recipients::{self, Recipients};
use super::WindowArgs;
use super::{for_each_patient, load_rules, AppError, Io, Outcome, PatientSource, RulesSource};
use crate::eval::{DueSend, Evaluator, PatientOutcome, Window};
use crate::line::track::SendLinks;
use crate::plan::TimingPlan;
use crate::preview::text::Heading;
use crate::preview::{self, PreviewSend};
use crate::records::PatientRecord;
use crate::template::{self, RenderError, Tracking};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewFormat {
    Text,
    Html,
}

#[derive(Debug, Clone)]
pub struct PreviewRequest {
    pub rules: RulesSource,
    pub patients: PatientSource,
    pub patient: String,
    /// One step; without it, every step that sends to the patient in the next 400 days.
    pub step: Option<String>,
    pub now: Option<String>,
    pub format: PreviewFormat,
    /// Write the preview here (created `0600`: it holds patient data) instead of stdout.
    pub out: Option<PathBuf>,
    /// The ledger to read the patient's LINE link and block from (default: `run`'s, when it
    /// exists).
    pub ledger: Option<PathBuf>,
}

pub fn run(request: &PreviewRequest, io: &mut Io<'_>) -> Result<Outcome, AppError> {
    let rules = load_rules(&request.rules, io)?;
    let plan = TimingPlan::compile(&rules);
    let step = match &request.step {
        Some(id) => Some(step_index(&plan, id)?),
        None => None,
    };
    let times = WindowArgs {
        now: request.now.clone(),
        ..WindowArgs::default()
    };
    let now = times.resolve(plan.timezone)?.now;
    let mut found: Option<PatientRecord> = None;
    for_each_patient(&request.patients, &plan.schema, io.err, |patient| {
        if patient.id == request.patient {
            found = Some(patient.clone());
            return Ok(false);
        }
        Ok(true)
    })?;
    let Some(found) = found else {
        return Err(AppError::NoSuchPatient {
            id: request.patient.clone(),
            file: request.patients.file.clone(),
        });
    };
    let (recipients, reactions) = match recipients::open_for_reading(
        request.ledger.as_deref(),
        &request.rules.file,
        plan.clinic.as_deref(),
    )? {
        Some(ledger) => (
            Recipients::load(&*ledger)?,
            PassReactions::load(&*ledger, &plan, now)?,
        ),
        None => (Recipients::default(), PassReactions::none(&plan)),
    };
    let resolved = recipients.links.resolve(&found);
    let patient = resolved.record.as_ref();
    let window = Window {
        now,
        from: now,
        to: now + chrono::Duration::days(HORIZON_DAYS),
    };
    let mut outcome = PatientOutcome::default();
    let reacted = reactions.of(patient);
    Evaluator::explaining(&plan).evaluate_reacting(patient, window, &[], reacted, &mut outcome);
    let mut heading = Heading {
        account: plan.clinic.clone().unwrap_or_else(|| "LINE".to_owned()),
        patient: patient.id.clone(),
        as_of: time_text(&plan, now),
        notes: Vec::new(),
        track: plan.track.as_ref().map(|base| base.as_str().to_owned()),
        columns: columns(patient, &plan.schema),
    };
    if recipients.blocks(patient) {
        heading.notes.push(
            "the patient blocked the account: these sends would not be pushed unless they \
             follow again first"
                .to_owned(),
        );
    }
    let chosen = first_send_per_step(&outcome, step);
    if chosen.is_empty() {
        return nothing_to_preview(&plan, &outcome, step, &heading, io);
    }
    let env = template::environment(plan.timezone);
    let mut sends = Vec::with_capacity(chosen.len());
    let mut failed = 0usize;
    for send in chosen {
        let planned = &plan.steps[send.step];
        let template = &planned.variants[send.variant].template;
        // As a run at the send's time renders it: the context's `now` (ages…) is that time.
        let context =
            template::patient_context(patient, &plan.schema, plan.clinic.as_deref(), send.at);
        let mut preview = PreviewSend {
            step: planned.id.clone(),
            template: template.name.clone(),
            at: time_text(&plan, send.at),
            moved: Some(moved_text(&plan, send).trim().to_owned()).filter(|m| !m.is_empty()),
            messages: Vec::new(),
            failure: None,
        };
        match messages(&plan, template, &env, &context) {
            Ok(messages) => preview.messages = messages,
            Err(error) => {
                failed += 1;
                let why = if error.is_limit_violation() {
                    "failed: over LINE's limits or the URL rule"
                } else {
                    "held until the export is fixed"
                };
                // The error names the template and the field, never the patient's values.
                preview.failure = Some(format!("{why}: {error}"));
                writeln!(
                    io.err,
                    "error: step `{}`: template `{}` would not be sent to this patient ({why}): \
                     {error}",
                    planned.id, template.name,
                )?;
            }
        }
        sends.push(preview);
    }
    let text = match request.format {
        PreviewFormat::Text => {
            crate::printable::printable_lines(&preview::text::render(&heading, &sends)).into_owned()
        }
        PreviewFormat::Html => {
            preview::html::render(&heading, &sends).map_err(std::io::Error::other)?
        }
    };
    // The preview holds patient data.
    super::write_private(request.out.as_deref(), "the preview", &text, io)?;
    Ok(if failed > 0 {
        Outcome::SendsFailed
    } else {
        Outcome::Ok
    })
}

fn step_index(plan: &TimingPlan, id: &str) -> Result<usize, AppError> {
    plan.steps
        .iter()
        .find(|step| step.id == id)
        .map(|step| step.index)
        .ok_or_else(|| {
            let known: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
            AppError::Usage(format!(
                "no step `{}` in the rules; the steps are: {}",
                crate::printable::printable(id),
                known.join(", ")
            ))
        })
}

/// The first send of each step (of `only`, when given) in the horizon, in time order.
fn first_send_per_step(outcome: &PatientOutcome, only: Option<usize>) -> Vec<&DueSend> {
    let mut seen = std::collections::BTreeSet::new();
    let mut chosen: Vec<&DueSend> = outcome
        .sends
        .iter()
        .filter(|send| only.is_none_or(|step| send.step == step))
        .filter(|send| seen.insert(send.step))
        .collect();
    chosen.sort_by_key(|send| (send.at, send.step));
    chosen
}

/// The templates' messages as delivery makes them. With `track`, the links are also tracked
/// with placeholder tokens, as `check` does, so LINE's limits hold for what LINE would
/// receive; the preview shows the links as written.
fn messages(
    plan: &TimingPlan,
    template: &template::Template,
    env: &minijinja::Environment<'_>,
    context: &minijinja::Value,
) -> Result<Vec<crate::line::Message>, RenderError> {
    let shown = template.messages(env, context, None)?;
    if let Some(base) = &plan.track {
        let mut links = SendLinks::sample();
        let tracking = Tracking {
            base,
            links: &mut links,
        };
        template.messages(env, context, Some(tracking))?;
    }
    Ok(shown)
}

/// Nothing to show: why, in explain's words, on stdout (the reasons can carry the patient's
/// dates, so they stay in the output asked for).
fn nothing_to_preview(
    plan: &TimingPlan,
    outcome: &PatientOutcome,
    only: Option<usize>,
    heading: &Heading,
    io: &mut Io<'_>,
) -> Result<Outcome, AppError> {
    let mut text = format!(
        "preview for patient {} — as of {}: nothing is sent in the next {HORIZON_DAYS} days\n",
        heading.patient, heading.as_of
    );
    let shown = || (plan.steps.iter()).filter(|step| only.is_none_or(|only| only == step.index));
    let width = shown().map(|s| s.id.len()).max().unwrap_or(4);
    for step in shown() {
        for note in outcome.notes.iter().filter(|n| n.step == step.index) {
            let reason = reason_text(plan, &note.reason, step);
            text.push_str(&format!("{:<width$}  {reason}\n", step.id));
        }
    }
    io.out
        .write_all(crate::printable::printable_lines(&text).as_bytes())?;
    match only {
        Some(step) => writeln!(
            io.err,
            "error: step `{}` sends nothing to this patient in the next {HORIZON_DAYS} days \
             (why is printed above)",
            plan.steps[step].id
        )?,
        None => writeln!(
            io.err,
            "error: no step sends to this patient in the next {HORIZON_DAYS} days (why is \
             printed above)"
        )?,
    }
    Ok(Outcome::NothingToPreview)
}

/// The patient's text columns by name, to spot those a lock screen would show (also for the
/// review sheet).
pub(super) fn columns(
    patient: &PatientRecord,
    schema: &crate::records::RecordSchema,
) -> Vec<(String, String)> {
    let mut columns: Vec<(String, String)> = Vec::new();
    if let Some(name) = &patient.name {
        columns.push(("name".to_owned(), name.clone()));
    }
    for (name, value) in schema.fields.iter().zip(&patient.fields) {
        if let Some(value) = value {
            columns.push((name.clone(), value.clone()));
        }
    }
    for tag in &patient.tags {
        columns.push(("tags".to_owned(), tag.clone()));
    }
    for (name, value) in &patient.other {
        columns.push((name.clone(), value.clone()));
    }
    columns
}
