//! A patient as templates see them: `{{ name }}`, `{{ appointment_at | date("%m月%d日") }}`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use minijinja::Value;

use crate::fields::{Field, FieldRef, FieldValue};
use crate::plan::TimingPlan;
use crate::records::PatientRecord;

/// The template variables for one patient; dates in the clinic's time zone (RFC 3339), empty
/// columns left out so `{% if doctor %}` works. Built-in fields come from
/// [`PatientRecord::value`], as the rhai map does, and win over any other column.
pub fn patient_context(patient: &PatientRecord, plan: &TimingPlan, now: DateTime<Utc>) -> Value {
    let schema = &plan.schema;
    let tz = plan.timezone;
    let mut vars: BTreeMap<&str, Value> = BTreeMap::new();
    for (name, value) in &patient.other {
        vars.insert(name, Value::from(value.as_str()));
    }
    let builtins = Field::ALL
        .into_iter()
        .filter(|field| field.in_templates())
        .map(|field| (field.name(), FieldRef::Builtin(field)));
    let dates = (schema.date_fields.iter().map(String::as_str)).zip((0..).map(FieldRef::Date));
    let fields = (schema.fields.iter().map(String::as_str)).zip((0..).map(FieldRef::Declared));
    for (name, field) in fields.chain(dates).chain(builtins) {
        let value = match patient.value(field, schema, now) {
            FieldValue::Empty => continue,
            FieldValue::Text(text) => Value::from(text),
            FieldValue::Number(n) => Value::from(n),
            FieldValue::Instant(at) => Value::from(at.with_timezone(&tz).to_rfc3339()),
            FieldValue::Day(day) => Value::from(day.to_string()),
            FieldValue::List(items) => Value::from(items.to_vec()),
            FieldValue::Flag(flag) => Value::from(flag),
        };
        vars.insert(name, value);
    }
    if let Some(clinic) = &plan.clinic {
        vars.insert("clinic", Value::from(clinic.as_str()));
    }
    Value::from_serialize(&vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check_file;
    use crate::eval::patient_map;
    use crate::records::{read_from, ReadOptions, RecordFormat};
    use crate::source::SourceFile;
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
        let template_age = patient_context(first, &plan, now)
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
}
