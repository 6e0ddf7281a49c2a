//! The LINE client against a tiny local server that answers every push with one canned
//! response: what each of LINE's answers becomes.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::routing::post;
use axum::Router;
use chrono::TimeZone;

use super::*;

const SECRET: &str = "line-token-SECRET-9d2e";

/// One canned answer and the `Authorization` headers the server received.
struct Canned {
    base: String,
    authorizations: Arc<Mutex<Vec<String>>>,
}

/// Serves `status`, `headers` and `body` for every push on 127.0.0.1 until the test's runtime
/// ends.
async fn serve(status: u16, headers: &[(&'static str, &str)], body: &str) -> Canned {
    let mut answer_headers = HeaderMap::new();
    for (name, value) in headers {
        answer_headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let status = StatusCode::from_u16(status).unwrap();
    let body = body.to_owned();
    let authorizations = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&authorizations);
    let app = Router::new().route(
        "/v2/bot/message/push",
        post(move |request: HeaderMap| {
            let auth = request
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            seen.lock().unwrap().push(auth);
            let (headers, body) = (answer_headers.clone(), body.clone());
            async move { (status, headers, body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Canned {
        base: format!("http://{addr}"),
        authorizations,
    }
}

fn job() -> Job {
    Job {
        occurrence: chrono::DateTime::UNIX_EPOCH,
        retry_key: "0b6f6c5e-2f43-4f5e-9d5e-3c3f7f1b2a10".into(),
        patient: "P1".into(),
        to: format!("U{:032x}", 1),
        step: "booking_confirm".into(),
        variant: None,
        messages: vec![crate::line::Message::Text {
            text: "ご予約ありがとうございます".into(),
        }],
        messages_json: None,
        expires: Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap(),
    }
}

async fn push_to(server: &Canned) -> Answer {
    let client = LineClient::new(&server.base, ChannelToken::new(SECRET.into())).unwrap();
    client.push(&job(), false).await
}

#[tokio::test]
async fn a_200_is_accepted_with_its_request_id() {
    let server = serve(200, &[("x-line-request-id", "req-1")], "{}").await;
    assert_eq!(
        push_to(&server).await,
        Answer::Accepted {
            request_id: Some("req-1".into())
        }
    );
    assert_eq!(
        *server.authorizations.lock().unwrap(),
        vec![format!("Bearer {SECRET}")]
    );
}

#[tokio::test]
async fn a_409_names_the_request_that_delivered() {
    let server = serve(
        409,
        &[
            ("x-line-request-id", "req-2"),
            ("x-line-accepted-request-id", "req-1"),
        ],
        r#"{"message":"The retry key is already accepted"}"#,
    )
    .await;
    assert_eq!(
        push_to(&server).await,
        Answer::AlreadyAccepted {
            request_id: Some("req-1".into()),
            note: None,
        }
    );
}

#[tokio::test]
async fn a_409_without_the_accepted_request_id_is_still_already_accepted() {
    let server = serve(
        409,
        &[("x-line-request-id", "req-2")],
        r#"{"message":"The retry key is already accepted"}"#,
    )
    .await;
    // Not the 409's own request id: that request delivered nothing.
    let Answer::AlreadyAccepted { request_id, note } = push_to(&server).await else {
        panic!("a 409 is already accepted")
    };
    assert_eq!(request_id, None);
    assert!(
        note.is_some_and(|n| n.contains("without x-line-accepted-request-id")),
        "the absence is recorded"
    );
}

#[tokio::test]
async fn retry_after_an_hour_waits_a_minute_and_keeps_the_wish() {
    let server = serve(
        429,
        &[("retry-after", "3600")],
        r#"{"message":"slow down"}"#,
    )
    .await;
    match push_to(&server).await {
        Answer::Retry {
            after,
            asked,
            error,
        } => {
            assert_eq!(after, Some(Duration::from_secs(60)));
            assert_eq!(asked, Some(Duration::from_secs(3600)));
            assert!(
                error.contains("429") && error.contains("slow down"),
                "{error}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_read() {
    let in_two_hours = (Utc::now() + chrono::Duration::hours(2))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let server = serve(503, &[("retry-after", &in_two_hours)], "").await;
    let Answer::Retry { after, asked, .. } = push_to(&server).await else {
        panic!("a 503 is retried");
    };
    assert_eq!(after, Some(RETRY_AFTER_CAP));
    let asked = asked.expect("the date was read");
    assert!(
        asked > Duration::from_secs(7100) && asked <= Duration::from_secs(7200),
        "{asked:?}"
    );
}

#[tokio::test]
async fn a_short_or_unreadable_retry_after_is_kept_or_ignored() {
    let server = serve(429, &[("retry-after", "2")], "").await;
    let Answer::Retry { after, asked, .. } = push_to(&server).await else {
        panic!("a 429 is retried");
    };
    assert_eq!((after, asked), (Some(Duration::from_secs(2)), after));
    let server = serve(500, &[("retry-after", "later")], "").await;
    let Answer::Retry { after, asked, .. } = push_to(&server).await else {
        panic!("a 500 is retried");
    };
    assert_eq!((after, asked), (None, None), "the usual backoff");
}

#[tokio::test]
async fn a_token_echoed_in_an_error_body_is_redacted() {
    let echoes = [
        (
            401,
            format!(r#"{{"message":"Authentication failed: Bearer {SECRET}"}}"#),
        ),
        (400, format!(r#"{{"message":"bad token {SECRET}"}}"#)),
        (500, format!("<html>Authorization: Bearer {SECRET}</html>")),
        (
            502,
            format!("upstream refused Bearer other-credential.xyz ({SECRET})"),
        ),
    ];
    for (status, body) in echoes {
        let server = serve(status, &[], &body).await;
        let error = match push_to(&server).await {
            Answer::Rejected { error }
            | Answer::Retry { error, .. }
            | Answer::Unavailable { error } => error,
            other => panic!("{status}: {other:?}"),
        };
        assert!(!error.contains(SECRET), "{status}: {error}");
        assert!(!error.contains("other-credential"), "{status}: {error}");
        assert!(error.contains(&status.to_string()), "{status}: {error}");
        assert!(error.contains("***"), "{status}: {error}");
    }
}

#[tokio::test]
async fn a_long_token_echo_cut_by_the_length_limit_leaves_no_part_of_it() {
    // The token straddles the 300-character cut: redacting first leaves nothing of it.
    let body = format!("{}{SECRET}", "x".repeat(MESSAGE_LIMIT - 5));
    let server = serve(400, &[], &body).await;
    let Answer::Rejected { error } = push_to(&server).await else {
        panic!("a 400 is rejected");
    };
    assert!(!error.contains(&SECRET[..5]), "{error}");
}

#[tokio::test]
async fn no_answer_is_retried_without_the_token() {
    let gone = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let client =
        LineClient::new(&format!("http://{gone}"), ChannelToken::new(SECRET.into())).unwrap();
    let Answer::Retry { after, error, .. } = client.push(&job(), false).await else {
        panic!("no answer is retried");
    };
    assert_eq!(after, None);
    assert!(error.starts_with("could not connect"), "{error}");
    assert!(!error.contains(SECRET), "{error}");
}

#[test]
fn a_bad_base_stops_the_client_before_anything_is_sent() {
    let token = || ChannelToken::new(SECRET.into());
    assert!(matches!(
        LineClient::new("not a url", token()),
        Err(LineClientError::NotAUrl { .. })
    ));
    assert!(matches!(
        LineClient::new("http://api.line.me", token()),
        Err(LineClientError::Cleartext { .. })
    ));
    assert!(LineClient::new(DEFAULT_API_BASE, token()).is_ok());
}

#[test]
fn the_token_is_never_in_debug_output() {
    let token = ChannelToken::new("secret-token".into());
    let client = LineClient::new("http://127.0.0.1:1", token).unwrap();
    assert!(!format!("{client:?}").contains("secret-token"));
}

#[test]
fn line_error_messages_are_short_and_plain() {
    assert_eq!(
        line_message(r#"{"message":"The request body has 1 error(s)"}"#),
        ": The request body has 1 error(s)"
    );
    assert_eq!(line_message(""), "");
    assert_eq!(
        line_message("bad\u{1b}[2J"),
        ": bad\\u{1b}[2J",
        "control characters from the server are escaped"
    );
    assert_eq!(
        line_message(&"x".repeat(1000)).len(),
        ": ".len() + MESSAGE_LIMIT
    );
}
