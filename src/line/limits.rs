//! LINE's limits and the URL rule, in one place. `check` applies them to the messages of a
//! sample patient; delivery applies them to every patient's, so that a patient whose name is
//! 6,000 characters long, or whose `homepage` column turns a link into another site's, never
//! gets a message LINE would refuse or a link the clinic did not write.
//!
//! A finding says where it is (the message, the kind of string, the button) and what is wrong,
//! never the value: at delivery the values are patient data.

use serde_json::Value as Json;

use super::parts::{parts, Part, Role};
use super::Message;

/// At most this many message objects in one push.
pub const MAX_MESSAGES: usize = 5;
/// A text message, in UTF-16 code units as LINE counts them.
pub const MAX_TEXT: usize = 5000;
/// The notification text of a card (`altText`), in UTF-16 code units.
pub const MAX_ALT_TEXT: usize = 400;
/// Buttons of a card, and entries of any `actions` list.
pub const MAX_BUTTONS: usize = 4;
/// A button label, in characters.
pub const MAX_LABEL: usize = 20;
/// A link a button opens (`uri`, `linkUri`).
pub const MAX_ACTION_URI: usize = 1000;
/// An image URL.
pub const MAX_IMAGE_URL: usize = 2000;
/// The data a postback action sends back, in characters.
pub const MAX_POSTBACK_DATA: usize = 300;

/// Something in a push that LINE would refuse, or that breaks the URL rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The message (0-based) the finding is in; `None` for the push as a whole.
    pub message: Option<usize>,
    /// The string it is about, when it is about one.
    pub role: Option<Role>,
    /// The button (0-based) of a card the string belongs to.
    pub button: Option<usize>,
    pub kind: LimitKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKind {
    TooManyMessages {
        count: usize,
    },
    TooManyButtons {
        count: usize,
    },
    TooManyActions {
        count: usize,
    },
    /// A message object without `"type"` (message N, 1-based).
    MissingType {
        message: usize,
    },
    TextTooLong {
        length: usize,
    },
    AltTooLong {
        length: usize,
    },
    LabelTooLong {
        length: usize,
    },
    UrlTooLong {
        length: usize,
        max: usize,
    },
    PostbackDataTooLong {
        length: usize,
    },
    /// Not `https://` (buttons may also use `tel:` and `line:`).
    InsecureUrl,
    /// The rendered URL goes to another host than the one the template writes before its
    /// first `{{`; `host` is the template's own text, not a rendered value.
    UrlHostChanged {
        host: String,
    },
    /// The URL starts with a variable or a tag, so its scheme and host cannot be checked.
    UrlNotLiteral,
}

/// Which lengths [`check`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lengths {
    /// All of them: the messages are sent as they are.
    All,
    /// All but the ones tracking changes (text messages and link URLs): their links are about
    /// to be tracked, and [`check_tracked`] measures them afterwards, as LINE will receive them.
    Untracked,
}

/// Everything in `rendered` that LINE would refuse or that breaks the URL rule. `written` is
/// the same messages with every value as the template writes it (before rendering), so each
/// rendered URL can be held against its template.
pub fn check(written: &[Message], rendered: &[Message], lengths: Lengths) -> Vec<Finding> {
    let mut found = Vec::new();
    if rendered.len() > MAX_MESSAGES {
        found.push(whole(LimitKind::TooManyMessages {
            count: rendered.len(),
        }));
    }
    for (index, message) in rendered.iter().enumerate() {
        if let Message::Card(card) = message {
            if card.buttons.len() > MAX_BUTTONS {
                found.push(Finding {
                    message: Some(index),
                    role: Some(Role::Label),
                    button: Some(MAX_BUTTONS),
                    kind: LimitKind::TooManyButtons {
                        count: card.buttons.len(),
                    },
                });
            }
        }
    }
    for (index, message) in rendered.iter().enumerate() {
        if message.kind().is_none() {
            found.push(whole(LimitKind::MissingType { message: index + 1 }));
        }
        for part in parts(written.get(index), message) {
            if let Some(kind) = part_limit(&part, lengths) {
                found.push(Finding {
                    message: Some(index),
                    role: Some(part.role),
                    button: part.button,
                    kind,
                });
            }
        }
        if let Message::Json(json) = message {
            let mut lists = Vec::new();
            long_action_lists(json, &mut lists);
            found.extend(lists.into_iter().map(|count| Finding {
                message: Some(index),
                role: None,
                button: None,
                kind: LimitKind::TooManyActions { count },
            }));
        }
    }
    // An image is both the original and the preview: say it once.
    found.dedup();
    found
}

/// The lengths [`Lengths::Untracked`] leaves out, measured on the messages with their links
/// tracked.
pub fn check_tracked(messages: &[Message]) -> Vec<Finding> {
    let mut found = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        for part in parts(None, message) {
            let kind = match part.role {
                Role::Text => text_length(part.value),
                Role::Link => url_length(part.value, MAX_ACTION_URI),
                _ => None,
            };
            found.extend(kind.map(|kind| Finding {
                message: Some(index),
                role: Some(part.role),
                button: part.button,
                kind,
            }));
        }
    }
    found
}

fn whole(kind: LimitKind) -> Finding {
    Finding {
        message: None,
        role: None,
        button: None,
        kind,
    }
}

