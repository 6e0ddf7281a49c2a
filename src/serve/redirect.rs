//! `GET /r/{token}`: a tracked link from a delivered message. The token stands for (send,
//! original URL) in the ledger; a tap records a click and is sent on with 302. Requests that
//! are not a patient tapping are sent on too but not counted: `HEAD`, and the link-preview
//! fetchers (LINE fetches every URL in a message once to draw its preview).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tokio::sync::oneshot;

use super::http::AppState;
use super::writer::{looks_like_token, Work};

/// User-agent fragments (lower case) of link-preview fetchers and crawlers. LINE's preview
/// fetcher says `line-poker` (inside a `facebookexternalhit` agent); LINE's in-app browser says
/// `Line/…` and is a person, so it is not here.
const PREVIEW_AGENTS: &[&str] = &[
    "line-poker",
    "linespider",
    "facebookexternalhit",
    "facebot",
    "twitterbot",
    "slackbot",
    "slack-imgproxy",
    "discordbot",
    "telegrambot",
    "whatsapp",
    "linkedinbot",
    "skypeuripreview",
    "applebot",
    "googlebot",
    "bingbot",
    "kakaotalk-scrap",
    "yeti/",
    "embedly",
    "iframely",
    "pinterest",
    "redditbot",
    "mastodon",
    "bytespider",
];

/// Whether a request with this `User-Agent` is a preview fetcher, not a person. A request
/// without one is not a browser either.
pub fn is_preview_fetcher(agent: Option<&str>) -> bool {
    let Some(agent) = agent.filter(|a| !a.trim().is_empty()) else {
        return true;
    };
    let agent = agent.to_ascii_lowercase();
    PREVIEW_AGENTS
        .iter()
        .any(|fragment| agent.contains(fragment))
}

pub(super) async fn redirect(
    State(state): State<AppState>,
    method: Method,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !looks_like_token(&token) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let count = method == Method::GET && !is_preview_fetcher(agent);
    let (answer, answered) = oneshot::channel();
    let work = Work::Click {
        token,
        count,
        at: Utc::now(),
        answer,
    };
    if state.writer.send(work).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match answered.await {
        Ok(Ok(Some(url))) => found(&url),
        Ok(Ok(None)) => StatusCode::NOT_FOUND.into_response(),
        _ => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// 302 to `url`, telling browsers and proxies not to keep it, and the target site nothing of
/// where the tap came from (the token would otherwise travel in `Referer`).
fn found(url: &str) -> Response {
    let is_web = url.starts_with("https://") || url.starts_with("http://");
    let Some(location) = is_web.then(|| HeaderValue::from_str(url).ok()).flatten() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_fetchers_are_told_apart_from_people() {
        for fetcher in [
            Some("facebookexternalhit/1.1;line-poker/1.0"),
            Some("Mozilla/5.0 (compatible; Twitterbot/1.0)"),
            Some("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"),
            Some("WhatsApp/2.23.20.0"),
            Some("Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)"),
            Some(""),
            None,
        ] {
            assert!(is_preview_fetcher(fetcher), "{fetcher:?}");
        }
        for person in [
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Safari Line/14.3.0",
            "Mozilla/5.0 (Linux; Android 13; CUBOT X30) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36",
        ] {
            assert!(!is_preview_fetcher(Some(person)), "{person}");
        }
    }

    #[test]
    fn only_web_urls_are_redirected_to() {
        assert_eq!(
            found("https://clinic.example/book").status(),
            StatusCode::FOUND
        );
        assert_eq!(
            found("https://clinic.example/book").headers()[header::LOCATION],
            "https://clinic.example/book"
        );
        assert_eq!(found("javascript:alert(1)").status(), StatusCode::NOT_FOUND);
        assert_eq!(
            found("https://x.example/\nSet-Cookie: a").status(),
            StatusCode::NOT_FOUND
        );
    }
}
