#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

fn first_sighting(hash: u64, print: u64, pack: u32) -> Logged {
    Logged { hash, print, pack }
}

fn own_row(hash: u64, print: u64) -> Logged {
    Logged {
        hash,
        print,
        pack: 0,
    }
}

/// What the table by hash answers for `hash`: the reference the log's order must agree with.
fn by_table(table: &MarkPrints, hash: u64) -> Option<(u64, u32)> {
    table.get(hash).map(|print| (print, table.pack_of(hash)))
}

/// A hash that looks like a patient's (the log's hashes are spread over all 64 bits).
fn spread(n: u64) -> u64 {
    super::super::mark_log::hash64(&[&n.to_le_bytes()])
}

#[test]
fn a_rerun_over_the_same_export_finds_each_print_in_order_without_a_table_by_hash() {
    let entries: Vec<Logged> = (0..5_000)
        .map(|n| first_sighting(spread(n), n * 3, u32::try_from(n / 100 + 1).unwrap()))
        .collect();
    let prints = LoggedPrints::new(entries.clone());
    let mut near = Near::default();
    for (row, entry) in entries.iter().enumerate() {
        // A CSV export: the header on line 1, patient `row` on line `row + 2`.
        let found = prints.find(entry.hash, row + 2, &mut near);
        assert_eq!(found, Some((entry.print, entry.pack)), "row {row}");
    }
    assert!(!prints.built_by_hash());
}

#[test]
fn a_later_row_of_its_own_replaces_a_first_sighting_found_in_its_place() {
    let (a, b, c) = (spread(1), spread(2), spread(3));
    let entries = vec![
        first_sighting(a, 10, 1),
        first_sighting(b, 20, 1),
        first_sighting(c, 30, 1),
        own_row(b, 21),
        own_row(b, 22),
        own_row(a, 11),
    ];
    let prints = LoggedPrints::new(entries);
    let mut near = Near::default();
    assert_eq!(prints.find(a, 2, &mut near), Some((11, 0)));
    assert_eq!(prints.find(b, 3, &mut near), Some((22, 0)));
    assert_eq!(prints.find(c, 4, &mut near), Some((30, 1)));
    assert!(!prints.built_by_hash());
}

#[test]
fn a_jsonl_export_finds_its_offset_at_its_first_patient() {
    let entries: Vec<Logged> = (0..100).map(|n| first_sighting(spread(n), n, 1)).collect();
    let prints = LoggedPrints::new(entries.clone());
    let mut near = Near::default();
    for (row, entry) in entries.iter().enumerate() {
        // No header: patient `row` on line `row + 1`.
        assert_eq!(
            prints.find(entry.hash, row + 1, &mut near),
            Some((entry.print, 1))
        );
    }
    assert!(!prints.built_by_hash());
}

#[test]
fn a_hash_of_zero_and_an_empty_log_are_answered_as_the_table_answers() {
    let entries = vec![
        first_sighting(0, 7, 2),
        own_row(spread(9), 8),
        own_row(0, 9),
    ];
    let table = MarkPrints::from_logged(entries.clone());
    let prints = LoggedPrints::new(entries);
    for (hash, line) in [
        (0, 2),
        (spread(9), 3),
        (spread(10), 4),
        (0, 900),
        (spread(9), 1),
    ] {
        let found = prints.find(hash, line, &mut Near::default());
        assert_eq!(found, by_table(&table, hash), "{hash} on line {line}");
    }
    let empty = LoggedPrints::new(Vec::new());
    assert_eq!(empty.find(5, 2, &mut Near::default()), None);
    assert_eq!(empty.find(0, usize::MAX, &mut Near::default()), None);
}

