//! Two workers on one PostgreSQL ledger, in one process: who may claim what, leases, and
//! settlements that never undo another worker's. Skipped (with a notice) without PostgreSQL,
//! unless `STEPRULE_REQUIRE_POSTGRES=1`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::pg;
use super::PgLedger;
use crate::ledger::{
    Claim, RunLedger, SendDetails, SendKey, SendStatus, ServeLedger, Settlement, SinkKind,
};

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

fn details() -> SendDetails<'static> {
    SendDetails {
        template: "thanks",
        variant: None,
        due_at: at("2026-11-25T01:00:00Z"),
        expires_at: at("2026-11-26T01:00:00Z"),
        outbox_from: None,
    }
}

fn sent() -> Settlement {
    Settlement::Sent {
        request_id: Some("req-1".into()),
        note: None,
    }
}

const NOW: &str = "2026-11-25T02:00:00Z";

/// A worker of its own (one process is one worker; these tests play several).
fn worker(url: &str, clinic: &str, lease_seconds: u64) -> PgLedger {
    let name = format!("test-worker-{}", uuid::Uuid::new_v4().simple());
    PgLedger::open_as(url, clinic, Duration::from_secs(lease_seconds), name).unwrap()
}

#[test]
fn a_send_is_claimed_by_one_worker_and_resumed_by_another_only_after_its_lease() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("claims");
    let now = at(NOW);
    let mut first = worker(&url, "clinic-a", 1);
    let mut second = worker(&url, "clinic-a", 60);
    assert_ne!(first.worker(), second.worker());

    let Claim::New { retry_key } = first.claim(&key("P1"), &details(), now).unwrap() else {
        panic!("the first claim is new")
    };
    assert_eq!(
        second.claim(&key("P1"), &details(), now).unwrap(),
        Claim::Taken,
        "under the first worker's lease"
    );
    // The first worker dies; after its lease the second takes the send over, same retry key.
    drop(first);
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(
        second.claim(&key("P1"), &details(), now).unwrap(),
        Claim::Resume {
            retry_key: retry_key.clone(),
            attempts: 0
        }
    );
    second
        .settle(&key("P1"), &retry_key, 1, &sent(), now)
        .unwrap();
    assert_eq!(
        second.claim(&key("P1"), &details(), now).unwrap(),
        Claim::Done(SendStatus::Sent)
    );
    assert_eq!(second.status_counts().unwrap(), vec![(SendStatus::Sent, 1)]);
}

#[test]
fn a_late_settlement_never_undoes_another_workers() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("late");
    let now = at(NOW);
    let mut slow = worker(&url, "clinic-a", 1);
    let mut other = worker(&url, "clinic-a", 60);
    let Claim::New { retry_key } = slow.claim(&key("P1"), &details(), now).unwrap() else {
        panic!("new")
    };
    std::thread::sleep(Duration::from_millis(1_100));
    let Claim::Resume { .. } = other.claim(&key("P1"), &details(), now).unwrap() else {
        panic!("taken over after the lease")
    };
    other
        .settle(&key("P1"), &retry_key, 1, &sent(), now)
        .unwrap();
    // The slow worker's own answer comes late: a retry to do later. The row stays sent.
    let later = Settlement::RetryLater("LINE answered 500".into());
    slow.settle(&key("P1"), &retry_key, 1, &later, now).unwrap();
    assert_eq!(other.status_counts().unwrap(), vec![(SendStatus::Sent, 1)]);
}

#[test]
fn an_open_send_another_transaction_holds_is_skipped_not_waited_for() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("skip");
    let now = at(NOW);
    let mut first = worker(&url, "clinic-a", 60);
    let mut second = worker(&url, "clinic-a", 60);
    let Claim::New { retry_key } = first.claim(&key("P1"), &details(), now).unwrap() else {
        panic!("new")
    };
    // Left pending and free (its lease cleared), as after LINE's 500s.
    let later = Settlement::RetryLater("LINE answered 500".into());
    first
        .settle(&key("P1"), &retry_key, 1, &later, now)
        .unwrap();
    // Another transaction has it locked, as a worker taking it over does before its update.
    let mut holder = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut holding = holder.transaction().unwrap();
    holding
        .execute(
            "SELECT 1 FROM steprule_sends WHERE patient = 'P1' FOR UPDATE",
            &[],
        )
        .unwrap();
    assert_eq!(
        second.claim(&key("P1"), &details(), now).unwrap(),
        Claim::Taken,
        "skipped at once"
    );
    holding.rollback().unwrap();
    assert_eq!(
        second.claim(&key("P1"), &details(), now).unwrap(),
        Claim::Resume {
            retry_key,
            attempts: 1
        },
        "free again: taken over"
    );
}

