//! `--run-every`: delivery passes run on schedule in the same process while webhooks are
//! answered; SIGTERM ends both with exit 0; an unfollow is put down to the step sent before it.

use std::time::{Duration, Instant};

use steprule::ledger::EventKind;

use crate::events::{body, now_ms, unfollow};
use crate::server::{each_ledger, Options, Serve};

#[test]
fn run_every_delivers_on_schedule_beside_webhooks_and_sigterm_ends_both() {
    each_ledger(|options| {
        let dir = tempfile::tempdir().unwrap();
        let patients = dir.path().join("patients.csv");
        let booked = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
        std::fs::write(
            &patients,
            format!(
                "id,line_user_id,stage,stage_entered_at,birth_date\nE1,{},booked,{booked},1980-01-02\n",
                crate::events::user(0xe1)
            ),
        )
        .unwrap();
        let serve = Serve::start(Options {
            patients: Some(patients),
            args: vec!["--run-every".into(), "1s".into()],
            ..options
        });
        let outbox = serve.dir().join("outbox.jsonl");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut answered = 0;
        while Instant::now() < deadline
            && std::fs::read_to_string(&outbox).map_or(true, |o| o.lines().count() < 1)
        {
            // Webhooks are answered while passes run.
            assert_eq!(serve.get("/healthz", None).status, 200);
            answered += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        // Where a send is settled after its line is written (a PostgreSQL ledger), the
        // unfollow below would race the settling; the pass's summary comes after both.
        while Instant::now() < deadline && !serve.stderr().lines().any(|l| l.starts_with("due ")) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let delivered = std::fs::read_to_string(&outbox).unwrap_or_default();
        assert_eq!(delivered.lines().count(), 1, "{}", serve.stderr());
        assert!(delivered.contains("booking_confirm"), "{delivered}");
        assert!(answered > 0);
        // The patient blocks the account: put down to the step just sent.
        let blocked = body(&[unfollow("01UNF", 0xe1, now_ms())]);
        assert_eq!(serve.post_signed(&blocked).status, 200);
        let events = serve.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::Unfollow);
        assert_eq!(events[0].patient.as_deref(), Some("E1"));
        assert_eq!(events[0].step.as_deref(), Some("booking_confirm"));
        // Let another pass run: it finds the send in the ledger.
        std::thread::sleep(Duration::from_millis(1500));
        let delivered = std::fs::read_to_string(&outbox).unwrap();
        let stopped = serve.stop();
        assert_eq!(stopped.code, 0, "{}", stopped.stderr);
        let passes = stopped
            .stderr
            .lines()
            .filter(|l| l.starts_with("due "))
            .count();
        assert!(passes >= 2, "{passes} passes:\n{}", stopped.stderr);
        assert!(
            stopped.stderr.contains("steprule serve: stopped"),
            "{}",
            stopped.stderr
        );
        assert_eq!(delivered.lines().count(), 1, "sent once");
    });
}

#[test]
fn a_pass_that_finds_another_run_holding_the_ledger_waits_for_the_next_tick() {
    let dir = tempfile::tempdir().unwrap();
    let patients = dir.path().join("patients.csv");
    let booked = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    std::fs::write(
        &patients,
        format!(
            "id,line_user_id,stage,stage_entered_at\nE2,{},booked,{booked}\n",
            crate::events::user(0xe2)
        ),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    // `steprule run` holds the ledger.
    let lock = steprule::ledger::LedgerLock::acquire(&work.path().join("ledger.db")).unwrap();
    let serve = Serve::start_in(
        work,
        Options {
            patients: Some(patients),
            args: vec!["--run-every".into(), "1s".into()],
            ..Options::default()
        },
    );
    let waited = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !serve.stderr().contains(what) {
            std::thread::sleep(Duration::from_millis(50));
        }
        serve.stderr().contains(what)
    };
    assert!(
        waited("another steprule run is using the ledger"),
        "{}",
        serve.stderr()
    );
    assert!(
        !serve.dir().join("outbox.jsonl").exists(),
        "nothing sent under the other's lock"
    );
    assert_eq!(
        serve.get("/healthz", None).status,
        200,
        "webhooks go on meanwhile"
    );
    drop(lock);
    assert!(waited("due 1"), "{}", serve.stderr());
    let outbox = std::fs::read_to_string(serve.dir().join("outbox.jsonl")).unwrap();
    assert_eq!(outbox.lines().count(), 1);
    assert_eq!(serve.stop().code, 0);
}

#[test]
fn run_every_names_its_pushes_for_line_statistics_with_custom_aggregation() {
    each_ledger(|options| {
        let fake = crate::fake_line::FakeLine::start(crate::fake_line::Faults::none());
        let dir = tempfile::tempdir().unwrap();
        let patients = dir.path().join("patients.csv");
        let booked = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
        let to = crate::events::user(0xe3);
        std::fs::write(
            &patients,
            format!("id,line_user_id,stage,stage_entered_at\nE3,{to},booked,{booked}\n"),
        )
        .unwrap();
        let url = options.ledger_url.clone();
        let serve = Serve::start(Options {
            patients: Some(patients),
            line: Some((crate::fake_line::TOKEN.to_owned(), fake.base_url())),
            args: vec![
                "--run-every".into(),
                "1s".into(),
                "--custom-aggregation".into(),
            ],
            ..options
        });
        assert!(
            fake.wait_for_accepted(1, Duration::from_secs(20)),
            "{}",
            serve.stderr()
        );
        // The push carried the step's unit, and the pass recorded the unit for `insights fetch`.
        assert_eq!(fake.deliveries_to(&to, "booking_confirm"), 1);
        let mut units = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while units.is_empty() && Instant::now() < deadline {
            units = units_used(&serve, url.as_deref());
            std::thread::sleep(Duration::from_millis(50));
        }
        let stopped = serve.stop();
        assert_eq!(stopped.code, 0, "{}", stopped.stderr);
        assert_eq!(units, [("booking_confirm".to_owned(), 1)]);
    });
}

/// The aggregation units the passes recorded, with their sends: on PostgreSQL as a person with
/// psql reads them (`insights` reads only SQLite so far).
fn units_used(serve: &Serve, url: Option<&str>) -> Vec<(String, u64)> {
    match url {
        Some(url) => {
            let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
            let rows = client
                .query("SELECT unit, sends FROM steprule_unit_uses", &[])
                .unwrap();
            (rows.iter())
                .map(|row| (row.get(0), u64::try_from(row.get::<_, i64>(1)).unwrap()))
                .collect()
        }
        None => {
            let today = chrono::Utc::now().date_naive();
            let halves = serve
                .sqlite_ledger()
                .unit_halves(today - chrono::Duration::days(40), today)
                .unwrap();
            halves.into_iter().map(|h| (h.unit, h.sends)).collect()
        }
    }
}
