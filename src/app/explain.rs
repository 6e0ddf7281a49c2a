//! `steprule explain`: for one patient, one line per step — when it sends, or exactly why not.

use chrono::{DateTime, Utc};

use super::{
    for_each_patient, load_rules, AppError, Io, Outcome, PatientSource, RulesSource, WindowArgs,
};
use crate::eval::{DueSend, Evaluator, Moved, PatientOutcome, Reason, Window};
use crate::plan::TimingPlan;
use crate::records::PatientRecord;

/// How far ahead `explain` looks for a step's next send.
pub use crate::eval::EXPLAIN_HORIZON_DAYS as HORIZON_DAYS;

#[derive(Debug, Clone)]
pub struct ExplainRequest {
    pub rules: RulesSource,
    pub patients: PatientSource,
    pub patient: String,
    pub now: Option<String>,
}

pub fn run(request: &ExplainRequest, io: &mut Io<'_>) -> Result<Outcome, AppError> {
    let rules = load_rules(&request.rules, io)?;
    let plan = TimingPlan::compile(&rules);
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
    let Some(patient) = found else {
        return Err(AppError::NoSuchPatient {
            id: request.patient.clone(),
            file: request.patients.file.clone(),
        });
    };
    let window = Window {
        now,
        from: now,
        to: now + chrono::Duration::days(HORIZON_DAYS),
    };
    let mut outcome = PatientOutcome::default();
    Evaluator::explaining(&plan).evaluate(&patient, window, &mut outcome);
    let text = Explanation { plan: &plan }.render(&patient, now, &outcome);
    // Names, ids and other values from the export are escaped before reaching a terminal.
    io.out
        .write_all(crate::printable::printable_lines(&text).as_bytes())?;
    Ok(Outcome::Ok)
}

struct Explanation<'a> {
    plan: &'a TimingPlan,
}

impl Explanation<'_> {
    fn time(&self, at: DateTime<Utc>) -> String {
        let local = at.with_timezone(&self.plan.timezone);
        format!(
            "{} ({}) {}",
            local.format("%Y-%m-%d"),
            crate::time::weekday_ja(&local),
            local.format("%H:%M")
        )
    }

    fn render(
        &self,
        patient: &PatientRecord,
        now: DateTime<Utc>,
        outcome: &PatientOutcome,
    ) -> String {
        let stage = patient
            .stage
            .map_or("no stage", |s| self.plan.schema.stages[s].as_str());
        let since = patient
            .stage_entered_at
            .map(|t| format!(" since {}", self.time(t)))
            .unwrap_or_default();
        let mut text = format!(
            "patient {} — stage {stage}{since}; LINE {}; {}\nas of {}\n\n",
            patient.id,
            if patient.line_user_id.is_some() {
                "linked"
            } else {
                "not linked"
            },
            if patient.opted_out {
                "opted out"
            } else {
                "receives messages"
            },
            self.time(now),
        );
        let width = self
            .plan
            .steps
            .iter()
            .map(|s| s.id.len())
            .max()
            .unwrap_or(4);
        for step in &self.plan.steps {
            let sends: Vec<&DueSend> = outcome
                .sends
                .iter()
                .filter(|s| s.step == step.index)
                .collect();
            let mut lines: Vec<String> = Vec::new();
            if let Some(first) = sends.first() {
                let template = &step.variants[first.variant].template.name;
                let more = match sends.len() {
                    1 => String::new(),
                    n => format!(", then {} more in the next {HORIZON_DAYS} days", n - 1),
                };
                lines.push(format!(
                    "sends {template} at {}{}{more}",
                    self.time(first.at),
                    self.moved(first)
                ));
            }
            for note in outcome.notes.iter().filter(|n| n.step == step.index) {
                lines.push(self.reason(&note.reason));
            }
            for (i, line) in lines.iter().enumerate() {
                let id = if i == 0 { step.id.as_str() } else { "" };
                text.push_str(&format!("{id:<width$}  {line}\n"));
            }
        }
        text
    }

    fn moved(&self, send: &DueSend) -> String {
        match send.moved {
            None => String::new(),
            Some(Moved::QuietHours { from }) => {
                format!(" (held by quiet hours from {})", self.time(from))
            }
            Some(Moved::Overdue { due }) => format!(
                " (overdue since {}; goes out on the next run, until {})",
                self.time(due),
                self.time(send.expires)
            ),
            Some(Moved::Cap { from }) => format!(
                " (moved by the cap: {} was full)",
                self.time(from).split(' ').next().unwrap_or_default()
            ),
        }
    }

    fn reason(&self, reason: &Reason) -> String {
        match reason {
            Reason::OptedOut => "not sent: the patient opted out".into(),
            Reason::NoLineUserId => {
                "not sent: no LINE user id (the patient has not linked LINE)".into()
            }
            Reason::ConditionFalse(parts) => {
                format!("not sent: condition false: {}", parts.join("; "))
            }
            Reason::NoAnchor(field) => format!("not sent: {field} is empty"),
            Reason::Expired { due, expired } => format!(
                "expired at {} (was due {})",
                self.time(*expired),
                self.time(*due)
            ),
            Reason::NotBeforeAnchor { due, anchor } => format!(
                "not sent: it would go out at {}, not before {}",
                self.time(*due),
                self.time(*anchor)
            ),
            Reason::Unless { at, parts } => format!(
                "stopped at {} by unless: {}",
                self.time(*at),
                parts.join("; ")
            ),
            Reason::Capped { due } => format!(
                "dropped by the cap: no free day before it expired (was due {})",
                self.time(*due)
            ),
            Reason::Script(message) => format!("not sent: the rhai condition failed: {message}"),
            Reason::BeyondCalendar => "never sent: its time is beyond the calendar".into(),
            Reason::TooManyOccurrences { through } => format!(
                "looked at its first {} occurrences only, through {}",
                crate::eval::MAX_OCCURRENCES,
                self.time(*through)
            ),
            Reason::NotInWindow { next: Some(next) } => format!("next at {}", self.time(*next)),
            Reason::NotInWindow { next: None } => {
                format!("nothing to send in the next {HORIZON_DAYS} days")
            }
        }
    }
}
