//! The sends that still matter at a pass's `now` (see [`Ledger::recent_sends`]), readable on a
//! connection of their own: a rerun's start was serial until its sent history was in (~700 M
//! instructions at a million patients), though only the first evaluation needs it.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OpenFlags};

use super::{instant, stamp, Ledger, LedgerError, RecentSend, SinkKind};

/// Sent rows that still matter: not expired, or sent within the cap's reach. A send goes out
/// before it expires, so a row sent since `?3` also expires after `?3`: one range on
/// `sends_live` holds both kinds, and the rest is filtered on the way.
pub(super) const RECENT_SENDS: &str =
    "SELECT patient, step, occurrence, sent_at FROM sends INDEXED BY sends_live
     WHERE sink = ?1 AND status = 'sent' AND expires_at > ?3
       AND (expires_at > ?2 OR sent_at >= ?3)";

/// [`Ledger::recent_sends`] on `conn`.
pub(super) fn read_recent(
    conn: &Connection,
    sink: SinkKind,
    now: DateTime<Utc>,
    each: &mut dyn FnMut(RecentSend<'_>),
) -> rusqlite::Result<()> {
    let since = now - chrono::Duration::days(8);
    let mut statement = conn.prepare_cached(RECENT_SENDS)?;
    let mut rows = statement.query(params![sink.as_str(), stamp(now), stamp(since)])?;
    while let Some(row) = rows.next()? {
        let (patient, step) = (row.get_ref(0)?.as_str()?, row.get_ref(1)?.as_str()?);
        let occurrence = instant(row.get_ref(2)?.as_bytes()?, 2, "occurrence")?;
        // steprule writes none without it, but the column allows it: such a row is left out,
        // as it always was (its claim still finds it sent).
        let Some(sent_at) = row.get_ref(3)?.as_bytes_or_null()? else {
            continue;
        };
        each(RecentSend {
            patient,
            step,
            occurrence,
            sent_at: instant(sent_at, 3, "sent_at")?,
        });
    }
    Ok(())
}

/// A read-only connection to a ledger for [`SendsReader::recent_sends`], to be moved to a
/// thread of its own.
#[derive(Debug)]
pub struct SendsReader {
    conn: Connection,
    path: std::path::PathBuf,
}

impl Ledger {
    /// A reader of [`Ledger::recent_sends`] on a read-only connection of its own, which sees
    /// the last commit: the sends as they are now, as long as this connection writes none
    /// before the reader is done (a pass's first batch waits for its history). `None` inside
    /// a transaction (another connection would not see it) or when no connection could be
    /// opened (the caller reads on this one, as before).
    pub fn sends_reader(&self) -> Option<SendsReader> {
        if self.in_batch {
            return None;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        super::configure_sqlite();
        let conn = Connection::open_with_flags(&self.file.path, flags).ok()?;
        // As the writer waits: a checkpoint's brief lock must not fail the pass.
        conn.busy_timeout(std::time::Duration::from_secs(10)).ok()?;
        Some(SendsReader {
            conn,
            path: self.file.path.clone(),
        })
    }
}

impl SendsReader {
    /// [`Ledger::recent_sends`]; its errors name the ledger as the writer's do.
    pub fn recent_sends(
        &self,
        sink: SinkKind,
        now: DateTime<Utc>,
        each: &mut dyn FnMut(RecentSend<'_>),
    ) -> Result<(), LedgerError> {
        read_recent(&self.conn, sink, now, each)
            .map_err(|e| LedgerError::from_sqlite(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ledger::tests::{at, record_sent};

    fn patients(read: impl FnOnce(&mut dyn FnMut(RecentSend<'_>))) -> Vec<String> {
        let mut seen = Vec::new();
        read(&mut |send| seen.push(send.patient.to_owned()));
        seen.sort();
        seen
    }

    #[test]
    fn the_reader_reads_what_the_ledger_reads_as_last_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        record_sent(&mut ledger, "P1", "first");
        record_sent(&mut ledger, "P2", "first");
        let reader = ledger.sends_reader().unwrap();
        let now = at("2026-11-25T10:00:00Z");
        let here = patients(|each| ledger.recent_sends(SinkKind::Outbox, now, each).unwrap());
        let beside = std::thread::spawn(move || {
            patients(|each| reader.recent_sends(SinkKind::Outbox, now, each).unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(here, ["P1", "P2"]);
        assert_eq!(beside, here);
    }

    #[test]
    fn inside_a_transaction_the_read_is_left_to_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        ledger.begin().unwrap();
        assert!(ledger.sends_reader().is_none());
        ledger.commit().unwrap();
        assert!(ledger.sends_reader().is_some());
    }

    #[test]
    fn an_unreadable_sent_instant_is_the_same_error_beside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let mut ledger = Ledger::open(&path).unwrap();
        record_sent(&mut ledger, "P1", "first");
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch("UPDATE sends SET sent_at = 'yesterday'")
            .unwrap();
        let now = at("2026-11-25T10:00:00Z");
        let here = ledger.recent_sends(SinkKind::Outbox, now, |_| {});
        let reader = ledger.sends_reader().unwrap();
        let beside = reader.recent_sends(SinkKind::Outbox, now, &mut |_| {});
        let (here, beside) = (here.unwrap_err(), beside.unwrap_err());
        assert!(
            matches!(beside, LedgerError::UnreadableInstant { .. }),
            "{beside}"
        );
        assert_eq!(beside.to_string(), here.to_string());
    }
}
