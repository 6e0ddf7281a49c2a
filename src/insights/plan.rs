//! What one `insights fetch` asks LINE, in what order: the half-months of each unit that are
//! not final in the cache, and the days of the account's friends not yet counted. Pure: the
//! cache and the calendar in, the work out.

use chrono::NaiveDate;

use crate::ledger::{FollowerFigures, FollowerStatus, UnitHalf};
use crate::line::insight::HalfMonth;

/// One unit's half-month to ask LINE about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HalfJob {
    pub unit: String,
    pub half: HalfMonth,
    /// The last day asked for: the half-month's, or yesterday while it runs.
    pub last: NaiveDate,
    /// LINE's answer will still change (the half-month ended 14 days ago or less).
    pub recent: bool,
}

/// The work of one fetch, most useful first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub halves: Vec<HalfJob>,
    /// Unit half-months whose cached answer is final: never asked again.
    pub halves_cached: u64,
    pub days: Vec<NaiveDate>,
    /// Days whose friends are counted (or that LINE has no figures for): never asked again.
    pub days_cached: u64,
    /// Distinct units in the period.
    pub units: usize,
}

/// The work for days `since..=yesterday`, as seen on `today` (Japan time), given every unit's
/// half-months in that range (`halves`) and the cached friends per day (`followers`).
///
/// Half-months whose answer can still change come first, newest first: they are what this
/// and last month's report read, and they go stale. Then the history, newest first: each
/// answer is final once fetched, so a long backlog shrinks run by run.
pub fn plan(
    halves: &[UnitHalf],
    followers: &[(NaiveDate, FollowerFigures)],
    since: NaiveDate,
    today: NaiveDate,
) -> Plan {
    let mut plan = Plan::default();
    let Some(yesterday) = today.pred_opt() else {
        return plan;
    };
    let mut units: Vec<&str> = Vec::new();
    for row in halves {
        let half = HalfMonth::of(row.half_first);
        if half.last < since || half.first > yesterday {
            continue;
        }
        units.push(&row.unit);
        if row.cached.is_some_and(|c| c.settled) {
            plan.halves_cached += 1;
            continue;
        }
        plan.halves.push(HalfJob {
            unit: row.unit.clone(),
            half,
            last: half.last.min(yesterday),
            recent: !half.settled_on(today),
        });
    }
    units.sort_unstable();
    units.dedup();
    plan.units = units.len();
    plan.halves.sort_by(|a, b| {
        (!a.recent, std::cmp::Reverse(a.half), &a.unit).cmp(&(
            !b.recent,
            std::cmp::Reverse(b.half),
            &b.unit,
        ))
    });
    let mut day = yesterday;
    let mut cached = followers.iter().rev().peekable();
    while day >= since {
        while cached.next_if(|(d, _)| *d > day).is_some() {}
        let known = cached
            .peek()
            .filter(|(d, _)| *d == day)
            .is_some_and(|(_, f)| f.status != FollowerStatus::Unready);
        if known {
            plan.days_cached += 1;
        } else {
            plan.days.push(day);
        }
        let Some(before) = day.pred_opt() else { break };
        day = before;
    }
    plan
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::ledger::{CachedHalf, UnitFigures};

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn row(unit: &str, half_first: &str, cached: Option<(&str, bool)>) -> UnitHalf {
        UnitHalf {
            unit: unit.into(),
            half_first: day(half_first),
            step: unit.into(),
            variant: None,
            last_day: day(half_first),
            sends: 1,
            cached: cached.map(|(last_day, settled)| CachedHalf {
                last_day: day(last_day),
                figures: UnitFigures::default(),
                fetched_at: DateTime::<Utc>::UNIX_EPOCH,
                settled,
            }),
        }
    }

    #[test]
    fn changing_half_months_come_first_then_the_history_newest_first() {
        let halves = [
            row("a", "2026-09-01", None),
            row("a", "2026-09-16", Some(("2026-09-30", true))),
            row("a", "2026-10-01", Some(("2026-10-15", false))),
            row("b", "2026-10-16", None),
            row("a", "2026-11-01", None),
            row("b", "2026-11-16", None),
        ];
        // On November 20th: the 16th–30th runs (asked up to the 19th) and November 1st–15th
        // ended 5 days ago: both can still change. October's halves, fetched now, are final.
        let plan = plan(&halves, &[], day("2026-09-01"), day("2026-11-20"));
        let order: Vec<(&str, String, bool)> = plan
            .halves
            .iter()
            .map(|j| (j.unit.as_str(), j.last.to_string(), j.recent))
            .collect();
        assert_eq!(
            order,
            [
                ("b", "2026-11-19".to_owned(), true),
                ("a", "2026-11-15".to_owned(), true),
                ("b", "2026-10-31".to_owned(), false),
                ("a", "2026-10-15".to_owned(), false),
                ("a", "2026-09-15".to_owned(), false),
            ]
        );
        assert_eq!((plan.halves_cached, plan.units), (1, 2));
    }

    #[test]
    fn since_and_yesterday_bound_the_half_months() {
        let halves = [
            row("a", "2026-09-01", None),
            row("a", "2026-10-16", None),
            row("a", "2026-11-16", None),
        ];
        // On the 16th nothing of the second half has ended: it is not asked about yet.
        let plan = plan(&halves, &[], day("2026-10-20"), day("2026-11-16"));
        let firsts: Vec<String> = plan
            .halves
            .iter()
            .map(|j| j.half.first.to_string())
            .collect();
        assert_eq!(firsts, ["2026-10-16"]);
    }

    #[test]
    fn days_are_asked_newest_first_until_counted() {
        let counted = |status| FollowerFigures {
            status,
            followers: None,
            targeted_reaches: None,
            blocks: None,
        };
        let followers = [
            (day("2026-11-16"), counted(FollowerStatus::OutOfService)),
            (day("2026-11-17"), counted(FollowerStatus::Ready)),
            (day("2026-11-19"), counted(FollowerStatus::Unready)),
        ];
        let plan = plan(&[], &followers, day("2026-11-15"), day("2026-11-20"));
        let days: Vec<String> = plan.days.iter().map(ToString::to_string).collect();
        assert_eq!(days, ["2026-11-19", "2026-11-18", "2026-11-15"]);
        assert_eq!(plan.days_cached, 2);
    }
}
