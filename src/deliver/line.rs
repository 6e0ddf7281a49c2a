//! The LINE Messaging API push endpoint: one request per send, with the ledger's retry key so
//! that LINE itself drops a duplicate.

use std::time::Duration;

use serde_json::json;

use super::{Answer, Job};

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

/// Unit names for per-step statistics: at most 30 characters, ASCII letters, digits and `_`.
pub const MAX_UNIT_NAME: usize = 30;

#[derive(Debug, Clone)]
pub struct LineClient {
    http: reqwest::Client,
    base: String,
    token: ChannelToken,
}

impl LineClient {
    pub fn new(base: &str, token: ChannelToken) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
        Ok(LineClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    pub async fn push(&self, job: &Job, aggregation: bool) -> Answer {
        let mut body = json!({ "to": job.to, "messages": job.messages });
        if aggregation {
            body["customAggregationUnits"] = json!([unit_name(&job.step)]);
        }
        let request = self
            .http
            .post(format!("{}/v2/bot/message/push", self.base))
            .bearer_auth(&self.token.0)
            .header("X-Line-Retry-Key", &job.retry_key)
            .json(&body);
        let response = match request.send().await {
            Ok(response) => response,
            // The request may or may not have reached LINE: retry with the same key.
            Err(error) => {
                return Answer::Retry {
                    after: None,
                    error: describe(error),
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
        let retry_after = header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if status.is_success() {
            return Answer::Accepted { request_id };
        }
        if status.as_u16() == 409 {
            if let Some(id) = accepted_id {
                return Answer::AlreadyAccepted {
                    request_id: Some(id),
                    note: None,
                };
            }
        }
        let message = line_message(response.text().await.unwrap_or_default());
        let error = format!("LINE answered {status}{message}");
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
                after: retry_after,
                error,
            }
        } else {
            Answer::Rejected { error }
        }
    }
}

/// The step id as a LINE aggregation unit name.
pub fn unit_name(step: &str) -> String {
    step.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_UNIT_NAME)
        .collect()
}

/// LINE's error `message`, shortened; never the request (which holds the token header).
fn line_message(body: String) -> String {
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or(body);
    let short: String = message.chars().take(300).collect();
    if short.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", short.trim())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_fit_line_rules() {
        assert_eq!(unit_name("visit_reminder"), "visit_reminder");
        assert_eq!(unit_name(&"a".repeat(40)).len(), MAX_UNIT_NAME);
        assert_eq!(unit_name("x-y"), "x_y");
    }

    #[test]
    fn the_token_is_never_in_debug_output() {
        let token = ChannelToken::new("secret-token".into());
        let client = LineClient::new("http://127.0.0.1:1", token).unwrap();
        assert!(!format!("{client:?}").contains("secret-token"));
    }

    #[test]
    fn line_error_messages_are_short_and_plain() {
        assert_eq!(
            line_message(r#"{"message":"The request body has 1 error(s)"}"#.into()),
            ": The request body has 1 error(s)"
        );
        assert_eq!(line_message(String::new()), "");
    }
}
