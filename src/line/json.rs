//! The messages of a push as JSON, written straight into one buffer: the outbox's line holds
//! them so for every send of a first run, where serde's serializer (its buffer grown a
//! few times over for each send) was about a sixth of the rendering threads' rendering.
//!
//! The bytes are serde_json's for the [`Serialize`](serde::Serialize) impl in `mod.rs` (keys
//! in sorted order, strings escaped as serde_json escapes them): a push's body and the
//! outbox's line are the same however they were written, which the tests hold.

use super::{Button, Card, Message};
use crate::json_plain::plain_len;

/// `messages` as a JSON array, byte for byte what `serde_json::to_string` writes.
pub fn messages_json(messages: &[Message]) -> String {
    let mut out = String::with_capacity(size_hint(messages));
    out.push('[');
    for (index, message) in messages.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        message_json(message, &mut out);
    }
    out.push(']');
    out
}

/// About the length of the JSON: the strings' and the keys' around them (a card's bubble
/// takes some 200 bytes a button), so that the buffer is rarely grown.
fn size_hint(messages: &[Message]) -> usize {
    let strings: usize = (messages.iter())
        .map(|message| match message {
            Message::Text { text } => text.len() + 32,
            Message::Image { original, preview } => original.len() + preview.len() + 64,
            Message::Card(card) => {
                let buttons = card.buttons.iter();
                let buttons: usize = buttons.map(|b| b.label.len() + b.uri.len() + 96).sum();
                card.alt_text.len() + card.hero.as_ref().map_or(0, |h| h.len() + 64) + buttons + 160
            }
            Message::Json(_) => 256,
        })
        .sum();
    strings + 2
}

fn message_json(message: &Message, out: &mut String) {
    match message {
        Message::Text { text } => {
            out.push_str("{\"text\":");
            string(text, out);
            out.push_str(",\"type\":\"text\"}");
        }
        Message::Image { original, preview } => {
            out.push_str("{\"originalContentUrl\":");
            string(original, out);
            out.push_str(",\"previewImageUrl\":");
            string(preview, out);
            out.push_str(",\"type\":\"image\"}");
        }
        Message::Card(card) => card_json(card, out),
        Message::Json(json) => out.push_str(&json.to_string()),
    }
}

fn card_json(card: &Card, out: &mut String) {
    out.push_str("{\"altText\":");
    string(&card.alt_text, out);
    out.push_str(",\"contents\":{\"footer\":{\"contents\":[");
    for (index, button) in card.buttons.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        button_json(button, index == 0, out);
    }
    out.push_str("],\"layout\":\"vertical\",\"spacing\":\"sm\",\"type\":\"box\"}");
    if let Some(url) = &card.hero {
        out.push_str(
            ",\"hero\":{\"aspectMode\":\"cover\",\"size\":\"full\",\"type\":\"image\",\"url\":",
        );
        string(url, out);
        out.push('}');
    }
    out.push_str(",\"type\":\"bubble\"},\"type\":\"flex\"}");
}

fn button_json(button: &Button, primary: bool, out: &mut String) {
    out.push_str("{\"action\":{\"label\":");
    string(&button.label, out);
    out.push_str(",\"type\":\"uri\",\"uri\":");
    string(&button.uri, out);
    out.push_str("},\"style\":");
    out.push_str(if primary { "\"primary\"" } else { "\"link\"" });
    out.push_str(",\"type\":\"button\"}");
}

/// `text` as a JSON string, escaped as serde_json escapes: `"` and `\`, the short forms of
/// backspace, tab, newline, form feed and carriage return, `\u00XX` (lower-case hex) for the
/// other control characters below U+0020, and nothing else (not DEL, not U+2028).
fn string(text: &str, out: &mut String) {
    escaped(text, |piece| out.push_str(piece));
}

/// [`string`] appended to bytes: the outbox's line around the messages (the patient, their
/// LINE user, the step and the retry key), which serde escaped a byte at a time.
pub(crate) fn json_string_into(text: &str, out: &mut Vec<u8>) {
    escaped(text, |piece| out.extend_from_slice(piece.as_bytes()));
}

/// `text` quoted and escaped, handed to `push` piece by piece.
#[inline]
fn escaped(text: &str, mut push: impl FnMut(&str)) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    push("\"");
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut index = 0;
    loop {
        // Sixteen bytes at a time while none needs escaping: a message is mostly Japanese
        // text, whose bytes never do.
        index += plain_len(&bytes[index..]);
        if index == bytes.len() {
            break;
        }
        let byte = bytes[index];
        index += 1;
        let short = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            0x00..=0x1f => "",
            // `plain_len` stops only at the bytes above; any other is written as it is.
            _ => continue,
        };
        // Every byte escaped is ASCII, so the runs between them are whole characters.
        push(&text[start..index - 1]);
        start = index;
        if short.is_empty() {
            let code = [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ];
            // ASCII, so always text.
            push(std::str::from_utf8(&code).unwrap_or_default());
        } else {
            push(short);
        }
    }
    push(&text[start..]);
    push("\"");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn card(hero: Option<&str>, buttons: &[(&str, &str)]) -> Message {
        Message::Card(Card {
            alt_text: "さくら内科クリニックからのお知らせ".into(),
            hero: hero.map(str::to_owned),
            buttons: (buttons.iter())
                .map(|(label, uri)| Button {
                    label: (*label).into(),
                    uri: (*uri).into(),
                })
                .collect(),
        })
    }

    #[test]
    fn every_kind_of_message_is_written_as_serde_writes_it() {
        let messages = vec![
            Message::Text {
                text: "ご予約は\n\"明日\"です\u{1}\u{7f}\u{2028}😀\\".into(),
            },
            Message::Image {
                original: "https://x.example/a.png".into(),
                preview: "https://x.example/b.png".into(),
            },
            card(None, &[("予約", "https://x.example/r")]),
            card(
                Some("https://x.example/h.png"),
                &[("予約", "https://x.example/r"), ("電話", "tel:0312345678")],
            ),
            card(None, &[]),
            Message::Json(
                serde_json::json!({"type": "sticker", "packageId": "1", "z": [1, "\u{1f}"]}),
            ),
        ];
        assert_eq!(
            messages_json(&messages),
            serde_json::to_string(&messages).unwrap()
        );
        assert_eq!(messages_json(&[]), "[]");
    }

    /// Text with the characters JSON treats apart: quotes, backslashes, every control
    /// character, DEL, the line and paragraph separators, emoji and Japanese.
    fn odd_text() -> impl Strategy<Value = String> {
        let odd = prop::sample::select(vec![
            '"', '\\', '/', '\u{0}', '\u{8}', '\t', '\n', '\u{b}', '\u{c}', '\r', '\u{1f}',
            '\u{7f}', '\u{80}', '\u{2028}', '\u{2029}', '\u{feff}', '😀', '花', 'a', ' ',
        ]);
        let any = prop::char::any();
        prop::collection::vec(prop_oneof![odd, any], 0..48).prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        #[test]
        fn odd_strings_are_escaped_as_serde_escapes_them(
            text in odd_text(),
            label in odd_text(),
            uri in odd_text(),
            hero in prop::option::of(odd_text()),
        ) {
            let messages = vec![
                Message::Text { text: text.clone() },
                Message::Image { original: uri.clone(), preview: label.clone() },
                Message::Card(Card {
                    alt_text: text,
                    hero,
                    buttons: vec![
                        Button { label: label.clone(), uri: uri.clone() },
                        Button { label, uri },
                    ],
                }),
            ];
            prop_assert_eq!(messages_json(&messages), serde_json::to_string(&messages).unwrap());
        }
    }
}
