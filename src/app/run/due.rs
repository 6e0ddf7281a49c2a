//! The sends due now, found on a thread of their own: reading the export and evaluating
//! patients runs beside the ledger's writes and the rendering, so a pass uses both cores.
//! Patients are evaluated on the threads that type the rows, each with an evaluator of its own
//! ([`for_each_patient_worked`]); this thread takes what each came to in file order. Only
//! patients with something due (or something observed) cross over to the pass, gathered in
//! batches: a message per patient cost the pass's thread a `recv` and a wake-up each (~15%
//! of it on a first pass, which observes every patient). A patient seen for the first time
//! crosses over as their marks' row, built here and packed with their batch's (see
//! `observe`). Without tracked links a
//! send's messages depend on nothing the ledger holds, so they are rendered here too, beside
//! the evaluation, and the pass's thread keeps only the ledger's work; with tracked links a
//! send's tokens are minted in its claim's transaction, so the pass renders it. For the
//! outbox they are serialized here as well, as its line holds them: the pass copies them.

use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::history::PassHistory;
use super::observe::{Look, Observation, Observer};
use crate::app::reactions::PassReactions;
use crate::app::recipients::{Links, Source};
use crate::app::{for_each_patient_worked, AppError, PatientSource, RowCounts, StepWarnings};
use crate::eval::{DueSend, Evaluator, PatientOutcome, StepNote, Window};
use crate::ledger::{Near, NewMarks};
use crate::line::{messages_json, Message};
use crate::plan::TimingPlan;
use crate::records::{LookingAhead, PatientRecord};
use crate::template::{RenderError, Variables};

/// The most patients' entries one message carries.
const DUE_BATCH: usize = 256;
/// The most first sightings' rows one message carries: a first pass has one per patient.
const MARKS_BATCH: usize = 1024;
/// The most bytes of rendered outbox lines one message carries (give or take its last
/// patient's), so that the queue to the pass holds a bounded size of messages, not only a
/// bounded count of patients: a send of carousels can be a few hundred KB where a text is one.
const DUE_BATCH_BYTES: usize = 1 << 20;
/// The longest a batch waits to fill before it goes (a slow export, sparse due sends), so
/// that delivery is never held back by it.
const DUE_WAIT: Duration = Duration::from_millis(50);

/// What the evaluating thread hands to the pass, in the export's order.
pub(super) enum Due {
    /// What patients brought, in the export's order, and the rows of those seen for the
    /// first time (in the export's order too).
    Batch {
        entries: Vec<Entry>,
        marks: NewMarks,
    },
    /// A line for stderr (a skipped row).
    Warning(String),
}

/// One patient's part of a batch.
pub(super) enum Entry {
    /// A patient with sends due now.
    Patient {
        patient: Arc<PatientRecord>,
        sends: Vec<DueSend>,
        /// Each send's messages, when rendered already (see [`Known::render`]), beside
        /// `sends`.
        rendered: Vec<Option<Rendered>>,
    },
    /// A patient whose booking or visit fields differ from what the ledger saw last.
    Observed(Box<Observation>),
}

/// What the pass read from the ledger before evaluating: sends, links, booking and visit
/// fingerprints.
pub(super) struct Known<'p> {
    /// Read beside the pass's start: the first evaluation waits for it.
    pub history: &'p PassHistory,
    pub links: &'p Links,
    pub observer: Option<&'p Observer>,
    /// What patients did with the sends the rules react to.
    pub reactions: &'p PassReactions,
    /// The templates, when sends are rendered as they are found (no tracked links).
    pub render: Option<&'p minijinja::Environment<'p>>,
    /// Sends go to the outbox: what is rendered here is serialized here too, off the pass's
    /// thread (the outbox's JSON was ~11% of its instructions on a first run).
    pub outbox_json: bool,
}

/// A send's messages, or why its template failed.
pub(super) type Rendered = Result<RenderedMessages, RenderError>;

