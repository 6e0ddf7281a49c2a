//! The one thread that writes to the ledger for `serve`. Requests hand it work over a bounded
//! channel; it takes everything waiting (up to a batch) into one transaction, commits, and only
//! then answers each request: an event is on disk before LINE hears 200, so nothing is lost if
//! the process dies after answering. A batch that fails is rolled back whole and every request
//! in it is answered with an error (LINE redelivers; the ids keep the retry from counting twice).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::{mpsc, oneshot};

use super::attempt::{self, Attempt};
use super::link::{Found, PatientDirectory, SharedDirectory, MAX_FAILURES_PER_DAY};
use super::log::Log;
use super::webhook::{Event, EventBody};
use crate::ledger::{
    EventKind, FriendChange, LedgerError, NewEvent, SendRef, ServeLedger, TrackKind,
};

/// Requests waiting for the writer before senders wait.
pub const QUEUE: usize = 1024;
/// Work items committed together at most.
const BATCH: usize = 256;
/// An unfollow is put down to the last step sent this long before it.
const BLAME_WINDOW_HOURS: i64 = 72;

/// Which link template a reply sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkTemplate {
    Request,
    Done,
    Failed,
    Locked,
}

impl LinkTemplate {
    /// The template's name (its file is `templates/<name>.toml`).
    pub fn name(self) -> &'static str {
        match self {
            LinkTemplate::Request => "link_request",
            LinkTemplate::Done => "link_done",
            LinkTemplate::Failed => "link_failed",
            LinkTemplate::Locked => "link_locked",
        }
    }
}

/// A reply to send once the event is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub token: String,
    pub template: LinkTemplate,
}

/// What the writer is asked to do.
pub enum Work {
    /// Store a webhook's events; answered with the replies to send.
    Webhook {
        events: Vec<Event>,
        answer: oneshot::Sender<Result<Vec<Reply>, ()>>,
    },
    /// Look a tracked token up and, with `count`, record a click; answered with the URL.
    Click {
        token: String,
        count: bool,
        at: DateTime<Utc>,
        answer: oneshot::Sender<Result<Option<String>, ()>>,
    },
    /// Whether the ledger answers.
    Ping { answer: oneshot::Sender<bool> },
    /// Commit what is held and end (the server has stopped; a request still open after the
    /// drain gets an error).
    Stop,
}

/// An answer held until its batch commits.
enum Held {
    Webhook(oneshot::Sender<Result<Vec<Reply>, ()>>, Vec<Reply>),
    Click(oneshot::Sender<Result<Option<String>, ()>>, Option<String>),
    Ping(oneshot::Sender<bool>, bool),
    Stopped,
}

impl Held {
    fn send(self) {
        // A request that timed out has stopped listening: nothing to do.
        match self {
            Held::Webhook(answer, replies) => drop(answer.send(Ok(replies))),
            Held::Click(answer, url) => drop(answer.send(Ok(url))),
            Held::Ping(answer, ok) => drop(answer.send(ok)),
            Held::Stopped => {}
        }
    }

    fn fail(self) {
        match self {
            Held::Webhook(answer, _) => drop(answer.send(Err(()))),
            Held::Click(answer, _) => drop(answer.send(Err(()))),
            Held::Ping(answer, _) => drop(answer.send(false)),
            Held::Stopped => {}
        }
    }
}

/// The ledger's owner in `serve`: the SQLite file, or this clinic's rows on PostgreSQL.
pub struct Writer {
    pub ledger: Box<dyn ServeLedger>,
    pub directory: Arc<SharedDirectory>,
    /// The clinic's zone: a day of linking attempts is the clinic's calendar day.
    pub timezone: Tz,
    pub log: Log,
}

