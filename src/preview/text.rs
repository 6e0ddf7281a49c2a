//! The preview for a terminal: per send its step and time, the lock-screen line, then each
//! message with its kind, text, images and buttons and its own notification line. The caller
//! escapes control characters before the text reaches the terminal.

use std::fmt::Write;

use super::flex::{self, Part};
use super::{exposed_columns, kind_name, Notification, PreviewSend};
use crate::line::Message;

/// What the text and page show above the sends.
#[derive(Debug, Clone)]
pub struct Heading {
    /// The clinic's name as the LINE account shows it (the rules' `clinic`).
    pub account: String,
    pub patient: String,
    /// The instant previewed from, as `2026-11-25 (水) 09:00`.
    pub as_of: String,
    /// Notes about the patient's LINE state (blocked…), shown before the sends.
    pub notes: Vec<String>,
    /// With `track` in the rules: the base tracked links go out under.
    pub track: Option<String>,
    /// The patient's columns (name, value), to name those that show on a lock screen.
    pub columns: Vec<(String, String)>,
}

pub fn render(heading: &Heading, sends: &[PreviewSend]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "preview for patient {} — as of {}, as the LINE account 「{}」 (nothing is sent)",
        heading.patient, heading.as_of, heading.account
    );
    for note in &heading.notes {
        let _ = writeln!(out, "note: {note}");
    }
    if let Some(track) = &heading.track {
        let _ = writeln!(
            out,
            "links are shown as written; they go out as {track}/r/<token>, which opens them"
        );
    }
    for send in sends {
        out.push('\n');
        send_text(heading, send, &mut out);
    }
    out
}

fn send_text(heading: &Heading, send: &PreviewSend, out: &mut String) {
    let moved = send
        .moved
        .as_deref()
        .map(|m| format!(" {m}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "── step {} · template {} · sends {}{moved}",
        send.step, send.template, send.at
    );
    if let Some(failure) = &send.failure {
        let _ = writeln!(out, "✗ would not be sent: {failure}");
    }
    if let Some(first) = send.messages.first() {
        let notification = Notification::of(first);
        let _ = writeln!(
            out,
            "lock screen: {}: {}  (message 1's {})",
            heading.account,
            notification.line(),
            notification.source()
        );
        let exposed = exposed_columns(&notification.line(), &heading.account, &heading.columns);
        if !exposed.is_empty() {
            let _ = writeln!(
                out,
                "  ⚠ the lock screen shows the patient's {}: anyone near the phone can read it",
                exposed.join(", ")
            );
        }
    }
    let count = send.messages.len();
    for (index, message) in send.messages.iter().enumerate() {
        let _ = writeln!(
            out,
            "message {} of {count} — {}",
            index + 1,
            kind_name(message)
        );
        message_text(message, out);
        let notification = Notification::of(message);
        let _ = writeln!(
            out,
            "  notification: {}  ({})",
            notification.line(),
            notification.source()
        );
    }
}

fn message_text(message: &Message, out: &mut String) {
    match message {
        Message::Text { text } => quote(text, out),
        Message::Image { original, .. } => {
            let _ = writeln!(out, "  image: {original}");
        }
        Message::Card(card) => {
            if let Some(hero) = &card.hero {
                let _ = writeln!(out, "  image: {hero}");
            }
            for button in &card.buttons {
                let _ = writeln!(out, "  button: [{}] → {}", button.label, button.uri);
            }
        }
        Message::Json(json) => {
            if message.kind() == Some("text") {
                quote(json.get("text").and_then(|t| t.as_str()).unwrap_or(""), out);
                return;
            }
            for part in flex::parts(json) {
                match part {
                    Part::Text(text) => quote(&text, out),
                    Part::Image(url) => {
                        let _ = writeln!(out, "  image: {url}");
                    }
                    Part::Button { label, target } => {
                        let _ = writeln!(out, "  button: [{label}] → {target}");
                    }
                }
            }
        }
    }
}

/// A text as the patient reads it, each line behind a bar.
fn quote(text: &str, out: &mut String) {
    for line in text.lines() {
        let _ = writeln!(out, "  │ {line}");
    }
}
