//! The templates a step sends: they exist, their weights add up, they compile, they use only
//! known variables, and what they render to fits LINE's limits. Templates are rendered with a
//! sample patient through the same code that renders for delivery.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use minijinja::Value;
use serde_json::Value as Json;

use super::Checker;
use crate::diagnostic::{suggest, Code, Diagnostic};
use crate::source::{Span, Spanned};
use crate::syntax::StepDecl;
use crate::template::{
    self, describe_error as describe, LoadError, Template, TemplateBody, TemplateStore, SAMPLE_TIME,
};

/// LINE Messaging API limits (text lengths in UTF-16 code units, as LINE counts them).
pub const MAX_MESSAGES: usize = 5;
pub const MAX_TEXT: usize = 5000;
pub const MAX_ALT_TEXT: usize = 400;
pub const MAX_BUTTONS: usize = 4;
pub const MAX_LABEL: usize = 20;

const URL_KEYS: &[&str] = &[
    "uri",
    "url",
    "linkUri",
    "originalContentUrl",
    "previewImageUrl",
    "thumbnailImageUrl",
];

/// Functions minijinja provides, which are not patient variables.
const TEMPLATE_GLOBALS: &[&str] = &["range", "dict", "namespace", "debug"];

impl Checker<'_> {
    pub(super) fn templates(
        &mut self,
        step: &StepDecl,
        store: &mut TemplateStore,
    ) -> Vec<Arc<Template>> {
        self.weights(step);
        let mut loaded = Vec::new();
        for variant in &step.send {
            let name = &variant.template;
            match store.get(&name.node) {
                Ok(template) => {
                    if self.first_look(&name.node) {
                        self.template_content(&template);
                    }
                    loaded.push(template);
                }
                Err(LoadError::NotFound { path, available }) => {
                    let help = match suggest(&name.node, available.iter().map(String::as_str)) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => format!("create {} with a `text = \"…\"` line", path.display()),
                    };
                    let diag = self.report(
                        Code::UnknownTemplate,
                        name.span,
                        format!(
                            "unknown template `{}` (no file {})",
                            name.node,
                            path.display()
                        ),
                    );
                    diag.label = Some("no such template".into());
                    diag.help = Some(help);
                }
                Err(LoadError::Invalid(diag)) => {
                    if self.first_look(&name.node) {
                        self.diagnostics.push(*diag);
                    }
                }
                Err(LoadError::Io { path, message }) => {
                    self.report(
                        Code::TemplateInvalid,
                        name.span,
                        format!("cannot read template {}: {message}", path.display()),
                    );
                }
            }
        }
        loaded
    }

    fn first_look(&mut self, template: &str) -> bool {
        self.templates_checked.insert(template.to_owned())
    }

    fn weights(&mut self, step: &StepDecl) {
        let mut seen = BTreeSet::new();
        for variant in &step.send {
            if !seen.insert(variant.template.node.as_str()) {
                self.report(
                    Code::WeightSum,
                    variant.template.span,
                    format!("template `{}` is listed twice", variant.template.node),
                )
                .help = Some("list each variant once and give it the combined weight".into());
            }
        }
        let weights: Vec<_> = step.send.iter().map(|v| v.weight.as_ref()).collect();
        let span = step
            .send
            .first()
            .map(|v| v.span)
            .unwrap_or(step.span)
            .to(step.send.last().map(|v| v.span).unwrap_or(step.span));
        if let [only] = weights.as_slice() {
            if let Some(weight) = only.filter(|w| w.node != 100) {
                self.report(
                    Code::WeightSum,
                    weight.span,
                    format!("a single template gets 100%, not {}%", weight.node),
                )
                .help = Some("drop the weight, or add the other variants".into());
            }
            return;
        }
        if weights.iter().any(Option::is_none) {
            self.report(Code::WeightSum, span, "every variant needs a weight")
                .help = Some("e.g. `send checkup_a 50% | checkup_b 50%`".into());
            return;
        }
        let total: u64 = weights.iter().flatten().map(|w| u64::from(w.node)).sum();
        if total != 100 {
            let diag = self.report(
                Code::WeightSum,
                span,
                format!("variant weights add up to {total}%, not 100%"),
            );
            diag.label = Some(format!("{total}%"));
            diag.help = Some("adjust the weights so that they add up to 100".into());
        }
        for weight in weights.into_iter().flatten().filter(|w| w.node == 0) {
            self.report(Code::WeightSum, weight.span, "a 0% variant is never sent")
                .help = Some("remove the variant instead".into());
        }
    }

    fn template_content(&mut self, template: &Template) {
        let timezone = self
            .decls
            .timezone
            .map(|(tz, _)| tz)
            .unwrap_or(chrono_tz::Asia::Tokyo);
        let env = template::environment(timezone);
        let known: BTreeSet<&str> = self
            .template_variables()
            .into_iter()
            .chain(TEMPLATE_GLOBALS.iter().copied())
            .collect();
        let mut findings = Vec::new();
        let mut compiles = true;
        for (field, source) in template.sources() {
            let compiled = match env.template_from_str(&source.node) {
                Ok(compiled) => compiled,
                Err(err) => {
                    compiles = false;
                    findings.push(
                        Diagnostic::new(
                            Code::TemplateSyntax,
                            &template.file,
                            err.range().map_or(source.span, |r| locate(template, source, r)),
                            format!(
                                "`{field}` of template `{}` does not compile: {}",
                                template.name,
                                describe(&err)
                            ),
                        )
                        .with_help("templates use minijinja (Jinja2) syntax: `{{ name }}`, `{% if doctor %}…{% endif %}`"),
                    );
                    continue;
                }
            };
            let mut unknown: Vec<String> = compiled
                .undeclared_variables(false)
                .into_iter()
                .filter(|v| !known.contains(v.as_str()))
                .collect();
            unknown.sort();
            for variable in unknown {
                let help = match suggest(&variable, known.iter().copied()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!(
                        "templates see the patient's fields ({}); declare other columns in the \
                         rules with `fields {variable}` (or `dates {variable}` for a date)",
                        self.template_variables().join(", ")
                    ),
                };
                let span = find_word(&source.node, &variable)
                    .map_or(source.span, |r| locate(template, source, r));
                findings.push(
                    Diagnostic::new(
                        Code::TemplateUnknownVariable,
                        &template.file,
                        span,
                        format!(
                            "template `{}` uses unknown variable `{variable}` in `{field}`",
                            template.name
                        ),
                    )
                    .with_help(help),
                );
            }
        }
        if let TemplateBody::LineJson(source) = &template.body {
            if let Err(err) = template::parse_line_json(source) {
                compiles = false;
                findings.push(
                    Diagnostic::new(Code::TemplateInvalid, &template.file, err.span, err.message)
                        .with_help("`line_json` is a JSON array of LINE message objects (or one object); check commas and quotes"),
                );
            }
        }
        if compiles {
            match template.messages(&env, &self.sample_patient()) {
                Ok(messages) => findings.extend(limits(template, &messages)),
                Err(err) => findings.push(
                    Diagnostic::new(
                        Code::TemplateRender,
                        &template.file,
                        err.span,
                        format!(
                            "`{}` of template `{}` fails for a sample patient: {}",
                            err.field, template.name, err.message
                        ),
                    )
                    .with_help("check filter names and arguments, e.g. `{{ appointment_at | date(\"%m月%d日\") }}`"),
                ),
            }
        }
        // One value can land in several message fields (an image is both the original and
        // the preview): say it once.
        findings.dedup_by(|a, b| a.span == b.span && a.code == b.code && a.message == b.message);
        self.diagnostics.extend(findings);
    }

    /// A patient with every known field set, for rendering templates at check time.
    fn sample_patient(&self) -> Value {
        let mut sample = std::collections::BTreeMap::new();
        for name in self.template_variables() {
            let value = match name {
                "clinic" => Value::from(
                    self.decls
                        .clinic
                        .as_ref()
                        .map(|c| c.node.clone())
                        .unwrap_or_else(|| "クリニック".into()),
                ),
                "name" => Value::from("山田 花子"),
                "age" => Value::from(45),
                "tags" => Value::from(vec!["sample"]),
                "stage" => Value::from(
                    self.decls
                        .stages
                        .first()
                        .map(|s| s.node.clone())
                        .unwrap_or_default(),
                ),
                "birth_date" => Value::from("1981-04-01"),
                other if self.field_kind(other) == Some(super::FieldKind::Date) => {
                    Value::from(SAMPLE_TIME)
                }
                _ => Value::from("sample"),
            };
            sample.insert(name.to_owned(), value);
        }
        Value::from_serialize(&sample)
    }
}

