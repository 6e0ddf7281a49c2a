use std::collections::HashSet;

use serde_json::json;

use super::limits::{check, check_tracked, Lengths};
use super::track::{
    new_token, track, LinkKind, SendLinks, TrackBase, TrackBaseError, TrackedLink, MAX_TRACK_BASE,
    TOKEN_LEN,
};
use super::*;

fn card(buttons: &[(&str, &str)], hero: Option<&str>) -> Message {
    Message::Card(Card {
        alt_text: "さくら内科クリニックからのお知らせ".into(),
        hero: hero.map(str::to_owned),
        buttons: buttons
            .iter()
            .map(|(label, uri)| Button {
                label: (*label).into(),
                uri: (*uri).into(),
            })
            .collect(),
    })
}

/// The messages as the simple form built them as JSON before they were typed.
fn card_as_json(buttons: &[(&str, &str)], hero: Option<&str>) -> serde_json::Value {
    let actions: Vec<_> = buttons
        .iter()
        .enumerate()
        .map(|(index, (label, uri))| {
            json!({
                "type": "button",
                "style": if index == 0 { "primary" } else { "link" },
                "action": { "type": "uri", "label": label, "uri": uri },
            })
        })
        .collect();
    let mut bubble = json!({
        "type": "bubble",
        "footer": { "type": "box", "layout": "vertical", "spacing": "sm", "contents": actions },
    });
    if let Some(url) = hero {
        bubble["hero"] =
            json!({ "type": "image", "url": url, "size": "full", "aspectMode": "cover" });
    }
    json!({ "type": "flex", "altText": "さくら内科クリニックからのお知らせ", "contents": bubble })
}

#[test]
fn typed_messages_serialise_to_the_same_bytes_as_before() {
    let same = |typed: &Message, json: serde_json::Value| {
        assert_eq!(
            serde_json::to_string(typed).unwrap(),
            serde_json::to_string(&json).unwrap()
        );
    };
    same(
        &Message::Text {
            text: "山田 花子 様\n\"引用\"".into(),
        },
        json!({ "type": "text", "text": "山田 花子 様\n\"引用\"" }),
    );
    same(
        &Message::Image {
            original: "https://x.jp/a.png".into(),
            preview: "https://x.jp/a.png".into(),
        },
        json!({ "type": "image", "originalContentUrl": "https://x.jp/a.png", "previewImageUrl": "https://x.jp/a.png" }),
    );
    let buttons = [("予約", "https://x.jp/r"), ("電話", "tel:0312345678")];
    same(&card(&buttons, None), card_as_json(&buttons, None));
    same(
        &card(&buttons, Some("https://x.jp/h.png")),
        card_as_json(&buttons, Some("https://x.jp/h.png")),
    );
    let raw = json!({ "type": "sticker", "packageId": "446", "stickerId": "1988" });
    same(&Message::Json(raw.clone()), raw);
}

#[test]
fn the_message_kind_is_lines_type() {
    assert_eq!(card(&[], None).kind(), Some("flex"));
    assert_eq!(
        Message::Json(json!({ "type": "imagemap" })).kind(),
        Some("imagemap")
    );
    assert_eq!(Message::Json(json!({ "text": "x" })).kind(), None);
}

#[test]
fn postback_data_over_300_characters_is_a_limit() {
    let message = |data: &str| {
        Message::Json(json!({
            "type": "template", "altText": "a",
            "template": { "type": "buttons", "text": "t",
                "actions": [{ "type": "postback", "label": "はい", "data": data }] },
        }))
    };
    let long = [message(&"d".repeat(301))];
    let found = check(&long, &long, Lengths::All);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].kind,
        LimitKind::PostbackDataTooLong { length: 301 }
    );
    assert_eq!(found[0].role, Some(Role::PostbackData));
    let fine = [message(&"d".repeat(300))];
    assert!(check(&fine, &fine, Lengths::All).is_empty());
}

// ---- the URL scanner --------------------------------------------------------------------------

fn urls_in(text: &str) -> Vec<&str> {
    urls::find(text).into_iter().map(|r| &text[r]).collect()
}

