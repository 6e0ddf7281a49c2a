//! Template → LINE message objects. The same code renders for delivery and, with a sample
//! patient, for `check`, so what check accepts is what LINE will receive.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use minijinja::{Environment, ErrorKind, Value};
use serde_json::json;

use super::{Template, TemplateBody};
use crate::source::Span;

/// The instant the sample patient's dates are set to when `check` renders a template.
pub const SAMPLE_TIME: &str = "2026-04-01T10:00:00+09:00";

/// A template field that could not be rendered.
#[derive(Debug, Clone)]
pub struct RenderError {
    pub field: &'static str,
    pub span: Span,
    pub kind: ErrorKind,
    pub message: String,
}

/// The minijinja environment every template renders in, with
/// the `date` and `weekday_ja` filters counted in the clinic's time zone. An empty patient
/// column renders as nothing, so optional columns are wrapped in `{% if %}`.
pub fn environment(timezone: Tz) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.add_filter("date", move |value: Value, format: String| {
        let instant = parse_instant(&value, timezone)?;
        format_instant(&instant, &format)
    });
    env.add_filter("weekday_ja", move |value: Value| {
        let instant = parse_instant(&value, timezone)?;
        const DAYS: [&str; 7] = ["月", "火", "水", "木", "金", "土", "日"];
        Ok::<_, minijinja::Error>(
            DAYS[chrono::Datelike::weekday(&instant).num_days_from_monday() as usize].to_owned(),
        )
    });
    env
}

fn parse_instant(value: &Value, timezone: Tz) -> Result<DateTime<Tz>, minijinja::Error> {
    let invalid = |text: &str| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("this filter needs a date or date-time, got `{text}`"),
        )
    };
    let text = value.as_str().ok_or_else(|| invalid(&value.to_string()))?;
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&timezone));
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .ok_or_else(|| invalid(text))?;
    timezone
        .from_local_datetime(&naive)
        .earliest()
        .ok_or_else(|| invalid(text))
}

fn format_instant(instant: &DateTime<Tz>, format: &str) -> Result<String, minijinja::Error> {
    use chrono::format::{Item, StrftimeItems};
    let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
    if items.iter().any(|item| matches!(item, Item::Error)) {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("`{format}` is not a valid date format (use %Y %m %d %H %M …)"),
        ));
    }
    Ok(instant.format_with_items(items.into_iter()).to_string())
}

impl Template {
    /// Renders the template for one patient into the LINE message objects of one push.
    pub fn messages(
        &self,
        env: &Environment<'_>,
        context: &Value,
    ) -> Result<Vec<serde_json::Value>, RenderError> {
        let render_text = |field: &'static str, text: &str, span: Span| {
            env.render_str(text, context).map_err(|err| RenderError {
                field,
                span,
                kind: err.kind(),
                message: describe_error(&err),
            })
        };
        let render = |field: &'static str, source: &crate::source::Spanned<String>| {
            render_text(field, &source.node, source.span)
        };
        match &self.body {
            TemplateBody::Simple {
                text,
                image,
                alt,
                buttons,
            } => {
                let mut messages = vec![json!({ "type": "text", "text": render("text", text)? })];
                let image = image.as_ref().map(|i| render("image", i)).transpose()?;
                if buttons.node.is_empty() {
                    if let Some(url) = image {
                        messages.push(json!({
                            "type": "image",
                            "originalContentUrl": url,
                            "previewImageUrl": url,
                        }));
                    }
                    return Ok(messages);
                }
                let mut actions = Vec::new();
                for (index, button) in buttons.node.iter().enumerate() {
                    actions.push(json!({
                        "type": "button",
                        "style": if index == 0 { "primary" } else { "link" },
                        "action": {
                            "type": "uri",
                            "label": render("buttons.label", &button.label)?,
                            "uri": render("buttons.url", &button.url)?,
                        },
                    }));
                }
                // The alt text is what a lock screen shows: by default only the clinic's name,
                // never anything about the patient's health.
                let alt = match alt {
                    Some(alt) => render("alt", alt)?,
                    None => default_alt(context),
                };
                let mut bubble = json!({
                    "type": "bubble",
                    "footer": {
                        "type": "box",
                        "layout": "vertical",
                        "spacing": "sm",
                        "contents": actions,
                    },
                });
                if let Some(url) = image {
                    bubble["hero"] = json!({
                        "type": "image",
                        "url": url,
                        "size": "full",
                        "aspectMode": "cover",
                    });
                }
                messages.push(json!({ "type": "flex", "altText": alt, "contents": bubble }));
                Ok(messages)
            }
            TemplateBody::LineJson(source) => {
                let value = parse_line_json(source)?;
                render_json_strings(value, &|text| {
                    if text.contains("{{") || text.contains("{%") {
                        render_text("line_json", text, source.span)
                    } else {
                        Ok(text.to_owned())
                    }
                })
            }
        }
    }
}

