//! The rhai engine, shared by `check` (which compiles every script once) and `eval` (which runs
//! them), below both so neither reaches into the other. The rhai escape hatch: conditions too particular for the language, e.g.
//! `rhai { patient.visits > 3 && patient.department != "健診" }`. Scripts are compiled once,
//! at check time, in an engine that only knows `patient` and `now`, so a typo in a variable
//! name is caught before any patient is evaluated. The engine is bounded (operations, string,
//! array and map sizes, call depth) and silent (`print` and `debug` go nowhere), since scripts
//! run on patient data.

use rhai::{Dynamic, Engine, Scope, AST};

use crate::source::Span;

/// Operations a condition may take for one patient; a script that loops past this is stopped.
pub const MAX_OPERATIONS: u64 = 10_000;
/// The longest string a condition may build, in bytes: room for any patient column, not for
/// `patient.name.pad(1000000000, "x")`.
pub const MAX_STRING_SIZE: usize = 1024 * 1024;
/// The most items an array or object map in a condition may hold.
pub const MAX_COLLECTION_SIZE: usize = 10_000;
/// How deeply function calls inside a condition may nest.
pub const MAX_CALL_LEVELS: usize = 16;

/// The rhai engine conditions are compiled and run in.
pub struct ScriptEngine {
    engine: Engine,
}

/// A compiled rhai condition.
#[derive(Debug, Clone)]
pub struct CompiledScript {
    pub ast: AST,
}

/// A script that does not compile, with rhai's 1-based position inside the script.
#[derive(Debug, Clone)]
pub struct ScriptError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl ScriptError {
    /// Where the error is in the `.step` file, given where the script's code starts there.
    pub fn span_in(&self, code: &str, code_span: Span) -> Span {
        let mut offset = 0;
        for (index, line) in code.split_inclusive('\n').enumerate() {
            if index + 1 == self.line {
                let column: usize = line
                    .chars()
                    .take(self.column.saturating_sub(1))
                    .map(char::len_utf8)
                    .sum();
                let start = code_span.start + offset + column;
                let width = line[column..].chars().next().map_or(0, char::len_utf8);
                return Span::new(start, (start + width).min(code_span.end.max(start)));
            }
            offset += line.len();
        }
        code_span
    }
}

impl Default for ScriptEngine {
    fn default() -> Self {
        ScriptEngine::new()
    }
}

impl ScriptEngine {
    pub fn new() -> Self {
        let mut engine = Engine::new();
        engine.set_strict_variables(true);
        engine.set_max_operations(MAX_OPERATIONS);
        engine.set_max_expr_depths(64, 32);
        engine.set_max_string_size(MAX_STRING_SIZE);
        engine.set_max_array_size(MAX_COLLECTION_SIZE);
        engine.set_max_map_size(MAX_COLLECTION_SIZE);
        engine.set_max_call_levels(MAX_CALL_LEVELS);
        // `print` and `debug` would write patient data to standard output, where `plan
        // --format json` writes its rows: they do nothing.
        engine.on_print(|_| {});
        engine.on_debug(|_, _, _| {});
        // Cells arrive as text, or `()` when empty: `num(patient.visits, 0) > 3` works for
        // every patient where `parse_int(patient.visits) > 3` fails on an empty cell.
        engine.register_fn("num", num);
        ScriptEngine { engine }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The variables a condition sees; values are filled per patient at evaluation time.
    pub fn scope() -> Scope<'static> {
        let mut scope = Scope::new();
        scope.push("patient", rhai::Map::new());
        scope.push("now", 0_i64);
        scope
    }

    pub fn compile(&self, code: &str) -> Result<CompiledScript, ScriptError> {
        self.engine
            .compile_expression_with_scope(&Self::scope(), code)
            .map(|ast| CompiledScript { ast })
            .map_err(|err| {
                let position = err.position();
                ScriptError {
                    message: err.err_type().to_string(),
                    line: position.line().unwrap_or(1),
                    column: position.position().unwrap_or(1),
                }
            })
    }
}