#[test]
fn clinics_in_one_database_are_apart() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("clinics");
    let now = at(NOW);
    let mut a = worker(&url, "clinic-a", 60);
    let mut b = worker(&url, "clinic-b", 60);
    let Claim::New { retry_key } = a.claim(&key("P1"), &details(), now).unwrap() else {
        panic!("new")
    };
    a.settle(&key("P1"), &retry_key, 1, &sent(), now).unwrap();
    // The same patient id and step in another clinic is another send.
    assert!(matches!(
        b.claim(&key("P1"), &details(), now).unwrap(),
        Claim::New { .. }
    ));
    let mut seen = Vec::new();
    a.recent_sends(SinkKind::Line, now, &mut |send| {
        seen.push(send.patient.to_owned())
    })
    .unwrap();
    assert_eq!(seen, ["P1"]);
    let mut seen = 0;
    b.recent_sends(SinkKind::Line, now, &mut |_| seen += 1)
        .unwrap();
    assert_eq!(seen, 0, "clinic-b has sent nothing");
    assert!(a.has_sent(SinkKind::Line).unwrap());
    assert!(!b.has_sent(SinkKind::Line).unwrap());
}

#[test]
fn the_passes_of_one_process_are_one_worker() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("passes");
    let now = at(NOW);
    let lease = Duration::from_secs(60);
    // A pass stopped by a signal leaves a claimed send pending under its lease.
    let mut pass = PgLedger::open(&url, "clinic-a", lease).unwrap();
    let Claim::New { retry_key } = pass.claim(&key("P1"), &details(), now).unwrap() else {
        panic!("new")
    };
    drop(pass);
    // `run --every`'s next pass is the same worker: the send is its own to resume.
    let mut next = PgLedger::open(&url, "clinic-a", lease).unwrap();
    assert_eq!(
        next.claim(&key("P1"), &details(), now).unwrap(),
        Claim::Resume {
            retry_key,
            attempts: 0
        }
    );
}

#[test]
fn open_sends_past_their_time_expire_unless_a_live_lease_holds_them() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("expire");
    let now = at(NOW);
    let mut ledger = worker(&url, "clinic-a", 60);
    let Claim::New { retry_key } = ledger.claim(&key("P1"), &details(), now).unwrap() else {
        panic!("new")
    };
    let later = Settlement::RetryLater("LINE answered 500".into());
    ledger
        .settle(&key("P1"), &retry_key, 1, &later, now)
        .unwrap();
    // P2 is claimed and on its way: its lease is live.
    let Claim::New { .. } = ledger.claim(&key("P2"), &details(), now).unwrap() else {
        panic!("new")
    };
    let after_expiry = at("2026-11-26T02:00:00Z");
    assert_eq!(ledger.expire_open(SinkKind::Line, after_expiry).unwrap(), 1);
    assert_eq!(
        ledger.status_counts().unwrap(),
        vec![(SendStatus::Pending, 1), (SendStatus::Expired, 1)]
    );
    assert_eq!(
        worker(&url, "clinic-b", 60)
            .expire_open(SinkKind::Line, after_expiry)
            .unwrap(),
        0,
        "another clinic's rows are not touched"
    );
}

/// patient, status, attempts, LINE's request id, problem, lease cleared.
type SettledRow = (String, String, i64, Option<String>, Option<String>, bool);

