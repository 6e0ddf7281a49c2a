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
    let mut building = Building::new(&plan, |_: &str| 7);
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
    let mut building = Building::new(&plan, |id: &str| hasher.hash_one(id));
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
    let history = Building::new(&plan, |_: &str| 0).finish(keyed_hasher());
    assert!(history.of("p1").is_empty());
    assert!(history.of_hashed("", 0).is_empty());
}
