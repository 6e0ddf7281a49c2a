//! `steprule preview` on the hand-made clinic in tests/fixtures/preview (times Asia/Tokyo, as
//! of 2026-11-25 09:00): the text a terminal shows, the chat page in headless Chromium, hostile
//! and oversized values, and the errors (an unknown patient or step, a step that does not
//! apply, a template that fails for the patient's data) with their exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "support/browser.rs"]
mod browser;
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use browser::{chromium, external_references, load_cleanly};
use common::{fixtures, steprule, Run};

const NOW: &str = "2026-11-25 09:00";

/// `steprule preview clinic.step --patients patients.csv --now NOW ARGS`, run in `dir`.
fn preview_in(dir: &Path, args: &[&str]) -> Run {
    let fixture = fixtures().join("preview");
    let rules = fixture.join("clinic.step");
    let patients = fixture.join("patients.csv");
    let base = [
        "preview",
        rules.to_str().unwrap(),
        "--patients",
        patients.to_str().unwrap(),
        "--now",
        NOW,
    ];
    steprule(dir, &[&base[..], args].concat())
}

fn preview(args: &[&str]) -> Run {
    preview_in(&fixtures().join("preview"), args)
}

#[test]
fn a_reminder_shows_its_text_buttons_and_lock_screen_line() {
    let run = preview(&["--patient", "P1", "--step", "reminder"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
    insta::assert_snapshot!("preview_reminder_p1", run.stdout);
}

#[test]
fn without_step_every_step_that_sends_is_shown_in_time_order() {
    // P3 gets `long` on 11-25 12:00 (1d after entering `regular` at 09:30, at 12:00), which is
    // over LINE's 5,000 characters, and `news` on 11-26 12:00 (2d after).
    let run = preview(&["--patient", "P3"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let steps: Vec<&str> = run
        .stdout
        .lines()
        .filter(|line| line.starts_with("── step"))
        .collect();
    assert_eq!(
        steps,
        [
            "── step long · template long · sends 2026-11-25 (水) 12:00",
            "── step news · template news · sends 2026-11-26 (木) 12:00",
        ]
    );
    assert!(
        run.stdout.contains(
            "✗ would not be sent: failed: over LINE's limits or the URL rule: the text of \
             template `long` is 6016 characters; LINE allows 5000"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("notification: 写真を送信しました"),
        "{}",
        run.stdout
    );
    // The error names the step, the template and the field; never the patient's values.
    assert!(
        run.stderr
            .contains("error: step `long`: template `long` would not be sent"),
        "{}",
        run.stderr
    );
    for value in ["長長", "鈴木", "一郎"] {
        assert!(!run.stderr.contains(value), "`{value}` in {}", run.stderr);
    }
}

#[test]
fn a_template_failing_for_the_patients_data_is_held_with_exit_4() {
    let run = preview(&["--patient", "P4", "--step", "broken"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("✗ would not be sent: held until the export is fixed: `text` of template `broken` failed"),
        "{}",
        run.stdout
    );
    assert!(!run.stderr.contains("高橋"), "{}", run.stderr);
}

#[test]
fn a_step_that_does_not_apply_says_why_with_exit_5() {
    let run = preview(&["--patient", "P5", "--step", "reminder"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "preview for patient P5 — as of 2026-11-25 (水) 09:00: nothing is sent in the next 400 days\n\
         reminder  not sent: no LINE user id (the patient has not linked LINE)\n"
    );
    assert_eq!(
        run.stderr,
        "error: step `reminder` sends nothing to this patient in the next 400 days (why is \
         printed above)\n"
    );
    // A step for another stage: the condition that is false, as explain says it.
    let run = preview(&["--patient", "P1", "--step", "news"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("news  not sent: condition false: `stage=regular` (stage is booked)"),
        "{}",
        run.stdout
    );
}

#[test]
fn an_unknown_patient_or_step_is_a_usage_error() {
    let run = preview(&["--patient", "P404"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("no patient with id `P404`"),
        "{}",
        run.stderr
    );
    let run = preview(&["--patient", "P1", "--step", "remind"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "no step `remind` in the rules; the steps are: reminder, welcome, news, long, broken"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
}

#[test]
fn the_chat_page_loads_in_chromium_with_bubbles_and_the_lock_screen_line() {
    let dir = tempfile::tempdir().unwrap();
    for (patient, out) in [("P1", "p1.html"), ("P2", "p2.html")] {
        let run = preview_in(
            dir.path(),
            &["--patient", patient, "--format", "html", "--out", out],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.stdout, "", "--out writes the file, not stdout");
        let mode = std::fs::metadata(dir.path().join(out))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the preview holds patient data");
    }
    let p1 = std::fs::read_to_string(dir.path().join("p1.html")).unwrap();
    let p2 = std::fs::read_to_string(dir.path().join("p2.html")).unwrap();
    for html in [&p1, &p2] {
        assert_eq!(external_references(html), Vec::<String>::new());
    }
    // P2's name is `<script>alert(1)</script>`, its doctor an `<img onerror>`, and the flex
    // template writes `</p><script>` into a text: all of it text on the page.
    assert!(!p2.contains("<script") && !p2.contains("<img"), "{p2}");
    assert!(
        p2.contains("&lt;script&gt;alert(1)&lt;/script&gt; 様"),
        "{p2}"
    );
    let Some(chromium) = chromium() else { return };
    let dom = load_cleanly(chromium, &dir.path().join("p1.html"));
    assert_eq!(
        dom.matches("data-kind=\"notification\"").count(),
        1,
        "{dom}"
    );
    assert!(
        dom.contains("さくら歯科からのお知らせです。 山田 花子 様 明日 11月27日 15:00"),
        "the lock-screen line: {dom}"
    );
    assert_eq!(dom.matches("data-kind=\"text\"").count(), 1, "{dom}");
    assert_eq!(dom.matches("class=\"button ").count(), 2, "{dom}");
    assert!(
        dom.contains("https://sakura-dental.example.jp/img/reminder.jpg"),
        "the image is a box with its URL: {dom}"
    );
    assert!(
        dom.contains("ロック画面に患者の doctor、name が表示されます"),
        "{dom}"
    );
    assert_eq!(external_references(&dom), Vec::<String>::new());
    let dom = load_cleanly(chromium, &dir.path().join("p2.html"));
    assert!(!dom.contains("<script") && !dom.contains("<img"), "{dom}");
    assert!(dom.contains("data-kind=\"flex\""), "{dom}");
    assert!(dom.contains("ご来院ありがとうございました"), "{dom}");
    assert!(dom.contains("さくら歯科からのお知らせです"), "{dom}");
}

#[test]
fn a_promo_step_is_previewed_only_for_a_patient_who_consented() {
    // The same gate as plan, run and explain: C3's consent cell says no.
    let dir = fixtures().join("plan");
    let args = |patient| {
        [
            "preview",
            "consent.step",
            "--patients",
            "consent.csv",
            "--now",
            "2026-11-30 10:00",
            "--patient",
            patient,
            "--step",
            "newsletter",
        ]
    };
    let refused = steprule(&dir, &args("C3"));
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    assert!(
        refused.stdout.contains(
            "promo step: not sent, no marketing consent (consent field `marketing_ok` says no)"
        ),
        "{}",
        refused.stdout
    );
    let consented = steprule(&dir, &args("C1"));
    assert_eq!(consented.code, 0, "{}", consented.stderr);
    assert!(
        consented.stdout.contains("── step newsletter"),
        "{}",
        consented.stdout
    );
}
