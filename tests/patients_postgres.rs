//! Patients read straight from PostgreSQL (`--patients postgres://…` with `--patients-query`
//! or `--patients-table`), run as a user runs steprule: the same plan and deliveries as from the
//! CSV export with the same rows, clear errors without the password, and hostile tables,
//! queries and cells. The cluster is the shared one of `support/postgres.rs`; without
//! PostgreSQL these tests print SKIPPED (unless STEPRULE_REQUIRE_POSTGRES=1). The connection
//! failures need no server and always run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "patients_postgres/cluster.rs"]
mod cluster;
mod common;
#[path = "patients_postgres/memory.rs"]
mod memory;
#[path = "support/postgres.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::Command;

use cluster::{cluster, PASSWORD};
use common::Run;

const NOW: &str = "2026-11-25T09:00:00+09:00";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The sample clinic's rules in a scratch folder (so no ledger beside rules/ is read), with the
/// folder.
fn sample_rules() -> (tempfile::TempDir, PathBuf) {
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("rules/clinic.step"),
        copy.path().join("clinic.step"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        root().join("rules/templates"),
        copy.path().join("templates"),
    )
    .unwrap();
    let rules = copy.path().join("clinic.step");
    (copy, rules)
}

/// `steprule ARGS` with `env` set (and STEPRULE_PATIENTS_URL unset unless given).
fn steprule_with(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
    command
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .env_remove("LINE_CHANNEL_ACCESS_TOKEN")
        .env_remove("STEPRULE_PATIENTS_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("the steprule binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

fn steprule(args: &[&str]) -> Run {
    steprule_with(args, &[])
}

/// The rows of rules/patients.csv in a table with the types a reservation system would use:
/// wall-clock timestamps, timestamps with a time zone, dates, a boolean and a text[] of tags.
fn load_sample(client: &mut postgres::Client) {
    client
        .batch_execute(include_str!("fixtures/patients_postgres/patients.sql"))
        .unwrap();
    let mut reader = csv::Reader::from_path(root().join("rules/patients.csv")).unwrap();
    let insert = client
        .prepare(
            "INSERT INTO patients SELECT c[1], nullif(c[2], ''), c[3], nullif(c[4], ''), \
             nullif(c[5], '')::timestamp, nullif(c[6], '')::date, \
             string_to_array(nullif(c[7], ''), ';'), c[8]::boolean, \
             (nullif(c[9], '')::timestamp AT TIME ZONE 'Asia/Tokyo'), \
             (nullif(c[10], '')::timestamp AT TIME ZONE 'Asia/Tokyo'), \
             nullif(c[11], '')::timestamp, nullif(c[12], '')::timestamp, \
             nullif(c[13], '')::timestamp, c[14], c[15], nullif(c[16], '') \
             FROM (SELECT $1::text[] AS c) AS row",
        )
        .unwrap();
    let mut rows = 0;
    for record in reader.records() {
        let record = record.unwrap();
        let cells: Vec<&str> = record.iter().collect();
        client.execute(&insert, &[&cells]).unwrap();
        rows += 1;
    }
    assert_eq!(rows, 300);
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

fn plan_args<'a>(rules: &'a str, patients: &'a [&'a str]) -> Vec<&'a str> {
    let mut args = vec!["plan", rules];
    args.extend_from_slice(patients);
    args.extend_from_slice(&["--now", NOW, "--days", "60", "--format", "json"]);
    args
}

#[test]
fn plan_over_a_table_is_the_plan_over_the_csv_export() {
    let Some(cluster) = cluster() else { return };
    let (url, mut client) = cluster.fresh_database("plan_same");
    load_sample(&mut client);
    let (_dir, rules) = sample_rules();
    let rules = rules.to_str().unwrap();
    let csv = steprule(&plan_args(rules, &["--patients", "rules/patients.csv"]));
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    let table = steprule(&plan_args(
        rules,
        &["--patients", &url, "--patients-table", "patients"],
    ));
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        csv.stdout.len() > 1000,
        "the plan has sends: {}",
        csv.stdout
    );
    // A table has no order of its own (PostgreSQL reuses free space in earlier pages), so
    // sends at the same instant may come in another patient order: the same lines.
    assert_eq!(sorted_lines(&table.stdout), sorted_lines(&csv.stdout));
    // A query, its order, and the URL from the environment give the same plan.
    let query = steprule_with(
        &plan_args(
            rules,
            &["--patients-query", "SELECT * FROM patients ORDER BY id;"],
        ),
        &[("STEPRULE_PATIENTS_URL", &url)],
    );
    assert_eq!(query.code, 0, "{}", query.stderr);
    assert_eq!(query.stdout, csv.stdout);
    for run in [&table, &query] {
        assert!(!run.stderr.contains(PASSWORD), "{}", run.stderr);
    }
}

