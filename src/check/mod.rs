//! Semantic checks and lints. `check_file` takes a parsed `.step` file to a [`RuleSet`] that
//! later stages can trust, or to the list of everything wrong with it. Each kind of check lives
//! in its own file; this one collects declarations and walks the steps.

mod allow;
mod anniversary;
pub(crate) mod compliance;
mod conditions;
mod fields;
mod link_templates;
mod lower;
mod observe;
mod priority;
pub(crate) mod privacy;
mod reactions;
mod templates;
mod timing;
mod track;

pub use crate::scripts::ScriptEngine;
pub use crate::syntax::Purpose;
pub use crate::values::{Cap, QuietHours};
pub use fields::FieldKind;
pub use lower::{AnchorField, Direction, Leaf, ReactionTest, ReactionTestKind, Step, Test};
pub use observe::Observed;
pub use reactions::MAX_REACTION_DAYS;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use chrono_tz::Tz;

use crate::diagnostic::{self, suggest, Code, Diagnostic};
use crate::line::track::TrackBase;
use crate::source::{SourceFile, Span, Spanned};
use crate::syntax::{self, ClockTime, Ident, Statement, StepDecl};
use crate::template::{Template, TemplateStore};

/// A checked rule file: settings resolved, every step with a stable id and its templates
/// loaded. Only built when the file has no errors.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub file: SourceFile,
    pub clinic: Option<String>,
    pub timezone: Tz,
    pub quiet: Option<QuietHours>,
    pub cap: Option<Cap>,
    /// Where tracked links point, when clicks are tracked.
    pub track: Option<TrackBase>,
    /// `start`: the clinic's first day of sending; sends timed before it are skipped.
    pub start: Option<chrono::NaiveDate>,
    pub stages: Vec<String>,
    pub date_fields: Vec<String>,
    pub fields: Vec<String>,
    /// `consent FIELD`: the declared field holding marketing consent.
    pub consent: Option<String>,
    /// `sensitive …`: the declared fields holding special-care information.
    pub sensitive: Vec<String>,
    pub steps: Vec<Step>,
    /// What `run` watches in the export (bookings, visits) and how `report` credits it.
    pub observed: Observed,
}

impl RuleSet {
    /// What a patient export must be read against: the zone for naive times, the stage names
    /// and the declared columns.
    pub fn record_schema(&self) -> crate::records::RecordSchema {
        crate::records::RecordSchema {
            timezone: self.timezone,
            stages: self.stages.clone(),
            date_fields: self.date_fields.clone(),
            fields: self.fields.clone(),
        }
    }
}

/// A step whose checks ran, before it is lowered (only when the whole file has no errors).
struct CheckedStep<'a> {
    decl: &'a StepDecl,
    id: String,
    named: bool,
    /// The templates of `decl.send` that loaded, in the same order.
    templates: Vec<Arc<Template>>,
}

/// What checking a file gives: the rules (when there are no errors) and every finding.
#[derive(Debug)]
pub struct CheckOutcome {
    pub rules: Option<RuleSet>,
    pub diagnostics: Vec<Diagnostic>,
}

impl CheckOutcome {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// What else to check besides the rules and the templates their steps send.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// The rules are served (`steprule serve`, `check --serve`): the link templates must be
    /// there and render.
    pub serve: bool,
}

/// Checks one `.step` file, loading its templates from `templates`.
pub fn check_file(file: &SourceFile, templates: &mut TemplateStore) -> CheckOutcome {
    check_file_with(file, templates, CheckOptions::default())
}

