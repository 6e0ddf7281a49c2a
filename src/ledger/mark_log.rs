//! The fingerprints of `marks` and `mark_packs` kept a second time, as a log of (patient
//! hash, print, pack) entries packed in blobs, so that a pass loads a million of them from a few hundred rows instead of a
//! scan of a million `marks` rows. That scan was most of a rerun's start (~1,250 instructions a
//! row, nearly all of it SQLite's and rusqlite's work per row: a table of the pairs alone, row
//! per patient, measured no cheaper). Every write of `marks` appends its pairs in the same
//! statement group and transaction, so the log says what `marks` says; a later entry for a
//! hash replaces an earlier one. The pack says where the patient's row is: a first sighting's
//! is in a pack of `mark_packs` (see `mark_packs.rs`), 0 for a row of its own in `marks`. When the log holds more than twice the pairs it held after its last
//! compaction (plus [`SLACK`]), the writer rewrites it with one pair a patient.

use rusqlite::{Connection, OptionalExtension};

use super::mark_order::PassPrints;
use super::mark_packs;
use super::marks::{from_sql, Logged, MarkPrints};
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

/// Bytes an entry takes in a blob: the hash and the print (little-endian u64s), then the
/// pack (a little-endian u32).
const PAIR: usize = 20;

/// Entries a compacted row holds (1.25 MiB): a million patients in sixteen rows.
const CHUNK: usize = 1 << 16;

/// Superseded pairs the log may hold beyond its live ones before it is compacted. Neither a
/// first pass (every pair a new patient's) nor a rerun that changes nothing compacts it.
const SLACK: i64 = 1 << 18;

/// Whose pairs are appended: patients the log already holds (their pairs supersede earlier
/// ones), or first sightings, which add to the live pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Appended {
    Known,
    New,
}

/// Appends `pairs` to the log of `conn`, compacting it when it has grown enough.
pub(super) fn append(conn: &Connection, pairs: &[Logged], whose: Appended) -> rusqlite::Result<()> {
    append_within(conn, pairs, whose, SLACK)
}

fn put(blob: &mut Vec<u8>, entry: Logged) {
    blob.extend_from_slice(&entry.hash.to_le_bytes());
    blob.extend_from_slice(&entry.print.to_le_bytes());
    blob.extend_from_slice(&entry.pack.to_le_bytes());
}

/// [`append`], compacting beyond `slack` superseded pairs.
///
/// First sightings count as live as they are logged: counted only at a compaction, a first
/// pass over a million patients compacted the log twice (at a quarter and three quarters of
/// the way), reading, sorting and writing again 1.05 million pairs that superseded nothing.
/// A first sighting is a patient whose hash the pass did not find in the log, so the count is
/// exact but for two ids sharing a hash; a compaction counts the live pairs afresh.
fn append_within(
    conn: &Connection,
    pairs: &[Logged],
    whose: Appended,
    slack: i64,
) -> rusqlite::Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    // A pair for a patient the log holds is a row of their own: `mark_order.rs` tells the
    // latest pair of a hash found in place by looking only among those.
    debug_assert!(
        whose == Appended::New || pairs.iter().all(|pair| pair.pack == 0),
        "a known patient's pair names a pack"
    );
    let mut blob = Vec::with_capacity(pairs.len() * PAIR);
    for &entry in pairs {
        put(&mut blob, entry);
    }
    conn.prepare_cached("INSERT INTO mark_print_log (pairs) VALUES (?1)")?
        .execute([blob])?;
    let logged = i64::try_from(pairs.len()).unwrap_or(i64::MAX);
    let new = match whose {
        Appended::New => logged,
        Appended::Known => 0,
    };
    let (live, logged): (i64, i64) = conn
        .prepare_cached(
            "UPDATE mark_print_state SET logged = logged + ?1, live = live + ?2
             RETURNING live, logged",
        )?
        .query_row([logged, new], |row| Ok((row.get(0)?, row.get(1)?)))?;
    if logged > live.saturating_mul(2).saturating_add(slack) {
        compact(conn)?;
    }
    Ok(())
}

