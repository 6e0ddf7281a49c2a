//! Linking a LINE friend to a patient: follow → link_request → the card number and birth date
//! → link_done; a wrong pair → link_failed (never saying which part); the sixth failure of a
//! day is refused without looking anyone up.

use std::time::Duration;

use steprule::ledger::EventKind;

use crate::events::{body, follow, now_ms, text, user};
use crate::fake_reply::FakeReply;
use crate::server::{each_ledger, Options, Serve};

fn with_replies(fake: &FakeReply) -> Serve {
    with_replies_on(fake, Options::default())
}

/// `options` (a ledger) with the fake reply endpoint.
fn with_replies_on(fake: &FakeReply, options: Options) -> Serve {
    Serve::start(Options {
        line: Some((crate::TOKEN.to_owned(), fake.base_url())),
        ..options
    })
}

#[test]
fn a_new_friend_is_asked_then_linked_by_card_number_and_birth_date() {
    each_ledger(|options| {
        let fake = FakeReply::start();
        let serve = with_replies_on(&fake, options);
        let t = now_ms();
        assert_eq!(
            serve
                .post_signed(&body(&[follow("01F1", 7, t, "reply-1")]))
                .status,
            200
        );
        let replies = fake.wait_for(1);
        assert_eq!(replies.len(), 1, "{}", serve.stderr());
        assert_eq!(replies[0].reply_token, "reply-1");
        let asked = replies[0].text();
        assert!(asked.contains("さくら内科クリニック"), "{asked}");
        assert!(
            asked.contains("診察券番号") && asked.contains("生年月日"),
            "{asked}"
        );
        let attempt = text(
            "01T1",
            7,
            t + 1000,
            "reply-2",
            "診察券番号 Ｐ０００１\n生年月日 1980年1月2日",
        );
        assert_eq!(serve.post_signed(&body(&[attempt])).status, 200);
        let replies = fake.wait_for(2);
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[1].reply_token, "reply-2");
        assert!(
            replies[1].text().contains("確認ができました"),
            "{}",
            replies[1].text()
        );
        let ledger = serve.ledger();
        assert_eq!(
            ledger.linked_patient(&user(7)).unwrap().as_deref(),
            Some("P0001")
        );
        let events = serve.events();
        let seen: Vec<_> = events
            .iter()
            .map(|e| (e.kind, e.patient.as_deref(), e.detail.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                (EventKind::Follow, None, None),
                (EventKind::Link, Some("P0001"), None)
            ]
        );
        // A friend the export already names is not asked.
        assert_eq!(
            serve
                .post_signed(&body(&[follow("01F2", 2, t, "reply-3")]))
                .status,
            200
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(fake.replies().len(), 2);
        assert_eq!(fake.refused(), 0);
    });
}

#[test]
fn a_wrong_birth_date_fails_without_saying_which_part_was_wrong() {
    let fake = FakeReply::start();
    let serve = with_replies(&fake);
    let attempt = text("01W1", 8, now_ms(), "reply-w", "P0001 1980/1/3");
    assert_eq!(serve.post_signed(&body(&[attempt])).status, 200);
    let replies = fake.wait_for(1);
    let said = replies[0].text();
    assert!(said.contains("確認ができませんでした"), "{said}");
    assert!(
        !said.contains("生年月日が") && !said.contains("番号が違"),
        "{said}"
    );
    assert_eq!(serve.ledger().linked_patient(&user(8)).unwrap(), None);
    let events = serve.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].kind, events[0].patient.as_deref()),
        (EventKind::LinkFailed, None)
    );
    // A patient without a birth date on record cannot be linked at all.
    let no_birth = text("01W2", 8, now_ms(), "reply-w2", "P0003 1980-01-02");
    assert_eq!(serve.post_signed(&body(&[no_birth])).status, 200);
    assert_eq!(fake.wait_for(2).len(), 2);
    assert_eq!(serve.ledger().linked_patient(&user(8)).unwrap(), None);
}

