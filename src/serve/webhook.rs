//! LINE's webhook body → typed events. Only what steprule uses is read, and everything is
//! bounded: events per body, id and token shapes, postback data, message text. A body that
//! LINE could not have sent (a malformed user id, an event without its id) is refused whole,
//! so that nothing of it is stored; event types steprule has no use for are accepted and not
//! stored.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Events in one body. LINE sends a few at a time; 1 MiB of the smallest events LINE could
/// send is about 3,000.
pub const MAX_EVENTS: usize = 1000;
/// LINE allows postback data of up to 300 characters; anything longer is cut.
pub const MAX_POSTBACK_CHARS: usize = 300;
/// LINE's longest text message. A longer text is not a linking attempt.
pub const MAX_TEXT_CHARS: usize = 5000;
/// An account-link result (`ok` or `failed`) is kept with at most this many characters.
const MAX_RESULT_CHARS: usize = 16;
/// `webhookEventId` is a ULID (26 characters); anything past this is not LINE's.
const MAX_EVENT_ID: usize = 64;
const MAX_REPLY_TOKEN: usize = 256;

/// A LINE user id: `U` and 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LineUser(String);

impl LineUser {
    pub fn parse(text: &str) -> Option<LineUser> {
        let hex = text.strip_prefix('U')?;
        let valid = hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| LineUser(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One event steprule acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// LINE's `webhookEventId`: the same event redelivered has the same one.
    pub id: String,
    pub at: DateTime<Utc>,
    pub user: LineUser,
    /// For one reply, shortly after the event.
    pub reply_token: Option<String>,
    /// `deliveryContext.isRedelivery`.
    pub redelivery: bool,
    /// `mode: standby`: another channel answers this user; steprule only records.
    pub standby: bool,
    pub body: EventBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventBody {
    Follow {
        unblocked: bool,
    },
    Unfollow,
    Postback {
        data: String,
    },
    /// A text message (its text is only ever used to try linking, never stored).
    Text(String),
    /// A sticker, image or any other message that is not text.
    OtherMessage,
    AccountLink {
        result: String,
    },
}

/// The events of one webhook body, and how many were not for steprule.
#[derive(Debug, Default)]
pub struct Webhook {
    pub events: Vec<Event>,
    pub ignored: usize,
}

/// Why a body was refused (400). Says which event and what, never a value from the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the body is not a LINE webhook: {0}")]
    NotAWebhook(String),
    #[error("{0} events in one body; at most {MAX_EVENTS} are taken")]
    TooManyEvents(usize),
    #[error("event {index}: {what}")]
    Event { index: usize, what: &'static str },
}

#[derive(Deserialize)]
struct RawBody {
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    webhook_event_id: Option<String>,
    timestamp: Option<i64>,
    source: Option<RawSource>,
    reply_token: Option<String>,
    mode: Option<String>,
    delivery_context: Option<RawDelivery>,
    follow: Option<RawFollow>,
    postback: Option<RawPostback>,
    message: Option<RawMessage>,
    link: Option<RawLink>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSource {
    user_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDelivery {
    #[serde(default)]
    is_redelivery: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFollow {
    #[serde(default)]
    is_unblocked: bool,
}

#[derive(Deserialize)]
struct RawPostback {
    data: Option<String>,
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize)]
struct RawLink {
    result: Option<String>,
}

/// Reads a webhook body (already known to be signed by LINE).
pub fn parse(body: &[u8]) -> Result<Webhook, WebhookError> {
    let raw: RawBody = serde_json::from_slice(body).map_err(|e| {
        // serde_json's own message can quote a value (`invalid type: string "…"`): only its
        // category and place are kept.
        let what = match e.classify() {
            serde_json::error::Category::Data => "not the shape of LINE's events",
            serde_json::error::Category::Eof => "the JSON ends too early",
            _ => "not valid JSON (or nested too deeply)",
        };
        WebhookError::NotAWebhook(format!("{what} (line {}, column {})", e.line(), e.column()))
    })?;
    if raw.events.len() > MAX_EVENTS {
        return Err(WebhookError::TooManyEvents(raw.events.len()));
    }
    let mut webhook = Webhook::default();
    for (index, event) in raw.events.into_iter().enumerate() {
        match typed(event).map_err(|what| WebhookError::Event { index, what })? {
            Some(event) => webhook.events.push(event),
            None => webhook.ignored += 1,
        }
    }
    Ok(webhook)
}

/// The event, `None` for a type steprule does not use (or one from a group without a user).
fn typed(raw: RawEvent) -> Result<Option<Event>, &'static str> {
    let user = match raw.source.as_ref().and_then(|s| s.user_id.as_deref()) {
        Some(id) => Some(LineUser::parse(id).ok_or("the user id is not a LINE user id")?),
        None => None,
    };
    let body = match raw.kind.as_str() {
        "follow" => EventBody::Follow {
            unblocked: raw.follow.is_some_and(|f| f.is_unblocked),
        },
        "unfollow" => EventBody::Unfollow,
        "postback" => {
            let data = raw
                .postback
                .and_then(|p| p.data)
                .ok_or("a postback without data")?;
            EventBody::Postback {
                data: data.chars().take(MAX_POSTBACK_CHARS).collect(),
            }
        }
        "message" => {
            let message = raw.message.ok_or("a message event without a message")?;
            match (message.kind.as_str(), message.text) {
                ("text", Some(text)) if text.chars().count() <= MAX_TEXT_CHARS => {
                    EventBody::Text(text)
                }
                ("text", Some(_)) => EventBody::OtherMessage,
                ("text", None) => return Err("a text message without text"),
                _ => EventBody::OtherMessage,
            }
        }
        "accountLink" => EventBody::AccountLink {
            result: raw
                .link
                .and_then(|l| l.result)
                .unwrap_or_default()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(MAX_RESULT_CHARS)
                .collect(),
        },
        _ => return Ok(None),
    };
    let Some(user) = user else {
        return Ok(None);
    };
    let id = raw.webhook_event_id.ok_or("no webhookEventId")?;
    if id.is_empty() || id.len() > MAX_EVENT_ID || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("the webhookEventId is not a LINE event id");
    }
    let at = raw
        .timestamp
        .filter(|ms| *ms > 0)
        .and_then(DateTime::from_timestamp_millis)
        .ok_or("no valid timestamp")?;
    // A token that is not LINE's shape is never sent back to LINE: no reply for that event.
    let reply_token = raw.reply_token.filter(|t| {
        !t.is_empty()
            && t.len() <= MAX_REPLY_TOKEN
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    Ok(Some(Event {
        id,
        at,
        user,
        reply_token,
        redelivery: raw.delivery_context.is_some_and(|d| d.is_redelivery),
        standby: raw.mode.as_deref() == Some("standby"),
        body,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "U4af4980629a1b2c3d4e5f60718293a4b";

    fn event(fields: &str) -> String {
        format!(
            r#"{{"destination":"Uxx","events":[{{"webhookEventId":"01JD0000000000000000000000",
               "timestamp":1764115200123,"source":{{"type":"user","userId":"{USER}"}},
               "deliveryContext":{{"isRedelivery":false}},"mode":"active",{fields}}}]}}"#
        )
    }

    #[test]
    fn the_five_event_kinds_are_read() {
        let follow = parse(
            event(r#""type":"follow","replyToken":"abc123","follow":{"isUnblocked":true}"#)
                .as_bytes(),
        )
        .unwrap();
        let e = &follow.events[0];
        assert_eq!(e.body, EventBody::Follow { unblocked: true });
        assert_eq!(e.user.as_str(), USER);
        assert_eq!(e.reply_token.as_deref(), Some("abc123"));
        assert_eq!(e.at.timestamp_millis(), 1764115200123);
        assert!(!e.redelivery && !e.standby);
        let unfollow = parse(event(r#""type":"unfollow""#).as_bytes()).unwrap();
        assert_eq!(unfollow.events[0].body, EventBody::Unfollow);
        let long = "x".repeat(400);
        let postback = parse(
            event(&format!(
                r#""type":"postback","postback":{{"data":"{long}"}}"#
            ))
            .as_bytes(),
        )
        .unwrap();
        assert!(
            matches!(&postback.events[0].body, EventBody::Postback { data } if data.len() == 300)
        );
        let text = parse(
            event(
                r#""type":"message","message":{"type":"text","id":"1","text":"P0001 1980-01-02"}"#,
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            text.events[0].body,
            EventBody::Text("P0001 1980-01-02".into())
        );
        let sticker =
            parse(event(r#""type":"message","message":{"type":"sticker","id":"1"}"#).as_bytes())
                .unwrap();
        assert_eq!(sticker.events[0].body, EventBody::OtherMessage);
        let link =
            parse(event(r#""type":"accountLink","link":{"result":"ok","nonce":"n"}"#).as_bytes())
                .unwrap();
        assert_eq!(
            link.events[0].body,
            EventBody::AccountLink {
                result: "ok".into()
            }
        );
    }

    #[test]
    fn unknown_types_and_events_without_a_user_are_ignored() {
        let body = event(r#""type":"beacon","beacon":{"hwid":"d41d8cd98f","type":"enter"}"#);
        let webhook = parse(body.as_bytes()).unwrap();
        assert!(webhook.events.is_empty());
        assert_eq!(webhook.ignored, 1);
        let group = r#"{"events":[{"type":"message","webhookEventId":"01A","timestamp":1,
            "source":{"type":"group","groupId":"Cxx"},"message":{"type":"text","text":"hi"}}]}"#;
        assert_eq!(parse(group.as_bytes()).unwrap().ignored, 1);
        // LINE's verify button sends an empty list.
        assert!(parse(br#"{"destination":"U1","events":[]}"#)
            .unwrap()
            .events
            .is_empty());
    }

    #[test]
    fn redelivery_standby_and_odd_reply_tokens() {
        let body = event(r#""type":"follow","replyToken":"bad token!""#)
            .replace(r#""isRedelivery":false"#, r#""isRedelivery":true"#)
            .replace(r#""mode":"active""#, r#""mode":"standby""#);
        let e = &parse(body.as_bytes()).unwrap().events[0];
        assert!(e.redelivery && e.standby);
        assert_eq!(e.reply_token, None);
    }

    #[test]
    fn bodies_line_could_not_have_sent_are_refused() {
        assert!(matches!(
            parse(b"not json"),
            Err(WebhookError::NotAWebhook(_))
        ));
        assert!(matches!(
            parse(b"{\"events\":{}}"),
            Err(WebhookError::NotAWebhook(_))
        ));
        assert!(matches!(
            parse(&[0xff, 0xfe, b'{']),
            Err(WebhookError::NotAWebhook(_))
        ));
        let bad_user = event(r#""type":"unfollow""#).replace(USER, "Uxyz");
        assert!(matches!(
            parse(bad_user.as_bytes()),
            Err(WebhookError::Event { index: 0, .. })
        ));
        let no_id = event(r#""type":"unfollow""#).replace("01JD0000000000000000000000", "");
        assert!(parse(no_id.as_bytes()).is_err());
        let bad_time = event(r#""type":"unfollow""#).replace("1764115200123", "-5");
        assert!(parse(bad_time.as_bytes()).is_err());
        let many = format!(
            r#"{{"events":[{}]}}"#,
            vec![r#"{"type":"x"}"#; MAX_EVENTS + 1].join(",")
        );
        assert_eq!(
            parse(many.as_bytes()).unwrap_err(),
            WebhookError::TooManyEvents(MAX_EVENTS + 1)
        );
    }

    #[test]
    fn deep_nesting_is_skipped_or_refused_never_a_crash() {
        let (open, close) = ("[".repeat(100_000), "]".repeat(100_000));
        // In a field steprule does not read: skipped without recursion.
        let ignored = format!(r#"{{"events":[{{"type":"x","extra":{open}{close}}}]}}"#);
        assert_eq!(parse(ignored.as_bytes()).unwrap().ignored, 1);
        // Where an event should be: refused.
        let refused = format!(r#"{{"events":{open}{close}}}"#);
        assert!(matches!(
            parse(refused.as_bytes()),
            Err(WebhookError::NotAWebhook(_))
        ));
    }

    #[test]
    fn errors_never_quote_the_body() {
        let secret_text = event(r#""type":"message","message":{"type":"text","text":12345}"#);
        let message = parse(secret_text.as_bytes()).unwrap_err().to_string();
        assert!(!message.contains("12345"), "{message}");
    }
}