/// Parses `line_json` before rendering, so that a value put into a JSON string (a name with a
/// `"` in it) can never break the JSON.
pub fn parse_line_json(
    source: &crate::source::Spanned<String>,
) -> Result<Vec<serde_json::Value>, RenderError> {
    let value: serde_json::Value =
        serde_json::from_str(&source.node).map_err(|err| RenderError {
            field: "line_json",
            span: source.span,
            kind: ErrorKind::InvalidOperation,
            message: format!(
                "`line_json` is not valid JSON (line {}, column {}): {err}",
                err.line(),
                err.column()
            ),
        })?;
    Ok(match value {
        serde_json::Value::Array(messages) => messages,
        single => vec![single],
    })
}

fn render_json_strings(
    messages: Vec<serde_json::Value>,
    render: &dyn Fn(&str) -> Result<String, RenderError>,
) -> Result<Vec<serde_json::Value>, RenderError> {
    fn walk(
        value: serde_json::Value,
        render: &dyn Fn(&str) -> Result<String, RenderError>,
    ) -> Result<serde_json::Value, RenderError> {
        use serde_json::Value as J;
        Ok(match value {
            J::String(text) => J::String(render(&text)?),
            J::Array(items) => J::Array(
                items
                    .into_iter()
                    .map(|v| walk(v, render))
                    .collect::<Result<_, _>>()?,
            ),
            J::Object(map) => J::Object(
                map.into_iter()
                    .map(|(k, v)| Ok((k, walk(v, render)?)))
                    .collect::<Result<_, RenderError>>()?,
            ),
            other => other,
        })
    }
    messages.into_iter().map(|m| walk(m, render)).collect()
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
        let messages = t
            .messages(&environment(chrono_tz::Asia::Tokyo), &context())
            .unwrap();
        assert_eq!(messages[0]["text"], "04月01日 10:00（水）");
    }

    #[test]
    fn buttons_become_a_flex_bubble_with_a_neutral_alt_text() {
        let t = template(
            "text = \"{{ name }} 様\"\nimage = \"https://x.jp/a.png\"\n[[buttons]]\nlabel = \"ご予約はこちら\"\nurl = \"https://x.jp/r\"\n",
        );
        let messages = t
            .messages(&environment(chrono_tz::Asia::Tokyo), &context())
            .unwrap();
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
        let messages = t
            .messages(&environment(chrono_tz::Asia::Tokyo), &context())
            .unwrap();
        assert_eq!(messages, vec![json!({"type": "text", "text": "山田 花子"})]);
    }

    #[test]
    fn a_quote_in_a_value_cannot_break_line_json() {
        let t = template(r#"line_json = '{"type":"text","text":"{{ name }} 様"}'"#);
        let context = minijinja::context! { name => "山田 \"ハナ\" 花子" };
        let messages = t
            .messages(&environment(chrono_tz::Asia::Tokyo), &context)
            .unwrap();
        assert_eq!(messages[0]["text"], "山田 \"ハナ\" 花子 様");
    }

    #[test]
    fn bad_date_format_is_an_error_not_a_panic() {
        let t = template("text = \"{{ appointment_at | date('%Q') }}\"");
        let err = t
            .messages(&environment(chrono_tz::Asia::Tokyo), &context())
            .unwrap_err();
        assert!(
            err.message.contains("not a valid date format"),
            "{}",
            err.message
        );
    }
}
