//! `steprule status`: what the ledger holds, per step and status, the latest sends that did not
//! go out with why, and one patient's sends — without opening SQLite.

use std::collections::HashSet;

use crate::fake_line::{FakeLine, Faults, TOKEN};
use crate::workspace::{fixture_patients, fixture_user_id, output, Workspace};

pub fn status(ws: &Workspace, extra: &[&str]) -> crate::workspace::Run {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_steprule"));
    command
        .arg("status")
        .arg("--ledger")
        .arg(ws.ledger())
        .args(extra)
        .env("NO_COLOR", "1");
    output(command)
}

#[test]
fn status_shows_counts_per_step_and_why_a_send_failed() {
    let refused = fixture_user_id("R2");
    let fake = FakeLine::start(Faults {
        reject_to: HashSet::from([refused]),
        ..Faults::none()
    });
    let ws = Workspace::new();
    let run = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(run.code, 4, "{}", run.stderr);

    let table = status(&ws, &["--patient", "R2"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let out = &table.stdout;
    let row = |step: &str| {
        out.lines()
            .find(|l| l.starts_with(step))
            .unwrap_or_else(|| panic!("a row for {step}:\n{out}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // step, sink, sent, pending, held, blocked, failed, expired, skipped
    assert_eq!(
        row("booking_confirm")[1..],
        ["line", "2", "0", "0", "0", "1", "0", "0"],
        "{out}"
    );
    assert_eq!(row("thanks")[1..4], ["line", "1", "0"], "{out}");
    assert_eq!(row("total")[1..3], ["line", "4"], "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("failed") && l.contains("booking_confirm  R2  LINE answered 400")),
        "the latest failure with its reason:\n{out}"
    );
    assert!(out.contains("sends to this patient (1):"), "{out}");

    let json = status(&ws, &["--format", "json"]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("one JSON object");
    assert_eq!(value["totals"]["line"]["sent"], 4);
    assert_eq!(value["totals"]["line"]["failed"], 1);
    assert_eq!(value["problems"][0]["patient"], "R2");
    assert_eq!(value["problems"][0]["status"], "failed");
}

#[test]
fn status_of_the_outbox_says_it_is_not_line() {
    let ws = Workspace::new();
    ws.run(&fixture_patients(), None, &[]);
    let table = status(&ws, &[]);
    assert!(
        table.stdout.contains("outbox sends were written to a file"),
        "{}",
        table.stdout
    );
}

#[test]
fn status_without_a_ledger_says_so_and_creates_nothing() {
    let ws = Workspace::new();
    let run = status(&ws, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("no ledger at"), "{}", run.stderr);
    assert!(!ws.ledger().exists());
}

#[test]
fn status_of_a_file_that_is_not_a_ledger_names_it_and_says_what_to_do() {
    let ws = Workspace::new();
    std::fs::write(ws.ledger(), "id,name\nP1,山田\n".repeat(200)).unwrap();
    let run = status(&ws, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("is not a steprule ledger"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("ledger.db"), "{}", run.stderr);
    let run = ws.run(&fixture_patients(), None, &[]);
    assert_eq!(run.code, 2, "run says the same:\n{}", run.stderr);
    assert!(
        run.stderr.contains("is not a steprule ledger"),
        "{}",
        run.stderr
    );
}

#[test]
fn status_shows_a_patients_line_state_and_reads_the_export_only_with_the_rules() {
    use steprule::ledger::{FriendChange, Ledger};
    let ws = Workspace::new();
    let blocked_at = chrono::DateTime::parse_from_rfc3339("2026-11-24T03:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    Ledger::open(&ws.ledger())
        .unwrap()
        .set_friend(&fixture_user_id("R1"), FriendChange::Blocked, blocked_at)
        .unwrap();
    let run = ws.run(&fixture_patients(), None, &[]);
    assert_eq!(run.count("blocked"), 1, "{}", run.stderr);

    // Without the export, R1's LINE user (the export's) is unknown to the ledger.
    let alone = status(&ws, &["--patient", "R1"]);
    assert_eq!(alone.code, 0, "{}", alone.stderr);
    assert!(
        alone.stdout.contains("  not linked in the ledger"),
        "{}",
        alone.stdout
    );
    assert!(
        alone
            .stdout
            .contains("cannot be checked without --patients (and RULES)"),
        "{}",
        alone.stdout
    );
    assert!(
        !alone.stdout.contains("blocked the account on"),
        "{}",
        alone.stdout
    );

    let rules = crate::common::fixtures().join("run/clinic.step");
    let patients = fixture_patients();
    let (rules, patients) = (rules.to_str().unwrap(), patients.to_str().unwrap());
    let with_export = status(&ws, &[rules, "--patients", patients, "--patient", "R1"]);
    assert_eq!(with_export.code, 0, "{}", with_export.stderr);
    let out = &with_export.stdout;
    assert!(
        out.contains("  sends go to the export's line_user_id"),
        "{out}"
    );
    assert!(
        out.contains(
            "  blocked the account on 2026-11-24T03:00:00Z: sends are not pushed until they \
             follow again"
        ),
        "{out}"
    );
    assert!(
        out.contains("LINE links: no patient's export line_user_id differs from their link"),
        "{out}"
    );
    assert!(
        !out.contains(&fixture_user_id("R1")),
        "never a LINE user id:\n{out}"
    );

    let unlinked = status(&ws, &[rules, "--patients", patients, "--patient", "R6"]);
    assert!(
        unlinked
            .stdout
            .contains("sends go nowhere: no line_user_id in the export and not linked"),
        "{}",
        unlinked.stdout
    );

    let without_rules = status(&ws, &["--patients", patients]);
    assert_eq!(without_rules.code, 2, "{}", without_rules.stderr);
    assert!(
        without_rules
            .stderr
            .contains("--patients needs the RULES file too"),
        "{}",
        without_rules.stderr
    );
}

/// `status` of `ledger` (a file or a postgres:// URL) as JSON.
fn status_json(ledger: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_steprule"));
    command
        .arg("status")
        .arg("--ledger")
        .arg(ledger)
        .args(["--format", "json"])
        .args(extra)
        .env("NO_COLOR", "1");
    let run = output(command);
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).expect("one JSON object")
}

#[test]
fn status_on_postgres_shows_what_it_shows_on_sqlite_and_the_workers_leases() {
    let Some(server) = crate::pg::server() else {
        return;
    };
    let url = server.fresh_database("status");
    let refused = fixture_user_id("R2");
    let fake = FakeLine::start(Faults {
        reject_to: HashSet::from([refused]),
        ..Faults::none()
    });
    let ws = Workspace::new();
    // The same LINE side on both ledgers, as serve would store it: R1's LINE user blocked the
    // account, R6 (no line_user_id in the export) linked, and R3 linked to another LINE user
    // than the export's (a conflict).
    {
        use steprule::ledger::{postgres::PgLedger, FriendChange, Ledger, ServeLedger};
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T03:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let lease = std::time::Duration::from_secs(60);
        let ledgers: [Box<dyn ServeLedger>; 2] = [
            Box::new(Ledger::open(&ws.ledger()).unwrap()),
            Box::new(PgLedger::open(&url, "テスト内科", lease).unwrap()),
        ];
        for mut ledger in ledgers {
            (ledger.set_friend(&fixture_user_id("R1"), FriendChange::Blocked, at)).unwrap();
            ledger.link(&fixture_user_id("R60"), "R6", at).unwrap();
            ledger.link(&fixture_user_id("R30"), "R3", at).unwrap();
        }
    }
    for ledger in [ws.ledger(), url.clone().into()] {
        let run = output(ws.command_on(&ledger, &fixture_patients(), Some((TOKEN, &fake)), &[]));
        assert_eq!(run.code, 4, "{}", run.stderr);
    }
    let on_sqlite = status_json(&ws.ledger(), &["--patient", "R2"]);
    let on_postgres = status_json(url.as_ref(), &["--patient", "R2"]);
    for field in ["totals", "steps", "patient", "line"] {
        assert_eq!(on_sqlite[field], on_postgres[field], "{field}");
    }
    // A patient's LINE state and the export's check read the same from both.
    let rules = crate::common::fixtures().join("run/clinic.step");
    let patients = fixture_patients();
    let (rules_arg, patients_arg) = (rules.to_str().unwrap(), patients.to_str().unwrap());
    for patient in ["R1", "R3", "R6"] {
        let args = [rules_arg, "--patients", patients_arg, "--patient", patient];
        let on_sqlite = status_json(&ws.ledger(), &args);
        let on_postgres = status_json(url.as_ref(), &args);
        for field in ["line", "conflicts", "patient"] {
            assert_eq!(on_sqlite[field], on_postgres[field], "{patient}: {field}");
        }
    }
    let r1 = status_json(
        url.as_ref(),
        &[rules_arg, "--patients", patients_arg, "--patient", "R1"],
    );
    assert_eq!(r1["line"]["blocked_since"], "2026-11-24T03:00:00Z", "{r1}");
    assert_eq!(r1["conflicts"], 1, "R3's link is another LINE user: {r1}");
    let r6 = status_json(
        url.as_ref(),
        &[rules_arg, "--patients", patients_arg, "--patient", "R6"],
    );
    assert_eq!(r6["line"]["recipient"], "link", "{r6}");
    let reasons = |value: &serde_json::Value| -> Vec<(String, String)> {
        (value["problems"].as_array().unwrap().iter())
            .map(|p| (p["patient"].to_string(), p["reason"].to_string()))
            .collect()
    };
    assert_eq!(reasons(&on_sqlite), reasons(&on_postgres));
    assert_eq!(on_postgres["clinic"], "テスト内科");
    assert_eq!(on_postgres["claimed"], serde_json::json!([]));
    assert!(
        !on_postgres.to_string().contains(crate::pg::PASSWORD),
        "no password in the output"
    );

    // A send another worker holds under a live lease, in another clinic's rows too.
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    for clinic in ["テスト内科", "別の医院"] {
        client
            .execute(
                "INSERT INTO steprule_sends (clinic, sink, patient, step, occurrence, template,
                     status, retry_key, due_at, expires_at, created_at, updated_at, claimed_by,
                     lease_until)
                 VALUES ($1, 'line', 'R9', 'thanks', now(), 'thanks', 'pending', 'k', now(),
                         now() + interval '1 day', now(), now(), 'host:42:abcd',
                         now() + interval '5 minutes')",
                &[&clinic],
            )
            .unwrap();
    }
    let held = status_json(url.as_ref(), &[rules_arg]);
    assert_eq!(held["claimed"][0]["worker"], "host:42:abcd");
    assert_eq!(held["claimed"][0]["sends"], 1);
    assert_eq!(held["totals"]["line"]["pending"], 1);
    let other = status_json(url.as_ref(), &["--clinic", "別の医院"]);
    assert_eq!(other["totals"]["line"], serde_json::json!({"pending": 1}));

    // Two clinics and neither named: which one is for the user to say.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_steprule"));
    command.arg("status").env("STEPRULE_LEDGER_URL", &url);
    let unnamed = output(command);
    assert_eq!(unnamed.code, 2, "{}", unnamed.stderr);
    assert!(
        unnamed
            .stderr
            .contains("holds several clinics (テスト内科, 別の医院)"),
        "{}",
        unnamed.stderr
    );
}
