//! The privacy lints as `check` runs them: on rule files with templates, findings pointing
//! into the template file (preview, sensitive fields) or at the step (consent, opt-out).

use crate::check::{check_file, CheckOutcome};
use crate::diagnostic::{Code, Diagnostic, Severity};
use crate::source::SourceFile;
use crate::template::TemplateStore;

const HEADER: &str = "clinic \"さくら内科クリニック\"\nstages booked, regular\n\
dates appointment_at, last_visit_at\nfields doctor, diagnosis, marketing_ok\n";

const OPT_OUT: &str = "配信停止をご希望の方はメニューから変更できます。";

fn check_with(rules: &str, templates: &[(&str, &str)]) -> CheckOutcome {
    let dir = tempfile::tempdir().unwrap();
    for (name, toml) in templates {
        std::fs::write(dir.path().join(format!("{name}.toml")), toml).unwrap();
    }
    let file = SourceFile::new("t.step", format!("{HEADER}{rules}"));
    check_file(&file, &mut TemplateStore::new(dir.path()))
}

fn findings(outcome: &CheckOutcome) -> Vec<&Diagnostic> {
    outcome
        .diagnostics
        .iter()
        .filter(|d| d.code != Code::UnusedStage)
        .collect()
}

fn codes(outcome: &CheckOutcome) -> Vec<&'static str> {
    findings(outcome).iter().map(|d| d.code.name()).collect()
}

fn at(diag: &Diagnostic) -> &str {
    diag.file.slice(diag.span)
}

fn text(body: &str) -> String {
    format!("text = {}\n", toml::Value::String(body.to_owned()))
}

const CARE: &str = "step s: when stage=booked 1d before appointment_at send t\n";

#[test]
fn a_health_word_in_the_first_line_is_an_error_at_its_place() {
    let outcome = check_with(CARE, &[("t", &text("血糖値の結果について\n{{ name }} 様"))]);
    assert_eq!(codes(&outcome), ["privacy-preview"]);
    let diag = findings(&outcome)[0];
    assert_eq!(at(diag), "血糖値");
    assert_eq!(diag.severity, Severity::Error);
    assert!(diag.file.path().ends_with("t.toml"));
    assert!(diag.help.as_deref().unwrap().contains("neutral greeting"));
    assert!(outcome.rules.is_none());
}

#[test]
fn only_the_preview_is_linted_not_the_body() {
    let body = "さくら内科クリニックからのお知らせです。\n血糖値の結果が出ました。";
    let outcome = check_with(CARE, &[("t", &text(body))]);
    assert!(codes(&outcome).is_empty(), "{:?}", codes(&outcome));
    // A blank first line: the preview is the first line that shows anything.
    let outcome = check_with(CARE, &[("t", &text("\n\n妊婦健診のご案内"))]);
    assert_eq!(codes(&outcome), ["privacy-preview"]);
}

#[test]
fn alt_texts_are_previews_in_the_simple_form_and_in_line_json() {
    let card = "text = \"お知らせです\"\nalt = \"ＨｂＡ１ｃのご報告\"\n[[buttons]]\nlabel = \"詳しく\"\nurl = \"https://x.example.jp/\"\n";
    let outcome = check_with(CARE, &[("t", card)]);
    assert_eq!(codes(&outcome), ["privacy-preview"]);
    assert_eq!(at(findings(&outcome)[0]), "ＨｂＡ１ｃ");
    let json = r#"line_json = '''{"type": "flex", "altText": "うつ病の通院について", "contents": {"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": [{"type": "text", "text": "糖尿病の方へ"}]}}}'''"#;
    let outcome = check_with(CARE, &[("t", json)]);
    // The altText is the preview; the flex body is not.
    assert_eq!(codes(&outcome), ["privacy-preview"]);
    assert!(findings(&outcome)[0].message.contains("うつ病"));
}

#[test]
fn a_sensitive_field_in_the_preview_is_an_error_even_with_consent() {
    let rules = format!("sensitive diagnosis\nconsent marketing_ok\n{CARE}    requires consent\n");
    let outcome = check_with(&rules, &[("t", &text("{{ diagnosis }}について\n本文"))]);
    assert_eq!(codes(&outcome), ["privacy-preview"]);
    assert_eq!(at(findings(&outcome)[0]), "diagnosis");
}

