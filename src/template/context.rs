//! A patient as templates see them: `{{ name }}`, `{{ appointment_at | date("%m月%d日") }}`.
//!
//! The context answers each name a template asks for when it asks (a minijinja object over
//! the patient's record), instead of a map of every field built for every send: on a first
//! run that map (each date formatted, then the map converted) cost about as much as a fifth
//! of the rendering. What a name comes to is as the map had it.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use minijinja::value::{Enumerator, Object, ObjectRepr};
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
    Variables::new(schema, clinic).of(Arc::new(patient.clone()), now)
}

/// The names templates may use for the patients of one set of rules, each with the fields it
/// may come from: made once, then [`Variables::of`] gives a patient's context.
#[derive(Clone)]
pub struct Variables(Arc<Names>);

struct Names {
    schema: RecordSchema,
    clinic: Option<Value>,
    /// Each name and its fields, first the one that wins; a name whose fields are all empty
    /// is the patient's column of that name, if they have one. Sorted by name.
    fields: Vec<(String, Vec<FieldRef>)>,
}

impl Variables {
    /// A later field of the same name wins over an earlier one, an empty one over none: dates
    /// over declared fields, built-in fields over both, and `clinic` over everything.
    pub fn new(schema: &RecordSchema, clinic: Option<&str>) -> Variables {
        let builtins = Field::ALL
            .into_iter()
            .filter(|field| field.in_templates())
            .map(|field| (field.name(), FieldRef::Builtin(field)));
        let dates = (schema.date_fields.iter().map(String::as_str)).zip((0..).map(FieldRef::Date));
        let declared =
            (schema.fields.iter().map(String::as_str)).zip((0..).map(FieldRef::Declared));
        let mut fields: Vec<(String, Vec<FieldRef>)> = Vec::new();
        for (name, field) in declared.chain(dates).chain(builtins) {
            match fields.iter_mut().find(|(known, _)| known == name) {
                Some((_, refs)) => refs.insert(0, field),
                None => fields.push((name.to_owned(), vec![field])),
            }
        }
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        Variables(Arc::new(Names {
            schema: schema.clone(),
            clinic: clinic.map(Value::from),
            fields,
        }))
    }

    /// `patient`'s context at `now` (which their age is counted at).
    pub fn of(&self, patient: Arc<PatientRecord>, now: DateTime<Utc>) -> Value {
        Value::from_object(PatientVariables {
            names: self.0.clone(),
            patient,
            now,
        })
    }
}

/// One patient's context: their record, read by name when a template asks.
struct PatientVariables {
    names: Arc<Names>,
    patient: Arc<PatientRecord>,
    now: DateTime<Utc>,
}

/// Says which patient by line only: a context is never printed with what it holds.
impl fmt::Debug for PatientVariables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<the patient on line {}>", self.patient.line)
    }
}

impl PatientVariables {
    fn field(&self, field: FieldRef) -> Option<Value> {
        let schema = &self.names.schema;
        Some(match self.patient.value(field, schema, self.now) {
            FieldValue::Empty => return None,
            FieldValue::Text(text) => Value::from(text),
            FieldValue::Number(n) => Value::from(n),
            FieldValue::Instant(at) => Value::from(at.with_timezone(&schema.timezone).to_rfc3339()),
            FieldValue::Day(day) => Value::from(day.to_string()),
            FieldValue::List(items) => Value::from(items.to_vec()),
            FieldValue::Flag(flag) => Value::from(flag),
        })
    }

    fn lookup(&self, name: &str) -> Option<Value> {
        if name == "clinic" {
            if let Some(clinic) = &self.names.clinic {
                return Some(clinic.clone());
            }
        }
        let fields = &self.names.fields;
        let found = fields.binary_search_by(|(known, _)| known.as_str().cmp(name));
        let from_fields = found
            .ok()
            .and_then(|index| fields[index].1.iter().find_map(|&field| self.field(field)));
        from_fields.or_else(|| {
            self.patient
                .other
                .get(name)
                .map(|v| Value::from(v.as_str()))
        })
    }
}

impl Object for PatientVariables {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.lookup(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        self.lookup(key)
    }

    /// The names with a value, sorted, as the map of every field listed them.
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut names: Vec<&str> = (self.patient.other.iter().map(|(name, _)| name.as_str()))
            .chain(self.names.fields.iter().map(|(name, _)| name.as_str()))
            .chain(self.names.clinic.as_ref().map(|_| "clinic"))
            .filter(|name| self.lookup(name).is_some())
            .collect();
        names.sort_unstable();
        names.dedup();
        Enumerator::Values(names.into_iter().map(Value::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::records::OtherColumns;

    fn schema() -> RecordSchema {
        RecordSchema {
            timezone: chrono_tz::Asia::Tokyo,
            stages: vec!["booked".into()],
            date_fields: vec!["appointment_at".into(), "visited_at".into()],
            fields: vec!["doctor".into(), "name".into()],
        }
    }

    fn patient() -> PatientRecord {
        let mut other = OtherColumns::new();
        other.insert("room".into(), "3".into());
        other.insert("doctor".into(), "列の医師".into());
        PatientRecord {
            id: "P1".into(),
            name: Some("山田 花子".into()),
            stage: Some(0),
            birth_date: chrono::NaiveDate::from_ymd_opt(1960, 11, 26),
            dates: vec![
                Some(Utc.with_ymd_and_hms(2026, 11, 26, 1, 0, 0).unwrap()),
                None,
            ],
            fields: vec![None, Some("宣言された名前".into())],
            other,
            ..PatientRecord::default()
        }
    }

    fn context() -> Value {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
        patient_context(&patient(), &schema(), Some("さくら"), now)
    }

    #[test]
    fn each_name_is_read_from_the_field_that_wins_when_asked() {
        let context = context();
        let get = |name: &str| context.get_attr(name).unwrap();
        assert_eq!(
            get("appointment_at").as_str(),
            Some("2026-11-26T10:00:00+09:00")
        );
        // A built-in field wins over a declared one of the same name, an empty declared
        // field leaves the column of that name.
        assert_eq!(get("name").as_str(), Some("山田 花子"));
        assert_eq!(get("doctor").as_str(), Some("列の医師"));
        assert_eq!(get("age"), Value::from(65));
        assert_eq!(get("clinic").as_str(), Some("さくら"));
        assert_eq!(get("stage").as_str(), Some("booked"));
        assert!(get("visited_at").is_undefined());
        assert!(get("line_user_id").is_undefined());
    }

    #[test]
    fn the_names_with_a_value_are_listed_in_order_as_the_map_listed_them() {
        let names: Vec<String> = (context().try_iter().unwrap())
            .map(|name| name.to_string())
            .collect();
        let expected = [
            "age",
            "appointment_at",
            "birth_date",
            "clinic",
            "doctor",
            "id",
            "name",
            "room",
            "stage",
            "tags",
        ];
        assert_eq!(names, expected);
    }

    #[test]
    fn a_template_sees_an_empty_field_as_undefined() {
        let env = minijinja::Environment::new();
        let source = "{% if visited_at %}来院{% else %}未来院{% endif %} {{ room }} {{ nothing }}";
        let rendered = env.render_str(source, context()).unwrap();
        assert_eq!(rendered, "未来院 3 ");
    }
}
