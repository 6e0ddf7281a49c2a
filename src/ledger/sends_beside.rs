//! The sends that still matter at a pass's `now` (see [`Ledger::recent_sends`]), readable on a
//! connection of their own: a rerun's start was serial until its sent history was in (~700 M
//! instructions at a million patients), though only the first evaluation needs it.
//!
//! The typing threads still wait for it, so the reader beside reads with two connections at
//! once: the live range of `sends_live` cut into slices of expiry time, one connection taking
//! them from the first up and handing their rows on as it reads, the other from the last down
//! into buffers handed on after. Rows come in the index's order either way, as one read gives
//! them. At a million patients the read took 0.2 s on one core while the other waited.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::{from_unix, instant, unix, unix_or_null, Ledger, LedgerError, RecentSend, SinkKind};

/// Sent rows that still matter: not expired, or sent within the cap's reach. A send goes out
/// before it expires, so a row sent since `?3` also expires after `?3`: one range on
/// `sends_live` holds both kinds, and the rest is filtered on the way.
pub(super) const RECENT_SENDS: &str =
    "SELECT patient, step, occurrence, sent_at FROM sends INDEXED BY sends_live
     WHERE sink = ?1 AND status = 'sent' AND expires_at > ?3
       AND (expires_at > ?2 OR sent_at >= ?3)";

/// [`RECENT_SENDS`] within a slice: expiring after `?4` (at least `?3`) and by `?5`.
pub(super) const SLICE_SENDS: &str =
    "SELECT patient, step, occurrence, sent_at FROM sends INDEXED BY sends_live
     WHERE sink = ?1 AND status = 'sent' AND expires_at > ?4 AND expires_at <= ?5
       AND (expires_at > ?2 OR sent_at >= ?3)";

/// The last slice: everything expiring after `?4`, however written.
const LAST_SLICE_SENDS: &str = "SELECT patient, step, occurrence, sent_at FROM sends
     INDEXED BY sends_live
     WHERE sink = ?1 AND status = 'sent' AND expires_at > ?4
       AND (expires_at > ?2 OR sent_at >= ?3)";

/// The first and the last expiry of the range [`RECENT_SENDS`] reads, each one step of the
/// index.
const FIRST_EXPIRY: &str = "SELECT expires_at FROM sends INDEXED BY sends_live
     WHERE sink = ?1 AND status = 'sent' AND expires_at > ?2 ORDER BY expires_at LIMIT 1";
const LAST_EXPIRY: &str = "SELECT expires_at FROM sends INDEXED BY sends_live
     WHERE sink = ?1 AND status = 'sent' AND expires_at > ?2 ORDER BY expires_at DESC LIMIT 1";

/// The rows one connection reads before a second one is opened to read beside it: a
/// connection of its own (its schema read, its statements prepared) is not worth it for a
/// short history.
const HELP_AFTER: usize = 8_192;

/// Slices of equal expiry time between the range's first and last expiry. A pass's sends
/// crowd at a few expiries (a window's end), so one slice may hold half of them; more slices
/// let the other connection take the rest, whichever they are.
const SLICES: i64 = 32;

