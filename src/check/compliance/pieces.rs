//! The strings of a template's rendered messages that the advertising lints read, each with
//! the field of the template file it comes from.

use serde_json::Value as Json;

use crate::line::Message;
use crate::source::Span;
use crate::template::{Template, TemplateBody};

/// What a string is to the lints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::check) enum PieceKind {
    /// Words a patient reads: a text, an alt text, a label, a title.
    Text,
    /// An image's URL: its file name may say "before_after".
    Image,
    /// A link: only a contact (`tel:`) is looked for in it.
    Link,
}

/// One string of the rendered messages.
#[derive(Debug, Clone)]
pub(in crate::check) struct Piece {
    pub kind: PieceKind,
    pub value: String,
    /// The field in the template file ("the text", "the label of button 2").
    pub field: String,
    pub span: Span,
}

/// Keys of `line_json` objects whose strings a patient reads.
const TEXT_KEYS: &[&str] = &["text", "altText", "label", "title", "displayText"];
const IMAGE_KEYS: &[&str] = &[
    "url",
    "originalContentUrl",
    "previewImageUrl",
    "thumbnailImageUrl",
    "baseUrl",
];
const LINK_KEYS: &[&str] = &["uri", "linkUri"];

pub(in crate::check) fn pieces(template: &Template, messages: &[Message]) -> Vec<Piece> {
    let mut into = Vec::new();
    match &template.body {
        TemplateBody::Simple {
            text,
            image,
            alt,
            buttons,
        } => {
            let image_span = image.as_ref().map_or(text.span, |i| i.span);
            let alt_span = alt.as_ref().map_or(text.span, |a| a.span);
            let piece = |kind, value: &str, field: String, span| Piece {
                kind,
                value: value.to_owned(),
                field,
                span,
            };
            for message in messages {
                match message {
                    Message::Text { text: value } => {
                        into.push(piece(PieceKind::Text, value, "the text".into(), text.span));
                    }
                    Message::Image { original, .. } => into.push(piece(
                        PieceKind::Image,
                        original,
                        "the image URL".into(),
                        image_span,
                    )),
                    Message::Card(card) => {
                        into.push(piece(
                            PieceKind::Text,
                            &card.alt_text,
                            "the alt text".into(),
                            alt_span,
                        ));
                        for (index, button) in card.buttons.iter().enumerate() {
                            let written = buttons.node.get(index);
                            into.push(piece(
                                PieceKind::Text,
                                &button.label,
                                format!("the label of button {}", index + 1),
                                written.map_or(buttons.span, |b| b.label.span),
                            ));
                            into.push(piece(
                                PieceKind::Link,
                                &button.uri,
                                format!("the URL of button {}", index + 1),
                                written.map_or(buttons.span, |b| b.url.span),
                            ));
                        }
                        if let Some(hero) = &card.hero {
                            into.push(piece(
                                PieceKind::Image,
                                hero,
                                "the image URL".into(),
                                image_span,
                            ));
                        }
                    }
                    Message::Json(json) => walk(json, "`line_json`", text.span, &mut into),
                }
            }
        }
        TemplateBody::LineJson(source) => {
            for (index, message) in messages.iter().enumerate() {
                let field = format!("message {} of `line_json`", index + 1);
                match message {
                    Message::Json(json) => walk(json, &field, source.span, &mut into),
                    Message::Text { text } => into.push(Piece {
                        kind: PieceKind::Text,
                        value: text.clone(),
                        field,
                        span: source.span,
                    }),
                    _ => {}
                }
            }
        }
    }
    into
}

/// serde_json reads at most 128 levels, so the recursion is bounded.
fn walk(json: &Json, field: &str, span: Span, into: &mut Vec<Piece>) {
    match json {
        Json::Object(map) => {
            for (key, value) in map {
                if let Json::String(value) = value {
                    let kind = if TEXT_KEYS.contains(&key.as_str()) {
                        PieceKind::Text
                    } else if IMAGE_KEYS.contains(&key.as_str()) {
                        PieceKind::Image
                    } else if LINK_KEYS.contains(&key.as_str()) {
                        PieceKind::Link
                    } else {
                        continue;
                    };
                    into.push(Piece {
                        kind,
                        value: value.clone(),
                        field: field.to_owned(),
                        span,
                    });
                } else {
                    walk(value, field, span, into);
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|item| walk(item, field, span, into)),
        _ => {}
    }
}
