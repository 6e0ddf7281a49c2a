//! The LINE Messaging API push endpoint: one request per send, with the ledger's retry key so
//! that LINE itself drops a duplicate.

mod base;
mod insight;
mod redact;
mod reply;
mod retry_after;
#[cfg(test)]
mod tests;

use std::time::Duration;

use chrono::Utc;
use reqwest::Url;
use serde::Serialize;

use super::{Answer, Job};
use crate::line::unit::unit_name;
use crate::line::Message;
use crate::printable::printable;
use redact::Redactor;
use retry_after::parse_retry_after;

pub use base::LineClientError;
pub use insight::InsightError;
pub use retry_after::RETRY_AFTER_CAP;

/// The channel access token. Never printed: its `Debug` is a placeholder, and it only ever
/// leaves the process in the `Authorization` header.
#[derive(Clone)]
pub struct ChannelToken(String);

impl ChannelToken {
    pub fn new(token: String) -> Self {
        ChannelToken(token)
    }
}

impl std::fmt::Debug for ChannelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelToken(***)")
    }
}

/// LINE's API host.
pub const DEFAULT_API_BASE: &str = "https://api.line.me";

/// How long one push may take before it counts as failed (and is retried with the same key).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of LINE's error message is kept.
const MESSAGE_LIMIT: usize = 300;

/// The clinic's LINE Official Account as an API client: pushes one message set per send.
#[derive(Debug, Clone)]
pub struct LineClient {
    http: reqwest::Client,
    push_url: Url,
    token: ChannelToken,
    redactor: Redactor,
}

impl LineClient {
    /// Checks `base` (see [`LineClientError`]) before anything is sent to it.
    pub fn new(base: &str, token: ChannelToken) -> Result<Self, LineClientError> {
        let redactor = Redactor::new(&token.0);
        let base = base::check_base(base, &redactor)?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| LineClientError::HttpClient(redactor.redact(&e.to_string())))?;
        Ok(LineClient {
            http,
            push_url: base::push_url(&base)?,
            token,
            redactor,
        })
    }

    pub async fn push(&self, job: &Job, aggregation: bool) -> Answer {
        let body = Push {
            custom_aggregation_units: aggregation
                .then(|| [unit_name(&job.step, job.variant.as_deref())]),
            messages: &job.messages,
            to: &job.to,
        };
        let request = self
            .http
            .post(self.push_url.clone())
            .bearer_auth(&self.token.0)
            .header("X-Line-Retry-Key", &job.retry_key)
            .json(&body);
        let response = match request.send().await {
            Ok(response) => response,
            // The request may or may not have reached LINE: retry with the same key.
            Err(error) => {
                return Answer::Retry {
                    after: None,
                    asked: None,
                    error: self.redactor.redact(&describe(error)),
                }
            }
        };
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let request_id = header("x-line-request-id");
        let accepted_id = header("x-line-accepted-request-id");
        let asked = header("retry-after").and_then(|v| parse_retry_after(&v, Utc::now()));
        if status.is_success() {
            return Answer::Accepted { request_id };
        }
        // LINE's only 409 for a push: this retry key was accepted before. The header naming
        // the delivering request is documented but may be missing (a proxy dropped it); the
        // message went out all the same, and must not be sent again.
        if status == reqwest::StatusCode::CONFLICT {
            return Answer::AlreadyAccepted {
                note: accepted_id.is_none().then(|| {
                    "LINE answered 409 without x-line-accepted-request-id: accepted by an earlier \
                     request whose id is unknown"
                        .to_owned()
                }),
                request_id: accepted_id,
            };
        }
        let body = response.text().await.unwrap_or_default();
        let message = line_message(&self.redactor.redact(&body));
        let error = self
            .redactor
            .redact(&format!("LINE answered {status}{message}"));
        if status.as_u16() == 401 {
            // The token, not the message: every send would be refused alike. Nothing is
            // failed for good; the run stops asking and the sends wait for a valid token.
            return Answer::Unavailable {
                error: format!(
                    "{error}; check LINE_CHANNEL_ACCESS_TOKEN (the channel access token was \
                     refused)"
                ),
            };
        }
        if status.as_u16() == 429 || status.is_server_error() {
            Answer::Retry {
                after: asked.map(|wish| wish.min(RETRY_AFTER_CAP)),
                asked,
                error,
            }
        } else {
            Answer::Rejected { error }
        }
    }
}

/// The body of a push, its keys in sorted order as a JSON object was written before messages
/// were typed, so the bytes LINE receives are the same.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Push<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_aggregation_units: Option<[String; 1]>,
    messages: &'a [Message],
    to: &'a str,
}

/// LINE's error `message` (or the body, when it is not LINE's JSON), shortened and with control
/// characters escaped: it is the server's text, stored in the ledger and shown to people.
fn line_message(body: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    let short: String = message.trim().chars().take(MESSAGE_LIMIT).collect();
    if short.is_empty() {
        String::new()
    } else {
        format!(": {}", printable(short.trim()))
    }
}

fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // The innermost cause says what happened ("Connection refused"); reqwest's own message
    // only says that sending failed. Neither holds the request's headers.
    let error = error.without_url();
    let mut cause: &dyn std::error::Error = &error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    format!("{kind}: {cause}")
}
