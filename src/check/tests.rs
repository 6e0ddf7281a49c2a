use super::*;

const HEADER: &str = "clinic \"さくら内科クリニック\"\nquiet 21:00-09:00\nstages booked, first_visit, follow_up, regular\ndates appointment_at, last_visit_at, cancelled_at\nfields doctor\n";

fn check_with(rules: &str, templates: &[(&str, &str)]) -> CheckOutcome {
    let dir = tempfile::tempdir().unwrap();
    for (name, toml) in templates {
        std::fs::write(dir.path().join(format!("{name}.toml")), toml).unwrap();
    }
    let file = SourceFile::new("t.step", format!("{HEADER}{rules}"));
    check_file(&file, &mut TemplateStore::new(dir.path()))
}

/// The codes found, without `unused-stage`: most tests use one or two of the four stages.
fn codes(outcome: &CheckOutcome) -> Vec<&'static str> {
    findings(outcome).map(|d| d.code.name()).collect()
}

fn findings(outcome: &CheckOutcome) -> impl Iterator<Item = &Diagnostic> {
    outcome
        .diagnostics
        .iter()
        .filter(|d| d.code != Code::UnusedStage)
}

const HELLO: (&str, &str) = ("hello", "text = \"{{ name }} 様\"");

#[test]
fn a_clean_file_yields_rules_with_ids() {
    let outcome = check_with(
        "step hi: when stage=booked after 0m send hello\nstep bye: when stage=first_visit after 1d at 10:00 send hello\nstep f: when stage=follow_up 3mo after last_visit_at send hello\nstep r: when stage=regular every 30d send hello care allow privacy-opt-out",
        &[HELLO],
    );
    assert!(outcome.diagnostics.is_empty(), "{:#?}", outcome.diagnostics);
    let rules = outcome.rules.unwrap();
    let ids: Vec<_> = rules.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["hi", "bye", "f", "r"]);
    assert_eq!(rules.timezone, chrono_tz::Asia::Tokyo);
    assert_eq!(rules.steps[0].variants[0].template.name, "hello");
}

#[test]
fn unknown_names_come_with_suggestions() {
    let outcome = check_with(
        "step a: when stage=bookd and agee > 3 1d before apointment_at send helo",
        &[HELLO],
    );
    let found: Vec<_> = outcome
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| (d.code.name(), d.help.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        found,
        [
            ("unknown-stage", "did you mean `booked`?".to_owned()),
            ("unknown-field", "did you mean `age`?".to_owned()),
            (
                "not-a-date-field",
                "did you mean `appointment_at`?".to_owned()
            ),
            ("unknown-template", "did you mean `hello`?".to_owned()),
        ]
    );
    assert!(outcome.rules.is_none());
}

#[test]
fn duplicate_ids_point_at_both() {
    let outcome = check_with(
        "step a: when stage=booked after 0m send hello\nstep a: when stage=regular after 1d send hello",
        &[HELLO],
    );
    let dup = findings(&outcome).next().unwrap();
    assert_eq!(dup.code, Code::DuplicateStep);
    assert_eq!(dup.line_column().0, 7);
    assert_eq!(dup.file.line_column(dup.related[0].span.start).0, 6);
}

#[test]
fn weights_must_add_up() {
    let outcome = check_with(
        "step a: when stage=booked after 0m send hello 60% | bye 30%",
        &[HELLO, ("bye", "text = \"bye\"")],
    );
    assert_eq!(codes(&outcome), ["variant-weights"]);
    assert!(findings(&outcome).next().unwrap().message.contains("90%"));
}

#[test]
fn times_and_timezones_are_validated() {
    let outcome = check_with(
        "timezone \"Asia/Tokio\"\nstep a: when stage=booked after 0m at 25:00 send hello",
        &[HELLO],
    );
    assert_eq!(codes(&outcome), ["invalid-timezone", "invalid-time"]);
    let first = findings(&outcome).next().unwrap();
    assert_eq!(first.help.as_deref(), Some("did you mean \"Asia/Tokyo\"?"));
}

