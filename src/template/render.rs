//! Template → LINE message objects. The same code renders for delivery and, with a sample
//! patient, for `check`, so what check accepts is what LINE will receive: every rendered
//! message goes through [`crate::line::limits`] on its way out.
//!
//! Rendering is bounded: each field may take [`MAX_FUEL`] minijinja steps and render at most
//! [`MAX_RENDERED_BYTES`], so a template with nested loops over `range(100000)` stops at once
//! instead of filling memory.

use chrono::DateTime;
use chrono_tz::Tz;
use minijinja::{Environment, ErrorKind, Value};

use super::error::{FailureKind, RenderError, RenderFailure};
use super::{line, Template, TemplateBody};
use crate::line::limits::{self, Lengths};
use crate::line::track::{self, SendLinks, TrackBase};
use crate::line::{Button, Card, Message};
use crate::source::{Span, Spanned};
use crate::time;

/// The instant the sample patient's dates are set to when `check` renders a template.
pub const SAMPLE_TIME: &str = "2026-04-01T10:00:00+09:00";

/// minijinja steps one field may take (a step is about one tag or output piece). The sample
/// clinic's largest template takes a few hundred; a loop over every tag of a patient takes a
/// few per tag.
pub const MAX_FUEL: u64 = 50_000;

/// The most one field may render to, in bytes: more than twice the longest text LINE takes
/// (5,000 characters of 3 bytes), so every message LINE would accept renders, and a runaway
/// loop stops as soon as it passes this.
pub const MAX_RENDERED_BYTES: usize = 32 * 1024;

/// The minijinja environment every template renders in, with
/// the `date` and `weekday_ja` filters counted in the clinic's time zone. An empty patient
/// column renders as nothing, so optional columns are wrapped in `{% if %}`.
pub fn environment(timezone: Tz) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    // A precompiled field is named by its source (see [`precompile`]): a URL ending in
    // `.html` must not switch on HTML escaping, which a template compiled from a string never
    // had.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_fuel(Some(MAX_FUEL));
    // The format is borrowed from the template: a `String` was an allocation a call.
    env.add_filter("date", move |value: Value, format: &str| {
        let instant = parse_instant(&value, timezone)?;
        time::format(&instant, format)
            .map_err(|err| minijinja::Error::new(ErrorKind::InvalidOperation, err.to_string()))
    });
    env.add_filter("weekday_ja", move |value: Value| {
        let instant = parse_instant(&value, timezone)?;
        Ok::<_, minijinja::Error>(time::weekday_ja(&instant).to_owned())
    });
    env
}

/// Compiles each field of `template` into `env` once, so that a pass rendering it for every
/// patient finds the compiled form instead of parsing its source for each send. A field is
/// registered under its own source text, which is what [`render_field`] looks it up by; one
/// that does not compile is left out and fails when rendered, as it did before.
pub fn precompile<'s>(env: &mut Environment<'s>, template: &'s Template) {
    match &template.body {
        TemplateBody::Simple { .. } => {
            let sources = template.sources().into_iter();
            for (_, source) in sources.filter(|(_, source)| literal(&source.node).is_none()) {
                let _ = env.add_template(&source.node, &source.node);
            }
        }
        // Rendered string by string from a fresh parse (see `Template::render`).
        TemplateBody::LineJson(source) => {
            let strings = std::cell::RefCell::new(Vec::new());
            let messages = parse_line_json(&template.name, source).unwrap_or_default();
            for message in &messages {
                let _ = map_json_strings(message, &|text| {
                    if text.contains("{{") || text.contains("{%") {
                        strings.borrow_mut().push(text.to_owned());
                    }
                    Ok(String::new())
                });
            }
            for text in strings.into_inner() {
                let _ = env.add_template_owned(text.clone(), text);
            }
        }
    }
}

/// The value is patient data: the error does not quote it. Read as records read dates, so a
/// column renders the instant the plan uses.
fn parse_instant(value: &Value, timezone: Tz) -> Result<DateTime<Tz>, minijinja::Error> {
    let invalid = || {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "this filter needs a date or date-time field",
        )
    };
    let text = value.as_str().ok_or_else(invalid)?;
    let instant = time::instant(text, timezone).map_err(|_| invalid())?;
    Ok(instant.with_timezone(&timezone))
}

