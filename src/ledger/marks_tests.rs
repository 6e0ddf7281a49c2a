//! Tests of `marks.rs`: the rows, the fingerprints' table and the new marks.

#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn rows_and_prints_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let hash = patient_hash;
    assert!(ledger.mark_prints().unwrap().is_empty());
    assert_eq!(ledger.mark_row("P1").unwrap(), None);
    let row = |seen: &[u8]| MarkRow {
        fields: 9,
        seen: seen.to_vec(),
    };
    // The top bit set: stored signed, read back the same.
    ledger.set_marks("P2", u64::MAX - 2, &row(&[1])).unwrap();
    ledger.set_marks("P1", 1, &row(&[1, 2])).unwrap();
    ledger.set_marks("P1", 2, &row(&[3])).unwrap();
    let prints = ledger.mark_prints().unwrap();
    assert_eq!(prints.len(), 2);
    assert_eq!(prints.get(hash("P1")), Some(2));
    assert_eq!(prints.get(hash("P2")), Some(u64::MAX - 2));
    assert_eq!(prints.get(hash("P3")), None);
    assert_eq!(ledger.mark_row("P1").unwrap(), Some(row(&[3])));
}

#[test]
fn marks_set_in_a_transaction_are_written_together_and_read_back_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let row = |n: u8| MarkRow {
        fields: 9,
        seen: vec![n; 17],
    };
    let hash = patient_hash;
    ledger.begin().unwrap();
    // 300 rows: one chunk of 256 written as it fills, the rest held until read.
    for i in 0..300u64 {
        ledger.set_marks(&format!("P{i}"), i, &row(1)).unwrap();
    }
    // A later row for the same patient replaces the earlier one, in the same chunk.
    ledger.set_marks("P299", 7, &row(2)).unwrap();
    assert_eq!(ledger.mark_row("P299").unwrap(), Some(row(2)));
    ledger.set_marks("P300", 300, &row(3)).unwrap();
    let prints = ledger.mark_prints().unwrap();
    assert_eq!(
        (
            prints.len(),
            prints.get(hash("P299")),
            prints.get(hash("P300"))
        ),
        (301, Some(7), Some(300))
    );
    // Held at the commit are written by it; a rollback drops what it holds.
    ledger.set_marks("P301", 301, &row(4)).unwrap();
    ledger.commit().unwrap();
    ledger.begin().unwrap();
    ledger.set_marks("P302", 302, &row(5)).unwrap();
    ledger.rollback().unwrap();
    drop(ledger);
    let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    assert_eq!(ledger.mark_row("P301").unwrap(), Some(row(4)));
    assert_eq!(ledger.mark_row("P302").unwrap(), None);
    assert_eq!(ledger.mark_prints().unwrap().len(), 302);
}

#[test]
fn new_marks_are_written_after_the_marks_set_before_them_and_kept_by_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let mut ledger = Ledger::open(&path).unwrap();
    let seen = |n: u8| move |buffer: &mut Vec<u8>| buffer.extend([n; 17]);
    let row = |n: u8| MarkRow {
        fields: 9,
        seen: vec![n; 17],
    };
    let hash = patient_hash;
    ledger.begin().unwrap();
    // A row set before, held in the transaction: written before the batch. (A patient with
    // a row of their own has a print, so is never in a batch of first sightings.)
    ledger.set_marks("P5000", 1, &row(9)).unwrap();
    let mut marks = NewMarks::default();
    for i in 0..300u64 {
        marks.push(&format!("P{i}"), u64::MAX - i, 9, seen((i % 256) as u8));
    }
    assert_eq!(marks.len(), 300);
    ledger.set_new_marks(&marks).unwrap();
    assert_eq!(ledger.mark_row("P5").unwrap(), Some(row(5)));
    assert_eq!(ledger.mark_row("P5000").unwrap(), Some(row(9)));
    let mut more = NewMarks::default();
    more.push("P1000", 7, 9, seen(3));
    more.push("P1", 8, 9, seen(4));
    let each: Vec<_> = more.each().collect();
    assert_eq!(each, [("P1000", 7, row(3)), ("P1", 8, row(4))]);
    ledger.set_new_marks(&more).unwrap();
    ledger.commit().unwrap();
    drop(ledger);
    let ledger = Ledger::open(&path).unwrap();
    let prints = ledger.mark_prints().unwrap();
    assert_eq!(prints.len(), 302);
    assert_eq!(prints.get(hash("P0")), Some(u64::MAX));
    // In two batches: the later one's print and row.
    assert_eq!(prints.get(hash("P1")), Some(8));
    assert_eq!(ledger.mark_row("P1").unwrap(), Some(row(4)));
    assert_eq!(ledger.mark_row("P1000").unwrap(), Some(row(3)));
    assert_eq!(
        ledger.mark_row("P299").unwrap(),
        Some(row((299 % 256) as u8))
    );
}

