//! The templates `serve` replies with when it links a LINE friend to a patient:
//! `link_request`, `link_done`, `link_failed` and `link_locked`. They are sent before anyone
//! knows who the LINE user is, so they see the rules' own settings (`clinic`) and nothing about
//! a patient; they must exist and render when `serve` runs (`check --serve`).

use std::collections::BTreeMap;

use minijinja::Value;

use super::fields::RULE_VARIABLES;
use super::templates::Scope;
use super::{CheckedStep, Checker};
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
    /// Warns of each template file in `store` that no step sends (nor `serve`, for linking):
    /// usually a step renamed or removed, or a typo between the step and the file's name.
    ///
    /// Only for a clinic's own folder: the rules file is the only `.step` file in its folder and
    /// its templates are the `templates/` beside it. A templates folder named with
    /// `--templates`, or beside several rule files, serves other files too, and what this file
    /// does not send may well be theirs.
    pub(super) fn unused_templates(&mut self, store: &TemplateStore, steps: &[CheckedStep<'_>]) {
        let Some(folder) = self.file.path().parent() else {
            return;
        };
        let listed = if folder.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            folder
        };
        let rule_files = std::fs::read_dir(listed).map_or(2, |entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().extension().is_some_and(|e| e == "step"))
                .take(2)
                .count()
        });
        if rule_files != 1 || store.dir() != folder.join("templates") {
            return;
        }
        let used: std::collections::BTreeSet<&str> = steps
            .iter()
            .flat_map(|step| step.decl.send.iter().map(|v| v.template.node.as_str()))
            .collect();
        for name in store.available() {
            if used.contains(name.as_str()) || LINK_TEMPLATES.contains(&name.as_str()) {
                continue;
            }
            let path = store.dir().join(format!("{name}.toml"));
            let Ok(file) = crate::source::SourceFile::read(&path) else {
                continue;
            };
            self.diagnostics.push(
                Diagnostic::new(
                    Code::UnusedTemplate,
                    &file,
                    Span::new(0, 0),
                    format!("template `{name}` is not sent by any step"),
                )
                .with_help(format!(
                    "send it from a step (`… send {name}`), or remove the file if it is no \
                     longer needed"
                )),
            );
        }
    }

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
                Ok(template) => {
                    self.diagnostics
                        .extend(template.unknown_keys.iter().cloned());
                    self.template_content_in(&template, &scope);
                }
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