/// The links of one send to track: where tracked links go, and the send's tokens.
pub struct Tracking<'a> {
    pub base: &'a TrackBase,
    pub links: &'a mut SendLinks,
}

impl Template {
    /// Renders the template for one patient into the LINE messages of one push, and checks
    /// them against LINE's limits and the URL rule; with `tracking`, its links are tracked
    /// first (the URL rule holds for the links as written, LINE's limits for the tracked
    /// message LINE receives). Delivery sends only what this returns; `check` calls it with a
    /// sample patient.
    pub fn messages(
        &self,
        env: &Environment<'_>,
        context: &Value,
        tracking: Option<Tracking<'_>>,
    ) -> Result<Vec<Message>, RenderError> {
        let mut rendered = self.render(env, context).map_err(RenderError::Failed)?;
        let lengths = match tracking {
            Some(_) => Lengths::Untracked,
            None => Lengths::All,
        };
        let mut findings = limits::check(self.written_messages(), &rendered, lengths);
        if let Some(Tracking { base, links }) = tracking {
            if findings.is_empty() {
                track::track(&mut rendered, base, links).map_err(RenderError::Token)?;
                findings = limits::check_tracked(&rendered);
            }
        }
        if findings.is_empty() {
            Ok(rendered)
        } else {
            Err(RenderError::Limits(line::violations(self, findings)))
        }
    }

    fn render(
        &self,
        env: &Environment<'_>,
        context: &Value,
    ) -> Result<Vec<Message>, RenderFailure> {
        let field = |field: &'static str, text: &str, span: Span| {
            render_field(env, context, &self.name, field, text, span)
        };
        match &self.body {
            TemplateBody::Simple { .. } => self.simple(
                || default_alt(context),
                |name, source| field(name, &source.node, source.span),
            ),
            TemplateBody::LineJson(source) => {
                // Rendered from the written messages (parsed once): parsed again only when
                // there are none, for the error of JSON that does not parse.
                let written = self.written_messages();
                if written.is_empty() {
                    parse_line_json(&self.name, source)?;
                }
                let render = |text: &str| {
                    if text.contains("{{") || text.contains("{%") {
                        field("line_json", text, source.span)
                    } else {
                        Ok(text.to_owned())
                    }
                };
                (written.iter())
                    .map(|message| match message {
                        Message::Json(json) => map_json_strings(json, &render).map(Message::Json),
                        typed => Ok(typed.clone()),
                    })
                    .collect()
            }
        }
    }

    /// The messages with every value as the template writes it, before rendering: the same
    /// shape as the rendered ones, for holding a rendered URL against its template. Made once
    /// per template: rebuilding them for every send copied each field's text (and parsed
    /// `line_json` again).
    fn written_messages(&self) -> &[Message] {
        self.written.get_or_init(|| match &self.body {
            TemplateBody::Simple { .. } => self
                .simple(String::new, |_, source| {
                    Ok::<_, std::convert::Infallible>(source.node.clone())
                })
                .unwrap_or_default(),
            TemplateBody::LineJson(source) => parse_line_json(&self.name, source)
                .unwrap_or_default()
                .into_iter()
                .map(Message::Json)
                .collect(),
        })
    }

    /// The simple form's messages, with each field's value from `value`.
    fn simple<E>(
        &self,
        default_alt: impl FnOnce() -> String,
        mut value: impl FnMut(&'static str, &Spanned<String>) -> Result<String, E>,
    ) -> Result<Vec<Message>, E> {
        let TemplateBody::Simple {
            text,
            image,
            alt,
            buttons,
        } = &self.body
        else {
            return Ok(Vec::new());
        };
        let mut messages = vec![Message::Text {
            text: value("text", text)?,
        }];
        let image = image.as_ref().map(|i| value("image", i)).transpose()?;
        if buttons.node.is_empty() {
            if let Some(url) = image {
                messages.push(Message::Image {
                    original: url.clone(),
                    preview: url,
                });
            }
            return Ok(messages);
        }
        let mut card_buttons = Vec::with_capacity(buttons.node.len());
        for button in &buttons.node {
            card_buttons.push(Button {
                label: value("buttons.label", &button.label)?,
                uri: value("buttons.url", &button.url)?,
            });
        }
        // The alt text is what a lock screen shows: by default only the clinic's name,
        // never anything about the patient's health.
        let alt_text = match alt {
            Some(alt) => value("alt", alt)?,
            None => default_alt(),
        };
        messages.push(Message::Card(Card {
            alt_text,
            hero: image,
            buttons: card_buttons,
        }));
        Ok(messages)
    }
}

