//! `--line-api-base`, checked once at start: the channel access token goes to whatever URL this
//! names, so it must be a URL, and one that never carries the token in cleartext across a
//! network.

use std::net::IpAddr;

use reqwest::Url;

use super::redact::Redactor;
use crate::printable::printable;

/// How much of a rejected `--line-api-base` an error message repeats.
const ECHO_LIMIT: usize = 120;

/// Why the LINE client could not start: all but `HttpClient` are about `--line-api-base` and
/// are the user's to fix (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineClientError {
    #[error("--line-api-base `{given}` is not a URL ({reason}); LINE's is {default}", default = super::DEFAULT_API_BASE)]
    NotAUrl { given: String, reason: String },
    #[error("--line-api-base `{given}` is a `{scheme}:` URL; LINE's API is reached over https")]
    Scheme { given: String, scheme: String },
    #[error(
        "--line-api-base `{given}` is plain http to another machine: the channel access token \
         would cross the network unencrypted. Use https (plain http is accepted only for a test \
         server on 127.0.0.1, ::1 or localhost)"
    )]
    Cleartext { given: String },
    #[error(
        "--line-api-base holds a user name or password (`…@`): leave it out; the channel access \
         token is the only credential steprule sends"
    )]
    Userinfo,
    #[error("--line-api-base `{given}` has a query or fragment (`?…`, `#…`); give the base URL alone, e.g. {default}", default = super::DEFAULT_API_BASE)]
    QueryOrFragment { given: String },
    #[error("cannot start the HTTP client: {0}")]
    HttpClient(String),
}

/// The push endpoint under a base that passed [`check_base`].
pub(super) fn push_url(base: &Url) -> Result<Url, LineClientError> {
    let endpoint = format!(
        "{}/v2/bot/message/push",
        base.as_str().trim_end_matches('/')
    );
    // A valid base with a plain path appended is still a valid URL.
    Url::parse(&endpoint).map_err(|e| LineClientError::NotAUrl {
        given: base.to_string(),
        reason: e.to_string(),
    })
}

/// `text` as a LINE API base: https anywhere, plain http only to this machine, no user info,
/// no query or fragment. A path is kept (a proxy may serve the API under one).
pub(super) fn check_base(text: &str, redactor: &Redactor) -> Result<Url, LineClientError> {
    let given = echo(text, redactor);
    let url = Url::parse(text.trim()).map_err(|e| LineClientError::NotAUrl {
        given: given.clone(),
        reason: e.to_string(),
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(LineClientError::Userinfo);
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return Err(LineClientError::Cleartext { given }),
        other => {
            return Err(LineClientError::Scheme {
                given,
                scheme: other.to_owned(),
            })
        }
    }
    if url.host().is_none() {
        return Err(LineClientError::NotAUrl {
            given,
            reason: "no host".into(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(LineClientError::QueryOrFragment { given });
    }
    Ok(url)
}

/// 127.0.0.0/8, ::1 or `localhost`: traffic that never leaves the machine.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    // An IPv6 host is written in brackets; the URL parser has already checked its form.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// The rejected text as an error message may repeat it: without the token (pasted into the
/// wrong flag, it would otherwise be printed), escaped and shortened.
fn echo(text: &str, redactor: &Redactor) -> String {
    let redacted = redactor.redact(text.trim());
    let mut short: String = redacted.chars().take(ECHO_LIMIT).collect();
    if short.len() < redacted.len() {
        short.push('…');
    }
    printable(&short).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Url, LineClientError> {
        check_base(text, &Redactor::new("tok-SECRET-123"))
    }

    #[test]
    fn https_and_loopback_http_are_accepted() {
        for ok in [
            "https://api.line.me",
            "https://api.line.me/",
            "https://proxy.example/line/",
            "http://127.0.0.1:8080",
            "http://127.3.4.5",
            "http://[::1]:9000",
            "http://localhost:3000",
            "http://LOCALHOST",
            " https://api.line.me ",
        ] {
            assert!(check(ok).is_ok(), "{ok}: {:?}", check(ok));
        }
    }

    #[test]
    fn the_push_endpoint_keeps_the_base_path() {
        let push = |base: &str| push_url(&check(base).unwrap()).unwrap().to_string();
        assert_eq!(
            push("https://api.line.me"),
            "https://api.line.me/v2/bot/message/push"
        );
        assert_eq!(
            push("https://proxy.example/line/"),
            "https://proxy.example/line/v2/bot/message/push"
        );
        assert_eq!(
            push("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/v2/bot/message/push"
        );
    }

    #[test]
    fn text_that_is_not_a_url_is_refused() {
        for bad in ["not a url", "", "api.line.me", "https://", "/v2/bot"] {
            let error = check(bad).unwrap_err();
            assert!(
                matches!(error, LineClientError::NotAUrl { .. }),
                "{bad}: {error:?}"
            );
            assert!(error.to_string().contains("--line-api-base"), "{error}");
        }
    }

    #[test]
    fn cleartext_http_to_another_machine_is_refused() {
        for bad in [
            "http://api.line.me",
            "http://10.0.0.5:8080",
            "http://[2001:db8::1]",
            "http://localhost.example",
            "http://128.0.0.1",
        ] {
            assert_eq!(
                check(bad),
                Err(LineClientError::Cleartext {
                    given: bad.to_owned()
                }),
                "{bad}"
            );
        }
        let message = check("http://api.line.me").unwrap_err().to_string();
        assert!(message.contains("https"), "{message}");
    }

    #[test]
    fn other_schemes_user_info_queries_and_fragments_are_refused() {
        assert!(matches!(
            check("ftp://api.line.me"),
            Err(LineClientError::Scheme { scheme, .. }) if scheme == "ftp"
        ));
        assert!(matches!(
            check("file:///etc/passwd"),
            Err(LineClientError::Scheme { .. })
        ));
        assert_eq!(
            check("https://user:pw@api.line.me"),
            Err(LineClientError::Userinfo)
        );
        assert_eq!(
            check("https://user@api.line.me"),
            Err(LineClientError::Userinfo)
        );
        // The password is not repeated in the message.
        let message = check("https://user:hunter2@api.line.me")
            .unwrap_err()
            .to_string();
        assert!(!message.contains("hunter2"), "{message}");
        for bad in ["https://api.line.me/?x=1", "https://api.line.me/#top"] {
            assert!(
                matches!(check(bad), Err(LineClientError::QueryOrFragment { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_token_pasted_as_the_base_is_not_repeated() {
        let message = check("tok-SECRET-123").unwrap_err().to_string();
        assert!(!message.contains("tok-SECRET-123"), "{message}");
        let message = check("bad\u{1b}[2Jurl").unwrap_err().to_string();
        assert!(!message.contains('\u{1b}'), "{message}");
    }
}