/// Rewrites the log with one pair a patient hash: the latest's print and pack, in the place of
/// the hash's first pair. A pass looks for each patient's pair where the export's order puts it
/// (see `mark_order.rs`), and the first pairs are in that order: they were logged as a pass met
/// the patients, where a change's pair is appended at the end. Sorted in place rather than
/// gathered in a [`MarkPrints`]: the table's slack (twice the pairs, rounded up to a power of
/// two) raised a first run's peak RSS at a million patients by ~45 MB.
fn compact(conn: &Connection) -> rusqlite::Result<()> {
    let mut placed = Vec::with_capacity(logged_hint(conn)?);
    let whole = read_entries(conn, |entry| {
        let at = placed.len();
        placed.push(Placed { entry, at });
    })?;
    if !whole {
        return Ok(());
    }
    let kept = latest_in_first_place(placed);
    conn.execute("DELETE FROM mark_print_log", [])?;
    write(conn, kept.into_iter().map(|placed| placed.entry))
}

/// A pair and where it was in the log.
#[derive(Debug, Clone, Copy)]
struct Placed {
    entry: Logged,
    at: usize,
}

/// One of `placed` per hash, the latest, placed where its hash's first was; in that order.
fn latest_in_first_place(mut placed: Vec<Placed>) -> Vec<Placed> {
    placed.sort_unstable_by_key(|placed| (placed.entry.hash, placed.at));
    // Each hash's pairs are together, oldest first: the first kept takes each later one's pair.
    placed.dedup_by(|later, kept| {
        let same = later.entry.hash == kept.entry.hash;
        if same {
            kept.entry = later.entry;
        }
        same
    });
    placed.sort_unstable_by_key(|placed| placed.at);
    placed
}

/// Writes `pairs` as the whole log, in rows of [`CHUNK`] pairs, and records them as live.
fn write(conn: &Connection, pairs: impl Iterator<Item = Logged>) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached("INSERT INTO mark_print_log (pairs) VALUES (?1)")?;
    let mut blob = Vec::new();
    let mut count = 0i64;
    for entry in pairs {
        put(&mut blob, entry);
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

/// The fingerprints the log holds; `None` when a row is not whole entries (a damaged log: the
/// caller reads `marks` and `mark_packs` themselves, which the log only repeats). Inserted
/// into the table as they are read, with no list of them first: at a million patients that
/// list was 24 MB of fresh pages, whose faulting and zeroing were most of the reader's time.
pub(super) fn read(conn: &Connection) -> rusqlite::Result<Option<MarkPrints>> {
    let mut prints = MarkPrints::with_room(logged_hint(conn)?);
    let whole = read_entries(conn, |entry| prints.insert_at(entry))?;
    Ok(whole.then_some(prints))
}

/// The fingerprints the log holds, in the order they were written (see `mark_order.rs`), or
/// `None` as [`read`].
pub(super) fn read_in_order(conn: &Connection) -> rusqlite::Result<Option<PassPrints>> {
    Ok(read_pairs(conn)?.map(PassPrints::of_log))
}

/// The log's pairs in the order they were written, or `None` as [`read`].
fn read_pairs(conn: &Connection) -> rusqlite::Result<Option<Vec<Logged>>> {
    let mut pairs = Vec::with_capacity(logged_hint(conn)?);
    let whole = read_entries(conn, |entry| pairs.push(entry))?;
    Ok(whole.then_some(pairs))
}

/// How many entries the log holds, as its state says: a hint only, bounded so that a damaged
/// one asks for no huge table.
fn logged_hint(conn: &Connection) -> rusqlite::Result<usize> {
    let logged: i64 = conn
        .query_row("SELECT logged FROM mark_print_state", [], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    Ok(usize::try_from(logged.clamp(0, 1 << 24)).unwrap_or(0))
}

/// Hands each of the log's entries to `each`, in the order they were written; `false` when a
/// row is not whole entries (the entries before it were handed over).
fn read_entries(conn: &Connection, mut each: impl FnMut(Logged)) -> rusqlite::Result<bool> {
    let mut select = conn.prepare_cached("SELECT pairs FROM mark_print_log ORDER BY seq")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let blob = row.get_ref(0)?.as_blob()?;
        if blob.len() % PAIR != 0 {
            return Ok(false);
        }
        for entry in blob.chunks_exact(PAIR) {
            let word = |at: usize| {
                let mut eight = [0u8; 8];
                eight.copy_from_slice(&entry[at..at + 8]);
                u64::from_le_bytes(eight)
            };
            let mut four = [0u8; 4];
            four.copy_from_slice(&entry[16..20]);
            each(Logged {
                hash: word(0),
                print: word(8),
                pack: u32::from_le_bytes(four),
            });
        }
    }
    Ok(true)
}

/// Every fingerprint in `marks` and `mark_packs` themselves, by [`patient_hash`]: what the
/// log repeats, for a ledger whose log is damaged. The packs first: a patient's own row is
/// always written after their pack's (only a patient with a print gets one, and only a
/// patient without one is packed).
pub(super) fn scan_marks(conn: &Connection) -> rusqlite::Result<MarkPrints> {
    let mut logged = mark_packs::scan(conn)?;
    scan_own_rows(conn, &mut logged)?;
    Ok(MarkPrints::from_logged(logged))
}

/// The fingerprints of the rows of `marks`, appended to `logged`.
fn scan_own_rows(conn: &Connection, logged: &mut Vec<Logged>) -> rusqlite::Result<()> {
    let mut select = conn.prepare_cached("SELECT patient, print FROM marks")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        logged.push(Logged {
            hash: patient_hash(row.get_ref(0)?.as_str()?),
            print: from_sql(row.get(1)?),
            pack: 0,
        });
    }
    Ok(())
}

