//! First sightings' marks, packed: a first pass has a row for every patient, each known
//! whole from the export (see `app::run::observe`), and a row of `marks` apiece was a
//! million B-tree inserts on the pass's thread (its critical path). They are written instead
//! a pack of up to [`PACK_ROWS`] rows to a row of `mark_packs`, and the fingerprints' log
//! says which pack a patient's row is in (`mark_log.rs`). A patient whose fields change later
//! gets a row of their own in `marks`, which is looked for first: the pack keeps what the
//! patient was first seen with, the own row what they are now.
//!
//! A pack: a format byte, the fields' hash its rows share, the bytes every row's packed
//! values begin with (a first sighting's values begin with the pass's instant), the number of
//! rows, then each row: its id, its print and the rest of its values. Lengths are LEB128.

use rusqlite::{Connection, OptionalExtension};

use super::mark_log::patient_hash;
use super::marks::{Logged, MarkRow};

/// Most rows a pack holds: a changed patient's look-up reads their whole pack.
pub(super) const PACK_ROWS: usize = 64;

/// The most bytes a pack of more than one row takes (one row alone, of a very long id, may
/// pass it): a third of a 4 KiB page's room for rows, less each row's own bytes in the page
/// (a pointer, its lengths and key, the record's header: 12 bytes). A pack is a row of
/// `mark_packs`, and SQLite starts a new page for a row appended to a full last page, so a page
/// holds as many whole packs as fit: packs of 64 rows (~2.4 KB at the bench's rules) were one
/// a page, 58% of it used; packs of at most this size go three to a page.
const PACK_BYTES: usize = (4096 - 8) / 3 - 12;

/// The largest pack a reader accepts: the writer never makes one near it (a row is an id and
/// the values of the rules' fields), so a larger one is damage, not data.
const PACK_MAX: usize = 16 << 20;

const FORMAT: u8 = 1;

/// One row to pack: the patient, their print, the fields' hash and the packed values.
pub(super) type PackRow<'a> = (&'a str, u64, u64, &'a [u8]);

/// A pack that does not read as one (damaged or truncated), as SQLite reports a damaged
/// page: the ledger's error is `Corrupt`, which says how to recover it.
fn damaged(pack: i64) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(format!("mark_packs row {pack} does not read as a pack")),
    )
}

/// Writes `rows` as packs (consecutive rows with the same fields' hash, up to [`PACK_ROWS`]
/// and [`PACK_BYTES`] each), in their order; what the log is to hold for each row, in order.
pub(super) fn write(conn: &Connection, rows: &[PackRow<'_>]) -> rusqlite::Result<Vec<Logged>> {
    let mut logged = Vec::with_capacity(rows.len());
    let mut insert = conn.prepare_cached("INSERT INTO mark_packs (rows) VALUES (?1)")?;
    let mut blob = Vec::new();
    let mut rest = rows;
    while let Some(&(_, _, fields, first)) = rest.first() {
        // The rows taken, the start they all share and their bytes less that start's.
        let (mut size, mut shared, mut bytes) = (0, first.len(), 0);
        while let Some(&(id, _, row_fields, seen)) = rest.get(size) {
            if size == PACK_ROWS || row_fields != fields {
                break;
            }
            let with_row = (
                shared.min(common_start(first, seen)),
                bytes + len_len(id.len()) + id.len() + 8 + len_len(seen.len()) + seen.len(),
            );
            if size > 0 && pack_len_at_most(size + 1, with_row.0, with_row.1) > PACK_BYTES {
                break;
            }
            (shared, bytes) = with_row;
            size += 1;
        }
        let (pack, later) = rest.split_at(size);
        rest = later;
        encode(pack, &mut blob);
        insert.execute([&blob])?;
        let seq = conn.last_insert_rowid();
        let seq =
            u32::try_from(seq).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, seq))?;
        logged.extend(pack.iter().map(|&(id, print, ..)| Logged {
            hash: patient_hash(id),
            print,
            pack: seq,
        }));
    }
    Ok(logged)
}

/// How many bytes `a` and `b` begin with alike.
fn common_start(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(a, b)| a == b).count()
}

/// The bytes of a length's LEB128 form.
fn len_len(len: usize) -> usize {
    (usize::BITS - (len | 1).leading_zeros()).div_ceil(7) as usize
}

/// At least as many bytes as `encode` makes of `rows` rows that share a start of `shared`
/// bytes, their ids, prints and values (each with its length) taking `bytes`: a row's values
/// lose the shared start, and their length can only get shorter with it.
fn pack_len_at_most(rows: usize, shared: usize, bytes: usize) -> usize {
    let head = 1 + 8 + len_len(shared) + shared + len_len(rows);
    head + bytes.saturating_sub(rows * shared)
}

