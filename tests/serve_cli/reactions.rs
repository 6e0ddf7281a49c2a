//! Reactions end to end (issue 11, item 9): `run` sends the survey, the patients tap its link,
//! answer its postback, book or block the account through `serve` (webhooks signed), and the
//! later runs react — the expected sends worked out by hand from the survey's send day D:
//!
//! - R1 taps the survey's link: no `survey_again` (the example, `unless clicked survey`);
//! - R2 does nothing: `survey_again` at D+3 12:00, `booking_nudge` at D+2 10:00;
//! - R3 answers 満足 (`survey=good`): `answer_thanks` at D+1 10:00, and the others;
//! - R4 blocks the account: `booking_nudge` is not due (`unless … or blocked`), `survey_again`
//!   is due and recorded blocked (never pushed);
//! - R5 books after the survey: no `booking_nudge` (`unless booked since survey`).
//!
//! Events for patients that do not exist (an unknown LINE user blocking, untracked postback
//! data) change nothing.

use std::path::Path;

use chrono::{Days, NaiveDate};

use crate::common::{fixtures, steprule, Run};
use crate::events::{body, now_ms, postback, unfollow};
use crate::server::{Options, Serve};

const BROWSER: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari Line/14.3.0";

/// The clinic's clock `minutes` ago, as `--now` and the export write it.
pub(crate) fn tokyo_minutes_ago(minutes: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(minutes))
        .with_timezone(&chrono_tz::Asia::Tokyo)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// The fixture's rules and templates in `dir`.
pub(crate) fn clinic(dir: &Path) {
    let from = fixtures().join("reactions");
    std::fs::copy(from.join("clinic.step"), dir.join("clinic.step")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    for entry in std::fs::read_dir(from.join("templates")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("templates").join(entry.file_name())).unwrap();
    }
}

/// Five patients at the first visit since `entered`; R5's next booking as given.
fn export(dir: &Path, entered: &str, r5_booking: &str) {
    let mut csv = String::from(
        "id,line_user_id,name,stage,stage_entered_at,birth_date,tags,opted_out,note,\
         next_booking_at\n",
    );
    for n in 1..=5 {
        let booking = if n == 5 { r5_booking } else { "" };
        csv.push_str(&format!(
            "R{n},U{n:032x},テスト {n},first_visit,{entered},1980-01-01,,false,x,{booking}\n"
        ));
    }
    std::fs::write(dir.join("patients.csv"), csv).unwrap();
}

