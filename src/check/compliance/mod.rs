//! Medical-advertising lints (`steprule::ad-…`): every string a patient reads in a rendered
//! message — texts, alt texts, button labels, titles — is matched against the word lists of
//! `compliance/ad_words.toml`; image names only for before/after photos. A finding points at
//! the word in the template file. A lint flags text for a person to review; passing it does not
//! make a message lawful (docs/compliance.md).

mod lexicon;
mod normalize;
mod pieces;

#[cfg(test)]
mod tests;

use lexicon::{Category, Cue, Lexicon};
// The privacy lints match the same way and read the same pieces of rendered text.
pub(super) use lexicon::{scan, Hit, Role};
pub(super) use normalize::Normalized;
// Consent cells are read with the same folding (`ＹＥＳ`, `はい`).
pub(crate) use normalize::fold;
pub(super) use pieces::{pieces, Piece, PieceKind};

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use crate::diagnostic::{suggest, Code, Diagnostic};
use crate::line::Message;
use crate::printable::printable;
use crate::source::Span;
use crate::template::Template;

/// The codes a template's `allow` may name.
pub const AD_CODES: &[Code] = &[
    Code::AdAbsolute,
    Code::AdSuperiority,
    Code::AdExaggeration,
    Code::AdTestimonial,
    Code::AdBeforeAfter,
    Code::AdSelfPayTreatment,
    Code::AdSelfPayCost,
    Code::AdSelfPayRisks,
    Code::AdSelfPayNotice,
    Code::AdSelfPayContact,
    Code::AdFirstPrice,
];

/// The advertising findings for a template's rendered `messages`, less those its `allow`
/// silences, plus the problems of the `allow` entries themselves.
pub fn lint(template: &Template, messages: &[Message]) -> Vec<Diagnostic> {
    let lexicon = Lexicon::shipped();
    let pieces = pieces::pieces(template, messages);
    let mut linter = Linter {
        template,
        lexicon,
        findings: Vec::new(),
        seen: HashSet::new(),
        occurrences: HashMap::new(),
    };
    let mut cues: HashSet<Cue> = HashSet::new();
    let mut before_after = Vec::new();
    for piece in &pieces {
        let folded = Normalized::new(&piece.value);
        let found = lexicon.find(&folded);
        cues.extend(found.cues.iter().map(|(cue, _)| *cue));
        if piece.kind == PieceKind::Link {
            continue;
        }
        for hit in &found.hits {
            let entry = &lexicon.entries[hit.entry];
            if piece.kind == PieceKind::Image && entry.category != Category::BeforeAfter {
                continue;
            }
            let original = folded.original(hit.range.clone());
            if entry.category == Category::BeforeAfter {
                before_after.push((piece, original, hit.entry));
                continue;
            }
            linter.word(piece, original, hit.entry);
        }
        if piece.kind == PieceKind::Text {
            if let Some(range) = quoted_testimonial(folded.as_str()) {
                linter.testimonial(piece, folded.original(range));
            }
            linter.first_price(piece, &folded, &found);
        }
    }
    let unexplained: Vec<Cue> = [
        Cue::ExplainTreatment,
        Cue::ExplainCost,
        Cue::ExplainPeriod,
        Cue::ExplainRisks,
    ]
    .into_iter()
    .filter(|cue| !cues.contains(cue))
    .collect();
    if !unexplained.is_empty() {
        for (piece, original, entry) in before_after {
            linter.before_after(piece, original, entry, &unexplained);
        }
    }
    if let Some(self_pay) = template.self_pay.as_ref().filter(|s| s.node) {
        linter.self_pay(self_pay.span, &cues);
    }
    let findings = std::mem::take(&mut linter.findings);
    allowances(template, findings)
}

struct Linter<'t> {
    template: &'t Template,
    lexicon: &'static Lexicon,
    findings: Vec<Diagnostic>,
    /// (code, span) already reported: a word standing twice at one place is one finding.
    seen: HashSet<(Code, usize, usize)>,
    /// How many times each word was looked for in each field, to point at the next one.
    occurrences: HashMap<(Span, String), usize>,
}