/// `rows` (all of the same fields' hash) as a pack, into `blob`.
fn encode(rows: &[PackRow<'_>], blob: &mut Vec<u8>) {
    blob.clear();
    let fields = rows.first().map_or(0, |row| row.2);
    // The longest start every row's values share.
    let mut prefix = rows.first().map_or(&[][..], |row| row.3);
    for &(.., seen) in rows {
        prefix = &prefix[..common_start(prefix, seen)];
    }
    blob.push(FORMAT);
    blob.extend_from_slice(&fields.to_le_bytes());
    put_bytes(blob, prefix);
    put_len(blob, rows.len());
    for &(id, print, _, seen) in rows {
        put_bytes(blob, id.as_bytes());
        blob.extend_from_slice(&print.to_le_bytes());
        put_bytes(blob, &seen[prefix.len()..]);
    }
}

fn put_len(blob: &mut Vec<u8>, mut len: usize) {
    while len >= 0x80 {
        // The low seven bits, with the high bit saying more follow.
        blob.push((len & 0x7f) as u8 | 0x80);
        len >>= 7;
    }
    blob.push(len as u8);
}

fn put_bytes(blob: &mut Vec<u8>, bytes: &[u8]) {
    put_len(blob, bytes.len());
    blob.extend_from_slice(bytes);
}

/// A pack being read; every read is checked against its end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.rest.split_at_checked(len)?;
        self.rest = rest;
        Some(taken)
    }

    fn word(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A length, which cannot exceed what is left of the pack (checked by the take that uses
    /// it); more than four bytes of it is damage.
    fn len(&mut self) -> Option<usize> {
        let mut len = 0usize;
        for shift in [0, 7, 14, 21] {
            let (&byte, rest) = self.rest.split_first()?;
            self.rest = rest;
            len |= usize::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(len);
            }
        }
        None
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.len()?;
        self.take(len)
    }
}

/// Reads a pack, handing each row (its id, print and the rest of its values) to `each`, in
/// order: the pack's fields' hash and the start every row's values share, or `None` when it
/// does not read as a pack (rows before the damage may have been handed over). Nothing is
/// gathered: a changed patient's look-up reads one row of 64.
fn decode<'a>(
    blob: &'a [u8],
    mut each: impl FnMut(&'a [u8], u64, &'a [u8]),
) -> Option<(u64, &'a [u8])> {
    if blob.len() > PACK_MAX {
        return None;
    }
    let mut reader = Reader { rest: blob };
    if reader.take(1)? != [FORMAT] {
        return None;
    }
    let fields = reader.word()?;
    let prefix = reader.bytes()?;
    let count = reader.len()?;
    for _ in 0..count {
        let id = reader.bytes()?;
        let print = reader.word()?;
        let seen = reader.bytes()?;
        each(id, print, seen);
    }
    reader.rest.is_empty().then_some((fields, prefix))
}

/// The row of `patient` in pack `pack` (the last, if the export had them twice), `None` when
/// the pack has no row for them (another id with the same hash) or there is no such pack.
pub(super) fn find(
    conn: &Connection,
    pack: u32,
    patient: &str,
) -> rusqlite::Result<Option<MarkRow>> {
    let mut select = conn.prepare_cached("SELECT rows FROM mark_packs WHERE seq = ?1")?;
    let found = select
        .query_row([pack], |row| {
            // Read where SQLite holds it, not copied out first.
            let blob = row.get_ref(0)?.as_blob()?;
            let mut last = None;
            let (fields, prefix) = decode(blob, |id, _, rest| {
                if id == patient.as_bytes() {
                    last = Some(rest);
                }
            })
            .ok_or_else(|| damaged(pack.into()))?;
            Ok(last.map(|rest| MarkRow {
                fields,
                seen: [prefix, rest].concat(),
            }))
        })
        .optional()?;
    Ok(found.flatten())
}

