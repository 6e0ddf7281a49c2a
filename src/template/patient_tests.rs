//! Rendering for real patients: every message is checked against LINE's limits and the URL
//! rule, runaway templates stop within their budget, and no error quotes a patient's value.

use minijinja::{context, Value};

use super::line::{Field, LimitKind};
use super::{environment, parse, FailureKind, RenderError, Template};
use crate::line::Message;
use crate::source::SourceFile;

fn template(toml: &str) -> Template {
    parse("t", SourceFile::new("t.toml", toml)).unwrap()
}

fn render(toml: &str, context: Value) -> Result<Vec<Message>, RenderError> {
    template(toml).messages(&environment(chrono_tz::Asia::Tokyo), &context, None)
}

fn limits(result: Result<Vec<Message>, RenderError>) -> Vec<(Field, LimitKind)> {
    match result {
        Err(RenderError::Limits(violations)) => {
            violations.into_iter().map(|v| (v.field, v.kind)).collect()
        }
        other => panic!("limit violations expected: {other:?}"),
    }
}

const BUTTON_WITH_NAME: &str = "text = \"{{ name }} 様、お知らせです。\"\n\
    [[buttons]]\nlabel = \"{{ name }}\"\nurl = \"https://x.example/r\"\n";

#[test]
fn a_six_thousand_character_name_breaks_the_limits_and_is_not_quoted() {
    let name = "花".repeat(6000);
    let result = render(BUTTON_WITH_NAME, context! { name => name.clone() });
    let error = result.as_ref().unwrap_err().to_string();
    assert!(!error.contains("花花"), "{error}");
    assert!(result.as_ref().unwrap_err().is_limit_violation());
    assert_eq!(
        limits(result),
        [
            (Field::Text, LimitKind::TextTooLong { length: 6010 }),
            (
                Field::ButtonLabel(1),
                LimitKind::LabelTooLong { length: 6000 }
            ),
        ]
    );
    // The same template for an ordinary name is sent.
    assert!(render(BUTTON_WITH_NAME, context! { name => "山田 花子" }).is_ok());
}

#[test]
fn a_value_glued_to_the_host_cannot_move_a_link_to_another_site() {
    let toml = "text = \"お知らせ\"\nimage = \"https://x.example{{ banner }}\"\n\
        [[buttons]]\nlabel = \"詳しく\"\nurl = \"https://x.example{{ homepage }}\"\n";
    let evil = context! { homepage => "@evil.example/phish", banner => ".evil.example/a.png" };
    let result = render(toml, evil);
    let error = result.as_ref().unwrap_err().to_string();
    assert!(!error.contains("evil"), "{error}");
    let host = LimitKind::UrlHostChanged {
        host: "x.example".into(),
    };
    assert_eq!(
        limits(result),
        [(Field::ButtonUrl(1), host.clone()), (Field::Image, host)]
    );
    let fine = context! { homepage => ":8443/news", banner => "/a.png" };
    assert!(render(toml, fine).is_ok());
}

#[test]
fn values_after_the_host_are_the_clinics_own_business() {
    let toml = "text = \"お知らせ\"\n[[buttons]]\nlabel = \"詳しく\"\n\
        url = \"https://x.example/r/{{ page }}\"\n[[buttons]]\nlabel = \"電話\"\n\
        url = \"tel:{{ phone }}\"\n";
    let odd = context! { page => "@evil.example/phish", phone => "0312345678" };
    assert!(render(toml, odd).is_ok());
}

#[test]
fn a_link_that_starts_with_a_variable_is_never_sent() {
    let toml = "text = \"お知らせ\"\n[[buttons]]\nlabel = \"詳しく\"\nurl = \"{{ homepage }}\"\n";
    let result = render(toml, context! { homepage => "https://x.example/" });
    assert_eq!(
        limits(result),
        [(Field::ButtonUrl(1), LimitKind::UrlNotLiteral)]
    );
    let json =
        "line_json = '''{\"type\":\"flex\",\"altText\":\"a\",\"contents\":{\"type\":\"bubble\",\
        \"action\":{\"type\":\"uri\",\"uri\":\"https://{{ host }}/a\"}}}'''";
    let result = render(json, context! { host => "x.example" });
    assert_eq!(
        limits(result),
        [(Field::LineJson(1), LimitKind::UrlNotLiteral)]
    );
}

#[test]
fn line_json_links_follow_the_same_rule() {
    let json =
        "line_json = '''{\"type\":\"flex\",\"altText\":\"a\",\"contents\":{\"type\":\"bubble\",\
        \"action\":{\"type\":\"uri\",\"uri\":\"https://x.example{{ path }}\"}}}'''";
    assert!(render(json, context! { path => "/ok" }).is_ok());
    let result = render(json, context! { path => "@evil.example" });
    assert_eq!(
        limits(result),
        [(
            Field::LineJson(1),
            LimitKind::UrlHostChanged {
                host: "x.example".into()
            }
        )]
    );
}

#[test]
fn runaway_templates_stop_within_their_budget() {
    let loops = "text = \"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\"";
    let text = "text = \"{% for i in range(100000) %}{% for j in range(100000) %}{{ name }}{% endfor %}{% endfor %}\"";
    for (toml, kind) in [
        (loops, FailureKind::OutOfFuel),
        (text, FailureKind::TooLarge),
    ] {
        let started = std::time::Instant::now();
        let result = render(toml, context! { name => "山田 花子" });
        let Err(RenderError::Failed(failure)) = result else {
            panic!("a render failure: {result:?}")
        };
        assert_eq!(failure.kind, kind);
        assert!(failure.is_budget());
        assert!(!failure.to_string().contains("山田"), "{failure}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}

#[test]
fn a_failure_for_the_data_names_the_field_but_not_the_value() {
    let result = render(
        "text = \"{{ name | date('%Y') }}\"",
        context! { name => "山田 花子" },
    );
    let Err(RenderError::Failed(failure)) = result else {
        panic!("a render failure: {result:?}")
    };
    assert!(!failure.is_budget());
    let shown = format!("{failure} {}", failure.detail().unwrap_or_default());
    assert!(shown.contains("`text` of template `t`"), "{shown}");
    assert!(!shown.contains("山田"), "{shown}");
}
