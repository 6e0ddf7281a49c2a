//! The http(s) URLs in a text message, found as LINE's chat shows them as links: in Japanese
//! text a URL usually runs straight into the sentence around it (`詳しくはhttps://…/をご覧く
//! ださい。`), so a URL ends where a character that cannot be in one starts, and trailing
//! sentence punctuation (`.`, `,`, `)` without its `(`) is not part of it.
//!
//! Hosts may be internationalised (`https://例え.jp/`); the path, query and fragment are taken
//! in their ASCII form only (a non-ASCII character ends the URL), so that `https://x.jp/aを` ends
//! before `を`. One pass over the text: linear in its length.

use std::ops::Range;

/// Characters that may stand in a URL after its host, besides ASCII letters and digits
/// (RFC 3986's unreserved, reserved and `%`).
const URL_PUNCTUATION: &[u8] = b"-._~:/?#[]@!$&'()*+,;=%";
/// Punctuation that ends a sentence rather than a URL when it comes last.
const TRAILING: &[char] = &['.', ',', ':', ';', '!', '?', '\'', '*'];

/// The byte ranges of the `http://` and `https://` URLs in `text`, in order. Other schemes
/// (`tel:`, `javascript:`, `line:`) are not links steprule tracks and are left alone.
pub fn find(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some(scheme_end) = scheme_at(bytes, at) else {
            at += 1;
            continue;
        };
        let end = url_end(text, scheme_end);
        if end > scheme_end {
            found.push(at..end);
            at = end;
        } else {
            at = scheme_end;
        }
    }
    found
}

/// Whether `http://` or `https://` (in any case) starts at `at`, not glued to a word before it
/// (`xhttp://` is not a URL); returns where the scheme's `//` ends.
fn scheme_at(bytes: &[u8], at: usize) -> Option<usize> {
    if !matches!(bytes[at], b'h' | b'H') {
        return None;
    }
    let glued = at > 0 && {
        let before = bytes[at - 1];
        before.is_ascii_alphanumeric() || matches!(before, b'+' | b'-' | b'.')
    };
    if glued {
        return None;
    }
    ["https://", "http://"].iter().find_map(|scheme| {
        let candidate = bytes.get(at..at + scheme.len())?;
        candidate
            .eq_ignore_ascii_case(scheme.as_bytes())
            .then_some(at + scheme.len())
    })
}

/// Where the URL whose authority starts at `start` ends (`start` when there is no host).
fn url_end(text: &str, start: usize) -> usize {
    let rest = &text[start..];
    let mut end = start;
    // The authority: ASCII URL characters, or letters of an internationalised host. A label
    // that began in ASCII ends at a non-ASCII letter (`x.jpをご覧` is the host `x.jp`).
    let mut label_ascii: Option<bool> = None;
    let mut in_authority = true;
    for c in rest.chars() {
        if in_authority {
            if matches!(c, '/' | '?' | '#') {
                in_authority = false;
            } else if c.is_ascii() {
                if !is_url_byte(c) {
                    break;
                }
                if c == '.' || c == '@' || c == ':' {
                    label_ascii = None;
                } else if label_ascii.is_none() {
                    label_ascii = Some(true);
                }
            } else if c.is_alphanumeric() && label_ascii != Some(true) {
                label_ascii = Some(false);
            } else {
                break;
            }
        } else if !c.is_ascii() || !is_url_byte(c) {
            break;
        }
        end += c.len_utf8();
    }
    if end == start {
        return start;
    }
    let end = start + trim_trailing(&text[start..end]);
    // A URL needs a host: `https://` followed by `/` or punctuation is not one.
    let host_ok = text[start..end]
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '[');
    if host_ok {
        end
    } else {
        start
    }
}

fn is_url_byte(c: char) -> bool {
    c.is_ascii_alphanumeric() || (c.is_ascii() && URL_PUNCTUATION.contains(&(c as u8)))
}

/// The length of `url` without the sentence punctuation after it: trailing `.`, `,`, `!`, …
/// and a `)` or `]` that closes nothing opened in the URL.
fn trim_trailing(url: &str) -> usize {
    // Counted once, so that a URL ending in a thousand `)` is still one pass.
    let count = |c: char| url.chars().filter(|&x| x == c).count();
    let (open_paren, mut close_paren) = (count('('), count(')'));
    let (open_bracket, mut close_bracket) = (count('['), count(']'));
    let mut end = url.len();
    while let Some(last) = url[..end].chars().next_back() {
        let trim = match last {
            ')' if close_paren > open_paren => {
                close_paren -= 1;
                true
            }
            ']' if close_bracket > open_bracket => {
                close_bracket -= 1;
                true
            }
            other => TRAILING.contains(&other),
        };
        if !trim {
            return end;
        }
        end -= last.len_utf8();
    }
    end
}