fn part_limit(part: &Part<'_>, lengths: Lengths) -> Option<LimitKind> {
    let all = lengths == Lengths::All;
    match part.role {
        Role::Text if all => text_length(part.value),
        Role::Text => None,
        Role::AltText => {
            let length = utf16_len(part.value);
            (length > MAX_ALT_TEXT).then_some(LimitKind::AltTooLong { length })
        }
        Role::Label => {
            let length = part.value.chars().count();
            (length > MAX_LABEL).then_some(LimitKind::LabelTooLong { length })
        }
        Role::PostbackData => {
            let length = part.value.chars().count();
            (length > MAX_POSTBACK_DATA).then_some(LimitKind::PostbackDataTooLong { length })
        }
        Role::Link => url_rule(true, part.written, part.value, all).err(),
        Role::Image => url_rule(false, part.written, part.value, true).err(),
    }
}

fn text_length(text: &str) -> Option<LimitKind> {
    let length = utf16_len(text);
    (length > MAX_TEXT).then_some(LimitKind::TextTooLong { length })
}

fn url_length(url: &str, max: usize) -> Option<LimitKind> {
    let length = url.chars().count();
    (length > max).then_some(LimitKind::UrlTooLong { length, max })
}

/// The URL rule: https (or `tel:`/`line:` for a link), short enough, and — when the template
/// puts values into it — the scheme and host the template writes before its first tag.
fn url_rule(link: bool, written: &str, rendered: &str, length: bool) -> Result<(), LimitKind> {
    let max = if link { MAX_ACTION_URI } else { MAX_IMAGE_URL };
    if let Some(too_long) = url_length(rendered, max).filter(|_| length) {
        return Err(too_long);
    }
    let tag = first_tag(written);
    let prefix = &written[..tag.unwrap_or(written.len())];
    if tag.is_some() && !prefix.contains(':') {
        // `{{ homepage }}`: whatever it renders to, nothing the template wrote vouches for it.
        return Err(LimitKind::UrlNotLiteral);
    }
    let https = rendered.starts_with("https://");
    let other_scheme = link && (rendered.starts_with("tel:") || rendered.starts_with("line:"));
    if !(https || other_scheme) {
        return Err(LimitKind::InsecureUrl);
    }
    if tag.is_none() {
        // Written in full: the rendered URL is the written one.
        return Ok(());
    }
    if other_scheme {
        // `tel:{{ phone }}`: the scheme is what matters, and it must be written.
        return match prefix.split_once(':') {
            Some((scheme, _)) if rendered.starts_with(&format!("{scheme}:")) => Ok(()),
            _ => Err(LimitKind::UrlNotLiteral),
        };
    }
    let Some(host) = written_host(prefix) else {
        return Err(LimitKind::UrlNotLiteral);
    };
    let authority = rendered["https://".len()..]
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let port_ok = |rest: &str| rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port);
    match authority.strip_prefix(host) {
        Some(rest) if port_ok(rest) => Ok(()),
        _ => Err(LimitKind::UrlHostChanged {
            host: host.to_owned(),
        }),
    }
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Where the first minijinja tag (`{{`, `{%`, `{#`) starts: the first `{` followed by one of
/// `{%#`. Checked for every URL of every send; three substring searches, each set up anew,
/// were most of the URL rule's cost.
fn first_tag(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    memchr::memchr_iter(b'{', bytes)
        .find(|&at| matches!(bytes.get(at + 1), Some(b'{' | b'%' | b'#')))
}

/// The host of an `https://` URL written before the first tag, if it is written there.
fn written_host(prefix: &str) -> Option<&str> {
    let rest = prefix.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.split(':').next().unwrap_or_default();
    let plain = !host.is_empty() && !authority.contains(['@', '\\']);
    plain.then_some(host)
}

/// A length as LINE counts text: in UTF-16 code units.
pub fn utf16_len(text: &str) -> usize {
    // Each character is one unit, or two past U+FFFF (those take four bytes in UTF-8, led by
    // 0xF0–0xF4): every byte but a continuation byte (0x80–0xBF) counts one, and a leading
    // 0xF0–0xF4 one more. Summed in bytes over 64-byte chunks (at most 128 a chunk), which
    // the compiler does sixteen bytes at a time; a filtered count of the leading bytes, as
    // before, went a byte at a time (~1.5% of a first run's instructions).
    (text.as_bytes().chunks(64))
        .map(|chunk| {
            let units = chunk.iter().fold(0u8, |units, &byte| {
                units + u8::from(byte as i8 >= -0x40) + u8::from(byte >= 0xf0)
            });
            usize::from(units)
        })
        .sum()
}

/// The lengths of `actions` lists longer than LINE allows.
fn long_action_lists(value: &Json, into: &mut Vec<usize>) {
    match value {
        Json::Object(map) => {
            for (key, child) in map {
                if let Json::Array(items) = child {
                    if key == "actions" && items.len() > MAX_BUTTONS {
                        into.push(items.len());
                    }
                }
                long_action_lists(child, into);
            }
        }
        Json::Array(items) => items.iter().for_each(|item| long_action_lists(item, into)),
        _ => {}
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_first_tag_is_the_first_of_the_three_searched_apart(
            text in "[{}%#a/:]{0,24}",
        ) {
            let apart = ["{{", "{%", "{#"].iter().filter_map(|tag| text.find(tag)).min();
            prop_assert_eq!(super::first_tag(&text), apart);
        }

        #[test]
        fn text_is_counted_in_utf16_units(
            text in ".{0,40}",
            emoji in "[😀👩‍⚕️花a\u{ffff}\u{10000}]{0,8}",
            times in 1usize..12,
        ) {
            // Repeated, past the 64-byte chunks the count sums, split anywhere in a character.
            let text = format!("{text}{emoji}").repeat(times);
            prop_assert_eq!(super::utf16_len(&text), text.encode_utf16().count());
        }
    }
}
