//! What the ledger holds for the patient `explain` looks at: the sends `run` made, failed,
//! skipped or holds, per step. The evaluation then runs on the same sent history as `run`'s,
//! so an occurrence already sent shows as sent, never as due again or as expired.

use chrono::{DateTime, Utc};

use crate::eval::{PatientOutcome, Reason, SentBefore};
use crate::ledger::{PatientSend, SendStatus, SinkKind};
use crate::plan::TimingPlan;

/// How many of a step's ledger rows `explain` shows: the latest ones (an `every` step can have
/// years of them).
pub(super) const SHOWN_PER_STEP: usize = 3;

/// The patient's rows in the ledger, by step index of the current rules (rows of a step
/// renamed or removed since are left out, as `run` leaves them out).
#[derive(Debug, Default)]
pub(super) struct PatientLedger {
    /// Whether a ledger was read at all (without one, nothing is known of earlier runs).
    pub read: bool,
    by_step: Vec<Vec<PatientSend>>,
}

impl PatientLedger {
    pub(super) fn new(plan: &TimingPlan, sends: Vec<PatientSend>) -> PatientLedger {
        let mut by_step: Vec<Vec<PatientSend>> = vec![Vec::new(); plan.steps.len()];
        for send in sends {
            if let Some(step) = plan.steps.iter().find(|s| s.id == send.step) {
                by_step[step.index].push(send);
            }
        }
        PatientLedger {
            read: true,
            by_step,
        }
    }

    pub(super) fn of(&self, step: usize) -> &[PatientSend] {
        self.by_step.get(step).map_or(&[], Vec::as_slice)
    }

    /// The sends that went out, as `run` hands them to the evaluator: they are not proposed
    /// again and they count toward the cap of the day they went out on.
    pub(super) fn history(&self) -> Vec<SentBefore> {
        let mut history = Vec::new();
        for (step, sends) in self.by_step.iter().enumerate() {
            for send in sends.iter().filter(|s| s.status == SendStatus::Sent) {
                if let (Some(occurrence), Some(at)) = (send.occurrence, send.sent_at) {
                    history.push(SentBefore {
                        step,
                        occurrence,
                        at,
                    });
                }
            }
        }
        history
    }

    /// Drops what `run` would not do: a send whose occurrence the ledger already settled
    /// (failed, skipped or expired: `run` never claims it again), and an "expired" for an
    /// occurrence the ledger has a row for (the row says what became of it).
    pub(super) fn settle(&self, outcome: &mut PatientOutcome) {
        let settled = |step: usize, occurrence: DateTime<Utc>| {
            self.of(step).iter().any(|s| {
                s.occurrence == Some(occurrence)
                    && matches!(
                        s.status,
                        SendStatus::Sent
                            | SendStatus::Failed
                            | SendStatus::Skipped
                            | SendStatus::Expired
                    )
            })
        };
        outcome.sends.retain(|s| !settled(s.step, s.occurrence));
        outcome.later.retain(|s| !settled(s.step, s.occurrence));
        outcome.notes.retain(|note| match note.reason {
            Reason::Expired { expired, .. } => !self
                .of(note.step)
                .iter()
                .any(|s| s.expires_at == Some(expired)),
            _ => true,
        });
    }
}

/// A step's ledger rows in explain's words: the latest [`SHOWN_PER_STEP`], oldest first, after
/// a line counting them all when there are more.
pub(super) fn step_lines(
    sends: &[PatientSend],
    time: &dyn Fn(DateTime<Utc>) -> String,
) -> Vec<String> {
    let mut lines = Vec::new();
    if sends.len() > SHOWN_PER_STEP {
        lines.push(format!(
            "{} earlier sends in the ledger; the latest {SHOWN_PER_STEP}:",
            sends.len()
        ));
    }
    let shown = &sends[sends.len().saturating_sub(SHOWN_PER_STEP)..];
    lines.extend(shown.iter().map(|s| send_text(s, time)));
    lines
}

/// Where a send went, in explain's words.
fn via(sink: SinkKind) -> &'static str {
    match sink {
        SinkKind::Line => "via LINE",
        SinkKind::Outbox => "to the outbox",
    }
}

