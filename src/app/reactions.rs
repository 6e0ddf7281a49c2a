//! The reactions a pass (`run`, `plan`, `explain`) evaluates against: read once from the
//! ledger, through its indexes, into one compact [`Reactions`] per patient with a delivered
//! send of a step the rules react to. Only what can matter is read: sends and events of the
//! last year (the longest reaction window) plus the longest sendable window of an `after sent`
//! step, events only for patients with such a send, and at most 256
//! sends and 256 events per patient.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::recipients::BlockedUsers;
use crate::check::MAX_REACTION_DAYS;
use crate::eval::{
    PatientReactions, ReactionEvent, ReactionNeeds, ReactionSend, Reactions, NO_REACTIONS,
};
use crate::ledger::{EventKind, LedgerError, RunLedger};
use crate::plan::{AnchorField, TimingPlan};
use crate::records::PatientRecord;

/// What reactions mean when there is no ledger to read them from: said once, as part of the
/// line that says there is no ledger.
pub const UNREAD_REACTIONS: &str = "reactions (`clicked`, `answered`, `booked since`, \
`blocked`, `after sent`) read as \"no reaction yet\": steps timed `after sent` send nothing \
and reaction conditions are false";

/// Every patient's reactions for one pass.
#[derive(Debug, Default)]
pub struct PassReactions {
    /// Read from a ledger (else nobody reacted, for want of one).
    read: bool,
    needs: ReactionNeeds,
    by_patient: HashMap<Box<str>, Reactions>,
    blocked: Option<BlockedUsers>,
}

impl PassReactions {
    /// No ledger: nobody reacted.
    pub fn none(plan: &TimingPlan) -> PassReactions {
        PassReactions {
            needs: ReactionNeeds::of(plan),
            ..PassReactions::default()
        }
    }

    /// Whether the rules react to anything.
    pub fn used(&self) -> bool {
        self.needs.any()
    }

    /// Whether there was no ledger to read (`plan` says so once).
    pub fn is_unread(&self) -> bool {
        !self.read
    }

    /// Reads what can matter at `now` for `plan`'s reactions, in one indexed read per kind.
    pub fn load(
        ledger: &dyn RunLedger,
        plan: &TimingPlan,
        now: DateTime<Utc>,
    ) -> Result<PassReactions, LedgerError> {
        let mut pass = PassReactions {
            read: true,
            ..PassReactions::none(plan)
        };
        if !pass.needs.any() {
            return Ok(pass);
        }
        if pass.needs.blocked {
            pass.blocked = Some(BlockedUsers::load(ledger)?);
        }
        let steps: HashMap<&str, usize> = (plan.steps.iter())
            .filter(|step| pass.needs.steps.get(step.index).copied().unwrap_or(false))
            .map(|step| (step.id.as_str(), step.index))
            .collect();
        if steps.is_empty() {
            return Ok(pass);
        }
        let since = lookback(plan, now);
        let by_patient = &mut pass.by_patient;
        let named: Vec<&str> = steps.keys().copied().collect();
        ledger.delivered_since(since, &named, &mut |send| {
            let Some(&step) = steps.get(send.step) else {
                return;
            };
            let sent = ReactionSend {
                step,
                occurrence: send.occurrence,
                sent_at: send.sent_at,
            };
            match by_patient.get_mut(send.patient) {
                Some(reactions) => reactions.push_send(sent),
                None => {
                    let mut reactions = Reactions::default();
                    reactions.push_send(sent);
                    by_patient.insert(send.patient.into(), reactions);
                }
            }
        })?;
        let needs = &pass.needs;
        // Events only matter to patients with a send they can follow; the others are skipped
        // as they stream by (a click names its send; a booking without a send is no reaction).
        let keep = |kind: EventKind, to: &mut HashMap<Box<str>, Reactions>| {
            ledger.patient_events(kind, since, &mut |event| {
                let Some(reactions) = to.get_mut(event.patient) else {
                    return;
                };
                let send = event
                    .send
                    .and_then(|(step, occurrence)| Some((*steps.get(step)?, occurrence)));
                let found = match (kind, send) {
                    (EventKind::Click, Some((step, occurrence))) => Some(ReactionEvent::Clicked {
                        step,
                        occurrence,
                        at: event.at,
                    }),
                    (EventKind::Postback, Some((step, occurrence))) => event
                        .detail
                        .and_then(|data| needs.answer(data))
                        .map(|data| ReactionEvent::Answered {
                            step,
                            occurrence,
                            data: data.clone(),
                            at: event.at,
                        }),
                    (EventKind::Booked, _) => Some(ReactionEvent::Booked { at: event.at }),
                    _ => None,
                };
                if let Some(found) = found {
                    reactions.push_event(found);
                }
            })
        };
        if needs.clicks {
            keep(EventKind::Click, by_patient)?;
        }
        if !needs.answers.is_empty() {
            keep(EventKind::Postback, by_patient)?;
        }
        if needs.bookings {
            keep(EventKind::Booked, by_patient)?;
        }
        for reactions in by_patient.values_mut() {
            reactions.settle();
        }
        Ok(pass)
    }