/// Every packed row's fingerprint, in the order written: for a ledger whose log is damaged.
pub(super) fn scan(conn: &Connection) -> rusqlite::Result<Vec<Logged>> {
    let mut logged = Vec::new();
    let mut select = conn.prepare_cached("SELECT seq, rows FROM mark_packs ORDER BY seq")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let pack = u32::try_from(seq).map_err(|_| damaged(seq))?;
        let blob = row.get_ref(1)?.as_blob()?;
        let each = |id: &[u8], print, _: &[u8]| {
            logged.push(Logged {
                hash: super::mark_log::hash64(&[id]),
                print,
                pack,
            });
        };
        decode(blob, each).ok_or_else(|| damaged(seq))?;
    }
    Ok(logged)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A pack's fields' hash, shared start and rows (id, print, rest), or `None` if damaged.
    type Unpacked = (u64, Vec<u8>, Vec<(Vec<u8>, u64, Vec<u8>)>);

    fn unpack(blob: &[u8]) -> Option<Unpacked> {
        let mut rows = Vec::new();
        let (fields, prefix) = decode(blob, |id, print, rest| {
            rows.push((id.to_vec(), print, rest.to_vec()));
        })?;
        Some((fields, prefix.to_vec(), rows))
    }

    fn packed(rows: &[PackRow<'_>]) -> Vec<u8> {
        let mut blob = Vec::new();
        encode(rows, &mut blob);
        blob
    }

    #[test]
    fn a_pack_reads_back_its_rows_with_their_shared_start() {
        let long = "L".repeat(300);
        let rows: Vec<PackRow<'_>> = vec![
            ("P1", u64::MAX, 9, &[2, 5, 5, 1, 7]),
            (&long, 3, 9, &[2, 5, 5, 0]),
            ("P1", 4, 9, &[2, 5, 5, 1, 8]),
        ];
        let blob = packed(&rows);
        let (fields, prefix, rows_read) = unpack(&blob).unwrap();
        assert_eq!((fields, &prefix[..]), (9, &[2, 5, 5][..]));
        let read: Vec<_> = (rows_read.into_iter())
            .map(|(id, print, rest)| (id, print, [&prefix[..], &rest].concat()))
            .collect();
        let wanted: Vec<_> = (rows.iter())
            .map(|&(id, print, _, seen)| (id.as_bytes().to_vec(), print, seen.to_vec()))
            .collect();
        assert_eq!(read, wanted);
    }

    /// Cut anywhere, lengthened, or with a length that points past its end, a pack is damaged,
    /// never a panic or a huge allocation.
    #[test]
    fn a_truncated_or_garbled_pack_is_damaged() {
        let rows: Vec<PackRow<'_>> = vec![("P1", 1, 9, &[2, 5, 1]), ("P22", 2, 9, &[2, 6])];
        let blob = packed(&rows);
        assert!(unpack(&blob).is_some());
        for cut in 0..blob.len() {
            assert!(unpack(&blob[..cut]).is_none(), "cut at {cut}");
        }
        assert!(unpack(&[blob.as_slice(), &[0]].concat()).is_none());
        // The row count said to be 2^28 - 1: read until the pack ends, then damaged.
        let mut huge = blob[..9].to_vec();
        put_bytes(&mut huge, &[2]);
        huge.extend([0xff, 0xff, 0xff, 0x7f]);
        assert!(unpack(&huge).is_none());
        // A length of five bytes, and another format.
        let mut long = blob[..9].to_vec();
        long.extend([0xff; 5]);
        assert!(unpack(&long).is_none());
        assert!(unpack(&[&[7][..], &blob[1..]].concat()).is_none());
    }

    /// A first run's packs (ids in order, four dates after the pass's instant) go three to a
    /// 4 KiB page: 58% of a page was used when they closed at 64 rows alone.
    #[test]
    fn a_first_runs_packs_fill_their_pages() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("packs.db")).unwrap();
        conn.execute_batch("CREATE TABLE mark_packs (seq INTEGER PRIMARY KEY, rows BLOB NOT NULL)")
            .unwrap();
        let ids: Vec<String> = (0..20_000).map(|i| format!("P{i:07}")).collect();
        let seen: Vec<Vec<u8>> = (0..20_000u32)
            .map(|i| [&[2, 0, 9, 9, 9, 9, 9, 9, 9][..], &i.to_le_bytes().repeat(4)].concat())
            .collect();
        let rows: Vec<PackRow<'_>> = (ids.iter().zip(&seen))
            .map(|(id, seen)| (id.as_str(), 7, 9, &seen[..]))
            .collect();
        let count = |sql| conn.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap();
        let pages = count("PRAGMA page_count");
        let logged = write(&conn, &rows).unwrap();
        assert_eq!(logged.len(), rows.len());
        let (packs, largest) = (
            count("SELECT count(*) FROM mark_packs"),
            count("SELECT max(length(rows)) FROM mark_packs"),
        );
        assert!(largest <= PACK_BYTES as i64, "{largest}");
        assert!(
            largest > PACK_BYTES as i64 - 50,
            "{largest}: a pack closes when full"
        );
        let used = count("PRAGMA page_count") - pages;
        assert!(used * 3 <= packs + 3 * 3, "{used} pages for {packs} packs");
        assert_eq!(scan(&conn).unwrap(), logged);
    }

    proptest::proptest! {
        /// Whatever the rows, a pack of more than one row is no larger than [`PACK_BYTES`],
        /// holds at most [`PACK_ROWS`] rows of one fields' hash, and reads back as written; a
        /// row larger than a pack alone (an export with very many watched fields) goes in a
        /// pack of its own.
        #[test]
        fn packs_stay_within_their_bytes(
            rows in proptest::collection::vec(
                (
                    "[a-z]{0,40}",
                    0u64..3,
                    proptest::prop_oneof![
                        9 => proptest::collection::vec(0u8..3, 0..200),
                        1 => proptest::collection::vec(0u8..3, PACK_BYTES..3 * PACK_BYTES),
                    ],
                ),
                1..300,
            ),
        ) {
            let conn = Connection::open_in_memory().unwrap();
            conn.execute_batch(
                "CREATE TABLE mark_packs (seq INTEGER PRIMARY KEY, rows BLOB NOT NULL)",
            )
            .unwrap();
            let rows: Vec<PackRow<'_>> = (rows.iter())
                .map(|(id, fields, seen)| (id.as_str(), 5, *fields, &seen[..]))
                .collect();
            let logged = write(&conn, &rows).unwrap();
            let mut select = conn.prepare("SELECT rows FROM mark_packs ORDER BY seq").unwrap();
            let blobs: Vec<Vec<u8>> = select
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let mut read = Vec::new();
            for blob in &blobs {
                let (fields, prefix, unpacked) = unpack(blob).unwrap();
                proptest::prop_assert!(unpacked.len() <= PACK_ROWS);
                proptest::prop_assert!(unpacked.len() == 1 || blob.len() <= PACK_BYTES);
                for (id, print, rest) in unpacked {
                    read.push((id, print, fields, [&prefix[..], &rest].concat()));
                }
            }
            let wanted: Vec<_> = (rows.iter())
                .map(|&(id, print, fields, seen)| (id.as_bytes().to_vec(), print, fields, seen.to_vec()))
                .collect();
            proptest::prop_assert_eq!(read, wanted);
            proptest::prop_assert_eq!(logged.len(), rows.len());
        }
    }

    #[test]
    fn packs_close_at_their_row_count_their_size_or_another_fields_hash() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE mark_packs (seq INTEGER PRIMARY KEY, rows BLOB NOT NULL)")
            .unwrap();
        let ids: Vec<String> = (0..150).map(|i| format!("P{i}")).collect();
        let big = "B".repeat(9000);
        let mut rows: Vec<PackRow<'_>> =
            ids.iter().map(|id| (id.as_str(), 1, 9, &[2][..])).collect();
        // Rows 130..: another fields' hash; row 140 alone passes the byte limit (a pack of its
        // own).
        for row in &mut rows[130..] {
            row.2 = 8;
        }
        rows[140].0 = &big;
        let logged = write(&conn, &rows).unwrap();
        let packs: Vec<u32> = logged.iter().map(|entry| entry.pack).collect();
        let mut sizes = packs.clone();
        sizes.dedup();
        assert_eq!(sizes, [1, 2, 3, 4, 5, 6]);
        let count = |pack| packs.iter().filter(|&&p| p == pack).count();
        assert_eq!(
            (1..=6).map(count).collect::<Vec<_>>(),
            [64, 64, 2, 10, 1, 9]
        );
        assert_eq!(find(&conn, 6, "P149").unwrap().unwrap().fields, 8);
        assert_eq!(find(&conn, 5, &big).unwrap().unwrap().fields, 8);
        assert_eq!(find(&conn, 1, "P149").unwrap(), None);
        assert_eq!(find(&conn, 9, "P1").unwrap(), None);
        assert_eq!(scan(&conn).unwrap(), logged);
        conn.execute("UPDATE mark_packs SET rows = x'0102' WHERE seq = 2", [])
            .unwrap();
        // Reported as SQLite reports a damaged page: the ledger says how to recover it.
        let corrupt = Some(rusqlite::ErrorCode::DatabaseCorrupt);
        assert_eq!(
            find(&conn, 2, "P64").unwrap_err().sqlite_error_code(),
            corrupt
        );
        assert_eq!(scan(&conn).unwrap_err().sqlite_error_code(), corrupt);
        assert_eq!(find(&conn, 1, "P1").unwrap().unwrap().seen, [2]);
    }
}
