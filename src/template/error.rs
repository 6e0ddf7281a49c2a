//! Why a template gives no message for a patient. Delivery must tell two cases apart: the
//! template failed for this patient's data (a later run may succeed once the data is fixed),
//! or it rendered messages LINE would refuse or that break the URL rule (they must never be
//! sent). Every message names the template and the field, never a patient's value.

use super::line::Violation;
use super::render::{MAX_FUEL, MAX_RENDERED_BYTES};
use crate::line::track::TokenError;
use crate::source::Span;

/// A template that gives no message for one patient.
#[derive(Debug, Clone)]
pub enum RenderError {
    /// The template failed for this patient: a filter on a missing or malformed value, a
    /// value too large to render, the step budget. Fixing the patient's data may fix it.
    Failed(RenderFailure),
    /// The messages rendered, but break LINE's limits or the URL rule: never send them.
    Limits(Vec<Violation>),
    /// The OS gave no random bytes for a tracking token: nothing can be sent until it does.
    Token(TokenError),
}

impl RenderError {
    /// Whether the rendered messages must never be sent (rather than failing for the data).
    pub fn is_limit_violation(&self) -> bool {
        matches!(self, RenderError::Limits(_))
    }
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::Failed(failure) => failure.fmt(f),
            RenderError::Token(error) => error.fmt(f),
            RenderError::Limits(violations) => {
                for (index, violation) in violations.iter().enumerate() {
                    if index > 0 {
                        f.write_str("; ")?;
                    }
                    violation.fmt(f)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for RenderError {}

/// A template field that could not be rendered for one patient.
#[derive(Debug, Clone)]
pub struct RenderFailure {
    pub template: String,
    /// The field as named in the template file: `text`, `image`, `buttons.label`, …
    pub field: &'static str,
    /// Where the field is in the template file.
    pub span: Span,
    pub kind: FailureKind,
    /// The line inside the field's text, when minijinja knows it.
    pub line: Option<usize>,
    detail: Option<String>,
}

/// What went wrong while rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The template ran [`MAX_FUEL`] steps without finishing (loops over large ranges).
    OutOfFuel,
    /// One field rendered to more than [`MAX_RENDERED_BYTES`].
    TooLarge,
    /// `line_json` is not valid JSON.
    InvalidJson,
    /// minijinja failed: an unknown filter, a filter on the wrong kind of value, …
    Template(minijinja::ErrorKind),
}

impl RenderFailure {
    pub(super) fn new(
        template: &str,
        field: &'static str,
        span: Span,
        kind: FailureKind,
        line: Option<usize>,
        detail: Option<String>,
    ) -> Self {
        RenderFailure {
            template: template.to_owned(),
            field,
            span,
            kind,
            line,
            detail,
        }
    }

    /// Whether the template ran out of its step or size budget.
    pub fn is_budget(&self) -> bool {
        matches!(self.kind, FailureKind::OutOfFuel | FailureKind::TooLarge)
    }

    /// minijinja's (or the JSON parser's) own explanation. It may quote a rendered value, so it
    /// is for `check`, whose patient is a sample, and never for delivery's messages.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl std::fmt::Display for RenderFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` of template `{}` ", self.field, self.template)?;
        match self.kind {
            FailureKind::OutOfFuel => write!(f, "ran out of its budget of {MAX_FUEL} steps")?,
            FailureKind::TooLarge => write!(f, "rendered more than {MAX_RENDERED_BYTES} bytes")?,
            FailureKind::InvalidJson => write!(f, "is not valid JSON")?,
            FailureKind::Template(kind) => write!(f, "failed: {kind}")?,
        }
        match self.line {
            Some(line) => write!(f, " (template line {line})"),
            None => Ok(()),
        }
    }
}