    /// One patient's reactions (`patient` as resolved: with their linked LINE user). Allocates
    /// nothing.
    pub fn of<'a>(&'a self, patient: &PatientRecord) -> PatientReactions<'a> {
        // Most passes and most patients: nothing to look up.
        if self.by_patient.is_empty() && self.blocked.is_none() {
            return PatientReactions::none();
        }
        PatientReactions {
            seen: self
                .by_patient
                .get(patient.id.as_str())
                .unwrap_or(&NO_REACTIONS),
            blocked: self
                .blocked
                .as_ref()
                .is_some_and(|users| users.contains(patient.line_user_id.as_deref())),
        }
    }
}

/// How far back a pass at `now` reads: the longest reaction window (a year), plus the longest
/// an `after sent` step stays sendable, plus two days for `at` times and quiet hours.
fn lookback(plan: &TimingPlan, now: DateTime<Utc>) -> DateTime<Utc> {
    let sendable = (plan.steps.iter())
        .filter(|step| matches!(step.anchor, AnchorField::Sent(_)))
        .map(|step| step.sendable_for.max_minutes())
        .max()
        .unwrap_or(0);
    let minutes = i64::try_from(MAX_REACTION_DAYS * 24 * 60)
        .unwrap_or(i64::MAX)
        .saturating_add(sendable)
        .saturating_add(2 * 24 * 60);
    now.checked_sub_signed(chrono::Duration::minutes(minutes))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{
        Claim, Ledger, NewEvent, SendDetails, SendKey, SendRef, Settlement, SinkKind,
    };
    use crate::source::SourceFile;
    use crate::template::TemplateStore;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn plan() -> TimingPlan {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "text = \"x\"").unwrap();
        let rules = "stages first_visit\ndates next_booking_at\n\
            step survey: when stage=first_visit after 4d send a\n\
            step other: when stage=first_visit after 5d send a\n\
            step again: when stage=first_visit 3d after sent survey send a\n    \
                unless clicked survey or answered survey \"yes\" or booked since survey\n";
        let file = SourceFile::new("t.step", rules);
        let outcome = crate::check::check_file(&file, &mut TemplateStore::new(dir.path()));
        TimingPlan::compile(&outcome.rules.expect("rules"))
    }

    /// A send of `step` to `patient`, delivered at `sent_at` (its occurrence too).
    fn deliver(ledger: &mut Ledger, patient: &str, step: &str, sent_at: &str) {
        let key = SendKey {
            sink: SinkKind::Outbox,
            patient,
            step,
            occurrence: at(sent_at),
        };
        let details = SendDetails {
            template: "a",
            variant: None,
            due_at: at(sent_at),
            expires_at: at(sent_at) + chrono::Duration::days(1),
            outbox_from: Some(0),
        };
        let Claim::New { retry_key } = ledger.claim(&key, &details, at(sent_at)).unwrap() else {
            panic!("a new claim");
        };
        let sent = Settlement::Sent {
            request_id: None,
            note: None,
        };
        ledger
            .settle(&key, &retry_key, 1, &sent, at(sent_at))
            .unwrap();
    }

    fn event(ledger: &mut Ledger, id: &str, kind: EventKind, patient: &str, detail: &str) {
        let send = SendRef {
            sink: SinkKind::Outbox,
            patient: patient.to_owned(),
            step: "survey".to_owned(),
            occurrence: at("2026-11-20T03:00:00Z"),
        };
        let tied = matches!(kind, EventKind::Click | EventKind::Postback);
        let new = NewEvent {
            id,
            kind,
            at: at("2026-11-21T03:00:00Z"),
            line_user: None,
            patient: Some(patient),
            send: tied.then_some(&send),
            detail: Some(detail),
        };
        ledger
            .record_event(&new, at("2026-11-21T03:00:00Z"))
            .unwrap();
    }

    #[test]
    fn a_pass_reads_only_what_can_matter_and_nothing_for_unknown_patients() {
        let plan = plan();
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        deliver(&mut ledger, "P1", "survey", "2026-11-20T03:00:00Z");
        // Older than the year read back, and a step no reaction names.
        deliver(&mut ledger, "P2", "survey", "2024-11-20T03:00:00Z");
        deliver(&mut ledger, "P3", "other", "2026-11-20T03:00:00Z");
        event(
            &mut ledger,
            "c1",
            EventKind::Click,
            "P1",
            "https://x.example/",
        );
        event(&mut ledger, "p1", EventKind::Postback, "P1", "yes");
        event(
            &mut ledger,
            "p2",
            EventKind::Postback,
            "P1",
            "data no rule tests",
        );
        event(
            &mut ledger,
            "b1",
            EventKind::Booked,
            "P1",
            "next_booking_at",
        );
        // Patients the pass has no send of the step for, or that no export has.
        event(
            &mut ledger,
            "c2",
            EventKind::Click,
            "NOBODY",
            "https://x.example/",
        );
        event(
            &mut ledger,
            "b2",
            EventKind::Booked,
            "P3",
            "next_booking_at",
        );

        let pass = PassReactions::load(&ledger, &plan, at("2026-11-25T00:00:00Z")).unwrap();
        let patients: Vec<&str> = pass.by_patient.keys().map(AsRef::as_ref).collect();
        assert_eq!(patients, ["P1"]);
        let p1 = &pass.by_patient["P1"];
        assert_eq!(p1.sends.len(), 1);
        assert_eq!(p1.sends[0].sent_at, at("2026-11-20T03:00:00Z"));
        let kinds: Vec<&str> = (p1.events.iter())
            .map(|event| match event {
                ReactionEvent::Clicked { .. } => "clicked",
                ReactionEvent::Answered { data, .. } if data.as_ref() == "yes" => "answered yes",
                ReactionEvent::Answered { .. } => "answered other",
                ReactionEvent::Booked { .. } => "booked",
            })
            .collect();
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        for kind in ["clicked", "answered yes", "booked"] {
            assert!(kinds.contains(&kind), "{kind}: {kinds:?}");
        }
        assert!(!pass.is_unread());
    }

    #[test]
    fn rules_without_reactions_read_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "text = \"x\"").unwrap();
        let file = SourceFile::new(
            "t.step",
            "stages first_visit\nstep survey: when stage=first_visit after 4d send a\n",
        );
        let outcome = crate::check::check_file(&file, &mut TemplateStore::new(dir.path()));
        let plan = TimingPlan::compile(&outcome.rules.unwrap());
        let ledger_dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&ledger_dir.path().join("l.db")).unwrap();
        deliver(&mut ledger, "P1", "survey", "2026-11-20T03:00:00Z");
        let pass = PassReactions::load(&ledger, &plan, at("2026-11-25T00:00:00Z")).unwrap();
        assert!(!pass.used());
        assert!(pass.by_patient.is_empty());
    }
}