/// [`Ledger::recent_sends`] on `conn`.
pub(super) fn read_recent(
    conn: &Connection,
    sink: SinkKind,
    now: DateTime<Utc>,
    each: &mut dyn FnMut(RecentSend<'_>),
) -> rusqlite::Result<()> {
    let since = since(now);
    let mut statement = conn.prepare_cached(RECENT_SENDS)?;
    let rows = statement.query(params![sink.as_str(), unix(now), since])?;
    hand_on(rows, each)
}

/// The cap's reach: a week and a day before `now`.
fn since(now: DateTime<Utc>) -> i64 {
    unix(now - chrono::Duration::days(8))
}

fn hand_on(
    mut rows: rusqlite::Rows<'_>,
    each: &mut dyn FnMut(RecentSend<'_>),
) -> rusqlite::Result<()> {
    while let Some(row) = rows.next()? {
        let (patient, step) = (row.get_ref(0)?.as_str()?, row.get_ref(1)?.as_str()?);
        let occurrence = instant(row.get_ref(2)?.as_bytes()?, 2, "occurrence")?;
        // steprule writes none without it, but the column allows it: such a row is left out,
        // as it always was (its claim still finds it sent).
        let Some(sent_at) = unix_or_null(row.get_ref(3)?, 3, "sent_at")? else {
            continue;
        };
        each(RecentSend {
            patient,
            step,
            occurrence,
            sent_at,
        });
    }
    Ok(())
}

/// Where each slice of the range begins (exclusive): `since`, then instants of equal steps
/// between the first and the last expiry, each after the one before, which is the index's
/// order, so the slices part the range exactly whatever its rows hold. Only `since` when the
/// range is empty, one instant, or its ends are unreadable (one read then reports them as
/// before).
fn slice_starts(conn: &Connection, sink: SinkKind, since: i64) -> rusqlite::Result<Vec<i64>> {
    let mut starts = vec![since];
    let end = |sql| -> rusqlite::Result<Option<DateTime<Utc>>> {
        let seconds: Option<i64> = conn
            .prepare_cached(sql)?
            .query_row(params![sink.as_str(), since], |row| row.get(0))
            .optional()?;
        Ok(seconds.and_then(from_unix))
    };
    let (Some(first), Some(last)) = (end(FIRST_EXPIRY)?, end(LAST_EXPIRY)?) else {
        return Ok(starts);
    };
    let span = (last - first).num_seconds();
    for slice in 1..SLICES {
        // Checked: `seconds` panics past ±2⁶³ ms.
        let step = chrono::Duration::try_seconds(span.saturating_mul(slice) / SLICES);
        let Some(start) = step
            .and_then(|step| first.checked_add_signed(step))
            .map(unix)
        else {
            continue;
        };
        if starts.last().is_some_and(|before| start > *before) {
            starts.push(start);
        }
    }
    Ok(starts)
}

/// The slices not yet taken, `[low, high)`: one connection takes them from the low end, the
/// other from the high end.
struct Untaken(Mutex<(usize, usize)>);

impl Untaken {
    fn lowest(&self) -> Option<usize> {
        let mut range = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (range.0 < range.1).then(|| {
            range.0 += 1;
            range.0 - 1
        })
    }

    fn highest(&self) -> Option<usize> {
        let mut range = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (range.0 < range.1).then(|| {
            range.1 -= 1;
            range.1
        })
    }

    /// No slice is taken after this: the read failed.
    fn close(&self) {
        let mut range = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        range.1 = range.0;
    }
}

/// A slice's sends kept until the slices below it are handed on: each row's patient and step
/// end in `text`, one after another.
#[derive(Default)]
struct Buffered {
    text: String,
    rows: Vec<BufferedSend>,
}

struct BufferedSend {
    patient_end: usize,
    step_end: usize,
    occurrence: DateTime<Utc>,
    sent_at: DateTime<Utc>,
}

impl Buffered {
    fn push(&mut self, send: RecentSend<'_>) {
        self.text.push_str(send.patient);
        let patient_end = self.text.len();
        self.text.push_str(send.step);
        self.rows.push(BufferedSend {
            patient_end,
            step_end: self.text.len(),
            occurrence: send.occurrence,
            sent_at: send.sent_at,
        });
    }

    fn hand_on(&self, each: &mut dyn FnMut(RecentSend<'_>)) {
        let mut start = 0;
        for row in &self.rows {
            each(RecentSend {
                patient: &self.text[start..row.patient_end],
                step: &self.text[row.patient_end..row.step_end],
                occurrence: row.occurrence,
                sent_at: row.sent_at,
            });
            start = row.step_end;
        }
    }
}

/// One slice's rows, `slice` of those `starts` begins.
fn read_slice(
    conn: &Connection,
    sink: SinkKind,
    now: i64,
    starts: &[i64],
    slice: usize,
    each: &mut dyn FnMut(RecentSend<'_>),
) -> rusqlite::Result<()> {
    let (sink, since, start) = (sink.as_str(), starts[0], starts[slice]);
    match starts.get(slice + 1) {
        Some(end) => {
            let mut statement = conn.prepare_cached(SLICE_SENDS)?;
            let rows = statement.query(params![sink, now, since, start, end])?;
            hand_on(rows, each)
        }
        None => {
            let mut statement = conn.prepare_cached(LAST_SLICE_SENDS)?;
            let rows = statement.query(params![sink, now, since, start])?;
            hand_on(rows, each)
        }
    }
}

/// Opens `path` read-only for a reader on a thread of its own.
fn open_reader(path: &std::path::Path) -> Option<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    super::configure_sqlite();
    let conn = Connection::open_with_flags(path, flags).ok()?;
    // As the writer waits: a checkpoint's brief lock must not fail the pass.
    conn.busy_timeout(std::time::Duration::from_secs(10)).ok()?;
    Some(conn)
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
        Some(SendsReader {
            conn: open_reader(&self.file.path)?,
            path: self.file.path.clone(),
        })
    }
}

impl SendsReader {
    /// [`Ledger::recent_sends`], in the index's order, read by two connections at once once
    /// [`HELP_AFTER`] rows are read, where a second one opens and the range has more than one
    /// slice; its errors name the ledger as the writer's do, and are the first a single read
    /// would meet.
    ///
    /// Both connections read the ledger as last committed, and it is the same ledger: a run
    /// holds its lock, so no one else writes sends, and the pass writes none before its
    /// history is in.
    pub fn recent_sends(
        &self,
        sink: SinkKind,
        now: DateTime<Utc>,
        each: &mut dyn FnMut(RecentSend<'_>),
    ) -> Result<(), LedgerError> {
        self.read_sliced(sink, now, HELP_AFTER, each)
            .map_err(|e| LedgerError::from_sqlite(&self.path, e))
    }

    /// The read, a second connection opened after `help_after` rows.
    fn read_sliced(
        &self,
        sink: SinkKind,
        now: DateTime<Utc>,
        help_after: usize,
        each: &mut dyn FnMut(RecentSend<'_>),
    ) -> rusqlite::Result<()> {
        let starts = slice_starts(&self.conn, sink, since(now))?;
        if starts.len() == 1 {
            return read_recent(&self.conn, sink, now, each);
        }
        let now = unix(now);
        let untaken = Untaken(Mutex::new((0, starts.len())));
        let (untaken, starts, path) = (&untaken, &starts, &self.path);
        // From the top down, each slice into a buffer, until the two meet; nothing taken
        // when no second connection opens.
        let from_the_top = move || {
            let mut read = Vec::new();
            let Some(helper) = open_reader(path) else {
                return (read, None);
            };
            while let Some(slice) = untaken.highest() {
                let mut buffered = Buffered::default();
                let pushed = read_slice(&helper, sink, now, starts, slice, &mut |send| {
                    buffered.push(send);
                });
                if let Err(error) = pushed {
                    return (read, Some(error));
                }
                read.push(buffered);
            }
            (read, None)
        };
        std::thread::scope(|scope| {
            let mut helping = None;
            let mut rows = 0_usize;
            let mut failed = None;
            while let Some(slice) = untaken.lowest() {
                let read = read_slice(&self.conn, sink, now, starts, slice, &mut |send| {
                    rows += 1;
                    if rows == help_after && helping.is_none() {
                        let spawned = std::thread::Builder::new()
                            .name("sent-history".into())
                            .spawn_scoped(scope, from_the_top);
                        helping = spawned.ok();
                    }
                    each(send);
                });
                if let Err(error) = read {
                    untaken.close();
                    failed = Some(error);
                    break;
                }
            }
            // No second thread (a short history, or none to be had): every slice was read here.
            let (read, helper_failed) = match helping {
                Some(helping) => helping
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                None => (Vec::new(), None),
            };
            // A slice failing here is below every slice the helper read.
            if let Some(error) = failed.or(helper_failed) {
                return Err(error);
            }
            for buffered in read.iter().rev() {
                buffered.hand_on(each);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
#[path = "sends_beside_tests.rs"]
mod tests;
