//! `steprule review`: the sheet a clinic's director reads and signs before launch — every step
//! in stage order with its timing in words, its conditions, and each template rendered for a
//! sample patient as LINE shows it (the part a lock screen shows marked), every lint finding
//! and every allowance with its reason, and a sign-off block to fill in on paper.
//!
//! [`outline`] reads the steps from the rules as written; `app::review` gathers the rest;
//! this module lays it out as one self-contained page in Japanese (no script, nothing fetched,
//! every value escaped, A4 print style), the same bytes for the same inputs.

pub mod outline;

use minijinja::{escape_formatter, Environment};
use serde::Serialize;

use crate::line::Message;
use crate::preview::html::{bubbles, escape_html, CHAT_CSS};
use crate::preview::{exposed_columns, Notification};

const PAGE: &str = include_str!("sheet.html");

/// Everything the sheet shows, worked out; `sheet.html` only places it.
#[derive(Debug, Clone, Serialize)]
pub struct Sheet {
    pub clinic: String,
    /// The clinic's first character, for the chat's avatar.
    pub initial: String,
    pub rules_file: String,
    /// sha256 of the files reviewed (see [`Digest`]).
    pub digest: Digest,
    /// The review's date, `2026年11月26日`.
    pub date: String,
    pub errors: usize,
    pub warnings: usize,
    pub patients_file: String,
    /// How the sample patients were chosen.
    pub sample_note: String,
    /// Notes about the inputs (rows skipped, rules with errors…), without patient data.
    pub notes: Vec<String>,
    pub stages: Vec<StageGroup>,
    /// Findings tied to no step: the rules file outside steps, templates no step sends.
    pub file_findings: Vec<Finding>,
}

/// What was reviewed, identified by content.
#[derive(Debug, Clone, Serialize)]
pub struct Digest {
    /// sha256 of `sha256sum`'s lines for the files, in order.
    pub combined: String,
    /// Each file: its name as `sha256sum` would print it and its own sha256.
    pub files: Vec<(String, String)>,
    /// The shell command that prints `combined` in the rules' folder.
    pub command: String,
}

/// The steps of one stage (or of none).
#[derive(Debug, Clone, Serialize)]
pub struct StageGroup {
    pub heading: String,
    pub steps: Vec<StepSheet>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepSheet {
    pub id: String,
    pub line: usize,
    pub comment: Vec<String>,
    /// Label and value, in order: timing, conditions, priority… (a new property of steps is
    /// one more row).
    pub facts: Vec<(String, String)>,
    /// Which patient the messages are rendered for: row and id, never the name.
    pub sample: String,
    pub variants: Vec<VariantSheet>,
    pub findings: Vec<Finding>,
    pub allowances: Vec<Allowed>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VariantSheet {
    pub template: String,
    /// 「A/B：50%」, or nothing for a lone template.
    pub share: Option<String>,
    /// The line a lock screen shows; empty when nothing rendered.
    pub notification: String,
    pub notification_source: &'static str,
    /// Patient columns the lock-screen line shows, by name.
    pub exposed: Vec<String>,
    /// The chat bubbles, escaped HTML.
    pub bubbles: String,
    /// Why the template does not render for the sample: names the template and the field,
    /// never a value.
    pub failure: Option<String>,
}

impl VariantSheet {
    /// A variant whose messages rendered for the sample patient. `account` is the clinic's
    /// name (left out when looking for patient columns on the lock screen); `columns` the
    /// patient's text columns by name.
    pub fn rendered(
        template: String,
        share: Option<String>,
        messages: &[Message],
        account: &str,
        columns: &[(String, String)],
    ) -> VariantSheet {
        let first = messages.first().map(Notification::of);
        let notification = first.as_ref().map(Notification::line).unwrap_or_default();
        VariantSheet {
            template,
            share,
            exposed: exposed_columns(&notification, account, columns),
            notification_source: match &first {
                Some(Notification::Text(_)) => "最初のメッセージの本文",
                Some(Notification::AltText(_)) => "最初のメッセージの altText（代替テキスト）",
                Some(Notification::Generic(_)) => "LINE が種類に応じて表示する文言",
                None => "",
            },
            notification,
            bubbles: bubbles(messages),
            failure: None,
        }
    }
}

/// One lint finding, as `check` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub code: String,
    /// 「エラー」 or 「警告」.
    pub severity: &'static str,
    pub is_error: bool,
    pub message: String,
    /// `templates/survey.toml:3`
    pub place: String,
    pub help: Option<String>,
}

/// One allowance: a finding a person reviewed and kept, with the reason written for it.
#[derive(Debug, Clone, Serialize)]
pub struct Allowed {
    pub code: String,
    /// 「テンプレート survey」 or 「ステップ」.
    pub given_by: String,
    pub place: String,
    pub reason: String,
}

/// The sheet as one HTML page.
pub fn render(sheet: &Sheet) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // Text goes through the preview's escaping: control and bidi-override characters from
    // the files are written out, as on a terminal.
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(text) if !value.is_safe() => Ok(out.write_str(&escape_html(text))?),
        _ => escape_formatter(out, state, value),
    });
    env.add_template("sheet.html", PAGE)?;
    let mut html = env
        .get_template("sheet.html")?
        .render(minijinja::context! { sheet, chat_css => CHAT_CSS })?;
    if !html.ends_with('\n') {
        html.push('\n');
    }
    Ok(html)
}

#[cfg(test)]
mod tests;