#[test]
fn a_query_in_the_systems_own_names_reads_through_the_mapping() {
    let Some(cluster) = cluster() else { return };
    let (url, mut client) = cluster.fresh_database("mapping");
    load_sample(&mut client);
    let (_dir, rules) = sample_rules();
    let rules = rules.to_str().unwrap();
    let csv = steprule(&plan_args(rules, &["--patients", "rules/patients.csv"]));
    let sql = "SELECT id AS \"患者ID\", line_user_id, name, \
               CASE stage WHEN 'first_visit' THEN '初診' ELSE stage END AS \"ステージ\", \
               stage_entered_at, birth_date, tags, opted_out AS \"配信停止\", appointment_at, \
               visited_at, last_visit_at, next_booking_at, cancelled_at, doctor, department, \
               marketing_ok FROM patients ORDER BY id";
    let mapping = "tests/fixtures/patients_postgres/mapping.toml";
    let mapped = steprule(&plan_args(
        rules,
        &[
            "--patients",
            &url,
            "--patients-query",
            sql,
            "--mapping",
            mapping,
        ],
    ));
    assert_eq!(mapped.code, 0, "{}", mapped.stderr);
    assert_eq!(mapped.stdout, csv.stdout);
}

/// The outbox lines of `steprule run` into a fresh ledger, without the fields a run makes up
/// (retry keys, times of writing).
fn outbox_of(rules: &Path, patients: &[&str]) -> Vec<serde_json::Value> {
    let work = tempfile::tempdir().unwrap();
    let (ledger, outbox) = (
        work.path().join("ledger.db"),
        work.path().join("outbox.jsonl"),
    );
    let mut args = vec!["run", rules.to_str().unwrap()];
    args.extend_from_slice(patients);
    args.extend_from_slice(&[
        "--now",
        NOW,
        "--ledger",
        ledger.to_str().unwrap(),
        "--outbox",
        outbox.to_str().unwrap(),
    ]);
    let run = steprule(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains(PASSWORD), "{}", run.stderr);
    let text = std::fs::read_to_string(outbox).unwrap();
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(object) = value.as_object_mut() {
                object.retain(|key, _| !matches!(key.as_str(), "retry_key" | "written_at"));
            }
            value
        })
        .collect();
    // Deliveries run concurrently, so the outbox's order is not the plan's.
    lines.sort_by_key(|line| line.to_string());
    lines
}

#[test]
fn run_from_a_table_writes_the_outbox_the_csv_export_does() {
    let Some(cluster) = cluster() else { return };
    let (url, mut client) = cluster.fresh_database("run_same");
    load_sample(&mut client);
    let (_dir, rules) = sample_rules();
    let from_csv = outbox_of(&rules, &["--patients", "rules/patients.csv"]);
    let from_table = outbox_of(
        &rules,
        &["--patients", &url, "--patients-table", "patients"],
    );
    assert!(!from_csv.is_empty());
    assert_eq!(from_table, from_csv);
}

#[test]
fn preview_and_explain_find_a_patient_in_the_database() {
    let Some(cluster) = cluster() else { return };
    let (url, mut client) = cluster.fresh_database("one_patient");
    load_sample(&mut client);
    let (_dir, rules) = sample_rules();
    let rules = rules.to_str().unwrap();
    for command in ["explain", "preview"] {
        let args = |patients: &'static [&'static str]| -> Vec<String> {
            let mut args = vec![command.to_owned(), rules.to_owned()];
            args.extend(patients.iter().map(|a| (*a).to_owned()));
            args.extend(["--patient", "P0003", "--now", NOW].map(str::to_owned));
            args
        };
        let csv_args = args(&["--patients", "rules/patients.csv"]);
        let csv = steprule(&csv_args.iter().map(String::as_str).collect::<Vec<_>>());
        let mut db_args = args(&[]);
        db_args.extend(["--patients-table".to_owned(), "patients".to_owned()]);
        let db = steprule_with(
            &db_args.iter().map(String::as_str).collect::<Vec<_>>(),
            &[("STEPRULE_PATIENTS_URL", &url)],
        );
        assert_eq!(db.code, csv.code, "{command}: {}", db.stderr);
        assert_eq!(db.stdout, csv.stdout, "{command}");
        assert!(!db.stdout.is_empty(), "{command}");
    }
}

