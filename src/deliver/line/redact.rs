//! Error text that LINE (or a proxy in front of it) sends back can quote the request, token and
//! all; it ends up in the ledger's `last_error` and on the terminal. Every error string the LINE
//! client produces passes through here first.

/// What stands in for a removed secret.
const REDACTED: &str = "***";

/// Removes the channel access token (as written, JSON-escaped or percent-encoded) and any
/// `Bearer <credential>` from text.
#[derive(Clone)]
pub(super) struct Redactor {
    forms: Vec<String>,
}

impl Redactor {
    pub(super) fn new(token: &str) -> Redactor {
        let mut forms = vec![
            token.to_owned(),
            token.replace('/', "\\/"),
            percent_encoded(token),
        ];
        forms.retain(|form| !form.is_empty());
        forms.sort();
        forms.dedup();
        // The longest first, so that a form containing another is removed whole.
        forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
        Redactor { forms }
    }

    pub(super) fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for form in &self.forms {
            if text.contains(form.as_str()) {
                text = text.replace(form.as_str(), REDACTED);
            }
        }
        redact_bearer(&text)
    }
}

/// Debug output never shows the token either.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor(***)")
    }
}

/// Characters of a bearer credential (RFC 6750's `b64token`, which covers LINE's tokens).
fn is_credential_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// `Bearer xyz` (any case, any spaces) → `Bearer ***`. Prose such as "the bearer of" loses a
/// word too: a message made less readable is the lesser harm.
fn redact_bearer(text: &str) -> String {
    const WORD: &[u8] = b"bearer";
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i + WORD.len() <= bytes.len() {
        let starts_word = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if !(starts_word && bytes[i..i + WORD.len()].eq_ignore_ascii_case(WORD)) {
            i += 1;
            continue;
        }
        let mut start = i + WORD.len();
        while start < bytes.len() && matches!(bytes[start], b' ' | b'\t') {
            start += 1;
        }
        let mut end = start;
        while end < bytes.len() && is_credential_byte(bytes[end]) {
            end += 1;
        }
        if start == i + WORD.len() || end == start {
            i += WORD.len();
            continue;
        }
        // Every boundary here is an ASCII byte, so the slices are whole characters.
        out.push_str(&text[copied..start]);
        out.push_str(REDACTED);
        copied = end;
        i = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// `token` as it appears in a query string or form body.
fn percent_encoded(token: &str) -> String {
    let mut encoded = String::with_capacity(token.len());
    for b in token.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "aB3+xY/z9==";

    #[test]
    fn the_token_is_removed_in_every_form() {
        let redactor = Redactor::new(TOKEN);
        for text in [
            format!("invalid token {TOKEN} given"),
            r#"{"token":"aB3+xY\/z9=="}"#.to_owned(),
            "token=aB3%2BxY%2Fz9%3D%3D&x=1".to_owned(),
            format!("{TOKEN}{TOKEN}"),
        ] {
            let clean = redactor.redact(&text);
            assert!(!clean.contains("aB3"), "{text} → {clean}");
            assert!(clean.contains(REDACTED), "{clean}");
        }
    }

    #[test]
    fn bearer_credentials_are_removed_whatever_the_token() {
        let redactor = Redactor::new(TOKEN);
        assert_eq!(
            redactor.redact("Authorization: Bearer other.jwt-token_1 refused"),
            "Authorization: Bearer *** refused"
        );
        assert_eq!(
            redactor.redact(r#"{"h":"bearer  abc/def="}"#),
            r#"{"h":"bearer  ***"}"#
        );
        assert_eq!(
            redactor.redact("BEARER\tx, Bearer y"),
            "BEARER\t***, Bearer ***"
        );
        assert_eq!(
            redactor.redact("トークン Bearer 秘密"),
            "トークン Bearer 秘密"
        );
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        let redactor = Redactor::new(TOKEN);
        for text in [
            "LINE answered 500 Internal Server Error: Internal server error",
            "Bearer",
            "unbearerable x",
            "",
        ] {
            assert_eq!(redactor.redact(text), text);
        }
        assert_eq!(redactor.redact("Bearer ***"), "Bearer ***", "idempotent");
    }

    #[test]
    fn debug_output_hides_the_token() {
        assert!(!format!("{:?}", Redactor::new(TOKEN)).contains("aB3"));
    }
}