fn run(dir: &Path, now: &str) -> Run {
    let run = steprule(
        dir,
        &[
            "run",
            "clinic.step",
            "--patients",
            "patients.csv",
            "--ledger",
            "ledger.db",
            "--outbox",
            "outbox.jsonl",
            "--now",
            now,
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    run
}

/// The (patient, step) of each outbox line after the first `skip`, sorted.
pub(crate) fn outbox_since(dir: &Path, skip: usize) -> Vec<(String, String)> {
    let outbox = std::fs::read_to_string(dir.join("outbox.jsonl")).unwrap();
    let mut sends: Vec<(String, String)> = outbox
        .lines()
        .skip(skip)
        .map(|line| {
            let send: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                send["patient"].as_str().unwrap().to_owned(),
                send["step"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    sends.sort();
    sends
}

pub(crate) fn lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("outbox.jsonl"))
        .unwrap()
        .lines()
        .count()
}

/// `patient`'s tracked token of `kind` in the survey send (the first postback is 満足).
fn token(ledger: &Path, patient: &str, kind: &str, target: &str) -> String {
    let conn = rusqlite::Connection::open(ledger).unwrap();
    conn.query_row(
        "SELECT token FROM tracked WHERE kind = ?1 AND patient = ?2 AND step = 'survey'
           AND target LIKE ?3 LIMIT 1",
        [kind, patient, target],
        |row| row.get(0),
    )
    .unwrap()
}

pub(crate) fn at(day: NaiveDate, plus: u64, time: &str) -> String {
    format!("{} {time}", day.checked_add_days(Days::new(plus)).unwrap())
}

pub(crate) fn sends(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(p, s)| ((*p).to_owned(), (*s).to_owned()))
        .collect()
}

#[test]
fn clicks_answers_bookings_and_blocks_posted_to_serve_steer_the_later_runs() {
    let dir = tempfile::tempdir().unwrap();
    clinic(dir.path());
    let sent = tokyo_minutes_ago(30);
    let day: NaiveDate = NaiveDate::parse_from_str(&sent[..10], "%Y-%m-%d").unwrap();
    export(dir.path(), &tokyo_minutes_ago(40), "");
    run(dir.path(), &sent);
    let surveyed: Vec<(&str, &str)> = (1..=5)
        .map(|n| (["R1", "R2", "R3", "R4", "R5"][n - 1], "survey"))
        .collect();
    assert_eq!(outbox_since(dir.path(), 0), sends(&surveyed));
    let ledger = dir.path().join("ledger.db");
    let link = token(&ledger, "R1", "url", "https://clinic.example.jp/survey/%");
    let good = token(&ledger, "R3", "postback", "survey=good");

    let (rules, patients) = (
        dir.path().join("clinic.step"),
        dir.path().join("patients.csv"),
    );
    let serve = Serve::start_in(
        dir,
        Options {
            rules: Some(rules),
            patients: Some(patients),
            ..Options::default()
        },
    );
    let dir = serve.dir().to_owned();
    assert_eq!(serve.get(&format!("/r/{link}"), Some(BROWSER)).status, 302);
    let t = now_ms();
    let posted = serve.post_signed(&body(&[
        postback("01RXGOOD", 3, t, &good),
        // R2 sends data of its own, not a tracked button: no answer to the survey.
        postback("01RXRAW", 2, t + 1, "survey=good"),
        unfollow("01RXBLOCK", 4, t + 2),
        // A LINE user no patient has.
        unfollow("01RXSTRANGER", 99, t + 3),
    ]));
    assert_eq!(posted.status, 200);

    // R5 books: the next run sees the booking and records it.
    let booking = format!("{} 10:00", day.checked_add_days(Days::new(30)).unwrap());
    export(&dir, &tokyo_minutes_ago(40), &booking);
    run(&dir, &tokyo_minutes_ago(10));
    assert_eq!(lines(&dir), 5, "nothing new is due yet");

    // D+1 10:00: only R3, who answered 満足, is thanked.
    let before = lines(&dir);
    run(&dir, &at(day, 1, "10:00"));
    assert_eq!(outbox_since(&dir, before), sends(&[("R3", "good_answer")]));

    // D+2 10:00: the nudge, but not to R4 (blocked) nor R5 (booked since the survey).
    let before = lines(&dir);
    let nudged = run(&dir, &at(day, 2, "10:00"));
    assert!(nudged.stderr.contains("blocked 0"), "{}", nudged.stderr);
    assert_eq!(
        outbox_since(&dir, before),
        sends(&[
            ("R1", "booking_nudge"),
            ("R2", "booking_nudge"),
            ("R3", "booking_nudge")
        ])
    );

    // `plan` with the ledger sees the same reactions: the reminder at D+3 12:00 for everyone
    // but R1 (R4's shown as blocked).
    let planned = steprule(
        &dir,
        &[
            "plan",
            "clinic.step",
            "--patients",
            "patients.csv",
            "--ledger",
            "ledger.db",
            "--now",
            &at(day, 3, "09:00"),
            "--days",
            "1",
            "--format",
            "csv",
        ],
    );
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    assert!(
        !planned.stderr.contains("no reaction yet"),
        "{}",
        planned.stderr
    );
    let mut reminders: Vec<String> = (planned.stdout.lines())
        .filter(|line| line.contains(",survey_again,"))
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            format!("{} {} {}", &fields[0][..16], fields[1], fields[7])
        })
        .collect();
    reminders.sort();
    let noon = format!("{}T12:00", day.checked_add_days(Days::new(3)).unwrap());
    assert_eq!(
        reminders,
        [
            format!("{noon} R2 export"),
            format!("{noon} R3 export"),
            format!("{noon} R4 blocked"),
            format!("{noon} R5 export"),
        ]
    );

    // `preview` reads the same ledger: R2's reminder as LINE would show it.
    let previewed = steprule(
        &dir,
        &[
            "preview",
            "clinic.step",
            "--patients",
            "patients.csv",
            "--ledger",
            "ledger.db",
            "--patient",
            "R2",
            "--step",
            "survey_again",
            "--now",
            &at(day, 3, "09:00"),
        ],
    );
    assert_eq!(previewed.code, 0, "{}", previewed.stderr);
    assert!(
        previewed.stdout.contains("先日のアンケートへのご協力"),
        "{}",
        previewed.stdout
    );

    // D+3 11:59: not yet.
    let before = lines(&dir);
    run(&dir, &at(day, 3, "11:59"));
    assert_eq!(lines(&dir), before);

    // D+3 12:00: the reminder to all who did not tap the survey's link; R4's is blocked.
    let reminded = run(&dir, &at(day, 3, "12:00"));
    assert!(reminded.stderr.contains("blocked 1"), "{}", reminded.stderr);
    assert_eq!(
        outbox_since(&dir, before),
        sends(&[
            ("R2", "survey_again"),
            ("R3", "survey_again"),
            ("R5", "survey_again")
        ])
    );

    // explain says why, from the same ledger.
    let explained = steprule(
        &dir,
        &[
            "explain",
            "clinic.step",
            "--patients",
            "patients.csv",
            "--ledger",
            "ledger.db",
            "--patient",
            "R1",
            "--now",
            &at(day, 3, "12:00"),
        ],
    );
    assert_eq!(explained.code, 0, "{}", explained.stderr);
    assert!(
        explained
            .stdout
            .contains("`clicked survey` (survey was sent"),
        "{}",
        explained.stdout
    );
    // `serve` (and the folder it owns) lived through the runs, as it would beside them.
    assert_eq!(serve.stop().code, 0);
}

