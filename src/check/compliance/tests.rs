//! The lints on whole templates: rendered as `check` renders them, findings pointing into the
//! template file.

use super::*;
use crate::diagnostic::Severity;
use crate::source::SourceFile;
use crate::template;

fn lint_toml(toml: &str) -> Vec<Diagnostic> {
    let file = SourceFile::new("t.toml", toml);
    let template = template::parse("t", file).unwrap();
    let env = template::environment(chrono_tz::Asia::Tokyo);
    let context = minijinja::Value::from_serialize(
        [("name", "山田 花子"), ("clinic", "さくら内科クリニック")]
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
    );
    let messages = template.messages(&env, &context, None).unwrap();
    lint(&template, &messages)
}

fn codes(diags: &[Diagnostic]) -> Vec<&'static str> {
    diags.iter().map(|d| d.code.name()).collect()
}

fn at(diag: &Diagnostic) -> &str {
    diag.file.slice(diag.span)
}

#[test]
fn points_at_the_word_in_the_template_file() {
    let diags = lint_toml("text = \"{{ name }} 様\\n当院は地域ＮＯ．１の実績です。\"\n");
    assert_eq!(codes(&diags), ["ad-superiority"]);
    assert_eq!(at(&diags[0]), "ＮＯ．１");
    assert_eq!(diags[0].severity, Severity::Error);
}

#[test]
fn reads_alt_text_labels_and_line_json_titles() {
    let diags = lint_toml(
        "text = \"ご案内\"\nalt = \"日本一のクリニック\"\n[[buttons]]\nlabel = \"体験談を見る\"\nurl = \"https://x.example.jp/\"\n",
    );
    assert_eq!(codes(&diags), ["ad-superiority", "ad-testimonial"]);
    assert_eq!(at(&diags[0]), "日本一");
    assert_eq!(at(&diags[1]), "体験談");

    let json = r#"line_json = '''{"type": "flex", "altText": "お知らせ", "contents": {"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": [{"type": "text", "text": "画期的な治療"}]}}}'''"#;
    let diags = lint_toml(json);
    assert_eq!(codes(&diags), ["ad-exaggeration"]);
    assert_eq!(at(&diags[0]), "画期的");
}

#[test]
fn a_second_occurrence_points_at_the_second_place() {
    let diags = lint_toml("text = \"最高の設備と最高の技術\"\n");
    assert_eq!(codes(&diags), ["ad-superiority", "ad-superiority"]);
    assert!(diags[0].span.start < diags[1].span.start);
}

#[test]
fn warnings_where_the_list_says_so() {
    let diags = lint_toml("text = \"経験豊富な医師が担当します\"\n");
    assert_eq!(codes(&diags), ["ad-exaggeration"]);
    assert_eq!(diags[0].severity, Severity::Warning);
}

#[test]
fn a_quoted_experience_with_an_age_is_a_testimonial() {
    let diags = lint_toml("text = \"「痛みがなくなりました」（40代・女性）\"\n");
    assert_eq!(codes(&diags), ["ad-testimonial"]);
    assert!(at(&diags[0]).starts_with('」'), "{}", at(&diags[0]));
    assert!(lint_toml("text = \"「健康診断」は40歳以上の方が対象です\"\n").is_empty());
}

#[test]
fn before_after_is_a_warning_unless_explained() {
    let diags = lint_toml(
        "text = \"症例をご紹介します\"\nimage = \"https://x.example.jp/before_after_01.jpg\"\nalt = \"症例のご紹介\"\n[[buttons]]\nlabel = \"詳しく\"\nurl = \"https://x.example.jp/\"\n",
    );
    assert_eq!(codes(&diags), ["ad-before-after"]);
    assert_eq!(diags[0].severity, Severity::Warning);
    assert_eq!(at(&diags[0]), "before_after");
    let explained = lint_toml(
        "text = \"ビフォーアフター写真です。治療内容：ホワイトニング、費用：1回22,000円、期間：2週間、リスク：知覚過敏\"\n",
    );
    assert!(explained.is_empty(), "{:?}", codes(&explained));
}

#[test]
fn self_pay_needs_each_item_one_error_each() {
    let diags = lint_toml("self_pay = true\ntext = \"ホワイトニングのご案内。自由診療です。\"\n");
    assert_eq!(
        codes(&diags),
        [
            "ad-self-pay-treatment",
            "ad-self-pay-cost",
            "ad-self-pay-risks",
            "ad-self-pay-contact"
        ]
    );
    assert_eq!(at(&diags[0]), "true");
    let complete = lint_toml(
        "self_pay = true\ntext = \"\"\"ホワイトニング（自由診療）\n治療内容：薬剤による歯の漂白を2回行います。\n費用：33,000円（税込）\nリスク・副作用：一時的な知覚過敏が出ることがあります。\nお問い合わせはお電話で。\"\"\"\n",
    );
    assert!(complete.is_empty(), "{:?}", codes(&complete));
    // A `tel:` button is a contact.
    let with_button = lint_toml(
        "self_pay = true\ntext = \"治療内容：漂白。費用：33,000円。リスク：知覚過敏。自費診療です。\"\n[[buttons]]\nlabel = \"相談する\"\nurl = \"tel:0312345678\"\n",
    );
    assert!(with_button.is_empty(), "{:?}", codes(&with_button));
}

