//! `.step` text → typed AST with spans. The pest grammar lives in `grammar/steprule.pest`.

pub mod ast;
mod errors;
mod nesting;
mod parser;

pub use ast::*;
pub use nesting::MAX_NESTING;

use crate::diagnostic::{Code, Diagnostic};
use crate::source::{SourceFile, Span};

/// Parses a whole file. Statements that do not parse are reported and left out, so the caller
/// still gets every statement that does, and every syntax error at once.
pub fn parse(file: &SourceFile) -> (RuleFile, Vec<Diagnostic>) {
    enable_detailed_errors();
    let mut diagnostics = Vec::new();
    let statements = statement_spans(file.text())
        .into_iter()
        .filter_map(|span| {
            // Before pest, which would recurse once per level.
            if let Some(deep) = nesting::too_deep(file.slice(span)) {
                diagnostics.push(too_deeply_nested(file, span, deep));
                return None;
            }
            parser::parse_statement(file, span, &mut diagnostics)
        })
        .collect();
    (RuleFile { statements }, diagnostics)
}

fn too_deeply_nested(file: &SourceFile, statement: Span, deep: nesting::TooDeep) -> Diagnostic {
    let span = Span::new(deep.start, deep.end).shifted(statement.start);
    Diagnostic::new(
        Code::TooDeeplyNested,
        file,
        span,
        format!("this statement nests more than {MAX_NESTING} levels deep"),
    )
    .with_label(format!("level {}", MAX_NESTING + 1))
    .with_help(format!(
        "a condition may nest at most {MAX_NESTING} levels (each parenthesis, each `not` and \
         each brace inside `rhai {{ }}` opens one); write it flatter: `a and b and c` needs no \
         parentheses, and `not not x` is `x`"
    ))
}

fn enable_detailed_errors() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // Lets syntax errors name punctuation (`-`, `:`) that pest does not treat as rules.
    ONCE.call_once(|| pest::set_error_detail(true));
}

/// Cuts a file into statements: a statement starts on a line that is not indented and takes in
/// the indented lines that follow. Blank and comment lines belong to no statement, but do not
/// end one that goes on after them.
fn statement_spans(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut current: Option<Span> = None;
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        let line_span = Span::new(line_start, line_start + content.len());
        line_start += line.len();
        let trimmed = content.trim_start_matches([' ', '\t', '\u{3000}']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indented = trimmed.len() != content.len();
        match current.as_mut() {
            Some(span) if indented => span.end = line_span.end,
            _ => {
                spans.extend(current.take());
                current = Some(line_span);
            }
        }
    }
    spans.extend(current);
    spans
}

#[cfg(test)]
mod tests;
