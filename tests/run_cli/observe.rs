//! Bookings and visits observed by `run` (tests/fixtures/run/observe.step: `next_booking_at`
//! is the booking field, `visited_at` the visit field, `booked_at` dates a booking): the first
//! pass only marks what it sees; a booking that moves to a new future instant is one `booked`
//! event, a visit that moves forward one `revisited` event, each recorded once however often
//! the same export is read again. NOW is 2026-11-25 10:00 in Tokyo (01:00 UTC).

use std::path::{Path, PathBuf};

use crate::common::{fixtures, steprule};
use crate::workspace::{output, Run, Workspace};

const HEADER: &str = "id,line_user_id,stage,stage_entered_at,next_booking_at,visited_at,booked_at";

/// Writes the export (one row per patient after the header) and returns its path.
fn export(ws: &Workspace, name: &str, rows: &[&str]) -> PathBuf {
    let path = ws.path().join(name);
    let mut csv = format!("{HEADER}\n");
    for row in rows {
        csv.push_str(row);
        csv.push('\n');
    }
    std::fs::write(&path, csv).unwrap();
    path
}

fn pass(ws: &Workspace, patients: &Path, extra: &[&str]) -> Run {
    let command = ws.command_for(
        &fixtures().join("run/observe.step"),
        &ws.ledger(),
        patients,
        None,
        extra,
    );
    let run = output(command);
    assert!(run.code == 0 || run.code == 3, "exit code\n{}", run.stderr);
    run
}

/// (type, patient, detail, at) of every `booked` and `revisited` event, oldest first.
fn observed(ws: &Workspace) -> Vec<(String, String, String, String)> {
    let ledger = ws.ledger();
    let run = steprule(
        ws.path(),
        &[
            "events",
            "--ledger",
            ledger.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|event| matches!(event["type"].as_str(), Some("booked" | "revisited")))
        .map(|event| {
            let text = |key: &str| event[key].as_str().unwrap_or_default().to_owned();
            (text("type"), text("patient"), text("detail"), text("at"))
        })
        .collect()
}

fn event(kind: &str, patient: &str, field: &str, at: &str) -> (String, String, String, String) {
    (kind.into(), patient.into(), field.into(), at.into())
}

const O1: &str = "O1,U01,first_visit,2026-01-05 10:00";
const O2: &str = "O2,U02,first_visit,2026-01-05 10:00";

#[test]
fn first_pass_is_silent_then_a_new_booking_is_booked_once() {
    let ws = Workspace::new();
    let before = export(
        &ws,
        "before.csv",
        &[
            &format!("{O1},,2026-11-01 10:00,"),
            &format!("{O2},2026-12-01 10:00,2026-11-01 10:00,"),
        ],
    );
    let first = pass(&ws, &before, &[]);
    assert!(observed(&ws).is_empty(), "nothing is known to be new");
    assert!(
        !first.stderr.contains("seen in the export"),
        "{}",
        first.stderr
    );

    let after = export(
        &ws,
        "after.csv",
        &[
            &format!("{O1},2026-12-10 10:00,2026-11-01 10:00,"),
            &format!("{O2},2026-12-01 10:00,2026-11-01 10:00,"),
        ],
    );
    let second = pass(&ws, &after, &[]);
    let booked = [event(
        "booked",
        "O1",
        "next_booking_at",
        "2026-11-25T01:00:00Z",
    )];
    assert_eq!(observed(&ws), booked);
    assert!(
        second
            .stderr
            .contains("seen in the export: 1 new booking(s), 0 visit(s)"),
        "{}",
        second.stderr
    );

    let third = pass(&ws, &after, &[]);
    assert_eq!(observed(&ws), booked, "the same export again: nothing new");
    assert!(
        !third.stderr.contains("seen in the export"),
        "{}",
        third.stderr
    );

    // As `report` will ask for them: by type, with the patient and the field.
    let ledger = ws.ledger();
    let listed = steprule(
        ws.path(),
        &[
            "events",
            "--ledger",
            ledger.to_str().unwrap(),
            "--type",
            "booked",
        ],
    );
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains("O1"), "{}", listed.stdout);
    assert!(
        listed.stdout.contains("next_booking_at"),
        "{}",
        listed.stdout
    );
}

