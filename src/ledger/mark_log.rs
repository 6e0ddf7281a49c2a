//! The fingerprints of `marks` kept a second time, as a log of (patient hash, print) pairs
//! packed in blobs, so that a pass loads a million of them from a few hundred rows instead of a
//! scan of a million `marks` rows. That scan was most of a rerun's start (~1,250 instructions a
//! row, nearly all of it SQLite's and rusqlite's work per row: a table of the pairs alone, row
//! per patient, measured no cheaper). Every write of `marks` appends its pairs in the same
//! statement group and transaction, so the log says what `marks` says; a later pair for a hash
//! replaces an earlier one. When the log holds more than twice the pairs it held after its last
//! compaction (plus [`SLACK`]), the writer rewrites it with one pair a patient.

use rusqlite::{Connection, OptionalExtension};

use super::marks::{from_sql, MarkPrints};
use super::{Ledger, LedgerError};

/// FNV-1a with a final mix: stable across runs and builds (the ledger keeps its values).
pub(crate) fn hash64(parts: &[&[u8]]) -> u64 {
    let mut hash = Fnv::new();
    for part in parts {
        hash.part(part);
    }
    hash.finish()
}

/// [`hash64`] fed one part at a time, so that a pass hashes a million patients' fields without
/// gathering them first.
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn part(&mut self, part: &[u8]) {
        for &byte in part {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        self.0 = (self.0 ^ 0xff).wrapping_mul(0x0000_0100_0000_01b3);
    }

    pub(crate) fn finish(self) -> u64 {
        let mut hash = self.0;
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        hash ^ (hash >> 33)
    }
}

/// The hash the fingerprints are kept by, in the log and in [`MarkPrints`].
pub fn patient_hash(id: &str) -> u64 {
    hash64(&[id.as_bytes()])
}

/// Bytes a pair takes in a blob: the hash, then the print, each little-endian.
const PAIR: usize = 16;

/// Pairs a compacted row holds (1 MiB): a million patients in sixteen rows.
const CHUNK: usize = 1 << 16;

/// Superseded pairs the log may hold beyond its live ones before it is compacted: a first pass
/// over a million patients compacts it twice, a rerun that changes nothing never.
const SLACK: i64 = 1 << 18;

/// Appends `pairs` to the log of `conn`, compacting it when it has grown enough.
pub(super) fn append(conn: &Connection, pairs: &[(u64, u64)]) -> rusqlite::Result<()> {
    append_within(conn, pairs, SLACK)
}

/// [`append`], compacting beyond `slack` superseded pairs.
fn append_within(conn: &Connection, pairs: &[(u64, u64)], slack: i64) -> rusqlite::Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let mut blob = Vec::with_capacity(pairs.len() * PAIR);
    for &(hash, print) in pairs {
        blob.extend_from_slice(&hash.to_le_bytes());
        blob.extend_from_slice(&print.to_le_bytes());
    }
    conn.prepare_cached("INSERT INTO mark_print_log (pairs) VALUES (?1)")?
        .execute([blob])?;
    let logged = i64::try_from(pairs.len()).unwrap_or(i64::MAX);
    let (live, logged): (i64, i64) = conn
        .prepare_cached("UPDATE mark_print_state SET logged = logged + ?1 RETURNING live, logged")?
        .query_row([logged], |row| Ok((row.get(0)?, row.get(1)?)))?;
    if logged > live.saturating_mul(2).saturating_add(slack) {
        compact(conn)?;
    }
    Ok(())
}

/// Rewrites the log with one pair a patient hash, the latest. Sorted in place rather than
/// gathered in a [`MarkPrints`]: the table's slack (twice the pairs, rounded up to a power of
/// two) raised a first run's peak RSS at a million patients by ~45 MB.
fn compact(conn: &Connection) -> rusqlite::Result<()> {
    let Some(mut pairs) = read_pairs(conn)? else {
        return Ok(());
    };
    // Latest first, then by hash (a stable sort keeps that order among a hash's pairs): the
    // first of each hash is the one to keep.
    pairs.reverse();
    pairs.sort_by_key(|&(hash, _)| hash);
    pairs.dedup_by_key(|&mut (hash, _)| hash);
    conn.execute("DELETE FROM mark_print_log", [])?;
    write(conn, pairs.into_iter())
}

