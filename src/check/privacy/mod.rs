//! Privacy lints (`steprule::privacy-…`): the notification preview — a text's first line and
//! every alt text, which a lock screen shows to whoever holds the phone — must not hold health
//! information (the words of `compliance/health_words.toml`, or a field the rules declare
//! `sensitive`). The lints that depend on the step sending a template (a sensitive field sent
//! without consent, a promo step without consent or without opt-out wording) are in
//! [`steps`]. A lint flags text for a person to review (docs/compliance.md).

mod lexicon;
mod steps;

pub use steps::{needs_consent, purpose};

#[cfg(test)]
mod tests;

#[cfg(test)]
/// The steps, each marked `care` (and allowed to lack opt-out wording) unless it says what it
/// is for: the tests using it are about timing, and a repeating step would otherwise be a promo
/// that needs a consent setting.
pub(crate) fn as_care(steps: &str) -> String {
    let mut lines: Vec<String> = steps.lines().map(str::to_owned).collect();
    // (first line, last line) of each statement.
    let mut statements: Vec<(usize, usize)> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match statements.last_mut() {
            Some(statement) if trimmed.len() != line.len() => statement.1 = index,
            _ => statements.push((index, index)),
        }
    }
    for (first, last) in statements {
        let is_step = lines[first].starts_with("step ") || lines[first].starts_with("when ");
        let says = lines[first..=last]
            .iter()
            .any(|l| l.contains(" care") || l.contains(" promo") || l.contains("requires consent"));
        if is_step && !says {
            lines[last].push_str(" care allow privacy-opt-out");
        }
    }
    let mut text = lines.join("\n");
    if steps.ends_with('\n') {
        text.push('\n');
    }
    text
}

use serde_json::Value as Json;

use super::compliance::{pieces, Normalized, PieceKind};
use crate::diagnostic::{Code, Diagnostic};
use crate::line::Message;
use crate::printable::printable;
use crate::source::Span;
use crate::template::{Template, TemplateBody};
use lexicon::HealthWords;

/// The privacy codes that are errors: neither a step's nor a template's `allow` silences
/// them, because each is fixed by rewording the message or by asking for consent.
pub const ERRORS: &[Code] = &[
    Code::PrivacyPreview,
    Code::PrivacySensitiveField,
    Code::PromoWithoutConsent,
];

/// Put around a sensitive field's name in `check`'s sample patient, so that the rendered
/// preview shows where the field's value went (an invisible separator, which no template
/// writes).
pub(super) const SENSITIVE_MARK: char = '\u{2063}';

/// The sample value of a sensitive field: its name between marks.
pub(super) fn sensitive_sample(field: &str) -> String {
    format!("{SENSITIVE_MARK}{field}{SENSITIVE_MARK}")
}

/// What `check` learns of a template for the lints that depend on the steps sending it.
#[derive(Debug, Clone, Default)]
pub(super) struct TemplateFacts {
    /// The template says how to stop receiving (配信停止 …); `None` when not looked for.
    pub opt_out: Option<bool>,
    /// The sensitive fields the template uses, each at its place in the template file.
    pub sensitive: Vec<(String, Span)>,
}

/// One place of the preview: what it says and where it is written.
struct Preview<'a> {
    text: &'a str,
    /// "the first line of the text", "the alt text".
    field: String,
    span: Span,
}

/// The preview findings of a template's rendered `messages`, and whether its text holds
/// opt-out wording (looked for when `wants_opt_out`).
pub(super) fn lint_template(
    template: &Template,
    messages: &[Message],
    sensitive: &[String],
    wants_opt_out: bool,
) -> (Vec<Diagnostic>, Option<bool>) {
    let words = HealthWords::shipped();
    let mut findings = Vec::new();
    for preview in previews(template, messages) {
        let folded = Normalized::new(preview.text);
        for hit in words.find(&folded).hits {
            let word = preview
                .text
                .get(folded.original(hit.range))
                .unwrap_or_default();
            let entry = &words.entries[hit.entry];
            findings.push(
                Diagnostic::new(
                    Code::PrivacyPreview,
                    &template.file,
                    locate(template, preview.span, word),
                    format!(
                        "「{}」 in the notification preview ({}) of template `{}` is health \
                         information",
                        printable(word),
                        preview.field,
                        template.name
                    ),
                )
                .with_label(entry.reason.clone())
                .with_help(PREVIEW_HELP),
            );
        }
        for field in sensitive {
            if preview.text.contains(&sensitive_sample(field)) {
                findings.push(
                    Diagnostic::new(
                        Code::PrivacyPreview,
                        &template.file,
                        locate(template, preview.span, field),
                        format!(
                            "the notification preview ({}) of template `{}` shows the \
                             sensitive field `{field}`",
                            preview.field, template.name
                        ),
                    )
                    .with_label("declared `sensitive`")
                    .with_help(PREVIEW_HELP),
                );
            }
        }
    }
    let opt_out = wants_opt_out.then(|| {
        pieces(template, messages)
            .iter()
            .filter(|piece| piece.kind == PieceKind::Text)
            .any(|piece| words.find(&Normalized::new(&piece.value)).opt_out)
    });
    (findings, opt_out)
}