impl Linter<'_> {
    fn push(&mut self, diag: Diagnostic) {
        if self
            .seen
            .insert((diag.code, diag.span.start, diag.span.end))
        {
            self.findings.push(diag);
        }
    }

    /// Where `word` (as rendered) stands in the template file: its next place in the field's
    /// text as written, or the whole field when it came from a variable.
    fn locate(&mut self, piece: &Piece, word: &str) -> Span {
        let field = piece.span;
        let raw = self.template.file.slice(field);
        let nth = self
            .occurrences
            .entry((field, word.to_owned()))
            .or_insert(0);
        let found = raw
            .match_indices(word)
            .nth(*nth)
            .or_else(|| raw.match_indices(word).next());
        *nth += 1;
        match found {
            Some((start, _)) if !word.is_empty() => {
                Span::new(field.start + start, field.start + start + word.len())
            }
            _ => field,
        }
    }

    fn help(&self, category: Category) -> String {
        let code = category.code().name();
        match self.lexicon.about(category) {
            Some(about) => format!(
                "{}. Source: {}. After a person's review, a template can keep it with \
                 `allow = [{{ code = \"{code}\", reason = \"…\" }}]`",
                about.help, about.source
            ),
            None => String::new(),
        }
    }

    fn word(&mut self, piece: &Piece, original: Range<usize>, entry: usize) {
        let entry = &self.lexicon.entries[entry];
        let word = piece.value.get(original).unwrap_or_default().to_owned();
        let what = match entry.category {
            Category::Absolute => "is a false or absolute claim (虚偽広告)",
            Category::Superiority => "claims superiority over other clinics (比較優良広告)",
            Category::Exaggeration => "exaggerates (誇大広告)",
            Category::Testimonial => "introduces patient testimonials (体験談)",
            Category::BeforeAfter => "shows before/after photos",
        };
        let span = self.locate(piece, &word);
        let mut diag = Diagnostic::new(
            entry.category.code(),
            &self.template.file,
            span,
            format!(
                "「{}」 in {} of template `{}` {what}",
                printable(&word),
                piece.field,
                self.template.name
            ),
        )
        .with_label(entry.reason.clone())
        .with_help(self.help(entry.category));
        diag.severity = entry.severity;
        self.push(diag);
    }

    fn testimonial(&mut self, piece: &Piece, original: Range<usize>) {
        let quoted = piece.value.get(original).unwrap_or_default().to_owned();
        let span = self.locate(piece, &quoted);
        let diag = Diagnostic::new(
            Code::AdTestimonial,
            &self.template.file,
            span,
            format!(
                "{} of template `{}` quotes a patient with their age: a testimonial (体験談)",
                piece.field, self.template.name
            ),
        )
        .with_label("a quoted experience with an age")
        .with_help(self.help(Category::Testimonial));
        self.push(diag);
    }

    fn before_after(
        &mut self,
        piece: &Piece,
        original: Range<usize>,
        entry: usize,
        missing: &[Cue],
    ) {
        let entry = &self.lexicon.entries[entry];
        let word = piece.value.get(original).unwrap_or_default().to_owned();
        let missing: Vec<&str> = missing.iter().map(|cue| cue_name(*cue)).collect();
        let span = self.locate(piece, &word);
        let mut diag = Diagnostic::new(
            Code::AdBeforeAfter,
            &self.template.file,
            span,
            format!(
                "「{}」 in {} of template `{}`: before/after photos without {} explained",
                printable(&word),
                piece.field,
                self.template.name,
                missing.join(", ")
            ),
        )
        .with_label(entry.reason.clone())
        .with_help(self.help(Category::BeforeAfter));
        diag.severity = entry.severity;
        self.push(diag);
    }

    /// An offer (初回, キャンペーン …) next to a price, with no normal price in the same text.
    fn first_price(&mut self, piece: &Piece, folded: &Normalized, found: &lexicon::Found) {
        let normal = found.cues.iter().any(|(cue, _)| *cue == Cue::NormalPrice);
        if normal || !has_price(folded.as_str()) {
            return;
        }
        let Some((_, range)) = found.cues.iter().find(|(cue, _)| *cue == Cue::Offer) else {
            return;
        };
        let word = piece
            .value
            .get(folded.original(range.clone()))
            .unwrap_or_default()
            .to_owned();
        let span = self.locate(piece, &word);
        let normal_words: Vec<&str> = self.lexicon.cue_words(Cue::NormalPrice).collect();
        let diag = Diagnostic::new(
            Code::AdFirstPrice,
            &self.template.file,
            span,
            format!(
                "{} of template `{}` gives a first-visit or campaign price without the normal price",
                piece.field, self.template.name
            ),
        )
        .with_label(format!("「{}」 with a price", printable(&word)))
        .with_help(format!(
            "state the normal price beside it (「{}価格 ○○円」), so that the offer is not \
             mistaken for the usual cost; price-led wording is weighed as exaggeration (誇大広告)",
            normal_words.first().copied().unwrap_or("通常")
        ));
        self.push(diag);
    }

    fn self_pay(&mut self, span: Span, cues: &HashSet<Cue>) {
        let required = [
            (Cue::SelfPayTreatment, Code::AdSelfPayTreatment),
            (Cue::SelfPayCost, Code::AdSelfPayCost),
            (Cue::SelfPayRisks, Code::AdSelfPayRisks),
            (Cue::SelfPayNotice, Code::AdSelfPayNotice),
            (Cue::SelfPayContact, Code::AdSelfPayContact),
        ];
        for (cue, code) in required {
            if cues.contains(&cue) {
                continue;
            }
            let words: Vec<&str> = self.lexicon.cue_words(cue).take(6).collect();
            let diag = Diagnostic::new(
                code,
                &self.template.file,
                span,
                format!(
                    "self-pay template `{}` does not state {}",
                    self.template.name,
                    cue_name(cue)
                ),
            )
            .with_label("self-pay treatment")
            .with_help(format!(
                "self-pay (自由診療) advertising must state the usual treatment, its cost, the \
                 main risks and side effects, that it is self-pay, and a contact (医療広告\
                 ガイドライン, 広告可能事項の限定解除の要件); say it with words such as 「{}」",
                words.join("」「")
            ));
            self.push(diag);
        }
    }
}

