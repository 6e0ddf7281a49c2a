//! Claiming a batch answers and writes as claiming each send.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::ledger::tests::{at, outbox_key as key};
use crate::ledger::Settlement;

fn details(from: u64) -> SendDetails<'static> {
    SendDetails {
        template: "thanks",
        variant: Some("b"),
        due_at: at("2026-11-21T01:00:00Z"),
        expires_at: at("2026-11-28T01:00:00Z"),
        outbox_from: Some(from),
    }
}

/// A ledger holding P0 pending, P1 held, P2 blocked, P3 sent and P4 failed, the same each
/// time it is made.
fn ledger_with_history(dir: &std::path::Path) -> Ledger {
    let mut ledger = Ledger::open(&dir.join("ledger.db")).unwrap();
    let earlier = at("2026-11-21T01:00:00Z");
    let settlements = [
        None,
        Some(Settlement::Held("no name".into())),
        Some(Settlement::Blocked),
        Some(Settlement::Sent {
            request_id: None,
            note: None,
        }),
        Some(Settlement::Failed("400".into())),
    ];
    for (i, settlement) in settlements.iter().enumerate() {
        let patient = format!("P{i}");
        let claim = ledger.claim(&key(&patient), &details(7), earlier).unwrap();
        let Claim::New { retry_key } = claim else {
            panic!("{claim:?}")
        };
        if let Some(settlement) = settlement {
            ledger
                .settle(&key(&patient), &retry_key, 1, settlement, earlier)
                .unwrap();
        }
    }
    ledger
}

/// A row's instants, outbox position and problem, which `LedgerRow` leaves out.
fn instants(ledger: &Ledger, patient: &str) -> Vec<Option<String>> {
    let sql = "SELECT due_at, expires_at, created_at, updated_at, sent_at, outbox_from,
                      problem, problem_at FROM sends WHERE patient = ?1";
    let row = |row: &rusqlite::Row<'_>| {
        (0..8)
            .map(|i| row.get::<_, rusqlite::types::Value>(i))
            .map(|v| v.map(|v| Some(format!("{v:?}"))))
            .collect::<rusqlite::Result<Vec<_>>>()
    };
    ledger.conn.query_row(sql, [patient], row).unwrap()
}

/// What a claim says, without its retry key (random: each ledger made its own).
fn shape(claim: &Claim) -> String {
    match claim {
        Claim::New { .. } => "new".into(),
        Claim::Resume { attempts, .. } => format!("resume after {attempts}"),
        other => format!("{other:?}"),
    }
}

fn key_of(claim: &Claim) -> Option<&str> {
    match claim {
        Claim::New { retry_key } | Claim::Resume { retry_key, .. } => Some(retry_key),
        _ => None,
    }
}

#[test]
fn claiming_a_batch_answers_and_writes_as_claiming_each_send() {
    // Every state, a key twice, and more new sends than one statement takes.
    let mut patients: Vec<String> = (0..5).map(|i| format!("P{i}")).collect();
    patients.push("P1".into());
    patients.extend((100..400).map(|i| format!("P{i}")));
    patients.push("P150".into());
    let sends: Vec<(SendKey<'_>, SendDetails<'_>)> = (patients.iter().enumerate())
        .map(|(i, patient)| (key(patient), details(1000 + i as u64)))
        .collect();
    let now = at("2026-11-25T09:00:00Z");
    let (one_dir, all_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut one_by_one = ledger_with_history(one_dir.path());
    let mut together = ledger_with_history(all_dir.path());
    one_by_one.begin().unwrap();
    let each: Vec<Claim> = (sends.iter())
        .map(|(key, details)| one_by_one.claim(key, details, now).unwrap())
        .collect();
    one_by_one.commit().unwrap();
    together.begin().unwrap();
    let all = together.claim_all(&sends, now).unwrap();
    together.commit().unwrap();
    assert_eq!(
        each.iter().map(shape).collect::<Vec<_>>(),
        all.iter().map(shape).collect::<Vec<_>>()
    );
    assert!(matches!(all[1], Claim::Resume { attempts: 1, .. }));
    assert!(matches!(all[3], Claim::Done(SendStatus::Sent)));
    // The second claim of a new key resumes the first's.
    let (
        Claim::New { retry_key: first },
        Claim::Resume {
            retry_key,
            attempts,
        },
    ) = (&all[56], &all[306])
    else {
        panic!("{:?} {:?}", all[56], all[306])
    };
    assert_eq!((first, *attempts), (retry_key, 0));
    // The rows are the same but for their retry keys, each the one its claim answered.
    for (i, (key, _)) in sends.iter().enumerate() {
        let (mut a, mut b) = (
            one_by_one.row(key).unwrap().unwrap(),
            together.row(key).unwrap().unwrap(),
        );
        if let (Some(a_key), Some(b_key)) = (key_of(&each[i]), key_of(&all[i])) {
            assert_eq!((a.retry_key.as_str(), b.retry_key.as_str()), (a_key, b_key));
        }
        a.retry_key.clear();
        b.retry_key.clear();
        assert_eq!(a, b, "{}", key.patient);
        assert_eq!(
            instants(&one_by_one, key.patient),
            instants(&together, key.patient)
        );
    }
}

#[test]
fn without_a_transaction_each_send_is_claimed_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = ledger_with_history(dir.path());
    let sends = [(key("P3"), details(1)), (key("P9"), details(1))];
    let answers = ledger
        .claim_all(&sends, at("2026-11-25T09:00:00Z"))
        .unwrap();
    assert_eq!(answers[0], Claim::Done(SendStatus::Sent));
    let Claim::New { retry_key } = &answers[1] else {
        panic!("{:?}", answers[1])
    };
    assert_eq!(
        &ledger.row(&key("P9")).unwrap().unwrap().retry_key,
        retry_key
    );
}
