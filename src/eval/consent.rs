//! Marketing consent: the one cell of the `consent` field that decides whether a promo step
//! (or one that `requires consent`) may go to a patient. Only a cell that clearly says yes
//! consents; an empty cell, a no, or a word nobody listed never sends.

use crate::check::compliance::fold;

/// What a patient's consent cell says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// The cell says yes (true, 1, はい, 同意 …).
    Given,
    /// The cell is empty, or the rules have no consent field.
    Empty,
    /// The cell says no.
    Refused,
    /// The cell holds a word that is neither yes nor no.
    Unreadable,
}

/// Words for "consents", compared with width and case folded (`ＹＥＳ`, `True`).
const YES: &[&str] = &[
    "true",
    "1",
    "yes",
    "y",
    "ok",
    "はい",
    "同意",
    "同意する",
    "同意済",
    "同意済み",
    "同意あり",
    "希望",
    "希望する",
    "配信希望",
    "可",
    "配信可",
    "許可",
    "○",
    "◯",
];

/// Words for "does not consent".
const NO: &[&str] = &[
    "false",
    "0",
    "no",
    "n",
    "いいえ",
    "不同意",
    "同意しない",
    "同意なし",
    "未同意",
    "拒否",
    "配信拒否",
    "希望しない",
    "配信停止",
    "停止",
    "不可",
    "×",
    "-",
];

/// Reads a consent cell (already trimmed by the records reader; `None` when empty). Compares
/// character by character, folded, without allocating: it runs once per patient.
pub fn read(cell: Option<&str>) -> Consent {
    let Some(cell) = cell.map(str::trim).filter(|c| !c.is_empty()) else {
        return Consent::Empty;
    };
    let same = |word: &&str| {
        let mut a = cell.chars().map(fold);
        let mut b = word.chars().map(fold);
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some(x), Some(y)) if x == y => {}
                _ => return false,
            }
        }
    };
    if YES.iter().any(same) {
        Consent::Given
    } else if NO.iter().any(same) {
        Consent::Refused
    } else {
        Consent::Unreadable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_clear_yes_consents() {
        for yes in ["true", "TRUE", "1", "はい", "同意", "ＹＥＳ", "Yes", "○"] {
            assert_eq!(read(Some(yes)), Consent::Given, "{yes}");
        }
        for no in ["false", "0", "no", "いいえ", "同意しない", "ｎｏ"] {
            assert_eq!(read(Some(no)), Consent::Refused, "{no}");
        }
        assert_eq!(read(None), Consent::Empty);
        assert_eq!(read(Some("  ")), Consent::Empty);
        assert_eq!(read(Some("たぶん")), Consent::Unreadable);
        assert_eq!(read(Some("yess")), Consent::Unreadable);
    }
}
