//! Tests of `observe`: what a pass records of each patient, and the events it finds.

#![allow(clippy::unwrap_used)]

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

const NOW: &str = "2026-11-25T01:00:00Z";

fn seen(value: &str) -> Previous {
    Previous::Seen {
        value: at(value),
        seen_at: at("2026-11-20T00:00:00Z"),
    }
}

fn verdict(
    watched: Watched,
    previous: Previous,
    current: Option<&str>,
    booked_at: Option<&str>,
) -> Verdict {
    compare(
        watched,
        previous,
        current.map(at),
        at(NOW),
        booked_at.map(at),
    )
}

#[test]
fn marks_pack_and_unpack_and_a_row_of_another_shape_reads_as_empty() {
    let marks = vec![
        Some((at("2026-12-01T01:30:00.250Z"), at(NOW))),
        None,
        Some((at("1970-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z"))),
    ];
    let packed = pack(&marks);
    assert_eq!(packed.len(), 3 * PACKED_FIELD);
    assert_eq!(unpack(&packed, 3), marks);
    assert_eq!(unpack(&packed, 2), vec![None; 2]);
    assert_eq!(unpack(&[7; 17], 1), vec![None]);
}

#[test]
fn marks_first_seen_together_pack_compactly_and_both_layouts_read_back() {
    let now = at(NOW);
    let marks = vec![
        Some((at("2026-12-01T01:30:00.250Z"), now)),
        None,
        Some((at("1970-01-01T00:00:00Z"), now)),
        None,
    ];
    let compact = pack(&marks);
    // One instant for all, each field a byte and its value if set.
    assert_eq!(compact.len(), 1 + 8 + 9 + 1 + 9 + 1);
    assert_eq!(compact[0], COMPACT);
    assert_eq!(unpack(&compact, 4), marks);
    // Nothing set: the row is a few bytes, and reads back as four empty fields.
    let empty = pack(&[None; 4]);
    assert_eq!((empty.len(), unpack(&empty, 4)), (13, vec![None; 4]));
    // The general layout of the same marks, as rows were written before the compact one.
    let mut general = Vec::new();
    for mark in &marks {
        let (set, value, seen_at) = match mark {
            Some((value, seen_at)) => (1u8, value.timestamp_millis(), seen_at.timestamp_millis()),
            None => (0, 0, 0),
        };
        general.push(set);
        general.extend_from_slice(&value.to_le_bytes());
        general.extend_from_slice(&seen_at.to_le_bytes());
    }
    assert_eq!(unpack(&general, 4), marks);
    // A compact row for other fields, cut short or too long, reads as empty.
    assert_eq!(unpack(&compact, 3), vec![None; 3]);
    assert_eq!(unpack(&compact, 5), vec![None; 5]);
    assert_eq!(unpack(&compact[..compact.len() - 1], 4), vec![None; 4]);
    let mut longer = compact.clone();
    longer.push(0);
    assert_eq!(unpack(&longer, 4), vec![None; 4]);
    assert_eq!(unpack(&[COMPACT], 1), vec![None]);
    assert_eq!(unpack(&[], 1), vec![None]);
}

const FUTURE: &str = "2026-12-01T01:00:00Z";
const LATER: &str = "2026-12-08T01:00:00Z";
const PAST: &str = "2026-11-01T01:00:00Z";

#[test]
fn a_booking_moved_to_a_new_future_instant_is_booked_now() {
    let moved = verdict(Watched::Booking, seen(FUTURE), Some(LATER), None);
    assert_eq!(
        moved,
        Verdict {
            event: Some(at(NOW)),
            remark: true
        }
    );
    let from_empty = verdict(Watched::Booking, Previous::Empty, Some(FUTURE), None);
    assert_eq!(from_empty.event, Some(at(NOW)));
}

