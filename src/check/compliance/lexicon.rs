//! The word lists of `compliance/ad_words.toml`, read once and compiled into one Aho-Corasick
//! automaton over their folded forms, so that every text is matched in one pass, linear in its
//! length, however long the lists grow.

use std::ops::Range;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Deserialize;

use super::normalize::Normalized;
use crate::diagnostic::{Code, Severity};

/// The lists as shipped: compiled in, so a binary always runs the lists it was tested with.
const AD_WORDS: &str = include_str!("../../../compliance/ad_words.toml");

/// A kind of claim the guideline does not allow, with its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Absolute,
    Superiority,
    Exaggeration,
    Testimonial,
    BeforeAfter,
}

impl Category {
    #[cfg(test)]
    pub const ALL: [Category; 5] = [
        Category::Absolute,
        Category::Superiority,
        Category::Exaggeration,
        Category::Testimonial,
        Category::BeforeAfter,
    ];

    pub fn code(self) -> Code {
        match self {
            Category::Absolute => Code::AdAbsolute,
            Category::Superiority => Code::AdSuperiority,
            Category::Exaggeration => Code::AdExaggeration,
            Category::Testimonial => Code::AdTestimonial,
            Category::BeforeAfter => Code::AdBeforeAfter,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListsToml {
    absolute: CategoryToml,
    superiority: CategoryToml,
    exaggeration: CategoryToml,
    testimonial: CategoryToml,
    before_after: CategoryToml,
    before_after_explained: ExplainedToml,
    self_pay: SelfPayToml,
    first_price: FirstPriceToml,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryToml {
    source: String,
    help: String,
    severity: Option<SeverityToml>,
    words: Vec<WordToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WordToml {
    word: String,
    reason: String,
    #[serde(default)]
    fine: Vec<String>,
    severity: Option<SeverityToml>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SeverityToml {
    Error,
    Warning,
}

impl From<SeverityToml> for Severity {
    fn from(value: SeverityToml) -> Self {
        match value {
            SeverityToml::Error => Severity::Error,
            SeverityToml::Warning => Severity::Warning,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainedToml {
    treatment: Vec<String>,
    cost: Vec<String>,
    period: Vec<String>,
    risks: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SelfPayToml {
    treatment: Vec<String>,
    cost: Vec<String>,
    risks: Vec<String>,
    self_pay: Vec<String>,
    contact: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FirstPriceToml {
    offer: Vec<String>,
    normal: Vec<String>,
}

/// One listed word.
#[derive(Debug, Clone)]
pub struct Entry {
    pub category: Category,
    pub reason: String,
    pub severity: Severity,
}

/// What a category says about itself: where it comes from and what to do instead.
#[derive(Debug, Clone)]
pub struct About {
    pub source: String,
    pub help: String,
}

/// A group of cue words: one of them present means the template states that item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cue {
    /// Before/after: the treatment, its cost, its period, its risks explained.
    ExplainTreatment,
    ExplainCost,
    ExplainPeriod,
    ExplainRisks,
    /// Self-pay: the usual treatment, its cost, risks, that it is self-pay, a contact.
    SelfPayTreatment,
    SelfPayCost,
    SelfPayRisks,
    SelfPayNotice,
    SelfPayContact,
    /// A first-visit or campaign offer, and the normal price beside it.
    Offer,
    NormalPrice,
}

#[derive(Debug, Clone, Copy)]
enum Pattern {
    Entry(usize),
    /// A fine longer word of entry N.
    Fine(usize),
    Cue(Cue),
}

/// A listed word found in a text, by its folded byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub entry: usize,
    pub range: Range<usize>,
}

/// What one pass over a text finds.
#[derive(Debug, Default)]
pub struct Found {
    pub hits: Vec<Hit>,
    /// Cue words, each with its folded range.
    pub cues: Vec<(Cue, Range<usize>)>,
}

/// The compiled lists.
pub struct Lexicon {
    pub entries: Vec<Entry>,
    abouts: Vec<(Category, About)>,
    patterns: Vec<Pattern>,
    /// The folded words, by pattern id (for the whole-word rule on ASCII edges).
    folded: Vec<String>,
    /// The words as the lists write them, by pattern id (for help texts).
    written: Vec<String>,
    automaton: AhoCorasick,
}

impl std::fmt::Debug for Lexicon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lexicon")
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl Lexicon {
    /// The shipped lists, compiled once per process.
    pub fn shipped() -> &'static Lexicon {
        static SHIPPED: OnceLock<Lexicon> = OnceLock::new();
        SHIPPED.get_or_init(|| {
            #[allow(clippy::expect_used)]
            // The lists are compiled in, and `the_shipped_lists_compile` parses them.
            Lexicon::from_toml(AD_WORDS).expect("compliance/ad_words.toml is valid")
        })
    }

    pub fn from_toml(text: &str) -> Result<Lexicon, String> {
        let lists: ListsToml = toml::from_str(text).map_err(|err| err.to_string())?;
        let mut entries = Vec::new();
        let mut abouts = Vec::new();
        let mut words: Vec<(String, Pattern)> = Vec::new();
        let categories = [
            (Category::Absolute, lists.absolute),
            (Category::Superiority, lists.superiority),
            (Category::Exaggeration, lists.exaggeration),
            (Category::Testimonial, lists.testimonial),
            (Category::BeforeAfter, lists.before_after),
        ];
        for (category, list) in categories {
            let default = list
                .severity
                .map_or(category.code().severity(), Severity::from);
            for word in list.words {
                let index = entries.len();
                words.push((word.word.clone(), Pattern::Entry(index)));
                for fine in &word.fine {
                    words.push((fine.clone(), Pattern::Fine(index)));
                }
                entries.push(Entry {
                    category,
                    reason: word.reason,
                    severity: word.severity.map_or(default, Severity::from),
                });
            }
            abouts.push((
                category,
                About {
                    source: list.source,
                    help: list.help,
                },
            ));
        }
        let explained = lists.before_after_explained;
        let self_pay = lists.self_pay;
        let cue_groups = [
            (Cue::ExplainTreatment, explained.treatment),
            (Cue::ExplainCost, explained.cost),
            (Cue::ExplainPeriod, explained.period),
            (Cue::ExplainRisks, explained.risks),
            (Cue::SelfPayTreatment, self_pay.treatment),
            (Cue::SelfPayCost, self_pay.cost),
            (Cue::SelfPayRisks, self_pay.risks),
            (Cue::SelfPayNotice, self_pay.self_pay),
            (Cue::SelfPayContact, self_pay.contact),
            (Cue::Offer, lists.first_price.offer),
            (Cue::NormalPrice, lists.first_price.normal),
        ];
        for (cue, group) in cue_groups {
            words.extend(group.into_iter().map(|word| (word, Pattern::Cue(cue))));
        }
        if let Some((word, _)) = words.iter().find(|(w, _)| w.trim().is_empty()) {
            return Err(format!("an empty word ({word:?})"));
        }
        let folded: Vec<String> = words
            .iter()
            .map(|(word, _)| Normalized::new(word).as_str().to_owned())
            .collect();
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&folded)
            .map_err(|err| err.to_string())?;
        Ok(Lexicon {
            entries,
            abouts,
            patterns: words.iter().map(|(_, p)| *p).collect(),
            written: words.into_iter().map(|(w, _)| w).collect(),
            folded,
            automaton,
        })
    }

    pub fn about(&self, category: Category) -> Option<&About> {
        self.abouts
            .iter()
            .find(|(c, _)| *c == category)
            .map(|(_, about)| about)
    }

    /// The words of a cue group, as the list writes them (for help texts).
    pub fn cue_words(&self, cue: Cue) -> impl Iterator<Item = &str> {
        self.patterns
            .iter()
            .zip(&self.written)
            .filter(move |(p, _)| matches!(p, Pattern::Cue(c) if *c == cue))
            .map(|(_, word)| word.as_str())
    }

    /// Every listed word and cue in `text` (folded), in one pass. A word inside one of its
    /// fine longer words is left out, and so is a word contained in a longer hit of the same
    /// category, so that 「必ず治る」 is one finding.
    pub fn find(&self, text: &Normalized) -> Found {
        let mut cues = Vec::new();
        let role = |id: usize| match self.patterns[id] {
            Pattern::Entry(entry) => Role::Word(entry),
            Pattern::Fine(entry) => Role::Fine(entry),
            Pattern::Cue(_) => Role::Other,
        };
        let other = |id: usize, range: Range<usize>| {
            if let Pattern::Cue(cue) = self.patterns[id] {
                cues.push((cue, range));
            }
        };
        // Overlapping hits of one category: keep the first, longest one.
        let same_group = |a: usize, b: usize| self.entries[a].category == self.entries[b].category;
        let hits = scan(
            &self.automaton,
            &self.folded,
            text.as_str(),
            role,
            other,
            same_group,
        );
        Found { hits, cues }
    }
}

/// What one word of a compiled list stands for, as [`scan`] needs to know it.
#[derive(Debug, Clone, Copy)]
pub(in crate::check) enum Role {
    /// A listed word, by entry.
    Word(usize),
    /// A fine longer word of that entry: the entry inside it is not a finding.
    Fine(usize),
    /// Anything else the list holds (cue words, opt-out wording): handed to the caller.
    Other,
}

/// The one pass both word lists (advertising, health) make over a folded text: every whole
/// word `folded` (compiled into `automaton`) finds, less an entry's hits inside one of its fine
/// longer words, and less a hit overlapping an earlier, longer one of the same group
/// (`same_group` of their entries). Matches of [`Role::Other`] go to `other`.
pub(in crate::check) fn scan(
    automaton: &AhoCorasick,
    folded: &[String],
    haystack: &str,
    role: impl Fn(usize) -> Role,
    mut other: impl FnMut(usize, Range<usize>),
    same_group: impl Fn(usize, usize) -> bool,
) -> Vec<Hit> {
    let mut hits = Vec::new();
    let mut fines: Vec<(usize, Range<usize>)> = Vec::new();
    for m in automaton.find_overlapping_iter(haystack) {
        let id = m.pattern().as_usize();
        if !whole_word(haystack, m.range(), &folded[id]) {
            continue;
        }
        match role(id) {
            Role::Word(entry) => hits.push(Hit {
                entry,
                range: m.range(),
            }),
            Role::Fine(entry) => fines.push((entry, m.range())),
            Role::Other => other(id, m.range()),
        }
    }
    let inside = |inner: &Range<usize>, outer: &Range<usize>| {
        outer.start <= inner.start && inner.end <= outer.end
    };
    hits.retain(|hit| {
        !fines
            .iter()
            .any(|(entry, range)| *entry == hit.entry && inside(&hit.range, range))
    });
    hits.sort_by_key(|hit| (hit.range.start, std::cmp::Reverse(hit.range.end)));
    let mut kept: Vec<Hit> = Vec::with_capacity(hits.len());
    for hit in hits {
        let overlaps = kept.iter().rev().take(8).any(|k| {
            same_group(k.entry, hit.entry)
                && k.range.start < hit.range.end
                && hit.range.start < k.range.end
        });
        if !overlaps {
            kept.push(hit);
        }
    }
    kept
}

/// A word that starts (ends) with an ASCII letter or digit must not be preceded (followed) by
/// one: 「No.1」 is not in 「No.12」, 「off」 not in 「office」.
pub(in crate::check) fn whole_word(haystack: &str, range: Range<usize>, word: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let starts = alnum(word.chars().next());
    let ends = alnum(word.chars().next_back());
    let glued_before = starts && alnum(haystack[..range.start].chars().next_back());
    let glued_after = ends && alnum(haystack[range.end..].chars().next());
    !(glued_before || glued_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_lists_compile_and_each_word_is_listed_once() {
        let lexicon = Lexicon::from_toml(AD_WORDS).unwrap();
        assert!(lexicon.entries.len() > 100, "{}", lexicon.entries.len());
        let mut seen = std::collections::HashSet::new();
        for (pattern, folded) in lexicon.patterns.iter().zip(&lexicon.folded) {
            if let Pattern::Entry(_) = pattern {
                assert!(seen.insert(folded.clone()), "{folded} is listed twice");
            }
        }
        for (index, entry) in lexicon.entries.iter().enumerate() {
            assert!(
                !entry.reason.trim().is_empty(),
                "entry {index} has no reason"
            );
        }
        for category in Category::ALL {
            assert!(lexicon.about(category).is_some());
        }
    }

    #[test]
    fn fine_words_are_longer_words_holding_their_entry() {
        let lists: ListsToml = toml::from_str(AD_WORDS).unwrap();
        for list in [
            &lists.absolute,
            &lists.superiority,
            &lists.exaggeration,
            &lists.testimonial,
            &lists.before_after,
        ] {
            for word in &list.words {
                let folded = Normalized::new(&word.word);
                for fine in &word.fine {
                    assert!(
                        Normalized::new(fine).as_str().contains(folded.as_str()),
                        "{fine} does not contain {}",
                        word.word
                    );
                }
            }
        }
    }

    fn words(text: &str) -> Vec<String> {
        let lexicon = Lexicon::shipped();
        let folded = Normalized::new(text);
        lexicon
            .find(&folded)
            .hits
            .iter()
            .map(|hit| text[folded.original(hit.range.clone())].to_owned())
            .collect()
    }

    #[test]
    fn finds_words_in_any_width_kana_or_case_at_their_place() {
        assert_eq!(words("当院は地域Ｎｏ．１です"), ["Ｎｏ．１"]);
        assert_eq!(words("ｎｏ1の実績"), ["ｎｏ1"]);
        assert_eq!(words("ﾅﾝﾊﾞｰﾜﾝ"), ["ﾅﾝﾊﾞｰﾜﾝ"]);
        assert_eq!(words("なんばーわんクリニック"), ["なんばーわん"]);
        assert_eq!(words("成功率１００％"), ["１００％"]);
        assert_eq!(words("必ず治る治療"), ["必ず治"]);
    }

    #[test]
    fn fine_longer_words_and_whole_words_are_not_flagged() {
        assert!(words("完全個室でお待ちいただけます").is_empty());
        assert!(words("必ずお薬手帳をお持ちください").is_empty());
        assert!(words("一番下の歯が痛む方へ").is_empty());
        assert!(words("最新のお知らせです").is_empty());
        assert!(words("最高血圧が140以上の方").is_empty());
        assert!(words("永久歯への生え替わり").is_empty());
        assert!(words("受付番号No.12でお呼びします").is_empty());
        // The same word outside its fine longer word is still found.
        assert_eq!(words("完全個室で完全に治します"), ["完全"]);
    }
}