/// [`check_file`], with `options`.
pub fn check_file_with(
    file: &SourceFile,
    templates: &mut TemplateStore,
    options: CheckOptions,
) -> CheckOutcome {
    let (ast, mut diagnostics) = syntax::parse(file);
    let mut checker = Checker::new(file);
    checker.declarations(&ast.statements);
    let observed = checker.observed();
    let steps: Vec<&StepDecl> = ast
        .statements
        .iter()
        .filter_map(|s| match s {
            Statement::Step(step) => Some(step.as_ref()),
            _ => None,
        })
        .collect();
    checker.privacy_settings();
    checker.opt_out_wanted(&steps);
    let ids = checker.step_ids(&steps);
    let scripts = ScriptEngine::new();
    let mut checked = Vec::new();
    for (step, id) in steps.iter().zip(ids) {
        checker.conditions(step, &scripts);
        checker.timing(step);
        let step_templates = checker.templates(step, templates);
        checked.push(CheckedStep {
            decl: step,
            id: id.0,
            named: id.1,
            templates: step_templates,
        });
    }
    checker.cross_step_lints(&checked);
    checker.privacy_steps(&checked);
    let recorded = reactions::Recorded {
        tracked: checker.decls.track.is_some(),
        bookings: !observed.bookings.is_empty(),
    };
    checker.reactions(&checked, &recorded);
    // A step that did not parse may be the one sending the template.
    if diagnostics.is_empty() {
        checker.unused_templates(templates, &checked);
    }
    // Tracked links lead to `serve`, which answers new friends with the link templates.
    if options.serve || checker.decls.track.is_some() {
        checker.link_templates(templates);
    }
    let allowances = checker.allowances(&checked);
    allow::apply(&mut checker.diagnostics, file, &allowances);
    diagnostics.append(&mut checker.diagnostics);
    diagnostic::sort(&mut diagnostics);
    let has_errors = diagnostics.iter().any(Diagnostic::is_error);
    let rules = (!has_errors).then(|| {
        let steps = checked
            .into_iter()
            .map(|step| checker.lower(step))
            .collect();
        checker.into_rules(steps, observed)
    });
    CheckOutcome { rules, diagnostics }
}

/// Reads and checks a `.step` file; its templates come from `templates_dir`, or from
/// `templates/` beside the file.
pub fn check_path(
    path: &std::path::Path,
    templates_dir: Option<&std::path::Path>,
) -> std::io::Result<CheckOutcome> {
    check_path_with(path, templates_dir, CheckOptions::default())
}

/// [`check_path`], with `options`.
pub fn check_path_with(
    path: &std::path::Path,
    templates_dir: Option<&std::path::Path>,
    options: CheckOptions,
) -> std::io::Result<CheckOutcome> {
    let file = SourceFile::read(path)?;
    let mut store = match templates_dir {
        Some(dir) => TemplateStore::new(dir),
        None => TemplateStore::beside(path),
    };
    Ok(check_file_with(&file, &mut store, options))
}

/// What the settings and declarations of a file say, gathered before any step is checked so
/// that steps may come before the `stages` line.
#[derive(Debug, Default)]
struct Declarations {
    clinic: Option<Spanned<String>>,
    timezone: Option<(Tz, Span)>,
    quiet: Option<(QuietHours, Span)>,
    cap: Option<Cap>,
    track: Option<TrackBase>,
    start: Option<chrono::NaiveDate>,
    stages: Vec<Ident>,
    dates: Vec<Ident>,
    fields: Vec<Ident>,
    observe: observe::ObserveSettings,
    /// `consent FIELD`: the declared field holding marketing consent.
    consent: Option<Ident>,
    /// `sensitive …`: declared fields holding special-care information.
    sensitive: Vec<Ident>,
}

struct Checker<'f> {
    file: &'f SourceFile,
    decls: Declarations,
    diagnostics: Vec<Diagnostic>,
    /// First place each setting was given, to point at when it is given again.
    settings_seen: HashMap<&'static str, Span>,
    /// Templates already checked, so that a template sent by several steps is reported once.
    templates_checked: std::collections::HashSet<String>,
    /// The templates folder is missing: said once, not once per step.
    templates_folder_missing: bool,
    /// Every rhai condition compiled so far, by its code, for the lowered steps to share.
    scripts: HashMap<String, Arc<rhai::AST>>,
    /// Each step's index by id, for reactions and `after sent` timings to name steps by.
    step_index: HashMap<String, usize>,
    /// What each checked template shows of the privacy lints, by template name.
    template_facts: HashMap<String, privacy::TemplateFacts>,
    /// The templates promo and periodic steps send, whose text must say how to opt out.
    opt_out_wanted: std::collections::HashSet<String>,
}

impl<'f> Checker<'f> {
    fn new(file: &'f SourceFile) -> Self {
        Checker {
            file,
            decls: Declarations::default(),
            diagnostics: Vec::new(),
            settings_seen: HashMap::new(),
            templates_checked: std::collections::HashSet::new(),
            templates_folder_missing: false,
            scripts: HashMap::new(),
            step_index: HashMap::new(),
            template_facts: HashMap::new(),
            opt_out_wanted: std::collections::HashSet::new(),
        }
    }

    fn report(&mut self, code: Code, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        let index = self.diagnostics.len();
        self.diagnostics
            .push(Diagnostic::new(code, self.file, span, message));
        &mut self.diagnostics[index]
    }

