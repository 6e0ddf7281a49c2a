//! `plan`, `explain`, `preview` and `insights fetch` with `--ledger postgres://…`: the same
//! history (a link and a block as `serve` stores them, then a `run` to the outbox) on an SQLite
//! file and on PostgreSQL gives the same plan and preview; explain says a send went out;
//! another clinic's links, blocks and sends in the same database change nothing; the URL's
//! password is never shown. Each test gets a fresh database on the throwaway cluster of
//! tests/support/postgres.rs (skipped with a notice without PostgreSQL, unless
//! `STEPRULE_REQUIRE_POSTGRES=1`).

use std::path::Path;

use chrono::{DateTime, Utc};
use steprule::ledger::postgres::{PgLedger, DEFAULT_LEASE};
use steprule::ledger::{
    Claim, FriendChange, Ledger, RunLedger, SendDetails, SendKey, ServeLedger, Settlement, SinkKind,
};

use crate::common::{fixtures, steprule, steprule_with_env, Run};
use crate::pg;

/// The clinic tests/fixtures/plan/clinic.step names.
const CLINIC: &str = "テスト内科";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// O2 (no LINE id in the export) linked LINE and O3's LINE user blocked the account, as
/// `serve` records them.
fn link_and_block(ledger: &mut dyn ServeLedger) {
    ledger
        .link("Ulinked-o2", "O2", at("2026-11-19T01:00:00Z"))
        .unwrap();
    ledger
        .set_friend("Uo3", FriendChange::Blocked, at("2026-11-19T03:00:00Z"))
        .unwrap();
}

/// Another clinic's rows that would change the plan if they were read: a block of O2's linked
/// user, another link of O3, and a delivered `followup` of O3.
fn other_clinic(url: &str) {
    let mut other = PgLedger::open(url, "別の医院", DEFAULT_LEASE).unwrap();
    let when = at("2026-11-19T05:00:00Z");
    other
        .set_friend("Ulinked-o2", FriendChange::Blocked, when)
        .unwrap();
    other.link("Uother", "O3", when).unwrap();
    let key = SendKey {
        sink: SinkKind::Outbox,
        patient: "O3",
        step: "followup",
        occurrence: at("2026-11-27T01:00:00Z"),
    };
    let details = SendDetails {
        template: "hello",
        variant: None,
        due_at: key.occurrence,
        expires_at: key.occurrence + chrono::Duration::days(1),
        outbox_from: None,
    };
    let Claim::New { retry_key } = other.claim(&key, &details, when).unwrap() else {
        panic!("a new claim")
    };
    let sent = Settlement::Sent {
        request_id: None,
        note: None,
    };
    other.settle(&key, &retry_key, 1, &sent, when).unwrap();
}

/// `steprule COMMAND clinic.step --patients opted_out.csv --now NOW --ledger LEDGER ARGS`, in
/// `dir`.
fn on(dir: &Path, command: &str, ledger: &str, now: &str, args: &[&str]) -> Run {
    let fixture = fixtures().join("plan");
    let rules = fixture.join("clinic.step");
    let patients = fixture.join("opted_out.csv");
    let base = [
        command,
        rules.to_str().unwrap(),
        "--patients",
        patients.to_str().unwrap(),
        "--now",
        now,
        "--ledger",
        ledger,
    ];
    steprule(dir, &[&base[..], args].concat())
}

fn assert_no_password(run: &Run) {
    for output in [&run.stdout, &run.stderr] {
        assert!(
            !output.contains(pg::PASSWORD),
            "the password leaked:\n{output}"
        );
    }
}

