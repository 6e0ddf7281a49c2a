//! Tracked links: with the `track` setting, every http(s) link a message opens becomes
//! `{track}/r/{token}`, and every postback action's data becomes a token, so that a tap can be
//! put down to the send it came from. The token is random (from the OS) and says nothing about
//! the patient or the step; what it stands for is in the ledger only.
//!
//! Image URLs are left alone: LINE fetches images itself (and link previews), so a redirect
//! there would count LINE's fetches as clicks and could break the preview.

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine as _;

use super::limits::MAX_ACTION_URI;
use super::parts::{rewrite, Role};
use super::{urls, Message};

/// Random bytes in a token: 128 bits, more than anyone can guess.
pub const TOKEN_BYTES: usize = 16;
/// A token's length: [`TOKEN_BYTES`] in base64url without padding.
pub const TOKEN_LEN: usize = 22;
/// The path under the `track` URL that tracked links go to: `{track}/r/{token}`.
pub const TRACK_PATH: &str = "/r/";
/// The longest `track` URL: a tracked link must stay within LINE's limit for links.
pub const MAX_TRACK_BASE: usize = MAX_ACTION_URI - TRACK_PATH.len() - TOKEN_LEN;

/// The `track` setting, checked: where tracked links point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackBase(String);

/// Why a `track` URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackBaseError {
    #[error("is not a URL ({reason})")]
    NotAUrl { reason: String },
    #[error("is a `{scheme}:` URL; tracked links must be https")]
    Scheme { scheme: String },
    #[error("is plain http to another machine; tracked links must be https")]
    Cleartext,
    #[error("holds a user name or password (`…@`)")]
    Userinfo,
    #[error("has a query or fragment (`?…`, `#…`)")]
    QueryOrFragment,
    #[error("is {length} characters long; tracked links must fit LINE's {MAX_ACTION_URI}, so it may be at most {MAX_TRACK_BASE}")]
    TooLong { length: usize },
}

impl TrackBase {
    /// `text` as a `track` URL: https anywhere (plain http only to this machine, for a test
    /// service), with a host, no user info, query or fragment, and short enough. A path is
    /// kept (a proxy may serve tracked links under one); a trailing `/` is not.
    pub fn parse(text: &str) -> Result<TrackBase, TrackBaseError> {
        let url = url::Url::parse(text).map_err(|e| TrackBaseError::NotAUrl {
            reason: e.to_string(),
        })?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => return Err(TrackBaseError::Cleartext),
            other => {
                return Err(TrackBaseError::Scheme {
                    scheme: other.to_owned(),
                })
            }
        }
        if url.host().is_none() {
            return Err(TrackBaseError::NotAUrl {
                reason: "no host".into(),
            });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TrackBaseError::Userinfo);
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(TrackBaseError::QueryOrFragment);
        }
        let base = url.as_str().trim_end_matches('/').to_owned();
        let length = base.chars().count();
        if length > MAX_TRACK_BASE {
            return Err(TrackBaseError::TooLong { length });
        }
        Ok(TrackBase(base))
    }

    /// The URL as tracked links use it (normalised: a lower-case host, an internationalised
    /// host in its ASCII form, no trailing `/`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tracked link for `token`.
    pub fn link(&self, token: &str) -> String {
        format!("{}{TRACK_PATH}{token}", self.0)
    }
}

/// 127.0.0.0/8, ::1 or `localhost`: traffic that never leaves the machine.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// What a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// A link: the target is the original URL.
    Url,
    /// A postback action: the target is the template's postback data.
    Postback,
}

/// A token and what it stands for in one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedLink {
    pub token: String,
    pub kind: LinkKind,
    pub target: String,
}

/// The OS could not give random bytes for a token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot make a tracking token: the operating system gave no random bytes ({0})")]
pub struct TokenError(String);

/// A new token: [`TOKEN_BYTES`] from the OS's random source, base64url without padding.
pub fn new_token() -> Result<String, TokenError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| TokenError(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The tokens of one send: one per distinct link (or postback data) in its messages, so that
/// the same URL twice is one token. Tokens an earlier claim of the same send recorded are used
/// again, so a resumed send carries the same links; new ones are minted, and kept for the
/// caller to record before the message leaves.
#[derive(Debug, Default)]
pub struct SendLinks {
    known: HashMap<(LinkKind, String), String>,
    minted: Vec<TrackedLink>,
    /// For `check`: a placeholder of a token's length instead of a random one.
    sample: bool,
}

impl SendLinks {
    /// The tokens of a send, starting from those recorded for it before.
    pub fn new(recorded: impl IntoIterator<Item = TrackedLink>) -> SendLinks {
        let known = recorded
            .into_iter()
            .map(|link| ((link.kind, link.target), link.token))
            .collect();
        SendLinks {
            known,
            ..SendLinks::default()
        }
    }

    /// Tokens for a sample patient: as long as real ones, never random, never recorded.
    pub fn sample() -> SendLinks {
        SendLinks {
            sample: true,
            ..SendLinks::default()
        }
    }

    /// The tokens minted for this send (not those recorded before), in the order they were
    /// first used.
    pub fn into_minted(self) -> Vec<TrackedLink> {
        self.minted
    }

    fn token(&mut self, kind: LinkKind, target: &str) -> Result<String, TokenError> {
        if let Some(token) = self.known.get(&(kind, target.to_owned())) {
            return Ok(token.clone());
        }
        let token = if self.sample {
            "A".repeat(TOKEN_LEN)
        } else {
            new_token()?
        };
        self.known.insert((kind, target.to_owned()), token.clone());
        if !self.sample {
            self.minted.push(TrackedLink {
                token: token.clone(),
                kind,
                target: target.to_owned(),
            });
        }
        Ok(token)
    }
}

/// Tracks the links of `messages` in place: each http(s) link (a button's or action's URL, a
/// URL in a text message) becomes `base`'s link for its token, each postback action's data
/// becomes its token. Image URLs, `tel:` and `line:` links stay as they are. Linear in the
/// messages' size.
pub fn track(
    messages: &mut [Message],
    base: &TrackBase,
    links: &mut SendLinks,
) -> Result<(), TokenError> {
    let mut change = |role: Role, value: &mut String| -> Result<(), TokenError> {
        match role {
            Role::Link if is_http(value) => {
                *value = base.link(&links.token(LinkKind::Url, value)?);
            }
            Role::PostbackData => *value = links.token(LinkKind::Postback, value)?,
            Role::Text => {
                let found = urls::find(value);
                if found.is_empty() {
                    return Ok(());
                }
                let mut tracked = String::with_capacity(value.len());
                let mut copied = 0;
                for range in found {
                    tracked.push_str(&value[copied..range.start]);
                    let token = links.token(LinkKind::Url, &value[range.clone()])?;
                    tracked.push_str(&base.link(&token));
                    copied = range.end;
                }
                tracked.push_str(&value[copied..]);
                *value = tracked;
            }
            _ => {}
        }
        Ok(())
    };
    messages
        .iter_mut()
        .try_for_each(|message| rewrite(message, &mut change))
}

/// Whether `url` is an http(s) URL (the scheme in any case).
fn is_http(url: &str) -> bool {
    let starts = |scheme: &str| {
        url.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    };
    starts("https://") || starts("http://")
}
