//! `report --ledger postgres://…`: the history at the top of report_cli.rs written by `run` and
//! `serve`'s API on PostgreSQL reports byte for byte as from the SQLite file; another clinic's
//! rows in the same database never count; the URL's password is never shown; a large period is
//! grouped by the server, so the report's memory does not grow with the sends. Each test gets a
//! fresh database on the throwaway cluster of tests/support/postgres.rs (skipped with a notice
//! without PostgreSQL, unless `STEPRULE_REQUIRE_POSTGRES=1`).

use std::path::Path;

use steprule::ledger::postgres::{PgLedger, DEFAULT_LEASE};
use steprule::ledger::{FriendChange, ServeLedger};

use super::*;
use crate::common::steprule_with_env;
use crate::pg;

/// The rules' clinic, whose rows `run` writes and `report` reads.
const CLINIC: &str = "テスト内科";

fn open(url: &str, clinic: &str) -> Box<dyn ReadLedger> {
    Box::new(PgLedger::open(url, clinic, DEFAULT_LEASE).unwrap())
}

/// The LINE user id `run` in report_cli.rs gives patient `id` in its exports.
fn line_user(id: &str) -> String {
    format!(
        "U{:032x}",
        id.bytes().fold(0u128, |a, b| a * 256 + u128::from(b))
    )
}

fn report_on(dir: &Path, ledger: &str, args: &[&str]) -> Run {
    let rules = rules();
    let rules = rules.to_str().unwrap();
    steprule(
        dir,
        &[&["report", rules, "--ledger", ledger], args].concat(),
    )
}

fn assert_no_password(run: &Run) {
    for output in [&run.stdout, &run.stderr] {
        assert!(
            !output.contains(pg::PASSWORD),
            "the password leaked:\n{output}"
        );
    }
}

/// Another clinic's history in the same database: sends of the same steps to the same patient
/// ids in October, taps, an unfollow and bookings put down to them. None of it may count.
fn other_clinic(url: &str) {
    let mut ledger = open(url, "別の医院");
    let ledger = &mut *ledger;
    for (i, patient) in ["B1", "B3", "X1", "N1"].into_iter().enumerate() {
        let key = SendKey {
            sink: SinkKind::Line,
            patient,
            step: "booking_confirm",
            occurrence: at(&format!("2026-10-0{}T01:00:00Z", i + 2)),
        };
        let details = SendDetails {
            template: "booking_confirm",
            variant: None,
            due_at: key.occurrence,
            expires_at: key.occurrence + chrono::Duration::days(1),
            outbox_from: None,
        };
        let Claim::New { retry_key } = ledger.claim(&key, &details, key.occurrence).unwrap() else {
            panic!("a new claim")
        };
        let sent = Settlement::Sent {
            request_id: None,
            note: None,
        };
        ledger
            .settle(&key, &retry_key, 1, &sent, key.occurrence)
            .unwrap();
        let send = SendRef {
            sink: SinkKind::Line,
            patient: patient.into(),
            step: "booking_confirm".into(),
            occurrence: key.occurrence,
        };
        // The same event ids as the clinic's own: the key is per clinic.
        let tap = format!("c{}", i + 1);
        event(
            ledger,
            &tap,
            EventKind::Click,
            "2026-10-08T00:00:00Z",
            patient,
            Some(&send),
        );
        let gone = format!("u{}", i + 1);
        event(
            ledger,
            &gone,
            EventKind::Unfollow,
            "2026-10-08T01:00:00Z",
            patient,
            Some(&send),
        );
        let booked = format!("b{}", i + 1);
        event(
            ledger,
            &booked,
            EventKind::Booked,
            "2026-10-09T00:00:00Z",
            patient,
            None,
        );
    }
}

