//! `allow LINT` on a step: warnings of that code reported on the step are left out, as Rust's
//! `#[allow]`, so that `--deny-warnings` stays usable when a warning is a deliberate choice. A
//! name that is not a warning's code is itself a warning, with a suggestion.

use super::{CheckedStep, Checker};
use crate::diagnostic::{suggest, Code, Diagnostic, Severity};
use crate::source::Span;

/// One step's allowances: where the step is and the codes it allows.
pub(super) struct Allowance {
    span: Span,
    codes: Vec<Code>,
}

impl Checker<'_> {
    /// The codes each step allows; reports names that are no warning's code.
    pub(super) fn allowances(&mut self, steps: &[CheckedStep<'_>]) -> Vec<Allowance> {
        let mut allowances = Vec::new();
        for step in steps {
            let mut codes = Vec::new();
            for name in &step.decl.allow {
                if let Some(code) = self.allowed_code(&name.node, name.span) {
                    codes.push(code);
                }
            }
            if !codes.is_empty() {
                allowances.push(Allowance {
                    span: step.decl.span,
                    codes,
                });
            }
        }
        allowances
    }

    fn allowed_code(&mut self, name: &str, span: Span) -> Option<Code> {
        let warnings = || {
            Code::ALL
                .iter()
                .filter(|code| code.severity() == Severity::Warning)
                .map(|code| code.name())
        };
        let bare = name.strip_prefix("steprule::");
        let found = Code::ALL.iter().find(|code| code.name() == name);
        let (message, help) = match (found, bare) {
            // An advertising finding is kept only with a reason a reviewer can read, and it
            // is about the template, which every step sending it shares.
            (Some(code), _) if code.name().starts_with("ad-") => (
                format!(
                    "`{}` is allowed in the template, with a reason",
                    code.name()
                ),
                format!(
                    "write `allow = [{{ code = \"{}\", reason = \"…\" }}]` in the template file",
                    code.name()
                ),
            ),
            (Some(code), _) if code.severity() == Severity::Warning => return Some(*code),
            (Some(code), _) => (
                format!(
                    "`{}` is an error, and errors cannot be allowed",
                    code.name()
                ),
                "fix the problem it reports; `allow` takes warnings only".to_owned(),
            ),
            (None, Some(bare)) => (
                format!("`allow` takes the name without `steprule::`: `{bare}`"),
                format!("write `allow {bare}`"),
            ),
            (None, None) => {
                let help = match suggest(name, warnings()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!(
                        "`allow` takes a warning's name: {}",
                        warnings().collect::<Vec<_>>().join(", ")
                    ),
                };
                (format!("`{name}` is not the name of a warning"), help)
            }
        };
        let diag = self.report(Code::UnknownLint, span, message);
        diag.label = Some("not a warning".into());
        diag.help = Some(help);
        None
    }
}

/// Leaves out the warnings in `file` that a step allows: those reported on the step, and for
/// `same-instant`, which is about two steps, also those that name the step as the other one.
pub(super) fn apply(
    diagnostics: &mut Vec<Diagnostic>,
    file: &crate::source::SourceFile,
    allowances: &[Allowance],
) {
    if allowances.is_empty() {
        return;
    }
    // Steps come in file order and do not overlap, so the one step a span can be in is found
    // by a binary search, however many steps and warnings there are.
    let allows = |span: Span, code: Code| {
        let after = allowances.partition_point(|a| a.span.start <= span.start);
        after.checked_sub(1).is_some_and(|i| {
            let allowance = &allowances[i];
            span.end <= allowance.span.end && allowance.codes.contains(&code)
        })
    };
    diagnostics.retain(|diag| {
        if diag.severity != Severity::Warning || diag.file.path() != file.path() {
            return true;
        }
        let allowed = allows(diag.span, diag.code)
            || (diag.code == Code::SameInstant
                && diag.related.iter().any(|r| allows(r.span, diag.code)));
        !allowed
    });
}
