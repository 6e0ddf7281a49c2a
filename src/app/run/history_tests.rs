//! Tests of `history`: sends kept by patient, whatever their ids hash to.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::source::SourceFile;
use crate::template::TemplateStore;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn two_step_plan(dir: &std::path::Path) -> TimingPlan {
    std::fs::write(dir.join("hello.toml"), "text = \"x\"").unwrap();
    let rules = "stages booked\ndates visited_at\n\
        step first: when stage=booked 1d after visited_at send hello\n\
        step second: when stage=booked 2d after visited_at send hello\n";
    let file = SourceFile::new("t.step", rules);
    let outcome = crate::check::check_file(&file, &mut TemplateStore::new(dir));
    TimingPlan::compile(&outcome.rules.unwrap())
}

fn send<'a>(patient: &'a str, step: &'a str, day: u32) -> RecentSend<'a> {
    RecentSend {
        patient,
        step,
        occurrence: at(&format!("2026-11-{day:02}T00:00:00Z")),
        sent_at: at(&format!("2026-11-{day:02}T01:00:00Z")),
    }
}

fn days(sends: &[SentBefore]) -> Vec<(usize, String)> {
    sends
        .iter()
        .map(|s| (s.step, s.occurrence.format("%d").to_string()))
        .collect()
}

/// Every id hashes the same here: each patient must still get their own sends, in the order
/// the ledger gave them, and an id with the hash but no sends gets none.
#[test]
fn patients_whose_ids_hash_the_same_keep_their_own_sends() {
    let dir = tempfile::tempdir().unwrap();
    let plan = two_step_plan(dir.path());
    let mut building = Building::new(steps_of(&plan), |_: &str| 7);
    for sent in [
        send("a", "first", 1),
        send("b", "first", 2),
        send("a", "second", 3),
        send("ab", "first", 4),
        send("b", "second", 5),
        send("a", "first", 6),
    ] {
        building.add(&sent);
    }
    let history = building.finish(keyed_hasher());
    let of = |id: &str| days(history.of_hashed(id, 7));
    let day = |step: usize, d: &str| (step, d.to_owned());
    assert_eq!(of("a"), vec![day(0, "01"), day(1, "03"), day(0, "06")]);
    assert_eq!(of("b"), vec![day(0, "02"), day(1, "05")]);
    assert_eq!(of("ab"), vec![day(0, "04")]);
    assert_eq!(of(""), vec![]);
    assert_eq!(of("c"), vec![]);
    // Another hash finds nobody, whatever the id.
    assert_eq!(days(history.of_hashed("a", 8)), vec![]);
}

#[test]
fn a_step_no_longer_in_the_rules_has_no_say_and_ids_are_looked_up_by_their_own_hash() {
    let dir = tempfile::tempdir().unwrap();
    let plan = two_step_plan(dir.path());
    let hasher = keyed_hasher();
    let mut building = Building::new(steps_of(&plan), |id: &str| hasher.hash_one(id));
    for sent in [
        send("p1", "renamed", 1),
        send("p1", "second", 2),
        send("p2", "gone", 3),
    ] {
        building.add(&sent);
    }
    let history = building.finish(hasher.clone());
    assert_eq!(days(history.of("p1")), vec![(1, "02".to_owned())]);
    assert_eq!(days(history.of("p2")), vec![]);
    assert_eq!(days(history.of("p3")), vec![]);
    assert_eq!(history.sends.len(), 1);
}

#[test]
fn an_empty_history_has_no_sends_for_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let plan = two_step_plan(dir.path());
    let history = Building::new(steps_of(&plan), |_: &str| 0).finish(keyed_hasher());
    assert!(history.of("p1").is_empty());
    assert!(history.of_hashed("", 0).is_empty());
}

fn sent_ledger(dir: &std::path::Path) -> crate::ledger::Ledger {
    let mut ledger = crate::ledger::Ledger::open(&dir.join("ledger.db")).unwrap();
    for (patient, step) in [("P1", "first"), ("P1", "second"), ("P2", "first")] {
        crate::ledger::tests::record_sent(&mut ledger, patient, step);
    }
    ledger
}

/// Read beside (SQLite's reader on a thread of its own), the history is the one read here.
#[test]
fn a_history_read_beside_is_the_one_read_on_the_pass_connection() {
    let dir = tempfile::tempdir().unwrap();
    let plan = two_step_plan(dir.path());
    let ledger = sent_ledger(dir.path());
    let now = at("2026-11-25T10:00:00Z");
    let here = SentHistory::load(&ledger, SinkKind::Outbox, &plan, now).unwrap();
    let beside = PassHistory::start(&ledger, SinkKind::Outbox, &plan, now).unwrap();
    assert!(beside.reading.lock().unwrap().is_some(), "read beside");
    let beside = beside.get().unwrap();
    for patient in ["P1", "P2", "P3"] {
        assert_eq!(
            days(beside.of(patient)),
            days(here.of(patient)),
            "{patient}"
        );
    }
    assert_eq!(beside.of("P1").len(), 2);
}

/// A read that fails gives no history to anyone, and its error to the pass, once.
#[test]
fn a_history_whose_read_fails_gives_nothing_and_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let plan = two_step_plan(dir.path());
    let ledger = sent_ledger(dir.path());
    let other = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    other
        .execute(
            // Seconds past chrono's calendar: no instant.
            "UPDATE sends SET sent_at = 9223372036854775807 WHERE patient = 'P2'",
            [],
        )
        .unwrap();
    let now = at("2026-11-25T10:00:00Z");
    let history = PassHistory::start(&ledger, SinkKind::Outbox, &plan, now).unwrap();
    assert!(history.get().is_none());
    let error = history.check().unwrap_err();
    assert!(
        matches!(
            error,
            AppError::Ledger(LedgerError::UnreadableInstant {
                column: "sent_at",
                ..
            })
        ),
        "{error}"
    );
    assert!(history.get().is_none());
    assert!(history.check().is_err());
}

/// The table grows from its sixteen slots to hold ten thousand patients, at most half full:
/// each finds their own sends (asked into the cache first or not), and an id without sends
/// finds none.
#[test]
fn ten_thousand_patients_each_find_their_own_sends() {
    let dir = tempfile::tempdir().unwrap();
    let plan = two_step_plan(dir.path());
    let hasher = keyed_hasher();
    let mut building = Building::new(steps_of(&plan), |id: &str| hasher.hash_one(id));
    let ids: Vec<String> = (0..10_000).map(|n| format!("P{n:05}")).collect();
    for (n, id) in ids.iter().enumerate() {
        let day = u32::try_from(1 + n % 28).unwrap();
        building.add(&send(id, ["first", "second"][n % 2], day));
    }
    // A second send for every third patient, after all the others.
    for (n, id) in ids.iter().enumerate().step_by(3) {
        building.add(&send(id, "first", u32::try_from(1 + (n + 1) % 28).unwrap()));
    }
    let history = building.finish(hasher.clone());
    assert_eq!(history.by_hash.slots.len(), 1 << 15);
    for (n, id) in ids.iter().enumerate() {
        history.prefetch(id);
        let found = history.of(id);
        let first = (n % 2, format!("{:02}", 1 + n % 28));
        let mut expected = vec![first];
        if n % 3 == 0 {
            expected.push((0, format!("{:02}", 1 + (n + 1) % 28)));
        }
        assert_eq!(days(found), expected, "{id}");
    }
    for absent in ["P10000", "P0000", "", "p00001"] {
        history.prefetch(absent);
        assert!(history.of(absent).is_empty(), "{absent}");
    }
}