#[test]
fn a_first_visit_price_needs_the_normal_price() {
    let diags = lint_toml("text = \"初回限定 ５，０００円でお試しいただけます\"\n");
    assert_eq!(codes(&diags), ["ad-first-price"]);
    assert_eq!(at(&diags[0]), "初回");
    assert!(lint_toml("text = \"初回 5,000円（通常価格 10,000円）\"\n").is_empty());
    assert!(lint_toml("text = \"初回の受診時は保険証をお持ちください\"\n").is_empty());
}

#[test]
fn an_allowance_silences_its_code_and_an_unused_one_is_a_warning() {
    let diags = lint_toml(
        "text = \"県内一の検査件数です\"\nallow = [{ code = \"ad-superiority\", reason = \"保健所に確認済み（2026-11）\" }]\n",
    );
    assert!(diags.is_empty(), "{:?}", codes(&diags));
    let diags = lint_toml(
        "text = \"定期健診のご案内です\"\nallow = [{ code = \"ad-superiority\", reason = \"念のため\" }]\n",
    );
    assert_eq!(codes(&diags), ["unused-allow"]);
    assert_eq!(diags[0].severity, Severity::Warning);
    assert_eq!(at(&diags[0]), "\"ad-superiority\"");
}

#[test]
fn an_allowance_needs_an_ad_code_and_a_reason() {
    let diags = lint_toml(
        "text = \"日本一\"\nallow = [{ code = \"ad-superiorty\", reason = \"x\" }, { code = \"ad-superiority\", reason = \" \" }]\n",
    );
    assert_eq!(
        codes(&diags),
        ["ad-superiority", "unknown-lint", "template-invalid"]
    );
    assert_eq!(
        diags[1].help.as_deref(),
        Some("did you mean `ad-superiority`?")
    );
}

#[test]
fn every_ad_code_is_documented_in_the_language_reference() {
    let docs = include_str!("../../../docs/language.md");
    for code in AD_CODES.iter().chain([&Code::UnusedAllow]) {
        assert!(
            docs.contains(&format!("`{code}`")),
            "{code} is not in docs/language.md"
        );
    }
}

/// The corpus lines of `file`: (expected code, sentence), comments and blank lines left out.
fn corpus(text: &str) -> Vec<(Option<&str>, &str)> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| match line.split_once('\t') {
            Some((code, sentence)) => (Some(code), sentence),
            None => (None, line),
        })
        .collect()
}

fn lint_sentence(sentence: &str, self_pay: bool) -> Vec<Diagnostic> {
    let text = toml::Value::String(sentence.to_owned());
    let self_pay = if self_pay { "self_pay = true\n" } else { "" };
    lint_toml(&format!("{self_pay}text = {text}\n"))
}

#[test]
fn every_not_allowed_sentence_of_the_corpus_is_flagged_with_its_code() {
    let lines = corpus(include_str!(
        "../../../tests/fixtures/compliance/not_allowed.txt"
    ));
    assert!(lines.len() >= 40, "{} sentences", lines.len());
    let mut missed = Vec::new();
    for (code, sentence) in lines {
        let code = code.unwrap_or_default();
        let diags = lint_sentence(sentence, code.starts_with("ad-self-pay-"));
        if !diags.iter().any(|d| d.code.name() == code) {
            missed.push(format!("{code}\t{sentence}\t(got {:?})", codes(&diags)));
        }
    }
    assert!(
        missed.is_empty(),
        "not flagged as expected:\n{}",
        missed.join("\n")
    );
}

#[test]
fn no_ordinary_sentence_of_the_corpus_is_flagged() {
    let lines = corpus(include_str!(
        "../../../tests/fixtures/compliance/ordinary.txt"
    ));
    assert!(lines.len() >= 40, "{} sentences", lines.len());
    let flagged: Vec<String> = lines
        .iter()
        .filter_map(|(_, sentence)| {
            let diags = lint_sentence(sentence, false);
            (!diags.is_empty()).then(|| format!("{sentence}\t{:?}", codes(&diags)))
        })
        .collect();
    assert!(flagged.is_empty(), "flagged:\n{}", flagged.join("\n"));
}