/// A send's rendered messages, as values or (see [`Known::outbox_json`]) already serialized
/// as the outbox's line holds them (see [`crate::deliver::Job::messages_json`]).
pub(super) struct RenderedMessages {
    pub messages: Vec<Message>,
    pub json: Option<String>,
}

/// How the evaluation ended.
pub(super) struct Evaluated {
    pub counts: RowCounts,
    pub script_failures: StepWarnings,
    /// Sends due now that the ledger says went out already.
    pub already_sent: u64,
    /// Patients (not opted out) with no LINE user: none in the export, no link in the ledger.
    pub not_linked: u64,
}

/// Evaluates every patient at `now`, each with their recipient (the export's LINE user, else
/// their latest link), sending what is due to `due`; stops early on a signal or when the pass
/// stops listening (it failed).
pub(super) fn evaluate(
    plan: &TimingPlan,
    patients: &PatientSource,
    known: &Known<'_>,
    now: DateTime<Utc>,
    stop: &watch::Receiver<bool>,
    due: SyncSender<Due>,
    spent: Receiver<Vec<Entry>>,
) -> Result<Evaluated, AppError> {
    let window = Window {
        now,
        from: now,
        to: now + chrono::Duration::seconds(1),
    };
    let mut script_failures = StepWarnings::default();
    let mut already_sent = 0;
    let mut not_linked = 0;
    // The names templates read, resolved once for every patient.
    let variables = Variables::new(&plan.schema, plan.clinic.as_deref());
    let variables = &variables;
    let mut warnings = WarningLines {
        due: due.clone(),
        line: Vec::new(),
    };
    let evaluator = || {
        let mut evaluator = Evaluator::new(plan);
        let mut outcome = PatientOutcome::default();
        // Where this thread found its last patient's fingerprint: the next is expected after it.
        let mut near = Near::default();
        let work = move |patient: &PatientRecord| {
            // A failed read evaluates no one: the pass stops with its error (see below).
            let Some(history) = known.history.get() else {
                return Found::nothing();
            };
            // The fingerprint's slot is asked for now and read after the evaluation.
            let hashed = known.observer.map(|o| (o, o.prefetch(patient)));
            let row = patient;
            let resolved = known.links.resolve(patient);
            // Nothing is due to them (the evaluator says so): no row is written, so once they
            // link, whatever is still within its window goes out on the next run.
            let unlinked = resolved.source == Source::Unlinked && !patient.opted_out;
            let patient = resolved.record.as_ref();
            evaluator.evaluate_reacting(
                patient,
                window,
                history.of(&patient.id),
                known.reactions.of(patient),
                &mut outcome,
            );
            let observed = hashed.map_or(Look::Same, |(o, hash)| o.look_near(row, hash, &mut near));
            let sends: Vec<DueSend> = outcome
                .sends
                .iter()
                .filter(|s| s.at <= now)
                .cloned()
                .collect();
            // The patient as delivery sees them (with their linked LINE user), copied only
            // when something is due; the templates' context reads them where they are.
            let due = (!sends.is_empty()).then(|| Arc::new(resolved.record.into_owned()));
            let rendered = match (known.render, &due) {
                (Some(env), Some(patient)) => {
                    let context = variables.of(patient.clone(), now);
                    render_all(plan, env, &context, &sends, known.outbox_json)
                }
                _ => Vec::new(),
            };
            Found {
                observed,
                unlinked,
                notes: StepWarnings::worth_noting(&outcome),
                already_sent: outcome.already_sent as u64,
                due: due.map(|patient| Entry::Patient {
                    patient,
                    sends,
                    rendered,
                }),
            }
        };
        // The history's slot for a row is asked for while the row before it is evaluated.
        let ahead = |patient: &PatientRecord| {
            if let Some(history) = known.history.if_read() {
                history.prefetch(&patient.id);
            }
        };
        LookingAhead { ahead, work }
    };
    let mut batch = Batch::new(spent);
    let counts = for_each_patient_worked(
        patients,
        &plan.schema,
        &mut warnings,
        &evaluator,
        |patient, found: Found| {
            // Nothing goes to the pass before the history is in: a failed read stops the
            // evaluation here, before its first batch, and its error is the pass's.
            if *stop.borrow() || known.history.get().is_none() {
                return Ok(false);
            }
            match found.observed {
                Look::Same => {}
                Look::Changed(seen) => batch.push(Entry::Observed(Box::new(seen))),
                Look::First(print) => {
                    if let Some(observer) = known.observer {
                        batch.start();
                        observer.first_sighting(patient, print, &mut batch.marks);
                    }
                }
            }
            not_linked += u64::from(found.unlinked);
            script_failures.note_all(patient.line, &found.notes);
            already_sent += found.already_sent;
            if let Some(due) = found.due {
                batch.push(due);
            }
            // A closed channel: the pass stopped (an error); nothing more to evaluate.
            Ok(!batch.is_due() || batch.send(&due))
        },
    )?;
    // An export with no patient waited for nothing: the read's error is the pass's all the same.
    known.history.check()?;
    // The rest; after a stop or a failed pass, left for the next run like the rows not read.
    if !*stop.borrow() {
        batch.send(&due);
    }
    Ok(Evaluated {
        counts,
        script_failures,
        already_sent,
        not_linked,
    })
}