    /// Reports a setting given twice; true the first time.
    fn first_setting(&mut self, name: &'static str, span: Span) -> bool {
        if let Some(first) = self.settings_seen.get(name).copied() {
            let diag = self.report(
                Code::DuplicateDeclaration,
                span,
                format!("`{name}` is set more than once"),
            );
            diag.label = Some("set again here".into());
            diag.related.push(diagnostic::Related {
                span: first,
                label: "first set here".into(),
            });
            diag.help = Some(format!("keep one `{name}` line"));
            return false;
        }
        self.settings_seen.insert(name, span);
        true
    }

    fn declarations(&mut self, statements: &[Statement]) {
        for statement in statements {
            match statement {
                Statement::Clinic(name) => {
                    if self.first_setting("clinic", name.span) {
                        self.decls.clinic = Some(name.clone());
                    }
                }
                Statement::Timezone(zone) => {
                    if self.first_setting("timezone", zone.span) {
                        self.timezone(zone);
                    }
                }
                Statement::Quiet { from, to, span } => {
                    if self.first_setting("quiet", *span) {
                        self.quiet(from, to, *span);
                    }
                }
                Statement::Cap {
                    count,
                    period,
                    span,
                } => {
                    if self.first_setting("cap", *span) {
                        if count.node == 0 {
                            self.report(
                                Code::InvalidValue,
                                count.span,
                                "a cap of 0 sends nothing",
                            )
                            .help = Some(
                                "remove `cap` to send without a limit, or use 1 or more".into(),
                            );
                        } else {
                            self.decls.cap = Some(Cap {
                                count: count.node,
                                period: period.node,
                            });
                        }
                    }
                }
                Statement::Track(url) => {
                    if self.first_setting("track", url.span) {
                        self.track(url);
                    }
                }
                Statement::Start(day) => {
                    if self.first_setting("start", day.span) {
                        self.decls.start = Some(day.node);
                    }
                }
                Statement::Consent(field) => {
                    if self.first_setting("consent", field.span) {
                        self.decls.consent = Some(field.clone());
                    }
                }
                Statement::Sensitive(names) => {
                    let span = match (names.first(), names.last()) {
                        (Some(first), Some(last)) => first.span.to(last.span),
                        _ => continue,
                    };
                    if self.first_setting("sensitive", span) {
                        self.decls.sensitive = names.clone();
                    }
                }
                Statement::Stages(names) => self.declare_names(names, DeclKind::Stage),
                Statement::Dates(names) => self.declare_names(names, DeclKind::Date),
                Statement::Fields(names) => self.declare_names(names, DeclKind::Field),
                Statement::Step(_) => {}
                other => self.observe_setting(other),
            }
        }
    }

    fn timezone(&mut self, zone: &Spanned<String>) {
        match Tz::from_str(&zone.node) {
            Ok(tz) => self.decls.timezone = Some((tz, zone.span)),
            Err(_) => {
                let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
                let help = match suggest(&zone.node, names) {
                    Some(name) => format!("did you mean \"{name}\"?"),
                    None => "use an IANA time zone name such as \"Asia/Tokyo\"".into(),
                };
                self.report(
                    Code::InvalidTimezone,
                    zone.span,
                    format!("unknown time zone \"{}\"", zone.node),
                )
                .help = Some(help);
            }
        }
    }

    fn quiet(&mut self, from: &Spanned<ClockTime>, to: &Spanned<ClockTime>, span: Span) {
        let from_ok = self.valid_time(from);
        let to_ok = self.valid_time(to);
        if !(from_ok && to_ok) {
            return;
        }
        if from.node == to.node {
            self.report(
                Code::InvalidTime,
                span,
                "the quiet window starts and ends at the same time",
            )
            .help = Some("give a window such as `quiet 21:00-09:00` (it may wrap midnight)".into());
            return;
        }
        self.decls.quiet = Some((
            QuietHours {
                from: from.node,
                to: to.node,
            },
            span,
        ));
    }

    /// Reports a clock time like `25:00`; true when the time is valid.
    fn valid_time(&mut self, time: &Spanned<ClockTime>) -> bool {
        if time.node.is_valid() {
            return true;
        }
        self.report(
            Code::InvalidTime,
            time.span,
            format!("`{}` is not a time of day", self.file.slice(time.span)),
        )
        .help = Some("times are HH:MM on a 24-hour clock, from 00:00 to 23:59".into());
        false
    }

