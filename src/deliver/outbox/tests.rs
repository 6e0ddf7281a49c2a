use super::*;

fn job(key: &str) -> Job {
    Job {
        occurrence: chrono::DateTime::UNIX_EPOCH,
        retry_key: key.into(),
        patient: "P1".into(),
        to: "U1".into(),
        step: "thanks".into(),
        variant: None,
        messages: vec![crate::line::Message::Text {
            text: "ありがとうございました".into(),
        }],
        messages_json: None,
        expires: chrono::DateTime::UNIX_EPOCH,
    }
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_torn_last_line_is_set_aside_and_appending_resumes_on_a_new_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    let whole = r#"{"retry_key":"k0"}"#;
    std::fs::write(&path, format!("{whole}\n{{\"patient\":\"P9\",\"to\":\"U")).unwrap();
    let outbox = Outbox::open(&path, &[], 0).unwrap();
    let aside = outbox.set_aside.clone().expect("the torn tail was moved");
    assert_eq!(
        std::fs::read_to_string(&aside).unwrap(),
        r#"{"patient":"P9","to":"U"#
    );
    assert!(matches!(
        outbox.deliver(&job("k1")),
        Answer::Accepted { .. }
    ));
    let keys: Vec<_> = lines(&path)
        .iter()
        .map(|l| l["retry_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["k0", "k1"]);
}

#[test]
fn a_last_line_that_is_not_utf8_is_set_aside_and_pending_keys_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    let mut bytes = br#"{"retry_key":"k0"}"#.to_vec();
    bytes.push(b'\n');
    bytes.extend_from_slice(b"{\"patient\":\"\x82\xa0\xff\"}\n");
    std::fs::write(&path, bytes).unwrap();
    let outbox = Outbox::open(&path, &["k0".to_owned()], 0).unwrap();
    assert!(outbox.set_aside.is_some());
    assert!(matches!(
        outbox.deliver(&job("k0")),
        Answer::AlreadyAccepted { .. }
    ));
    assert_eq!(lines(&path).len(), 1);
}

#[test]
fn a_whole_file_is_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    std::fs::write(&path, "{\"retry_key\":\"k0\"}\n").unwrap();
    let outbox = Outbox::open(&path, &[], 0).unwrap();
    assert_eq!(outbox.set_aside, None);
    assert_eq!(lines(&path).len(), 1);
}

#[test]
fn an_overlong_line_is_skipped_when_looking_for_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    let long = "x".repeat(MAX_LINE + 10);
    std::fs::write(&path, format!("{long}\n{{\"retry_key\":\"k1\"}}\n")).unwrap();
    let outbox = Outbox::open(&path, &["k1".to_owned()], 0).unwrap();
    assert!(outbox.written.contains("k1"));
}

#[test]
fn a_failed_write_stops_the_outbox_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    let outbox = Outbox::open(&path, &[], 0).unwrap();
    // A disk that is full: every write fails with ENOSPC.
    outbox.state.lock().unwrap().file = OpenOptions::new().write(true).open("/dev/full").unwrap();
    let Answer::Unavailable { error } = outbox.deliver(&job("k1")) else {
        panic!("a failed write is not a delivery")
    };
    assert!(error.contains("outbox.jsonl"), "{error}");
    assert!(error.contains("No space left"), "{error}");
    assert!(matches!(
        outbox.deliver(&job("k2")),
        Answer::Unavailable { .. }
    ));
    assert_eq!(outbox.write_error(), Some(error));
}

#[test]
fn the_outbox_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/outbox.jsonl");
    Outbox::open(&path, &[], 0).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn keys_are_looked_for_only_after_where_the_outbox_ended_when_they_were_claimed() {
    // Years of earlier lines are not read again after a crash: a key before `from` is not
    // looked at (here it stands for a line of another run), one after it is found.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    let earlier = "{\"retry_key\":\"old\"}\n".repeat(1000);
    std::fs::write(&path, format!("{earlier}{{\"retry_key\":\"new\"}}\n")).unwrap();
    let keys = ["old".to_owned(), "new".to_owned()];
    let outbox = Outbox::open(&path, &keys, earlier.len() as u64).unwrap();
    assert!(outbox.written.contains("new"));
    assert!(!outbox.written.contains("old"));
    // An outbox shorter than `from` was replaced: it is read from the start.
    let short = Outbox::open(&path, &keys, 10 * earlier.len() as u64).unwrap();
    assert!(short.written.contains("old") && short.written.contains("new"));
}

