//! `steprule review`: the sheet for the sample clinic in `rules/` and for the hand-made one in
//! tests/fixtures/review (steps written out of stage order, an A/B step, an advertising warning
//! and an allowance, hostile text in a template, a step's comment and a patient cell), checked
//! as text and in headless Chromium; rules with errors still give a sheet, with exit 1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "support/browser.rs"]
mod browser;
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use browser::{chromium, external_references, load_cleanly};
use common::{fixtures, steprule, Run};

const NOW: &str = "2026-11-25 09:00";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `steprule review RULES --patients PATIENTS --now NOW --out OUT ARGS` in `dir`; the run and
/// the sheet.
fn review(dir: &Path, rules: &Path, patients: &Path, args: &[&str]) -> (Run, String) {
    let out = dir.join("review.html");
    let _ = std::fs::remove_file(&out);
    let base = [
        "review",
        rules.to_str().unwrap(),
        "--patients",
        patients.to_str().unwrap(),
        "--now",
        NOW,
        "--out",
        out.to_str().unwrap(),
    ];
    let run = steprule(dir, &[&base[..], args].concat());
    let sheet = std::fs::read_to_string(&out).unwrap_or_default();
    (run, sheet)
}

fn fixture(name: &str) -> PathBuf {
    fixtures().join("review").join(name)
}