#[test]
fn new_patients_are_mostly_told_apart_without_a_table_by_hash() {
    let entries: Vec<Logged> = (0..10_000)
        .map(|n| first_sighting(spread(n), n, 1))
        .collect();
    let prints = LoggedPrints::new(entries);
    let bits = prints.may_hold.len() * 64;
    let may_hold = |hash: u64| {
        let bit = bit_of(hash, bits);
        prints.may_hold[bit / 64] & (1 << (bit % 64)) != 0
    };
    // A thousand patients the log never saw, each on a line of its own among those it did.
    let unknown: Vec<u64> = (0..1_000).map(|n| spread(1_000_000 + n)).collect();
    let (asks, told): (Vec<u64>, Vec<u64>) = unknown.iter().partition(|&&hash| may_hold(hash));
    // Each new hash's bit is set with a chance of about 1 in 32.
    assert!(asks.len() < 60, "{} of 1,000 ask the table", asks.len());
    let mut near = Near::default();
    for (row, &hash) in told.iter().enumerate() {
        assert_eq!(prints.find(hash, 2 + row * 10, &mut near), None);
    }
    assert!(!prints.built_by_hash(), "the bit alone told them new");
    for (row, &hash) in asks.iter().enumerate() {
        assert_eq!(prints.find(hash, 2 + row * 10, &mut near), None);
    }
    assert_eq!(prints.built_by_hash(), !asks.is_empty());
}

/// A log as passes write it: first sightings of hashes it does not hold (each with a pack),
/// then rows of their own for hashes it holds or not (pack 0), in any mix.
fn a_log() -> impl Strategy<Value = Vec<Logged>> {
    let step = (any::<bool>(), 0u64..60, any::<u64>(), 1u32..4);
    proptest::collection::vec(step, 0..200).prop_map(|steps| {
        let mut held = std::collections::HashSet::new();
        let mut log = Vec::new();
        for (first, n, print, pack) in steps {
            // Hash 0 stands for the one a table keeps apart.
            let hash = if n == 0 { 0 } else { spread(n) };
            if first && held.insert(hash) {
                log.push(first_sighting(hash, print, pack));
            } else if !first {
                held.insert(hash);
                log.push(own_row(hash, print));
            }
        }
        log
    })
}

/// An export's patients as (hash index, line): some of the log's, some new, in any order, on
/// lines that only go up (blank lines and rows over two lines skip some).
fn an_export() -> impl Strategy<Value = Vec<(u64, usize)>> {
    proptest::collection::vec((0u64..80, 1usize..3), 0..150).prop_map(|rows| {
        let mut line = 1;
        (rows.into_iter())
            .map(|(n, gap)| {
                line += gap;
                (n, line)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the log and the export, each patient gets what the table by hash holds for
    /// them, on one thread or on two taking blocks of the rows in turn.
    #[test]
    fn each_patient_gets_what_the_table_by_hash_holds(
        log in a_log(),
        export in an_export(),
        block in 1usize..40,
    ) {
        let table = MarkPrints::from_logged(log.clone());
        let prints = LoggedPrints::new(log);
        let mut threads = [Near::default(), Near::default()];
        for (row, &(n, line)) in export.iter().enumerate() {
            let hash = if n == 0 { 0 } else { spread(n) };
            let near = &mut threads[(row / block) % 2];
            prop_assert_eq!(prints.find(hash, line, near), by_table(&table, hash));
        }
    }
}

#[test]
fn a_log_of_mostly_rows_of_their_own_is_looked_up_by_hash() {
    let mut changed: Vec<Logged> = (0..80).map(|n| first_sighting(spread(n), n, 1)).collect();
    changed.extend((0..11).map(|n| own_row(spread(n), 100 + n)));
    // Eleven rows of their own in ninety-one entries, an eighth: in the log's order.
    assert!(matches!(
        PassPrints::of_log(changed.clone()),
        PassPrints::InLogOrder(_)
    ));
    changed.push(own_row(spread(11), 111));
    // Twelve in ninety-two: more than an eighth, by hash, with the same answers.
    let prints = PassPrints::of_log(changed.clone());
    assert!(matches!(prints, PassPrints::ByHash(_)));
    let table = MarkPrints::from_logged(changed);
    for n in 0..90 {
        let (hash, line) = (spread(n), usize::try_from(n).unwrap() + 2);
        let found = (prints.print_of(hash, line, &mut Near::default()))
            .map(|print| (print, prints.pack_of(hash, line, &mut Near::default())));
        assert_eq!(found, by_table(&table, hash));
    }
    assert!(matches!(
        PassPrints::of_log(Vec::new()),
        PassPrints::InLogOrder(_)
    ));
}
