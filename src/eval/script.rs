//! Running rhai conditions for one patient. The patient map is built once per patient and
//! only when the plan has scripts; `now` is set per evaluation instant.

use chrono::{DateTime, Utc};
use rhai::{Dynamic, EvalAltResult, Map, Scope, AST};

use super::test::ScriptFailure;
use crate::fields::{Field, FieldRef, FieldValue};
use crate::plan::TimingPlan;
use crate::records::PatientRecord;
use crate::scripts::{ScriptEngine, MAX_COLLECTION_SIZE, MAX_OPERATIONS, MAX_STRING_SIZE};

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

    /// Runs the condition `ast`, written as `written` in the rules (to name the empty field
    /// when the script fails on one).
    pub(super) fn eval(
        &mut self,
        ast: &AST,
        written: &str,
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
            .map_err(|err| {
                let mut message = describe_failure(&err);
                if on_empty(&err) {
                    let patient = self.scope.get_value::<Map>("patient").unwrap_or_default();
                    message.push_str(&empty_field_help(written, &patient));
                }
                ScriptFailure(message)
            })?;
        result.as_bool().map_err(|kind| {
            ScriptFailure(format!(
                "the rhai condition gave a {kind}, not true or false"
            ))
        })
    }
}

/// What went wrong in a script, and where in it, without the values involved: rhai's own
/// messages quote them (`Error parsing integer number '山田 花子'`), and they are patient data.
pub(super) fn describe_failure(error: &EvalAltResult) -> String {
    use EvalAltResult as E;
    let what = match error {
        // The function's name is the script's; the error inside it is what happened.
        E::ErrorInFunctionCall(_, _, inner, _) => return describe_failure(inner),
        E::ErrorArithmetic(message, _) => arithmetic(message).to_owned(),
        E::ErrorVariableNotFound(name, _) => format!("unknown variable `{name}`"),
        E::ErrorPropertyNotFound(name, _) => format!("no property `{name}`"),
        E::ErrorFunctionNotFound(signature, _) => format!("no function {signature}"),
        E::ErrorMismatchDataType(wanted, got, _) | E::ErrorMismatchOutputType(wanted, got, _) => {
            format!("expected {wanted}, got {got}")
        }
        E::ErrorIndexingType(kind, _) => format!("cannot index into {kind}"),
        E::ErrorIndexNotFound(..) => "no such index".to_owned(),
        E::ErrorArrayBounds(..) | E::ErrorStringBounds(..) | E::ErrorBitFieldBounds(..) => {
            "index out of bounds".to_owned()
        }
        E::ErrorDotExpr(..) => "a property on a value that has none".to_owned(),
        E::ErrorFor(..) => "`for` over a value that is not a list".to_owned(),
        E::ErrorTooManyOperations(..) => {
            format!("more than {MAX_OPERATIONS} operations")
        }
        E::ErrorStackOverflow(..) | E::ErrorTooManyVariables(..) => "nested too deeply".to_owned(),
        E::ErrorDataTooLarge(what, _) => format!(
            "{} too large (strings up to {MAX_STRING_SIZE} bytes, lists and maps up to \
             {MAX_COLLECTION_SIZE} items)",
            what.to_lowercase()
        ),
        E::ErrorRuntime(..) | E::ErrorTerminated(..) => "the script threw an error".to_owned(),
        _ => "the script failed".to_owned(),
    };
    let position = error.position();
    match (position.line(), position.position()) {
        (Some(line), Some(column)) => format!("{what} (line {line}, column {column})"),
        (Some(line), None) => format!("{what} (line {line})"),
        _ => what,
    }
}

/// Whether the failure is an operation on rhai's `()`, which an empty cell becomes:
/// `parse_int(())`, `() > 3`, `().len()`.
fn on_empty(error: &EvalAltResult) -> bool {
    use EvalAltResult as E;
    match error {
        E::ErrorInFunctionCall(_, _, inner, _) => on_empty(inner),
        E::ErrorFunctionNotFound(signature, _) => signature.contains("()"),
        E::ErrorMismatchDataType(_, got, _) | E::ErrorMismatchOutputType(_, got, _) => got == "()",
        E::ErrorIndexingType(kind, _) => kind == "()",
        E::ErrorDotExpr(..) => true,
        _ => false,
    }
}

/// The help for a script that failed on an empty cell: which `patient.FIELD` it reads is
/// empty for this patient (by name, never a value), and how to give it a value.
fn empty_field_help(written: &str, patient: &Map) -> String {
    // A column the export leaves empty is `()`; one it does not have (or a misspelt name)
    // reads as `()` too.
    let empty = patient_fields(written).find_map(|name| match patient.get(name) {
        Some(value) if value.is_unit() => Some((name, "")),
        Some(_) => None,
        None => Some((name, " (or not a column of the export)")),
    });
    match empty {
        Some((name, absent)) => format!(
            "; patient.{name} is empty for this patient{absent} (rhai's `()`): give it a value \
             when empty, `(patient.{name} ?? 0)`, or read it as a number with \
             `num(patient.{name}, 0)`"
        ),
        None => "; a field it reads is empty for this patient (rhai's `()`): give it a value \
                 when empty, `(patient.FIELD ?? 0)`, or read it as a number with \
                 `num(patient.FIELD, 0)`"
            .to_owned(),
    }
}