/// Renders one field's text, within the step and size budget.
fn render_field(
    env: &Environment<'_>,
    context: &Value,
    template: &str,
    field: &'static str,
    text: &str,
    span: Span,
) -> Result<String, RenderFailure> {
    let fail = |kind, line, detail| RenderFailure::new(template, field, span, kind, line, detail);
    let failed = |err: &minijinja::Error| {
        fail(
            FailureKind::Template(err.kind()),
            err.line(),
            Some(describe_error(err)),
        )
    };
    if let Some(literal) = literal(text) {
        return match literal.len() > MAX_RENDERED_BYTES {
            true => Err(fail(FailureKind::TooLarge, None, None)),
            false => Ok(literal.to_owned()),
        };
    }
    // Precompiled for a pass (see [`precompile`]), else compiled here.
    let compiled = match env.get_template(text) {
        Ok(compiled) => compiled,
        Err(_) => env.template_from_str(text).map_err(|err| failed(&err))?,
    };
    // Sized for the text and a name or two, so that it is rarely grown.
    let mut out = BoundedOutput {
        text: String::with_capacity(text.len() + 64),
        source: compiled.source(),
        overflowed: false,
    };
    match compiled.render_captured_to(context, &mut out) {
        Ok(_) => Ok(out.text),
        Err(_) if out.overflowed => Err(fail(FailureKind::TooLarge, None, None)),
        Err(err) if err.kind() == ErrorKind::OutOfFuel => {
            Err(fail(FailureKind::OutOfFuel, err.line(), None))
        }
        Err(err) => Err(failed(&err)),
    }
}

/// What a field without a tag, an expression or a comment renders to, without minijinja:
/// its text, less the one trailing newline (`\n`, then `\r`) minijinja's lexer drops. The
/// buttons' labels and URLs and most alt texts are such fields: rendering them was a State,
/// a frame and a fuel tracker each, for every send.
fn literal(source: &str) -> Option<&str> {
    let bytes = source.as_bytes();
    let tagged =
        (bytes.windows(2)).any(|pair| pair[0] == b'{' && matches!(pair[1], b'{' | b'%' | b'#'));
    if tagged {
        return None;
    }
    let text = source.strip_suffix('\n').unwrap_or(source);
    Some(text.strip_suffix('\r').unwrap_or(text))
}

/// Collects rendered output and refuses the write that would pass [`MAX_RENDERED_BYTES`],
/// which stops minijinja at once.
///
/// minijinja writes `str`s, but through `io::Write`, as bytes: checking that the output is
/// UTF-8 again cost about a sixth of a render (the texts are Japanese, never ASCII). Most
/// writes are the template's own text between its tags, which minijinja hands over as a
/// piece of the template's source: such a piece is taken from the source (a `str`), and only
/// the rest (the values) is checked.
struct BoundedOutput<'s> {
    text: String,
    /// The source of the template being rendered.
    source: &'s str,
    overflowed: bool,
}

impl std::io::Write for BoundedOutput<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + buf.len() > MAX_RENDERED_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("rendered text too large"));
        }
        // A value (a name, the clinic's) is checked with std's check, which takes a short
        // string in about half the instructions of the lossy conversion's chunks; minijinja
        // writes only `str`s, so the lossy one is a fallback that never changes a byte.
        match piece_of(self.source, buf) {
            Some(piece) => self.text.push_str(piece),
            None => match std::str::from_utf8(buf) {
                Ok(value) => self.text.push_str(value),
                Err(_) => self.text.push_str(&String::from_utf8_lossy(buf)),
            },
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `bytes` as the piece of `source` they are, when they are one: the same memory (not only
/// the same bytes), starting and ending on character boundaries.
fn piece_of<'s>(source: &'s str, bytes: &[u8]) -> Option<&'s str> {
    let start = (bytes.as_ptr() as usize).checked_sub(source.as_ptr() as usize)?;
    let piece = source.get(start..start.checked_add(bytes.len())?)?;
    (piece.as_ptr() == bytes.as_ptr()).then_some(piece)
}