/// One ledger row in explain's words; `time` renders an instant as explain does.
pub(super) fn send_text(send: &PatientSend, time: &dyn Fn(DateTime<Utc>) -> String) -> String {
    let when = |at: Option<DateTime<Utc>>| at.map_or_else(|| "an unknown time".to_owned(), time);
    let why = send
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let due = when(send.due_at);
    let until = when(send.expires_at);
    match send.status {
        SendStatus::Sent => format!("sent at {} {}", when(send.sent_at), via(send.sink)),
        SendStatus::Failed => format!("failed {}{why}, was due {due}; not retried", via(send.sink)),
        SendStatus::Skipped => format!("skipped{why}, was due {due}; never sent"),
        SendStatus::Expired => format!("expired{why}, was due {due}; not sent"),
        SendStatus::Held => format!("held{why}, was due {due}; each run tries again until {until}"),
        SendStatus::Blocked => format!(
            "blocked: the patient had blocked the account when it was due {due}; it goes out \
             if they follow again before {until}"
        ),
        SendStatus::Pending => {
            format!("pending since {due} (interrupted): the next run retries it until {until}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn send(status: SendStatus, reason: Option<&str>) -> PatientSend {
        PatientSend {
            sink: SinkKind::Line,
            step: "thanks".into(),
            occurrence: Some(at("2026-11-25T01:00:00Z")),
            status,
            due_at: Some(at("2026-11-25T01:00:00Z")),
            sent_at: (status == SendStatus::Sent).then(|| at("2026-11-25T01:00:05Z")),
            expires_at: Some(at("2026-11-26T01:00:00Z")),
            attempts: 1,
            reason: reason.map(str::to_owned),
            note: None,
        }
    }

    fn time(at: DateTime<Utc>) -> String {
        at.format("%m-%d %H:%M:%S").to_string()
    }

    #[test]
    fn settled_occurrences_are_not_due_again_nor_expired() {
        use crate::eval::{DueSend, StepNote};
        let plan = {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("hello.toml"), "text = \"x\"").unwrap();
            let file = crate::source::SourceFile::new(
                "t.step",
                "clinic \"さくら\"\nstages booked\nstep thanks: when stage=booked after 1d send hello\n",
            );
            let outcome = crate::check::check_file(
                &file,
                &mut crate::template::TemplateStore::new(dir.path()),
            );
            TimingPlan::compile(&outcome.rules.unwrap())
        };
        let failed = send(SendStatus::Failed, Some("LINE answered 400"));
        let mut other_step = send(SendStatus::Sent, None);
        other_step.step = "renamed_since".into();
        let ledger = PatientLedger::new(&plan, vec![failed.clone(), other_step]);
        assert!(ledger.history().is_empty(), "only sent rows of known steps");
        let due = DueSend {
            step: 0,
            occurrence: failed.occurrence.unwrap(),
            at: at("2026-11-25T02:00:00Z"),
            expires: failed.expires_at.unwrap(),
            variant: 0,
            moved: None,
            before_start: false,
        };
        let mut outcome = PatientOutcome::default();
        outcome.sends.push(due.clone());
        outcome.sends.push(DueSend {
            occurrence: at("2026-11-26T01:00:00Z"),
            ..due
        });
        outcome.notes.push(StepNote {
            step: 0,
            reason: Reason::Expired {
                due: at("2026-11-25T01:00:00Z"),
                expired: failed.expires_at.unwrap(),
            },
        });
        ledger.settle(&mut outcome);
        // The failed occurrence is not due again (run never claims it twice), the next one
        // is; the ledger's row replaces the evaluator's "expired".
        assert_eq!(outcome.sends.len(), 1);
        assert_eq!(outcome.sends[0].occurrence, at("2026-11-26T01:00:00Z"));
        assert!(outcome.notes.is_empty(), "{:?}", outcome.notes);
    }

    #[test]
    fn a_long_history_shows_its_latest_sends_and_counts_the_rest() {
        let mut sends = Vec::new();
        for day in 1..=5 {
            let mut sent = send(SendStatus::Sent, None);
            sent.sent_at = Some(at(&format!("2026-11-0{day}T01:00:00Z")));
            sends.push(sent);
        }
        assert_eq!(
            step_lines(&sends, &time),
            [
                "5 earlier sends in the ledger; the latest 3:",
                "sent at 11-03 01:00:00 via LINE",
                "sent at 11-04 01:00:00 via LINE",
                "sent at 11-05 01:00:00 via LINE",
            ]
        );
        assert_eq!(step_lines(&sends[..1], &time).len(), 1);
    }

    #[test]
    fn each_status_says_what_became_of_the_send() {
        assert_eq!(
            send_text(&send(SendStatus::Sent, None), &time),
            "sent at 11-25 01:00:05 via LINE"
        );
        assert_eq!(
            send_text(&send(SendStatus::Failed, Some("LINE answered 400")), &time),
            "failed via LINE (LINE answered 400), was due 11-25 01:00:00; not retried"
        );
        assert_eq!(
            send_text(&send(SendStatus::Skipped, Some("before start")), &time),
            "skipped (before start), was due 11-25 01:00:00; never sent"
        );
        assert_eq!(
            send_text(&send(SendStatus::Held, Some("template")), &time),
            "held (template), was due 11-25 01:00:00; each run tries again until 11-26 01:00:00"
        );
    }
}
