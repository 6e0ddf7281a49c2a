//! Diagnostics as data: every problem steprule finds is a [`Diagnostic`] with a stable code, a
//! span and a help text. Stages collect them; only the edge (the CLI) renders them, with miette
//! for people or as JSON for tools.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteSpanContents, SourceCode};
use serde::Serialize;

use crate::source::{SourceFile, Span};

/// How bad a finding is. Errors stop a rule file from being used; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

macro_rules! codes {
    ($($variant:ident => $name:literal, $severity:ident;)*) => {
        /// The stable identity of a kind of finding: `steprule::<name>`. Tools and docs key on
        /// these, so a code is never renamed once released.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The name after `steprule::`.
            pub fn name(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity,)* }
            }
        }
    };
}

codes! {
    Syntax => "syntax", Error;
    UnknownStage => "unknown-stage", Error;
    UnknownField => "unknown-field", Error;
    NotADateField => "not-a-date-field", Error;
    UnknownTemplate => "unknown-template", Error;
    DuplicateStep => "duplicate-step", Error;
    DuplicateDeclaration => "duplicate-declaration", Error;
    WeightSum => "variant-weights", Error;
    InvalidTime => "invalid-time", Error;
    InvalidTimezone => "invalid-timezone", Error;
    InvalidDuration => "invalid-duration", Error;
    DurationOutOfRange => "duration-out-of-range", Error;
    TooDeeplyNested => "too-deeply-nested", Error;
    InvalidValue => "invalid-value", Error;
    TypeMismatch => "type-mismatch", Error;
    ScriptError => "script-error", Error;
    TemplateInvalid => "template-invalid", Error;
    TemplateSyntax => "template-syntax", Error;
    TemplateRender => "template-render", Error;
    TemplateUnknownVariable => "template-unknown-variable", Error;
    TemplateBudget => "template-budget", Error;
    LineLimit => "line-limit", Error;
    InsecureUrl => "insecure-url", Error;
    InvalidTrackUrl => "invalid-track-url", Error;
    MissingLinkTemplate => "missing-link-template", Error;
    UnknownStep => "unknown-step", Error;
    ReactionCycle => "reaction-cycle", Error;
    AdAbsolute => "ad-absolute", Error;
    AdSuperiority => "ad-superiority", Error;
    // Error by default; the lists mark the words the guideline allows with objective backing
    // as warnings (a person must judge), and the finding carries that severity.
    AdExaggeration => "ad-exaggeration", Error;
    AdTestimonial => "ad-testimonial", Error;
    AdSelfPayTreatment => "ad-self-pay-treatment", Error;
    AdSelfPayCost => "ad-self-pay-cost", Error;
    AdSelfPayRisks => "ad-self-pay-risks", Error;
    AdSelfPayNotice => "ad-self-pay-notice", Error;
    AdSelfPayContact => "ad-self-pay-contact", Error;
    AdFirstPrice => "ad-first-price", Error;
    PrivacyPreview => "privacy-preview", Error;
    PrivacySensitiveField => "privacy-sensitive-field", Error;
    PromoWithoutConsent => "promo-without-consent", Error;
    SameInstant => "same-instant", Warning;
    QuietHoursAt => "quiet-hours-at", Warning;
    UnnamedStep => "unnamed-step", Warning;
    UnusedStage => "unused-stage", Warning;
    TooManyUnitNames => "too-many-unit-names", Warning;
    ReminderCapped => "reminder-capped", Warning;
    UnknownLint => "unknown-lint", Warning;
    UnusedTemplate => "unused-template", Warning;
    ReactionNeverRecorded => "reaction-never-recorded", Warning;
    BirthDateOnce => "birth-date-once", Warning;
    AdBeforeAfter => "ad-before-after", Warning;
    UnusedAllow => "unused-allow", Warning;
    PrivacyOptOut => "privacy-opt-out", Warning;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "steprule::{}", self.name())
    }
}

/// A second place that explains the first (e.g. where a duplicate id was first defined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    pub span: Span,
    pub label: String,
}

/// One finding in one file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub file: SourceFile,
    pub span: Span,
    pub label: Option<String>,
    pub help: Option<String>,
    pub related: Vec<Related>,
}

impl Diagnostic {
    pub fn new(code: Code, file: &SourceFile, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            file: file.clone(),
            span,
            label: None,
            help: None,
            related: Vec::new(),
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_optional_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    pub fn with_related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push(Related {
            span,
            label: label.into(),
        });
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// 1-based line and column of the start of the span.
    pub fn line_column(&self) -> (usize, usize) {
        self.file.line_column(self.span.start)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Warning => miette::Severity::Warning,
            Severity::Error => miette::Severity::Error,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.file)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary = LabeledSpan::new_primary_with_span(self.label.clone(), self.span);
        let related = self
            .related
            .iter()
            .map(|r| LabeledSpan::new_with_span(Some(r.label.clone()), r.span));
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}

impl SourceCode for SourceFile {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let contents = self
            .text()
            .read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name(),
            contents.data(),
            *contents.span(),
            contents.line(),
            contents.column(),
            contents.line_count(),
        )))
    }
}

/// The JSON shape of a diagnostic for `--format json`.
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic {
    pub code: String,
    pub severity: Severity,
    pub message: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub help: Option<String>,
}

impl From<&Diagnostic> for JsonDiagnostic {
    fn from(diag: &Diagnostic) -> Self {
        let (line, column) = diag.line_column();
        JsonDiagnostic {
            code: diag.code.to_string(),
            severity: diag.severity,
            message: diag.message.clone(),
            file: diag.file.name(),
            line,
            column,
            help: diag.help.clone(),
        }
    }
}

/// Renders diagnostics for a person: file, line, caret, help. `color` is for terminals only, so
/// that output piped to a file or compared in tests is plain.
pub fn render_human(diagnostics: &[Diagnostic], color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    for diag in diagnostics {
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, diag);
        out.push('\n');
    }
    out
}

/// Renders diagnostics as one JSON array.
pub fn render_json(diagnostics: &[Diagnostic]) -> serde_json::Result<String> {
    let rows: Vec<JsonDiagnostic> = diagnostics.iter().map(JsonDiagnostic::from).collect();
    serde_json::to_string_pretty(&rows)
}

/// Sorts findings the way a reader goes through files: by file, then by position.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (a.file.path(), a.span.start, a.span.end).cmp(&(b.file.path(), b.span.start, b.span.end))
    });
}

/// Did-you-mean: the closest candidate to a misspelt name, if it is close enough to be the
/// likely intent.
pub fn suggest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wrong_lower = wrong.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| {
            let score = strsim::jaro_winkler(&wrong_lower, &candidate.to_lowercase());
            (score, candidate)
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_distinct_name() {
        let mut names: Vec<_> = Code::ALL.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
    }

    #[test]
    fn suggests_close_names_only() {
        let stages = ["booked", "first_visit", "follow_up", "regular"];
        assert_eq!(suggest("bookd", stages), Some("booked"));
        assert_eq!(suggest("first_vist", stages), Some("first_visit"));
        assert_eq!(suggest("Regular", stages), Some("regular"));
        assert_eq!(suggest("xyz", stages), None);
    }

    #[test]
    fn json_has_one_based_positions() {
        let file = SourceFile::new("a.step", "stages a\nwhen x");
        let diag = Diagnostic::new(Code::Syntax, &file, Span::new(14, 15), "bad");
        let json = JsonDiagnostic::from(&diag);
        assert_eq!((json.line, json.column), (2, 6));
        assert_eq!(json.code, "steprule::syntax");
    }
}