#[test]
fn a_report_on_postgres_is_byte_identical_to_sqlite_and_ignores_other_clinics() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("report_same");
    let (file_dir, pg_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = clinic_ledger(file_dir.path());
    clinic_history(pg_dir.path(), &url, &mut || open(&url, CLINIC));
    other_clinic(&url);
    // B1's LINE user blocked the account (on both); another clinic's block of B2's is not ours.
    let blocked = |ledger: &mut dyn ServeLedger, patient: &str| {
        let when = at("2026-10-07T00:00:00Z");
        let user = line_user(patient);
        ledger
            .set_friend(&user, FriendChange::Blocked, when)
            .unwrap();
    };
    blocked(&mut Ledger::open(&file).unwrap(), "B1");
    blocked(
        &mut PgLedger::open(&url, CLINIC, DEFAULT_LEASE).unwrap(),
        "B1",
    );
    blocked(
        &mut PgLedger::open(&url, "別の医院", DEFAULT_LEASE).unwrap(),
        "B2",
    );
    // Reach: the export of October 5th's run, the same file in both folders.
    let export = "patients-2026-10-05-10-00.csv";
    for args in [
        &["--month", "2026-10", "--patients", export][..],
        &[
            "--month",
            "2026-10",
            "--patients",
            export,
            "--format",
            "json",
        ],
        &["--month", "2026-10"][..],
        &["--month", "2026-10", "--format", "json"],
        &["--month", "2026-12", "--format", "json"],
        &[
            "--from",
            "2026-09-01",
            "--to",
            "2026-12-31",
            "--metric",
            "clicked",
        ],
    ] {
        let from_file = report_on(file_dir.path(), "ledger.db", args);
        let from_pg = report_on(pg_dir.path(), &url, args);
        assert_eq!(from_file.code, 0, "{}", from_file.stderr);
        assert_eq!(from_pg.code, 0, "{}", from_pg.stderr);
        assert_eq!(from_pg.stdout, from_file.stdout, "{args:?}");
        assert_eq!(from_pg.stderr, from_file.stderr, "{args:?}");
        assert_no_password(&from_pg);
    }
    // The figures are the clinic's own (worked out by hand in report_cli.rs), not the sum.
    let document: Value = serde_json::from_str(
        &report_on(
            pg_dir.path(),
            &url,
            &["--month", "2026-10", "--format", "json"],
        )
        .stdout,
    )
    .unwrap();
    let confirm = row(&document, "steps", "booking_confirm", None);
    assert_eq!(
        (
            &confirm["sent"],
            &confirm["clicked"],
            &confirm["booked"],
            &confirm["blocked"]
        ),
        (&json!(5), &json!(1), &json!(1), &json!(1)),
        "{confirm:#}"
    );
    // The HTML page (with its six months' trend) too, but for the name of the ledger.
    let html = ["--month", "2026-10", "--format", "html"];
    let from_file = report_on(file_dir.path(), "ledger.db", &html);
    let from_pg = report_on(pg_dir.path(), &url, &html);
    assert_eq!((from_file.code, from_pg.code), (0, 0), "{}", from_pg.stderr);
    let shown = server.shown_url(url.rsplit('/').next().unwrap());
    assert!(from_pg.stdout.contains(&shown), "the ledger is named");
    assert_eq!(
        from_pg.stdout.replace(&shown, "ledger.db"),
        from_file.stdout
    );
    assert_no_password(&from_pg);
    // B1's block counts in the reach of its stage; B2's, another clinic's, does not.
    let reach = report_on(
        pg_dir.path(),
        &url,
        &[
            "--month",
            "2026-10",
            "--patients",
            export,
            "--format",
            "json",
        ],
    );
    let document: Value = serde_json::from_str(&reach.stdout).unwrap();
    let booked = document["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|stage| stage["stage"] == "booked")
        .unwrap_or_else(|| panic!("{document:#}"));
    assert_eq!(
        (&booked["patients"], &booked["blocked"]),
        (&json!(3), &json!(1)),
        "{booked:#}"
    );
    // STEPRULE_LEDGER_URL instead of --ledger, as for `run`.
    let rules = rules();
    let by_env = steprule_with_env(
        pg_dir.path(),
        &["report", rules.to_str().unwrap(), "--month", "2026-10"],
        &[("STEPRULE_LEDGER_URL", &url)],
    );
    let by_flag = report_on(pg_dir.path(), &url, &["--month", "2026-10"]);
    assert_eq!(
        (by_env.code, &by_env.stdout),
        (0, &by_flag.stdout),
        "{}",
        by_env.stderr
    );
}

#[test]
fn the_html_report_names_the_ledger_without_its_password() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("report_html");
    let dir = tempfile::tempdir().unwrap();
    // A password in the URL's options too: the last path segment is not the only place.
    let with_option = format!("{url}?password={}", pg::PASSWORD);
    drop(open(&url, CLINIC));
    let run = report_on(
        dir.path(),
        &with_option,
        &["--month", "2026-10", "--format", "html"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_no_password(&run);
    assert!(run.stdout.contains("/report_html_"), "the ledger is named");
    // A wrong password: refused, and neither password shown.
    let wrong = server.url_with_password(url.rsplit('/').next().unwrap(), "not-the-pw-0042");
    let refused = report_on(dir.path(), &wrong, &["--month", "2026-10"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert_no_password(&refused);
    assert!(
        !refused.stderr.contains("not-the-pw-0042"),
        "{}",
        refused.stderr
    );
}

/// `steprule ARGS` in `dir`, and its peak resident set in MiB (`ru_maxrss` from wait4).
fn peak_rss(dir: &Path, args: &[&str]) -> (i32, String, f64) {
    #[allow(clippy::zombie_processes)] // reaped with wait4, for its rusage
    let mut child = Command::new(env!("CARGO_BIN_EXE_steprule"))
        .args(args)
        .current_dir(dir)
        .env_remove("STEPRULE_LEDGER_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, whose pid this is; usage is a valid pointer.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    drop(child);
    (
        libc::WEXITSTATUS(status),
        stdout,
        usage.ru_maxrss as f64 / 1024.0,
    )
}

/// 200,000 sends delivered in October, 50,000 bookings and 40,000 taps put down to them:
/// counted and credited in the server (a line per arm comes back), so the report peaks as it
/// does on an empty ledger. The lead's bench is the SQLite report bench's 10M sends and 2M
/// events loaded into PostgreSQL (docs/postgres.md).
#[test]
fn a_large_period_is_reported_in_the_memory_an_empty_one_takes() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("report_memory");
    let dir = tempfile::tempdir().unwrap();
    drop(open(&url, CLINIC));
    let rules = rules();
    let args = [
        "report",
        rules.to_str().unwrap(),
        "--ledger",
        &url,
        "--month",
        "2026-10",
        "--format",
        "json",
    ];
    let (code, _, empty) = peak_rss(dir.path(), &args);
    assert_eq!(code, 0);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO steprule_sends (clinic, sink, patient, step, occurrence, template,
                 status, retry_key, attempts, due_at, expires_at, created_at, updated_at, sent_at)
             SELECT '{CLINIC}', 'line', 'P' || n, 'booking_confirm', t, 'booking_confirm',
                    'sent', md5(n::text), 1, t, t + interval '1 day', t, t, t
             FROM generate_series(1, 200000) AS n,
                  LATERAL (SELECT timestamptz '2026-10-01 10:00+09'
                                  + (n % 28) * interval '1 day' AS t) AS at;
             INSERT INTO steprule_events (clinic, id, type, at, received_at, patient)
             SELECT '{CLINIC}', 'b' || n, 'booked', t + interval '2 days', t, 'P' || n
             FROM generate_series(4, 200000, 4) AS n,
                  LATERAL (SELECT timestamptz '2026-10-01 10:00+09'
                                  + (n % 28) * interval '1 day' AS t) AS at;
             INSERT INTO steprule_events (clinic, id, type, at, received_at, patient, sink,
                                          step, occurrence)
             SELECT '{CLINIC}', 'c' || n, 'click', t + interval '1 hour', t, 'P' || n, 'line',
                    'booking_confirm', t
             FROM generate_series(5, 200000, 5) AS n,
                  LATERAL (SELECT timestamptz '2026-10-01 10:00+09'
                                  + (n % 28) * interval '1 day' AS t) AS at;
             ANALYZE;"
        ))
        .unwrap();
    let (code, stdout, large) = peak_rss(dir.path(), &args);
    assert_eq!(code, 0);
    let document: Value = serde_json::from_str(&stdout).unwrap();
    let confirm = row(&document, "steps", "booking_confirm", None);
    assert_eq!(
        (&confirm["sent"], &confirm["booked"], &confirm["clicked"]),
        (&json!(200_000), &json!(50_000), &json!(40_000)),
        "{confirm:#}"
    );
    eprintln!("peak RSS: {empty:.1} MiB empty, {large:.1} MiB with 200,000 sends");
    assert!(
        large < empty + 8.0,
        "the report's memory grew with the sends: {empty:.1} MiB empty, {large:.1} MiB"
    );
}
