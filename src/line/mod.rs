//! A LINE message as steprule sends it, and everything LINE (or steprule's own URL rule)
//! requires of one: its limits, the links in it, and the tracked form of those links.
//!
//! Ground level, so that `template` builds messages, `check` checks them for a sample patient
//! and `deliver` sends them with one type and one set of rules: a [`Message`] serialises to
//! exactly the JSON LINE's push API takes, and [`limits`] is the only place LINE's limits are
//! written down.
//!
//! The simple template form makes three kinds of message, typed here; `line_json` lets a
//! designer write any message object LINE knows (flex, imagemap, template, sticker…), which
//! stays JSON ([`Message::Json`]) and is read by the keys LINE gives its strings.

pub mod insight;
mod json;
pub mod limits;
mod parts;
pub mod track;
pub mod unit;
pub mod urls;

#[cfg(test)]
mod tests;

pub(crate) use json::json_string_into;
pub use json::messages_json;
pub use limits::Finding;
#[cfg(test)]
use limits::LimitKind;
pub use parts::Role;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value as Json;

/// One message object of a push (LINE takes at most [`limits::MAX_MESSAGES`] per push).
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A text message; LINE turns the URLs in its text into links.
    Text { text: String },
    /// An image message; `original` is shown full size, `preview` in the chat.
    Image { original: String, preview: String },
    /// The simple form's button card: a Flex bubble with an optional image on top and its
    /// buttons at the bottom.
    Card(Card),
    /// A message object as written in a template's `line_json` (and rendered).
    Json(Json),
}

/// A Flex bubble with call-to-action buttons, e.g. 「ご予約はこちら」 opening the booking page.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    /// The notification text (`altText`): what a lock screen shows.
    pub alt_text: String,
    /// The image on top (`hero`), if any.
    pub hero: Option<String>,
    /// The first button is highlighted (`primary`), the others are links.
    pub buttons: Vec<Button>,
}

/// A button of a [`Card`], opening `uri` when tapped.
#[derive(Debug, Clone, PartialEq)]
pub struct Button {
    pub label: String,
    pub uri: String,
}

impl Message {
    /// The message's `type`, as LINE names it (`None` for hand-written JSON without one).
    pub fn kind(&self) -> Option<&str> {
        match self {
            Message::Text { .. } => Some("text"),
            Message::Image { .. } => Some("image"),
            Message::Card(_) => Some("flex"),
            Message::Json(json) => json.get("type").and_then(Json::as_str),
        }
    }
}

// The JSON is written with its keys in sorted order, as `serde_json::Value` writes an object:
// the bytes of the outbox and of a push are the same as when messages were built as JSON.

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Message::Text { text } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("text", text)?;
                map.serialize_entry("type", "text")?;
                map.end()
            }
            Message::Image { original, preview } => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("originalContentUrl", original)?;
                map.serialize_entry("previewImageUrl", preview)?;
                map.serialize_entry("type", "image")?;
                map.end()
            }
            Message::Card(card) => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("altText", &card.alt_text)?;
                map.serialize_entry("contents", &Bubble(card))?;
                map.serialize_entry("type", "flex")?;
                map.end()
            }
            Message::Json(json) => json.serialize(serializer),
        }
    }
}

/// `{"footer": {…buttons…}, "hero": {…image…}, "type": "bubble"}`.
struct Bubble<'a>(&'a Card);

impl Serialize for Bubble<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let card = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("footer", &Footer(&card.buttons))?;
        if let Some(url) = &card.hero {
            map.serialize_entry("hero", &Hero(url))?;
        }
        map.serialize_entry("type", "bubble")?;
        map.end()
    }
}

struct Footer<'a>(&'a [Button]);

impl Serialize for Footer<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let buttons: Vec<ButtonJson<'_>> = self
            .0
            .iter()
            .enumerate()
            .map(|(index, button)| ButtonJson {
                button,
                primary: index == 0,
            })
            .collect();
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("contents", &buttons)?;
        map.serialize_entry("layout", "vertical")?;
        map.serialize_entry("spacing", "sm")?;
        map.serialize_entry("type", "box")?;
        map.end()
    }
}

struct ButtonJson<'a> {
    button: &'a Button,
    primary: bool,
}

impl Serialize for ButtonJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("action", &UriAction(self.button))?;
        map.serialize_entry("style", if self.primary { "primary" } else { "link" })?;
        map.serialize_entry("type", "button")?;
        map.end()
    }
}

struct UriAction<'a>(&'a Button);

impl Serialize for UriAction<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("label", &self.0.label)?;
        map.serialize_entry("type", "uri")?;
        map.serialize_entry("uri", &self.0.uri)?;
        map.end()
    }
}

struct Hero<'a>(&'a str);

impl Serialize for Hero<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("aspectMode", "cover")?;
        map.serialize_entry("size", "full")?;
        map.serialize_entry("type", "image")?;
        map.serialize_entry("url", self.0)?;
        map.end()
    }
}
