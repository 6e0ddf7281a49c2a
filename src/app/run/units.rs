//! The aggregation units a pass's LINE pushes carried (`--custom-aggregation`), added up per
//! unit and half-month of LINE's calendar and written with the settlements that count them, so
//! that `steprule insights fetch` knows which units to ask LINE about, for which days, and
//! `report` can tell whether every send of a period carried one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::ledger::UnitUse;
use crate::line::insight::{line_day, HalfMonth};
use crate::line::unit::unit_name;

/// The uses since the last [`UnitTally::take`], by unit and half-month.
#[derive(Debug, Default)]
pub(super) struct UnitTally {
    uses: HashMap<(String, HalfMonth), UnitUse>,
}

impl UnitTally {
    /// Counts one push of `step` (arm `variant`) that LINE accepted at `at`.
    pub(super) fn add(&mut self, step: &str, variant: Option<&str>, at: DateTime<Utc>) {
        let day = line_day(at);
        let half = HalfMonth::of(day);
        let unit = unit_name(step, variant);
        let used = self
            .uses
            .entry((unit.clone(), half))
            .or_insert_with(|| UnitUse {
                unit,
                half_first: half.first,
                step: step.to_owned(),
                variant: variant.map(str::to_owned),
                first_day: day,
                last_day: day,
                sends: 0,
            });
        used.first_day = used.first_day.min(day);
        used.last_day = used.last_day.max(day);
        used.sends += 1;
    }

    /// The uses counted so far, in a stable order, leaving the tally empty.
    pub(super) fn take(&mut self) -> Vec<UnitUse> {
        let mut uses: Vec<UnitUse> = self.uses.drain().map(|(_, used)| used).collect();
        uses.sort_by(|a, b| (&a.unit, a.half_first).cmp(&(&b.unit, b.half_first)));
        uses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_add_up_per_unit_and_half_month_in_japan_time() {
        let at = |t: &str| t.parse::<DateTime<Utc>>().unwrap();
        let mut tally = UnitTally::default();
        tally.add("thanks", Some("thanks_a"), at("2026-10-05T01:00:00Z"));
        tally.add("thanks", Some("thanks_a"), at("2026-10-03T01:00:00Z"));
        tally.add("thanks", Some("thanks_b"), at("2026-10-05T01:00:00Z"));
        // The 15th at 15:00 UTC is already the 16th in Japan: the second half.
        tally.add("thanks", Some("thanks_a"), at("2026-10-15T15:00:00Z"));
        let uses = tally.take();
        assert_eq!(uses.len(), 3);
        let first = &uses[0];
        assert_eq!(first.unit, "thanks__thanks_a");
        assert_eq!(first.sends, 2);
        assert_eq!(first.first_day.to_string(), "2026-10-03");
        assert_eq!(first.last_day.to_string(), "2026-10-05");
        assert_eq!(uses[1].half_first.to_string(), "2026-10-16");
        assert_eq!(uses[2].unit, "thanks__thanks_b");
        assert!(tally.take().is_empty());
    }
}
