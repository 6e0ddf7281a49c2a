//! The health words of `compliance/health_words.toml` and the opt-out words of
//! `compliance/opt_out_words.toml`, read once and compiled into one Aho-Corasick automaton over
//! their folded forms (the advertising lints' normalisation), so that a preview is matched in
//! one pass however long the lists grow.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Deserialize;

use super::super::compliance::{scan, Hit, Normalized, Role};

/// The lists as shipped: compiled in, so a binary always runs the lists it was tested with.
const HEALTH_WORDS: &str = include_str!("../../../compliance/health_words.toml");
const OPT_OUT_WORDS: &str = include_str!("../../../compliance/opt_out_words.toml");

/// The categories of `health_words.toml`, in its order.
const CATEGORIES: [&str; 10] = [
    "disease",
    "dermatology",
    "gynecology",
    "pregnancy",
    "psychiatry",
    "dentistry",
    "ent",
    "eye",
    "medicine",
    "test_result",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryToml {
    reason: String,
    words: Vec<WordToml>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WordToml {
    Plain(String),
    WithFine {
        word: String,
        #[serde(default)]
        fine: Vec<String>,
    },
}

impl WordToml {
    fn word(&self) -> &str {
        match self {
            WordToml::Plain(word) | WordToml::WithFine { word, .. } => word,
        }
    }

    fn fine(&self) -> &[String] {
        match self {
            WordToml::Plain(_) => &[],
            WordToml::WithFine { fine, .. } => fine,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OptOutToml {
    words: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum Pattern {
    /// A health word, by entry.
    Word(usize),
    /// A fine longer word of entry N.
    Fine(usize),
    OptOut,
}

/// One listed health word: its category's reason.
#[derive(Debug, Clone)]
pub struct Entry {
    pub reason: String,
}

/// What one pass over a text finds.
#[derive(Debug, Default)]
pub struct Found {
    pub hits: Vec<Hit>,
    pub opt_out: bool,
}

/// The compiled lists.
pub struct HealthWords {
    pub entries: Vec<Entry>,
    patterns: Vec<Pattern>,
    folded: Vec<String>,
    /// The opt-out words as written, for help texts.
    pub opt_out_words: Vec<String>,
    automaton: AhoCorasick,
}

impl std::fmt::Debug for HealthWords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthWords")
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl HealthWords {
    /// The shipped lists, compiled once per process.
    pub fn shipped() -> &'static HealthWords {
        static SHIPPED: OnceLock<HealthWords> = OnceLock::new();
        SHIPPED.get_or_init(|| {
            #[allow(clippy::expect_used)]
            // The lists are compiled in, and `the_shipped_lists_compile` parses them.
            HealthWords::from_toml(HEALTH_WORDS, OPT_OUT_WORDS)
                .expect("compliance/health_words.toml and opt_out_words.toml are valid")
        })
    }

    pub fn from_toml(health: &str, opt_out: &str) -> Result<HealthWords, String> {
        let mut lists: std::collections::BTreeMap<String, CategoryToml> =
            toml::from_str(health).map_err(|err| err.to_string())?;
        let opt_out: OptOutToml = toml::from_str(opt_out).map_err(|err| err.to_string())?;
        if let Some(unknown) = lists.keys().find(|k| !CATEGORIES.contains(&k.as_str())) {
            return Err(format!("unknown category [{unknown}]"));
        }
        let mut entries = Vec::new();
        let mut words: Vec<(String, Pattern)> = Vec::new();
        for name in CATEGORIES {
            let list = lists
                .remove(name)
                .ok_or_else(|| format!("no category [{name}]"))?;
            for word in &list.words {
                let index = entries.len();
                words.push((word.word().to_owned(), Pattern::Word(index)));
                for fine in word.fine() {
                    words.push((fine.clone(), Pattern::Fine(index)));
                }
                entries.push(Entry {
                    reason: list.reason.clone(),
                });
            }
        }
        words.extend(opt_out.words.iter().map(|w| (w.clone(), Pattern::OptOut)));
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
        Ok(HealthWords {
            entries,
            patterns: words.iter().map(|(_, p)| *p).collect(),
            folded,
            opt_out_words: opt_out.words,
            automaton,
        })
    }

    /// Every health word in `text` (folded), in one pass, and whether it holds opt-out
    /// wording. A word inside one of its fine longer words is left out, and so is a word
    /// inside a longer hit (「妊婦健診」 is one finding, not also 「妊婦」).
    pub fn find(&self, text: &Normalized) -> Found {
        let mut opt_out = false;
        let role = |id: usize| match self.patterns[id] {
            Pattern::Word(entry) => Role::Word(entry),
            Pattern::Fine(entry) => Role::Fine(entry),
            Pattern::OptOut => Role::Other,
        };
        let hits = scan(
            &self.automaton,
            &self.folded,
            text.as_str(),
            role,
            |_, _| opt_out = true,
            |_, _| true,
        );
        Found { hits, opt_out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_lists_compile_and_each_word_is_listed_once() {
        let words = HealthWords::from_toml(HEALTH_WORDS, OPT_OUT_WORDS).unwrap();
        assert!(words.entries.len() >= 300, "{}", words.entries.len());
        let mut seen = std::collections::HashSet::new();
        for (pattern, folded) in words.patterns.iter().zip(&words.folded) {
            if let Pattern::Word(_) | Pattern::OptOut = pattern {
                assert!(seen.insert(folded.clone()), "{folded} is listed twice");
            }
        }
        assert!(words.entries.iter().all(|e| !e.reason.trim().is_empty()));
        assert!(!words.opt_out_words.is_empty());
    }

    #[test]
    fn fine_words_are_longer_words_holding_their_entry() {
        let lists: std::collections::BTreeMap<String, CategoryToml> =
            toml::from_str(HEALTH_WORDS).unwrap();
        for list in lists.values() {
            for word in &list.words {
                let folded = Normalized::new(word.word());
                for fine in word.fine() {
                    assert!(
                        Normalized::new(fine).as_str().contains(folded.as_str()),
                        "{fine} does not contain {}",
                        word.word()
                    );
                }
            }
        }
    }

    #[test]
    fn an_unknown_category_is_refused() {
        let err = HealthWords::from_toml(
            "[diseases]\nreason = \"x\"\nwords = [\"a\"]\n",
            "words = [\"配信停止\"]",
        )
        .unwrap_err();
        assert!(err.contains("diseases"), "{err}");
    }

    fn words(text: &str) -> Vec<String> {
        let folded = Normalized::new(text);
        HealthWords::shipped()
            .find(&folded)
            .hits
            .iter()
            .map(|hit| text[folded.original(hit.range.clone())].to_owned())
            .collect()
    }

    #[test]
    fn finds_words_in_any_width_kana_or_case() {
        assert_eq!(words("ＨｂＡ１ｃの結果"), ["ＨｂＡ１ｃ"]);
        assert_eq!(words("ﾀﾐﾌﾙを処方"), ["ﾀﾐﾌﾙ"]);
        assert_eq!(words("あとぴーの方へ"), ["あとぴー"]);
        assert_eq!(words("妊婦健診のご案内"), ["妊婦健診"]);
        assert_eq!(words("ed治療"), ["ed"]);
    }

    #[test]
    fn fine_longer_words_and_whole_words_are_not_flagged() {
        assert!(words("インフルエンザ予防接種のご案内").is_empty());
        assert!(words("LEDライトの待合室").is_empty());
        assert!(words("がんばりましょう").is_empty());
        assert!(words("うつくしい季節です").is_empty());
        assert_eq!(words("インフルエンザと診断されました"), ["インフルエンザ"]);
    }

    #[test]
    fn opt_out_wording_is_found_in_any_width() {
        let found = |text: &str| HealthWords::shipped().find(&Normalized::new(text)).opt_out;
        assert!(found("配信停止をご希望の方は"));
        assert!(found("ﾌﾞﾛｯｸしてください"));
        assert!(!found("ご予約はこちら"));
    }
}