    fn declare_names(&mut self, names: &[Ident], kind: DeclKind) {
        for name in names {
            if fields::RULE_VARIABLES.contains(&name.node.as_str()) {
                self.report(
                    Code::DuplicateDeclaration,
                    name.span,
                    format!("`{}` is reserved for the rules' own settings", name.node),
                )
                .help = Some(format!("templates see `{}` from the rules; name the column differently (and map it in the header mapping)", name.node));
                continue;
            }
            if let Some(builtin) = fields::builtin(&name.node) {
                self.report(
                    Code::DuplicateDeclaration,
                    name.span,
                    format!("`{}` is built in and cannot be declared", name.node),
                )
                .help = Some(format!(
                    "`{}` is always available: {}",
                    name.node,
                    builtin.about()
                ));
                continue;
            }
            let earlier = [
                (&self.decls.stages, "a stage"),
                (&self.decls.dates, "a date field"),
                (&self.decls.fields, "a field"),
            ]
            .into_iter()
            .find_map(|(list, what)| {
                list.iter()
                    .find(|d| d.node == name.node)
                    .map(|d| (d.span, what))
            });
            if let Some((first, what)) = earlier {
                let diag = self.report(
                    Code::DuplicateDeclaration,
                    name.span,
                    format!("`{}` is already declared as {what}", name.node),
                );
                diag.label = Some("declared again here".into());
                diag.related.push(diagnostic::Related {
                    span: first,
                    label: "first declared here".into(),
                });
                continue;
            }
            match kind {
                DeclKind::Stage => self.decls.stages.push(name.clone()),
                DeclKind::Date => self.decls.dates.push(name.clone()),
                DeclKind::Field => self.decls.fields.push(name.clone()),
            }
        }
    }

    /// Every step's id: its name, or one derived from what it does. Reports duplicates and
    /// unnamed steps.
    fn step_ids(&mut self, steps: &[&StepDecl]) -> Vec<(String, bool)> {
        let mut first_use: HashMap<String, Span> = HashMap::new();
        for step in steps {
            if let Some(name) = &step.name {
                if let Some(first) = first_use.get(&name.node) {
                    let diag = self.report(
                        Code::DuplicateStep,
                        name.span,
                        format!("step `{}` is defined more than once", name.node),
                    );
                    diag.label = Some("defined again here".into());
                    diag.related.push(diagnostic::Related {
                        span: *first,
                        label: "first defined here".into(),
                    });
                    diag.help = Some(
                        "the ledger records sends by step id, so each step needs its own; \
                         rename one of them"
                            .into(),
                    );
                } else {
                    first_use.insert(name.node.clone(), name.span);
                }
            }
        }
        steps
            .iter()
            .map(|step| match &step.name {
                Some(name) => (name.node.clone(), true),
                None => {
                    let id = unique_id(timing::derived_id(step), &first_use);
                    first_use.insert(id.clone(), step.span);
                    self.report(
                        Code::UnnamedStep,
                        step.when.span.to(step.timing.span),
                        format!("this step has no name; its id will be `{id}`"),
                    )
                    .help = Some(format!(
                        "write `step {id}: when …`. The ledger remembers what was sent by step id; a \
                         derived id changes when the step is edited, and then patients who already \
                         got this message would get it again"
                    ));
                    (id, false)
                }
            })
            .collect()
    }

    fn into_rules(self, steps: Vec<Step>, observed: Observed) -> RuleSet {
        let names = |list: Vec<Ident>| list.into_iter().map(|i| i.node).collect();
        RuleSet {
            file: self.file.clone(),
            clinic: self.decls.clinic.map(|c| c.node),
            timezone: self
                .decls
                .timezone
                .map(|(tz, _)| tz)
                .unwrap_or(chrono_tz::Asia::Tokyo),
            quiet: self.decls.quiet.map(|(q, _)| q),
            cap: self.decls.cap,
            track: self.decls.track,
            start: self.decls.start,
            stages: names(self.decls.stages),
            date_fields: names(self.decls.dates),
            fields: names(self.decls.fields),
            consent: self.decls.consent.map(|c| c.node),
            sensitive: names(self.decls.sensitive),
            steps,
            observed,
        }
    }
}

#[derive(Clone, Copy)]
enum DeclKind {
    Stage,
    Date,
    Field,
}

fn unique_id(base: String, taken: &HashMap<String, Span>) -> String {
    if !taken.contains_key(&base) {
        return base;
    }
    // At most `taken.len()` suffixes are taken, so one of the first `taken.len() + 1` is free.
    let mut n = 2;
    loop {
        let id = format!("{base}_{n}");
        if !taken.contains_key(&id) {
            return id;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests;