/// Maps a byte range of a template field's text to the file. Exact when the text stands in the
/// file as written (multi-line and literal strings); otherwise the whole field.
fn locate(template: &Template, field: &Spanned<String>, range: Range<usize>) -> Span {
    let raw = template.file.slice(field.span);
    match raw.find(field.node.as_str()) {
        Some(start) if !field.node.is_empty() => {
            let base = field.span.start + start;
            Span::new(base + range.start, base + range.end.max(range.start))
        }
        _ => field.span,
    }
}

/// The first place `word` stands in `text` as a whole name.
fn find_word(text: &str, word: &str) -> Option<Range<usize>> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word)
        .map(|(start, _)| start..start + word.len())
        .find(|r| {
            !text[..r.start].chars().next_back().is_some_and(is_name)
                && !text[r.end..].chars().next().is_some_and(is_name)
        })
}

/// Checks rendered LINE messages against LINE's limits. Each finding points at the template
/// field that produced the value.
fn limits(template: &Template, messages: &[Json]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let body_span = body_span(template);
    let mut finding = |span: Span, code: Code, message: String, help: &str| {
        out.push(Diagnostic::new(code, &template.file, span, message).with_help(help.to_owned()));
    };
    if messages.len() > MAX_MESSAGES {
        finding(
            body_span,
            Code::LineLimit,
            format!(
                "template `{}` makes {} messages; LINE takes at most {MAX_MESSAGES} per send",
                template.name,
                messages.len()
            ),
            "split it into two steps, or combine messages",
        );
    }
    if let TemplateBody::Simple { buttons, .. } = &template.body {
        if let Some(extra) = buttons.node.get(MAX_BUTTONS) {
            finding(
                extra.label.span,
                Code::LineLimit,
                format!(
                    "template `{}` has {} buttons; LINE shows at most {MAX_BUTTONS}",
                    template.name,
                    buttons.node.len()
                ),
                "keep the most important calls to action",
            );
        }
    }
    for (index, message) in messages.iter().enumerate() {
        let kind = message.get("type").and_then(Json::as_str);
        if kind.is_none() {
            finding(
                body_span,
                Code::TemplateInvalid,
                format!(
                    "message {} of template `{}` has no \"type\"",
                    index + 1,
                    template.name
                ),
                "every LINE message object has a \"type\", e.g. \"text\" or \"flex\"",
            );
        }
        if let (Some("text"), Some(text)) = (kind, message.get("text").and_then(Json::as_str)) {
            let length = utf16_len(text);
            if length > MAX_TEXT {
                finding(
                    span_of(template, "text").unwrap_or(body_span),
                    Code::LineLimit,
                    format!(
                        "the text of template `{}` is {length} characters; LINE allows {MAX_TEXT}",
                        template.name
                    ),
                    "shorten it, or link to a page with the details",
                );
            }
        }
        if let Some(alt) = message.get("altText").and_then(Json::as_str) {
            let length = utf16_len(alt);
            if length > MAX_ALT_TEXT {
                finding(span_of(template, "alt").unwrap_or(body_span), Code::LineLimit, format!("the alt text of template `{}` is {length} characters; LINE allows {MAX_ALT_TEXT}", template.name), "the alt text is the notification preview: keep it short and neutral");
            }
        }
        walk_values(message, &mut |key, value, button| {
            let Some(text) = value.as_str() else { return };
            if key == "label" && text.chars().count() > MAX_LABEL {
                let span = button
                    .and_then(|i| button_span(template, i, true))
                    .unwrap_or(body_span);
                finding(
                    span,
                    Code::LineLimit,
                    format!(
                        "button label \"{text}\" is {} characters; LINE allows {MAX_LABEL}",
                        text.chars().count()
                    ),
                    "shorten it, e.g. 「ご予約はこちら」",
                );
            }
            if URL_KEYS.contains(&key) && !url_allowed(key, text) {
                let span = match key {
                    "uri" => button.and_then(|i| button_span(template, i, false)),
                    _ => span_of(template, "image"),
                }
                .unwrap_or(body_span);
                finding(span, Code::InsecureUrl, format!("\"{text}\" is not an https URL"), "LINE needs https:// for images and links (tel: and line: are allowed for buttons)");
            }
        });
        walk_arrays(message, &mut |key, items| {
            if key == "actions" && items.len() > MAX_BUTTONS {
                finding(
                    body_span,
                    Code::LineLimit,
                    format!(
                        "template `{}` has {} actions in one message; LINE allows {MAX_BUTTONS}",
                        template.name,
                        items.len()
                    ),
                    "keep the most important calls to action",
                );
            }
        });
    }
    out
}

