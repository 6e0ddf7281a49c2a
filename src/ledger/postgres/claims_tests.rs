//! A batch's claims in one statement answer as claiming each send in turn does, on a ledger
//! holding every state a row can be in, another worker's live lease and a dead worker's.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::pg;
use super::PgLedger;
use crate::ledger::{Claim, RunLedger, SendDetails, SendKey, SendStatus, Settlement, SinkKind};

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn key(patient: &str) -> SendKey<'_> {
    SendKey {
        sink: SinkKind::Line,
        patient,
        step: "thanks",
        occurrence: at("2026-11-25T01:00:00Z"),
    }
}

fn details(from: u64) -> SendDetails<'static> {
    SendDetails {
        template: "thanks",
        variant: Some("b"),
        due_at: at("2026-11-25T01:00:00Z"),
        expires_at: at("2026-11-26T01:00:00Z"),
        outbox_from: Some(from),
    }
}

fn worker(url: &str, lease_seconds: u64) -> PgLedger {
    let name = format!("test-worker-{}", uuid::Uuid::new_v4().simple());
    PgLedger::open_as(url, "clinic-a", Duration::from_secs(lease_seconds), name).unwrap()
}

/// P0 pending under a live lease of another worker, P1 held, P2 blocked, P3 sent, P4 failed,
/// P5 pending under a worker's lease that runs out after a second (the worker died).
fn history(url: &str) {
    let earlier = at("2026-11-25T01:30:00Z");
    let mut alive = worker(url, 600);
    let mut settling = worker(url, 600);
    let mut dead = worker(url, 1);
    let claim = |ledger: &mut PgLedger, patient: &str| match ledger
        .claim(&key(patient), &details(7), earlier)
        .unwrap()
    {
        Claim::New { retry_key } => retry_key,
        other => panic!("{other:?}"),
    };
    claim(&mut alive, "P0");
    let settlements = [
        ("P1", Settlement::Held("no name".into())),
        ("P2", Settlement::Blocked),
        (
            "P3",
            Settlement::Sent {
                request_id: None,
                note: None,
            },
        ),
        ("P4", Settlement::Failed("400".into())),
    ];
    for (patient, settlement) in settlements {
        let retry_key = claim(&mut settling, patient);
        (settling.settle(&key(patient), &retry_key, 1, &settlement, earlier)).unwrap();
    }
    claim(&mut dead, "P5");
    drop(alive);
}

fn shape(claim: &Claim) -> String {
    match claim {
        Claim::New { .. } => "new".into(),
        // Retry keys are random: each ledger made its own.
        Claim::Resume { attempts, .. } => format!("resume after {attempts}"),
        other => format!("{other:?}"),
    }
}

fn rows(url: &str) -> Vec<(String, String, i64, bool, Option<i64>)> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    (client.query(
        "SELECT patient, status, attempts, claimed_by IS NOT NULL, outbox_from
         FROM steprule_sends ORDER BY patient",
        &[],
    ))
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    .collect()
}

#[test]
fn claiming_a_batch_answers_and_writes_as_claiming_each_send() {
    let Some(server) = pg::server() else { return };
    let (one_url, all_url) = (
        server.fresh_database("claim_each"),
        server.fresh_database("claim_all"),
    );
    history(&one_url);
    history(&all_url);
    std::thread::sleep(Duration::from_millis(1_100));
    // Every state, a key twice (its chunk goes one by one), and more than one statement's worth.
    let mut patients: Vec<String> = (0..6).map(|i| format!("P{i}")).collect();
    patients.extend((100..700).map(|i| format!("P{i}")));
    patients.push("P650".into());
    let sends: Vec<(SendKey<'_>, SendDetails<'_>)> = (patients.iter().enumerate())
        .map(|(i, patient)| (key(patient), details(1000 + i as u64)))
        .collect();
    let now = at("2026-11-25T02:00:00Z");

    let mut one_by_one = worker(&one_url, 600);
    one_by_one.begin().unwrap();
    let each: Vec<Claim> = (sends.iter())
        .map(|(key, details)| one_by_one.claim(key, details, now).unwrap())
        .collect();
    one_by_one.commit().unwrap();
    let mut together = worker(&all_url, 600);
    together.begin().unwrap();
    let all = together.claim_all(&sends, now).unwrap();
    together.commit().unwrap();

    assert_eq!(
        each.iter().map(shape).collect::<Vec<_>>(),
        all.iter().map(shape).collect::<Vec<_>>()
    );
    assert_eq!(all[0], Claim::Taken, "another worker's live lease");
    assert!(matches!(all[1], Claim::Resume { attempts: 1, .. }));
    assert!(matches!(all[2], Claim::Resume { attempts: 1, .. }));
    assert_eq!(all[3], Claim::Done(SendStatus::Sent));
    assert_eq!(all[4], Claim::Done(SendStatus::Failed));
    assert!(
        matches!(all[5], Claim::Resume { attempts: 0, .. }),
        "{:?}",
        all[5]
    );
    assert!(matches!(all[6], Claim::New { .. }));
    let (
        Claim::New { retry_key: first },
        Claim::Resume {
            retry_key: again, ..
        },
    ) = (&all[556], all.last().unwrap())
    else {
        panic!("{:?} {:?}", all[556], all.last())
    };
    assert_eq!(
        first, again,
        "the second claim of a key resumes the first's"
    );
    assert_eq!(rows(&one_url), rows(&all_url));
    assert_eq!(rows(&all_url).len(), 606);
}