/// Parses `line_json` before rendering, so that a value put into a JSON string (a name with a
/// `"` in it) can never break the JSON.
pub fn parse_line_json(
    template: &str,
    source: &Spanned<String>,
) -> Result<Vec<serde_json::Value>, RenderFailure> {
    let value: serde_json::Value = serde_json::from_str(&source.node).map_err(|err| {
        let detail = format!(
            "`line_json` is not valid JSON (line {}, column {}): {err}",
            err.line(),
            err.column()
        );
        RenderFailure::new(
            template,
            "line_json",
            source.span,
            FailureKind::InvalidJson,
            None,
            Some(detail),
        )
    })?;
    Ok(match value {
        serde_json::Value::Array(messages) => messages,
        single => vec![single],
    })
}

/// Renders every string in a message; the JSON around them stays as written. serde_json
/// reads at most 128 levels, so the recursion is bounded.
fn map_json_strings(
    value: &serde_json::Value,
    render: &dyn Fn(&str) -> Result<String, RenderFailure>,
) -> Result<serde_json::Value, RenderFailure> {
    use serde_json::Value as J;
    Ok(match value {
        J::String(text) => J::String(render(text)?),
        J::Array(items) => J::Array(
            items
                .iter()
                .map(|v| map_json_strings(v, render))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(map) => J::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), map_json_strings(v, render)?)))
                .collect::<Result<_, RenderFailure>>()?,
        ),
        other => other.clone(),
    })
}

fn default_alt(context: &Value) -> String {
    match context
        .get_attr("clinic")
        .ok()
        .filter(|c| !c.is_undefined() && !c.is_none())
    {
        Some(clinic) => format!("{clinic}からのお知らせ"),
        None => "お知らせ".to_owned(),
    }
}

