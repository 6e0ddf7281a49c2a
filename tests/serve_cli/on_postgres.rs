//! `serve --ledger postgres://…`: two instances behind a load balancer store a webhook event
//! LINE sends to both once (and act on it once); follows, blocks, links and taps received by
//! `serve` steer a `run` on the same ledger (the block, the link's recipient, `clicked`); the
//! URL's password is never printed. Each test gets a fresh database on the throwaway cluster of
//! tests/support/postgres.rs (skipped with a notice without PostgreSQL, unless
//! `STEPRULE_REQUIRE_POSTGRES=1`).

use std::path::Path;
use std::process::Command;

use chrono::NaiveDate;
use serde_json::json;
use steprule::ledger::EventKind;

use crate::common::{steprule, Run};
use crate::events::{body, follow, now_ms, text, unfollow, user};
use crate::fake_reply::FakeReply;
use crate::pg;
use crate::reactions::{at, clinic, lines, outbox_since, sends, tokyo_minutes_ago};
use crate::server::{Options, Serve};

const BROWSER: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari Line/14.3.0";

fn assert_no_password(output: &str) {
    assert!(
        !output.contains(pg::PASSWORD),
        "the password leaked:\n{output}"
    );
}

#[test]
fn two_serves_on_one_ledger_store_an_event_both_receive_once_and_reply_once() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("two_serves");
    let fake = FakeReply::start();
    let start = || {
        Serve::start(Options {
            line: Some((crate::TOKEN.to_owned(), fake.base_url())),
            ledger_url: Some(url.clone()),
            ..Options::default()
        })
    };
    let (first, second) = (start(), start());
    let t = now_ms();
    let event = follow("01TWOSERVES0000000000000A", 21, t, "reply-two");
    let mut redelivered = event.clone();
    redelivered["deliveryContext"]["isRedelivery"] = json!(true);
    // The same event at both at once (a load balancer's retry), then LINE's redelivery of it.
    let posted = body(&[event]);
    let statuses = std::thread::scope(|scope| {
        let a = scope.spawn(|| first.post_signed(&posted).status);
        let b = scope.spawn(|| second.post_signed(&posted).status);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(statuses, (200, 200));
    assert_eq!(second.post_signed(&body(&[redelivered])).status, 200);
    let events = first.events();
    assert_eq!(events.len(), 1, "stored once: {events:?}");
    assert_eq!(events[0].kind, EventKind::Follow);
    assert_eq!(second.events().len(), 1);
    // Acted on once: one link request, from whichever instance stored it (both answered 200
    // after their commit, and a reply leaves right after it: a second would be here by now).
    fake.wait_for(1);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let replies = fake.replies();
    assert_eq!(replies.len(), 1, "{}{}", first.stderr(), second.stderr());
    assert_eq!(replies[0].reply_token, "reply-two");

    // A block through one instance is seen through the other.
    let block = body(&[unfollow("01TWOSERVES0000000000000B", 21, t + 1_000)]);
    assert_eq!(first.post_signed(&block).status, 200);
    assert!(second.ledger().is_blocked(&user(21)).unwrap());
    assert_eq!(second.get("/healthz", None).status, 200);
    for serve in [first, second] {
        let stopped = serve.stop();
        assert_eq!(stopped.code, 0, "{}", stopped.stderr);
        assert_no_password(&stopped.stderr);
    }
}

/// R1 to R5 with their LINE users in the export; R6 without one (they link through `serve`).
fn export(dir: &Path, entered: &str) {
    let mut csv = String::from(
        "id,line_user_id,name,stage,stage_entered_at,birth_date,tags,opted_out,note,\
         next_booking_at\n",
    );
    for n in 1..=6 {
        let line_user = if n == 6 { String::new() } else { user(n) };
        csv.push_str(&format!(
            "R{n},{line_user},テスト {n},first_visit,{entered},1980-01-01,,false,x,\n"
        ));
    }
    std::fs::write(dir.join("patients.csv"), csv).unwrap();
}

/// `run` on the PostgreSQL ledger `url` at `now`, to the folder's outbox.
fn run(dir: &Path, url: &str, now: &str) -> Run {
    let run = steprule(
        dir,
        &[
            "run",
            "clinic.step",
            "--patients",
            "patients.csv",
            "--ledger",
            url,
            "--outbox",
            "outbox.jsonl",
            "--now",
            now,
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_no_password(&run.stderr);
    assert!(!dir.join("ledger.db").exists(), "no SQLite ledger");
    run
}

/// Who each outbox line went to, by patient and step.
fn recipients(dir: &Path) -> Vec<(String, String, String)> {
    let outbox = std::fs::read_to_string(dir.join("outbox.jsonl")).unwrap();
    let mut to: Vec<(String, String, String)> = (outbox.lines())
        .map(|line| {
            let send: serde_json::Value = serde_json::from_str(line).unwrap();
            let field = |name: &str| send[name].as_str().unwrap().to_owned();
            (field("patient"), field("step"), field("to"))
        })
        .collect();
    to.sort();
    to
}

/// R1's tracked link in the survey, from the PostgreSQL ledger.
fn survey_link(url: &str, patient: &str) -> String {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .query_one(
            "SELECT token FROM steprule_tracked
             WHERE kind = 'url' AND patient = $1 AND step = 'survey'
               AND target LIKE 'https://clinic.example.jp/survey/%' LIMIT 1",
            &[&patient],
        )
        .unwrap()
        .get(0)
}

#[test]
fn a_run_on_postgres_honours_the_links_blocks_and_taps_serve_stored_there() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("serve_then_run");
    let dir = tempfile::tempdir().unwrap();
    clinic(dir.path());
    export(dir.path(), &tokyo_minutes_ago(40));
    let (rules, patients) = (
        dir.path().join("clinic.step"),
        dir.path().join("patients.csv"),
    );
    let serve = Serve::start_in(
        dir,
        Options {
            rules: Some(rules),
            patients: Some(patients),
            ledger_url: Some(url.clone()),
            ..Options::default()
        },
    );
    let dir = serve.dir().to_owned();
    // R6's LINE user links by card number and birth date.
    let t = now_ms();
    let attempt = text(
        "01PGLINK",
        60,
        t,
        "r",
        "診察券番号 R6\n生年月日 1980年1月1日",
    );
    assert_eq!(serve.post_signed(&body(&[attempt])).status, 200);
    assert_eq!(
        serve.ledger().linked_patient(&user(60)).unwrap().as_deref(),
        Some("R6"),
        "{}",
        serve.stderr()
    );

    // The survey goes to all six, R6's to the linked LINE user, with tracked links.
    let sent = tokyo_minutes_ago(30);
    let day = NaiveDate::parse_from_str(&sent[..10], "%Y-%m-%d").unwrap();
    run(&dir, &url, &sent);
    let surveyed: Vec<(String, String, String)> = (1..=6)
        .map(|n| {
            (
                format!("R{n}"),
                "survey".to_owned(),
                user(if n == 6 { 60 } else { n }),
            )
        })
        .collect();
    assert_eq!(recipients(&dir), surveyed);
    let outbox = std::fs::read_to_string(dir.join("outbox.jsonl")).unwrap();
    assert!(
        outbox.contains("https://go.example-clinic.jp/r/"),
        "{outbox}"
    );

    // R1 taps the survey's link; R4 blocks the account.
    let link = survey_link(&url, "R1");
    let tapped = serve.get(&format!("/r/{link}"), Some(BROWSER));
    assert_eq!(tapped.status, 302);
    assert!(tapped
        .location
        .unwrap()
        .starts_with("https://clinic.example.jp/survey/"));
    let blocked = serve.post_signed(&body(&[unfollow("01PGBLOCK", 4, now_ms())]));
    assert_eq!(blocked.status, 200);

    // D+2 10:00: the nudge, but not to R4 (`unless … or blocked`).
    let before = lines(&dir);
    let nudged = run(&dir, &url, &at(day, 2, "10:00"));
    assert!(nudged.stderr.contains("blocked 0"), "{}", nudged.stderr);
    assert_eq!(
        outbox_since(&dir, before),
        sends(&[
            ("R1", "booking_nudge"),
            ("R2", "booking_nudge"),
            ("R3", "booking_nudge"),
            ("R5", "booking_nudge"),
            ("R6", "booking_nudge")
        ])
    );

    // D+3 12:00: the reminder to all who did not tap (not R1); R4's is blocked, not pushed.
    let before = lines(&dir);
    let reminded = run(&dir, &url, &at(day, 3, "12:00"));
    assert!(reminded.stderr.contains("blocked 1"), "{}", reminded.stderr);
    assert_eq!(
        outbox_since(&dir, before),
        sends(&[
            ("R2", "survey_again"),
            ("R3", "survey_again"),
            ("R5", "survey_again"),
            ("R6", "survey_again")
        ])
    );
    // `events` reads them back from PostgreSQL: the clinic's, named by the rules.
    let events = |args: &[&str]| {
        let mut all = vec!["events", "--ledger", &url];
        all.extend_from_slice(args);
        let listed = steprule(&dir, &all);
        assert_no_password(&listed.stdout);
        assert_no_password(&listed.stderr);
        listed
    };
    let clicks = events(&["clinic.step", "--type", "click", "--format", "json"]);
    assert_eq!(clicks.code, 0, "{}", clicks.stderr);
    let clicked: Vec<serde_json::Value> = (clicks.stdout.lines())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(clicked.len(), 1, "{}", clicks.stdout);
    assert_eq!(
        (&clicked[0]["patient"], &clicked[0]["step"]),
        (&json!("R1"), &json!("survey"))
    );
    let latest = events(&["clinic.step", "--limit", "1", "--format", "json"]);
    assert_eq!(latest.code, 0, "{}", latest.stderr);
    assert!(
        latest.stdout.contains(r#""type":"unfollow""#),
        "{}",
        latest.stdout
    );
    assert_eq!(latest.stdout.lines().count(), 1);
    let all = events(&["clinic.step"]);
    // R6's link, R1's tap, R4's block.
    assert!(all.stderr.contains("3 event(s)"), "{}", all.stderr);
    for kind in ["link", "click", "unfollow"] {
        assert!(all.stdout.contains(kind), "{kind}: {}", all.stdout);
    }
    // Without the rules there is no telling whose events to show.
    let unnamed = events(&[]);
    assert_eq!(unnamed.code, 2, "{}", unnamed.stderr);
    assert!(
        unnamed.stderr.contains("give the rules file"),
        "{}",
        unnamed.stderr
    );
    // `serve` owns the folder: stopped last.
    let stopped = serve.stop();
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert_no_password(&stopped.stderr);
}

#[test]
fn serves_ledger_url_password_is_never_printed() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("serve_secret");
    let dir = tempfile::tempdir().unwrap();
    let serve_with = |ledger: Option<&str>, env: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
        command
            .arg("serve")
            .arg(crate::common::fixtures().join("serve/clinic.step"))
            .arg("--patients")
            .arg(crate::common::fixtures().join("serve/patients.csv"))
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .env("LINE_CHANNEL_SECRET", crate::SECRET)
            .env_remove("LINE_CHANNEL_ACCESS_TOKEN")
            .env_remove("STEPRULE_LEDGER_URL");
        if let Some(ledger) = ledger {
            command.args(["--ledger", ledger]);
        }
        if let Some(env) = env {
            command.env("STEPRULE_LEDGER_URL", env);
        }
        command.output().unwrap()
    };
    // Nobody listens on port 1: the error names the ledger without the password (exit 2).
    let unreachable = format!("postgres://clinic:{}@127.0.0.1:1/ledger", pg::PASSWORD);
    for (ledger, env) in [
        (Some(unreachable.as_str()), None),
        (None, Some(&*unreachable)),
    ] {
        let refused = serve_with(ledger, env);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("postgres://clinic@127.0.0.1:1/ledger"),
            "{stderr}"
        );
        assert_no_password(&stderr);
    }
    assert!(!dir.path().join("postgres:").exists());
    assert!(!dir.path().join(".steprule").exists(), "no SQLite ledger");

    // A server that starts on the URL prints it nowhere either.
    let serve = Serve::start(Options {
        ledger_url: Some(url),
        ..Options::default()
    });
    assert_eq!(serve.get("/healthz", None).status, 200);
    let stopped = serve.stop();
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert_no_password(&stopped.stderr);
}

