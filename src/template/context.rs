//! A patient as templates see them: `{{ name }}`, `{{ appointment_at | date("%m月%d日") }}`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use minijinja::Value;

use crate::fields::{Field, FieldRef, FieldValue};
use crate::records::{PatientRecord, RecordSchema};

/// The template variables for one patient of `clinic`; dates in the clinic's time zone
/// (RFC 3339), empty columns left out so `{% if doctor %}` works. Built-in fields come from
/// [`PatientRecord::value`], as the rhai map does, and win over any other column.
pub fn patient_context(
    patient: &PatientRecord,
    schema: &RecordSchema,
    clinic: Option<&str>,
    now: DateTime<Utc>,
) -> Value {
    let tz = schema.timezone;
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
    if let Some(clinic) = clinic {
        vars.insert("clinic", Value::from(clinic));
    }
    Value::from_serialize(&vars)
}