#[test]
fn a_sensitive_field_in_the_body_needs_a_consent_step() {
    let template = text("お知らせです\n{{ diagnosis }}の経過はいかがですか");
    let outcome = check_with(&format!("sensitive diagnosis\n{CARE}"), &[("t", &template)]);
    assert_eq!(codes(&outcome), ["privacy-sensitive-field"]);
    let diag = findings(&outcome)[0];
    assert_eq!(at(diag), "diagnosis");
    assert!(diag.help.as_deref().unwrap().contains("requires consent"));
    let gated = format!("sensitive diagnosis\nconsent marketing_ok\n{CARE}    requires consent\n");
    let outcome = check_with(&gated, &[("t", &template)]);
    assert!(codes(&outcome).is_empty(), "{:?}", codes(&outcome));
    // In a condition it is fine.
    let condition =
        "sensitive diagnosis\nstep s: when diagnosis=\"x\" 1d before appointment_at send t\n";
    let outcome = check_with(condition, &[("t", &text("お知らせです"))]);
    assert!(codes(&outcome).is_empty(), "{:?}", codes(&outcome));
}

#[test]
fn consent_and_sensitive_name_declared_fields() {
    let outcome = check_with(
        &format!("consent marketng_ok\nsensitive diagnosys, age\n{CARE}"),
        &[("t", &text("お知らせです"))],
    );
    let found: Vec<(&str, String)> = findings(&outcome)
        .iter()
        .map(|d| (at(d), d.help.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        found,
        [
            ("marketng_ok", "did you mean `marketing_ok`?".to_owned()),
            ("diagnosys", "did you mean `diagnosis`?".to_owned()),
            (
                "age",
                "`sensitive` names export columns declared in `fields`: add `fields age`"
                    .to_owned()
            ),
        ]
    );
}

#[test]
fn promo_steps_need_a_consent_setting() {
    let template = text(&format!("お知らせです\n{OPT_OUT}"));
    for step in [
        "step p: when stage=regular every 30d send t\n",
        "step p: when stage=regular on 2026-12-28 send t\n",
        "step p: when stage=regular every year on 06-04 send t\n",
        "step p: when stage=regular 1d before appointment_at send t promo\n",
        "step p: when stage=regular 1d before appointment_at send t requires consent\n",
    ] {
        let outcome = check_with(step, &[("t", &template)]);
        assert_eq!(codes(&outcome), ["promo-without-consent"], "{step}");
        let help = findings(&outcome)[0].help.clone().unwrap();
        assert!(
            help.contains("consent FIELD") && help.contains("`care`"),
            "{help}"
        );
    }
    // Care by default, or marked care, or with a consent setting: fine.
    for rules in [
        "step p: when stage=regular 1d before appointment_at send t\n",
        "step p: when stage=regular every 30d send t care\n",
        "consent marketing_ok\nstep p: when stage=regular every 30d send t\n",
    ] {
        let outcome = check_with(rules, &[("t", &template)]);
        assert!(codes(&outcome).is_empty(), "{rules}: {:?}", codes(&outcome));
    }
}

#[test]
fn the_purpose_is_lowered_with_the_consent_gate() {
    let outcome = check_with(
        "consent marketing_ok\nstep p: when stage=regular every 30d send t\nstep c: when stage=regular 1d before appointment_at send t care requires consent\nstep r: when stage=booked 1d before appointment_at send t\n",
        &[("t", &text(&format!("お知らせです\n{OPT_OUT}")))],
    );
    let rules = outcome.rules.unwrap();
    let gates: Vec<bool> = rules.steps.iter().map(|s| s.needs_consent).collect();
    assert_eq!(gates, [true, true, false]);
    assert_eq!(rules.consent.as_deref(), Some("marketing_ok"));
}

#[test]
fn promo_and_periodic_templates_need_opt_out_wording() {
    let bare = text("お知らせです\n今月のたより");
    let outcome = check_with(
        "consent marketing_ok\nstep p: when stage=regular every 30d send t\n",
        &[("t", &bare)],
    );
    assert_eq!(codes(&outcome), ["privacy-opt-out"]);
    let diag = findings(&outcome)[0];
    assert_eq!(diag.severity, Severity::Warning);
    assert_eq!(at(diag), "t");
    // A periodic care step too; a one-off care step does not.
    let outcome = check_with(
        "step p: when stage=regular every 30d send t care\n",
        &[("t", &bare)],
    );
    assert_eq!(codes(&outcome), ["privacy-opt-out"]);
    let outcome = check_with(CARE, &[("t", &bare)]);
    assert!(codes(&outcome).is_empty());
    // Width and kana variants of the wording count.
    let outcome = check_with(
        "step p: when stage=regular every 30d send t care\n",
        &[("t", &text("お知らせです\n不要な方はﾌﾞﾛｯｸしてください"))],
    );
    assert!(codes(&outcome).is_empty(), "{:?}", codes(&outcome));
}

#[test]
fn opt_out_is_allowed_on_the_step_or_in_the_template_with_a_reason() {
    let bare = text("お知らせです");
    let step = "step p: when stage=regular every 30d send t care allow privacy-opt-out\n";
    let outcome = check_with(step, &[("t", &bare)]);
    assert!(codes(&outcome).is_empty(), "{:?}", codes(&outcome));
    let allowed = format!(
        "{bare}allow = [{{ code = \"privacy-opt-out\", reason = \"院内掲示で停止方法を案内（2026-11 院長確認）\" }}]\n"
    );
    let periodic = "step p: when stage=regular every 30d send t care\n";
    let outcome = check_with(periodic, &[("t", &allowed)]);
    assert!(codes(&outcome).is_empty(), "{:?}", codes(&outcome));
    // Allowing it where nothing is flagged is itself a warning.
    let outcome = check_with(CARE, &[("t", &allowed)]);
    assert_eq!(codes(&outcome), ["unused-allow"]);
    // Without a reason it is not an allowance.
    let no_reason = format!("{bare}allow = [{{ code = \"privacy-opt-out\", reason = \" \" }}]\n");
    let outcome = check_with(periodic, &[("t", &no_reason)]);
    assert_eq!(codes(&outcome), ["template-invalid", "privacy-opt-out"]);
}

#[test]
fn privacy_errors_cannot_be_allowed() {
    let template = format!(
        "{}allow = [{{ code = \"privacy-preview\", reason = \"確認済み\" }}]\n",
        text("血糖値のお知らせ")
    );
    let outcome = check_with(CARE, &[("t", &template)]);
    assert_eq!(codes(&outcome), ["privacy-preview", "unknown-lint"]);
    let outcome = check_with(
        "step s: when stage=booked 1d before appointment_at send t allow privacy-preview\n",
        &[("t", &text("血糖値のお知らせ"))],
    );
    assert_eq!(codes(&outcome), ["privacy-preview", "unknown-lint"]);
}

/// The corpus lines of a file: comments and blank lines left out.
fn corpus(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .collect()
}

fn preview_codes(sentence: &str) -> Vec<&'static str> {
    let outcome = check_with(CARE, &[("t", &text(&format!("{sentence}\n本文です")))]);
    codes(&outcome)
}

