//! Replies to LINE events with the link templates, sent after the events are committed and
//! after LINE has its 200 (LINE waits for no reply). The four templates hold nothing about a
//! patient, so each is rendered once, at start, with the clinic's context.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::log::Log;
use super::writer::{LinkTemplate, Reply};
use crate::deliver::LineClient;
use crate::line::Message;

/// Replies in flight at once; past that a reply is dropped with a warning (a reply token is
/// only good for a short while, so a long queue would only send stale replies).
const IN_FLIGHT: usize = 64;

/// The rendered link templates, ready to send.
#[derive(Debug, Clone, Default)]
pub struct LinkMessages {
    pub request: Vec<Message>,
    pub done: Vec<Message>,
    pub failed: Vec<Message>,
    pub locked: Vec<Message>,
}

impl LinkMessages {
    fn of(&self, template: LinkTemplate) -> &[Message] {
        match template {
            LinkTemplate::Request => &self.request,
            LinkTemplate::Done => &self.done,
            LinkTemplate::Failed => &self.failed,
            LinkTemplate::Locked => &self.locked,
        }
    }
}

/// Sends replies through LINE, or says once that it cannot.
pub struct Replier {
    client: Option<LineClient>,
    messages: LinkMessages,
    permits: Arc<Semaphore>,
    warned: AtomicBool,
    log: Log,
}

impl Replier {
    pub fn new(client: Option<LineClient>, messages: LinkMessages, log: Log) -> Self {
        Replier {
            client,
            messages,
            permits: Arc::new(Semaphore::new(IN_FLIGHT)),
            warned: AtomicBool::new(false),
            log,
        }
    }

    /// Starts sending `replies` on the current runtime; returns at once.
    pub fn send(self: &Arc<Self>, replies: Vec<Reply>) {
        for reply in replies {
            let Some(client) = &self.client else {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    self.log.line(
                        "warning: LINE_CHANNEL_ACCESS_TOKEN is not set: replies (link_request, \
                         link_done, link_failed, link_locked) are not sent",
                    );
                }
                return;
            };
            let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                self.log.line(format!(
                    "warning: too many replies in flight; {} not sent",
                    reply.template.name()
                ));
                continue;
            };
            let client = client.clone();
            let this = Arc::clone(self);
            tokio::spawn(async move {
                let _permit = permit;
                let messages = this.messages.of(reply.template);
                if let Err(error) = client.reply(&reply.token, messages).await {
                    this.log.line(format!(
                        "warning: the {} reply failed: {}",
                        reply.template.name(),
                        crate::printable::printable(&error)
                    ));
                }
            });
        }
    }

    /// Waits (at most `limit`) for the replies in flight to finish.
    pub async fn drain(&self, limit: Duration) {
        let all = u32::try_from(IN_FLIGHT).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(limit, self.permits.acquire_many(all)).await;
    }
}
