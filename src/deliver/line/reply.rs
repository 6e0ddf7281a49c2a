//! The reply endpoint (`POST /v2/bot/message/reply`), for `serve`: one answer to an event, with
//! the event's reply token, through the same checked base URL, token and redaction as pushes.

use reqwest::Url;
use serde_json::json;

use super::{describe, line_message, LineClient};
use crate::line::Message;

/// LINE takes at most five messages in one reply.
pub const MAX_REPLY_MESSAGES: usize = 5;

impl LineClient {
    /// Replies to the event whose reply token is `reply_token`. The error is redacted and
    /// names no user (a reply token identifies none).
    pub async fn reply(&self, reply_token: &str, messages: &[Message]) -> Result<(), String> {
        let messages = &messages[..messages.len().min(MAX_REPLY_MESSAGES)];
        let body = json!({ "replyToken": reply_token, "messages": messages });
        let response = self
            .http
            .post(self.reply_url())
            .bearer_auth(&self.token.0)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.redactor.redact(&describe(e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let message = line_message(&self.redactor.redact(&body));
        Err(self
            .redactor
            .redact(&format!("LINE answered {status}{message}")))
    }

    /// The reply endpoint beside the push endpoint, under the same checked base.
    fn reply_url(&self) -> Url {
        let mut url = self.push_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop().push("reply");
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::ChannelToken;

    #[test]
    fn the_reply_endpoint_keeps_the_base_path() {
        let client = |base: &str| LineClient::new(base, ChannelToken::new("t".into())).unwrap();
        assert_eq!(
            client("https://api.line.me").reply_url().as_str(),
            "https://api.line.me/v2/bot/message/reply"
        );
        assert_eq!(
            client("https://proxy.example/line/").reply_url().as_str(),
            "https://proxy.example/line/v2/bot/message/reply"
        );
    }
}
