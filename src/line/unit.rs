//! LINE's `customAggregationUnits`: the name a push is counted under in LINE's statistics, one
//! per step and A/B arm, so that `report` can tell the arms apart. LINE takes
//! `[A-Za-z0-9_]{1,30}` and counts at most 1,000 distinct names in a calendar month, dropping
//! the rest without a word.

/// The longest unit name LINE takes.
pub const MAX_UNIT_NAME: usize = 30;

/// Distinct names a month LINE counts; `check` warns well before it.
pub const MONTHLY_UNIT_NAMES: usize = 1_000;

/// The name of `step`'s pushes (of `variant`, for an A/B step): `step`, or `step__variant`,
/// with any other character as `_`. A name that would be too long keeps its start and ends
/// in a hash of the whole, so that two long names stay apart.
pub fn unit_name(step: &str, variant: Option<&str>) -> String {
    let whole = match variant {
        Some(variant) => format!("{step}__{variant}"),
        None => step.to_owned(),
    };
    let clean: String = whole
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.len() <= MAX_UNIT_NAME && clean == whole {
        return clean;
    }
    // Shortened or rewritten: the hash of the original keeps `x-y` and `x_y` apart too.
    let hash = fnv1a(whole.as_bytes());
    let head: String = clean.chars().take(MAX_UNIT_NAME - 9).collect();
    format!("{head}_{:08x}", hash as u32)
}

/// FNV-1a: stable across builds (LINE keeps the names for months).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits(name: &str) -> bool {
        (1..=MAX_UNIT_NAME).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    #[test]
    fn plain_steps_keep_their_id_and_arms_are_apart() {
        assert_eq!(unit_name("visit_reminder", None), "visit_reminder");
        assert_eq!(
            unit_name("checkup", Some("checkup_a")),
            "checkup__checkup_a"
        );
        assert_ne!(
            unit_name("checkup", Some("checkup_a")),
            unit_name("checkup", Some("checkup_b"))
        );
    }

    #[test]
    fn long_or_foreign_names_fit_and_stay_apart() {
        let long_a = unit_name(&"a".repeat(40), Some("variant_one"));
        let long_b = unit_name(&"a".repeat(40), Some("variant_two"));
        assert!(fits(&long_a) && fits(&long_b), "{long_a} {long_b}");
        assert_ne!(long_a, long_b);
        let dashed = unit_name("x-y", None);
        assert!(fits(&dashed));
        assert_ne!(dashed, unit_name("x_y", None));
        assert!(fits(&unit_name("予約確認", None)));
        assert_eq!(unit_name("x-y", None), unit_name("x-y", None));
    }
}
