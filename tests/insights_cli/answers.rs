//! LINE failing (429, 500), refusing (401, 403) or answering what it does not document: each
//! recorded against its request, the rest going on, and the token shown nowhere.

use chrono::NaiveDate;
use serde_json::{json, Value};
use steprule::ledger::Ledger;

use super::fake_line::{FakeLine, Faults, InsightAnswer, TOKEN};
use super::{aggregation_requests, fetch, ledger_with_units};

#[test]
fn a_429_and_a_500_are_recorded_and_the_run_ends_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeLine::start(Faults::default());
    ledger_with_units(dir.path(), 3);
    let status = |code, message: &str| InsightAnswer::Status(code, message.into());
    fake.set_unit_answer("u000", "20261001", status(500, "Internal server error"));
    fake.set_unit_answer(
        "u001",
        "20261001",
        status(429, "The API rate limit has been exceeded"),
    );
    let run = fetch(dir.path(), &fake, "2026-11-20 09:00", Some(TOKEN), &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let asked: Vec<String> = aggregation_requests(&fake)
        .into_iter()
        .map(|r| r.0)
        .collect();
    // The 500 tried three times, the 429 once; then nothing more, friends included.
    assert_eq!(asked, ["u000", "u000", "u000", "u001"]);
    assert_eq!(fake.insight_requests().len(), 4);
    assert!(run.stdout.contains("LINE answered 429"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("u000 2026-10-01 to 2026-10-15: LINE answered 500"),
        "{}",
        run.stdout
    );
    let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let log = ledger
        .insight_requests(chrono::DateTime::UNIX_EPOCH)
        .unwrap();
    assert_eq!(log.len(), 4);
    assert!(
        log[0].outcome.as_deref().unwrap().contains("500"),
        "{log:?}"
    );
    assert!(
        log[3].outcome.as_deref().unwrap().contains("429"),
        "{log:?}"
    );
    // LINE is back: the next run asks again for all three.
    fake.set_unit_answer(
        "u000",
        "20261001",
        InsightAnswer::Json(json!({"overview": {"uniqueImpression": 20}})),
    );
    fake.set_unit_answer(
        "u001",
        "20261001",
        InsightAnswer::Json(json!({"overview": {"uniqueImpression": 21}})),
    );
    let again = fetch(dir.path(), &fake, "2026-11-21 09:00", Some(TOKEN), &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("3 fetched"), "{}", again.stdout);
}

#[test]
fn hostile_answers_are_refused_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeLine::start(Faults::default());
    ledger_with_units(dir.path(), 4);
    let figures =
        |value: Value| InsightAnswer::Json(json!({"overview": {"uniqueImpression": value}}));
    let mut huge = b"{\"overview\": {\"uniqueImpression\": 1}, \"pad\": \"".to_vec();
    huge.resize(10 * 1024 * 1024, b'x');
    huge.extend_from_slice(b"\"}");
    fake.set_unit_answer("u000", "20261001", InsightAnswer::Raw(huge));
    fake.set_unit_answer("u001", "20261001", figures(json!(-5)));
    fake.set_unit_answer("u002", "20261001", figures(json!("40")));
    fake.set_unit_answer("u003", "20261001", figures(json!(33)));
    let run = fetch(
        dir.path(),
        &fake,
        "2026-11-20 09:00",
        Some(TOKEN),
        &["--format", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["unit_figures"]["fetched"], 1);
    assert_eq!(summary["unit_figures"]["failed"], 3);
    let errors: Vec<&str> = summary["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["error"].as_str().unwrap())
        .collect();
    assert!(errors[0].contains("over 256 KiB"), "{errors:?}");
    assert!(errors[1].contains("negative"), "{errors:?}");
    assert!(errors[2].contains("text"), "{errors:?}");
    let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let day = |text: &str| text.parse::<NaiveDate>().unwrap();
    let halves = ledger
        .unit_halves(day("2026-10-01"), day("2026-10-01"))
        .unwrap();
    let cached: Vec<(&str, Option<u64>)> = halves
        .iter()
        .filter_map(|h| Some((h.unit.as_str(), h.cached?.figures.unique_impression)))
        .collect();
    assert_eq!(cached, [("u003", Some(33))]);
}

#[test]
fn the_token_is_never_printed_and_a_refused_one_stops_the_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeLine::start(Faults {
        echo_authorization: true,
        ..Faults::default()
    });
    ledger_with_units(dir.path(), 2);
    fake.set_unit_answer(
        "u000",
        "20261001",
        InsightAnswer::Status(400, "bad unit".into()),
    );
    let run = fetch(dir.path(), &fake, "2026-11-20 09:00", Some(TOKEN), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("bad unit (Authorization: Bearer ***)"),
        "{}",
        run.stdout
    );
    let log = std::fs::read(dir.path().join("ledger.db")).unwrap();
    let wal = std::fs::read(dir.path().join("ledger.db-wal")).unwrap_or_default();
    for bytes in [&log, &wal] {
        assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()));
    }
    // A wrong token: LINE's 401 ends the fetch with exit 2 and what to do.
    let wrong = "wrong-token-Zk93";
    let refused = fetch(dir.path(), &fake, "2026-11-20 10:00", Some(wrong), &[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("check LINE_CHANNEL_ACCESS_TOKEN"),
        "{}",
        refused.stderr
    );
    // A channel without statistics: 403.
    fake.forbid_insights();
    let forbidden = fetch(dir.path(), &fake, "2026-11-20 11:00", Some(TOKEN), &[]);
    assert_eq!(forbidden.code, 2, "{}", forbidden.stderr);
    assert!(
        forbidden.stderr.contains("may not read these statistics"),
        "{}",
        forbidden.stderr
    );
    assert_eq!(
        fake.insight_requests()
            .iter()
            .filter(|r| r.status == 403)
            .count(),
        1,
        "nothing more is asked after a 403"
    );
    for run in [&run, &refused, &forbidden] {
        for text in [&run.stdout, &run.stderr] {
            assert!(!text.contains(TOKEN) && !text.contains(wrong), "{text}");
        }
    }
    // No token at all: exit 2 before anything is asked.
    let before = fake.insight_requests().len();
    let missing = fetch(dir.path(), &fake, "2026-11-20 12:00", None, &[]);
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .stderr
            .contains("LINE_CHANNEL_ACCESS_TOKEN is not set"),
        "{}",
        missing.stderr
    );
    assert_eq!(fake.insight_requests().len(), before);
}