#[test]
fn a_batch_is_written_in_order_in_the_usual_line_format_skipping_lines_already_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    std::fs::write(&path, "{\"retry_key\":\"k1\"}\n").unwrap();
    let outbox = Outbox::open(&path, &["k1".to_owned()], 0).unwrap();
    let jobs = [job("k0"), job("k1"), job("k2")];
    let (mut lines, mut answers) = (Vec::new(), Vec::new());
    outbox.deliver_all(&jobs, &mut lines, &mut answers);
    assert!(matches!(answers[0], Answer::Accepted { .. }));
    assert!(matches!(answers[1], Answer::AlreadyAccepted { .. }));
    assert!(matches!(answers[2], Answer::Accepted { .. }));
    let text = std::fs::read_to_string(&path).unwrap();
    let written: Vec<&str> = text.lines().collect();
    // One compact JSON object a line, its keys in this order: what readers of the outbox get.
    let expected = |key: &str| {
        format!(
            "{{\"patient\":\"P1\",\"to\":\"U1\",\"step\":\"thanks\",\"variant\":null,\
             \"retry_key\":\"{key}\",\"messages\":[{{\"text\":\"ありがとうございました\",\
             \"type\":\"text\"}}]}}"
        )
    };
    assert_eq!(
        written,
        ["{\"retry_key\":\"k1\"}", &expected("k0"), &expected("k2")]
    );
    assert_eq!(outbox.end(), text.len() as u64);
}

#[test]
fn a_failed_batch_write_leaves_none_of_its_lines_and_every_send_pending() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    std::fs::write(&path, "{\"retry_key\":\"k0\"}\n").unwrap();
    let outbox = Outbox::open(&path, &["k0".to_owned()], 0).unwrap();
    outbox.state.lock().unwrap().file = OpenOptions::new().write(true).open("/dev/full").unwrap();
    let jobs = [job("k0"), job("k1"), job("k2")];
    let (mut lines, mut answers) = (Vec::new(), Vec::new());
    outbox.deliver_all(&jobs, &mut lines, &mut answers);
    // The line found before the failure still counts; the two new ones stay pending.
    assert!(matches!(answers[0], Answer::AlreadyAccepted { .. }));
    assert!(matches!(answers[1], Answer::Unavailable { .. }));
    assert!(matches!(answers[2], Answer::Unavailable { .. }));
    assert!(outbox.write_error().is_some());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"retry_key\":\"k0\"}\n"
    );
}

/// A job whose messages were serialized beside the evaluation writes the same bytes as one
/// whose messages the outbox serializes.
#[test]
fn messages_serialized_already_make_the_same_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut plain = job("k1");
    plain.variant = Some("a\"b".into());
    plain.messages.push(crate::line::Message::Text {
        text: "二通目\n\"引用\"\u{1}".into(),
    });
    let mut serialized = plain.clone();
    serialized.messages_json = Some(serde_json::to_string(&plain.messages).unwrap());
    serialized.messages.clear();
    let mut written = Vec::new();
    for (name, job) in [("plain.jsonl", &plain), ("serialized.jsonl", &serialized)] {
        let path = dir.path().join(name);
        let outbox = Outbox::open(&path, &[], 0).unwrap();
        let mut answers = Vec::new();
        outbox.deliver_all(std::slice::from_ref(job), &mut Vec::new(), &mut answers);
        assert_eq!(answers, vec![Answer::Accepted { request_id: None }]);
        written.push(std::fs::read(&path).unwrap());
    }
    assert_eq!(written[0], written[1]);
    assert!(
        written[0].ends_with(b"}]}\n"),
        "{}",
        String::from_utf8_lossy(&written[0])
    );
}

mod heads {
    use super::*;
    use proptest::prelude::*;

    /// Text with what JSON escapes (quotes, backslashes, control characters) and what it does
    /// not (DEL, the line separator, emoji, Japanese), past sixteen bytes at times.
    fn odd_text() -> impl Strategy<Value = String> {
        let odd = prop::sample::select(vec![
            '"', '\\', '/', '\u{0}', '\u{8}', '\t', '\n', '\u{c}', '\r', '\u{1f}', '\u{7f}',
            '\u{2028}', '😀', '花', 'a',
        ]);
        prop::collection::vec(prop_oneof![odd, prop::char::any()], 0..40)
            .prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        /// The members written by hand before messages serialized already are the bytes
        /// serde writes for the same job.
        #[test]
        fn a_line_written_by_hand_is_the_line_serde_writes(
            patient in odd_text(),
            to in odd_text(),
            step in odd_text(),
            variant in prop::option::of(odd_text()),
            retry_key in odd_text(),
            text in odd_text(),
        ) {
            let mut plain = job(&retry_key);
            (plain.patient, plain.to, plain.step, plain.variant) = (patient, to, step, variant);
            plain.messages = vec![crate::line::Message::Text { text }];
            let mut serialized = plain.clone();
            serialized.messages_json = Some(crate::line::messages_json(&plain.messages));
            serialized.messages.clear();
            let (mut by_serde, mut by_hand) = (Vec::new(), Vec::new());
            write_line(&mut by_serde, &plain).unwrap();
            write_line(&mut by_hand, &serialized).unwrap();
            prop_assert_eq!(
                String::from_utf8(by_hand).unwrap(),
                String::from_utf8(by_serde).unwrap()
            );
        }
    }
}
