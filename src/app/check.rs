//! `steprule check`: every problem in the given rule files and their templates, for a person
//! (miette) or a tool (JSON), and a one-line summary per file.

use std::path::{Path, PathBuf};

use super::{AppError, Io, Outcome};
use crate::check::{self, CheckOutcome, RuleSet};
use crate::diagnostic::{self, Diagnostic, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckFormat {
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct CheckRequest {
    pub files: Vec<PathBuf>,
    pub format: CheckFormat,
    /// Warnings fail the check too.
    pub deny_warnings: bool,
    /// Where the templates are (default: `templates/` beside each file).
    pub templates: Option<PathBuf>,
    /// Also check what `serve` needs (the link templates).
    pub serve: bool,
}

pub fn run(request: &CheckRequest, io: &mut Io<'_>) -> Result<Outcome, AppError> {
    let mut all: Vec<Diagnostic> = Vec::new();
    let mut summaries = Vec::new();
    let mut unreadable = false;
    for path in &request.files {
        let options = check::CheckOptions {
            serve: request.serve,
        };
        match check::check_path_with(path, request.templates.as_deref(), options) {
            Ok(outcome) => {
                summaries.push(summary(path, &outcome));
                all.extend(outcome.diagnostics);
            }
            Err(err) => {
                // The other files are still checked: one missing file should not hide their
                // problems.
                summaries.push(format!("{}: cannot read: {err}", path.display()));
                unreadable = true;
            }
        }
    }
    match request.format {
        CheckFormat::Json => {
            let json = diagnostic::render_json(&all).map_err(std::io::Error::from)?;
            writeln!(io.out, "{json}")?
        }
        CheckFormat::Human => write!(io.err, "{}", diagnostic::render_human(&all, io.color))?,
    }
    if request.format == CheckFormat::Human || unreadable {
        for line in &summaries {
            writeln!(io.err, "{line}")?;
        }
    }
    if unreadable {
        return Ok(Outcome::Unfinished);
    }
    let errors = all.iter().any(Diagnostic::is_error);
    let warnings = all.iter().any(|d| d.severity == Severity::Warning);
    Ok(if errors || (request.deny_warnings && warnings) {
        Outcome::Findings
    } else {
        Outcome::Ok
    })
}

fn summary(path: &Path, outcome: &CheckOutcome) -> String {
    let count = |severity| {
        outcome
            .diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    };
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match &outcome.rules {
        Some(rules) if warnings == 0 => format!(
            "{}: ok, {} and {} checked",
            path.display(),
            plural(rules.steps.len(), "step"),
            plural(distinct_templates(rules), "template"),
        ),
        _ => format!(
            "{}: {}, {}",
            path.display(),
            plural(errors, "error"),
            plural(warnings, "warning")
        ),
    }
}

fn distinct_templates(rules: &RuleSet) -> usize {
    let mut names: Vec<&str> = rules
        .steps
        .iter()
        .flat_map(|s| s.variants.iter().map(|v| v.template.name.as_str()))
        .collect();
    names.sort();
    names.dedup();
    names.len()
}
