//! The strings of a message that LINE's limits and tracking care about, and what each one is:
//! a typed message knows its own; a `line_json` object is read by the keys LINE gives them.

use serde_json::Value as Json;

use super::Message;

/// What a string in a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The text of a text message: LINE turns the URLs in it into links.
    Text,
    /// The notification text of a card (`altText`).
    AltText,
    /// The label of a button or action.
    Label,
    /// A URL that opens when tapped (`uri`, `linkUri`, `altUri.desktop`).
    Link,
    /// A URL LINE fetches itself to show an image (`originalContentUrl`, `url`, …).
    Image,
    /// What a postback action sends back when tapped (`data`).
    PostbackData,
}

/// Keys whose values open links, and keys whose values are images LINE fetches.
const LINK_KEYS: &[&str] = &["uri", "linkUri"];
const IMAGE_KEYS: &[&str] = &[
    "url",
    "originalContentUrl",
    "previewImageUrl",
    "thumbnailImageUrl",
];
/// Action types whose `data` comes back in a postback event.
const POSTBACK_ACTIONS: &[&str] = &["postback", "datetimepicker"];

/// One string of a rendered message with the same string as the template wrote it (before
/// rendering; empty when there is none), so that a rendered URL can be held against its
/// template.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Part<'a> {
    pub role: Role,
    /// The button (0-based) of a card the string belongs to.
    pub button: Option<usize>,
    pub written: &'a str,
    pub value: &'a str,
}

/// The parts of `rendered`, in the order they stand in its JSON, each with its `written`
/// counterpart when `written` has the same shape (rendering only fills in strings).
pub(crate) fn parts<'a>(written: Option<&'a Message>, rendered: &'a Message) -> Vec<Part<'a>> {
    let mut into = Vec::new();
    match (written, rendered) {
        (written, Message::Json(json)) => {
            let written = match written {
                Some(Message::Json(written)) => written,
                _ => &Json::Null,
            };
            walk_json(written, json, Place::TOP, &mut into);
        }
        (written, typed) => {
            // Each part found by its place, with no list of either message's parts: this
            // runs for every send.
            into.reserve_exact(typed_len(typed));
            let typed_parts = (0..).map_while(|index| typed_part(typed, index));
            for (index, (role, button, value)) in typed_parts.enumerate() {
                let written = written
                    .and_then(|written| typed_part(written, index))
                    .filter(|(r, b, _)| *r == role && *b == button)
                    .map_or("", |(_, _, w)| w);
                into.push(Part {
                    role,
                    button,
                    written,
                    value,
                });
            }
        }
    }
    into
}

type TypedPart<'a> = (Role, Option<usize>, &'a str);

/// How many parts a typed message has.
fn typed_len(message: &Message) -> usize {
    match message {
        Message::Text { .. } => 1,
        Message::Image { .. } => 2,
        Message::Card(card) => 1 + 2 * card.buttons.len() + usize::from(card.hero.is_some()),
        Message::Json(_) => 0,
    }
}

/// The part at `index` of a typed message, in the order they stand in its JSON: a text's
/// text; an image's original, then its preview; a card's alt text, each button's label and
/// link, then its hero image.
fn typed_part(message: &Message, index: usize) -> Option<TypedPart<'_>> {
    match message {
        Message::Text { text } => (index == 0).then_some((Role::Text, None, text.as_str())),
        Message::Image { original, preview } => match index {
            0 => Some((Role::Image, None, original.as_str())),
            1 => Some((Role::Image, None, preview.as_str())),
            _ => None,
        },
        Message::Card(card) => {
            if index == 0 {
                return Some((Role::AltText, None, card.alt_text.as_str()));
            }
            let button = (index - 1) / 2;
            match card.buttons.get(button) {
                Some(b) if index % 2 == 1 => Some((Role::Label, Some(button), b.label.as_str())),
                Some(b) => Some((Role::Link, Some(button), b.uri.as_str())),
                None if index == 1 + 2 * card.buttons.len() => {
                    card.hero.as_deref().map(|url| (Role::Image, None, url))
                }
                None => None,
            }
        }
        Message::Json(_) => None,
    }
}

/// Calls `change` on every string of `message` that has a role, in the order of [`parts`],
/// to rewrite it; stops at the first error.
pub(crate) fn rewrite<E>(
    message: &mut Message,
    change: &mut dyn FnMut(Role, &mut String) -> Result<(), E>,
) -> Result<(), E> {
    match message {
        Message::Text { text } => change(Role::Text, text),
        Message::Image { original, preview } => {
            change(Role::Image, original)?;
            change(Role::Image, preview)
        }
        Message::Card(card) => {
            change(Role::AltText, &mut card.alt_text)?;
            for button in &mut card.buttons {
                change(Role::Label, &mut button.label)?;
                change(Role::Link, &mut button.uri)?;
            }
            match &mut card.hero {
                Some(url) => change(Role::Image, url),
                None => Ok(()),
            }
        }
        Message::Json(json) => rewrite_json(json, Place::TOP, change),
    }
}

/// Where a JSON value stands: whether in the message object itself, the message's `type`, and
/// the key of the object or list holding it.
#[derive(Clone, Copy)]
struct Place<'a> {
    top: bool,
    message_type: Option<&'a str>,
    parent_key: Option<&'a str>,
}

impl Place<'_> {
    const TOP: Place<'static> = Place {
        top: true,
        message_type: None,
        parent_key: None,
    };
}