fn cue_name(cue: Cue) -> &'static str {
    match cue {
        Cue::ExplainTreatment => "the treatment (治療内容)",
        Cue::SelfPayTreatment => "the usual treatment (治療内容)",
        Cue::ExplainCost | Cue::SelfPayCost => "its cost (費用)",
        Cue::ExplainPeriod => "the treatment period (治療期間・回数)",
        Cue::ExplainRisks | Cue::SelfPayRisks => "the main risks and side effects (リスク・副作用)",
        Cue::SelfPayNotice => "that it is self-pay (自費・自由診療)",
        Cue::SelfPayContact => "a contact (連絡先)",
        Cue::Offer => "an offer",
        Cue::NormalPrice => "the normal price",
    }
}

/// A price in folded text: digits then 円 (or 万円, 千円), or ¥ then digits.
fn has_price(folded: &str) -> bool {
    let chars: Vec<char> = folded.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| match c {
        '円' => {
            let before = |n: usize| i.checked_sub(n).and_then(|j| chars.get(j)).copied();
            let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
            digit(before(1)) || (matches!(before(1), Some('万' | '千')) && digit(before(2)))
        }
        '¥' | '\\' => chars.get(i + 1).is_some_and(char::is_ascii_digit),
        _ => false,
    })
}

/// A quoted sentence followed by an age, as testimonials are signed: 「…」（40代・女性）,
/// "…" - 30歳. The folded range from the closing quote to the age.
fn quoted_testimonial(folded: &str) -> Option<Range<usize>> {
    for (close, c) in folded.char_indices() {
        if !matches!(c, '」' | '』' | '"') {
            continue;
        }
        let mut rest = folded[close + c.len_utf8()..].char_indices().peekable();
        let base = close + c.len_utf8();
        let mut skipped = 0;
        while let Some(&(_, c)) = rest.peek() {
            if skipped < 4 && matches!(c, ' ' | '(' | '-' | '―' | '—' | '/' | '・' | '【' | '[')
            {
                rest.next();
                skipped += 1;
            } else {
                break;
            }
        }
        let mut digits = 0;
        while let Some(&(_, c)) = rest.peek() {
            if c.is_ascii_digit() && digits < 3 {
                rest.next();
                digits += 1;
            } else {
                break;
            }
        }
        if digits == 0 {
            continue;
        }
        if let Some((at, unit @ ('代' | '歳'))) = rest.next() {
            return Some(close..base + at + unit.len_utf8());
        }
    }
    None
}

