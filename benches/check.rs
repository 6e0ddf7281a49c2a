//! `steprule check` on a generated 10,000-step file (the language issue's target: well under a
//! second). Run: `cargo bench --bench check`.

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
    let mut text = String::from(
        "clinic \"さくら内科クリニック\"\ntimezone \"Asia/Tokyo\"\nquiet 21:00-09:00\ncap 2 per day\n\
         stages booked, first_visit, follow_up, regular\n\
         dates appointment_at, visited_at, last_visit_at, next_booking_at, cancelled_at\n\
         fields doctor, department\n",
    );
    for i in 0..steps {
        let stage = STAGES[i % 4];
        let template = TEMPLATES[i % TEMPLATES.len()];
        let hour = 9 + i % 12;
        let minute = (i / 12) % 60;
        let line = match i % 5 {
            0 => format!("step s{i}: when stage={stage} after {}m send {template}\n", i + 1),
            1 => format!(
                "step s{i}: when stage={stage} and age >= {} {}d before appointment_at at {hour:02}:{minute:02} send {template} unless cancelled_at\n",
                20 + i % 50,
                1 + i % 30
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

fn bench_check(c: &mut Criterion) {
    let text = generated_rules(10_000);
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/templates");
    let file = SourceFile::new("generated.step", text);
    let outcome = check_file(&file, &mut TemplateStore::new(&templates));
    assert!(!outcome.has_errors(), "{:?}", outcome.diagnostics.first());
    let mut group = c.benchmark_group("check");
    group.sample_size(10);
    group.bench_function("10k_steps", |b| {
        b.iter(|| check_file(&file, &mut TemplateStore::new(&templates)))
    });
    group.finish();
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