#[test]
fn urls_end_where_japanese_text_and_punctuation_start() {
    assert_eq!(
        urls_in("詳しくはhttps://x.example.jp/info。ご予約は「https://x.example.jp/r」へ、"),
        ["https://x.example.jp/info", "https://x.example.jp/r"]
    );
    assert_eq!(
        urls_in("（https://x.jp/a）と(https://x.jp/b)、https://x.jp/cをご覧ください"),
        ["https://x.jp/a", "https://x.jp/b", "https://x.jp/c"]
    );
    assert_eq!(
        urls_in("See https://x.jp/a. Or https://x.jp/b, or https://x.jp/c!"),
        ["https://x.jp/a", "https://x.jp/b", "https://x.jp/c"]
    );
    // Ends at a full-width space and a newline.
    assert_eq!(
        urls_in("https://x.jp/a\u{3000}次\nhttps://x.jp/b\n"),
        ["https://x.jp/a", "https://x.jp/b"]
    );
}

#[test]
fn urls_keep_their_query_fragment_port_and_balanced_parentheses() {
    assert_eq!(
        urls_in("予約：https://x.jp:8443/r?id=1&from=line#top。"),
        ["https://x.jp:8443/r?id=1&from=line#top"]
    );
    assert_eq!(
        urls_in("https://ja.wikipedia.org/wiki/Foo_(bar) です"),
        ["https://ja.wikipedia.org/wiki/Foo_(bar)"]
    );
    assert_eq!(urls_in("HTTPS://X.JP/A"), ["HTTPS://X.JP/A"]);
    assert_eq!(urls_in("http://x.jp"), ["http://x.jp"]);
}

#[test]
fn internationalised_hosts_are_urls_too() {
    assert_eq!(
        urls_in("サイト：https://例え.テスト/パス と https://日本語.jp/a"),
        ["https://例え.テスト/", "https://日本語.jp/a"]
    );
    // An ASCII host runs into the sentence: the sentence is not part of it.
    assert_eq!(urls_in("https://x.jpをご覧ください"), ["https://x.jp"]);
}

#[test]
fn other_schemes_and_broken_urls_are_left_alone() {
    for text in [
        "javascript:alert(1)",
        "tel:0312345678",
        "line://ti/p/@clinic",
        "mailto:a@x.jp",
        "https://",
        "https:///path",
        "xhttps://x.jp/",
        "ftp://x.jp/",
        "https//x.jp",
    ] {
        assert_eq!(urls_in(text), Vec::<&str>::new(), "{text}");
    }
}

#[test]
fn scanning_a_long_text_is_linear() {
    // 5,000 characters of `)` after a URL, and 1,000 URLs: both scanned in one pass.
    let parens = format!("https://x.jp/a{}", ")".repeat(5000));
    assert_eq!(urls_in(&parens), ["https://x.jp/a"]);
    let many = "https://x.jp/a ".repeat(1000);
    assert_eq!(urls::find(&many).len(), 1000);
}

// ---- tokens and tracking ------------------------------------------------------------------

#[test]
fn tokens_are_128_random_bits_in_base64url() {
    let mut seen = HashSet::new();
    for _ in 0..100_000 {
        let token = new_token().unwrap();
        assert_eq!(token.len(), TOKEN_LEN, "{token}");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{token}"
        );
        assert!(seen.insert(token), "a token came twice");
    }
}

fn base() -> TrackBase {
    TrackBase::parse("https://go.example-clinic.jp").unwrap()
}

fn token_of(link: &str) -> &str {
    link.strip_prefix("https://go.example-clinic.jp/r/")
        .unwrap_or_else(|| panic!("not a tracked link: {link}"))
}

