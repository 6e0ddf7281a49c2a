//! Running rhai conditions for one patient. The patient map is built once per patient and
//! only when the plan has scripts; `now` is set per evaluation instant.

use chrono::{DateTime, Utc};
use rhai::{Dynamic, Map, Scope, AST};

use super::test::{age_on, ScriptFailure};
use crate::check::ScriptEngine;
use crate::plan::TimingPlan;
use crate::records::PatientRecord;

pub(super) struct ScriptRuntime {
    engine: ScriptEngine,
    /// The patient the scope was built for, by id, to rebuild only when it changes.
    built_for: Option<String>,
    scope: Scope<'static>,
}

impl ScriptRuntime {
    pub(super) fn new() -> Self {
        ScriptRuntime {
            engine: ScriptEngine::new(),
            built_for: None,
            scope: Scope::new(),
        }
    }

    pub(super) fn eval(
        &mut self,
        ast: &AST,
        patient: &PatientRecord,
        plan: &TimingPlan,
        at: DateTime<Utc>,
    ) -> Result<bool, ScriptFailure> {
        if self.built_for.as_deref() != Some(patient.id.as_str()) {
            self.scope = Scope::new();
            self.scope.push("patient", patient_map(patient, plan, at));
            self.scope.push("now", at.timestamp());
            self.built_for = Some(patient.id.clone());
        }
        self.scope.set_value("now", at.timestamp());
        let result: Dynamic = self
            .engine
            .engine()
            .eval_ast_with_scope(&mut self.scope, ast)
            .map_err(|err| ScriptFailure(err.to_string()))?;
        result.as_bool().map_err(|kind| {
            ScriptFailure(format!(
                "the rhai condition gave a {kind}, not true or false"
            ))
        })
    }
}

/// The patient as rhai sees it: `patient.age`, `patient.tags`, dates as seconds since 1970.
pub fn patient_map(patient: &PatientRecord, plan: &TimingPlan, at: DateTime<Utc>) -> Map {
    let mut map = Map::new();
    let mut put = |key: &str, value: Dynamic| {
        map.insert(key.into(), value);
    };
    let text = |value: &Option<String>| value.clone().map_or(Dynamic::UNIT, Dynamic::from);
    let instant = |value: Option<DateTime<Utc>>| {
        value.map_or(Dynamic::UNIT, |i| Dynamic::from(i.timestamp()))
    };
    put("id", Dynamic::from(patient.id.clone()));
    put("name", text(&patient.name));
    put("line_user_id", text(&patient.line_user_id));
    put(
        "stage",
        patient.stage.map_or(Dynamic::UNIT, |s| {
            Dynamic::from(plan.schema.stages[s].clone())
        }),
    );
    put("stage_entered_at", instant(patient.stage_entered_at));
    put(
        "birth_date",
        patient
            .birth_date
            .map_or(Dynamic::UNIT, |d| Dynamic::from(d.to_string())),
    );
    let tz = plan.timezone;
    let age = patient
        .birth_date
        .map(|birth| age_on(birth, at.with_timezone(&tz).date_naive()));
    put("age", age.map_or(Dynamic::UNIT, Dynamic::from));
    put(
        "tags",
        Dynamic::from(
            patient
                .tags
                .iter()
                .cloned()
                .map(Dynamic::from)
                .collect::<rhai::Array>(),
        ),
    );
    put("opted_out", Dynamic::from(patient.opted_out));
    for (name, value) in plan.schema.date_fields.iter().zip(&patient.dates) {
        put(name, instant(*value));
    }
    for (name, value) in plan.schema.fields.iter().zip(&patient.fields) {
        put(name, text(value));
    }
    for (name, value) in &patient.other {
        put(name, Dynamic::from(value.clone()));
    }
    map
}
