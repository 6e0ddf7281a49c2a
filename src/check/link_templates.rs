//! The templates `serve` replies with when it links a LINE friend to a patient:
//! `link_request`, `link_done`, `link_failed` and `link_locked`. They are sent before anyone
//! knows who the LINE user is, so they see the rules' own settings (`clinic`) and nothing about
//! a patient; they must exist and render when `serve` runs (`check --serve`).

use std::collections::BTreeMap;

use minijinja::Value;

use super::fields::RULE_VARIABLES;
use super::templates::Scope;
use super::Checker;
use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;
use crate::template::{LoadError, TemplateStore};

/// The link templates, in the order a LINE friend meets them.
pub const LINK_TEMPLATES: [&str; 4] = ["link_request", "link_done", "link_failed", "link_locked"];

/// What each one is for, for the help of a missing one.
fn purpose(name: &str) -> &'static str {
    match name {
        "link_request" => {
            "sent to a new friend the clinic cannot place: ask for the patient number on the \
             clinic card (診察券番号) and the birth date, with an example"
        }
        "link_done" => "sent when the number and birth date matched: confirm the link",
        "link_failed" => {
            "sent when they did not match: ask to check both, without saying which was wrong"
        }
        _ => "sent after five failed attempts in a day: ask to try tomorrow or call the clinic",
    }
}

impl Checker<'_> {
    /// Checks the four link templates in `store`.
    pub(super) fn link_templates(&mut self, store: &mut TemplateStore) {
        let clinic = self
            .decls
            .clinic
            .as_ref()
            .map(|c| c.node.clone())
            .unwrap_or_else(|| "クリニック".into());
        let sample: BTreeMap<&str, Value> = RULE_VARIABLES
            .iter()
            .map(|name| (*name, Value::from(clinic.as_str())))
            .collect();
        let scope = Scope {
            known: RULE_VARIABLES.iter().map(|v| (*v).to_owned()).collect(),
            sample: Value::from_serialize(&sample),
            unknown_help: Box::new(|_| {
                "link templates are sent before the LINE user is known to be a patient: they \
                 see only `clinic`, never a patient's fields"
                    .to_owned()
            }),
            // The only variable is `clinic`: "did you mean" would only guess wrong.
            suggest: false,
        };
        for name in LINK_TEMPLATES {
            match store.get(name) {
                Ok(template) => self.template_content_in(&template, &scope),
                Err(LoadError::NotFound { path, .. }) => {
                    let diag = self.report(
                        Code::MissingLinkTemplate,
                        Span::new(0, 0),
                        format!(
                            "`serve` needs the template `{name}` (no file {})",
                            path.display()
                        ),
                    );
                    diag.label = Some("these rules are served".into());
                    diag.help = Some(format!(
                        "create {} with a `text = \"…\"`: {}",
                        path.display(),
                        purpose(name)
                    ));
                }
                Err(LoadError::Invalid(diag)) => self.diagnostics.push(*diag),
                Err(LoadError::Io { path, message }) => {
                    let diag: Diagnostic = Diagnostic::new(
                        Code::MissingLinkTemplate,
                        self.file,
                        Span::new(0, 0),
                        format!("cannot read template {}: {message}", path.display()),
                    );
                    self.diagnostics.push(diag);
                }
            }
        }
    }
}