const PREVIEW_HELP: &str = "a lock screen shows this to whoever holds the phone, and a \
     patient's diseases, medicines, test results and pregnancy are special-care personal \
     information (要配慮個人情報): open with a neutral greeting such as 「{{ clinic }}からの\
     お知らせです」 (and a neutral `alt`), and put health details in the body. Privacy errors \
     cannot be allowed";

/// Where `word` stands in the field written at `field`: its first place there, or the whole
/// field when it came from a variable.
fn locate(template: &Template, field: Span, word: &str) -> Span {
    let raw = template.file.slice(field);
    match raw.find(word) {
        Some(start) if !word.is_empty() => {
            Span::new(field.start + start, field.start + start + word.len())
        }
        _ => field,
    }
}

/// The first line of a text that shows anything: what a lock screen shows first.
fn first_line(text: &str) -> &str {
    text.lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("")
}

/// The previews of the rendered messages: the first line of each text message, and every alt
/// text.
fn previews<'m>(template: &Template, messages: &'m [Message]) -> Vec<Preview<'m>> {
    let mut previews = Vec::new();
    match &template.body {
        TemplateBody::Simple { text, alt, .. } => {
            let alt_span = alt.as_ref().map_or(text.span, |a| a.span);
            for message in messages {
                match message {
                    Message::Text { text: value } => previews.push(Preview {
                        text: first_line(value),
                        field: "the first line of the text".into(),
                        span: text.span,
                    }),
                    Message::Card(card) => previews.push(Preview {
                        text: &card.alt_text,
                        field: "the alt text".into(),
                        span: alt_span,
                    }),
                    Message::Json(json) => {
                        json_previews(json, "`line_json`", text.span, &mut previews)
                    }
                    Message::Image { .. } => {}
                }
            }
        }
        TemplateBody::LineJson(source) => {
            for (index, message) in messages.iter().enumerate() {
                let field = format!("message {} of `line_json`", index + 1);
                match message {
                    Message::Json(json) => json_previews(json, &field, source.span, &mut previews),
                    Message::Text { text } => previews.push(Preview {
                        text: first_line(text),
                        field,
                        span: source.span,
                    }),
                    _ => {}
                }
            }
        }
    }
    previews
}

/// A LINE message object's previews: a text message's first line, and every `altText` in it.
fn json_previews<'m>(json: &'m Json, field: &str, span: Span, into: &mut Vec<Preview<'m>>) {
    if json.get("type").and_then(Json::as_str) == Some("text") {
        if let Some(text) = json.get("text").and_then(Json::as_str) {
            into.push(Preview {
                text: first_line(text),
                field: format!("the first line of {field}"),
                span,
            });
        }
    }
    alt_texts(json, field, span, into);
}

/// serde_json reads at most 128 levels, so the recursion is bounded.
fn alt_texts<'m>(json: &'m Json, field: &str, span: Span, into: &mut Vec<Preview<'m>>) {
    match json {
        Json::Object(map) => {
            for (key, value) in map {
                match value {
                    Json::String(text) if key == "altText" => into.push(Preview {
                        text,
                        field: format!("the `altText` of {field}"),
                        span,
                    }),
                    _ => alt_texts(value, field, span, into),
                }
            }
        }
        Json::Array(items) => items
            .iter()
            .for_each(|item| alt_texts(item, field, span, into)),
        _ => {}
    }
}