#[test]
fn a_booking_seen_first_unchanged_past_or_cleared_is_no_event() {
    let first = verdict(Watched::Booking, Previous::Unknown, Some(FUTURE), None);
    assert_eq!(
        first,
        Verdict {
            event: None,
            remark: true
        }
    );
    let same = verdict(Watched::Booking, seen(FUTURE), Some(FUTURE), None);
    assert_eq!(
        same,
        Verdict {
            event: None,
            remark: false
        }
    );
    let past = verdict(Watched::Booking, seen(FUTURE), Some(PAST), None);
    assert_eq!(
        past,
        Verdict {
            event: None,
            remark: true
        }
    );
    // The mark stays: the same booking coming back is not new.
    let cleared = verdict(Watched::Booking, seen(FUTURE), None, None);
    assert_eq!(
        cleared,
        Verdict {
            event: None,
            remark: false
        }
    );
    let still_empty = verdict(Watched::Booking, Previous::Empty, None, None);
    assert!(!still_empty.remark);
}

#[test]
fn booked_at_dates_the_booking_when_it_is_plausible() {
    let made = "2026-11-24T03:00:00Z";
    let dated = verdict(Watched::Booking, seen(FUTURE), Some(LATER), Some(made));
    assert_eq!(dated.event, Some(at(made)));
    // In the future, or before the old booking was seen: not this booking's.
    let future = verdict(Watched::Booking, seen(FUTURE), Some(LATER), Some(LATER));
    assert_eq!(future.event, Some(at(NOW)));
    let stale = verdict(
        Watched::Booking,
        seen(FUTURE),
        Some(LATER),
        Some("2026-11-19T00:00:00Z"),
    );
    assert_eq!(stale.event, Some(at(NOW)));
}

#[test]
fn a_visit_moving_forward_is_revisited_at_the_visit() {
    let visit = "2026-11-24T02:00:00Z";
    let forward = verdict(Watched::Visit, seen(PAST), Some(visit), None);
    assert_eq!(
        forward,
        Verdict {
            event: Some(at(visit)),
            remark: true
        }
    );
    let first_visit = verdict(Watched::Visit, Previous::Empty, Some(visit), None);
    assert_eq!(first_visit.event, Some(at(visit)));
    let backward = verdict(Watched::Visit, seen(visit), Some(PAST), None);
    assert_eq!(
        backward,
        Verdict {
            event: None,
            remark: true
        }
    );
    let future = verdict(Watched::Visit, seen(PAST), Some(FUTURE), None);
    assert_eq!(future.event, None);
    let unknown = verdict(Watched::Visit, Previous::Unknown, Some(visit), None);
    assert_eq!(unknown.event, None);
}

fn watching_plan(dir: &std::path::Path) -> TimingPlan {
    use crate::source::SourceFile;
    use crate::template::TemplateStore;
    std::fs::write(dir.join("thanks.toml"), "text = \"x\"").unwrap();
    let rules = "stages booked, first_visit\n\
        dates next_booking_at, visited_at, booked_at\nattribution 7d\n\
        step thanks: when stage=first_visit after 1d send thanks\n";
    let file = SourceFile::new("t.step", rules);
    let outcome = crate::check::check_file(&file, &mut TemplateStore::new(dir));
    TimingPlan::compile(&outcome.rules.unwrap())
}

fn patient(id: &str, dates: &[Option<&str>]) -> PatientRecord {
    PatientRecord {
        id: id.into(),
        dates: dates.iter().map(|d| d.map(at)).collect(),
        line: 2,
        ..PatientRecord::default()
    }
}

