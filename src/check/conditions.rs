//! Conditions (`when …`, `unless …`): every field exists, every value fits its field, every
//! stage is declared, every rhai script compiles.

use super::fields::FieldKind;
use super::Checker;
use crate::diagnostic::{suggest, Code};
use crate::scripts::ScriptEngine;
use crate::source::Spanned;
use crate::syntax::{CompareOp, Condition, Ident, Literal, StepDecl};

impl Checker<'_> {
    pub(super) fn conditions(&mut self, step: &StepDecl, scripts: &ScriptEngine) {
        self.condition(&step.when, scripts);
        for unless in &step.unless {
            self.condition(unless, scripts);
        }
        if let [_, second, ..] = step.unless.as_slice() {
            self.report(
                Code::DuplicateDeclaration,
                second.span,
                "a step has one `unless`",
            )
            .help = Some("combine them: `unless cancelled_at or next_booking_at`".into());
        }
        if let [_, second, ..] = step.within.as_slice() {
            self.report(
                Code::DuplicateDeclaration,
                second.span,
                "a step has one `within`",
            )
            .help = Some("keep the one you mean".into());
        }
        if let [_, second, ..] = step.priority.as_slice() {
            self.report(
                Code::DuplicateDeclaration,
                second.span,
                "a step has one `priority`",
            )
            .help = Some("keep the one you mean: `priority high`, `normal` or `low`".into());
        }
    }

    fn condition(&mut self, condition: &Spanned<Condition>, scripts: &ScriptEngine) {
        match &condition.node {
            Condition::And(operands) | Condition::Or(operands) => {
                for operand in operands {
                    self.condition(operand, scripts);
                }
            }
            Condition::Not(inner) => self.condition(inner, scripts),
            // Their steps and windows are checked with the other steps (`reactions.rs`).
            Condition::Reaction(_) => {}
            Condition::IsSet(field) => {
                self.resolve_field(field);
            }
            Condition::Compare { field, op, value } => {
                if let Some(kind) = self.resolve_field(field) {
                    self.comparison(field, kind, op, value);
                }
            }
            Condition::In { field, values } => {
                if let Some(kind) = self.resolve_field(field) {
                    for value in values {
                        self.value_fits(field, kind, value);
                    }
                }
            }
            Condition::Script(code) => {
                let error = match scripts.compile(&code.node) {
                    Ok(compiled) => {
                        self.scripts
                            .insert(code.node.clone(), std::sync::Arc::new(compiled.ast));
                        return;
                    }
                    Err(error) => error,
                };
                {
                    let span = error.span_in(&code.node, code.span);
                    self.report(
                        Code::ScriptError,
                        span,
                        format!("the rhai condition does not compile: {}", error.message),
                    )
                    .help = Some(
                        "a rhai condition is one expression that is true or false; the patient's \
                         fields are `patient.NAME` (dates as seconds since 1970), the current \
                         time is `now`"
                            .into(),
                    );
                }
            }
        }
    }

    /// The kind of a field named in a condition, or a report that it does not exist.
    ///
    /// Words for what a patient did with a message (`opened`, `clicked`) are not export fields,
    /// and "declare it with `fields opened`" would send a marketer after a column that no
    /// export has: they get what LINE and steprule do record instead.
    fn resolve_field(&mut self, field: &Ident) -> Option<FieldKind> {
        if let Some(kind) = self.field_kind(&field.node) {
            return Some(kind);
        }
        let help = match suggest(&field.node, self.field_names()) {
            _ if is_reaction_word(&field.node) => REACTION_HELP.to_owned(),
            Some(name) => format!("did you mean `{name}`?"),
            None => format!(
                "declare it with `fields {0}` (or `dates {0}` if it holds a date)",
                field.node
            ),
        };
        let diag = self.report(
            Code::UnknownField,
            field.span,
            format!("unknown field `{}`", field.node),
        );
        diag.label = Some("not a patient field".into());
        diag.help = Some(help);
        None
    }

    fn comparison(
        &mut self,
        field: &Ident,
        kind: FieldKind,
        op: &Spanned<CompareOp>,
        value: &Spanned<Literal>,
    ) {
        let unordered = match kind {
            FieldKind::Stage => Some("stages have no order"),
            FieldKind::Tags => Some("a tag is either there or not"),
            _ => None,
        };
        if let (Some(why), false) = (unordered, op.node.is_equality()) {
            self.report(
                Code::TypeMismatch,
                op.span,
                format!(
                    "`{}` cannot be used with `{}`",
                    op.node.symbol(),
                    field.node
                ),
            )
            .help = Some(format!("{why}: use `=`, `!=` or `{} in (…)`", field.node));
            return;
        }
        self.value_fits(field, kind, value);
    }

    /// Reports a value that cannot be compared with the field.
    fn value_fits(&mut self, field: &Ident, kind: FieldKind, value: &Spanned<Literal>) {
        match (kind, &value.node) {
            (FieldKind::Stage, Literal::Symbol(stage) | Literal::String(stage)) => {
                self.known_stage(stage, value)
            }
            (FieldKind::Tags, Literal::Symbol(_) | Literal::String(_)) => {}
            (FieldKind::Date, Literal::Date(_) | Literal::DateTime(_)) => {}
            (FieldKind::Number, Literal::Number(_)) => {}
            (FieldKind::Text, _) => {}
            (kind, literal) => {
                let wanted = match kind {
                    FieldKind::Stage => "a stage name, e.g. `stage=booked`",
                    FieldKind::Tags => "a tag name, e.g. `tag=vip`",
                    FieldKind::Date => {
                        "a date such as 2026-04-01 or 2026-04-01T10:00 (to test that it is set, \
                         write the field alone)"
                    }
                    FieldKind::Number => "a number, e.g. `age >= 40`",
                    FieldKind::Text => unreachable!("text accepts every value"),
                };
                self.report(
                    Code::TypeMismatch,
                    value.span,
                    format!("`{}` is compared with {}", field.node, literal.kind()),
                )
                .help = Some(format!("`{}` needs {wanted}", field.node));
            }
        }
    }

    fn known_stage(&mut self, stage: &str, value: &Spanned<Literal>) {
        if self.decls.stages.iter().any(|s| s.node == stage) {
            return;
        }
        let help = if self.decls.stages.is_empty() {
            "declare the stages first, e.g. `stages booked, first_visit, follow_up, regular`".into()
        } else {
            let declared: Vec<&str> = self.decls.stages.iter().map(|s| s.node.as_str()).collect();
            match suggest(stage, declared.iter().copied()) {
                Some(name) => format!("did you mean `{name}`?"),
                None => format!("the declared stages are: {}", declared.join(", ")),
            }
        };
        let diag = self.report(
            Code::UnknownStage,
            value.span,
            format!("unknown stage `{stage}`"),
        );
        diag.label = Some("not declared in `stages`".into());
        diag.help = Some(help);
    }
}

/// What a patient does with a message, as a marketer might name it in a condition.
fn is_reaction_word(name: &str) -> bool {
    matches!(
        name,
        "opened"
            | "open"
            | "read"
            | "seen"
            | "clicked"
            | "click"
            | "tapped"
            | "blocked"
            | "unfollowed"
            | "answered"
            | "replied"
    )
}

const REACTION_HELP: &str = "this is not a patient field: LINE never says which patient opened a \
message (only how many did, per step: `steprule insights fetch`, then `steprule report`). What \
patients do is recorded by `steprule serve`, and these conditions read it: `clicked STEP` (a \
tracked link of STEP's last send was opened), `answered STEP \"DATA\"` (a postback button), \
`booked since STEP`, each with an optional `within 3d`, and `blocked`";
