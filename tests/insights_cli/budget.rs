//! LINE's 60 requests an hour per insight endpoint: a fetch stops when they are spent and
//! the next goes on, and two fetches at once share them.

use std::time::Duration;

use steprule::ledger::Ledger;

use super::fake_line::{FakeLine, Faults, TOKEN};
use super::{aggregation_requests, fetch, fetch_command, ledger_with_units};

#[test]
fn the_hourly_budget_stops_a_fetch_and_the_next_one_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeLine::start(Faults::default());
    ledger_with_units(dir.path(), 70);
    // 70 units and 80 days: more than an hour's 60 requests on each endpoint.
    let since = ["--since", "2026-09-01"];
    let first = fetch(dir.path(), &fake, "2026-11-20 09:00", Some(TOKEN), &since);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let count = |endpoint: &str| {
        fake.insight_requests()
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .count()
    };
    assert_eq!((count("aggregation"), count("followers")), (60, 60));
    assert!(
        first.stdout.contains("10 left for later"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("20 left for later"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("requests are spent"),
        "{}",
        first.stdout
    );
    // Within the hour: nothing more is asked, and the run still ends cleanly.
    let soon = fetch(dir.path(), &fake, "2026-11-20 09:30", Some(TOKEN), &since);
    assert_eq!(soon.code, 0, "{}", soon.stderr);
    assert_eq!((count("aggregation"), count("followers")), (60, 60));
    // An hour later the rest, and nothing twice.
    let later = fetch(dir.path(), &fake, "2026-11-20 10:01", Some(TOKEN), &since);
    assert_eq!(later.code, 0, "{}", later.stderr);
    assert_eq!((count("aggregation"), count("followers")), (70, 80));
    let mut units: Vec<String> = aggregation_requests(&fake)
        .into_iter()
        .map(|r| r.0)
        .collect();
    units.sort();
    units.dedup();
    assert_eq!(units.len(), 70);
    assert!(
        later.stdout.contains(" 0 left for later"),
        "{}",
        later.stdout
    );
}

#[test]
fn two_fetches_at_once_share_one_budget() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeLine::start(Faults {
        latency: Duration::from_millis(20),
        ..Faults::default()
    });
    ledger_with_units(dir.path(), 100);
    let since = ["--since", "2026-10-01"];
    let children: Vec<_> = (0..2)
        .map(|_| {
            fetch_command(dir.path(), &fake, "2026-11-20 09:00", Some(TOKEN), &since)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0));
    }
    // Together an hour's 60, and no unit's half-month asked twice.
    let asked = aggregation_requests(&fake);
    assert_eq!(asked.len(), 60, "the two fetches together made {asked:?}");
    let mut units: Vec<&str> = asked.iter().map(|r| r.0.as_str()).collect();
    units.sort_unstable();
    units.dedup();
    assert_eq!(units.len(), 60);
    let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let log = ledger
        .insight_requests(chrono::DateTime::UNIX_EPOCH)
        .unwrap();
    assert_eq!(
        log.iter().filter(|r| r.endpoint == "aggregation").count(),
        60
    );
}
