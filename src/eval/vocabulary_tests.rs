//! Conditions (the rhai map) and templates (the context) see a patient the same way.

use crate::check::check_file;
use crate::eval::patient_map;
use crate::fields::Field;
use crate::plan::TimingPlan;
use crate::records::{read_from, ReadOptions, RecordFormat};
use crate::source::SourceFile;
use crate::template::patient_context;
use crate::template::TemplateStore;

fn plan() -> TimingPlan {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), "text = \"x\"").unwrap();
    let rules = "stages regular\nstep s: when stage=regular after 1d send a\n";
    let outcome = check_file(
        &SourceFile::new("t.step", rules),
        &mut TemplateStore::new(dir.path()),
    );
    TimingPlan::compile(&outcome.rules.expect("no errors"))
}

/// A column named like a computed built-in (`age`) is ignored with one warning per file,
/// so rhai and templates both see the age computed from `birth_date`. Before, rhai saw the
/// column and templates the computed age.
#[test]
fn a_column_named_like_a_computed_builtin_is_ignored_everywhere_with_one_warning() {
    let plan = plan();
    let csv = "id,birth_date,age,tag\nP1,1980-06-01,99,x\nP2,1990-06-01,98,y\n";
    let mut records = read_from(
        std::io::Cursor::new(csv.as_bytes().to_vec()),
        "p.csv",
        RecordFormat::Csv,
        &plan.schema,
        &ReadOptions::default(),
    )
    .unwrap();
    let notices = records.take_notices();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(
        notices[0].contains("column `age` is ignored"),
        "{notices:?}"
    );
    assert!(
        notices[1].contains("column `tag` is ignored"),
        "{notices:?}"
    );
    let now = "2026-11-25T00:00:00Z".parse().unwrap();
    let patients: Vec<_> = records.by_ref().map(Result::unwrap).collect();
    assert!(
        records.take_notices().is_empty(),
        "each column is reported once"
    );
    let first = &patients[0];
    assert!(first.other.is_empty(), "{:?}", first.other);
    let rhai_age = patient_map(first, &plan, now)[Field::Age.name()]
        .as_int()
        .unwrap();
    let template_age = patient_context(first, &plan.schema, plan.clinic.as_deref(), now)
        .get_attr(Field::Age.name())
        .unwrap()
        .as_i64()
        .unwrap();
    assert_eq!((rhai_age, template_age), (46, 46));
    let rhai_tags = patient_map(first, &plan, now)[Field::Tags.name()]
        .clone()
        .into_array()
        .unwrap();
    assert!(rhai_tags.is_empty());
}
