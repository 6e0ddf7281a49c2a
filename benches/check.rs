//! `steprule check` on a generated 10,000-step file (the language issue's target: well under a
//! second), twice: with the sample clinic's templates shared by every step (`10k_steps`), and
//! with a template of its own per step, each ~200 characters of realistic Japanese
//! (`10k_steps_10k_templates`), so that rendering and the advertising lints are paid 10,000
//! times (issue 12: no slower than 1.5× the same bench without the lints).
//! Run: `cargo bench --bench check`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use steprule::check_file;
use steprule::SourceFile;
use steprule::TemplateStore;

const STAGES: [&str; 4] = ["booked", "first_visit", "follow_up", "regular"];
const TEMPLATES: [&str; 6] = [
    "booking_confirm",
    "thanks",
    "survey",
    "checkup_a",
    "health_news",
    "stay_in_touch",
];

/// A rules file with `steps` steps in every form the language has.
pub fn generated_rules(steps: usize) -> String {
    generated_rules_sending(steps, |i| TEMPLATES[i % TEMPLATES.len()].to_owned(), false)
}

/// The same rules, each step sending `template(i)`; with `own`, the A/B step sends it too
/// (one arm).
fn generated_rules_sending(steps: usize, template: impl Fn(usize) -> String, own: bool) -> String {
    let mut text = String::from(
        "clinic \"さくら内科クリニック\"\ntimezone \"Asia/Tokyo\"\nquiet 21:00-09:00\ncap 2 per day\n\
         stages booked, first_visit, follow_up, regular\n\
         dates appointment_at, visited_at, last_visit_at, next_booking_at, cancelled_at\n\
         fields doctor, department, marketing_ok\nconsent marketing_ok\n",
    );
    for i in 0..steps {
        let stage = STAGES[i % 4];
        let template = template(i);
        let hour = 9 + i % 12;
        let minute = (i / 12) % 60;
        let line = match i % 5 {
            0 => format!("step s{i}: when stage={stage} after {}m send {template}\n", i + 1),
            1 => format!(
                "step s{i}: when stage={stage} and age >= {} {}d before appointment_at at {hour:02}:{minute:02} send {template} unless cancelled_at\n",
                20 + i % 50,
                1 + i % 30
            ),
            2 if own => format!(
                "step s{i}: when stage in (follow_up, regular) and not tag=vip {}mo after last_visit_at at {hour:02}:{minute:02}\n    send {template}\n",
                1 + i % 24
            ),
            2 => format!(
                "step s{i}: when stage in (follow_up, regular) and not tag=vip {}mo after last_visit_at at {hour:02}:{minute:02}\n    send checkup_a 50% | checkup_b 50%\n",
                1 + i % 24
            ),
            3 => format!(
                "step s{i}: when stage={stage} and (tag=chronic or age > {}) every {}d at {hour:02}:{minute:02} send {template} within 2d\n",
                30 + i % 40,
                7 + i % 90
            ),
            _ => format!(
                "step s{i}: when stage={stage} and rhai {{ patient.visits > {} }} after {}h send {template}\n",
                i % 10,
                i + 1
            ),
        };
        text.push_str(&line);
    }
    text
}

/// Openings, bodies and closings of the messages a clinic sends, combined per template so that
/// no two templates are the same text.
const OPENINGS: [&str; 4] = [
    "{{ clinic }}からのお知らせです。\n{{ name }} 様\n\n",
    "{{ name }} 様\nいつも{{ clinic }}をご利用いただき、ありがとうございます。\n",
    "{{ name }} 様\n{% if doctor %}担当医の{{ doctor }}より{% else %}{{ clinic }}より{% endif %}ご案内です。\n",
    "{{ clinic }}です。{{ name }} 様、その後お変わりありませんか。\n",
];
const BODIES: [&str; 6] = [
    "{{ appointment_at | date(\"%-m月%-d日 %H:%M\") }}からのご予約を承っております。当日は保険証と診察券、お薬手帳を必ずお持ちください。ご都合が悪くなった場合は、お早めにお電話でご連絡ください。",
    "前回のご来院から3か月ほどが経ちました。体調の変化を早めに確認するため、定期的な受診をおすすめしています。ご都合のよい日時を下のボタンからご予約いただけます。",
    "今シーズンのインフルエンザ予防接種のご予約を受け付けています。接種後、効果が出るまでに2週間ほどかかるといわれています。体調のご相談は予約時にお尋ねください。",
    "先日はご来院いただき、ありがとうございました。お薬は医師の指示どおりにお飲みください。気になる症状が続く場合は、次回を待たずにご相談ください。",
    "健康診断の結果について、医師からご説明します。最高血圧が高めだった方は、食事の塩分を控えめにし、無理のない運動を続けることが大切です。",
    "当院は完全予約制です。待合室の混雑を避けるため、ご予約の時間の5分前を目安にお越しください。完全個室の診察室でお話を伺います。",
];
const CLOSINGS: [&str; 3] = [
    "\n\n配信停止をご希望の方は、メニューの「配信設定」から変更できます。",
    "\n\nご不明な点は受付までお尋ねください。",
    "\n\n最新のお知らせはホームページでもご覧いただけます。",
];

/// 10,000 templates, `t0` … `t9999`, each ~200 characters of realistic Japanese (half of them
/// with a button card), in a temporary folder.
fn generated_templates(count: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..count {
        let text = format!(
            "{}{}（ご案内番号 {i}）{}",
            OPENINGS[i % OPENINGS.len()],
            BODIES[(i / OPENINGS.len()) % BODIES.len()],
            CLOSINGS[i % CLOSINGS.len()]
        );
        let mut toml = format!("text = \"\"\"\n{text}\n\"\"\"\n");
        if i % 2 == 0 {
            toml.push_str(&format!(
                "alt = \"{{{{ clinic }}}}からのご案内 {i}\"\n\n[[buttons]]\nlabel = \"ご予約はこちら\"\nurl = \"https://sakura-naika.example.jp/reserve/{i}\"\n"
            ));
        }
        std::fs::write(dir.path().join(format!("t{i}.toml")), toml).unwrap();
    }
    dir
}

fn bench_check(c: &mut Criterion) {
    let text = generated_rules(10_000);
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/templates");
    let file = SourceFile::new("generated.step", text);
    let outcome = check_file(&file, &mut TemplateStore::new(&templates));
    assert!(
        !outcome.has_errors(),
        "{:?}",
        outcome
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .map(|d| &d.message)
    );
    let mut group = c.benchmark_group("check");
    group.sample_size(10);
    group.bench_function("10k_steps", |b| {
        b.iter(|| check_file(&file, &mut TemplateStore::new(&templates)))
    });

    let own = generated_templates(10_000);
    let text = generated_rules_sending(10_000, |i| format!("t{i}"), true);
    let file = SourceFile::new("generated.step", text);
    let outcome = check_file(&file, &mut TemplateStore::new(own.path()));
    assert!(
        !outcome.has_errors(),
        "{:?}",
        outcome
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .map(|d| &d.message)
    );
    assert!(
        outcome
            .diagnostics
            .iter()
            .all(|d| !d.code.name().starts_with("ad-")),
        "{:?}",
        outcome.diagnostics.first()
    );
    group.bench_function("10k_steps_10k_templates", |b| {
        b.iter(|| check_file(&file, &mut TemplateStore::new(own.path())))
    });
    group.finish();
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