#[test]
fn quiet_hours_swallowing_an_at_time_is_a_warning() {
    let outcome = check_with(
        "step a: when stage=booked after 1d at 22:30 send hello",
        &[HELLO],
    );
    assert_eq!(codes(&outcome), ["quiet-hours-at"]);
    assert!(findings(&outcome).next().unwrap().message.contains("09:00"));
    assert!(outcome.rules.is_some(), "warnings do not stop the rules");
}

#[test]
fn same_instant_needs_overlapping_stages() {
    let same = check_with(
        "step a: when stage=booked after 1d send hello\nstep b: when stage in (booked, regular) after 24h send hello",
        &[HELLO],
    );
    assert_eq!(codes(&same), ["same-instant"]);
    let disjoint = check_with(
        "step a: when stage=booked after 1d send hello\nstep b: when stage=regular after 1d send hello",
        &[HELLO],
    );
    assert!(!codes(&disjoint).contains(&"same-instant"));
}

#[test]
fn unnamed_steps_get_a_stable_derived_id_and_a_warning() {
    let outcome = check_with(
        "when stage=first_visit after 7d send hello\nwhen stage=follow_up after 7d send hello",
        &[HELLO],
    );
    assert_eq!(codes(&outcome), ["unnamed-step", "unnamed-step"]);
    let rules = outcome.rules.unwrap();
    let ids: Vec<_> = rules.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["hello_after_7d", "hello_after_7d_2"]);
}

#[test]
fn type_mismatches_are_reported() {
    let outcome = check_with(
        "step a: when stage > booked and age >= \"x\" and appointment_at > 3 after 0m send hello",
        &[HELLO],
    );
    assert_eq!(
        codes(&outcome),
        ["type-mismatch", "type-mismatch", "type-mismatch"]
    );
}

#[test]
fn rhai_errors_point_into_the_script() {
    let file_text = "step a: when stage=booked and rhai { patient.x > } after 0m send hello";
    let outcome = check_with(file_text, &[HELLO]);
    let diag = findings(&outcome).next().unwrap();
    assert_eq!(diag.code, Code::ScriptError);
    let (line, column) = diag.line_column();
    assert_eq!(line, 6);
    assert!(column > file_text.find("rhai").unwrap(), "column {column}");
}

#[test]
fn template_problems_are_reported_in_the_template_file() {
    let long_label = "ご予約はこちらからどうぞよろしくお願いいたします";
    let toml = format!(
        "text = \"{{{{ nmae }}}} 様\"\nimage = \"http://x.jp/a.png\"\n[[buttons]]\nlabel = \"{long_label}\"\nurl = \"https://x.jp\"\n"
    );
    let outcome = check_with(
        "step a: when stage=booked after 0m send bad",
        &[("bad", &toml)],
    );
    assert_eq!(
        codes(&outcome),
        ["template-unknown-variable", "insecure-url", "line-limit"]
    );
    assert!(findings(&outcome).all(|d| d.file.name().ends_with("bad.toml")));
    let first = findings(&outcome).next().unwrap();
    assert_eq!(first.help.as_deref(), Some("did you mean `name`?"));
}

#[test]
fn line_limits_on_text_buttons_alt_and_messages() {
    let text = "あ".repeat(5001);
    let buttons = "[[buttons]]\nlabel = \"a\"\nurl = \"https://x.jp\"\n".repeat(5);
    let alt = "い".repeat(401);
    let toml = format!("text = \"{text}\"\nalt = \"{alt}\"\n{buttons}");
    let json_messages = format!(
        "line_json = '''[{}]'''",
        ["{\"type\":\"text\",\"text\":\"x\"}"; 6].join(",")
    );
    let outcome = check_with(
        "step a: when stage=booked after 0m send big\nstep b: when stage=regular after 0m send many",
        &[("big", &toml), ("many", &json_messages)],
    );
    let messages: Vec<_> = findings(&outcome).map(|d| d.message.as_str()).collect();
    assert_eq!(messages.len(), 4, "{messages:#?}");
    assert!(messages.iter().any(|m| m.contains("5 buttons")));
    assert!(messages.iter().any(|m| m.contains("5001 characters")));
    assert!(messages.iter().any(|m| m.contains("401 characters")));
    assert!(messages.iter().any(|m| m.contains("6 messages")));
}

