//! LINE signs every webhook body: `x-line-signature` is the base64 of HMAC-SHA256 over the raw
//! body, keyed with the channel secret. The check runs on the bytes as received, before any
//! parsing, and compares in constant time (ring's `hmac::verify`), so a forger learns nothing
//! from how long a wrong guess took.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::hmac;

/// The longest header worth decoding: a SHA-256 MAC is 44 base64 characters.
const MAX_HEADER_LEN: usize = 128;

/// The channel secret, as a key. Never printed: its `Debug` is a placeholder.
#[derive(Clone)]
pub struct ChannelSecret {
    key: hmac::Key,
}

impl ChannelSecret {
    pub fn new(secret: &str) -> Self {
        ChannelSecret {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        }
    }

    /// Whether `header` (the `x-line-signature` value) signs `body`.
    pub fn verifies(&self, body: &[u8], header: Option<&[u8]>) -> bool {
        let Some(header) = header.filter(|h| h.len() <= MAX_HEADER_LEN) else {
            return false;
        };
        let Ok(mac) = STANDARD.decode(header.trim_ascii()) else {
            return false;
        };
        hmac::verify(&self.key, body, &mac).is_ok()
    }

    /// The signature LINE would send for `body`.
    #[cfg(test)]
    pub fn sign(&self, body: &[u8]) -> String {
        STANDARD.encode(hmac::sign(&self.key, body).as_ref())
    }
}

impl std::fmt::Debug for ChannelSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelSecret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_signature_verifies() {
        // Computed independently: printf '{"events":[]}' | openssl dgst -sha256 -hmac s3cret -binary | base64
        let secret = ChannelSecret::new("s3cret");
        let body = br#"{"events":[]}"#;
        let signature = secret.sign(body);
        assert_eq!(signature, "ZuVY0DkZxvoGXoj+QPBt7+gZL2ow1Kpy+nm913XvpIw=");
        assert!(secret.verifies(body, Some(signature.as_bytes())));
        assert!(secret.verifies(body, Some(format!(" {signature} ").as_bytes())));
    }

    #[test]
    fn a_wrong_missing_or_malformed_signature_fails() {
        let secret = ChannelSecret::new("s3cret");
        let body = br#"{"events":[]}"#;
        let other = ChannelSecret::new("other").sign(body);
        assert!(!secret.verifies(body, Some(other.as_bytes())));
        assert!(!secret.verifies(body, None));
        assert!(!secret.verifies(body, Some(b"")));
        assert!(!secret.verifies(body, Some(b"not base64 at all!")));
        assert!(!secret.verifies(body, Some(&[b'A'; 4096])));
        // One changed byte of the body.
        let good = secret.sign(body);
        assert!(!secret.verifies(br#"{"events":[ ]}"#, Some(good.as_bytes())));
    }

    #[test]
    fn debug_hides_the_secret() {
        assert_eq!(
            format!("{:?}", ChannelSecret::new("s3cret")),
            "ChannelSecret(***)"
        );
    }
}
