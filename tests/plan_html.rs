//! `steprule plan --format html`, the calendar: the sample clinic's sends per day and step in
//! headless Chromium (no console message, nothing fetched, the months and totals in the DOM),
//! printed on A4 landscape one month a page, and a window longer than a quarter refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "support/browser.rs"]
mod browser;
mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use browser::{chromium, external_references, load_cleanly};
use common::{steprule, Run};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `steprule plan RULES --patients rules/patients.csv --now 2026-11-25 09:00 ARGS`.
fn plan(rules: &Path, args: &[&str]) -> Run {
    let patients = root().join("rules/patients.csv");
    let base = [
        "plan",
        rules.to_str().unwrap(),
        "--patients",
        patients.to_str().unwrap(),
        "--now",
        "2026-11-25 09:00",
    ];
    steprule(root(), &[&base[..], args].concat())
}

#[test]
fn the_calendar_counts_what_the_plan_lists_and_loads_cleanly_in_chromium() {
    let rules = root().join("rules/clinic.step");
    let json = plan(&rules, &["--days", "40", "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let sends = json.stdout.lines().count();
    assert!(sends > 100, "{sends}");
    let run = plan(&rules, &["--days", "40", "--format", "html"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let html = run.stdout;
    assert!(
        html.contains(&format!("配信予定 {sends} 通")),
        "the page's total is the plan's {sends} sends"
    );
    assert_eq!(external_references(&html), Vec::<String>::new());
    assert!(!html.contains("<script"));
    // 2026-11-25 09:00 + 40 days: 25–30 November, December, 1–4 January.
    assert_eq!(html.matches("<section class=\"month\">").count(), 3);
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("calendar.html");
    std::fs::write(&page, &html).unwrap();
    let Some(chromium) = chromium() else { return };
    let dom = load_cleanly(chromium, &page);
    for text in [
        "さくら内科クリニック 配信カレンダー",
        "期間：2026年11月25日〜2027年1月4日",
        "2026年11月",
        "2026年12月",
        "2027年1月",
        "ステージ：booked",
        "ステージ：複数・指定なし",
        "日別合計",
        "visit_reminder",
    ] {
        assert!(dom.contains(text), "no `{text}` in the DOM");
    }
    assert_eq!(external_references(&dom), Vec::<String>::new());
    // Printed: A4 landscape (842 × 595 pt), one month a page.
    let pdf = dir.path().join("calendar.pdf");
    let printed = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--no-pdf-header-footer",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    let pdf = String::from_utf8_lossy(&std::fs::read(&pdf).unwrap()).into_owned();
    assert!(
        pdf.contains("/MediaBox [0 0 841.91998 594.95996]"),
        "not A4 landscape"
    );
    assert_eq!(pdf.matches("/Type /Page\n").count(), 3, "one month a page");
}

#[test]
fn a_window_longer_than_a_quarter_is_refused() {
    let rules = root().join("rules/clinic.step");
    let run = plan(&rules, &["--days", "94", "--format", "html"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains(
            "the calendar shows at most 93 days and this window is 94 days long: ask for \
             `--days 93` or fewer"
        ),
        "{}",
        run.stderr
    );
    let run = plan(&rules, &["--days", "93", "--format", "html"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_hostile_clinic_name_is_text() {
    let dir = tempfile::tempdir().unwrap();
    let sample = std::fs::read_to_string(root().join("rules/clinic.step")).unwrap();
    let hostile = sample.replace(
        "clinic \"さくら内科クリニック\"",
        r#"clinic "<script>alert(1)</script>""#,
    );
    assert_ne!(hostile, sample);
    std::fs::write(dir.path().join("hostile.step"), hostile).unwrap();
    std::os::unix::fs::symlink(root().join("rules/templates"), dir.path().join("templates"))
        .unwrap();
    let run = plan(
        &dir.path().join("hostile.step"),
        &["--days", "3", "--format", "html"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("<script"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("&lt;script&gt;alert(1)&lt;/script&gt; 配信カレンダー"),
        "{}",
        run.stdout
    );
}
