//! LINE's limits and the URL rule ([`crate::line::limits`]) as a template's problems: each
//! finding named by the template and the field it comes from. `check` gets them for a sample
//! patient, delivery for every patient, through [`Template::messages`](super::Template::messages).
//!
//! Findings name the template and the field, never a rendered value: at delivery the values
//! are patient data.

pub use crate::line::limits::LimitKind;

use crate::line::limits::{
    MAX_ALT_TEXT, MAX_BUTTONS, MAX_LABEL, MAX_MESSAGES, MAX_POSTBACK_DATA, MAX_TEXT,
};

use super::{Template, TemplateBody};
use crate::line::{Finding, Role};
use crate::source::Span;

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
            LimitKind::PostbackDataTooLong { length } => write!(
                f,
                "{} of template `{t}` is {length} characters; LINE allows {MAX_POSTBACK_DATA}",
                subject("the postback data")
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

/// The findings of [`crate::line::limits`] for `template`'s messages, each named by the field
/// of the template it comes from.
pub fn violations(template: &Template, findings: Vec<Finding>) -> Vec<Violation> {
    findings
        .into_iter()
        .map(|finding| {
            let field = field_of(template, &finding);
            Violation {
                template: template.name.clone(),
                field,
                span: span_of(template, field),
                kind: finding.kind,
            }
        })
        .collect()
}

/// Which field a finding is about: in `line_json` every value is the JSON's; in the simple
/// form the kind of string and its button tell.
fn field_of(template: &Template, finding: &Finding) -> Field {
    let Some(message) = finding.message else {
        return Field::Whole;
    };
    if let TemplateBody::LineJson(_) = template.body {
        return Field::LineJson(message + 1);
    }
    match (finding.role, finding.button) {
        (Some(Role::Label), Some(n)) => Field::ButtonLabel(n + 1),
        (Some(Role::Link), Some(n)) => Field::ButtonUrl(n + 1),
        (Some(Role::AltText), _) => Field::Alt,
        (Some(Role::Text), _) => Field::Text,
        _ => Field::Image,
    }
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