#[test]
fn plan_without_a_ledger_reads_no_reaction_yet_and_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    clinic(dir.path());
    export(dir.path(), "2026-11-25 09:00", "");
    let plan = steprule(
        dir.path(),
        &[
            "plan",
            "clinic.step",
            "--patients",
            "patients.csv",
            "--now",
            "2026-11-25 10:00",
            "--days",
            "10",
        ],
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_eq!(
        plan.stderr.matches("no reaction yet").count(),
        1,
        "{}",
        plan.stderr
    );
    assert_eq!(
        plan.stderr.matches("no ledger").count(),
        1,
        "{}",
        plan.stderr
    );
    // The survey goes out; nothing timed after it can be planned without its send.
    assert!(plan.stdout.contains("survey"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("survey_again"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("booking_nudge"), "{}", plan.stdout);
    let explained = steprule(
        dir.path(),
        &[
            "explain",
            "clinic.step",
            "--patients",
            "patients.csv",
            "--patient",
            "R2",
            "--now",
            "2026-11-25 10:00",
        ],
    );
    assert_eq!(explained.code, 0, "{}", explained.stderr);
    // Said once, on the line that says there is no ledger.
    assert_eq!(explained.stdout.matches("no reaction yet").count(), 1);
    assert!(!explained.stderr.contains("no reaction yet"));
    assert!(explained
        .stdout
        .contains("what earlier runs sent is not known, and reactions (`clicked`"));
    assert!(
        explained
            .stdout
            .contains("not evaluated: survey was not delivered to this patient yet"),
        "{}",
        explained.stdout
    );
}
