//! LINE's limits and the URL rule, in one place. `check` applies them to the messages of a
//! sample patient; delivery applies them to every patient's, through
//! [`Template::messages`](super::Template::messages), so that a patient whose name is 6,000
//! characters long, or whose `homepage` column turns a link into another site's, never gets a
//! message LINE would refuse or a link the clinic did not write.
//!
//! Findings name the template and the field, never a rendered value: at delivery the values
//! are patient data.

use serde_json::Value as Json;

use super::{Template, TemplateBody};
use crate::source::Span;

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

/// Keys whose values are URLs, and which of them open links (the rest show images).
const URL_KEYS: &[&str] = &[
    "uri",
    "url",
    "linkUri",
    "originalContentUrl",
    "previewImageUrl",
    "thumbnailImageUrl",
];
const LINK_KEYS: &[&str] = &["uri", "linkUri"];

/// A rendered message that must not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub template: String,
    pub field: Field,
    /// Where in the template file the field is.
    pub span: Span,
    pub kind: LimitKind,
}

/// The part of a template a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The template as a whole (too many messages, too many buttons).
    Whole,
    Text,
    Alt,
    Image,
    /// The label of a `[[buttons]]` entry, 1-based.
    ButtonLabel(usize),
    /// The URL of a `[[buttons]]` entry, 1-based.
    ButtonUrl(usize),
    /// A value inside message N (1-based) of `line_json`.
    LineJson(usize),
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

impl Field {
    /// "the text", "the URL of button 2", "a URL in message 1 of `line_json`".
    fn subject(self, what_in_json: &str) -> String {
        match self {
            Field::Whole => "the template".to_owned(),
            Field::Text => "the text".to_owned(),
            Field::Alt => "the alt text".to_owned(),
            Field::Image => "the image URL".to_owned(),
            Field::ButtonLabel(n) => format!("the label of button {n}"),
            Field::ButtonUrl(n) => format!("the URL of button {n}"),
            Field::LineJson(n) => format!("{what_in_json} in message {n} of `line_json`"),
        }
    }

    /// The field as it is named in the template file: `text`, `buttons.url`, `line_json`.
    pub fn key(self) -> &'static str {
        match self {
            Field::Whole | Field::Text => "text",
            Field::Alt => "alt",
            Field::Image => "image",
            Field::ButtonLabel(_) => "buttons.label",
            Field::ButtonUrl(_) => "buttons.url",
            Field::LineJson(_) => "line_json",
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.template;
        let subject = |what| self.field.subject(what);
        match &self.kind {
            LimitKind::TooManyMessages { count } => write!(
                f,
                "template `{t}` makes {count} messages; LINE takes at most {MAX_MESSAGES} per send"
            ),
            LimitKind::TooManyButtons { count } => write!(
                f,
                "template `{t}` has {count} buttons; LINE shows at most {MAX_BUTTONS}"
            ),
            LimitKind::TooManyActions { count } => write!(
                f,
                "template `{t}` has {count} actions in one message; LINE allows {MAX_BUTTONS}"
            ),
            LimitKind::MissingType { message } => {
                write!(f, "message {message} of template `{t}` has no \"type\"")
            }
            LimitKind::TextTooLong { length } => write!(
                f,
                "{} of template `{t}` is {length} characters; LINE allows {MAX_TEXT}",
                subject("the text")
            ),
            LimitKind::AltTooLong { length } => write!(
                f,
                "{} of template `{t}` is {length} characters; LINE allows {MAX_ALT_TEXT}",
                subject("the alt text")
            ),
            LimitKind::LabelTooLong { length } => write!(
                f,
                "{} of template `{t}` is {length} characters; LINE allows {MAX_LABEL}",
                subject("a label")
            ),
            LimitKind::UrlTooLong { length, max } => write!(
                f,
                "{} of template `{t}` is {length} characters; LINE allows {max}",
                subject("a URL")
            ),
            LimitKind::InsecureUrl => write!(
                f,
                "{} of template `{t}` is not an https URL",
                subject("a URL")
            ),
            LimitKind::UrlHostChanged { host } => write!(
                f,
                "{} of template `{t}` does not go to `{host}`, the host the template writes",
                subject("a URL")
            ),
            LimitKind::UrlNotLiteral => write!(
                f,
                "{} of template `{t}` starts with a variable, so its host cannot be checked",
                subject("a URL")
            ),
        }
    }
}