#[test]
fn a_visit_moving_forward_is_revisited_at_the_visit_and_backward_is_not() {
    let ws = Workspace::new();
    let before = export(&ws, "before.csv", &[&format!("{O1},,2026-11-01 10:00,")]);
    pass(&ws, &before, &[]);
    let visited = export(&ws, "visited.csv", &[&format!("{O1},,2026-11-24 15:00,")]);
    let run = pass(&ws, &visited, &[]);
    let revisited = [event(
        "revisited",
        "O1",
        "visited_at",
        "2026-11-24T06:00:00Z",
    )];
    assert_eq!(observed(&ws), revisited);
    assert!(
        run.stderr.contains("0 new booking(s), 1 visit(s)"),
        "{}",
        run.stderr
    );
    // A correction back in time, then a visit in the future (a typo): no visit.
    let corrected = export(&ws, "corrected.csv", &[&format!("{O1},,2026-11-20 15:00,")]);
    pass(&ws, &corrected, &[]);
    let future = export(&ws, "future.csv", &[&format!("{O1},,2027-11-20 15:00,")]);
    pass(&ws, &future, &[]);
    assert_eq!(observed(&ws), revisited);
}

#[test]
fn booked_at_dates_the_booking() {
    let ws = Workspace::new();
    let before = export(&ws, "before.csv", &[&format!("{O1},,,")]);
    pass(&ws, &before, &[]);
    let booked = export(
        &ws,
        "booked.csv",
        &[&format!("{O1},2026-12-10 10:00,,2026-11-24 20:00")],
    );
    pass(&ws, &booked, &[]);
    assert_eq!(
        observed(&ws),
        [event(
            "booked",
            "O1",
            "next_booking_at",
            "2026-11-24T11:00:00Z"
        )]
    );
}

#[test]
fn a_dry_run_observes_nothing_and_the_next_pass_sees_the_change() {
    let ws = Workspace::new();
    let before = export(&ws, "before.csv", &[&format!("{O1},,,")]);
    pass(&ws, &before, &[]);
    let booked = export(&ws, "booked.csv", &[&format!("{O1},2026-12-10 10:00,,")]);
    pass(&ws, &booked, &["--dry-run"]);
    assert!(observed(&ws).is_empty());
    pass(&ws, &booked, &[]);
    assert_eq!(observed(&ws).len(), 1);
}

#[test]
fn a_booking_moving_every_pass_is_one_event_per_new_value() {
    let ws = Workspace::new();
    let at = |day: u32| {
        let path = export(
            &ws,
            &format!("day{day}.csv"),
            &[&format!("{O1},2026-12-{day:02} 10:00,,")],
        );
        pass(&ws, &path, &[]);
    };
    at(1);
    at(2);
    at(3);
    // Back to a value already booked, and on again to it: no second event for it.
    at(2);
    at(3);
    let days: Vec<String> = observed(&ws).into_iter().map(|e| e.0).collect();
    assert_eq!(days, ["booked", "booked"]);
}

#[test]
fn garbage_and_a_lost_column_never_make_a_booking_look_new() {
    let ws = Workspace::new();
    let before = export(&ws, "before.csv", &[&format!("{O1},2026-12-01 10:00,,")]);
    pass(&ws, &before, &[]);
    // Not a date: the field is unknown for the patient, not a change; the mark stays.
    let garbage = export(&ws, "garbage.csv", &[&format!("{O1},next tuesday,,")]);
    let run = pass(&ws, &garbage, &[]);
    assert!(
        run.stderr
            .contains("garbage.csv:2: column `next_booking_at`: not a date"),
        "{}",
        run.stderr
    );
    assert_eq!(run.code, 3, "exit code 3: a cell could not be read");
    // An export without the booking column at all: every booking reads as empty.
    let lost = ws.path().join("lost.csv");
    std::fs::write(
        &lost,
        "id,line_user_id,stage,stage_entered_at\nO1,U01,first_visit,2026-01-05 10:00\n",
    )
    .unwrap();
    pass(&ws, &lost, &[]);
    // The column is back with the booking it had: not a new one.
    pass(&ws, &before, &[]);
    assert!(observed(&ws).is_empty(), "{:?}", observed(&ws));
}

#[test]
fn a_duplicate_patient_is_observed_by_its_first_row_only() {
    let ws = Workspace::new();
    let before = export(&ws, "before.csv", &[&format!("{O1},2026-12-01 10:00,,")]);
    pass(&ws, &before, &[]);
    let twice = export(
        &ws,
        "twice.csv",
        &[
            &format!("{O1},2026-12-01 10:00,,"),
            &format!("{O1},2026-12-09 10:00,,"),
        ],
    );
    let run = pass(&ws, &twice, &[]);
    assert!(
        run.stderr.contains("the same id is already on line 2"),
        "{}",
        run.stderr
    );
    assert!(observed(&ws).is_empty(), "{:?}", observed(&ws));
}

