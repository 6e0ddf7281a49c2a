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
    let Look::First(print) = observer.look(&seen) else {
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
    assert!(matches!(next.look(&seen), Look::Same));
    let moved = patient("P1", &[Some(LATER), None, Some(PAST)]);
    assert!(matches!(next.look(&moved), Look::Changed(_)));
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