/// The log filled from the `marks` a ledger already has, in a migration's transaction: at
/// ledger version 12, which made the log, and again at version 14, whose entries say where
/// the row is (the log emptied by its SQL; no ledger before it has packs).
pub(super) fn fill(conn: &Connection) -> rusqlite::Result<()> {
    let mut logged = Vec::new();
    scan_own_rows(conn, &mut logged)?;
    let prints = MarkPrints::from_logged(logged);
    write(conn, prints.logged())
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

/// A ledger at `path` as version 13 made them (the log's entries 16 bytes, no packs), with
/// `marks` rows of (patient, print, fields, seen) and their log: for tests that it opens and
/// reads as it did.
#[cfg(test)]
pub(crate) fn make_version_thirteen(path: &std::path::Path, marks: &[(&str, u64, u64, &[u8])]) {
    #![allow(clippy::unwrap_used)]
    let mut conn = Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    for migration in &super::schema::MIGRATIONS[..13] {
        tx.execute_batch(migration).unwrap();
    }
    super::schema::rewrite_status_check(&tx).unwrap();
    tx.execute_batch("PRAGMA user_version = 13").unwrap();
    let mut log = Vec::new();
    for &(patient, print, fields, seen) in marks {
        let (print, fields) = (print.cast_signed(), fields.cast_signed());
        tx.execute(
            "INSERT INTO marks VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![patient, print, fields, seen],
        )
        .unwrap();
        log.extend_from_slice(&patient_hash(patient).to_le_bytes());
        log.extend_from_slice(&print.to_le_bytes());
    }
    let count = i64::try_from(marks.len()).unwrap();
    tx.execute("INSERT INTO mark_print_log (pairs) VALUES (?1)", [log])
        .unwrap();
    tx.execute(
        "UPDATE mark_print_state SET live = ?1, logged = ?1",
        [count],
    )
    .unwrap();
    tx.commit().unwrap();
}

#[cfg(test)]
#[path = "mark_log_tests.rs"]
mod tests;
