//! `check`'s findings placed on the sheet: under each step those in the step's lines of the
//! rules file and those in the templates it sends (a template sent by two steps shows under
//! both), and the rest — the file's settings, templates no step sends — in a section of their
//! own. And each step's allowances, with the reason written for them.

use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Severity};
use crate::review::outline::StepOutline;
use crate::review::{Allowed, Finding};
use crate::source::{SourceFile, Span};
use crate::template::TemplateStore;

/// The findings, and which of them a step has shown.
pub struct Sorted<'a> {
    diagnostics: &'a [Diagnostic],
    shown: Vec<bool>,
    rules_dir: PathBuf,
    templates_dir: PathBuf,
}

impl<'a> Sorted<'a> {
    pub fn new(diagnostics: &'a [Diagnostic], rules: &SourceFile, store: &TemplateStore) -> Self {
        Sorted {
            diagnostics,
            shown: vec![false; diagnostics.len()],
            rules_dir: rules.path().parent().unwrap_or(Path::new("")).to_path_buf(),
            templates_dir: store.dir().to_path_buf(),
        }
    }

    /// The findings of the step at `span` in `rules` and of its `templates`.
    pub fn of_step(&mut self, rules: &SourceFile, span: Span, templates: &[&str]) -> Vec<Finding> {
        let paths: Vec<PathBuf> = templates
            .iter()
            .map(|name| self.templates_dir.join(format!("{name}.toml")))
            .collect();
        let mut found = Vec::new();
        for (index, diag) in self.diagnostics.iter().enumerate() {
            let path = diag.file.path();
            let in_step =
                path == rules.path() && span.start <= diag.span.start && diag.span.end <= span.end;
            if in_step || paths.iter().any(|p| p == path) {
                self.shown[index] = true;
                found.push(self.finding(diag));
            }
        }
        found
    }

    /// The findings no step showed.
    pub fn rest(&self) -> Vec<Finding> {
        (self.diagnostics.iter().zip(&self.shown))
            .filter(|(_, shown)| !**shown)
            .map(|(diag, _)| self.finding(diag))
            .collect()
    }

    fn finding(&self, diag: &Diagnostic) -> Finding {
        let is_error = diag.severity == Severity::Error;
        Finding {
            // As `check` prints it.
            code: format!("steprule::{}", diag.code.name()),
            severity: if is_error { "エラー" } else { "警告" },
            is_error,
            message: diag.message.clone(),
            place: place(&self.rules_dir, &diag.file, diag.span),
            help: diag.help.clone(),
        }
    }
}

/// `templates/survey.toml:3`: the file relative to the rules' folder, and the line.
fn place(rules_dir: &Path, file: &SourceFile, span: Span) -> String {
    let shown = file.path().strip_prefix(rules_dir).unwrap_or(file.path());
    format!("{}:{}", shown.display(), file.line_column(span.start).0)
}

/// The step's allowances: each `allow` entry of the templates it sends (with the reason the
/// template gives) and each `allow` of the step (whose reason, when written, is the comment
/// above the step: the syntax has no place for one).
pub fn allowances(
    step: &StepOutline,
    templates: &[&str],
    store: &mut TemplateStore,
    rules: &SourceFile,
) -> Vec<Allowed> {
    let rules_dir = rules.path().parent().unwrap_or(Path::new(""));
    let mut allowed = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for name in templates {
        // An A/B step may send one template twice; its allowances are listed once.
        if seen.contains(name) {
            continue;
        }
        seen.push(name);
        let Ok(template) = store.get(name) else {
            continue;
        };
        for entry in &template.allow {
            allowed.push(Allowed {
                code: entry.code.node.clone(),
                given_by: format!("テンプレート {name}"),
                place: place(rules_dir, &template.file, entry.code.span),
                reason: entry.reason.node.clone(),
            });
        }
    }
    for code in &step.allow {
        allowed.push(Allowed {
            code: code.clone(),
            given_by: "ステップ（ルールファイル）".to_owned(),
            place: format!(
                "{}:{}",
                rules.path().file_name().map_or_else(
                    || rules.path().display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                ),
                step.line
            ),
            reason: if step.comment.is_empty() {
                "（理由の記載がありません。ステップの上にコメントで書いてください）".to_owned()
            } else {
                format!("ステップのコメント：{}", step.comment.join(" "))
            },
        });
    }
    allowed
}