/// Everything in `rendered` that LINE would refuse or that breaks the URL rule. `written` is
/// the same messages with every value as the template writes it (before rendering), so each
/// rendered URL can be compared with its template.
pub fn violations(template: &Template, written: &[Json], rendered: &[Json]) -> Vec<Violation> {
    let mut check = Checker {
        template,
        found: Vec::new(),
    };
    if rendered.len() > MAX_MESSAGES {
        check.found(
            Field::Whole,
            LimitKind::TooManyMessages {
                count: rendered.len(),
            },
        );
    }
    if let TemplateBody::Simple { buttons, .. } = &template.body {
        if buttons.node.len() > MAX_BUTTONS {
            check.found(
                Field::ButtonLabel(MAX_BUTTONS + 1),
                LimitKind::TooManyButtons {
                    count: buttons.node.len(),
                },
            );
        }
    }
    for (index, message) in rendered.iter().enumerate() {
        let written = written.get(index).unwrap_or(&Json::Null);
        check.message(index + 1, written, message);
    }
    // An image is both the original and the preview: say it once.
    check.found.dedup();
    check.found
}

struct Checker<'t> {
    template: &'t Template,
    found: Vec<Violation>,
}

impl Checker<'_> {
    fn found(&mut self, field: Field, kind: LimitKind) {
        self.found.push(Violation {
            template: self.template.name.clone(),
            field,
            span: span_of(self.template, field),
            kind,
        });
    }

    /// Which field a value of message `message` came from: for the simple form, the key and the
    /// button it belongs to tell; in `line_json` every value is the JSON's.
    fn field(&self, message: usize, key: &str, button: Option<usize>) -> Field {
        if let TemplateBody::LineJson(_) = self.template.body {
            return Field::LineJson(message);
        }
        match (key, button) {
            ("label", Some(n)) => Field::ButtonLabel(n + 1),
            ("uri", Some(n)) => Field::ButtonUrl(n + 1),
            ("altText", _) => Field::Alt,
            ("text", _) => Field::Text,
            _ => Field::Image,
        }
    }

    fn message(&mut self, number: usize, written: &Json, rendered: &Json) {
        let kind = rendered.get("type").and_then(Json::as_str);
        if kind.is_none() {
            self.found(Field::Whole, LimitKind::MissingType { message: number });
        }
        if let (Some("text"), Some(text)) = (kind, rendered.get("text").and_then(Json::as_str)) {
            let length = utf16_len(text);
            if length > MAX_TEXT {
                let field = self.field(number, "text", None);
                self.found(field, LimitKind::TextTooLong { length });
            }
        }
        if let Some(alt) = rendered.get("altText").and_then(Json::as_str) {
            let length = utf16_len(alt);
            if length > MAX_ALT_TEXT {
                let field = self.field(number, "altText", None);
                self.found(field, LimitKind::AltTooLong { length });
            }
        }
        let mut values = Vec::new();
        walk_values(written, rendered, &mut 0, None, &mut values);
        for (key, written, rendered, button) in values {
            let field = self.field(number, key, button);
            if key == "label" && rendered.chars().count() > MAX_LABEL {
                let length = rendered.chars().count();
                self.found(field, LimitKind::LabelTooLong { length });
            }
            if URL_KEYS.contains(&key) {
                if let Err(kind) = url_rule(key, written, rendered) {
                    self.found(field, kind);
                }
            }
        }
        let mut lists = Vec::new();
        walk_lists(rendered, &mut lists);
        for count in lists {
            let field = self.field(number, "actions", None);
            self.found(field, LimitKind::TooManyActions { count });
        }
    }
}

