//! `steprule report --format html` in a real headless Chromium (Debian's `chromium`, which
//! `.ci/run` installs): the page loads without a console message, its charts are in the DOM,
//! its Japanese headings are there, and it refers to nothing on the network. The ledger is the
//! demo generator's (benches/support/ledger_gen.rs) for the sample clinic in `rules/`, ending
//! on 2026-11-01, so that October 2026 is a full month with an A/B step.
//!
//! Without `/usr/bin/chromium` the browser checks print a skip line and pass, unless
//! `STEPRULE_REQUIRE_CHROMIUM=1` (CI) makes them fail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "support/browser.rs"]
mod browser;
mod common;
#[path = "../benches/support/ledger_gen.rs"]
mod ledger_gen;

use std::path::{Path, PathBuf};

use browser::{chromium, external_references, load, load_cleanly};
use common::{fixtures, steprule, Run};
use ledger_gen::{Spec, StepSpec};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The demo ledger of the sample clinic in `dir`: seven months of sends to 2026-11-01.
fn demo_ledger(dir: &Path) -> PathBuf {
    let rules = steprule::check_path(&root().join("rules/clinic.step"), None)
        .unwrap()
        .rules
        .expect("the sample rules check");
    let path = dir.join("demo-ledger.db");
    let spec = Spec {
        sends: 6_000,
        sends_per_patient: 6,
        events_per_send: 0.25,
        months: 7,
        end: "2026-11-01T00:00:00Z".parse().unwrap(),
        seed: 11,
    };
    let written = ledger_gen::write_ledger(&path, &StepSpec::of(&rules), &spec).unwrap();
    assert!(written.sends > 0 && written.events > 0 && written.patients > 0);
    path
}

/// `steprule report RULES --ledger LEDGER --month 2026-10 --format html --out OUT [ARGS]`.
fn html_report(dir: &Path, rules: &Path, ledger: &Path, out: &str, args: &[&str]) -> Run {
    let (rules, ledger) = (rules.to_str().unwrap(), ledger.to_str().unwrap());
    let base = [
        "report", rules, "--ledger", ledger, "--month", "2026-10", "--format", "html", "--out", out,
    ];
    steprule(dir, &[&base[..], args].concat())
}

#[test]
fn the_demo_report_loads_in_chromium_without_a_console_message_and_draws_every_chart() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = demo_ledger(dir.path());
    let patients = root().join("rules/patients.csv");
    let run = html_report(
        dir.path(),
        &root().join("rules/clinic.step"),
        &ledger,
        "report.html",
        &["--patients", patients.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "", "--out writes the file, not stdout");
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert_eq!(external_references(&html), Vec::<String>::new());
    for absent in ["NaN", "inf", "<script"] {
        assert!(!html.contains(absent), "`{absent}` in the page");
    }
    let Some(chromium) = chromium() else { return };
    let dom = load_cleanly(chromium, &dir.path().join("report.html"));
    // Funnels for the four stages of the export and for next_visit_reminder's several
    // stages; the four monthly charts (sent, CTR, booking, block); checkup's A/B panel.
    assert_eq!(dom.matches("<svg").count(), 5 + 4 + 1, "{dom}");
    for heading in [
        "さくら内科クリニック ステップ配信レポート",
        "ステージ別ファネル",
        "月別の推移（直近6か月）",
        "ステップ別のKPI",
        "ABテスト",
        "改善のおすすめ",
        "ステージ別の到達状況",
        "2026年10月1日〜2026年10月31日",
        "checkup（指標：予約）",
    ] {
        assert!(dom.contains(heading), "no `{heading}` in the DOM");
    }
    assert_eq!(external_references(&dom), Vec::<String>::new());
}

#[test]
fn the_checker_sees_console_errors_and_external_references() {
    // A page that calls console.error and throws a ReferenceError must fail the check.
    if let Some(chromium) = chromium() {
        let loaded = load(chromium, &fixtures().join("report/console_error.html"));
        assert_eq!(loaded.code, Some(0), "{}", loaded.stderr);
        assert!(
            loaded
                .console
                .iter()
                .any(|l| l.contains("the checker must see this")),
            "{:#?}\n{}",
            loaded.console,
            loaded.stderr
        );
        assert!(
            loaded.console.iter().any(|l| l.contains("ReferenceError")),
            "{:#?}",
            loaded.console
        );
    }
    let fetching = r#"<img src="https://cdn.example/x.png"><link rel=stylesheet href='//fonts.example/css'>
        <svg><image xlink:href="http://img.example/a.png"/></svg><div style="background: url(https://x.example/b.png)">"#;
    assert_eq!(
        external_references(fetching).len(),
        4,
        "{:?}",
        external_references(fetching)
    );
    let harmless = r##"<a href="#top">top</a><p>https://go.example-clinic.jp/r/abc src=https://x</p>
        <p title="a > b" data-x="1">&lt;img src="https://x"&gt;</p>"##;
    assert_eq!(external_references(harmless), Vec::<String>::new());
}

#[test]
fn hostile_names_are_text_and_two_reports_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = demo_ledger(dir.path());
    let sample = std::fs::read_to_string(root().join("rules/clinic.step")).unwrap();
    let hostile = sample.replace(
        "clinic \"さくら内科クリニック\"",
        r#"clinic "<script>alert(1)</script> \"&' <img src=x onerror=alert(2)>""#,
    );
    assert_ne!(hostile, sample);
    std::fs::write(dir.path().join("hostile.step"), hostile).unwrap();
    std::os::unix::fs::symlink(root().join("rules/templates"), dir.path().join("templates"))
        .unwrap();
    let rules = dir.path().join("hostile.step");
    for out in ["first.html", "second.html"] {
        let run = html_report(dir.path(), &rules, &ledger, out, &[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let first = std::fs::read(dir.path().join("first.html")).unwrap();
    assert_eq!(
        first,
        std::fs::read(dir.path().join("second.html")).unwrap()
    );
    let html = String::from_utf8(first).unwrap();
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "{html}"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &quot;&amp;&#x27; &lt;img"),
        "{html}"
    );
    let Some(chromium) = chromium() else { return };
    let dom = load_cleanly(chromium, &dir.path().join("first.html"));
    assert!(!dom.contains("<script") && !dom.contains("<img"), "{dom}");
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{dom}"
    );
}

#[test]
fn an_empty_ledger_is_a_page_saying_there_is_nothing_yet() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("empty.db");
    drop(steprule::ledger::Ledger::open(&ledger).unwrap());
    let run = html_report(
        dir.path(),
        &root().join("rules/clinic.step"),
        &ledger,
        "empty.html",
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let html = std::fs::read_to_string(dir.path().join("empty.html")).unwrap();
    assert!(
        html.contains("この期間にLINEで配信した記録はまだありません"),
        "{html}"
    );
    for absent in ["NaN", "inf", "<svg"] {
        assert!(!html.contains(absent), "`{absent}` in the page:\n{html}");
    }
    let Some(chromium) = chromium() else { return };
    let dom = load_cleanly(chromium, &dir.path().join("empty.html"));
    assert!(dom.contains("ステップ配信レポート"), "{dom}");
}
