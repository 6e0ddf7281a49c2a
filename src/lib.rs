//! steprule: stage-aware LINE step delivery for clinics.
//!
//! The pipeline, one module per stage, each importing only the ones before it (the README's
//! layout table lists the imports): `syntax` (`.step` text → typed AST) → `records` (patient
//! exports → [`PatientRecord`]s) → `template` (message templates and the patient's
//! template context) → `check` (semantic checks and lints, lowering each step once into a
//! [`RuleSet`]) → `plan` (a [`TimingPlan`]) → `eval` (the sends due for a patient at
//! an instant) → `ledger` (what was sent, in SQLite) → `deliver` (LINE push client and outbox)
//! → `serve` (what patients do comes back: LINE webhooks and tracked links, stored in the
//! ledger) → `app` (what each command does).
//!
//! Ground level, used by every stage and using none: `time` (the clinic's clock), `values`,
//! `fields` (the built-in patient fields), `scripts` (the bounded rhai engine),
//! `diagnostic` (how every stage reports problems), `line` (a LINE message, its limits and
//! its tracked links), `source` and `printable`.

// Public: what the binary runs (`app`), the ledger (read by operators' scripts and the tests
// that set up blocks and links), and the parser (its AST is what the property tests generate).
pub mod app;
pub mod ledger;
pub mod syntax;

mod check;
mod deliver;
mod diagnostic;
mod eval;
mod fields;
mod insights;
mod json_plain;
mod line;
mod month_view;
mod plan;
mod postgres_url;
mod prefetch;
mod preview;
mod printable;
mod records;
mod report;
mod review;
mod scripts;
mod serve;
mod source;
mod template;
mod time;
mod values;
mod zeroed;

// What the binary, the benches and the property tests drive directly; everything else is the
// crate's own.
pub use check::{check_file, check_path, CheckOutcome, RuleSet, ScriptEngine};
pub use deliver::{ChannelToken, DeliveryOptions, DEFAULT_API_BASE, MAX_CONCURRENCY};
pub use diagnostic::{render_human, Code, Diagnostic};
pub use eval::{patient_map, Evaluator, PatientOutcome, Window};
pub use line::unit::unit_name;
pub use plan::TimingPlan;
pub use printable::{printable, printable_lines};
pub use records::{
    read_from, Database, Encoding, HeaderMapping, PatientQuery, PatientRecord, ReadOptions,
    RecordFormat,
};
pub use source::SourceFile;
pub use template::TemplateStore;
pub use time::parse_instant;