fn role_of(key: &str, place: Place<'_>, object_type: Option<&str>) -> Option<Role> {
    if place.top && key == "text" && place.message_type == Some("text") {
        return Some(Role::Text);
    }
    if place.top && key == "altText" {
        return Some(Role::AltText);
    }
    if key == "label" {
        return Some(Role::Label);
    }
    if LINK_KEYS.contains(&key) || (key == "desktop" && place.parent_key == Some("altUri")) {
        return Some(Role::Link);
    }
    if IMAGE_KEYS.contains(&key) {
        return Some(Role::Image);
    }
    let postback = object_type.is_some_and(|t| POSTBACK_ACTIONS.contains(&t));
    (key == "data" && postback).then_some(Role::PostbackData)
}

/// serde_json reads at most 128 levels, so the recursion is bounded.
fn walk_json<'a>(
    written: &'a Json,
    rendered: &'a Json,
    place: Place<'a>,
    into: &mut Vec<Part<'a>>,
) {
    match rendered {
        Json::Object(map) => {
            let object_type = map.get("type").and_then(Json::as_str);
            let message_type = if place.top {
                object_type
            } else {
                place.message_type
            };
            let here = Place {
                message_type,
                ..place
            };
            for (key, child) in map {
                let written_child = written.get(key).unwrap_or(&Json::Null);
                if let Json::String(value) = child {
                    if let Some(role) = role_of(key, here, object_type) {
                        into.push(Part {
                            role,
                            button: None,
                            written: written_child.as_str().unwrap_or_default(),
                            value,
                        });
                    }
                }
                let inner = Place {
                    top: false,
                    message_type,
                    parent_key: Some(key),
                };
                walk_json(written_child, child, inner, into);
            }
        }
        Json::Array(items) => {
            let inner = Place {
                top: false,
                ..place
            };
            for (index, item) in items.iter().enumerate() {
                walk_json(written.get(index).unwrap_or(&Json::Null), item, inner, into);
            }
        }
        _ => {}
    }
}

fn rewrite_json<E>(
    value: &mut Json,
    place: Place<'_>,
    change: &mut dyn FnMut(Role, &mut String) -> Result<(), E>,
) -> Result<(), E> {
    match value {
        Json::Object(map) => {
            let object_type = map.get("type").and_then(Json::as_str).map(str::to_owned);
            let message_type = if place.top {
                object_type.clone()
            } else {
                place.message_type.map(str::to_owned)
            };
            let here = Place {
                top: place.top,
                message_type: message_type.as_deref(),
                parent_key: place.parent_key,
            };
            for (key, child) in map.iter_mut() {
                if let Json::String(text) = child {
                    if let Some(role) = role_of(key, here, object_type.as_deref()) {
                        change(role, text)?;
                    }
                    continue;
                }
                let inner = Place {
                    top: false,
                    message_type: message_type.as_deref(),
                    parent_key: Some(key),
                };
                rewrite_json(child, inner, change)?;
            }
            Ok(())
        }
        Json::Array(items) => {
            let inner = Place {
                top: false,
                ..place
            };
            items
                .iter_mut()
                .try_for_each(|item| rewrite_json(item, inner, change))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::{Button, Card};

    fn card(buttons: usize, hero: Option<&str>) -> Message {
        Message::Card(Card {
            alt_text: "alt".into(),
            hero: hero.map(str::to_owned),
            buttons: (0..buttons)
                .map(|n| Button {
                    label: format!("label {n}"),
                    uri: format!("https://x.example/{n}"),
                })
                .collect(),
        })
    }

    fn listed(parts: &[Part<'_>]) -> Vec<(Role, Option<usize>, String, String)> {
        (parts.iter())
            .map(|p| (p.role, p.button, p.written.to_owned(), p.value.to_owned()))
            .collect()
    }

    #[test]
    fn a_typed_messages_parts_stand_in_its_jsons_order() {
        let text = Message::Text { text: "t".into() };
        assert_eq!(
            listed(&parts(None, &text)),
            [(Role::Text, None, String::new(), "t".to_owned())]
        );
        let image = Message::Image {
            original: "o".into(),
            preview: "p".into(),
        };
        let roles: Vec<_> = (parts(Some(&image), &image).iter())
            .map(|p| (p.role, p.written, p.value))
            .collect();
        assert_eq!(roles, [(Role::Image, "o", "o"), (Role::Image, "p", "p")]);
        for buttons in 0..6 {
            for hero in [None, Some("https://x.example/h.png")] {
                let message = card(buttons, hero);
                let mut expected = vec![(Role::AltText, None, "alt".to_owned())];
                for n in 0..buttons {
                    expected.push((Role::Label, Some(n), format!("label {n}")));
                    expected.push((Role::Link, Some(n), format!("https://x.example/{n}")));
                }
                expected.extend(hero.map(|h| (Role::Image, None, h.to_owned())));
                let found: Vec<_> = (listed(&parts(Some(&message), &message)).into_iter())
                    .map(|(role, button, written, value)| {
                        assert_eq!(written, value);
                        (role, button, value)
                    })
                    .collect();
                assert_eq!(found, expected, "{buttons} buttons, hero {hero:?}");
            }
        }
    }

    #[test]
    fn a_part_is_written_only_where_the_written_message_has_the_same_part() {
        // Written with one button and a hero: the rendered second button's label stands where
        // the written hero does, and has no written text.
        let written = card(1, Some("https://x.example/h.png"));
        let rendered = card(2, None);
        let found = listed(&parts(Some(&written), &rendered));
        let written_of: Vec<&str> = found.iter().map(|p| p.2.as_str()).collect();
        assert_eq!(
            written_of,
            ["alt", "label 0", "https://x.example/0", "", ""]
        );
        let text = Message::Text { text: "t".into() };
        let found = listed(&parts(Some(&text), &rendered));
        assert!(found.iter().all(|p| p.2.is_empty()));
    }
}
