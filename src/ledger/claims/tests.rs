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

/// `sends` claimed in `one_by_one` a send at a time and in `together` as one batch, each in a
/// transaction of its own: the two answers.
fn claim_both(
    one_by_one: &mut Ledger,
    together: &mut Ledger,
    sends: &[(SendKey<'_>, SendDetails<'_>)],
    now: DateTime<Utc>,
) -> (Vec<Claim>, Vec<Claim>) {
    one_by_one.begin().unwrap();
    let each: Vec<Claim> = (sends.iter())
        .map(|(key, details)| one_by_one.claim(key, details, now).unwrap())
        .collect();
    one_by_one.commit().unwrap();
    together.begin().unwrap();
    let all = together.claim_all(sends, now).unwrap();
    together.commit().unwrap();
    (each, all)
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
    let (each, all) = claim_both(&mut one_by_one, &mut together, &sends, now);
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

/// New claims of `patients`, answered without writing their rows (as an outbox pass does),
/// with the retry keys their rows are to be written with.
fn unrecorded<'p>(
    ledger: &mut Ledger,
    patients: &'p [String],
) -> Vec<(SendKey<'p>, SendDetails<'static>, String)> {
    let sends: Vec<(SendKey<'_>, SendDetails<'_>)> = (patients.iter())
        .map(|patient| (key(patient), details(40)))
        .collect();
    let claims = (ledger.claim_unrecorded(&sends, at("2026-11-25T09:00:00Z"))).unwrap();
    (sends.into_iter().zip(claims))
        .map(|((key, details), claim)| match claim {
            Claim::New { retry_key } => (key, details, retry_key),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// The rows to record for `new`, borrowing their retry keys.
#[allow(clippy::type_complexity)]
fn rows_of<'a>(
    new: &'a [(SendKey<'a>, SendDetails<'a>, String)],
) -> Vec<(SendKey<'a>, SendDetails<'a>, &'a str)> {
    (new.iter())
        .map(|(key, details, retry_key)| (key.clone(), details.clone(), retry_key.as_str()))
        .collect()
}

#[test]
fn a_batch_whose_insert_fails_part_way_is_rolled_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = ledger_with_history(dir.path());
    let now = at("2026-11-25T09:00:00Z");
    ledger.begin().unwrap();
    // An earlier statement of the same transaction: claimed with its own INSERT.
    let earlier = [(key("P50"), details(30))];
    ledger.claim_all(&earlier, now).unwrap();
    let patients: Vec<String> = (200..216).map(|i| format!("P{i}")).collect();
    let new = unrecorded(&mut ledger, &patients);
    // A row that appears between the look-up and the insert (what the ledger's lock rules
    // out): the insert's ninth row conflicts with it, after eight rows are written.
    ledger.claim(&key("P208"), &details(40), now).unwrap();
    let batch = UnwrittenBatch {
        from: 40,
        sent_at: now,
    };
    let failed = ledger.record_claims(&rows_of(&new), Some(batch), now);
    assert!(matches!(failed, Err(LedgerError::Sql { .. })), "{failed:?}");
    // The failure is said again by the commit, which commits nothing.
    assert!(matches!(
        ledger.commit(),
        Err(LedgerError::RolledBack { .. })
    ));
    for patient in patients.iter().chain(["P50".to_owned()].iter()) {
        assert_eq!(ledger.row(&key(patient)).unwrap(), None, "{patient}");
    }
    assert_eq!(ledger.unwritten_keys().unwrap(), None, "the batch's mark");
    // The ledger goes on: the next batch claims them anew and commits.
    ledger.begin().unwrap();
    let new = unrecorded(&mut ledger, &patients);
    ledger.record_claims(&rows_of(&new), None, now).unwrap();
    ledger.commit().unwrap();
    let row = ledger.row(&key("P208")).unwrap().unwrap();
    assert_eq!(
        (row.retry_key.as_str(), row.status),
        (new[8].2.as_str(), SendStatus::Pending)
    );
}

#[test]
fn rows_recorded_outside_a_transaction_are_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = ledger_with_history(dir.path());
    let now = at("2026-11-25T09:00:00Z");
    let patients: Vec<String> = (300..304).map(|i| format!("P{i}")).collect();
    let new = unrecorded(&mut ledger, &patients);
    ledger.claim(&key("P302"), &details(40), now).unwrap();
    let failed = ledger.record_claims(&rows_of(&new), None, now);
    assert!(matches!(failed, Err(LedgerError::Sql { .. })), "{failed:?}");
    for patient in ["P300", "P301", "P303"] {
        assert_eq!(ledger.row(&key(patient)).unwrap(), None, "{patient}");
    }
    // Nothing is left failing: the next commit and claims go on.
    ledger.commit().unwrap();
    ledger
        .record_claims(&rows_of(&new[..2]), None, now)
        .unwrap();
    assert!(ledger.row(&key("P300")).unwrap().is_some());
}

