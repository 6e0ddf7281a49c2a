//! How deeply a statement nests, measured before pest sees it. pest parses nested
//! parentheses, `not`s and braces in `rhai { }` by recursion, and so does everything after it
//! that walks the condition, so a statement nested thousands deep would overflow the stack. A
//! flat chain (`a and b and …`) does not nest and may be as long as it likes.

/// The deepest a condition may nest: parentheses, `not`s and the braces of `rhai { }`. Real
/// conditions nest two or three deep; this leaves room for generated ones.
pub const MAX_NESTING: usize = 32;

/// The place where a statement first nests deeper than [`MAX_NESTING`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TooDeep {
    /// Byte range, in the statement, of the token that opened the level past the limit.
    pub start: usize,
    pub end: usize,
}

/// Scans a statement without recursion. Strings and comments are skipped; inside
/// `rhai { … }` only braces nest (the script's own parser limits the rest).
pub(super) fn too_deep(text: &str) -> Option<TooDeep> {
    let mut scanner = Scanner::default();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let byte = bytes[i];
        i += 1;
        let opened = if scanner.script_braces > 0 {
            match byte {
                b'"' => {
                    i = skip_string(bytes, i);
                    false
                }
                b'{' => scanner.open_brace(),
                b'}' => {
                    scanner.close_brace();
                    false
                }
                _ => false,
            }
        } else {
            match byte {
                b'"' => {
                    i = skip_string(bytes, i);
                    false
                }
                b'#' => {
                    i = bytes[i..]
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(bytes.len(), |n| i + n);
                    false
                }
                b'{' => scanner.open_brace(),
                b'(' => scanner.open_paren(),
                b')' => {
                    scanner.close_paren();
                    false
                }
                b if is_word(b) => {
                    i += bytes[i..].iter().take_while(|b| is_word(**b)).count();
                    scanner.word(&text[start..i])
                }
                _ => false,
            }
        };
        if opened && scanner.depth > MAX_NESTING {
            return Some(TooDeep { start, end: i });
        }
    }
    None
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The index after the string whose opening quote is just before `i`.
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The levels open at the current point: one per parenthesis (with the `not`s waiting for
/// their operand inside it), and the braces of the script being read.
#[derive(Default)]
struct Scanner {
    depth: usize,
    /// `not`s whose operand has not ended, per open parenthesis (the outermost first).
    pending_nots: Vec<usize>,
    /// `not`s at the top level, outside every parenthesis.
    top_nots: usize,
    script_braces: usize,
}

impl Scanner {
    fn nots(&mut self) -> &mut usize {
        self.pending_nots.last_mut().unwrap_or(&mut self.top_nots)
    }

    fn open_paren(&mut self) -> bool {
        self.pending_nots.push(0);
        self.depth += 1;
        true
    }

    /// The group is an operand: it ends the `not`s before it.
    fn close_paren(&mut self) {
        if let Some(nots) = self.pending_nots.pop() {
            self.depth -= 1 + nots;
            self.end_operand();
        }
    }

    fn open_brace(&mut self) -> bool {
        self.script_braces += 1;
        self.depth += 1;
        true
    }

    fn close_brace(&mut self) {
        self.script_braces -= 1;
        self.depth -= 1;
    }

    /// `not` opens a level until its operand ends; `and` and `or` end every operand before
    /// them.
    fn word(&mut self, word: &str) -> bool {
        match word {
            "not" => {
                *self.nots() += 1;
                self.depth += 1;
                true
            }
            "and" | "or" => {
                self.end_operand();
                false
            }
            _ => false,
        }
    }

    fn end_operand(&mut self) {
        let nots = std::mem::take(self.nots());
        self.depth -= nots;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str) -> bool {
        too_deep(text).is_none()
    }

    #[test]
    fn parentheses_nots_and_script_braces_nest() {
        let at_limit = format!(
            "when {}stage=a{} after 1d send x",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert!(depth_ok(&at_limit));
        let past = format!(
            "when {}stage=a after 1d send x",
            "not ".repeat(MAX_NESTING + 1)
        );
        let found = too_deep(&past).unwrap();
        assert_eq!(&past[found.start..found.end], "not");
        let mixed = format!("when {}x", "not (".repeat(MAX_NESTING / 2 + 1));
        assert!(!depth_ok(&mixed));
        let braces = format!(
            "when rhai {}{} after 1d send x",
            "{".repeat(MAX_NESTING + 1),
            "}".repeat(MAX_NESTING + 1)
        );
        assert!(!depth_ok(&braces));
    }

    #[test]
    fn flat_chains_do_not_nest() {
        let chain = vec!["not stage=a"; 10_000].join(" and ");
        assert!(depth_ok(&format!(
            "when {chain} or (x and not y) after 1d send x"
        )));
        let groups = vec!["(not a or not b)"; 10_000].join(" or ");
        assert!(depth_ok(&format!("when {groups} after 1d send x")));
    }

    #[test]
    fn strings_comments_and_script_contents_do_not_count() {
        let brackets = "(".repeat(MAX_NESTING + 1);
        assert!(depth_ok(&format!("clinic \"{brackets}\"")));
        assert!(depth_ok(&format!("when a # {brackets}\n  after 1d send x")));
        assert!(depth_ok(&format!(
            "when rhai {{ \"{{{{\" + \"{brackets}\" }} send x"
        )));
        let words = "notes nothing not_x ".repeat(MAX_NESTING);
        assert!(depth_ok(&format!("when {words} after 1d send x")));
    }
}