#[test]
fn report_and_status_read_the_database_as_they_read_the_export() {
    let Some(cluster) = cluster() else { return };
    let (url, mut client) = cluster.fresh_database("report_status");
    load_sample(&mut client);
    let (_dir, rules) = sample_rules();
    let rules = rules.to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let ledger = work.path().join("ledger.db");
    let ledger = ledger.to_str().unwrap();
    let outbox = work.path().join("outbox.jsonl");
    let run = steprule(&[
        "run",
        rules,
        "--patients",
        "rules/patients.csv",
        "--now",
        NOW,
        "--ledger",
        ledger,
        "--outbox",
        outbox.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = |patients: &[&str]| {
        let mut args = vec!["report", rules, "--ledger", ledger, "--month", "2026-11"];
        args.extend_from_slice(&["--now", NOW, "--format", "json"]);
        args.extend_from_slice(patients);
        steprule(&args)
    };
    let status = |patients: &[&str]| {
        let mut args = vec!["status", rules, "--ledger", ledger, "--format", "json"];
        args.extend_from_slice(patients);
        steprule(&args)
    };
    let from_db = ["--patients", &url, "--patients-table", "patients"];
    for (command, csv, db) in [
        (
            "report",
            report(&["--patients", "rules/patients.csv"]),
            report(&from_db),
        ),
        (
            "status",
            status(&["--patients", "rules/patients.csv"]),
            status(&from_db),
        ),
    ] {
        assert_eq!(db.code, csv.code, "{command}: {}", db.stderr);
        assert!(csv.stdout.len() > 20, "{command}: {}", csv.stdout);
        assert_eq!(db.stdout, csv.stdout, "{command}");
    }
}

/// `plan` of the sample rules over the query `sql` in the database at `url`.
fn plan_query(url: &str, sql: &str) -> Run {
    let (_dir, rules) = sample_rules();
    let rules = rules.to_str().unwrap();
    steprule(&plan_args(
        rules,
        &["--patients", url, "--patients-query", sql],
    ))
}

#[test]
fn a_bad_query_is_the_servers_message_without_the_password() {
    let Some(cluster) = cluster() else { return };
    let (url, mut client) = cluster.fresh_database("bad_query");
    load_sample(&mut client);
    let run = plan_query(&url, "SELEC id FROM patients");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("syntax error"), "{}", run.stderr);
    assert!(run.stderr.contains("SQLSTATE 42601"), "{}", run.stderr);
    let run = plan_query(&url, "SELECT id, nme FROM patients");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("column \"nme\" does not exist"),
        "{}",
        run.stderr
    );
    // A cast that fails quotes the value in the server's message: a patient's name.
    let run = plan_query(&url, "SELECT id, name::int AS age_years FROM patients");
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("SQLSTATE 22P02"), "{}", run.stderr);
    assert!(!run.stderr.contains("酒井"), "{}", run.stderr);
    let wrong = cluster
        .server()
        .url_with_password("postgres", "not-the-pw-31");
    let run = plan_query(&wrong, "SELECT 'P1' AS id");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("password authentication failed"),
        "{}",
        run.stderr
    );
    for secret in [PASSWORD, "not-the-pw-31"] {
        assert!(!run.stderr.contains(secret) && !run.stdout.contains(secret));
    }
    assert!(run.stderr.contains(&cluster.server().shown_url("postgres")));
}

#[test]
fn the_query_cannot_write_to_the_reservation_system() {
    let Some(cluster) = cluster() else { return };
    let (url, mut client) = cluster.fresh_database("read_only");
    load_sample(&mut client);
    client.batch_execute("CREATE SEQUENCE visits").unwrap();
    let run = plan_query(&url, "SELECT id, nextval('visits') AS visit FROM patients");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("read-only transaction"),
        "{}",
        run.stderr
    );
    let run = plan_query(
        &url,
        "WITH gone AS (DELETE FROM patients RETURNING *) SELECT * FROM gone",
    );
    assert_eq!(run.code, 2);
    let run = plan_query(
        &url,
        "SELECT set_config('transaction_read_only', 'off', true) AS id",
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    let (_dir, rules) = sample_rules();
    let table = "patients\"; DROP TABLE patients; --";
    let run = steprule(&plan_args(
        rules.to_str().unwrap(),
        &["--patients", &url, "--patients-table", table],
    ));
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    let left: i64 = client
        .query_one("SELECT count(*) FROM patients", &[])
        .unwrap()
        .get(0);
    assert_eq!(left, 300);
}

