//! Text that reaches a terminal or a log: control characters (ESC, CR, BEL, the C1 range,
//! bidirectional overrides) are escaped, so a cell in a patient export or an answer from a
//! server cannot move the cursor, rewrite earlier lines or hide text from the person reading.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control or bidi-override character written as `\u{…}` (`\n` and `\t` too,
/// so one value always prints as one line).
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Like [`printable`] but keeps line ends: for multi-line reports that are already laid out.
pub fn printable_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && needs_escape(c)) {
        return Cow::Borrowed(text);
    }
    let lines: Vec<Cow<'_, str>> = text.split('\n').map(printable).collect();
    Cow::Owned(lines.join("\n"))
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        assert!(matches!(printable("山田 花子"), Cow::Borrowed("山田 花子")));
    }

    #[test]
    fn escape_sequences_and_line_breaks_are_escaped() {
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("x\r\ny"), "x\\u{d}\\u{a}y");
        assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(printable("abc\u{202e}def"), "abc\\u{202e}def");
    }

    #[test]
    fn printable_lines_keeps_line_ends_only() {
        assert_eq!(printable_lines("a\nb\u{7}"), "a\nb\\u{7}");
    }
}