fn url_allowed(key: &str, url: &str) -> bool {
    url.starts_with("https://")
        || (key == "uri" && (url.starts_with("tel:") || url.starts_with("line:")))
}

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

fn body_span(template: &Template) -> Span {
    match &template.body {
        TemplateBody::Simple { text, .. } => text.span,
        TemplateBody::LineJson(json) => json.span,
    }
}

fn span_of(template: &Template, field: &str) -> Option<Span> {
    match (&template.body, field) {
        (TemplateBody::Simple { text, .. }, "text") => Some(text.span),
        (TemplateBody::Simple { alt, .. }, "alt") => alt.as_ref().map(|a| a.span),
        (TemplateBody::Simple { image, .. }, "image") => image.as_ref().map(|i| i.span),
        _ => None,
    }
}

fn button_span(template: &Template, index: usize, label: bool) -> Option<Span> {
    match &template.body {
        TemplateBody::Simple { buttons, .. } => {
            buttons
                .node
                .get(index)
                .map(|b| if label { b.label.span } else { b.url.span })
        }
        TemplateBody::LineJson(_) => None,
    }
}

/// Calls `visit(key, value, button_index)` for every keyed value; `button_index` counts the
/// `"type": "button"` objects met so far, so simple templates can map a label back to its
/// `[[buttons]]` entry.
fn walk_values(value: &Json, visit: &mut dyn FnMut(&str, &Json, Option<usize>)) {
    fn walk(
        value: &Json,
        visit: &mut dyn FnMut(&str, &Json, Option<usize>),
        buttons: &mut usize,
        current: Option<usize>,
    ) {
        match value {
            Json::Object(map) => {
                let current = if map.get("type").and_then(Json::as_str) == Some("button") {
                    *buttons += 1;
                    Some(*buttons - 1)
                } else {
                    current
                };
                for (key, child) in map {
                    visit(key, child, current);
                    walk(child, visit, buttons, current);
                }
            }
            Json::Array(items) => items.iter().for_each(|i| walk(i, visit, buttons, current)),
            _ => {}
        }
    }
    walk(value, visit, &mut 0, None);
}

fn walk_arrays(value: &Json, visit: &mut dyn FnMut(&str, &[Json])) {
    match value {
        Json::Object(map) => {
            for (key, child) in map {
                if let Json::Array(items) = child {
                    visit(key, items);
                }
                walk_arrays(child, visit);
            }
        }
        Json::Array(items) => items.iter().for_each(|i| walk_arrays(i, visit)),
        _ => {}
    }
}
