//! The privacy checks that depend on the step sending a template: who a step is for (`care`
//! or `promo`) and whether it needs consent, the `consent` and `sensitive` settings, sensitive
//! fields in messages sent without consent, and opt-out wording in promo and periodic steps.

use std::collections::HashSet;

use crate::check::{CheckedStep, Checker};
use crate::diagnostic::{suggest, Code};
use crate::syntax::{Ident, Purpose, StepDecl};

/// What a step is for: as it says, or as its timing implies.
pub fn purpose(step: &StepDecl) -> Purpose {
    step.purpose
        .first()
        .map_or_else(|| step.timing.anchor.default_purpose(), |p| p.node)
}

/// Whether a step is sent only to patients who gave consent: a promo step, or one that says
/// `requires consent`.
pub fn needs_consent(step: &StepDecl) -> bool {
    purpose(step) == Purpose::Promo || step.needs_consent.is_some()
}

/// Whether a step's messages must say how to stop receiving them: promo and repeating steps
/// (a care step that only `requires consent` is a one-off about the patient's care).
pub fn needs_opt_out(step: &StepDecl) -> bool {
    purpose(step) == Purpose::Promo || step.timing.anchor.is_periodic()
}

impl Checker<'_> {
    /// `consent` and `sensitive` name fields declared in `fields`: an unknown one is reported
    /// (with the closest declared field) and left out.
    pub(in crate::check) fn privacy_settings(&mut self) {
        if let Some(consent) = self.decls.consent.take() {
            if self.declared_field(&consent, "consent") {
                self.decls.consent = Some(consent);
            }
        }
        let sensitive = std::mem::take(&mut self.decls.sensitive);
        for field in sensitive {
            if self.declared_field(&field, "sensitive") {
                self.decls.sensitive.push(field);
            }
        }
    }

    fn declared_field(&mut self, field: &Ident, setting: &str) -> bool {
        if self.decls.fields.iter().any(|f| f.node == field.node) {
            return true;
        }
        let declared = self.decls.fields.iter().map(|f| f.node.as_str());
        let help = match suggest(&field.node, declared) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!(
                "`{setting}` names export columns declared in `fields`: add `fields {}`",
                field.node
            ),
        };
        self.report(
            Code::UnknownField,
            field.span,
            format!(
                "`{setting}` names `{}`, which is not a declared field",
                field.node
            ),
        )
        .help = Some(help);
        false
    }

    /// The templates whose text is looked at for opt-out wording: those promo and periodic
    /// steps send.
    pub(in crate::check) fn opt_out_wanted(&mut self, steps: &[&StepDecl]) {
        self.opt_out_wanted = steps
            .iter()
            .filter(|step| needs_opt_out(step))
            .flat_map(|step| step.send.iter().map(|v| v.template.node.clone()))
            .collect();
    }

    /// Each step's purpose, consent and opt-out wording, and the sensitive fields its
    /// templates use.
    pub(in crate::check) fn privacy_steps(&mut self, steps: &[CheckedStep<'_>]) {
        let mut reported: HashSet<(String, String)> = HashSet::new();
        for step in steps {
            let decl = step.decl;
            if let [_, second, ..] = decl.purpose.as_slice() {
                self.report(
                    Code::DuplicateDeclaration,
                    second.span,
                    "a step is `care` or `promo`, once",
                )
                .help = Some("keep the one you mean".into());
            }
            let gated = needs_consent(decl);
            if gated && self.decls.consent.is_none() {
                self.promo_without_consent(step);
            }
            for template in &step.templates {
                let Some(facts) = self.template_facts.get(&template.name).cloned() else {
                    continue;
                };
                if !gated {
                    for (field, span) in &facts.sensitive {
                        if !reported.insert((template.name.clone(), field.clone())) {
                            continue;
                        }
                        let diag = crate::diagnostic::Diagnostic::new(
                            Code::PrivacySensitiveField,
                            &template.file,
                            *span,
                            format!(
                                "template `{}` uses the sensitive field `{field}`, and step `{}` \
                                 sends it without consent",
                                template.name, step.id
                            ),
                        )
                        .with_label("declared `sensitive`")
                        .with_help(format!(
                            "`{field}` is special-care information (要配慮個人情報): a step may \
                             test it in its condition, but a message shows it only to patients \
                             who agreed. Leave it out of the message, or write `requires \
                             consent` on step `{}` (it then goes only to patients whose \
                             `consent` field says yes)",
                            step.id
                        ));
                        self.diagnostics.push(diag);
                    }
                }
                if needs_opt_out(decl) && facts.opt_out == Some(false) && !allows_opt_out(template)
                {
                    let promo = purpose(decl) == Purpose::Promo;
                    self.missing_opt_out(step, &template.name, promo);
                }
            }
        }
        self.unused_opt_out_allowances(steps);
    }

    fn promo_without_consent(&mut self, step: &CheckedStep<'_>) {
        let decl = step.decl;
        let explicit = decl.purpose.first().map(|p| p.span).or(decl.needs_consent);
        let span = explicit.unwrap_or(decl.timing.span);
        let why = match (decl.purpose.first(), decl.needs_consent) {
            (_, Some(_)) if purpose(decl) == Purpose::Care => "requires consent".to_owned(),
            (Some(_), _) => "is marked `promo`".to_owned(),
            (None, _) => "is a promo step (its timing is on the calendar or repeats)".to_owned(),
        };
        let diag = self.report(
            Code::PromoWithoutConsent,
            span,
            format!(
                "step `{}` {why}, and the rules have no `consent` setting",
                step.id
            ),
        );
        diag.label = Some("sent only with marketing consent".into());
        diag.help = Some(
            "add `consent FIELD` naming the export column that holds the patient's marketing \
             consent (declared in `fields`), so that only patients who agreed get it; or, if the \
             step is about the patient's own care, mark it `care`. A promo step is never sent to \
             everyone"
                .into(),
        );
    }

    fn missing_opt_out(&mut self, step: &CheckedStep<'_>, template: &str, promo: bool) {
        let Some(variant) = step.decl.send.iter().find(|v| v.template.node == template) else {
            return;
        };
        let words = super::lexicon::HealthWords::shipped();
        let kind = if promo { "promo" } else { "periodic" };
        let diag = self.report(
            Code::PrivacyOptOut,
            variant.template.span,
            format!(
                "template `{template}`, sent by {kind} step `{}`, does not say how to stop \
                 receiving it",
                step.id
            ),
        );
        diag.label = Some("no opt-out wording".into());
        diag.help = Some(format!(
            "marketing and repeating messages need an easy way to stop them: add a line such as \
             「配信停止をご希望の方は、メニューの「配信設定」から変更できます。」 (words that count: \
             「{}」). After review, `allow privacy-opt-out` on the step, or `allow = [{{ code = \
             \"privacy-opt-out\", reason = \"…\" }}]` in the template, keeps it",
            words
                .opt_out_words
                .iter()
                .take(6)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("」「")
        ));
    }

    /// A template's `privacy-opt-out` allowance that silences nothing: the template has the
    /// wording, or no promo or periodic step sends it.
    fn unused_opt_out_allowances(&mut self, steps: &[CheckedStep<'_>]) {
        let mut seen = HashSet::new();
        for template in steps.iter().flat_map(|s| &s.templates) {
            if !seen.insert(template.name.clone()) {
                continue;
            }
            let Some(allowance) = opt_out_allowance(template) else {
                continue;
            };
            let lacks = self
                .template_facts
                .get(&template.name)
                .is_some_and(|facts| facts.opt_out == Some(false));
            if lacks {
                continue;
            }
            self.diagnostics.push(
                crate::diagnostic::Diagnostic::new(
                    Code::UnusedAllow,
                    &template.file,
                    allowance.code.span,
                    format!(
                        "template `{}` allows `privacy-opt-out`, but it says how to stop \
                         receiving, or no promo or periodic step sends it",
                        template.name
                    ),
                )
                .with_label("allows nothing")
                .with_help("remove the allowance, so that a later finding of this kind is seen"),
            );
        }
    }
}

fn opt_out_allowance(template: &crate::template::Template) -> Option<&crate::template::Allowance> {
    template.allow.iter().find(|a| {
        a.code.node.trim_start_matches("steprule::") == Code::PrivacyOptOut.name()
            && !a.reason.node.trim().is_empty()
    })
}

fn allows_opt_out(template: &crate::template::Template) -> bool {
    opt_out_allowance(template).is_some()
}