impl Writer {
    /// Runs until [`Work::Stop`] or until every sender is dropped, then returns.
    pub fn run(mut self, mut work: mpsc::Receiver<Work>) {
        while let Some(first) = work.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match work.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let stop = batch.iter().any(|w| matches!(w, Work::Stop));
            batch.retain(|w| !matches!(w, Work::Stop));
            self.batch(batch);
            if stop {
                return;
            }
        }
    }

    fn batch(&mut self, batch: Vec<Work>) {
        if batch.is_empty() {
            return;
        }
        let mut held = Vec::with_capacity(batch.len());
        let mut pending = batch.into_iter();
        let now = Utc::now();
        let directory = self.directory.get();
        let result = (self.ledger.reconnect_if_lost())
            .and_then(|()| self.ledger.begin())
            .and_then(|()| {
                for work in pending.by_ref() {
                    let (answer, done) = self.apply(work, &directory, now);
                    held.push(answer);
                    done?;
                }
                self.ledger.commit()
            });
        match result {
            Ok(()) => held.into_iter().for_each(Held::send),
            Err(error) => {
                // The ledger's messages name it (a URL without its password) and what the
                // database said, no patient data.
                self.log.line(format!(
                    "error: {}; the batch was not stored (LINE will redeliver)",
                    crate::printable::printable(&error.to_string())
                ));
                let _ = self.ledger.rollback();
                held.into_iter().for_each(Held::fail);
                // The work not reached (after the failing item) fails too.
                for work in pending {
                    match work {
                        Work::Webhook { answer, .. } => drop(answer.send(Err(()))),
                        Work::Click { answer, .. } => drop(answer.send(Err(()))),
                        Work::Ping { answer } => drop(answer.send(false)),
                        Work::Stop => {}
                    }
                }
            }
        }
    }

    /// Does one piece of work; its answer is held (a failure too, so that every request in
    /// a failed batch hears of it).
    fn apply(
        &mut self,
        work: Work,
        directory: &PatientDirectory,
        now: DateTime<Utc>,
    ) -> (Held, Result<(), LedgerError>) {
        match work {
            Work::Webhook { events, answer } => {
                let mut replies = Vec::new();
                for event in &events {
                    match self.event(event, directory, now) {
                        Ok(reply) => replies.extend(reply),
                        Err(error) => return (Held::Webhook(answer, Vec::new()), Err(error)),
                    }
                }
                (Held::Webhook(answer, replies), Ok(()))
            }
            Work::Click {
                token,
                count,
                at,
                answer,
            } => match self.click(&token, count, at) {
                Ok(url) => (Held::Click(answer, url), Ok(())),
                Err(error) => (Held::Click(answer, None), Err(error)),
            },
            Work::Ping { answer } => {
                let answers = self.ledger.ping();
                (Held::Ping(answer, answers.is_ok()), answers)
            }
            Work::Stop => (Held::Stopped, Ok(())),
        }
    }

    /// Stores one event and does what it means, once (a redelivery does nothing); returns the
    /// reply to send, if any.
    fn event(
        &mut self,
        event: &Event,
        directory: &PatientDirectory,
        now: DateTime<Utc>,
    ) -> Result<Option<Reply>, LedgerError> {
        // LINE's instants are in the past; one in the future would win every later follow.
        let at = event.at.min(now);
        let user = event.user.as_str();
        let patient = match directory.patient_of_line_user(&event.user) {
            Some(patient) => Some(patient.to_owned()),
            None => self.ledger.linked_patient(user)?,
        };
        let reply_to = |template| {
            let token = event
                .reply_token
                .as_ref()
                .filter(|_| !event.redelivery && !event.standby);
            token.map(|token| Reply {
                token: token.clone(),
                template,
            })
        };
        let mut stored = NewEvent {
            id: &event.id,
            kind: EventKind::Message,
            at,
            line_user: Some(user),
            patient: patient.as_deref(),
            send: None,
            detail: None,
        };
        match &event.body {
            EventBody::Follow { unblocked } => {
                stored.kind = EventKind::Follow;
                stored.detail = unblocked.then_some("unblocked");
                if !self.ledger.record_event(&stored, now)? {
                    return Ok(None);
                }
                self.ledger.set_friend(user, FriendChange::Followed, at)?;
                Ok(patient
                    .is_none()
                    .then(|| reply_to(LinkTemplate::Request))
                    .flatten())
            }
            EventBody::Unfollow => {
                let window = chrono::Duration::hours(BLAME_WINDOW_HOURS);
                let send = match &patient {
                    Some(patient) => self.ledger.last_send_before(patient, at, window)?,
                    None => None,
                };
                stored.kind = EventKind::Unfollow;
                stored.send = send.as_ref();
                if self.ledger.record_event(&stored, now)? {
                    self.ledger.set_friend(user, FriendChange::Blocked, at)?;
                }
                Ok(None)
            }
            EventBody::Postback { data } => {
                stored.kind = EventKind::Postback;
                let tracked = if looks_like_token(data) {
                    self.ledger
                        .tracked(data)?
                        .filter(|t| t.kind == TrackKind::Postback)
                } else {
                    None
                };
                match &tracked {
                    Some(tracked) => {
                        stored.send = Some(&tracked.send);
                        stored.patient = Some(&tracked.send.patient);
                        stored.detail = Some(&tracked.target);
                    }
                    None => stored.detail = Some(data),
                }
                self.ledger.record_event(&stored, now)?;
                Ok(None)
            }
            EventBody::Text(text) => {
                let today = at.with_timezone(&self.timezone).date_naive();
                match attempt::read(text, today) {
                    // A linked patient's message about a date is conversation, not a try.
                    Some(attempt) if patient.is_none() || attempt.id.is_some() => {
                        self.attempt(event, stored, attempt, directory, &reply_to, now)
                    }
                    _ => {
                        self.ledger.record_event(&stored, now)?;
                        Ok(None)
                    }
                }
            }
            EventBody::OtherMessage => {
                self.ledger.record_event(&stored, now)?;
                Ok(None)
            }
            EventBody::AccountLink { result } => {
                stored.kind = EventKind::AccountLink;
                stored.detail = Some(result).filter(|r| !r.is_empty()).map(String::as_str);
                self.ledger.record_event(&stored, now)?;
                Ok(None)
            }
        }
    }

    /// A linking attempt: refused unseen after the day's failures, else linked when the number
    /// and birth date name one patient.
    fn attempt<'a>(
        &mut self,
        event: &Event,
        mut stored: NewEvent<'a>,
        attempt: Attempt,
        directory: &'a PatientDirectory,
        reply_to: &dyn Fn(LinkTemplate) -> Option<Reply>,
        now: DateTime<Utc>,
    ) -> Result<Option<Reply>, LedgerError> {
        let user = event.user.as_str();
        let day = stored
            .at
            .with_timezone(&self.timezone)
            .format("%Y-%m-%d")
            .to_string();
        stored.patient = None;
        if self.ledger.link_attempts(user, &day)?.failures >= MAX_FAILURES_PER_DAY {
            stored.kind = EventKind::LinkFailed;
            stored.detail = Some("locked");
            let new = self.ledger.record_event(&stored, now)?;
            return Ok(new.then(|| reply_to(LinkTemplate::Locked)).flatten());
        }
        let found = match attempt.id.as_deref() {
            Some(id) => directory.find(id, attempt.birth_date),
            None => Found::None,
        };
        match found {
            Found::One(patient) => {
                stored.kind = EventKind::Link;
                stored.patient = Some(patient);
                if !self.ledger.record_event(&stored, now)? {
                    return Ok(None);
                }
                self.ledger.link(user, patient, stored.at)?;
                Ok(reply_to(LinkTemplate::Done))
            }
            Found::None => {
                stored.kind = EventKind::LinkFailed;
                if !self.ledger.record_event(&stored, now)? {
                    return Ok(None);
                }
                self.ledger.add_link_failure(user, &day)?;
                Ok(reply_to(LinkTemplate::Failed))
            }
        }
    }

    /// The original URL of a tracked link, recording a click when `count`.
    fn click(
        &mut self,
        token: &str,
        count: bool,
        at: DateTime<Utc>,
    ) -> Result<Option<String>, LedgerError> {
        let Some(tracked) = self
            .ledger
            .tracked(token)?
            .filter(|t| t.kind == TrackKind::Url)
        else {
            return Ok(None);
        };
        if count {
            let id = format!("click-{}", uuid::Uuid::new_v4());
            let send: &SendRef = &tracked.send;
            self.ledger.record_event(
                &NewEvent {
                    id: &id,
                    kind: EventKind::Click,
                    at,
                    line_user: None,
                    patient: None,
                    send: Some(send),
                    detail: Some(&tracked.target),
                },
                at,
            )?;
        }
        Ok(Some(tracked.target))
    }
}