#[test]
fn links_are_tracked_and_images_are_not() {
    let mut messages = vec![
        Message::Text {
            text: "ご予約はhttps://x.jp/r、お問い合わせはtel:0312345678へ".into(),
        },
        card(
            &[("予約", "https://x.jp/r"), ("電話", "tel:0312345678")],
            Some("https://x.jp/hero.png"),
        ),
        Message::Image {
            original: "https://x.jp/a.png".into(),
            preview: "https://x.jp/a.png".into(),
        },
    ];
    let mut links = SendLinks::new([]);
    track(&mut messages, &base(), &mut links).unwrap();
    let minted = links.into_minted();
    // The same URL twice is one token.
    assert_eq!(minted.len(), 1, "{minted:?}");
    assert_eq!(minted[0].kind, LinkKind::Url);
    assert_eq!(minted[0].target, "https://x.jp/r");
    let tracked = format!("https://go.example-clinic.jp/r/{}", minted[0].token);
    let Message::Text { text } = &messages[0] else {
        panic!()
    };
    assert_eq!(
        text,
        &format!("ご予約は{tracked}、お問い合わせはtel:0312345678へ")
    );
    let Message::Card(card) = &messages[1] else {
        panic!()
    };
    assert_eq!(card.buttons[0].uri, tracked);
    assert_eq!(card.buttons[1].uri, "tel:0312345678");
    assert_eq!(card.hero.as_deref(), Some("https://x.jp/hero.png"));
    assert_eq!(
        messages[2],
        Message::Image {
            original: "https://x.jp/a.png".into(),
            preview: "https://x.jp/a.png".into(),
        }
    );
}

#[test]
fn line_json_links_and_postback_data_are_tracked() {
    let written = json!([
        { "type": "imagemap", "baseUrl": "https://x.jp/map", "altText": "a",
          "baseSize": { "width": 1040, "height": 1040 },
          "actions": [{ "type": "uri", "linkUri": "https://x.jp/m",
                        "area": { "x": 0, "y": 0, "width": 1, "height": 1 } }] },
        { "type": "template", "altText": "a", "template": { "type": "buttons",
          "thumbnailImageUrl": "https://x.jp/t.png", "text": "https://x.jp/not-a-link",
          "actions": [
            { "type": "postback", "label": "はい", "data": "answer=yes" },
            { "type": "uri", "label": "開く", "uri": "https://x.jp/o",
              "altUri": { "desktop": "https://x.jp/d" } } ] } },
        { "type": "text", "text": "https://x.jp/t" },
    ]);
    let mut messages: Vec<Message> = written
        .as_array()
        .unwrap()
        .iter()
        .cloned()
        .map(Message::Json)
        .collect();
    let mut links = SendLinks::new([]);
    track(&mut messages, &base(), &mut links).unwrap();
    let minted = links.into_minted();
    let targets: HashSet<_> = minted.iter().map(|l| (l.kind, l.target.as_str())).collect();
    let want: HashSet<_> = [
        (LinkKind::Url, "https://x.jp/m"),
        (LinkKind::Postback, "answer=yes"),
        (LinkKind::Url, "https://x.jp/o"),
        (LinkKind::Url, "https://x.jp/d"),
        (LinkKind::Url, "https://x.jp/t"),
    ]
    .into();
    assert_eq!(targets, want);
    let json: Vec<_> = messages
        .iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .collect();
    let token = |kind, target: &str| {
        minted
            .iter()
            .find(|l| l.kind == kind && l.target == target)
            .unwrap()
            .token
            .clone()
    };
    assert_eq!(
        token_of(json[0]["actions"][0]["linkUri"].as_str().unwrap()),
        token(LinkKind::Url, "https://x.jp/m")
    );
    assert_eq!(json[0]["baseUrl"], "https://x.jp/map");
    let actions = &json[1]["template"]["actions"];
    assert_eq!(actions[0]["data"], token(LinkKind::Postback, "answer=yes"));
    assert_eq!(
        token_of(actions[1]["altUri"]["desktop"].as_str().unwrap()),
        token(LinkKind::Url, "https://x.jp/d")
    );
    // A template message's text is not made into links by LINE; images are fetched by LINE.
    assert_eq!(json[1]["template"]["text"], "https://x.jp/not-a-link");
    assert_eq!(
        json[1]["template"]["thumbnailImageUrl"],
        "https://x.jp/t.png"
    );
    assert_eq!(
        token_of(json[2]["text"].as_str().unwrap()),
        token(LinkKind::Url, "https://x.jp/t")
    );
}