/// The entries gathered for the pass's next message.
struct Batch {
    entries: Vec<Entry>,
    marks: NewMarks,
    /// When the first of them was gathered.
    since: Instant,
    /// The rendered bytes of `entries` (see [`DUE_BATCH_BYTES`]).
    bytes: usize,
    /// The pass's spent batches, freed here rather than on the pass's thread (the longest
    /// one); the last one's room is reused for the next batch.
    spent: Receiver<Vec<Entry>>,
}

impl Batch {
    fn new(spent: Receiver<Vec<Entry>>) -> Batch {
        Batch {
            entries: Vec::new(),
            marks: NewMarks::default(),
            since: Instant::now(),
            bytes: 0,
            spent,
        }
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.marks.is_empty()
    }

    /// Notes when the batch's first entry or row comes.
    fn start(&mut self) {
        if self.is_empty() {
            self.since = Instant::now();
        }
    }

    fn push(&mut self, entry: Entry) {
        self.start();
        if let Entry::Patient { rendered, .. } = &entry {
            let json = rendered.iter().flatten().flatten();
            self.bytes += json
                .map(|r| r.json.as_ref().map_or(0, String::len))
                .sum::<usize>();
        }
        self.entries.push(entry);
    }

    fn is_due(&self) -> bool {
        self.entries.len() >= DUE_BATCH
            || self.bytes >= DUE_BATCH_BYTES
            || self.marks.len() >= MARKS_BATCH
            || (!self.is_empty() && self.since.elapsed() >= DUE_WAIT)
    }

    /// Sends the entries gathered; `false` when the pass no longer listens.
    fn send(&mut self, due: &SyncSender<Due>) -> bool {
        if self.is_empty() {
            return true;
        }
        let mut room = Vec::new();
        while let Ok(mut spent) = self.spent.try_recv() {
            spent.clear();
            room = spent;
        }
        let entries = std::mem::replace(&mut self.entries, room);
        let marks = std::mem::take(&mut self.marks);
        self.bytes = 0;
        due.send(Due::Batch { entries, marks }).is_ok()
    }
}

/// What one patient's evaluation came to, as the thread that evaluated them hands it over.
struct Found {
    /// How their booking or visit fields compare with what the ledger saw last.
    observed: Look,
    /// Not opted out, and no LINE user: none in the export, no link in the ledger.
    unlinked: bool,
    /// The notes the warnings after the pass count.
    notes: Vec<StepNote>,
    already_sent: u64,
    /// The patient (as resolved) and their sends due now, when they have any.
    due: Option<Entry>,
}