/// The `data-step` ids of the sheet, in page order.
fn step_ids(html: &str) -> Vec<String> {
    html.split("data-step=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_sample_rules_give_a_sheet_that_loads_cleanly_with_every_step_in_stage_order() {
    let dir = tempfile::tempdir().unwrap();
    let rules = root().join("rules/clinic.step");
    let (run, sheet) = review(dir.path(), &rules, &root().join("rules/patients.csv"), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "", "--out writes the file, not stdout");
    let mode = std::fs::metadata(dir.path().join("review.html"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the sheet holds patient data");
    // The `stages` order (booked, first_visit, follow_up, regular), file order within each;
    // a step naming several stages goes with the first (`year_end_closure` with booked,
    // `next_visit_reminder` with first_visit, `birthday` with follow_up).
    let expected = [
        "booking_confirm",
        "what_to_bring",
        "visit_reminder",
        "year_end_closure",
        "thanks",
        "care_notes",
        "survey",
        "survey_again",
        "next_booking",
        "next_visit_reminder",
        "lifestyle_tips",
        "checkup",
        "checkup_nudge",
        "birthday",
        "health_news",
        "flu_vaccine",
        "annual_checkup",
        "stay_in_touch",
    ];
    let ids = step_ids(&sheet);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(ids, expected);
    // Every message has its lock-screen mark: one per template sent (checkup is A/B).
    let templates = ids.len() + 1;
    assert_eq!(
        sheet.matches("data-kind=\"notification\"").count(),
        templates,
        "{sheet}"
    );
    assert!(sheet.contains("<span class=\"mark\">通知に表示される部分</span>"));
    // The step's own allowance, with the comment that gives its reason.
    assert!(sheet.contains("data-allow=\"reaction-never-recorded\""));
    assert!(sheet.contains("確認者の氏名") && sheet.contains("適法であることを意味しません"));
    assert!(
        external_references(&sheet).is_empty(),
        "{:?}",
        external_references(&sheet)
    );
    assert!(!sheet.contains("<script"));
    let Some(chromium) = chromium() else { return };
    let dom = load_cleanly(chromium, &dir.path().join("review.html"));
    assert!(dom.contains("配信内容の確認シート"), "{dom}");
    assert_eq!(step_ids(&dom).len(), ids.len());
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (rules, patients) = (fixture("clinic.step"), fixture("patients.csv"));
    let (first, one) = review(dir.path(), &rules, &patients, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let (_, two) = review(dir.path(), &rules, &patients, &[]);
    assert_eq!(one, two);
    assert!(one.contains("2026年11月25日"), "the date of --now");
    // Without --now, SOURCE_DATE_EPOCH gives the date (the same instant as --now).
    let out = dir.path().join("epoch.html");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_steprule"))
        .args(["review", rules.to_str().unwrap(), "--patients"])
        .arg(&patients)
        .arg("--out")
        .arg(&out)
        .env("SOURCE_DATE_EPOCH", "1795564800")
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), one);
}

#[test]
fn steps_samples_findings_and_allowances_of_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let (run, sheet) = review(
        dir.path(),
        &fixture("clinic.step"),
        &fixture("patients.csv"),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(step_ids(&sheet), ["reminder", "thanks", "news", "senior"]);
    assert!(sheet.contains("ステージ：booked") && sheet.contains("ステージの指定がないステップ"));
    // Timing in words, with the rule as written.
    assert!(sheet.contains("appointment_at の1日前 18:00"), "{sheet}");
    assert!(sheet.contains("ステージに入ってから30日ごと 12:00"));
    assert!(sheet.contains("送れなかった場合は2日以内に限る"));
    // Samples: by row and id; thanks needs a doctor, which the row-4 patient lacks.
    assert!(sheet.contains("3行目・ID P2（このステップのステージと条件に合う最初の患者）"));
    assert!(sheet.contains("5行目・ID P4（このステップのステージと条件に合う最初の患者）"));
    assert!(
        sheet.contains("2行目・ID P1（ファイルの最初の患者"),
        "{sheet}"
    );
    // What each step is for: the repeating newsletter waits for marketing consent.
    let news = &sheet[sheet.find("data-step=\"news\"").unwrap()..];
    assert!(news.contains("販促（promo・タイミングから判断）：配信に同意した患者にだけ送る"));
    let reminder = &sheet[sheet.find("data-step=\"reminder\"").unwrap()..];
    assert!(reminder.contains("診療のご案内（care・タイミングから判断）"));
    // Both arms, with their shares.
    assert_eq!(sheet.matches("A/B：50%").count(), 2);
    // The exaggeration warning and the allowance with its reason, under the step.
    let thanks = &sheet[sheet.find("data-step=\"thanks\"").unwrap()..];
    let thanks = &thanks[..thanks.find("data-step=\"news\"").unwrap()];
    assert!(
        thanks.contains("data-code=\"steprule::ad-exaggeration\""),
        "{thanks}"
    );
    assert!(thanks.contains("templates/thanks_a.toml:"), "{thanks}");
    assert!(thanks.contains("data-allow=\"ad-superiority\""), "{thanks}");
    assert!(thanks.contains("県の夜間診療一覧で確認（2026-11、院長 田中）&lt;b&gt;"));
    assert!(sheet.contains("エラー <b class=\"\" data-count=\"errors\">0</b> 件"));
}

#[test]
fn hostile_text_from_a_template_a_comment_and_a_patient_cell_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let (run, sheet) = review(
        dir.path(),
        &fixture("clinic.step"),
        &fixture("patients.csv"),
        &["--patient", "P1"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!sheet.contains("<script"), "{sheet}");
    for escaped in [
        "&lt;script&gt;alert(&quot;comment&quot;)&lt;/script&gt;",
        "&lt;script&gt;alert(&quot;template&quot;)&lt;/script&gt;",
        "&lt;script&gt;alert(&quot;cell&quot;)&lt;/script&gt;",
    ] {
        assert!(sheet.contains(escaped), "{escaped} in {sheet}");
    }
    assert!(sheet.contains("2行目・ID P1（指定された患者）"));
    let Some(chromium) = chromium() else { return };
    let dom = load_cleanly(chromium, &dir.path().join("review.html"));
    assert!(!dom.contains("<script"));
}

#[test]
fn a_broken_patient_row_still_gives_a_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let (run, sheet) = review(
        dir.path(),
        &fixture("clinic.step"),
        &fixture("patients_broken.csv"),
        &[],
    );
    assert_eq!(
        run.code, 3,
        "rows skipped, as other commands: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("patients_broken.csv:3"),
        "{}",
        run.stderr
    );
    assert_eq!(step_ids(&sheet), ["reminder", "thanks", "news", "senior"]);
    assert!(sheet.contains("患者ファイルの 1 行は読めなかったため"));
    // No booked patient is left: the reminder falls back to the first patient.
    assert!(sheet.contains("2行目・ID P1（ファイルの最初の患者"));
}

#[test]
fn an_unknown_patient_is_a_clear_error_and_no_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let (run, sheet) = review(
        dir.path(),
        &fixture("clinic.step"),
        &fixture("patients.csv"),
        &["--patient", "P9"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("no patient with id `P9`"),
        "{}",
        run.stderr
    );
    assert_eq!(sheet, "");
}

#[test]
fn rules_with_errors_give_a_sheet_with_every_step_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let errors = fixture("errors");
    let (run, sheet) = review(
        dir.path(),
        &errors.join("clinic.step"),
        &errors.join("patients.csv"),
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("steprule::ad-superiority"),
        "{}",
        run.stderr
    );
    assert_eq!(step_ids(&sheet), ["reminder", "thanks"]);
    assert!(sheet.contains("data-code=\"steprule::ad-superiority\""));
    assert!(
        sheet.contains("当院は地域で日本一の実績です。"),
        "rendered all the same"
    );
    assert!(sheet.contains("エラー <b class=\"error\" data-count=\"errors\">1</b> 件"));
    assert!(sheet.contains("ルールにエラーが 1 件あります"));
    // Conditions are not evaluated on rules with errors: the stage picks the sample.
    assert!(
        sheet.contains("3行目・ID P2（このステップのステージの最初の患者"),
        "{sheet}"
    );
    // A template no step sends: its finding is in the section of findings tied to no step.
    let rest = &sheet[sheet.find("class=\"file-findings\"").unwrap()..];
    assert!(
        rest.contains("data-code=\"steprule::unused-template\""),
        "{rest}"
    );
}

#[test]
fn unreadable_rules_give_checks_error_and_no_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let (run, sheet) = review(
        dir.path(),
        &dir.path().join("missing.step"),
        &fixture("patients.csv"),
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("cannot read"), "{}", run.stderr);
    assert_eq!(sheet, "");
    assert!(!dir.path().join("review.html").exists());
}