#[test]
fn a_serve_whose_connection_the_server_ended_connects_again() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("serve_reconnect");
    let serve = Serve::start(Options {
        ledger_url: Some(url.clone()),
        ..Options::default()
    });
    assert_eq!(serve.get("/healthz", None).status, 200);
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'steprule'",
            &[],
        )
        .unwrap();
    // The request that meets the lost connection fails (LINE would redeliver it); the next
    // one is stored on a new connection.
    let t = now_ms();
    let blocked = body(&[unfollow("01PGRECONNECT", 31, t)]);
    let first = serve.post_signed(&blocked).status;
    assert!(first == 200 || first == 503, "{first}");
    assert_eq!(
        serve.post_signed(&blocked).status,
        200,
        "{}",
        serve.stderr()
    );
    assert!(serve.ledger().is_blocked(&user(31)).unwrap());
    assert_eq!(serve.events().len(), 1);
    assert_eq!(serve.get("/healthz", None).status, 200);
    let stopped = serve.stop();
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert_no_password(&stopped.stderr);
}

/// The sample clinic's folder (rules, templates, patients) in `dir`, its `track` turned on.
fn sample_clinic_tracked(dir: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rules = std::fs::read_to_string(from.join("clinic.step")).unwrap();
    let tracked = rules.replace(
        "# track \"https://go.example-clinic.jp\"",
        "track \"https://go.example-clinic.jp\"",
    );
    assert_ne!(rules, tracked, "the sample's track line moved");
    std::fs::write(dir.join("clinic.step"), tracked).unwrap();
    std::fs::copy(from.join("patients.csv"), dir.join("patients.csv")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    for entry in std::fs::read_dir(from.join("templates")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("templates").join(entry.file_name())).unwrap();
    }
}