/// Writes `pairs` as the whole log, in rows of [`CHUNK`] pairs, and records them as live.
fn write(conn: &Connection, pairs: impl Iterator<Item = (u64, u64)>) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached("INSERT INTO mark_print_log (pairs) VALUES (?1)")?;
    let mut blob = Vec::new();
    let mut count = 0i64;
    for (hash, print) in pairs {
        blob.extend_from_slice(&hash.to_le_bytes());
        blob.extend_from_slice(&print.to_le_bytes());
        count += 1;
        if blob.len() == CHUNK * PAIR {
            insert.execute([&blob])?;
            blob.clear();
        }
    }
    if !blob.is_empty() {
        insert.execute([&blob])?;
    }
    conn.execute(
        "UPDATE mark_print_state SET live = ?1, logged = ?1",
        [count],
    )?;
    Ok(())
}

/// The fingerprints the log holds; `None` when a row is not whole pairs (a damaged log: the
/// caller reads `marks` itself, which the log only repeats).
pub(super) fn read(conn: &Connection) -> rusqlite::Result<Option<MarkPrints>> {
    Ok(read_pairs(conn)?.map(MarkPrints::from_pairs))
}

/// The log's pairs in the order they were written, or `None` as [`read`].
fn read_pairs(conn: &Connection) -> rusqlite::Result<Option<Vec<(u64, u64)>>> {
    // A hint only: the log's count, bounded so that a damaged one asks for no huge table.
    let logged: i64 = conn
        .query_row("SELECT logged FROM mark_print_state", [], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    let hint = usize::try_from(logged.clamp(0, 1 << 24)).unwrap_or(0);
    let mut pairs = Vec::with_capacity(hint);
    let mut select = conn.prepare_cached("SELECT pairs FROM mark_print_log ORDER BY seq")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let blob = row.get_ref(0)?.as_blob()?;
        if blob.len() % PAIR != 0 {
            return Ok(None);
        }
        pairs.extend(blob.chunks_exact(PAIR).map(|pair| {
            let (hash, print) = pair.split_at(8);
            let word = |bytes: &[u8]| {
                let mut eight = [0u8; 8];
                eight.copy_from_slice(bytes);
                u64::from_le_bytes(eight)
            };
            (word(hash), word(print))
        }));
    }
    Ok(Some(pairs))
}

/// Every fingerprint in `marks` itself, by [`patient_hash`]: what the log repeats, for a
/// ledger whose log is damaged and for the log's first filling.
pub(super) fn scan_marks(conn: &Connection) -> rusqlite::Result<MarkPrints> {
    let mut pairs = Vec::new();
    let mut select = conn.prepare_cached("SELECT patient, print FROM marks")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        pairs.push((
            patient_hash(row.get_ref(0)?.as_str()?),
            from_sql(row.get(1)?),
        ));
    }
    Ok(MarkPrints::from_pairs(pairs))
}

/// Ledger version 12's filling of the log from the `marks` a ledger already has, in the
/// migration's transaction.
pub(super) fn fill(conn: &Connection) -> rusqlite::Result<()> {
    let prints = scan_marks(conn)?;
    write(conn, prints.pairs())
}

impl Ledger {
    /// The fingerprints as the log holds them, or as `marks` holds them if the log is damaged.
    pub(super) fn read_mark_prints(&self) -> Result<MarkPrints, LedgerError> {
        let read = || match read(&self.conn)? {
            Some(prints) => Ok(prints),
            None => scan_marks(&self.conn),
        };
        read().map_err(|e| self.fail(e))
    }
}

/// A ledger at `path` as version 10 made them (before the log), with `marks` rows of
/// (patient, print, fields, seen): for tests that an old ledger opens and reads as it did.
#[cfg(test)]
pub(crate) fn make_version_ten(path: &std::path::Path, marks: &[(&str, u64, u64, &[u8])]) {
    #![allow(clippy::unwrap_used)]
    let conn = Connection::open(path).unwrap();
    for migration in &super::schema::MIGRATIONS[..10] {
        conn.execute_batch(migration).unwrap();
    }
    conn.execute_batch("PRAGMA user_version = 10").unwrap();
    for &(patient, print, fields, seen) in marks {
        let (print, fields) = (print.cast_signed(), fields.cast_signed());
        conn.execute(
            "INSERT INTO marks VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![patient, print, fields, seen],
        )
        .unwrap();
    }
}

#[cfg(test)]
#[path = "mark_log_tests.rs"]
mod tests;
