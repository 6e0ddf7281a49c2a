//! `steprule preview`: one patient's messages as LINE would show them, for review before a
//! step goes live. What is shown is exactly what delivery renders (the same template call and
//! LINE checks); this module only lays it out — as text for a terminal ([`text`]) or as a page
//! that looks like LINE's chat ([`html`]) — and works out the notification line a lock screen
//! shows for each message.

mod flex;
pub mod html;
pub mod text;

use serde_json::Value as Json;

use crate::line::Message;

/// One send of the preview: a step's messages for the patient, and when they would go out.
#[derive(Debug, Clone)]
pub struct PreviewSend {
    pub step: String,
    pub template: String,
    /// When the send would go out, in the clinic's time, as `2026-11-25 (水) 18:00`.
    pub at: String,
    /// Why it goes out later than its step's own time, if it does (quiet hours, the cap…).
    pub moved: Option<String>,
    pub messages: Vec<Message>,
    /// Why delivery would not send it (the template fails for this patient or breaks LINE's
    /// limits): names the template and the field, never a value.
    pub failure: Option<String>,
}

/// What a lock screen (and LINE's talk list) shows for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// A text message: its own text (the phone cuts it to a few lines).
    Text(String),
    /// A flex, template or imagemap message: its `altText`, which LINE shows wherever the
    /// layout itself is not shown (notifications, the talk list).
    AltText(String),
    /// Any other kind (an image, a sticker…): LINE's own words for the kind, nothing from the
    /// message.
    Generic(&'static str),
}

/// How many characters of a notification line are shown: phones cut longer ones.
pub const NOTIFICATION_CHARS: usize = 100;

impl Notification {
    /// The notification line of `message`.
    pub fn of(message: &Message) -> Notification {
        match message {
            Message::Text { text } => Notification::Text(text.clone()),
            Message::Card(card) => Notification::AltText(card.alt_text.clone()),
            Message::Image { .. } => Notification::Generic("写真を送信しました"),
            Message::Json(json) => {
                let alt = json.get("altText").and_then(Json::as_str);
                match (message.kind(), alt) {
                    (Some("text"), _) => Notification::Text(
                        json.get("text")
                            .and_then(Json::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                    (Some("flex" | "template" | "imagemap"), Some(alt)) => {
                        Notification::AltText(alt.to_owned())
                    }
                    (Some("image"), _) => Notification::Generic("写真を送信しました"),
                    (Some("video"), _) => Notification::Generic("動画を送信しました"),
                    (Some("sticker"), _) => Notification::Generic("スタンプを送信しました"),
                    _ => Notification::Generic("メッセージを送信しました"),
                }
            }
        }
    }

    /// The line as one line of at most [`NOTIFICATION_CHARS`] characters (line ends become
    /// spaces; a longer line ends in `…`).
    pub fn line(&self) -> String {
        let text = match self {
            Notification::Text(text) | Notification::AltText(text) => text.as_str(),
            Notification::Generic(words) => words,
        };
        let joined: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if joined.chars().count() > NOTIFICATION_CHARS {
            let cut: String = joined.chars().take(NOTIFICATION_CHARS).collect();
            format!("{cut}…")
        } else {
            joined
        }
    }

    /// Where the line comes from, in a few words.
    pub fn source(&self) -> &'static str {
        match self {
            Notification::Text(_) => "text",
            Notification::AltText(_) => "altText",
            Notification::Generic(_) => "kind, in LINE's own words",
        }
    }
}

/// The patient columns whose value appears in `line`, by name: a lock screen shows the line to
/// anyone near the phone, so a name or anything about the patient's health there is worth a
/// second look. The account's own name is left out of the line first (a department `内科` is
/// not exposed by `さくら内科クリニック`); spaces of any width count as one; values shorter
/// than two characters are ignored (they match anywhere).
pub fn exposed_columns(line: &str, account: &str, columns: &[(String, String)]) -> Vec<String> {
    let spaced = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let account = spaced(account);
    let mut line = spaced(line);
    if !account.is_empty() {
        line = line.replace(&account, " ");
    }
    let mut found: Vec<String> = columns
        .iter()
        .filter(|(_, value)| {
            let value = spaced(value);
            value.chars().count() >= 2 && line.contains(&value)
        })
        .map(|(name, _)| name.clone())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// A message's kind as the preview names it: `text`, `image`, `flex` (the button card is a
/// flex bubble), or the `type` of hand-written JSON.
pub fn kind_name(message: &Message) -> String {
    match message {
        Message::Card(_) => "flex (button card)".to_owned(),
        other => other.kind().unwrap_or("(no type)").to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::{Button, Card};
    use serde_json::json;

    #[test]
    fn the_lock_screen_shows_a_text_or_the_alt_text_never_a_flex_body() {
        let text = Message::Text {
            text: "さくら内科からのお知らせです。\n山田 様".into(),
        };
        assert_eq!(
            Notification::of(&text).line(),
            "さくら内科からのお知らせです。 山田 様"
        );
        let card = Message::Card(Card {
            alt_text: "ご予約の確認".into(),
            hero: None,
            buttons: vec![Button {
                label: "予約".into(),
                uri: "https://x.example/r".into(),
            }],
        });
        assert_eq!(
            Notification::of(&card),
            Notification::AltText("ご予約の確認".into())
        );
        let flex = Message::Json(json!({"type": "flex", "altText": "お知らせ", "contents": {
            "type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": [
                {"type": "text", "text": "糖尿病の検査結果"}]}}}));
        assert_eq!(Notification::of(&flex).line(), "お知らせ");
        let image = Message::Image {
            original: "https://x.example/a.png".into(),
            preview: "https://x.example/a.png".into(),
        };
        assert_eq!(
            Notification::of(&image).source(),
            "kind, in LINE's own words"
        );
    }

    #[test]
    fn a_long_notification_line_is_cut() {
        let long = Notification::Text("あ".repeat(5000));
        let line = long.line();
        assert_eq!(line.chars().count(), NOTIFICATION_CHARS + 1);
        assert!(line.ends_with('…'));
    }

    #[test]
    fn columns_shown_on_the_lock_screen_are_named_by_column() {
        let columns = vec![
            ("name".to_owned(), "山田\u{3000}花子".to_owned()),
            ("department".to_owned(), "内科".to_owned()),
            ("sex".to_owned(), "F".to_owned()),
        ];
        assert_eq!(
            exposed_columns("山田 花子 様、内科のご予約です F", "さくら", &columns),
            vec!["department".to_owned(), "name".to_owned()]
        );
        assert!(exposed_columns("お知らせ", "さくら", &columns).is_empty());
        // The clinic's own name is not the patient's department.
        assert!(exposed_columns("さくら内科からのお知らせ", "さくら内科", &columns).is_empty());
    }
}
