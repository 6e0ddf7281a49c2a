//! The channel access token: whatever happens at LINE, it never appears in stdout, stderr, the
//! ledger or the outbox.

use crate::fake_line::{FakeLine, Faults};
use crate::workspace::{fixture_patients, output, Workspace};

#[test]
fn token_never_appears_in_output_logs_or_ledger() {
    const SECRET: &str = "test-token-SECRET-4f1c";
    let ws = Workspace::new();
    let mut runs = Vec::new();

    // A wrong token: LINE answers 401 to everything.
    let refusing = FakeLine::start_with_token("the-right-token", Faults::none());
    runs.push(ws.run(
        &fixture_patients(),
        Some((SECRET, &refusing)),
        &["--max-attempts", "2"],
    ));
    assert!(refusing.unauthorized() > 0, "the 401 path ran");

    // The right token, through 500s, 429s, dropped connections and gave-up retries.
    let ws2 = Workspace::new();
    let flaky = FakeLine::start_with_token(
        SECRET,
        Faults {
            error_before: 0.3,
            error_after: 0.2,
            too_many_requests: 0.1,
            drop_before: 0.1,
            ..Faults::none()
        },
    );
    runs.push(ws2.run(
        &fixture_patients(),
        Some((SECRET, &flaky)),
        &["--max-attempts", "1"],
    ));
    runs.push(ws2.run(&fixture_patients(), Some((SECRET, &flaky)), &[]));
    // Nobody listening at all.
    let ws3 = Workspace::new();
    let closed = {
        let gone = FakeLine::start(Faults::none());
        gone.base_url()
    };
    let mut command = ws3.command(&fixture_patients(), None, &["--max-attempts", "1"]);
    command
        .env("LINE_CHANNEL_ACCESS_TOKEN", SECRET)
        .args(["--line-api-base", &closed]);
    runs.push(output(command));
    // --dry-run with the token set: the outbox.
    runs.push(ws3.run(&fixture_patients(), Some((SECRET, &flaky)), &["--dry-run"]));

    for run in &runs {
        assert!(
            (0..=3).contains(&run.code),
            "exit {}\n{}",
            run.code,
            run.stderr
        );
        assert!(
            !run.stdout.contains(SECRET),
            "token in stdout:\n{}",
            run.stdout
        );
        assert!(
            !run.stderr.contains(SECRET),
            "token in stderr:\n{}",
            run.stderr
        );
    }
    for dir in [ws.path(), ws2.path(), ws3.path()] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
            assert!(!found, "the token is in {}", path.display());
        }
    }
    assert!(ws3.outbox().exists(), "--dry-run wrote the outbox");
}