#[test]
fn the_sixth_failed_attempt_in_a_day_is_refused_without_a_lookup() {
    let fake = FakeReply::start();
    let serve = with_replies(&fake);
    let t = now_ms();
    for i in 0..5 {
        let wrong = text(
            &format!("01X{i}"),
            4,
            t + i,
            &format!("r{i}"),
            "P0001 1999-09-09",
        );
        assert_eq!(serve.post_signed(&body(&[wrong])).status, 200);
    }
    let replies = fake.wait_for(5);
    assert_eq!(replies.len(), 5);
    assert!(replies
        .iter()
        .all(|r| r.text().contains("確認ができませんでした")));
    // The right pair, sixth: refused all the same.
    let right = text("01X5", 4, t + 5, "r5", "P0001 1980-01-02");
    assert_eq!(serve.post_signed(&body(&[right])).status, 200);
    let replies = fake.wait_for(6);
    assert!(replies[5].text().contains("上限"), "{}", replies[5].text());
    let ledger = serve.ledger();
    assert_eq!(ledger.linked_patient(&user(4)).unwrap(), None);
    let day = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Tokyo)
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(ledger.link_attempts(&user(4), &day).unwrap().failures, 5);
    let last = serve.events().pop().unwrap();
    assert_eq!(
        (last.kind, last.detail.as_deref()),
        (EventKind::LinkFailed, Some("locked"))
    );
}

#[test]
fn a_linked_patients_ordinary_message_is_an_event_without_text_or_reply() {
    let fake = FakeReply::start();
    let serve = with_replies(&fake);
    let chat = text(
        "01C1",
        2,
        now_ms(),
        "reply-c",
        "12月1日の予約、よろしくお願いします",
    );
    assert_eq!(serve.post_signed(&body(&[chat])).status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert!(fake.replies().is_empty());
    let events = serve.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].kind,
            events[0].patient.as_deref(),
            events[0].detail.as_deref()
        ),
        (EventKind::Message, Some("P0002"), None)
    );
    let stopped = serve.stop();
    assert!(
        !stopped.stderr.contains("よろしく"),
        "no message text in the log"
    );
    assert!(
        !stopped.stderr.contains(&user(2)),
        "no LINE user id in the log"
    );
}

#[test]
fn without_a_token_events_are_stored_and_the_missing_replies_said_once() {
    let serve = Serve::start(Options::default());
    let t = now_ms();
    for i in 0..3 {
        let follow = follow(&format!("01N{i}"), 20 + i, t, "reply");
        assert_eq!(serve.post_signed(&body(&[follow])).status, 200);
    }
    assert_eq!(serve.events().len(), 3);
    let stopped = serve.stop();
    assert_eq!(stopped.code, 0);
    let warnings = stopped
        .stderr
        .lines()
        .filter(|l| l.contains("replies (link_request"))
        .count();
    assert_eq!(warnings, 1, "{}", stopped.stderr);
}

#[test]
fn a_patient_added_to_the_export_can_link_once_it_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let patients = dir.path().join("patients.csv");
    let header = "id,line_user_id,stage,birth_date\n";
    std::fs::write(&patients, format!("{header}P0001,,booked,1980-01-02\n")).unwrap();
    let serve = Serve::start(Options {
        patients: Some(patients.clone()),
        // Each tick also looks at the export.
        args: vec!["--run-every".into(), "1s".into()],
        ..Options::default()
    });
    let t = now_ms();
    let early = text("01R1", 30, t, "r1", "P0009 1990-09-09");
    assert_eq!(serve.post_signed(&body(&[early])).status, 200);
    assert_eq!(serve.ledger().linked_patient(&user(30)).unwrap(), None);
    std::fs::write(
        &patients,
        format!("{header}P0001,,booked,1980-01-02\nP0009,,booked,1990-09-09\n"),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline
        && !serve
            .stderr()
            .contains("the patient export changed: 2 patient(s)")
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let again = text("01R2", 30, t + 1, "r2", "P0009 1990-09-09");
    assert_eq!(serve.post_signed(&body(&[again])).status, 200);
    assert_eq!(
        serve.ledger().linked_patient(&user(30)).unwrap().as_deref(),
        Some("P0009"),
        "{}",
        serve.stderr()
    );
}
