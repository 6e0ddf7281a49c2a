//! steprule: stage-aware LINE step delivery for clinics.
//!
//! The pipeline, one module per stage, each depending only on the ones before it:
//! `syntax` (`.step` text → typed AST) → `check` (semantic checks and lints, producing a
//! [`check::RuleSet`] of lowered steps) → later stages (timing plan, evaluator, delivery,
//! ledger). [`values`], [`fields`] and [`scripts`] are ground level: every stage may use them
//! and they use no stage.
//! [`template`] holds the message templates the rules send; [`diagnostic`] is how every stage
//! reports problems; [`time`] is the clinic's clock, which every stage reads.

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
pub mod source;
pub mod syntax;
pub mod template;
pub mod time;
pub mod values;
