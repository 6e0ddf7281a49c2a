//! What LINE checks in a push request before it delivers anything: the JSON body's shape, the
//! retry key's form and the recipient's id.

use axum::http::HeaderMap;
use serde_json::Value;

/// `to`, the aggregation unit ("" when none) and the messages, or what LINE would say is wrong.
pub(super) fn parse_body(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, String, Value), String> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(format!(
            "Content-Type is `{content_type}`, not application/json"
        ));
    }
    let body: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let to = body["to"]
        .as_str()
        .ok_or("The property, 'to', is missing or not a string")?
        .to_owned();
    let messages = body["messages"]
        .as_array()
        .ok_or("The property, 'messages', is missing or not an array")?;
    if messages.is_empty() || messages.len() > 5 {
        return Err(format!("{} messages: LINE takes 1 to 5", messages.len()));
    }
    for message in messages {
        let kind = message["type"]
            .as_str()
            .ok_or("a message without a `type`")?;
        if kind == "text" && message["text"].as_str().is_none_or(str::is_empty) {
            return Err("a text message without text".into());
        }
    }
    let unit = match body.get("customAggregationUnits") {
        None => String::new(),
        Some(units) => {
            let units = units
                .as_array()
                .filter(|u| u.len() == 1)
                .ok_or("customAggregationUnits must hold exactly one unit")?;
            let unit = units[0].as_str().unwrap_or("");
            let ok = (1..=30).contains(&unit.len())
                && unit.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(format!("bad customAggregationUnits entry {}", units[0]));
            }
            unit.to_owned()
        }
    };
    Ok((to, unit, Value::Array(messages.clone())))
}

/// `8-4-4-4-12` hex digits.
pub(super) fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// LINE user ids are `U` and 32 lower-case hex digits.
pub(super) fn is_line_user_id(text: &str) -> bool {
    text.len() == 33
        && text.starts_with('U')
        && text[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
