//! The text the advertising lints match on: width, kana and case folded, so that one word in
//! the list catches the ways a marketer may type it (`Ｎｏ．１`, `ｎｏ1`, `ﾅﾝﾊﾞｰﾜﾝ`,
//! `なんばーわん`). Every folded character remembers where it came from, so a match is reported
//! at its place in the original text.
//!
//! A small table rather than full NFKC: NFKC also rewrites characters the lists do not care
//! about (`①` → `1`, `㈱` → `(株)`), so a match could end inside one original character, and it
//! leaves katakana and hiragana apart, which the lists need folded.

use std::ops::Range;

/// Half-width katakana and punctuation U+FF61..=U+FF9F, as their full-width forms.
const HALF_WIDTH: &str = "。「」、・ヲァィゥェォャュョッーアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン゛゜";

/// `text` folded, with the original byte range of every folded byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    text: String,
    /// For each byte of `text`, the byte range in the original text of the character it came
    /// from (a half-width kana and its sound mark fold into one character covering both).
    origin: Vec<Range<usize>>,
}

impl Normalized {
    pub fn new(original: &str) -> Self {
        let mut text = String::with_capacity(original.len());
        let mut origin: Vec<Range<usize>> = Vec::with_capacity(original.len());
        for (start, c) in original.char_indices() {
            let end = start + c.len_utf8();
            let folded = fold(c);
            if let Some(mark) = sound_mark(folded) {
                if let Some(combined) = text.chars().next_back().and_then(|last| voiced(last, mark))
                {
                    // Replace the kana before the mark by its voiced form, covering both.
                    let last_len = text.chars().next_back().map_or(0, char::len_utf8);
                    let from = origin[text.len() - last_len].start;
                    text.truncate(text.len() - last_len);
                    origin.truncate(text.len());
                    push(&mut text, &mut origin, combined, from..end);
                    continue;
                }
            }
            push(&mut text, &mut origin, folded, start..end);
        }
        Normalized { text, origin }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The original byte range of the folded bytes `range` (which are whole characters).
    pub fn original(&self, range: Range<usize>) -> Range<usize> {
        match (self.origin.get(range.start), range.end.checked_sub(1)) {
            (Some(first), Some(last)) if range.end > range.start => {
                first.start..self.origin.get(last).map_or(first.end, |r| r.end)
            }
            _ => 0..0,
        }
    }
}

fn push(text: &mut String, origin: &mut Vec<Range<usize>>, c: char, from: Range<usize>) {
    text.push(c);
    origin.extend(std::iter::repeat_n(from, c.len_utf8()));
}

/// One character folded: full-width ASCII to ASCII, half-width katakana to full width, then
/// katakana to hiragana and ASCII to lower case.
pub fn fold(c: char) -> char {
    let c = match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        '\u{FFE5}' => '¥',
        '\u{FF61}'..='\u{FF9F}' => HALF_WIDTH.chars().nth(c as usize - 0xFF61).unwrap_or(c),
        _ => c,
    };
    match c {
        'ァ'..='ヶ' => char::from_u32(c as u32 - 0x60).unwrap_or(c),
        'ヽ' | 'ヾ' => char::from_u32(c as u32 - 0x60).unwrap_or(c),
        _ => c.to_ascii_lowercase(),
    }
}

/// A sound mark that combines with the kana before it: 1 for ゛ (dakuten), 2 for ゜.
fn sound_mark(c: char) -> Option<u32> {
    match c {
        '゛' | '\u{3099}' => Some(1),
        '゜' | '\u{309A}' => Some(2),
        _ => None,
    }
}

/// The (hiragana) kana with the sound mark, when there is one: か + ゛ = が, は + ゜ = ぱ.
fn voiced(kana: char, mark: u32) -> Option<char> {
    const DAKUTEN: &str = "かきくけこさしすせそたちつてとはひふへほ";
    const HANDAKUTEN: &str = "はひふへほ";
    match mark {
        1 if kana == 'う' => Some('ゔ'),
        1 if DAKUTEN.contains(kana) => char::from_u32(kana as u32 + 1),
        2 if HANDAKUTEN.contains(kana) => char::from_u32(kana as u32 + 2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_width_kana_and_case() {
        assert_eq!(Normalized::new("Ｎｏ．１").as_str(), "no.1");
        assert_eq!(Normalized::new("ｎｏ1").as_str(), "no1");
        assert_eq!(Normalized::new("ナンバーワン").as_str(), "なんばーわん");
        assert_eq!(Normalized::new("ﾅﾝﾊﾞｰﾜﾝ").as_str(), "なんばーわん");
        assert_eq!(Normalized::new("ﾋﾟｰｸ　１００％").as_str(), "ぴーく 100%");
        assert_eq!(Normalized::new("ヴ ｳﾞ").as_str(), "ゔ ゔ");
        // Combining marks, as text copied from some systems carries them.
        assert_eq!(Normalized::new("ハ\u{309A}ス").as_str(), "ぱす");
        // A mark after a kana it does not combine with stays a mark.
        assert_eq!(Normalized::new("ｱﾞ").as_str(), "あ゛");
        assert_eq!(Normalized::new("￥3,000").as_str(), "¥3,000");
    }

    #[test]
    fn maps_folded_ranges_back_to_the_original() {
        let original = "当院はﾅﾝﾊﾞｰﾜﾝ！";
        let folded = Normalized::new(original);
        let start = folded.as_str().find("なんばーわん").unwrap();
        let range = folded.original(start..start + "なんばーわん".len());
        assert_eq!(&original[range], "ﾅﾝﾊﾞｰﾜﾝ");

        let original = "地域Ｎｏ．１の";
        let folded = Normalized::new(original);
        let start = folded.as_str().find("no.1").unwrap();
        assert_eq!(&original[folded.original(start..start + 4)], "Ｎｏ．１");
    }

    #[test]
    fn empty_and_out_of_range_are_empty() {
        let folded = Normalized::new("abc");
        assert_eq!(folded.original(1..1), 0..0);
        assert_eq!(folded.original(9..10), 0..0);
        assert_eq!(Normalized::new("").as_str(), "");
    }
}