#[test]
fn every_stored_hash_is_found_and_no_other() {
    // Clustered hashes (many in one bucket, empty buckets between) and both ends of the range.
    let mut hashes: Vec<u64> = (0..1000u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .chain((0..50).map(|i| (1 << 60) + i))
        .chain([0, 1, u64::MAX, u64::MAX - 1])
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    let mut prints = MarkPrints::default();
    for &hash in &hashes {
        prints.insert(hash, hash ^ 0xFF);
    }
    assert_eq!(prints.len(), hashes.len());
    for &hash in &hashes {
        assert_eq!(prints.get(hash), Some(hash ^ 0xFF), "{hash:#x}");
    }
    for absent in [2, (1 << 60) + 50, u64::MAX - 2, 0x8000_0000_0000_0000] {
        assert_eq!(prints.get(absent), None, "{absent:#x}");
    }
    prints.insert(u64::MAX, 7);
    assert_eq!(
        (prints.get(u64::MAX), prints.len()),
        (Some(7), hashes.len())
    );
    // Hashes whose home is the last slot: the probe wraps round to the first ones.
    let mut last = MarkPrints::default();
    for i in 0..6 {
        last.insert(u64::MAX - i, i);
    }
    assert!((0..6).all(|i| last.get(u64::MAX - i) == Some(i)));
    assert_eq!((last.get(u64::MAX - 6), last.len()), (None, 6));
    // Built at once from the pairs: the same table.
    let pairs: Vec<(u64, u64)> = hashes.iter().map(|&h| (h, h ^ 0xFF)).collect();
    let built = MarkPrints::from_pairs(pairs);
    assert_eq!(built.len(), hashes.len());
    assert!(hashes.iter().all(|&h| built.get(h) == Some(h ^ 0xFF)));
    assert_eq!(built.slots.len(), (hashes.len() * 2).next_power_of_two());
    assert_eq!(built.get(2), None);
    let twice = MarkPrints::from_pairs(vec![(5, 1), (0, 2), (5, 3)]);
    assert_eq!(
        (twice.get(5), twice.get(0), twice.len()),
        (Some(3), Some(2), 2)
    );
    let mut one = MarkPrints::default();
    one.insert(u64::MAX, 3);
    assert_eq!(
        (one.get(u64::MAX), one.get(0), one.get(1)),
        (Some(3), None, None)
    );
    assert_eq!(MarkPrints::default().get(5), None);
}

/// Built from pairs out of order, with hashes given twice (the later print wins), hash 0,
/// and a cluster at the top of the range that runs past the last slot: the same answers
/// as inserting the pairs one by one.
#[test]
fn a_table_built_at_once_answers_as_one_inserted_pair_by_pair() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut pairs: Vec<(u64, u64)> = (0..3000).map(|i| (random(), i)).collect();
    // Repeats of earlier hashes, later in the log.
    let repeats: Vec<_> = (0..500)
        .map(|i| (pairs[i * 5].0, 10_000 + i as u64))
        .collect();
    pairs.extend(repeats);
    pairs.extend((0..40u64).map(|i| (u64::MAX - i, 20_000 + i)));
    pairs.extend([(0, 1), (u64::MAX - 3, 7), (0, 2)]);
    let mut inserted = MarkPrints::default();
    for &(hash, print) in &pairs {
        inserted.insert(hash, print);
    }
    let placed = MarkPrints::from_pairs(pairs.clone());
    assert_eq!(placed.len(), inserted.len());
    for &(hash, _) in &pairs {
        assert_eq!(placed.get(hash), inserted.get(hash), "{hash:#x}");
    }
    assert_eq!(
        (placed.get(0), placed.get(u64::MAX - 3)),
        (Some(2), Some(7))
    );
    // The top cluster wrapped round: its last pairs are in the first slots.
    assert!(placed.slots[..4]
        .iter()
        .any(|&(hash, _)| hash > u64::MAX - 40));
    for _ in 0..1000 {
        let absent = random();
        assert_eq!(placed.get(absent), inserted.get(absent));
    }
}

/// Asking for a slot in advance changes no answer, on an empty table, for hash 0 (kept
/// beside the slots), and for a hash whose home is the last slot.
#[test]
fn a_prefetched_slot_answers_as_before() {
    let empty = MarkPrints::default();
    empty.prefetch(5);
    empty.prefetch(0);
    assert_eq!(empty.get(5), None);
    let prints = MarkPrints::from_pairs(vec![(0, 1), (u64::MAX, 2), (7, 3)]);
    for hash in [0, u64::MAX, 7, 8] {
        prints.prefetch(hash);
    }
    assert_eq!(
        [0, u64::MAX, 7, 8].map(|hash| prints.get(hash)),
        [Some(1), Some(2), Some(3), None]
    );
}