#[test]
fn retry_keys_drawn_together_are_distinct_random_uuids() {
    let mut keys = RetryKeys::default();
    // Past two refills of the random bytes.
    let drawn: Vec<String> = (0..2 * RetryKeys::KEYS + 3).map(|_| keys.next()).collect();
    let unique: std::collections::HashSet<&String> = drawn.iter().collect();
    assert_eq!(unique.len(), drawn.len());
    for key in &drawn {
        let uuid = uuid::Uuid::parse_str(key).unwrap();
        assert_eq!(uuid.get_version(), Some(uuid::Version::Random), "{key}");
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{key}");
        assert_eq!(&uuid.to_string(), key, "hyphenated, lower case");
    }
}

fn sink_key(line: bool, patient: &str) -> SendKey<'_> {
    let sink = if line {
        SinkKind::Line
    } else {
        SinkKind::Outbox
    };
    SendKey {
        sink,
        ..key(patient)
    }
}

#[test]
fn a_chunk_is_looked_up_only_where_a_row_of_its_sink_lies_within_its_patients() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_with_history(dir.path());
    // The history's outbox rows are P0..P4; none is on LINE.
    let may_hold = |keys: &[(bool, &str)]| {
        let keys: Vec<KeyColumns<'_>> = (keys.iter())
            .map(|&(line, patient)| {
                let sink = if line { "line" } else { "outbox" };
                (sink, patient, "thanks", "2026-11-21T01:00:00Z")
            })
            .collect();
        ledger.may_hold_any(&keys).unwrap()
    };
    assert!(may_hold(&[(false, "P3")]));
    assert!(may_hold(&[(false, "P5"), (false, "P0")]), "P0 to P5");
    assert!(
        may_hold(&[(false, "P05"), (false, "P25")]),
        "P1 and P2 among them"
    );
    assert!(
        !may_hold(&[(false, "P15"), (false, "P10")]),
        "P1 < P10, P15 < P2"
    );
    assert!(may_hold(&[(true, "P9"), (false, "P4")]));
    assert!(!may_hold(&[(false, "P5"), (false, "P9")]));
    assert!(!may_hold(&[(false, "P40"), (false, "P41")]), "after P4");
    assert!(!may_hold(&[(false, "O"), (false, "P")]), "before P0");
    assert!(!may_hold(&[(true, "P0"), (true, "P4")]), "no LINE rows");
    assert!(!may_hold(&[]));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Over any history of both sinks, a batch claimed together answers and writes as its
    /// sends claimed one by one: chunks whose patients no row lies among skip their look-up,
    /// the others find their rows as before.
    #[test]
    fn a_batch_over_any_history_answers_as_claiming_each_send(
        history in proptest::collection::vec((proptest::bool::ANY, 0u16..600), 0..40),
        batch in proptest::collection::vec((proptest::bool::ANY, 0u16..600), 1..400),
        sorted in proptest::bool::ANY,
    ) {
        let name = |n: u16| format!("P{n:03}");
        let held: Vec<(bool, String)> = history.iter().map(|&(line, n)| (line, name(n))).collect();
        let mut claimed: Vec<(bool, String)> =
            batch.iter().map(|&(line, n)| (line, name(n))).collect();
        if sorted {
            // As a first run's export comes: most chunks lie clear of the history.
            claimed.sort();
        }
        let now = at("2026-11-25T09:00:00Z");
        let make = |dir: &std::path::Path| {
            let mut ledger = Ledger::open(&dir.join("ledger.db")).unwrap();
            for (line, patient) in &held {
                ledger.claim(&sink_key(*line, patient), &details(1), now).unwrap();
            }
            ledger
        };
        let (one_dir, all_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut one_by_one, mut together) = (make(one_dir.path()), make(all_dir.path()));
        let sends: Vec<(SendKey<'_>, SendDetails<'_>)> = (claimed.iter())
            .map(|(line, patient)| (sink_key(*line, patient), details(2)))
            .collect();
        let (each, all) = claim_both(&mut one_by_one, &mut together, &sends, now);
        proptest::prop_assert_eq!(
            each.iter().map(shape).collect::<Vec<_>>(),
            all.iter().map(shape).collect::<Vec<_>>()
        );
        for (i, (key, _)) in sends.iter().enumerate() {
            let row = together.row(key).unwrap().unwrap();
            if let Some(retry_key) = key_of(&all[i]) {
                proptest::prop_assert_eq!(row.retry_key.as_str(), retry_key);
            }
        }
    }
}