#[test]
fn every_flagged_preview_of_the_corpus_is_flagged() {
    let lines = corpus(include_str!(
        "../../../tests/fixtures/compliance/preview_flagged.txt"
    ));
    assert!(lines.len() >= 30, "{} previews", lines.len());
    let missed: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| !preview_codes(line).contains(&"privacy-preview"))
        .collect();
    assert!(missed.is_empty(), "not flagged:\n{}", missed.join("\n"));
}

#[test]
fn no_ordinary_preview_of_the_corpus_is_flagged() {
    let lines = corpus(include_str!(
        "../../../tests/fixtures/compliance/preview_ordinary.txt"
    ));
    assert!(lines.len() >= 30, "{} previews", lines.len());
    let flagged: Vec<String> = lines
        .iter()
        .filter_map(|line| {
            let codes = preview_codes(line);
            (!codes.is_empty()).then(|| format!("{line}\t{codes:?}"))
        })
        .collect();
    assert!(flagged.is_empty(), "flagged:\n{}", flagged.join("\n"));
}

#[test]
fn every_privacy_code_is_documented() {
    let language = include_str!("../../../docs/language.md");
    let compliance = include_str!("../../../docs/compliance.md");
    for code in super::ERRORS.iter().chain([&Code::PrivacyOptOut]) {
        for (name, docs) in [("language.md", language), ("compliance.md", compliance)] {
            assert!(
                docs.contains(&format!("`{code}`")),
                "{code} is not in docs/{name}"
            );
        }
    }
}

#[test]
fn a_step_says_care_or_promo_once_and_the_words_stay_field_names() {
    let outcome = check_with(
        "consent marketing_ok\nstep s: when stage=booked 1d before appointment_at send t care promo\n",
        &[("t", &text(&format!("お知らせです\n{OPT_OUT}")))],
    );
    assert_eq!(codes(&outcome), ["duplicate-declaration"]);
    assert_eq!(at(findings(&outcome)[0]), "promo");
    // `promo` is not reserved: a template (or a field) may be called so.
    let outcome = check_with(
        "step s: when stage=booked 1d before appointment_at send promo\n",
        &[("promo", &text("お知らせです"))],
    );
    assert!(codes(&outcome).is_empty(), "{:?}", codes(&outcome));
    let rules = outcome.rules.unwrap();
    assert!(!rules.steps[0].needs_consent);
}
