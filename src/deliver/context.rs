//! A patient as templates see them: `{{ name }}`, `{{ appointment_at | date("%m月%d日") }}`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use minijinja::Value;

use crate::plan::TimingPlan;
use crate::records::PatientRecord;

/// The template variables for one patient; dates in the clinic's time zone (RFC 3339), empty
/// columns left out so `{% if doctor %}` works.
pub fn patient_context(patient: &PatientRecord, plan: &TimingPlan, now: DateTime<Utc>) -> Value {
    let tz = plan.timezone;
    let mut vars: BTreeMap<&str, Value> = BTreeMap::new();
    let instant = |at: DateTime<Utc>| Value::from(at.with_timezone(&tz).to_rfc3339());
    for (name, value) in &patient.other {
        vars.insert(name, Value::from(value.as_str()));
    }
    for (name, value) in plan.schema.fields.iter().zip(&patient.fields) {
        if let Some(value) = value {
            vars.insert(name, Value::from(value.as_str()));
        }
    }
    for (name, value) in plan.schema.date_fields.iter().zip(&patient.dates) {
        if let Some(at) = value {
            vars.insert(name, instant(*at));
        }
    }
    vars.insert("id", Value::from(patient.id.as_str()));
    if let Some(name) = &patient.name {
        vars.insert("name", Value::from(name.as_str()));
    }
    if let Some(stage) = patient.stage {
        vars.insert("stage", Value::from(plan.schema.stages[stage].as_str()));
    }
    if let Some(at) = patient.stage_entered_at {
        vars.insert("stage_entered_at", instant(at));
    }
    if let Some(birth) = patient.birth_date {
        vars.insert("birth_date", Value::from(birth.to_string()));
        let today = now.with_timezone(&tz).date_naive();
        let mut age = chrono::Datelike::year(&today) - chrono::Datelike::year(&birth);
        if (
            chrono::Datelike::month(&today),
            chrono::Datelike::day(&today),
        ) < (
            chrono::Datelike::month(&birth),
            chrono::Datelike::day(&birth),
        ) {
            age -= 1;
        }
        vars.insert("age", Value::from(age));
    }
    vars.insert("tags", Value::from(patient.tags.clone()));
    if let Some(clinic) = &plan.clinic {
        vars.insert("clinic", Value::from(clinic.as_str()));
    }
    Value::from_serialize(&vars)
}