#[test]
fn settlements_in_a_batch_are_written_at_its_commit_and_seen_by_a_claim_before_it() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("settle_batch");
    let now = at(NOW);
    let mut ledger = worker(&url, "clinic-a", 60);
    let mut keys = Vec::new();
    ledger.begin().unwrap();
    for patient in ["P1", "P2", "P3"] {
        let Claim::New { retry_key } = ledger.claim(&key(patient), &details(), now).unwrap() else {
            panic!("new")
        };
        keys.push(retry_key);
    }
    ledger.commit().unwrap();
    ledger.begin().unwrap();
    ledger
        .settle(&key("P1"), &keys[0], 1, &sent(), now)
        .unwrap();
    let failed = Settlement::Failed("LINE answered 400".into());
    ledger
        .settle(&key("P2"), &keys[1], 2, &failed, now)
        .unwrap();
    // Claimed again in the same batch: the settlement above is what the claim finds.
    assert_eq!(
        ledger.claim(&key("P1"), &details(), now).unwrap(),
        Claim::Done(SendStatus::Sent)
    );
    let held = Settlement::Held("template failed".into());
    ledger.settle(&key("P3"), &keys[2], 0, &held, now).unwrap();
    ledger.commit().unwrap();

    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let rows: Vec<SettledRow> = client
        .query(
            "SELECT patient, status, attempts, line_request_id, problem, claimed_by IS NULL
             FROM steprule_sends ORDER BY patient",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    let row = |p: &str, s: &str, n: i64, id: Option<&str>, problem: Option<&str>| {
        (
            p.into(),
            s.into(),
            n,
            id.map(Into::into),
            problem.map(Into::into),
            true,
        )
    };
    assert_eq!(
        rows,
        [
            row("P1", "sent", 1, Some("req-1"), None),
            row("P2", "failed", 2, None, Some("failed")),
            row("P3", "held", 0, None, Some("held")),
        ]
    );
}

#[test]
fn marks_are_written_after_their_batch_commits_read_back_before_and_the_last_of_a_patient_kept() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("marks_batch");
    let mut ledger = worker(&url, "clinic-a", 60);
    let mark = |seen: u8| crate::ledger::MarkRow {
        fields: 7,
        seen: vec![seen],
    };
    ledger.begin().unwrap();
    ledger.set_marks("P1", 11, &mark(1)).unwrap();
    ledger.set_marks("P2", 22, &mark(2)).unwrap();
    // Read back within the batch: what this worker wrote, not what the table held before.
    assert_eq!(ledger.mark_row("P1").unwrap(), Some(mark(1)));
    ledger.set_marks("P2", 23, &mark(3)).unwrap();
    ledger.set_marks("P2", 24, &mark(4)).unwrap();
    // Written after the batch commits, outside its transaction.
    assert_eq!(worker(&url, "clinic-a", 60).mark_row("P1").unwrap(), None);
    ledger.commit().unwrap();

    let other = worker(&url, "clinic-a", 60);
    assert_eq!(other.mark_row("P2").unwrap(), Some(mark(4)));
    let prints = other.mark_prints().unwrap();
    assert_eq!(prints.get(crate::ledger::patient_hash("P1")), Some(11));
    assert_eq!(prints.get(crate::ledger::patient_hash("P2")), Some(24));
    assert_eq!(worker(&url, "clinic-b", 60).mark_row("P1").unwrap(), None);
}

#[test]
fn a_batch_of_many_marks_commits_early_so_that_memory_stays_bounded() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("marks_early");
    let mut ledger = worker(&url, "clinic-a", 60);
    let mark = crate::ledger::MarkRow {
        fields: 1,
        seen: vec![0],
    };
    ledger.begin().unwrap();
    for n in 0..4_100 {
        ledger.set_marks(&format!("P{n}"), 1, &mark).unwrap();
    }
    // The first 4,096 were committed and written when the batch filled; the rest wait.
    let other = worker(&url, "clinic-a", 60);
    assert_eq!(other.mark_row("P4095").unwrap(), Some(mark.clone()));
    assert_eq!(other.mark_row("P4096").unwrap(), None);
    ledger.commit().unwrap();
    assert_eq!(other.mark_row("P4099").unwrap(), Some(mark));
}

#[test]
fn a_rolled_back_batch_writes_none_of_its_settlements_or_marks() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("rollback_batch");
    let now = at(NOW);
    let mut ledger = worker(&url, "clinic-a", 60);
    ledger.begin().unwrap();
    let Claim::New { retry_key } = ledger.claim(&key("P1"), &details(), now).unwrap() else {
        panic!("new")
    };
    ledger.commit().unwrap();
    ledger.begin().unwrap();
    ledger
        .settle(&key("P1"), &retry_key, 1, &sent(), now)
        .unwrap();
    let mark = crate::ledger::MarkRow {
        fields: 1,
        seen: vec![1],
    };
    ledger.set_marks("P1", 1, &mark).unwrap();
    ledger.rollback().unwrap();
    ledger.begin().unwrap();
    ledger.commit().unwrap();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let status: String = client
        .query_one("SELECT status FROM steprule_sends", &[])
        .unwrap()
        .get(0);
    assert_eq!(status, "pending");
    assert_eq!(ledger.mark_row("P1").unwrap(), None);
}