#[test]
fn a_template_sent_by_many_steps_is_reported_once() {
    let outcome = check_with(
        "step a: when stage=booked after 0m send bad\nstep b: when stage=regular after 1d send bad",
        &[("bad", "text = \"{{ oops }}\"")],
    );
    assert_eq!(codes(&outcome), ["template-unknown-variable"]);
}

#[test]
fn template_syntax_errors_have_the_template_line() {
    let outcome = check_with(
        "step a: when stage=booked after 0m send bad",
        &[(
            "bad",
            "text = \"\"\"\nline one\n{% if name %}unclosed\n\"\"\"",
        )],
    );
    assert_eq!(codes(&outcome), ["template-syntax"]);
}

#[test]
fn quiet_window_contains_wraps_midnight() {
    let quiet = QuietHours {
        from: ClockTime {
            hour: 21,
            minute: 0,
        },
        to: ClockTime { hour: 9, minute: 0 },
    };
    let at = |hour, minute| quiet.contains(ClockTime { hour, minute });
    assert!(at(21, 0) && at(23, 59) && at(0, 0) && at(8, 59));
    assert!(!at(9, 0) && !at(12, 0) && !at(20, 59));
}

#[test]
fn a_stage_without_steps_is_a_warning() {
    let outcome = check_with(
        "step a: when stage in (booked, first_visit, regular) after 0m send hello",
        &[HELLO],
    );
    let unused: Vec<_> = outcome
        .diagnostics
        .iter()
        .map(|d| (d.code.name(), d.message.as_str()))
        .collect();
    assert_eq!(
        unused,
        [("unused-stage", "no step is for stage `follow_up`")]
    );
}

#[test]
fn line_json_with_buttons_and_alt_without_buttons_are_rejected() {
    let outcome = check_with(
        "step a: when stage=booked after 0m send mixed\nstep b: when stage=regular after 0m send lonely_alt",
        &[
            ("mixed", "line_json = '[{\"type\":\"text\",\"text\":\"x\"}]'\n[[buttons]]\nlabel = \"a\"\nurl = \"http://x\"\n"),
            ("lonely_alt", "text = \"x\"\nalt = \"お知らせ\"\n"),
        ],
    );
    assert_eq!(codes(&outcome), ["template-invalid", "template-invalid"]);
}

#[test]
fn invalid_line_json_is_a_template_problem_not_a_render_one() {
    let outcome = check_with(
        "step a: when stage=booked after 0m send broken",
        &[("broken", "line_json = '[{\"type\":\"text\",}]'")],
    );
    assert_eq!(codes(&outcome), ["template-invalid"]);
}

#[test]
fn an_insecure_image_is_reported_once() {
    let outcome = check_with(
        "step a: when stage=booked after 0m send pic",
        &[("pic", "text = \"x\"\nimage = \"http://x.jp/a.png\"\n")],
    );
    assert_eq!(codes(&outcome), ["insecure-url"]);
}

#[test]
fn not_equal_stage_uses_the_other_stages() {
    let outcome = check_with("step a: when stage != booked after 0m send hello", &[HELLO]);
    let unused: Vec<_> = outcome
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(unused, ["no step is for stage `booked`"]);
}

#[test]
fn rule_variables_cannot_be_declared_as_fields() {
    let outcome = check_with(
        "fields clinic\nstep a: when stage=booked after 0m send hello",
        &[HELLO],
    );
    assert_eq!(codes(&outcome), ["duplicate-declaration"]);
}

