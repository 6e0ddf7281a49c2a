//! The templates a step sends: they exist, their weights add up, they compile, they use only
//! known variables, and what they render to fits LINE's limits. Templates are rendered with a
//! sample patient through the same code that renders for delivery.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use minijinja::Value;

use super::Checker;
use crate::diagnostic::{suggest, Code, Diagnostic};
use crate::fields::Field;
use crate::line::track::{SendLinks, TrackBase, TOKEN_LEN};
use crate::source::{Span, Spanned};
use crate::syntax::StepDecl;
use crate::template::line::{LimitKind, Violation};
use crate::template::{
    self, describe_error as describe, FailureKind, LoadError, RenderError, RenderFailure, Template,
    TemplateBody, TemplateStore, Tracking, MAX_FUEL, MAX_RENDERED_BYTES, SAMPLE_TIME,
};

/// What a template may use: the variables it sees, a sample of them to render with, and what
/// to say about a variable it does not see (when no known name is close).
pub(super) struct Scope {
    pub known: BTreeSet<String>,
    pub sample: Value,
    pub unknown_help: Box<dyn Fn(&str) -> String>,
    /// Whether an unknown variable close to a known name gets "did you mean".
    pub suggest: bool,
}

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
                        // Every problem of the template at once: its unknown keys, then
                        // what its known keys render to.
                        self.diagnostics
                            .extend(template.unknown_keys.iter().cloned());
                        self.template_content(&template);
                    }
                    loaded.push(template);
                }
                Err(LoadError::NotFound { .. }) if !store.dir().is_dir() => {
                    if !std::mem::replace(&mut self.templates_folder_missing, true) {
                        let folder =
                            crate::printable::printable(&store.dir().display().to_string())
                                .into_owned();
                        let diag = self.report(
                            Code::UnknownTemplate,
                            name.span,
                            format!("the templates folder {folder} does not exist"),
                        );
                        diag.label = Some("no template can be found".into());
                        diag.help = Some(
                            "templates are read from `templates/` beside the rules, or from the \
                             folder given with --templates"
                                .into(),
                        );
                    }
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
        let variables = self.template_variables().join(", ");
        let scope = Scope {
            known: self
                .template_variables()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            sample: self.sample_patient(),
            unknown_help: Box::new(move |variable| {
                format!(
                    "templates see the patient's fields ({variables}); declare other columns in \
                     the rules with `fields {variable}` (or `dates {variable}` for a date)"
                )
            }),
            suggest: true,
        };
        self.template_content_in(template, &scope);
    }

    /// Checks a template that may use the variables of `scope`, rendering it with its sample.
    pub(super) fn template_content_in(&mut self, template: &Template, scope: &Scope) {
        let timezone = self
            .decls
            .timezone
            .map(|(tz, _)| tz)
            .unwrap_or(chrono_tz::Asia::Tokyo);
        let env = template::environment(timezone);
        let known: BTreeSet<&str> = scope
            .known
            .iter()
            .map(String::as_str)
            .chain(TEMPLATE_GLOBALS.iter().copied())
            .collect();
        let mut findings = Vec::new();
        let mut facts = super::privacy::TemplateFacts::default();
        let sensitive: Vec<String> = self
            .decls
            .sensitive
            .iter()
            .map(|f| f.node.clone())
            .collect();
        let mut compiles = true;
        // The fields that do not compile: the others are still rendered, so that a bad button
        // URL is reported together with a broken `{{ … }}` in the text.
        let mut broken: Vec<Span> = Vec::new();
        for (field, source) in template.sources() {
            let compiled = match env.template_from_str(&source.node) {
                Ok(compiled) => compiled,
                Err(err) => {
                    broken.push(source.span);
                    // `{{ 患者名 }}`: minijinja only says "unexpected character"; a marketer
                    // needs the names they can write instead.
                    let japanese = err
                        .range()
                        .and_then(|r| source.node.get(r.start..))
                        .and_then(|rest| rest.chars().next())
                        .is_some_and(|c| !c.is_ascii());
                    let help = if japanese {
                        let names: Vec<&str> = known
                            .iter()
                            .copied()
                            .filter(|name| !TEMPLATE_GLOBALS.contains(name))
                            .take(40)
                            .collect();
                        format!(
                            "variable names are ASCII; this template can use {}",
                            names
                                .iter()
                                .map(|name| format!("`{{{{ {name} }}}}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    } else {
                        "templates use minijinja (Jinja2) syntax: `{{ name }}`, `{% if doctor %}…{% endif %}`".to_owned()
                    };
                    findings.push(
                        Diagnostic::new(
                            Code::TemplateSyntax,
                            &template.file,
                            err.range()
                                .map_or(source.span, |r| locate(template, source, r)),
                            format!(
                                "`{field}` of template `{}` does not compile: {}",
                                template.name,
                                describe(&err)
                            ),
                        )
                        .with_help(help),
                    );
                    continue;
                }
            };
            let used = compiled.undeclared_variables(false);
            for field in sensitive.iter().filter(|f| used.contains(f.as_str())) {
                let span = find_word(&source.node, field)
                    .map_or(source.span, |r| locate(template, source, r));
                facts.sensitive.push((field.clone(), span));
            }
            let mut unknown: Vec<String> = used
                .into_iter()
                .filter(|v| !known.contains(v.as_str()))
                .collect();
            unknown.sort();
            for variable in unknown {
                let close = scope
                    .suggest
                    .then(|| suggest(&variable, known.iter().copied()))
                    .flatten();
                let help = match close {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => (scope.unknown_help)(&variable),
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
            if let Err(err) = template::parse_line_json(&template.name, source) {
                compiles = false;
                findings.push(
                    Diagnostic::new(
                        Code::TemplateInvalid,
                        &template.file,
                        err.span,
                        err.detail().unwrap_or("`line_json` is not valid JSON"),
                    )
                    .with_help("`line_json` is a JSON array of LINE message objects (or one object); check commas and quotes"),
                );
            }
        }
        let patched = match broken.is_empty() {
            true => None,
            false => literal_fields(template, &broken),
        };
        let renderable = match &patched {
            Some(patched) => Some(patched),
            None if broken.is_empty() => Some(template),
            None => None,
        };
        if let (true, Some(rendered)) = (compiles, renderable) {
            // The same call delivery makes for every patient, with the sample patient.
            // With `track`, the sample's links are tracked too (with placeholder tokens of a
            // real token's length), so LINE's limits hold for what LINE will receive.
            let mut sample_links = SendLinks::sample();
            let tracking = self.decls.track.as_ref().map(|base| Tracking {
                base,
                links: &mut sample_links,
            });
            match rendered.messages(&env, &scope.sample, tracking) {
                Ok(messages) => {
                    findings.extend(super::compliance::lint(template, &messages));
                    let wants_opt_out = self.opt_out_wanted.contains(&template.name);
                    let (privacy, opt_out) = super::privacy::lint_template(
                        template,
                        &messages,
                        &sensitive,
                        wants_opt_out,
                    );
                    findings.extend(privacy);
                    facts.opt_out = opt_out;
                }
                Err(RenderError::Limits(violations)) => {
                    let tracked = self.decls.track.as_ref();
                    findings.extend(
                        violations
                            .iter()
                            // A broken field was rendered as written: what it renders to is
                            // not known yet.
                            .filter(|v| !broken.contains(&v.span))
                            .map(|v| limit_diagnostic(template, v, tracked)),
                    );
                }
                Err(RenderError::Failed(failure)) => {
                    findings.push(render_diagnostic(template, &failure));
                }
                // The sample's tokens are placeholders, never random.
                Err(RenderError::Token(_)) => {}
            }
        }
        self.diagnostics.extend(findings);
        self.template_facts.insert(template.name.clone(), facts);
    }

    /// A patient with every known field set, for rendering templates at check time. Built-in
    /// fields get a value of their kind by an exhaustive match, so a new field needs one here.
    fn sample_patient(&self) -> Value {
        let mut sample = std::collections::BTreeMap::new();
        for name in self.template_variables() {
            let value = match Field::from_name(name) {
                Some(field) => self.sample_value(field),
                None if super::fields::RULE_VARIABLES.contains(&name) => Value::from(
                    self.decls
                        .clinic
                        .as_ref()
                        .map(|c| c.node.clone())
                        .unwrap_or_else(|| "クリニック".into()),
                ),
                None if self.field_kind(name) == Some(super::FieldKind::Date) => {
                    Value::from(SAMPLE_TIME)
                }
                // Marked, so that the preview lint sees where its value is shown.
                None if self.decls.sensitive.iter().any(|f| f.node == name) => {
                    Value::from(super::privacy::sensitive_sample(name))
                }
                None => Value::from("sample"),
            };
            sample.insert(name.to_owned(), value);
        }
        Value::from_serialize(&sample)
    }
}

impl Checker<'_> {
    fn sample_value(&self, field: Field) -> Value {
        match field {
            Field::Name => Value::from("山田 花子"),
            Field::Age => Value::from(45),
            Field::Tags | Field::Tag => Value::from(vec!["sample"]),
            Field::Stage => Value::from(
                self.decls
                    .stages
                    .first()
                    .map(|s| s.node.clone())
                    .unwrap_or_default(),
            ),
            Field::BirthDate => Value::from("1981-04-01"),
            Field::StageEnteredAt => Value::from(SAMPLE_TIME),
            Field::Id | Field::LineUserId | Field::OptedOut => Value::from("sample"),
        }
    }
}

/// The template with each field at a span in `broken` (it does not compile) taken as plain
/// text, so that the other fields can be rendered and checked; `None` for `line_json` (one
/// field: nothing else to check) or a field that cannot be quoted.
fn literal_fields(template: &Template, broken: &[Span]) -> Option<Template> {
    let mut patched = template.clone();
    let TemplateBody::Simple {
        text,
        image,
        alt,
        buttons,
    } = &mut patched.body
    else {
        return None;
    };
    let fields = [Some(text), image.as_mut(), alt.as_mut()]
        .into_iter()
        .flatten()
        .chain(
            buttons
                .node
                .iter_mut()
                .flat_map(|b| [&mut b.label, &mut b.url]),
        );
    for field in fields.filter(|f| broken.contains(&f.span)) {
        if field.node.contains("endraw") {
            return None;
        }
        field.node = format!("{{% raw %}}{}{{% endraw %}}", field.node);
    }
    Some(patched)
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

/// A template that fails for the sample patient. minijinja's own words are shown: the patient
/// is a sample, so they quote no patient data.
fn render_diagnostic(template: &Template, failure: &RenderFailure) -> Diagnostic {
    let (code, message, help) = match failure.kind {
        FailureKind::OutOfFuel | FailureKind::TooLarge => (
            Code::TemplateBudget,
            failure.to_string(),
            format!(
                "a template field may take {MAX_FUEL} steps and render {MAX_RENDERED_BYTES} bytes; \
                 loop over the patient's values (`{{% for t in tags %}}`), not over large ranges"
            ),
        ),
        _ => (
            Code::TemplateRender,
            format!(
                "`{}` of template `{}` fails for a sample patient: {}",
                failure.field,
                template.name,
                failure
                    .detail()
                    .map_or_else(|| failure.to_string(), str::to_owned)
            ),
            "check filter names and arguments, e.g. `{{ appointment_at | date(\"%m月%d日\") }}`"
                .to_owned(),
        ),
    };
    Diagnostic::new(code, &template.file, failure.span, message).with_help(help)
}

/// A rendered message beyond LINE's limits or against the URL rule, pointing at the field.
/// With `track`, a text is measured with its links tracked, which the help says.
fn limit_diagnostic(
    template: &Template,
    violation: &Violation,
    track: Option<&TrackBase>,
) -> Diagnostic {
    let (code, help) = match &violation.kind {
        LimitKind::TooManyMessages { .. } => (
            Code::LineLimit,
            "split it into two steps, or combine messages",
        ),
        LimitKind::TooManyButtons { .. } | LimitKind::TooManyActions { .. } => {
            (Code::LineLimit, "keep the most important calls to action")
        }
        LimitKind::MissingType { .. } => (
            Code::TemplateInvalid,
            "every LINE message object has a \"type\", e.g. \"text\" or \"flex\"",
        ),
        LimitKind::TextTooLong { .. } => (
            Code::LineLimit,
            "shorten it, or link to a page with the details; leave room for long names",
        ),
        LimitKind::AltTooLong { .. } => (
            Code::LineLimit,
            "the alt text is the notification preview: keep it short and neutral",
        ),
        LimitKind::LabelTooLong { .. } => (Code::LineLimit, "shorten it, e.g. 「ご予約はこちら」"),
        LimitKind::UrlTooLong { .. } => (Code::LineLimit, "shorten the URL"),
        LimitKind::PostbackDataTooLong { .. } => (
            Code::LineLimit,
            "keep postback data short, e.g. `action=book&step=checkup`",
        ),
        LimitKind::InsecureUrl => (
            Code::InsecureUrl,
            "LINE needs https:// for images and links (tel: and line: are allowed for buttons)",
        ),
        LimitKind::UrlHostChanged { .. } => (
            Code::InsecureUrl,
            "a value put into a URL must not change where it goes: end the host with `/` \
             before the first `{{ }}`, e.g. `https://sakura-naika.example.jp/r/{{ id }}`",
        ),
        LimitKind::UrlNotLiteral => (
            Code::InsecureUrl,
            "write the scheme and host before the first `{{ }}`, e.g. \
             `https://sakura-naika.example.jp/{{ page }}`: a link whose host comes from a \
             variable could go anywhere, so it is never sent",
        ),
    };
    let help = match (&violation.kind, track) {
        (LimitKind::TextTooLong { .. }, Some(base)) => format!(
            "{help}; with `track`, each link in the text counts as its tracked link ({} \
             characters), as LINE receives it",
            base.link(&"x".repeat(TOKEN_LEN)).chars().count()
        ),
        _ => help.to_owned(),
    };
    Diagnostic::new(code, &template.file, violation.span, violation.to_string()).with_help(help)
}