impl Found {
    /// Nothing found: what a patient comes to when the history could not be read.
    fn nothing() -> Found {
        Found {
            observed: Look::Same,
            unlinked: false,
            notes: Vec::new(),
            already_sent: 0,
            due: None,
        }
    }
}

/// The messages of each of `patient`'s `sends` that the pass will send if its claim is new,
/// rendered as the pass would render them, and with `json` serialized as the outbox writes
/// them. A send due before the rules' `start` is sent only when an earlier run left it
/// pending: rare, so the pass renders it then.
fn render_all(
    plan: &TimingPlan,
    env: &minijinja::Environment<'_>,
    context: &minijinja::Value,
    sends: &[DueSend],
    json: bool,
) -> Vec<Option<Rendered>> {
    sends
        .iter()
        .map(|send| {
            let variant = &plan.steps[send.step].variants[send.variant];
            (!send.before_start).then(|| {
                let messages = variant.template.messages(env, context, None)?;
                Ok(serialized(messages, json))
            })
        })
        .collect()
}

/// `messages`, serialized with `json` (freed here, on the thread that allocated them).
fn serialized(messages: Vec<Message>, json: bool) -> RenderedMessages {
    if json {
        RenderedMessages {
            json: Some(messages_json(&messages)),
            messages: Vec::new(),
        }
    } else {
        RenderedMessages {
            messages,
            json: None,
        }
    }
}

/// stderr for the evaluating thread: each whole line goes to the pass, which prints it.
struct WarningLines {
    due: SyncSender<Due>,
    line: Vec<u8>,
}

impl std::io::Write for WarningLines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        for &byte in bytes {
            if byte == b'\n' {
                let line = String::from_utf8_lossy(&self.line).into_owned();
                self.line.clear();
                if self.due.send(Due::Warning(line)).is_err() {
                    return Err(std::io::ErrorKind::BrokenPipe.into());
                }
            } else if self.line.len() < 64 * 1024 {
                self.line.push(byte);
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_for_the_outbox_are_serialized_as_serde_writes_them() {
        let messages = vec![
            Message::Text {
                text: "ご予約は\n\"明日\"です".into(),
            },
            Message::Text {
                text: "\u{1}".into(),
            },
        ];
        let expected = serde_json::to_string(&messages).unwrap();
        let outbox = serialized(messages.clone(), true);
        assert_eq!(outbox.json.as_deref(), Some(expected.as_str()));
        assert!(outbox.messages.is_empty());
        let line = serialized(messages.clone(), false);
        assert_eq!((line.messages, line.json), (messages, None));
    }

    fn patient_with(json: &[usize]) -> Entry {
        let rendered = json.iter().map(|&len| {
            Some(Ok(RenderedMessages {
                messages: Vec::new(),
                json: Some("x".repeat(len)),
            }))
        });
        Entry::Patient {
            patient: Arc::new(PatientRecord::default()),
            sends: Vec::new(),
            rendered: rendered.collect(),
        }
    }

    #[test]
    fn a_batch_goes_when_its_rendered_lines_reach_the_byte_bound_not_only_its_count() {
        let (_back, spent) = std::sync::mpsc::channel();
        let mut batch = Batch::new(spent);
        batch.push(patient_with(&[1000, 2000]));
        batch.push(patient_with(&[]));
        assert_eq!(batch.bytes, 3000);
        // Never waited too long, however slow the machine (`elapsed` of a later instant is 0).
        batch.since = Instant::now() + Duration::from_secs(3600);
        assert!(!batch.is_due());
        batch.push(patient_with(&[DUE_BATCH_BYTES / 2, DUE_BATCH_BYTES / 2]));
        assert!(batch.is_due(), "three patients, {} bytes", batch.bytes);
        let (due, taken) = std::sync::mpsc::sync_channel(1);
        assert!(batch.send(&due));
        assert_eq!(batch.bytes, 0);
        match taken.recv().unwrap() {
            Due::Batch { entries, .. } => assert_eq!(entries.len(), 3),
            Due::Warning(_) => panic!("a warning"),
        }
    }
}