/// `num(value, default)` in a condition: the value as a number (an integer, or a decimal
/// when it has a fraction), or `default` when it is empty or not a number. Text is trimmed
/// and full-width digits (`１２`) are read as digits, as exports write them.
fn num(value: Dynamic, default: Dynamic) -> Dynamic {
    if value.is_int() || value.is_float() {
        return value;
    }
    let Ok(text) = value.into_immutable_string() else {
        return default;
    };
    let text: String = text
        .trim()
        .chars()
        .map(|c| match c {
            '０'..='９' => {
                char::from_u32(u32::from(c) - u32::from('０') + u32::from('0')).unwrap_or(c)
            }
            '．' => '.',
            '－' => '-',
            _ => c,
        })
        .collect();
    if let Ok(n) = text.parse::<rhai::INT>() {
        return Dynamic::from(n);
    }
    match text.parse::<rhai::FLOAT>() {
        Ok(x) if x.is_finite() => Dynamic::from(x),
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_conditions_on_patient_fields() {
        let engine = ScriptEngine::new();
        assert!(engine.compile("patient.visits > 3 && now > 0").is_ok());
    }

    #[test]
    fn unknown_variables_are_compile_errors() {
        let engine = ScriptEngine::new();
        let err = engine.compile("patinet.visits > 3").unwrap_err();
        assert!(err.message.contains("patinet"), "{}", err.message);
        assert_eq!((err.line, err.column), (1, 1));
    }

    #[test]
    fn scripts_cannot_allocate_without_limit() {
        let engine = ScriptEngine::new();
        for code in [
            "patient.name.pad(1000000000, \"x\") == ()",
            "patient.tags.pad(1000000000, 0) == ()",
            "patient.name + patient.name.pad(1048576, \"x\") == \"\"",
        ] {
            let ast = engine.compile(code).unwrap().ast;
            let mut scope = Scope::new();
            let mut patient = rhai::Map::new();
            patient.insert("name".into(), "山田 花子".into());
            patient.insert("tags".into(), rhai::Dynamic::from(rhai::Array::new()));
            scope.push("patient", patient);
            scope.push("now", 0_i64);
            let err = engine
                .engine()
                .eval_ast_with_scope::<rhai::Dynamic>(&mut scope, &ast)
                .unwrap_err();
            assert!(
                matches!(*err, rhai::EvalAltResult::ErrorDataTooLarge(..)),
                "{code}: {err}"
            );
        }
    }

    fn eval_with_visits(code: &str, visits: Dynamic) -> Result<Dynamic, String> {
        let engine = ScriptEngine::new();
        let ast = engine.compile(code).map_err(|e| e.message)?.ast;
        let mut scope = Scope::new();
        let mut patient = rhai::Map::new();
        patient.insert("visits".into(), visits);
        scope.push("patient", patient);
        scope.push("now", 0_i64);
        engine
            .engine()
            .eval_ast_with_scope::<Dynamic>(&mut scope, &ast)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn num_reads_a_cell_as_a_number_or_gives_the_default() {
        let cases: [(Dynamic, &str); 8] = [
            ("12".into(), "12"),
            (" 7 ".into(), "7"),
            ("１２".into(), "12"),
            ("2.5".into(), "2.5"),
            (Dynamic::UNIT, "0"),
            ("".into(), "0"),
            ("三回".into(), "0"),
            (Dynamic::from(4_i64), "4"),
        ];
        for (visits, expected) in cases {
            let shown = format!("{visits:?}");
            let got = eval_with_visits("num(patient.visits, 0)", visits).unwrap();
            assert_eq!(got.to_string(), expected, "{shown}");
        }
        assert!(
            eval_with_visits("num(patient.visits, 0) > 3", Dynamic::UNIT)
                .unwrap()
                .as_bool()
                .is_ok_and(|b| !b)
        );
        assert!(eval_with_visits("num(patient.visits, 0) > 3", "10".into())
            .unwrap()
            .as_bool()
            .unwrap());
        // The coalescing form the diagnostic suggests works on an empty cell too.
        assert_eq!(
            eval_with_visits("(patient.visits ?? 0) == 0", Dynamic::UNIT)
                .unwrap()
                .as_bool(),
            Ok(true)
        );
    }

    #[test]
    fn error_position_maps_into_the_file() {
        let engine = ScriptEngine::new();
        let code = "patient.a > 1 &&\n  (patient.b";
        let err = engine.compile(code).unwrap_err();
        let span = err.span_in(code, Span::new(100, 100 + code.len()));
        assert!(
            span.start >= 100 + code.find('\n').unwrap(),
            "{span:?} {err:?}"
        );
    }
}
