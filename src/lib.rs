//! steprule: stage-aware LINE step delivery for clinics.
//!
//! The pipeline, one module per stage, each depending only on the ones before it:
//! `syntax` (`.step` text → typed AST) → `check` (semantic checks and lints, producing a
//! [`check::RuleSet`]) → later stages (timing plan, evaluator, delivery, ledger, report).
//! [`template`] holds the message templates the rules send; [`diagnostic`] is how every stage
//! reports problems.

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
pub mod source;
pub mod syntax;
pub mod template;
pub mod values;
