//! Migration 3 on PostgreSQL: LINE's cached answers and the request budget, each clinic's
//! apart, and the index a plan window's settled problem rows are read through. Skipped (with a
//! notice) without PostgreSQL, unless `STEPRULE_REQUIRE_POSTGRES=1`.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, NaiveDate, Utc};

use super::pg;
use super::reads::WINDOW_SENDS;
use super::{PgLedger, DEFAULT_LEASE};
use crate::ledger::{
    FollowerFigures, FollowerStatus, InsightClaim, InsightEndpoint, InsightLedger, ReadLedger,
    RunLedger, UnitFigures, UnitUse,
};

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn used(ledger: &mut PgLedger) {
    let used = UnitUse {
        unit: "u".into(),
        half_first: day("2026-10-01"),
        step: "thanks".into(),
        variant: Some("thanks_a".into()),
        first_day: day("2026-10-02"),
        last_day: day("2026-10-09"),
        sends: 40,
    };
    ledger.record_unit_uses(&[used]).unwrap();
}

#[test]
fn cached_answers_and_the_hourly_budget_are_each_clinics_own() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("insights_clinics");
    let mut ours = PgLedger::open(&url, "ours", DEFAULT_LEASE).unwrap();
    let mut theirs = PgLedger::open(&url, "theirs", DEFAULT_LEASE).unwrap();
    used(&mut ours);
    used(&mut theirs);
    assert_eq!(ours.first_unit_day().unwrap(), Some(day("2026-10-02")));
    let figures = UnitFigures {
        unique_impression: Some(31),
        unique_click: None,
        unique_media_played: Some(0),
        unique_media_played_100: None,
    };
    let (first, fetched) = (day("2026-10-01"), at("2026-11-01T00:00:00Z"));
    ours.store_unit_figures(
        "u",
        first,
        day("2026-10-09"),
        &UnitFigures::default(),
        fetched,
        false,
    )
    .unwrap();
    // A later answer replaces the earlier one, its withheld figures still withheld.
    ours.store_unit_figures("u", first, day("2026-10-15"), &figures, fetched, true)
        .unwrap();
    let halves = ours.used_units(first, first).unwrap();
    let cached = halves[0].cached.unwrap();
    assert_eq!(
        (
            cached.last_day,
            cached.figures,
            cached.fetched_at,
            cached.settled
        ),
        (day("2026-10-15"), figures, fetched, true)
    );
    assert_eq!(halves[0].sends, 40);
    assert_eq!(theirs.used_units(first, first).unwrap()[0].cached, None);
    let friends = FollowerFigures {
        status: FollowerStatus::Ready,
        followers: Some(120),
        targeted_reaches: Some(100),
        blocks: Some(7),
    };
    ours.store_followers(day("2026-10-31"), &friends, fetched)
        .unwrap();
    let october = (day("2026-10-01"), day("2026-10-31"));
    assert_eq!(
        ours.follower_days(october.0, october.1).unwrap(),
        [(day("2026-10-31"), friends)]
    );
    assert!(theirs
        .follower_days(october.0, october.1)
        .unwrap()
        .is_empty());

    // Two requests an hour: ours are spent, theirs are not; a subject asked for minutes ago
    // is taken until its request failed.
    let now = at("2026-11-02T00:00:00Z");
    let aggregation = InsightEndpoint::Aggregation;
    let claim = |ledger: &mut PgLedger, subject: &str| {
        ledger
            .claim_insight_request(aggregation, subject, now, 2)
            .unwrap()
    };
    let InsightClaim::Granted(first_request) = claim(&mut ours, "a") else {
        panic!("not granted")
    };
    assert_eq!(claim(&mut ours, "a"), InsightClaim::Taken);
    ours.settle_insight_request(first_request, "LINE answered 500")
        .unwrap();
    assert!(matches!(claim(&mut ours, "a"), InsightClaim::Granted(_)));
    assert_eq!(claim(&mut ours, "b"), InsightClaim::Spent);
    assert!(matches!(claim(&mut theirs, "a"), InsightClaim::Granted(_)));
    // A week on, the log is pruned (ours only).
    let week = now + chrono::Duration::days(8);
    assert_eq!(ours.prune_insight_requests(week).unwrap(), 2);
    assert_eq!(theirs.prune_insight_requests(now).unwrap(), 0);
}

#[test]
fn a_plan_window_reads_failed_expired_and_skipped_rows_through_their_index() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("window_index");
    drop(PgLedger::open(&url, "c", DEFAULT_LEASE).unwrap());
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    // A year of history that expired long before the window, and a few problem rows in it.
    client
        .batch_execute(
            "INSERT INTO steprule_sends (clinic, sink, patient, step, occurrence, template,
                 status, retry_key, due_at, expires_at, created_at, updated_at, problem)
             SELECT 'c', 'line', 'P' || n, 's', t, 's',
                    CASE WHEN n % 1000 = 0 THEN 'failed' ELSE 'sent' END, 'k' || n, t,
                    t + interval '1 day', t, t,
                    CASE WHEN n % 1000 = 0 THEN 'failed' END
             FROM generate_series(1, 40000) AS n,
                  LATERAL (SELECT timestamptz '2025-01-01' + n * interval '10 minutes') AS d(t);
             ANALYZE steprule_sends;",
        )
        .unwrap();
    let (from, to) = (at("2025-09-01T00:00:00Z"), at("2025-09-10T00:00:00Z"));
    let explain = |client: &mut postgres::Client| -> String {
        let rows = client
            .query(
                &format!("EXPLAIN {WINDOW_SENDS}"),
                &[&"c", &Some(from), &Some(to)],
            )
            .unwrap();
        rows.iter()
            .map(|row| row.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let plan = explain(&mut client);
    for index in [
        "steprule_sends_live",
        "steprule_sends_open",
        "steprule_sends_settled",
    ] {
        assert!(plan.contains(index), "{index} not used:\n{plan}");
    }
    assert!(!plan.contains("Seq Scan"), "{plan}");
    // The window's rows are the ones the plan meets: sent ones and the failed one in it.
    let ledger = PgLedger::open_to_read(&url, "c").unwrap();
    let (mut sent, mut failed) = (0i64, 0i64);
    ledger
        .window_sends(from, to, &mut |send| match send.status {
            crate::ledger::SendStatus::Sent => sent += 1,
            _ => failed += 1,
        })
        .unwrap();
    // As many as the window holds, read without the indexes (a plain filter).
    let expected = |client: &mut postgres::Client, status: &str| -> i64 {
        client
            .query_one(
                "SELECT count(*) FROM steprule_sends
                 WHERE clinic = 'c' AND expires_at > $1 AND occurrence < $2 AND status = $3",
                &[&from, &to, &status],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(sent, expected(&mut client, "sent"));
    assert_eq!(failed, expected(&mut client, "failed"));
    assert!(sent > 1000 && failed > 0, "{sent} {failed}");
}