/// The history on `ledger`: the link and the block, then `run` on 2026-11-21 10:00 (`thanks`
/// due for O2 and O3) to the outbox.
fn history(dir: &Path, ledger: &str, serve: &mut dyn ServeLedger) {
    link_and_block(serve);
    let outbox = dir.join("outbox.jsonl");
    let run = on(
        dir,
        "run",
        ledger,
        "2026-11-21 10:00",
        &["--outbox", outbox.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_no_password(&run);
}

#[test]
fn plan_explain_and_preview_read_a_postgres_run_as_they_read_the_file() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("plan_reads");
    let (file_dir, pg_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = file_dir.path().join("ledger.db");
    history(
        file_dir.path(),
        file.to_str().unwrap(),
        &mut Ledger::open(&file).unwrap(),
    );
    history(
        pg_dir.path(),
        &url,
        &mut PgLedger::open(&url, CLINIC, DEFAULT_LEASE).unwrap(),
    );
    other_clinic(&url);

    let now = "2026-11-20 10:00";
    for args in [
        &["--days", "8", "--format", "json"][..],
        &["--days", "8"],
        &["--days", "8", "--format", "csv"],
    ] {
        let from_file = on(file_dir.path(), "plan", file.to_str().unwrap(), now, args);
        let from_pg = on(pg_dir.path(), "plan", &url, now, args);
        assert_eq!(from_file.code, 0, "{}", from_file.stderr);
        assert_eq!(from_pg.code, 0, "{}", from_pg.stderr);
        assert_eq!(from_pg.stdout, from_file.stdout, "{args:?}");
        assert_eq!(from_pg.stderr, from_file.stderr, "{args:?}");
        assert_no_password(&from_pg);
    }
    // What the PostgreSQL run did, as the plan marks it: O2's thanks went out to its link, O3's
    // was not pushed (blocked), and O3's followup is still to come (the other clinic's
    // delivery of it is not this clinic's).
    let plan = on(
        pg_dir.path(),
        "plan",
        &url,
        now,
        &["--days", "8", "--format", "json"],
    );
    let rows: Vec<String> = plan
        .stdout
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            format!(
                "{} {} {} {}",
                row["patient"], row["step"], row["recipient"], row["ledger"]
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            r#""O2" "thanks" "linked" "sent""#,
            r#""O3" "thanks" "blocked" "blocked""#,
            r#""O2" "followup" "linked" null"#,
            r#""O3" "followup" "blocked" null"#,
        ],
        "{}",
        plan.stderr
    );

    // explain says the thanks went out, as from the file.
    let explain = on(pg_dir.path(), "explain", &url, now, &["--patient", "O2"]);
    assert_eq!(explain.code, 0, "{}", explain.stderr);
    assert!(
        explain
            .stdout
            .contains("LINE linked on 2026-11-19 (木) 10:00 (the export has no LINE id)"),
        "{}",
        explain.stdout
    );
    assert!(
        explain
            .stdout
            .contains("thanks    sent at 2026-11-21 (土) 10:00 to the outbox\n"),
        "{}",
        explain.stdout
    );
    for patient in ["O2", "O3"] {
        let args = ["--patient", patient];
        let from_file = on(
            file_dir.path(),
            "explain",
            file.to_str().unwrap(),
            now,
            &args,
        );
        let from_pg = on(pg_dir.path(), "explain", &url, now, &args);
        assert_eq!(
            (from_pg.code, &from_pg.stdout, &from_pg.stderr),
            (from_file.code, &from_file.stdout, &from_file.stderr),
            "{patient}"
        );
        assert_no_password(&from_pg);
    }

    // preview sends to the linked user and says O3 blocked the account, as from the file.
    for patient in ["O2", "O3"] {
        let args = ["--patient", patient, "--step", "followup"];
        let from_file = on(
            file_dir.path(),
            "preview",
            file.to_str().unwrap(),
            now,
            &args,
        );
        let from_pg = on(pg_dir.path(), "preview", &url, now, &args);
        assert_eq!(
            (from_pg.code, &from_pg.stdout, &from_pg.stderr),
            (from_file.code, &from_file.stdout, &from_file.stderr),
            "{patient}"
        );
        assert_no_password(&from_pg);
        let said = format!("{}{}", from_pg.stdout, from_pg.stderr);
        match patient {
            "O2" => assert_eq!(from_pg.code, 0, "{said}"),
            _ => assert!(said.contains("blocked"), "{said}"),
        }
    }
}

#[test]
fn the_ledger_url_can_come_from_the_environment_and_insights_refuses_it() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("plan_env");
    let dir = tempfile::tempdir().unwrap();
    link_and_block(&mut PgLedger::open(&url, CLINIC, DEFAULT_LEASE).unwrap());
    let fixture = fixtures().join("plan");
    let rules = fixture.join("clinic.step");
    let patients = fixture.join("opted_out.csv");
    let plan = steprule_with_env(
        dir.path(),
        &[
            "plan",
            rules.to_str().unwrap(),
            "--patients",
            patients.to_str().unwrap(),
            "--now",
            "2026-11-20 10:00",
            "--days",
            "8",
            "--format",
            "csv",
        ],
        &[("STEPRULE_LEDGER_URL", &url)],
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.stdout
            .lines()
            .any(|r| r.contains(",O3,thanks,") && r.ends_with(",blocked,")),
        "{}",
        plan.stdout
    );
    assert_no_password(&plan);

    // LINE's answers are not cached on PostgreSQL yet: refused before anything is asked.
    let insights = steprule_with_env(
        dir.path(),
        &[
            "insights",
            "fetch",
            rules.to_str().unwrap(),
            "--ledger",
            &url,
        ],
        &[("LINE_CHANNEL_ACCESS_TOKEN", "token-for-the-test")],
    );
    assert_eq!(insights.code, 2, "{}", insights.stderr);
    assert!(
        insights
            .stderr
            .contains("`insights fetch` does not write to a PostgreSQL ledger yet"),
        "{}",
        insights.stderr
    );
    assert_no_password(&insights);
}