/// The URL rule: https (or `tel:`/`line:` for a link), short enough, and — when the template
/// puts values into it — the scheme and host the template writes before its first tag.
fn url_rule(key: &str, written: &str, rendered: &str) -> Result<(), LimitKind> {
    let link = LINK_KEYS.contains(&key);
    let max = if link { MAX_ACTION_URI } else { MAX_IMAGE_URL };
    let length = rendered.chars().count();
    if length > max {
        return Err(LimitKind::UrlTooLong { length, max });
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

/// Where the first minijinja tag (`{{`, `{%`, `{#`) starts.
fn first_tag(text: &str) -> Option<usize> {
    ["{{", "{%", "{#"]
        .iter()
        .filter_map(|tag| text.find(tag))
        .min()
}

/// The host of an `https://` URL written before the first tag, if it is written there.
fn written_host(prefix: &str) -> Option<&str> {
    let rest = prefix.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.split(':').next().unwrap_or_default();
    let plain = !host.is_empty() && !authority.contains(['@', '\\']);
    plain.then_some(host)
}

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// The span of a field in the template file (the whole body when the field is not its own).
fn span_of(template: &Template, field: Field) -> Span {
    let (text, image, alt, buttons) = match &template.body {
        TemplateBody::Simple {
            text,
            image,
            alt,
            buttons,
        } => (text, image, alt, buttons),
        TemplateBody::LineJson(json) => return json.span,
    };
    let button = |n: usize| buttons.node.get(n.wrapping_sub(1));
    match field {
        Field::Alt => alt.as_ref().map(|a| a.span),
        Field::Image => image.as_ref().map(|i| i.span),
        Field::ButtonLabel(n) => button(n).map(|b| b.label.span),
        Field::ButtonUrl(n) => button(n).map(|b| b.url.span),
        Field::Whole | Field::Text | Field::LineJson(_) => None,
    }
    .unwrap_or(text.span)
}

/// Collects `(key, written, rendered, button)` for every string value, walking the written
/// and the rendered message side by side (they have the same shape: rendering only fills in
/// strings). `button` counts the `"type": "button"` objects met so far, so a simple
/// template's label or URL maps back to its `[[buttons]]` entry.
fn walk_values<'a>(
    written: &'a Json,
    rendered: &'a Json,
    buttons: &mut usize,
    current: Option<usize>,
    into: &mut Vec<(&'a str, &'a str, &'a str, Option<usize>)>,
) {
    match rendered {
        Json::Object(map) => {
            let current = if map.get("type").and_then(Json::as_str) == Some("button") {
                *buttons += 1;
                Some(*buttons - 1)
            } else {
                current
            };
            for (key, child) in map {
                let written_child = written.get(key).unwrap_or(&Json::Null);
                if let Json::String(text) = child {
                    let written_text = written_child.as_str().unwrap_or_default();
                    into.push((key.as_str(), written_text, text.as_str(), current));
                }
                walk_values(written_child, child, buttons, current, into);
            }
        }
        Json::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let written_item = written.get(index).unwrap_or(&Json::Null);
                walk_values(written_item, item, buttons, current, into);
            }
        }
        _ => {}
    }
}

/// The lengths of `actions` lists longer than LINE allows.
fn walk_lists(value: &Json, into: &mut Vec<usize>) {
    match value {
        Json::Object(map) => {
            for (key, child) in map {
                if let Json::Array(items) = child {
                    if key == "actions" && items.len() > MAX_BUTTONS {
                        into.push(items.len());
                    }
                }
                walk_lists(child, into);
            }
        }
        Json::Array(items) => items.iter().for_each(|item| walk_lists(item, into)),
        _ => {}
    }
}