/// Leaves out the findings a template allows, and reports allowances that are not of an
/// advertising code, have no reason, or silence nothing.
fn allowances(template: &Template, findings: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let mut allowed: Vec<(Code, Span, bool)> = Vec::new();
    for allowance in &template.allow {
        let name = allowance.code.node.trim_start_matches("steprule::");
        // The opt-out warning is about the steps sending the template: the privacy pass
        // reads this allowance (and says when it allows nothing).
        if name == Code::PrivacyOptOut.name() {
            problems.extend(missing_reason(template, allowance, name));
            continue;
        }
        if let Some(error) = crate::check::privacy::ERRORS
            .iter()
            .find(|c| c.name() == name)
        {
            problems.push(
                Diagnostic::new(
                    Code::UnknownLint,
                    &template.file,
                    allowance.code.span,
                    format!(
                        "`{}` is an error, and privacy errors cannot be allowed",
                        error.name()
                    ),
                )
                .with_label("cannot be allowed")
                .with_help(
                    "health information in a preview, or a sensitive field sent without consent, \
                     is fixed by rewording the message or asking for consent, never by review",
                ),
            );
            continue;
        }
        let Some(code) = AD_CODES.iter().copied().find(|c| c.name() == name) else {
            let help = match suggest(name, AD_CODES.iter().map(|c| c.name())) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!(
                    "a template allows advertising lints: {}",
                    AD_CODES
                        .iter()
                        .map(|c| c.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            problems.push(
                Diagnostic::new(
                    Code::UnknownLint,
                    &template.file,
                    allowance.code.span,
                    format!(
                        "`{}` is not an advertising lint a template can allow",
                        printable(&allowance.code.node)
                    ),
                )
                .with_label("not an `ad-…` code")
                .with_help(help),
            );
            continue;
        };
        if let Some(problem) = missing_reason(template, allowance, name) {
            problems.push(problem);
            continue;
        }
        allowed.push((code, allowance.code.span, false));
    }
    let mut kept = Vec::with_capacity(findings.len());
    for diag in findings {
        match allowed.iter_mut().find(|(code, _, _)| *code == diag.code) {
            Some(allowance) => allowance.2 = true,
            None => kept.push(diag),
        }
    }
    for (code, span, used) in allowed {
        if !used {
            problems.push(
                Diagnostic::new(
                    Code::UnusedAllow,
                    &template.file,
                    span,
                    format!(
                        "template `{}` allows `{}`, but nothing in it is flagged as that",
                        template.name,
                        code.name()
                    ),
                )
                .with_label("allows nothing")
                .with_help("remove the allowance, so that a later finding of this kind is seen"),
            );
        }
    }
    kept.extend(problems);
    kept
}

/// An allowance without a reason: a reviewer must say why the finding is acceptable.
fn missing_reason(
    template: &Template,
    allowance: &crate::template::Allowance,
    name: &str,
) -> Option<Diagnostic> {
    if !allowance.reason.node.trim().is_empty() {
        return None;
    }
    Some(
        Diagnostic::new(
            Code::TemplateInvalid,
            &template.file,
            allowance.reason.span,
            format!(
                "the allowance of `{name}` in template `{}` gives no reason",
                template.name
            ),
        )
        .with_label("empty reason")
        .with_help(
            "say why the finding is acceptable here (who reviewed it, on what grounds): \
             the review sheet shows it to the clinic's director",
        ),
    )
}
