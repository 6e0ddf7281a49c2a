//! The fake LINE API itself: it refuses what LINE refuses, enforces retry keys and injects the
//! faults the other tests rely on.

use crate::fake_line::{FakeLine, Fault, Faults, TOKEN};
use crate::workspace::user_id;

/// What a push got back: the status, `x-line-request-id`, `x-line-accepted-request-id` and
/// `retry-after`.
type Answer = (u16, Option<String>, Option<String>, Option<String>);

/// Pushes one text message to `user_id(1)` with reqwest, as steprule does.
fn push(fake: &FakeLine, token: &str, key: &str) -> Result<Answer, reqwest::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = serde_json::json!({"to": user_id(1), "messages": [{"type": "text", "text": "hi"}]});
    let request = reqwest::Client::new()
        .post(format!("{}/v2/bot/message/push", fake.base_url()))
        .bearer_auth(token)
        .header("X-Line-Retry-Key", key)
        .json(&body)
        .send();
    let response = runtime.block_on(request)?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Ok((
        response.status().as_u16(),
        header("x-line-request-id"),
        header("x-line-accepted-request-id"),
        header("retry-after"),
    ))
}

#[test]
fn fake_line_enforces_retry_keys() {
    let key = "123e4567-e89b-42d3-a456-426614174000";
    let fake = FakeLine::start(Faults::none());
    let (status, first_id, _, _) = push(&fake, TOKEN, key).unwrap();
    assert_eq!(status, 200);
    let (status, second_id, accepted_id, _) = push(&fake, TOKEN, key).unwrap();
    assert_eq!(status, 409);
    assert_eq!(accepted_id, first_id, "409 names the accepted request");
    assert_ne!(second_id, first_id, "every request has its own id");
    assert_eq!(fake.accepted(), 1, "a repeated key is delivered once");
    assert_eq!(fake.conflicts(), 1);
    assert_eq!(push(&fake, TOKEN, "not-a-uuid").unwrap().0, 400);
    assert_eq!(push(&fake, "wrong", key).unwrap().0, 401);
    assert_eq!(fake.unauthorized(), 1);
    assert_eq!(fake.accepted_request_id(key), first_id);
    assert_eq!(fake.deliveries_to(&user_id(1), ""), 1);

    // Every attempt fails after accepting: the first is delivered, then only 500s.
    let fake = FakeLine::start(Faults {
        error_after: 1.0,
        ..Faults::none()
    });
    assert_eq!(push(&fake, TOKEN, key).unwrap().0, 500);
    assert_eq!(push(&fake, TOKEN, key).unwrap().0, 500);
    assert_eq!((fake.accepted(), fake.attempts_for_key(key)), (1, 2));
}

#[test]
fn fake_line_drops_connections_and_throttles() {
    let fake = FakeLine::start(Faults {
        drop_before: 1.0,
        ..Faults::none()
    });
    let error = push(&fake, TOKEN, "00000000-0000-4000-8000-000000000001")
        .expect_err("the connection is dropped");
    assert!(error.status().is_none(), "no response: {error}");
    assert_eq!(fake.accepted(), 0);
    assert_eq!(fake.faults()[&Fault::DropBefore], 1);

    let fake = FakeLine::start(Faults {
        too_many_requests: 1.0,
        ..Faults::none()
    });
    let (status, _, _, retry_after) =
        push(&fake, TOKEN, "00000000-0000-4000-8000-000000000002").unwrap();
    assert_eq!((status, retry_after.as_deref()), (429, Some("1")));
    assert_eq!(fake.accepted(), 0);
}

#[test]
fn fake_line_quirks_drop_the_accepted_id_and_echo_the_authorization() {
    let key = "00000000-0000-4000-8000-000000000003";
    let fake = FakeLine::start(Faults {
        error_after_first_attempts: 1,
        conflict_without_accepted_id: true,
        ..Faults::none()
    });
    assert_eq!(
        push(&fake, TOKEN, key).unwrap().0,
        500,
        "delivered, then 500"
    );
    let (status, request_id, accepted_id, _) = push(&fake, TOKEN, key).unwrap();
    assert_eq!((status, accepted_id), (409, None));
    assert!(request_id.is_some(), "the 409 still has its own id");
    assert_eq!((fake.accepted(), fake.attempts_for_key(key)), (1, 2));

    let fake = FakeLine::start(Faults {
        echo_authorization: true,
        ..Faults::none()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/v2/bot/message/push", fake.base_url()))
            .bearer_auth("wrong-token")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(body.contains("Bearer wrong-token"), "{body}");
}
