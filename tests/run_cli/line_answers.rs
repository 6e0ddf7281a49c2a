//! LINE's answers as steprule records them, and `--line-api-base` as it is checked: a 409
//! without the accepted request's id is still a send, a token quoted back in an error never
//! reaches the ledger or the terminal, and a base that is no URL, or plain http to another
//! machine, stops the run before anything is sent.

use crate::fake_line::{FakeLine, Faults, TOKEN};
use crate::ledger::ledger;
use crate::workspace::{fixture_patients, output, Workspace};
use crate::DUE_IN_FIXTURE;

#[test]
fn a_409_without_the_accepted_request_id_is_sent_not_failed() {
    // Every first attempt is delivered and then answered 500; the retry meets a 409 that does
    // not say which request delivered.
    let fake = FakeLine::start(Faults {
        error_after_first_attempts: 1,
        conflict_without_accepted_id: true,
        ..Faults::none()
    });
    let ws = Workspace::new();
    let run = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("sent"), run.count("failed")),
        (5, 0),
        "{}",
        run.stderr
    );
    assert_eq!(fake.accepted(), 5, "each delivered once");
    assert_eq!(fake.conflicts(), 5, "each retry met the 409");
    let rows = ledger(&ws.ledger());
    for (patient, step) in DUE_IN_FIXTURE {
        let row = rows.row(patient, step);
        assert_eq!((row.status.as_str(), row.attempts), ("sent", 2), "{row:?}");
        assert!(
            row.note
                .as_deref()
                .is_some_and(|n| n.contains("without x-line-accepted-request-id")),
            "the ledger records that the id was missing: {row:?}"
        );
    }

    let again = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.count("already sent"), 5, "{}", again.stderr);
    assert_eq!(fake.request_count(), 10, "nothing sent again");
}

#[test]
fn a_token_quoted_in_lines_error_never_reaches_the_ledger_or_the_terminal() {
    const SECRET: &str = "echoed-token-SECRET-81a7";
    let ws = Workspace::new();
    // 401 (the token refused: the run stops, sends stay pending) and 500 (left pending): both
    // quote `Authorization: Bearer …`.
    let refusing = FakeLine::start_with_token(
        "the-right-token",
        Faults {
            echo_authorization: true,
            ..Faults::none()
        },
    );
    let refused = ws.run(&fixture_patients(), Some((SECRET, &refusing)), &[]);
    let ws2 = Workspace::new();
    let failing = FakeLine::start_with_token(
        SECRET,
        Faults {
            error_before: 1.0,
            echo_authorization: true,
            ..Faults::none()
        },
    );
    let pending = ws2.run(
        &fixture_patients(),
        Some((SECRET, &failing)),
        &["--max-attempts", "1"],
    );
    for (run, ws, status, code, exit) in [
        (&refused, &ws, "pending", "401", 2),
        (&pending, &ws2, "pending", "500", 0),
    ] {
        assert_eq!(run.code, exit, "{}", run.stderr);
        assert!(!run.stderr.contains(SECRET), "{}", run.stderr);
        assert!(!run.stdout.contains(SECRET), "{}", run.stdout);
        for row in &ledger(&ws.ledger()).rows {
            let error = row.last_error.as_deref().unwrap_or("");
            assert_eq!(row.status, status, "{row:?}");
            assert!(error.contains(code), "LINE's answer is kept: {row:?}");
            assert!(error.contains("Bearer ***"), "redacted in place: {row:?}");
        }
        let bytes = std::fs::read(ws.ledger()).unwrap();
        let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
        assert!(!found, "the token is in the ledger file");
    }
}

#[test]
fn a_base_that_is_not_a_url_stops_the_run_before_any_send() {
    let ws = Workspace::new();
    let mut command = ws.command(&fixture_patients(), None, &[]);
    command
        .env("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
        .args(["--line-api-base", "not a url"]);
    let run = output(command);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("--line-api-base `not a url` is not a URL"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("retrying later"), "{}", run.stderr);
    assert_no_send_claimed(&ws);
}

#[test]
fn plain_http_to_another_machine_is_refused_before_the_token_leaves() {
    let ws = Workspace::new();
    let mut command = ws.command(&fixture_patients(), None, &[]);
    // `.example` never resolves: nothing would answer, but nothing may be tried either.
    command
        .env("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
        .args(["--line-api-base", "http://line-proxy.example:8080"]);
    let run = output(command);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("plain http to another machine") && run.stderr.contains("https"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(TOKEN), "{}", run.stderr);
    assert_no_send_claimed(&ws);
}

/// The ledger, if the run created one, holds no send.
fn assert_no_send_claimed(ws: &Workspace) {
    if ws.ledger().exists() {
        let rows = ledger(&ws.ledger()).rows;
        assert!(rows.is_empty(), "{rows:?}");
    }
}