#[test]
fn bookings_and_visits_default_to_the_declared_fields_they_name() {
    // HEADER declares appointment_at and last_visit_at (dates 0 and 1) and no `booked_at`.
    let outcome = check_with("step hi: when stage=booked after 0m send hello", &[HELLO]);
    let observed = outcome.rules.unwrap().observed;
    assert_eq!(observed.bookings, [0]);
    assert_eq!(observed.visits, [1]);
    assert_eq!(observed.booked_at, None);
    assert_eq!(observed.attribution.to_string(), "14d");
    assert_eq!(observed.revisit.to_string(), "90d");
}

#[test]
fn bookings_visits_and_windows_as_written() {
    let outcome = check_with(
        "dates booked_at\nbookings cancelled_at, appointment_at\nvisits last_visit_at\nattribution 7d\nrevisit 6mo\nstep hi: when stage=booked after 0m send hello",
        &[HELLO],
    );
    assert!(codes(&outcome).is_empty(), "{:#?}", outcome.diagnostics);
    let observed = outcome.rules.unwrap().observed;
    assert_eq!(observed.bookings, [2, 0]);
    assert_eq!(observed.visits, [1]);
    assert_eq!(observed.booked_at, Some(3));
    assert_eq!(observed.attribution.to_string(), "7d");
    assert_eq!(observed.revisit.to_string(), "6mo");
}

#[test]
fn bookings_must_be_declared_date_fields_named_once() {
    let outcome = check_with(
        "bookings appointmnt_at, doctor\nvisits last_visit_at, appointment_at\nbookings appointment_at\nrevisit 0d\nattribution 367d\nstep hi: when stage=booked after 0m send hello",
        &[HELLO],
    );
    assert_eq!(
        codes(&outcome),
        [
            "unknown-field",
            "not-a-date-field",
            "duplicate-declaration",
            "invalid-duration",
            "duration-out-of-range",
        ]
    );
    assert!(outcome.rules.is_none());
}

#[test]
fn a_file_without_booking_or_visit_fields_observes_nothing() {
    let file = SourceFile::new(
        "t.step",
        "stages booked\nstep hi: when stage=booked after 0m send hello",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.toml"), HELLO.1).unwrap();
    let outcome = check_file(&file, &mut TemplateStore::new(dir.path()));
    assert!(outcome.rules.unwrap().observed.is_empty());
}

#[test]
fn start_is_a_date_given_once() {
    let outcome = check_with(
        "start 2026-12-01\nstart 2026-12-02\nstart 2026-02-30\nstep hi: when stage=booked after 0m send hello",
        &[HELLO],
    );
    assert_eq!(
        codes(&outcome),
        ["duplicate-declaration", "invalid-value"],
        "{:#?}",
        outcome.diagnostics
    );
}

#[test]
fn a_step_has_one_priority() {
    let outcome = check_with(
        "step hi: when stage=booked after 0m send hello priority high priority low",
        &[HELLO],
    );
    assert_eq!(codes(&outcome), ["duplicate-declaration"]);
    let outcome = check_with(
        "step hi: when stage=booked after 0m send hello priority low",
        &[HELLO],
    );
    let rules = outcome.rules.unwrap();
    assert_eq!(rules.steps[0].priority, crate::values::Priority::Low);
}

#[test]
fn advertising_lints_run_on_the_rendered_template_and_are_allowed_only_there() {
    let outcome = check_with(
        "step news: when stage=regular every 30d send news care allow ad-before-after, privacy-opt-out",
        &[(
            "news",
            "text = \"{{ name }} 様\\n症例写真のご紹介です。当院は{{ clinic }}、地域ｎｏ１の実績\"",
        )],
    );
    // The template's findings, then the rules file's (sorted by file).
    assert_eq!(
        codes(&outcome),
        ["ad-before-after", "ad-superiority", "unknown-lint"]
    );
    let unknown = findings(&outcome).last().unwrap();
    assert!(
        unknown.message.contains("in the template"),
        "{}",
        unknown.message
    );
    assert!(outcome.rules.is_none());
}
