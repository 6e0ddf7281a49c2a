//! Reading the ledger as a person with sqlite3 would, and the exactly-once check that the large
//! tests share.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::fake_line::FakeLine;
use crate::workspace::user_id;

/// One row of the ledger's `sends` table.
#[derive(Debug, Clone)]
pub struct Row {
    pub patient: String,
    pub step: String,
    pub occurrence: String,
    pub status: String,
    pub retry_key: String,
    pub attempts: i64,
    pub line_request_id: Option<String>,
    pub last_error: Option<String>,
    /// Anything unusual about how it was sent (e.g. a 409 without the accepted request id).
    pub note: Option<String>,
}

/// Every row of the `sends` table, read at one moment.
pub struct Ledger {
    pub rows: Vec<Row>,
}

/// Reads the ledger at `path` read-only, as it is now: an SQLite file, or every clinic's rows
/// of a PostgreSQL ledger when `path` is its URL (occurrences in SQLite's text form).
pub fn ledger(path: &Path) -> Ledger {
    if let Some(url) = path.to_str().filter(|p| p.starts_with("postgres://")) {
        return postgres_ledger(url);
    }
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("open the ledger {}: {e}", path.display()));
    let mut statement = conn
        .prepare(
            "SELECT patient, step, occurrence, status, retry_key, attempts, line_request_id,
                    last_error, note
             FROM sends",
        )
        .expect("the sends table");
    let rows = statement
        .query_map([], |row| {
            Ok(Row {
                patient: row.get(0)?,
                step: row.get(1)?,
                occurrence: row.get(2)?,
                status: row.get(3)?,
                retry_key: row.get(4)?,
                attempts: row.get(5)?,
                line_request_id: row.get(6)?,
                last_error: row.get(7)?,
                note: row.get(8)?,
            })
        })
        .expect("query the sends")
        .collect::<Result<Vec<_>, _>>()
        .expect("read the sends");
    Ledger { rows }
}

fn postgres_ledger(url: &str) -> Ledger {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("the ledger");
    let rows = client
        .query(
            "SELECT patient, step, occurrence, status, retry_key, attempts, line_request_id,
                    last_error, note
             FROM steprule_sends",
            &[],
        )
        .expect("query the sends")
        .iter()
        .map(|row| {
            let occurrence: chrono::DateTime<chrono::Utc> = row.get(2);
            Row {
                patient: row.get(0),
                step: row.get(1),
                occurrence: occurrence.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                status: row.get(3),
                retry_key: row.get(4),
                attempts: row.get(5),
                line_request_id: row.get(6),
                last_error: row.get(7),
                note: row.get(8),
            }
        })
        .collect();
    Ledger { rows }
}

impl Ledger {
    pub fn status_count(&self, status: &str) -> usize {
        self.rows.iter().filter(|r| r.status == status).count()
    }

    pub fn statuses(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for row in &self.rows {
            *counts.entry(row.status.clone()).or_default() += 1;
        }
        counts
    }

    pub fn row(&self, patient: &str, step: &str) -> &Row {
        let rows: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.patient == patient && r.step == step)
            .collect();
        assert_eq!(rows.len(), 1, "one row for ({patient}, {step}): {rows:?}");
        rows[0]
    }

    pub fn by_key(&self) -> HashMap<&str, &Row> {
        self.rows
            .iter()
            .map(|r| (r.retry_key.as_str(), r))
            .collect()
    }
}

/// The heart of the contract, for `n` generated patients each with one due booking_confirm:
/// LINE accepted each (patient, step) exactly once, the ledger has `n` distinct rows all `sent`,
/// and each row names the retry key LINE accepted and the id of the request that delivered it.
pub fn assert_delivered_exactly_once(fake: &FakeLine, ledger_path: &Path, n: usize) {
    assert_eq!(
        fake.protocol_errors(),
        Vec::<String>::new(),
        "requests LINE would refuse"
    );
    let counts = fake.delivery_counts();
    let twice: Vec<_> = counts.iter().filter(|(_, &c)| c > 1).take(5).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let missing: Vec<String> = (0..n)
        .map(user_id)
        .filter(|to| !counts.contains_key(&(to.clone(), "booking_confirm".to_owned())))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "never delivered (first few): {missing:?}"
    );
    assert_eq!(fake.accepted(), n, "messages LINE accepted");

    let ledger = ledger(ledger_path);
    assert_eq!(ledger.rows.len(), n, "ledger rows: {:?}", ledger.statuses());
    assert_eq!(
        ledger.status_count("sent"),
        n,
        "sent rows: {:?}",
        ledger.statuses()
    );
    let keys: HashSet<(&str, &str, &str)> = ledger
        .rows
        .iter()
        .map(|r| (r.patient.as_str(), r.step.as_str(), r.occurrence.as_str()))
        .collect();
    assert_eq!(keys.len(), n, "(patient, step, occurrence) are distinct");
    for row in &ledger.rows {
        let accepted = fake.accepted_request_id(&row.retry_key);
        assert!(
            accepted.is_some(),
            "LINE never accepted the retry key of {row:?}"
        );
        assert_eq!(
            row.line_request_id, accepted,
            "the ledger names the request that delivered {row:?}"
        );
    }
}