#[test]
fn columns_are_checked_as_a_csv_header_is() {
    let Some(cluster) = cluster() else { return };
    let (url, mut client) = cluster.fresh_database("columns");
    load_sample(&mut client);
    let run = plan_query(&url, "SELECT id, name, doctor AS name FROM patients");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("columns `name` and `name` both mean `name`"),
        "{}",
        run.stderr
    );
    let run = plan_query(&url, "SELECT id AS patient_id, name FROM patients");
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("has no `id` column"), "{}", run.stderr);
    assert!(!run.stderr.contains("酒井"));
    let run = plan_query(&url, "SELECT id, '\\x00ff'::bytea AS photo FROM patients");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("column `photo` is binary data (bytea)"),
        "{}",
        run.stderr
    );
    // Text cannot hold a NUL: the server refuses to make one, and says so.
    let run = plan_query(&url, "SELECT id, chr(0) AS note FROM patients");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("null character not permitted"),
        "{}",
        run.stderr
    );
}

#[test]
fn hostile_cells_are_bounded_escaped_and_numbered_by_row() {
    let Some(cluster) = cluster() else { return };
    let (url, _client) = cluster.fresh_database("hostile");
    // Row 2 holds 10 MB; row 3 has control characters where a stage and a date should be;
    // row 4 repeats row 1's id.
    let sql = "SELECT * FROM (VALUES \
        (1, 'P1', 'U1', 'first_visit', '2026-11-24 10:00'), \
        (2, 'P2', repeat('x', 10000000), 'first_visit', '2026-11-24 10:00'), \
        (3, 'P3', 'U3', E'\\x1b[31mfirst\\x07', E'2026\\x01-11-24'), \
        (4, 'P1', 'U4', 'first_visit', '2026-11-24 10:00')) \
        AS t(n, id, line_user_id, stage, stage_entered_at) ORDER BY n";
    let run = plan_query(&url, sql);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains(": row 2: the row is longer than 1 MiB"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(": row 3: column `stage`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(": row 4: the same id is already on row 1"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains('\u{1b}') && !run.stderr.contains('\u{7}'));
    assert!(!run.stderr.contains("xxxxxxxx"));
}

#[test]
fn a_query_failing_midway_is_reported_at_its_row_after_the_rows_before() {
    let Some(cluster) = cluster() else { return };
    let (url, _client) = cluster.fresh_database("midway");
    let sql = "SELECT 'P' || n AS id, CASE WHEN n = 20000 THEN 1 / (n - n) END AS visits \
               FROM generate_series(1, 30000) AS n";
    let (_dir, rules) = sample_rules();
    let run = steprule(&plan_args(
        rules.to_str().unwrap(),
        &["--patients", &url, "--patients-query", sql],
    ));
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(": row 20000: cannot read the rest of the rows: the query failed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("SQLSTATE 22012"), "{}", run.stderr);
    assert!(run.stderr.contains("19999 patients read"), "{}", run.stderr);
}

#[test]
fn a_refused_connection_is_a_clear_error_at_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://clinic:s3cret-pw@127.0.0.1:{port}/resv");
    let started = std::time::Instant::now();
    let run = plan_query(&url, "SELECT * FROM patients");
    assert_eq!(run.code, 2);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(run.stderr.contains("Connection refused"), "{}", run.stderr);
    assert!(run
        .stderr
        .contains(&format!("postgres://clinic@127.0.0.1:{port}/resv")));
    assert!(!run.stderr.contains("s3cret-pw"), "{}", run.stderr);
}

#[test]
fn a_server_that_never_answers_is_given_up_on() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and reads, never answers.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let url = format!("postgres://clinic:s3cret-pw@127.0.0.1:{port}/resv?connect_timeout=2");
    let started = std::time::Instant::now();
    let run = plan_query(&url, "SELECT * FROM patients");
    assert_eq!(run.code, 2);
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert!(
        run.stderr
            .contains("no answer from the database within 2 s"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("s3cret-pw"));
}

#[test]
fn the_query_needs_a_url_and_a_url_needs_a_query() {
    let (_dir, rules) = sample_rules();
    let rules = rules.to_str().unwrap();
    let run = steprule(&plan_args(
        rules,
        &["--patients", "postgres://u:pw-77@127.0.0.1/db"],
    ));
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("needs --patients-query"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("pw-77"));
    let run = steprule(&plan_args(
        rules,
        &[
            "--patients",
            "rules/patients.csv",
            "--patients-table",
            "patients",
        ],
    ));
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("need a postgres:// URL"),
        "{}",
        run.stderr
    );
    let run = steprule(&plan_args(rules, &[]));
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--patients is required"),
        "{}",
        run.stderr
    );
}