#[test]
fn the_sample_clinic_with_tracked_links_and_reactions_runs_on_postgres() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("sample_clinic");
    let dir = tempfile::tempdir().unwrap();
    sample_clinic_tracked(dir.path());
    // The survey to the first visits of 11-23 (and others), then the reminder `3d after sent
    // survey` to each of them (`unless clicked survey`: nobody tapped).
    run(dir.path(), &url, "2026-11-28 12:30");
    let surveyed = recipients(dir.path());
    let survey: Vec<(String, String)> = (surveyed.into_iter())
        .filter(|(_, step, _)| step == "survey")
        .map(|(patient, _, _)| (patient, "survey_again".to_owned()))
        .collect();
    for first_visit in ["P0003", "P0004"] {
        assert!(survey.iter().any(|(p, _)| p == first_visit), "{survey:?}");
    }
    let outbox = std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap();
    assert!(
        outbox.contains("https://go.example-clinic.jp/r/"),
        "{outbox}"
    );
    let before = lines(dir.path());
    run(dir.path(), &url, "2026-12-01 12:30");
    let reminded: Vec<(String, String)> = outbox_since(dir.path(), before)
        .into_iter()
        .filter(|(_, step)| step == "survey_again")
        .collect();
    assert_eq!(reminded, survey);
}