/// A tracked token's shape: base64url, 16 to 64 characters (steprule's are 22 or more).
pub fn looks_like_token(text: &str) -> bool {
    (16..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::link::DirectoryBuilder;
    use crate::serve::webhook::LineUser;

    fn event(id: &str, body: EventBody) -> Event {
        Event {
            id: id.into(),
            at: Utc::now(),
            user: LineUser::parse("U0123456789abcdef0123456789abcdef").unwrap(),
            reply_token: Some("rt".into()),
            redelivery: false,
            standby: false,
            body,
        }
    }

    fn writer(dir: &std::path::Path) -> Writer {
        let (log, _) = Log::start(Box::new(std::io::sink()));
        Writer {
            ledger: Box::new(crate::ledger::Ledger::open(&dir.join("l.db")).unwrap()),
            directory: Arc::new(SharedDirectory::new(DirectoryBuilder::default().finish())),
            timezone: chrono_tz::Asia::Tokyo,
            log,
        }
    }

    fn webhook(writer: &mut Writer, events: Vec<Event>) -> Result<Vec<Reply>, ()> {
        let (answer, mut answered) = oneshot::channel();
        writer.batch(vec![Work::Webhook { events, answer }]);
        answered.try_recv().unwrap()
    }

    #[test]
    fn replies_are_given_once_and_not_for_redeliveries_or_standby() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = writer(dir.path());
        let follow = event("01A", EventBody::Follow { unblocked: false });
        let asked = webhook(&mut writer, vec![follow.clone()]).unwrap();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].template, LinkTemplate::Request);
        // The same event again: stored already, no second reply.
        assert!(webhook(&mut writer, vec![follow]).unwrap().is_empty());
        let mut late = event("01B", EventBody::Follow { unblocked: true });
        late.redelivery = true;
        let mut standby = event("01C", EventBody::Follow { unblocked: false });
        standby.standby = true;
        assert!(webhook(&mut writer, vec![late, standby])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_batch_whose_ledger_went_away_is_answered_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = writer(dir.path());
        // The ledger file is moved away under the writer: the commit says so, and every
        // request in the batch hears it (LINE then redelivers to a server with its ledger).
        std::fs::rename(dir.path().join("l.db"), dir.path().join("moved.db")).unwrap();
        let follow = event("01D", EventBody::Follow { unblocked: false });
        assert_eq!(webhook(&mut writer, vec![follow]), Err(()));
        let (answer, mut answered) = oneshot::channel();
        writer.batch(vec![Work::Ping { answer }]);
        assert_eq!(answered.try_recv(), Ok(false));
    }
}