/// The evaluating thread builds a first sighting's row without the ledger: it must be
/// the row `record` writes for a patient the ledger knows nothing of, and the next pass
/// must find the patient unchanged, then see a moved booking as one.
#[test]
fn a_first_sighting_is_the_row_record_would_write() {
    let dir = tempfile::tempdir().unwrap();
    let plan = watching_plan(dir.path());
    let mut ledger = crate::ledger::Ledger::open(&dir.path().join("l.db")).unwrap();
    let now = at(NOW);
    let observer = Observer::prepare(&plan, false, &ledger, now)
        .unwrap()
        .unwrap();
    let seen = patient("P1", &[Some(FUTURE), None, Some(PAST)]);
    let Look::First(print) = look(&observer, &seen) else {
        panic!("a patient the ledger has no print of is a first sighting");
    };
    let mut marks = NewMarks::default();
    observer.first_sighting(&seen, print, &mut marks);
    let built: Vec<_> = marks.each().collect();
    // What `record` writes for the same patient, compared with no row to read.
    let values: Vec<_> = (observer.watch.fields.iter())
        .map(|&(index, ..)| seen.dates[index])
        .collect();
    let observation = Observation {
        watch: observer.watch.clone(),
        patient: "P1".into(),
        print,
        pack: 0,
        values,
        booked_at: None,
    };
    let mut summary = RunSummary::default();
    record(&mut ledger, &observation, now, &mut summary).unwrap();
    let recorded = ledger.mark_row("P1").unwrap().unwrap();
    assert_eq!(built, [("P1", print, recorded)]);
    assert_eq!((summary.booked, summary.revisited), (0, 0));
    // Written as built: the next pass finds the patient as they were, and sees a change.
    ledger.set_new_marks(&marks).unwrap();
    let next = Observer::prepare(&plan, false, &ledger, now)
        .unwrap()
        .unwrap();
    assert!(matches!(look(&next, &seen), Look::Same));
    let moved = patient("P1", &[Some(LATER), None, Some(PAST)]);
    assert!(matches!(look(&next, &moved), Look::Changed(_)));
}

/// A ledger made before ledger version 12 (rows in the general layout, no fingerprints' log)
/// opens upgraded, finds its patients as they were, and sees a moved booking as one.
#[test]
fn an_old_ledgers_marks_still_find_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let plan = watching_plan(dir.path());
    let path = dir.path().join("old.db");
    let now = at(NOW);
    let seen = patient("P1", &[Some(FUTURE), Some(PAST), None]);
    let watch = Watch::new(&plan).unwrap();
    let values = || watch.fields.iter().map(|&(index, ..)| seen.dates[index]);
    let print = fingerprint(values(), watch.names_hash);
    // Seen on two different passes: the general layout, as every row was written before.
    let earlier = at("2026-11-01T00:00:00Z");
    let marks: Vec<_> = values()
        .enumerate()
        .map(|(i, v)| v.map(|v| (v, if i == 0 { now } else { earlier })))
        .collect();
    let row = pack(&marks);
    assert_eq!(row.len(), marks.len() * PACKED_FIELD);
    crate::ledger::make_version_ten(&path, &[("P1", print, watch.names_hash, &row)]);
    let mut ledger = crate::ledger::Ledger::open(&path).unwrap();
    let observer = Observer::prepare(&plan, false, &ledger, now)
        .unwrap()
        .unwrap();
    assert!(matches!(look(&observer, &seen), Look::Same));
    let moved = patient("P1", &[Some(LATER), Some(PAST), None]);
    let Look::Changed(observation) = look(&observer, &moved) else {
        panic!("a moved booking changes the fingerprint");
    };
    let mut summary = RunSummary::default();
    record(&mut ledger, &observation, now, &mut summary).unwrap();
    assert_eq!((summary.booked, summary.revisited), (1, 0));
}

#[test]
fn hashes_are_stable_and_separate_parts() {
    // The ledger keeps these values: a change here re-reads every patient's marks once.
    assert_eq!(hash64(&[b"P1"]), hash64(&[b"P1"]));
    assert_ne!(hash64(&[b"ab", b"c"]), hash64(&[b"a", b"bc"]));
    let print =
        |values: &[Option<DateTime<Utc>>], names| fingerprint(values.iter().copied(), names);
    assert_ne!(
        print(&[Some(at(FUTURE)), None], 1),
        print(&[None, Some(at(FUTURE))], 1)
    );
    assert_ne!(print(&[Some(at(FUTURE))], 1), print(&[Some(at(FUTURE))], 2));
}

/// How `patient` compares with what `observer` holds, asked as a pass asks.
fn look(observer: &Observer, patient: &PatientRecord) -> Look {
    observer.look_hashed(patient, observer.prefetch(patient))
}
