//! Tracked links (`GET /r/{token}`) and postbacks: a tap is a click tied to the send that
//! carried the link; HEAD and preview fetchers are sent on but not counted; unknown tokens are
//! 404.

use chrono::{DateTime, Utc};
use steprule::ledger::{EventKind, SendKey, SinkKind, TrackKind};

use crate::events::{body, now_ms, postback};
use crate::server::{each_ledger, Serve};

const BROWSER: &str =
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 \
                       (KHTML, like Gecko) Mobile/15E148 Safari Line/14.3.0";
const TOKEN: &str = "kP3xQ9vT2mLw8ZbN4cYh7A";
const POSTBACK_TOKEN: &str = "Rq5Lz8Wn2Kd7Xc4Vb9Mt1A";
const TARGET: &str = "https://sakura-naika.example.jp/reserve?from=line";

fn sent_at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T01:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Records the tokens as `run` would have when it sent P0001's booking_confirm.
fn track(serve: &Serve) {
    let mut ledger = serve.ledger();
    let key = SendKey {
        sink: SinkKind::Line,
        patient: "P0001",
        step: "booking_confirm",
        occurrence: sent_at(),
    };
    ledger
        .track(TOKEN, TrackKind::Url, &key, TARGET, sent_at())
        .unwrap();
    ledger
        .track(
            POSTBACK_TOKEN,
            TrackKind::Postback,
            &key,
            "action=confirm&slot=1",
            sent_at(),
        )
        .unwrap();
}

#[test]
fn a_tap_on_a_tracked_link_is_a_click_and_goes_to_the_original_url() {
    each_ledger(|options| {
        let serve = Serve::start(options);
        track(&serve);
        let answer = serve.get(&format!("/r/{TOKEN}"), Some(BROWSER));
        assert_eq!(answer.status, 302);
        assert_eq!(answer.location.as_deref(), Some(TARGET));
        let events = serve.events();
        assert_eq!(events.len(), 1);
        let click = &events[0];
        assert_eq!(click.kind, EventKind::Click);
        assert_eq!(click.patient.as_deref(), Some("P0001"));
        assert_eq!(click.step.as_deref(), Some("booking_confirm"));
        assert_eq!(click.detail.as_deref(), Some(TARGET));
        assert!(click.id.starts_with("click-"), "{}", click.id);
        // Each tap counts.
        serve.get(&format!("/r/{TOKEN}"), Some(BROWSER));
        assert_eq!(serve.events().len(), 2);
        let stopped = serve.stop();
        assert!(
            !stopped.stderr.contains(TOKEN),
            "the token is cut short in the log"
        );
        assert!(
            stopped.stderr.contains("GET /r/kP3x… 302"),
            "{}",
            stopped.stderr
        );
    });
}

#[test]
fn head_requests_and_link_preview_fetchers_are_not_clicks() {
    each_ledger(|options| {
        let serve = Serve::start(options);
        track(&serve);
        let head = serve.head(&format!("/r/{TOKEN}"), BROWSER);
        assert_eq!((head.status, head.location.as_deref()), (302, Some(TARGET)));
        for fetcher in [
            "facebookexternalhit/1.1;line-poker/1.0",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "Mozilla/5.0 (compatible; Twitterbot/1.0)",
        ] {
            let answer = serve.get(&format!("/r/{TOKEN}"), Some(fetcher));
            assert_eq!(answer.status, 302, "{fetcher}");
        }
        assert!(serve.events().is_empty());
    });
}

#[test]
fn unknown_and_malformed_tokens_are_404_without_an_event() {
    each_ledger(|options| {
        let serve = Serve::start(options);
        track(&serve);
        for path in [
            "/r/AAAAAAAAAAAAAAAAAAAAAA",
            "/r/short",
            "/r/kP3xQ9vT2mLw8ZbN4cYh7A%00",
            &format!("/r/{}", "A".repeat(5000)),
            // A postback token is not a link.
            &format!("/r/{POSTBACK_TOKEN}"),
        ] {
            assert_eq!(serve.get(path, Some(BROWSER)).status, 404, "{path}");
        }
        assert!(serve.events().is_empty());
    });
}

#[test]
fn a_tracked_postback_is_recorded_with_its_send_and_original_data() {
    each_ledger(|options| {
        let serve = Serve::start(options);
        track(&serve);
        let t = now_ms();
        let tapped = body(&[
            postback("01PB1", 11, t, POSTBACK_TOKEN),
            postback("01PB2", 11, t + 1, &"d".repeat(400)),
        ]);
        assert_eq!(serve.post_signed(&tapped).status, 200);
        let events = serve.events();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, EventKind::Postback);
        assert_eq!(events[0].patient.as_deref(), Some("P0001"));
        assert_eq!(events[0].step.as_deref(), Some("booking_confirm"));
        assert_eq!(events[0].detail.as_deref(), Some("action=confirm&slot=1"));
        // Untracked data is kept as it came, cut to LINE's 300 characters, with no step.
        assert_eq!(events[1].step, None);
        assert_eq!(events[1].detail.as_deref().map(str::len), Some(300));
    });
}
