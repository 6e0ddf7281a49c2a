//! `POST /line/webhook`: nothing unsigned or malformed is stored, sizes and shapes are bounded,
//! an event is stored once however often LINE delivers it, and the newest follow or block wins.

use serde_json::json;
use steprule::ledger::EventKind;

use crate::events::{body, follow, now_ms, sign, text, unfollow, user};
use crate::server::{each_ledger, Options, Serve};

#[test]
fn a_missing_or_wrong_signature_is_401_and_nothing_is_stored() {
    each_ledger(|options| {
        let serve = Serve::start(options);
        let signed = body(&[unfollow("01SIG", 5, now_ms())]);
        let json = "application/json";
        assert_eq!(serve.post(&signed, None, json).status, 401);
        assert_eq!(serve.post(&signed, Some(""), json).status, 401);
        let other_secret = {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"not the secret");
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                ring::hmac::sign(&key, &signed).as_ref(),
            )
        };
        assert_eq!(serve.post(&signed, Some(&other_secret), json).status, 401);
        // A valid signature of another body.
        let other_body = body(&[unfollow("01SIG", 6, now_ms())]);
        assert_eq!(
            serve.post(&signed, Some(&sign(&other_body)), json).status,
            401
        );
        assert!(serve.events().is_empty());
        assert!(!serve.ledger().is_blocked(&user(5)).unwrap());
        assert_eq!(serve.post_signed(&signed).status, 200);
        assert_eq!(serve.events().len(), 1);
        // The console's Verify button: an empty list, signed.
        assert_eq!(serve.post_signed(&body(&[])).status, 200);
    });
}

#[test]
fn malformed_json_with_a_valid_signature_is_400_and_nothing_is_stored() {
    let serve = Serve::start(Options::default());
    for bad in [
        b"{not json".to_vec(),
        b"".to_vec(),
        br#"{"events":{}}"#.to_vec(),
        body(&[
            json!({"type":"unfollow","webhookEventId":"01A","timestamp":1,
                      "source":{"type":"user","userId":"Unot-a-user"}}),
        ]),
        body(&[json!({"type":"unfollow","timestamp":1,"source":{"type":"user","userId":user(1)}})]),
    ] {
        let answer = serve.post_signed(&bad);
        assert_eq!(answer.status, 400, "{}", String::from_utf8_lossy(&bad));
    }
    assert!(serve.events().is_empty());
}

#[test]
fn a_body_over_1_mib_is_413_and_a_body_that_is_not_json_is_415() {
    let serve = Serve::start(Options::default());
    let huge = vec![b' '; 1024 * 1024 + 1];
    assert_eq!(serve.post_signed(&huge).status, 413);
    let form = body(&[unfollow("01CT", 1, now_ms())]);
    let answer = serve.post(
        &form,
        Some(&sign(&form)),
        "application/x-www-form-urlencoded",
    );
    assert_eq!(answer.status, 415);
    assert!(serve.events().is_empty());
}

#[test]
fn a_repeated_event_is_stored_once_and_a_late_older_follow_does_not_undo_a_block() {
    each_ledger(|options| {
        let serve = Serve::start(options);
        let t = now_ms();
        let block = body(&[unfollow("01DUP0000000000000000000B", 9, t)]);
        assert_eq!(serve.post_signed(&block).status, 200);
        // LINE redelivers the same event, marked or not.
        assert_eq!(serve.post_signed(&block).status, 200);
        // A follow from before the block, redelivered late.
        let mut older = follow("01DUP0000000000000000000A", 9, t - 60_000, "r1");
        older["deliveryContext"]["isRedelivery"] = json!(true);
        assert_eq!(serve.post_signed(&body(&[older])).status, 200);
        let events = serve.events();
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::Follow, EventKind::Unfollow]);
        assert!(
            serve.ledger().is_blocked(&user(9)).unwrap(),
            "still blocked"
        );
        // A newer follow unblocks.
        let again = body(&[follow("01DUP0000000000000000000C", 9, t + 1_000, "r2")]);
        assert_eq!(serve.post_signed(&again).status, 200);
        assert!(!serve.ledger().is_blocked(&user(9)).unwrap());
    });
}

#[test]
fn healthz_answers_while_the_ledger_does_and_unknown_paths_are_404() {
    let serve = Serve::start(Options::default());
    let health = serve.get("/healthz", None);
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    assert_eq!(serve.get("/nothing-here", None).status, 404);
    assert_eq!(serve.get("/line/webhook", None).status, 405);
    // The ledger deleted under the server: it no longer answers for it.
    std::fs::remove_file(serve.ledger_path()).unwrap();
    assert_eq!(serve.get("/healthz", None).status, 503);
}

#[test]
fn hostile_bodies_get_a_clear_4xx_and_the_server_goes_on() {
    each_ledger(|options| {
        let serve = Serve::start(options);
        let t = now_ms();
        // 10,000 full events are over 1 MiB; 10,000 small ones are over the count.
        let many: Vec<_> = (0..10_000)
            .map(|i| unfollow(&format!("01M{i:05}"), 3, t))
            .collect();
        assert_eq!(serve.post_signed(&body(&many)).status, 413);
        let small: Vec<_> = (0..10_000).map(|_| json!({"type": "x"})).collect();
        let answer = serve.post_signed(&body(&small));
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert!(answer.body.contains("at most 1000"), "{}", answer.body);
        let deep = format!(
            r#"{{"events":{}{}}}"#,
            "[".repeat(200_000),
            "]".repeat(200_000)
        );
        assert_eq!(serve.post_signed(deep.as_bytes()).status, 400);
        assert_eq!(serve.post_signed(&[0xff, 0xfe, 0x00, 0x7b]).status, 400);
        let bad_users = body(
            &[json!({"type":"follow","webhookEventId":"01B","timestamp":t,
            "source":{"type":"user","userId":"U../../etc/passwd"}})],
        );
        assert_eq!(serve.post_signed(&bad_users).status, 400);
        let huge_id = body(&[unfollow(&"9".repeat(100_000), 3, t)]);
        assert_eq!(serve.post_signed(&huge_id).status, 400);
        // A text longer than LINE allows is taken as a message whose text is not kept.
        let long_text = body(&[text("01LONG", 3, t, "r", &"あ".repeat(6000))]);
        assert_eq!(serve.post_signed(&long_text).status, 200);
        let events = serve.events();
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].kind, events[0].detail.clone()),
            (EventKind::Message, None)
        );
        // An unknown event type is accepted and not stored.
        let beacon = body(&[crate::events::event(
            "beacon",
            "01BEACON",
            3,
            t,
            json!({"beacon":{}}),
        )]);
        assert_eq!(serve.post_signed(&beacon).status, 200);
        assert_eq!(serve.events().len(), 1);
        assert_eq!(serve.get("/healthz", None).status, 200);
        let stopped = serve.stop();
        assert_eq!(stopped.code, 0, "{}", stopped.stderr);
        assert!(!stopped.stderr.contains("panicked"), "{}", stopped.stderr);
    });
}
