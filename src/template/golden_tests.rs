//! Every template the repository has (rules/templates and the tests' fixtures), rendered for
//! odd patients as a run renders them: the snapshots were taken before rendering was made
//! cheaper (a lazy context, literal fields, the outbox's JSON written by hand), so a change
//! of a single byte in what a patient receives fails here.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};

use super::{environment, patient_context, precompile, Template, TemplateStore};
use crate::records::{OtherColumns, PatientRecord, RecordSchema};

fn schema() -> RecordSchema {
    RecordSchema {
        timezone: chrono_tz::Asia::Tokyo,
        stages: ["booked", "first_visit", "follow_up", "regular"]
            .map(String::from)
            .into(),
        date_fields: [
            "appointment_at",
            "visited_at",
            "last_visit_at",
            "next_booking_at",
            "cancelled_at",
        ]
        .map(String::from)
        .into(),
        fields: ["doctor", "department", "homepage"]
            .map(String::from)
            .into(),
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
}

fn other(columns: &[(&str, &str)]) -> OtherColumns {
    let mut other = OtherColumns::new();
    for (name, value) in columns {
        other.insert((*name).to_owned(), (*value).to_owned());
    }
    other
}

/// An ordinary patient, one with nothing but an id, one whose every value is odd (quotes,
/// control characters, emoji, U+2028, template syntax, columns named as built-in fields) and
/// one whose name is longer than LINE takes.
fn patients() -> Vec<(&'static str, PatientRecord)> {
    let at = |d, h| Some(Utc.with_ymd_and_hms(2026, 11, d, h, 30, 0).unwrap());
    let ordinary = PatientRecord {
        id: "P001".into(),
        line_user_id: Some("U0001".into()),
        name: Some("山田 花子".into()),
        stage: Some(1),
        stage_entered_at: at(20, 1),
        birth_date: chrono::NaiveDate::from_ymd_opt(1958, 2, 28),
        tags: vec!["chronic".into(), "vip".into()],
        dates: vec![at(26, 1), at(20, 2), at(1, 3), None, None],
        fields: vec![Some("佐藤".into()), Some("内科".into()), None],
        other: other(&[("phone", "0312345678"), ("page", "news")]),
        line: 2,
        ..PatientRecord::default()
    };
    let bare = PatientRecord {
        id: "P002".into(),
        line_user_id: Some("U0002".into()),
        dates: vec![None; 5],
        fields: vec![None; 3],
        line: 3,
        ..PatientRecord::default()
    };
    let odd_text =
        "\"引用\" \\ {{ name }} {% if x %}😀\u{2028}\u{2029}\u{1}\u{7f}\t<b>&amp;</b>\r\n";
    let odd = PatientRecord {
        id: "P\"003\u{1}".into(),
        line_user_id: Some("U0003".into()),
        name: None,
        stage: Some(0),
        birth_date: chrono::NaiveDate::from_ymd_opt(2000, 2, 29),
        tags: vec![odd_text.into(), String::new()],
        dates: vec![at(26, 23), None, None, at(30, 0), at(25, 5)],
        fields: vec![Some(odd_text.into()), None, Some("/@evil.example".into())],
        other: other(&[
            ("name", "列の名前 👩‍⚕️"),
            ("clinic", "偽クリニック"),
            ("department", "列の診療科"),
            ("doctor", "列の医師"),
            ("banner", odd_text),
            ("phone", "{{ 7 * 7 }}"),
        ]),
        line: 4,
        ..PatientRecord::default()
    };
    let long = PatientRecord {
        id: "P004".into(),
        line_user_id: Some("U0004".into()),
        name: Some("花".repeat(6000)),
        dates: vec![at(26, 1), None, None, None, None],
        fields: vec![Some("医".repeat(300)), None, None],
        line: 5,
        ..PatientRecord::default()
    };
    vec![
        ("ordinary", ordinary),
        ("bare", bare),
        ("odd", odd),
        ("long", long),
    ]
}

/// Every template that loads in `dir`, by name.
fn templates(dir: &Path) -> Vec<Template> {
    let mut store = TemplateStore::new(dir);
    let names = store.available();
    names
        .iter()
        .filter_map(|name| store.get(name).ok())
        .map(|template| (*template).clone())
        .collect()
}

fn template_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("rules/templates")];
    let mut pending = vec![root.join("tests/fixtures")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.file_name().is_some_and(|n| n == "templates") {
                dirs.push(path);
            } else {
                pending.push(path);
            }
        }
    }
    dirs[1..].sort();
    dirs
}

/// What a patient receives from `template`, as the outbox's line holds it, or why not.
fn outcome(rendered: Result<Vec<crate::line::Message>, super::RenderError>) -> String {
    match rendered {
        Ok(messages) => serde_json::to_string(&messages).unwrap(),
        Err(error) => format!("error: {error}"),
    }
}

/// Each template of `dirs` for each patient: the run's way (precompiled) and `check`'s
/// (compiled as rendered) must agree; the line is what they came to.
fn rendered_lines(dirs: &[PathBuf]) -> Vec<(String, String)> {
    let schema = schema();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let patients = patients();
    let mut lines = Vec::new();
    for dir in dirs {
        let templates = templates(dir);
        let mut precompiled = environment(schema.timezone);
        for template in &templates {
            precompile(&mut precompiled, template);
        }
        let plain = environment(schema.timezone);
        let place = dir.strip_prefix(root).unwrap().display().to_string();
        for (who, patient) in &patients {
            let context = patient_context(patient, &schema, Some("さくら内科クリニック"), now());
            for template in &templates {
                let run = outcome(template.messages(&precompiled, &context, None));
                let check = outcome(template.messages(&plain, &context, None));
                assert_eq!(run, check, "{place}/{} for {who}", template.name);
                lines.push((format!("{place}/{} {who}", template.name), run));
            }
        }
    }
    lines
}

/// FNV-1a: a digest that stays the same from one Rust release to the next.
fn digest(text: &str) -> String {
    let hash = (text.bytes()).fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x} {}", text.len())
}

#[test]
fn the_clinics_templates_render_for_odd_patients_as_they_always_did() {
    let dirs = &template_dirs()[..1];
    let text: String = (rendered_lines(dirs).into_iter())
        .map(|(what, line)| format!("{what}\n{line}\n\n"))
        .collect();
    insta::assert_snapshot!(text);
}

#[test]
fn every_fixtures_template_renders_for_odd_patients_as_it_always_did() {
    let dirs = template_dirs();
    let text: String = (rendered_lines(&dirs).into_iter())
        .map(|(what, line)| format!("{what} {}\n", digest(&line)))
        .collect();
    insta::assert_snapshot!(text);
}