/// The field names the script reads as `patient.NAME`, in order.
fn patient_fields(written: &str) -> impl Iterator<Item = &str> {
    written
        .match_indices("patient.")
        .filter_map(|(at, prefix)| {
            let rest = &written[at + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (end > 0).then(|| &rest[..end])
        })
}

/// rhai's arithmetic messages name the operands; only their kind is kept.
fn arithmetic(message: &str) -> &'static str {
    if message.starts_with("Error parsing integer") {
        "cannot parse an integer"
    } else if message.starts_with("Error parsing") {
        "cannot parse a number"
    } else if message.contains("zero") {
        "division by zero"
    } else if message.contains("overflow") {
        "number overflow"
    } else {
        "arithmetic error"
    }
}

/// The patient as rhai sees it: `patient.age`, `patient.tags`, dates as seconds since 1970.
/// Built-in fields come from [`PatientRecord::value`], as the template context does; a column
/// named like a built-in never reaches `other` (records warns about it), so the two agree.
pub fn patient_map(patient: &PatientRecord, plan: &TimingPlan, at: DateTime<Utc>) -> Map {
    let schema = &plan.schema;
    let mut map = Map::new();
    let builtins = Field::ALL
        .into_iter()
        .filter(|field| field.is_variable())
        .map(|field| (field.name(), FieldRef::Builtin(field)));
    let dates = (schema.date_fields.iter().map(String::as_str)).zip((0..).map(FieldRef::Date));
    let fields = (schema.fields.iter().map(String::as_str)).zip((0..).map(FieldRef::Declared));
    for (name, field) in builtins.chain(dates).chain(fields) {
        map.insert(name.into(), dynamic(patient.value(field, schema, at)));
    }
    for (name, value) in &patient.other {
        map.insert(name.into(), Dynamic::from(value.clone()));
    }
    map
}

fn dynamic(value: FieldValue<'_>) -> Dynamic {
    match value {
        FieldValue::Empty => Dynamic::UNIT,
        FieldValue::Text(text) => Dynamic::from(text.to_owned()),
        FieldValue::Number(n) => Dynamic::from(n),
        FieldValue::Instant(at) => Dynamic::from(at.timestamp()),
        FieldValue::Day(day) => Dynamic::from(day.to_string()),
        FieldValue::List(items) => Dynamic::from(
            items
                .iter()
                .cloned()
                .map(Dynamic::from)
                .collect::<rhai::Array>(),
        ),
        FieldValue::Flag(flag) => Dynamic::from(flag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_names_the_empty_field_the_script_reads() {
        let mut patient = Map::new();
        patient.insert("name".into(), "山田 花子".into());
        patient.insert("visits".into(), Dynamic::UNIT);
        let help = empty_field_help(
            "rhai { patient.name != \"\" && parse_int(patient.visits) > 3 }",
            &patient,
        );
        assert!(
            help.contains("patient.visits is empty for this patient (rhai's `()`)"),
            "{help}"
        );
        assert!(help.contains("`(patient.visits ?? 0)`"), "{help}");
        assert!(help.contains("`num(patient.visits, 0)`"), "{help}");
        // Values never appear, only names.
        assert!(!help.contains("山田"), "{help}");
        let absent = empty_field_help("rhai { parse_int(patient.vists) > 3 }", &patient);
        assert!(
            absent.contains("patient.vists is empty for this patient (or not a column"),
            "{absent}"
        );
    }

    #[test]
    fn only_failures_on_an_empty_value_get_the_help() {
        let engine = ScriptEngine::new();
        let run = |code: &str| {
            let ast = engine.compile(code).unwrap().ast;
            let mut scope = Scope::new();
            let mut patient = Map::new();
            patient.insert("visits".into(), Dynamic::UNIT);
            patient.insert("name".into(), "x".into());
            scope.push("patient", patient);
            scope.push("now", 0_i64);
            *engine
                .engine()
                .eval_ast_with_scope::<Dynamic>(&mut scope, &ast)
                .unwrap_err()
        };
        assert!(on_empty(&run("parse_int(patient.visits) > 3")));
        assert!(on_empty(&run("patient.visits + 1 > 3")));
        assert!(!on_empty(&run("parse_int(patient.name) > 3")));
        assert!(!on_empty(&run("1 / 0 == 0")));
    }
}
