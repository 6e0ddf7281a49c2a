//! Webhook bodies as LINE sends them, signed with [`crate::SECRET`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

/// `x-line-signature` for `body`.
pub fn sign(body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, crate::SECRET.as_bytes());
    STANDARD.encode(ring::hmac::sign(&key, body).as_ref())
}

/// The LINE user id number `n`.
pub fn user(n: u32) -> String {
    format!("U{n:032x}")
}

/// A webhook body holding `events`.
pub fn body(events: &[Value]) -> Vec<u8> {
    serde_json::to_vec(
        &json!({ "destination": "U0000000000000000000000000000dead", "events": events }),
    )
    .unwrap()
}

/// An event of `kind` from user `n` at `ms` (milliseconds since 1970), with `extra` fields.
pub fn event(kind: &str, id: &str, n: u32, ms: i64, extra: Value) -> Value {
    let mut event = json!({
        "type": kind,
        "mode": "active",
        "timestamp": ms,
        "source": { "type": "user", "userId": user(n) },
        "webhookEventId": id,
        "deliveryContext": { "isRedelivery": false },
    });
    if let (Value::Object(event), Value::Object(extra)) = (&mut event, extra) {
        event.extend(extra);
    }
    event
}

pub fn follow(id: &str, n: u32, ms: i64, reply: &str) -> Value {
    event(
        "follow",
        id,
        n,
        ms,
        json!({ "replyToken": reply, "follow": { "isUnblocked": false } }),
    )
}

pub fn unfollow(id: &str, n: u32, ms: i64) -> Value {
    event("unfollow", id, n, ms, json!({}))
}

pub fn text(id: &str, n: u32, ms: i64, reply: &str, text: &str) -> Value {
    event(
        "message",
        id,
        n,
        ms,
        json!({ "replyToken": reply, "message": { "type": "text", "id": "1", "text": text } }),
    )
}

pub fn postback(id: &str, n: u32, ms: i64, data: &str) -> Value {
    event(
        "postback",
        id,
        n,
        ms,
        json!({ "replyToken": "r", "postback": { "data": data } }),
    )
}

/// Now, in LINE's milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
