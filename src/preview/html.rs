//! The preview as a page that looks like LINE's chat: per send, the lock-screen notification,
//! then the clinic's account with its speech bubbles (texts, images as boxes with their URL,
//! button cards and flex cards). Self-contained: no script, no external style, font or image —
//! nothing is fetched when it is opened, and every value is escaped.

use minijinja::{escape_formatter, Environment};
use serde::Serialize;
use serde_json::Value as Json;

use super::flex::{self, Part};
use super::text::Heading;
use super::{exposed_columns, Notification, PreviewSend};
use crate::line::Message;
use crate::printable::printable_lines;

const PAGE: &str = include_str!("chat.html");
/// The style of the chat and its bubbles, shared with the review sheet (`crate::review`).
pub(crate) const CHAT_CSS: &str = include_str!("chat.css");

#[derive(Serialize)]
struct Page<'a> {
    chat_css: &'static str,
    account: &'a str,
    initial: String,
    patient: &'a str,
    as_of: &'a str,
    notes: &'a [String],
    track: Option<&'a str>,
    sends: Vec<SendView>,
}

#[derive(Serialize)]
struct SendView {
    step: String,
    template: String,
    at: String,
    moved: Option<String>,
    /// The time of day the chat shows under the bubbles.
    clock: String,
    notification: String,
    source: &'static str,
    exposed: Vec<String>,
    failure: Option<String>,
    /// The bubbles, already escaped.
    bubbles: String,
}

/// The preview as one HTML page.
pub fn render(heading: &Heading, sends: &[PreviewSend]) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(text) if !value.is_safe() => Ok(out.write_str(&escape_html(text))?),
        _ => escape_formatter(out, state, value),
    });
    env.add_template("chat.html", PAGE)?;
    let page = Page {
        chat_css: CHAT_CSS,
        account: &heading.account,
        initial: heading.account.chars().next().unwrap_or('L').to_string(),
        patient: &heading.patient,
        as_of: &heading.as_of,
        notes: &heading.notes,
        track: heading.track.as_deref(),
        sends: sends.iter().map(|send| view(heading, send)).collect(),
    };
    let mut html = env.get_template("chat.html")?.render(page)?;
    if !html.ends_with('\n') {
        html.push('\n');
    }
    Ok(html)
}

fn view(heading: &Heading, send: &PreviewSend) -> SendView {
    let first = send.messages.first().map(Notification::of);
    let notification = first.as_ref().map(Notification::line).unwrap_or_default();
    let source = match &first {
        Some(Notification::Text(_)) => "最初のメッセージの本文",
        Some(Notification::AltText(_)) => "最初のメッセージの altText（代替テキスト）",
        Some(Notification::Generic(_)) => "LINE が種類に応じて表示する文言",
        None => "",
    };
    let bubbles = bubbles(&send.messages);
    SendView {
        step: send.step.clone(),
        template: send.template.clone(),
        at: send.at.clone(),
        moved: send.moved.clone(),
        clock: send.at.rsplit(' ').next().unwrap_or_default().to_owned(),
        exposed: exposed_columns(&notification, &heading.account, &heading.columns),
        notification,
        source,
        failure: send.failure.clone(),
        bubbles,
    }
}

/// Messages as chat bubbles (HTML, every value escaped), styled by [`CHAT_CSS`].
pub(crate) fn bubbles(messages: &[Message]) -> String {
    let mut out = String::new();
    for message in messages {
        bubble(message, &mut out);
    }
    out
}

/// One message as chat bubbles.
fn bubble(message: &Message, out: &mut String) {
    match message {
        Message::Text { text } => text_bubble(text, out),
        Message::Image { original, .. } => flex::image_box(original, out),
        Message::Card(card) => {
            out.push_str("<div class=\"card\" data-kind=\"flex\">");
            if let Some(hero) = &card.hero {
                out.push_str("<div class=\"block hero\">");
                flex::image_box(hero, out);
                out.push_str("</div>");
            }
            out.push_str("<div class=\"block footer\">");
            for (index, button) in card.buttons.iter().enumerate() {
                let style = if index == 0 { "primary" } else { "link" };
                flex::button_html(&button.label, &button.uri, style, out);
            }
            out.push_str("</div></div>");
        }
        Message::Json(json) => match message.kind() {
            Some("text") => text_bubble(json.get("text").and_then(Json::as_str).unwrap_or(""), out),
            Some("flex") => {
                out.push_str("<div class=\"flex\" data-kind=\"flex\">");
                flex::card_html(json.get("contents").unwrap_or(&Json::Null), out);
                out.push_str("</div>");
            }
            kind => {
                out.push_str(&format!(
                    "<div class=\"card other\" data-kind=\"{}\"><p class=\"kind\">{}</p>",
                    escape_html(kind.unwrap_or("unknown")),
                    escape_html(kind.unwrap_or("(no type)"))
                ));
                for part in flex::parts(json) {
                    match part {
                        Part::Text(text) => out.push_str(&format!(
                            "<p class=\"flex-text\">{}</p>",
                            escape_html(&text)
                        )),
                        Part::Image(url) => flex::image_box(&url, out),
                        Part::Button { label, target } => {
                            flex::button_html(&label, &target, "link", out)
                        }
                    }
                }
                out.push_str("</div>");
            }
        },
    }
}

fn text_bubble(text: &str, out: &mut String) {
    out.push_str(&format!(
        "<div class=\"bubble\" data-kind=\"text\">{}</div>",
        escape_html(text)
    ));
}

/// `text` safe inside an element or a quoted attribute; line ends are kept (the bubbles keep
/// them with `white-space: pre-wrap`), other control and bidi-override characters written out.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in printable_lines(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::{Button, Card};

    fn heading() -> Heading {
        Heading {
            account: "<b>さくら</b>".into(),
            patient: "P1\u{1b}[2J".into(),
            as_of: "2026-11-25 (水) 09:00".into(),
            notes: vec![],
            track: None,
            columns: vec![("name".into(), "山田".into())],
        }
    }

    #[test]
    fn every_value_is_escaped_and_nothing_is_fetched() {
        let send = PreviewSend {
            step: "s".into(),
            template: "t".into(),
            at: "2026-11-26 (木) 18:00".into(),
            moved: None,
            failure: None,
            messages: vec![
                Message::Text {
                    text: "山田 様\n<script>alert(1)</script>".into(),
                },
                Message::Card(Card {
                    alt_text: "a".into(),
                    hero: Some("https://x.example/\"><img src=x>".into()),
                    buttons: vec![Button {
                        label: "<i>予約</i>".into(),
                        uri: "https://x.example/r".into(),
                    }],
                }),
            ],
        };
        let html = render(&heading(), &[send]).unwrap();
        assert!(!html.contains("<script") && !html.contains("<img") && !html.contains("<i>"));
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;さくら&lt;/b&gt;"), "{html}");
        assert!(html.contains("P1\\u{1b}[2J"), "{html}");
        // The hostile URL is text (` src=x` inside it is escaped), never an attribute.
        assert!(
            !html.contains("src=\"") && !html.contains("url(http"),
            "{html}"
        );
        assert!(html.contains("data-kind=\"notification\""), "{html}");
        // The notification line shows the name: the page says so, by column.
        assert!(
            html.contains("ロック画面に患者の name が表示されます"),
            "{html}"
        );
    }
}
