//! steprule: stage-aware LINE step delivery for clinics.
//!
//! The pipeline, one module per stage, each importing only the ones before it (the README's
//! layout table lists the imports): `syntax` (`.step` text → typed AST) → `records` (patient
//! exports → [`records::PatientRecord`]s) → `template` (message templates and the patient's
//! template context) → `check` (semantic checks and lints, lowering each step once into a
//! [`check::RuleSet`]) → `plan` (a [`plan::TimingPlan`]) → `eval` (the sends due for a patient at
//! an instant) → `ledger` (what was sent, in SQLite) → `deliver` (LINE push client and outbox)
//! → `serve` (what patients do comes back: LINE webhooks and tracked links, stored in the
//! ledger) → `app` (what each command does).
//!
//! Ground level, used by every stage and using none: [`time`] (the clinic's clock), [`values`],
//! [`fields`] (the built-in patient fields), [`scripts`] (the bounded rhai engine),
//! [`diagnostic`] (how every stage reports problems), [`source`] and [`printable`].

pub mod app;
pub mod check;
pub mod deliver;
pub mod diagnostic;
pub mod eval;
pub mod fields;
pub mod ledger;
pub mod plan;
pub mod printable;
pub mod records;
pub mod scripts;
pub mod serve;
pub mod source;
pub mod syntax;
pub mod template;
pub mod time;
pub mod values;