#[test]
fn a_resumed_send_uses_its_recorded_tokens() {
    let messages = || {
        vec![card(
            &[("予約", "https://x.jp/r"), ("地図", "https://x.jp/map")],
            None,
        )]
    };
    let mut first = messages();
    let mut links = SendLinks::new([]);
    track(&mut first, &base(), &mut links).unwrap();
    let recorded = links.into_minted();
    assert_eq!(recorded.len(), 2);
    let mut again = messages();
    let mut links = SendLinks::new(recorded);
    track(&mut again, &base(), &mut links).unwrap();
    assert_eq!(again, first);
    assert_eq!(links.into_minted(), Vec::<TrackedLink>::new());
}

#[test]
fn tracked_lengths_are_measured_after_tracking() {
    // 80 URLs of 73 characters make a text over 5,000; tracked, each is 53, and it fits.
    let long_url = format!("https://x.jp/{}", "a".repeat(60));
    let text = vec![long_url.as_str(); 80].join(" ");
    let mut messages = vec![Message::Text { text: text.clone() }];
    let written = messages.clone();
    assert!(!check(&written, &messages, Lengths::All).is_empty());
    assert!(check(&written, &messages, Lengths::Untracked).is_empty());
    track(&mut messages, &base(), &mut SendLinks::new([])).unwrap();
    assert!(check_tracked(&messages).is_empty());
    // And the other way round: 300 short URLs grow past the limit once tracked.
    let text = "https://x.jp ".repeat(300);
    let mut messages = vec![Message::Text { text }];
    assert!(check(&messages, &messages, Lengths::All).is_empty());
    track(&mut messages, &base(), &mut SendLinks::new([])).unwrap();
    let found = check_tracked(&messages);
    assert!(
        matches!(
            found[..],
            [Finding {
                kind: LimitKind::TextTooLong { .. },
                ..
            }]
        ),
        "{found:?}"
    );
}

#[test]
fn sample_tokens_are_as_long_as_real_ones_and_never_recorded() {
    let mut messages = vec![card(&[("予約", "https://x.jp/r")], None)];
    let mut links = SendLinks::sample();
    track(&mut messages, &base(), &mut links).unwrap();
    assert_eq!(links.into_minted(), Vec::<TrackedLink>::new());
    let Message::Card(card) = &messages[0] else {
        panic!()
    };
    assert_eq!(token_of(&card.buttons[0].uri).len(), TOKEN_LEN);
}

// ---- the `track` setting ------------------------------------------------------------------

#[test]
fn a_track_url_is_https_without_query_fragment_or_user() {
    assert_eq!(base().as_str(), "https://go.example-clinic.jp");
    assert_eq!(
        TrackBase::parse("https://GO.Example.jp/t/")
            .unwrap()
            .link("tok"),
        "https://go.example.jp/t/r/tok"
    );
    assert_eq!(
        TrackBase::parse("https://例え.jp").unwrap().as_str(),
        "https://xn--r8jz45g.jp"
    );
    assert!(TrackBase::parse("http://127.0.0.1:8080").is_ok());
    assert!(TrackBase::parse("http://localhost:8080").is_ok());
    assert_eq!(
        TrackBase::parse("http://go.example.jp"),
        Err(TrackBaseError::Cleartext)
    );
    assert!(matches!(
        TrackBase::parse("javascript:alert(1)"),
        Err(TrackBaseError::Scheme { .. })
    ));
    assert!(matches!(
        TrackBase::parse("go.example.jp"),
        Err(TrackBaseError::NotAUrl { .. })
    ));
    for bad in ["https://go.example.jp/?x=1", "https://go.example.jp/#a"] {
        assert_eq!(
            TrackBase::parse(bad),
            Err(TrackBaseError::QueryOrFragment),
            "{bad}"
        );
    }
    assert_eq!(
        TrackBase::parse("https://u:p@go.example.jp"),
        Err(TrackBaseError::Userinfo)
    );
    let long = format!("https://go.example.jp/{}", "a".repeat(2000));
    assert!(matches!(
        TrackBase::parse(&long),
        Err(TrackBaseError::TooLong { length }) if length > MAX_TRACK_BASE
    ));
    let longest = format!("https://go.example.jp/{}", "a".repeat(MAX_TRACK_BASE - 22));
    let tracked = TrackBase::parse(&longest)
        .unwrap()
        .link(&new_token().unwrap());
    assert_eq!(tracked.len(), limits::MAX_ACTION_URI);
}