/// minijinja's message with the template line, without its debug dump.
pub fn describe_error(err: &minijinja::Error) -> String {
    let detail = err
        .detail()
        .map(str::to_owned)
        .unwrap_or_else(|| err.kind().to_string());
    match err.line() {
        Some(line) => format!("{detail} (template line {line})"),
        None => detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    fn template(toml: &str) -> Template {
        crate::template::parse("t", SourceFile::new("t.toml", toml)).unwrap()
    }

    /// The messages as the JSON LINE receives.
    fn rendered(template: &Template, timezone: Tz, context: &Value) -> Vec<serde_json::Value> {
        let messages = template
            .messages(&environment(timezone), context, None)
            .unwrap();
        messages
            .iter()
            .map(|m| serde_json::to_value(m).unwrap())
            .collect()
    }

    fn context() -> Value {
        minijinja::context! {
            name => "山田 花子",
            clinic => "さくら内科クリニック",
            appointment_at => "2026-04-01T01:00:00Z",
        }
    }

    #[test]
    fn date_filter_counts_in_clinic_time_zone() {
        let t = template("text = \"{{ appointment_at | date('%m月%d日 %H:%M') }}（{{ appointment_at | weekday_ja }}）\"");
        let messages = rendered(&t, chrono_tz::Asia::Tokyo, &context());
        assert_eq!(messages[0]["text"], "04月01日 10:00（水）");
    }

    #[test]
    fn date_filter_reads_dates_as_records_do() {
        // The slash form of Japanese exports, and a time New York's spring-forward skips: the
        // instant the plan uses (03:00 EDT), where this filter used to fail on both.
        let t =
            template("text = \"{{ visit | date('%Y-%m-%d %H:%M') }}（{{ visit | weekday_ja }}）\"");
        let context = minijinja::context! { visit => "2026/03/08 02:30" };
        let messages = rendered(&t, chrono_tz::America::New_York, &context);
        assert_eq!(messages[0]["text"], "2026-03-08 03:00（日）");
        let context = minijinja::context! { visit => "2026/11/20" };
        let messages = rendered(&t, chrono_tz::Asia::Tokyo, &context);
        assert_eq!(messages[0]["text"], "2026-11-20 00:00（金）");
    }

    #[test]
    fn buttons_become_a_flex_bubble_with_a_neutral_alt_text() {
        let t = template(
            "text = \"{{ name }} 様\"\nimage = \"https://x.jp/a.png\"\n[[buttons]]\nlabel = \"ご予約はこちら\"\nurl = \"https://x.jp/r\"\n",
        );
        let messages = rendered(&t, chrono_tz::Asia::Tokyo, &context());
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0]["text"], "山田 花子 様");
        assert_eq!(messages[1]["altText"], "さくら内科クリニックからのお知らせ");
        assert_eq!(messages[1]["contents"]["hero"]["url"], "https://x.jp/a.png");
        assert_eq!(
            messages[1]["contents"]["footer"]["contents"][0]["action"]["uri"],
            "https://x.jp/r"
        );
    }

    #[test]
    fn line_json_renders_then_parses() {
        let t = template("line_json = '''[{\"type\":\"text\",\"text\":\"{{ name }}\"}]'''");
        let messages = rendered(&t, chrono_tz::Asia::Tokyo, &context());
        assert_eq!(
            messages,
            vec![serde_json::json!({"type": "text", "text": "山田 花子"})]
        );
    }

    #[test]
    fn a_quote_in_a_value_cannot_break_line_json() {
        let t = template(r#"line_json = '{"type":"text","text":"{{ name }} 様"}'"#);
        let context = minijinja::context! { name => "山田 \"ハナ\" 花子" };
        let messages = rendered(&t, chrono_tz::Asia::Tokyo, &context);
        assert_eq!(messages[0]["text"], "山田 \"ハナ\" 花子 様");
    }

    #[test]
    fn a_precompiled_template_is_found_compiled_and_renders_the_same() {
        // The button URL ends in `.html`: named by its source, it must still not be escaped.
        let t = template(
            "text = \"{{ name }} <&> 様\"\n[[buttons]]\nlabel = \"予約\"\nurl = \"https://x.jp/{{ name }}.html\"\n",
        );
        let context = minijinja::context! { name => "A&B <c>" };
        let plain = rendered(&t, chrono_tz::Asia::Tokyo, &context);
        let mut env = environment(chrono_tz::Asia::Tokyo);
        precompile(&mut env, &t);
        // A field without tags (the label) renders without minijinja: it is not compiled.
        for (_, source) in t.sources() {
            let compiled = env.get_template(&source.node).is_ok();
            assert_eq!(compiled, literal(&source.node).is_none(), "{}", source.node);
        }
        let messages = t.messages(&env, &context, None).unwrap();
        let precompiled: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| serde_json::to_value(m).unwrap())
            .collect();
        assert_eq!(precompiled, plain);
        assert_eq!(precompiled[0]["text"], "A&B <c> <&> 様");
        assert_eq!(
            precompiled[1]["contents"]["footer"]["contents"][0]["action"]["uri"],
            "https://x.jp/A&B <c>.html"
        );
    }

    #[test]
    fn line_json_strings_are_precompiled_and_a_broken_field_still_fails_when_rendered() {
        let t = template(r#"line_json = '{"type":"text","text":"{{ name }} 様"}'"#);
        let mut env = environment(chrono_tz::Asia::Tokyo);
        precompile(&mut env, &t);
        assert!(env.get_template("{{ name }} 様").is_ok());
        let messages = t.messages(&env, &context(), None).unwrap();
        assert_eq!(
            serde_json::to_value(&messages[0]).unwrap()["text"],
            "山田 花子 様"
        );
        let broken = template("text = \"{{ name \"");
        precompile(&mut env, &broken);
        let err = broken.messages(&env, &context(), None).unwrap_err();
        assert!(matches!(err, RenderError::Failed(_)), "{err}");
    }

    /// What opens a tag, an expression or a comment.
    const TAGS: [&str; 3] = ["{{", "{%", "{#"];

    proptest::proptest! {
        /// Text with the template syntax's characters, line ends and wide characters: a
        /// field without a tag is what minijinja renders it to, or left to minijinja.
        #[test]
        fn a_field_without_tags_renders_as_minijinja_renders_it(
            text in "[a{}%#\\-\r\n 花😀]{0,12}"
        ) {
            let env = environment(chrono_tz::Asia::Tokyo);
            let rendered = env.template_from_str(&text).and_then(|t| t.render(()));
            match literal(&text) {
                Some(literal) => proptest::prop_assert_eq!(literal, rendered.unwrap()),
                None => proptest::prop_assert!(TAGS.iter().any(|t| text.contains(t))),
            }
        }
    }

    #[test]
    fn only_the_same_memory_is_a_piece_of_the_source() {
        let source = "花子様 {{ name }} 様";
        assert_eq!(piece_of(source, &source.as_bytes()[3..9]), Some("子様"));
        assert_eq!(piece_of(source, source.as_bytes()), Some(source));
        assert_eq!(piece_of(source, &source.as_bytes()[0..0]), Some(""));
        // The same bytes elsewhere, a piece across a character, bytes past the end.
        let copy = source.to_owned();
        assert_eq!(piece_of(source, &copy.as_bytes()[3..9]), None);
        assert_eq!(piece_of(source, &source.as_bytes()[1..6]), None);
        let longer = format!("{source}!");
        assert_eq!(piece_of(&longer[..source.len()], longer.as_bytes()), None);
        assert_eq!(piece_of(&source[3..], &source.as_bytes()[..3]), None);
    }

    proptest::proptest! {
        /// Text between tags comes from the template's source, values are checked: whatever
        /// a field writes, precompiled or not, it renders as minijinja renders it to a string.
        #[test]
        fn a_field_renders_as_minijinja_renders_it(
            raw in "[a{}%# \\-\r\n花😀]{0,8}",
            value in "[a{}\\\\\"\r\n花😀\u{1}]{0,6}",
            tail in "[a \n花😀]{0,6}",
        ) {
            let text = format!("{raw}{{{{ name }}}}{tail}{{% if name %}}{raw}{{% endif %}}");
            let context = minijinja::context! { name => value };
            let plain = environment(chrono_tz::Asia::Tokyo);
            let expected = plain.render_str(&text, &context);
            let mut precompiled = environment(chrono_tz::Asia::Tokyo);
            let _ = precompiled.add_template_owned(text.clone(), text.clone());
            for env in [&plain, &precompiled] {
                let rendered = render_field(env, &context, "t", "text", &text, Span::new(0, 0));
                match &expected {
                    Ok(expected) => proptest::prop_assert_eq!(rendered.ok(), Some(expected.clone())),
                    Err(_) => proptest::prop_assert!(rendered.is_err()),
                }
            }
        }
    }

    #[test]
    fn a_field_without_tags_past_the_size_bound_is_too_large() {
        let label = "花".repeat(MAX_RENDERED_BYTES / 3 + 1);
        let t = template(&format!(
            "text = \"a\"\n[[buttons]]\nlabel = \"{label}\"\nurl = \"https://x.example\"\n"
        ));
        let err = t
            .messages(&environment(chrono_tz::Asia::Tokyo), &context(), None)
            .unwrap_err();
        let RenderError::Failed(failure) = err else {
            panic!("a render failure: {err}")
        };
        assert_eq!(failure.kind, FailureKind::TooLarge);
    }

    #[test]
    fn bad_date_format_is_an_error_not_a_panic() {
        let t = template("text = \"{{ appointment_at | date('%Q') }}\"");
        let err = t
            .messages(&environment(chrono_tz::Asia::Tokyo), &context(), None)
            .unwrap_err();
        let RenderError::Failed(failure) = err else {
            panic!("a render failure: {err}")
        };
        let detail = failure.detail().unwrap_or_default();
        assert!(detail.contains("not a valid date format"), "{detail}");
    }
}