/// A first pass packs its patients' marks (64 to a row of `mark_packs`, no `marks` row
/// each); a patient seen first in a pack whose booking then moves is booked from the pack,
/// and once they have a row of their own that row is read, not the pack: a booking moved
/// back to its first value is a new booking again, as it was before the packs.
#[test]
fn patients_first_seen_in_packs_are_booked_from_them_then_from_their_own_rows() {
    let ws = Workspace::new();
    let rows = |moved: &[(usize, &str)]| -> Vec<String> {
        (0..200)
            .map(|i| {
                let booking = (moved.iter().find(|&&(n, _)| n == i))
                    .map_or("2026-12-01 10:00", |&(_, at)| at);
                format!("Q{i:03},U{i:03},first_visit,2026-01-05 10:00,{booking},,")
            })
            .collect()
    };
    let write = |name: &str, moved: &[(usize, &str)]| {
        let rows = rows(moved);
        export(
            &ws,
            name,
            &rows.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    pass(&ws, &write("first.csv", &[]), &[]);
    assert!(observed(&ws).is_empty());
    let count = |table: &str| -> i64 {
        let conn = rusqlite::Connection::open(ws.ledger()).unwrap();
        (conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        }))
        .unwrap()
    };
    assert_eq!((count("marks"), count("mark_packs")), (0, 4));
    // One patient in each of three packs moves.
    let moved = [
        (1, "2026-12-10 10:00"),
        (100, "2026-12-11 10:00"),
        (199, "2026-12-12 10:00"),
    ];
    pass(&ws, &write("second.csv", &moved), &[]);
    let booked =
        |patient: &str| event("booked", patient, "next_booking_at", "2026-11-25T01:00:00Z");
    assert_eq!(
        observed(&ws),
        [booked("Q001"), booked("Q100"), booked("Q199")]
    );
    assert_eq!((count("marks"), count("mark_packs")), (3, 4));
    // Q100 back to its first value: new against its own row (12-11), the pack's 12-01 is old.
    let back = [(1, "2026-12-10 10:00"), (199, "2026-12-12 10:00")];
    pass(&ws, &write("third.csv", &back), &[]);
    let events = observed(&ws);
    assert_eq!(events.len(), 4, "{events:?}");
    let q100 = events.iter().filter(|&event| *event == booked("Q100"));
    assert_eq!(q100.count(), 2, "{events:?}");
}

/// A rerun looks for each patient's fingerprint where the last export put them (see
/// src/ledger/mark_order.rs): an export shuffled, with patients removed and added, must still
/// give each patient their own marks, so only the bookings that moved are booked.
#[test]
fn an_export_shuffled_with_patients_added_and_removed_books_only_the_moved_bookings() {
    let ws = Workspace::new();
    let row = |n: usize, booking: &str| {
        format!("Q{n:02},U{n:02},first_visit,2026-01-05 10:00,{booking},2026-11-01 10:00,")
    };
    let first: Vec<String> = (0..40).map(|n| row(n, "2026-12-01 10:00")).collect();
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    pass(&ws, &export(&ws, "first.csv", &first), &[]);
    assert!(observed(&ws).is_empty());

    // Every seventh place in turn, three patients gone, five new ones among them, and four
    // bookings moved.
    let moved = [3, 11, 20, 38];
    let mut rows = Vec::new();
    for n in (0..40)
        .map(|i| (i * 7) % 40)
        .filter(|n| ![5, 6, 30].contains(n))
    {
        let booking = if moved.contains(&n) {
            "2026-12-20 10:00"
        } else {
            "2026-12-01 10:00"
        };
        rows.push(row(n, booking));
        if n % 8 == 1 {
            rows.push(row(40 + n, "2026-12-05 10:00"));
        }
    }
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let shuffled = export(&ws, "shuffled.csv", &rows);
    let second = pass(&ws, &shuffled, &[]);
    let mut booked: Vec<_> = (moved.iter())
        .map(|n| {
            event(
                "booked",
                &format!("Q{n:02}"),
                "next_booking_at",
                "2026-11-25T01:00:00Z",
            )
        })
        .collect();
    let mut seen = observed(&ws);
    seen.sort();
    booked.sort();
    assert_eq!(seen, booked);
    assert!(
        second
            .stderr
            .contains("seen in the export: 4 new booking(s), 0 visit(s)"),
        "{}",
        second.stderr
    );
    let third = pass(&ws, &shuffled, &[]);
    assert_eq!(observed(&ws).len(), 4, "the same export again: nothing new");
    assert!(
        !third.stderr.contains("seen in the export"),
        "{}",
        third.stderr
    );
}
