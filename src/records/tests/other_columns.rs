//! `other` as a list kept from row to row ([`OtherColumns`]): the same contents, order and
//! `Debug` output as the map it replaced, whatever order columns come in, and bounded however
//! many new names the rows bring.

use std::collections::BTreeMap;

use crate::records::OtherColumns;

/// Names in an order that is not theirs when sorted (`c17` before `c2`…).
fn names(count: usize) -> Vec<String> {
    (0..count).rev().map(|n| format!("c{n}")).collect()
}

#[test]
fn reads_like_the_map_of_its_non_empty_columns() {
    for count in [0, 1, 3, 255, 256, 257, 2_000] {
        let mut other = OtherColumns::new();
        let mut map = BTreeMap::new();
        for (n, name) in names(count).into_iter().enumerate() {
            // Every third value empty: not set, as an empty cell is not.
            let value = if n % 3 == 0 {
                String::new()
            } else {
                n.to_string()
            };
            if !value.is_empty() {
                map.insert(name.clone(), value.clone());
            }
            other.insert(name, value);
        }
        assert_eq!(
            other.iter().collect::<Vec<_>>(),
            map.iter().collect::<Vec<_>>()
        );
        assert_eq!(format!("{other:?}"), format!("{map:?}"), "{count}");
        assert_eq!((other.len(), other.is_empty()), (map.len(), map.is_empty()));
        for name in names(count) {
            assert_eq!(other.get(&name), map.get(&name), "{count} {name}");
        }
        assert_eq!(other, map.clone().into_iter().collect::<OtherColumns>());
    }
}

#[test]
fn an_emptied_list_shows_only_what_the_next_row_sets() {
    let mut other = OtherColumns::new();
    for name in names(300) {
        other.set(&name, "x");
    }
    other.empty();
    assert!(other.is_empty() && other.get("c1").is_none(), "{other:?}");
    other.set("c7", "seven");
    assert_eq!(format!("{other:?}"), r#"{"c7": "seven"}"#);
    assert_eq!(other.insert("c7".into(), "7".into()), Some("seven".into()));
    assert_eq!(other.insert("c8".into(), "8".into()), None);
    assert_eq!(other.values().collect::<Vec<_>>(), ["7", "8"]);
}

#[test]
fn rows_of_ever_new_names_do_not_grow_a_record_without_bound() {
    let mut other = OtherColumns::new();
    for row in 0..5_000 {
        other.empty();
        other.set(&format!("k{row}"), "1");
        other.set(&format!("k{row}b"), "2");
        assert_eq!(other.len(), 2, "row {row}");
        assert!(
            other.names_kept() <= 4 * 256 + 2,
            "row {row}: {}",
            other.names_kept()
        );
    }
}

#[test]
fn a_huge_value_is_not_kept_for_the_next_row() {
    let mut other = OtherColumns::new();
    other.set("memo", &"長".repeat(10_000));
    other.empty();
    other.set("ward", "1F");
    assert_eq!(other.names_kept(), 2);
    other.set("memo", "a");
    assert!(other.values().all(|value| value.capacity() <= 1024));
}
