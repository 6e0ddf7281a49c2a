//! `opened`: LINE's unique impressions of each LINE row's aggregation unit, from what
//! `steprule insights fetch` cached, and the account's friends at the period's end.
//!
//! LINE answers per unit and half-month of its calendar (Japan time), so a period is measured
//! only when its days are whole half-months in Japan time (a `--month` of a clinic in Japan
//! is two). A row's opened is then the sum of its unit's answers over those half-months, when
//! every half-month it was used in is cached whole and every one of its sends in the period
//! carried the unit; one withheld answer (below 20) makes it `Suppressed`, never 0. Otherwise
//! it stays "not measured", and a note under the table says why. The units and their answers
//! are a small table read in one query, whatever the number of sends.

use std::collections::BTreeSet;

use chrono::NaiveDate;

use super::build::{Opened, Report, Row};
use super::period::Period;
use crate::ledger::{FollowerFigures, FollowerStatus, LedgerError, ReadLedger, UnitHalf};
use crate::line::insight::{line_day, line_midnight, tiling, HalfMonth};

/// Why some `opened` figures are not shown, said once under the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpenedNote {
    /// The clinic's days are not LINE's days (its zone is not UTC+9).
    NotJapanTime,
    /// The period starts or ends inside one of LINE's half-months.
    NotTiled,
    /// A half-month a unit was used in has no whole answer in the cache.
    NotFetched,
    /// Some of a row's sends carried no aggregation unit.
    Partial,
    /// Some answers are from half-months that can still change.
    Unsettled,
}

/// The account's friends on the period's last day (LINE's counts up to that day), and the
/// change since the day before the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub day: NaiveDate,
    pub followers: u64,
    pub targeted_reaches: u64,
    pub blocks: u64,
    pub followers_change: Option<i64>,
    pub blocks_change: Option<i64>,
}

/// What the report adds from LINE's statistics besides each row's `opened`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineFigures {
    pub notes: BTreeSet<OpenedNote>,
    pub account: Option<Account>,
}

/// Fills every LINE row's `opened` and the report's [`LineFigures`] from the ledger.
pub fn fill(ledger: &dyn ReadLedger, report: &mut Report) -> Result<(), LedgerError> {
    let period = report.periods.current;
    // LINE's days the period touches (its last instant is the one before `to`).
    let first = line_day(period.from);
    let last = line_day(period.to - chrono::Duration::seconds(1));
    let halves = ledger.used_units(HalfMonth::of(first).first, HalfMonth::of(last).first)?;
    report.line.notes = apply(&mut report.rows, &period, &halves);
    let before = first.pred_opt().unwrap_or(first);
    report.line.account = account(&ledger.follower_days(before, last)?, before, last);
    Ok(())
}

/// Sets each row's `opened` from `halves` (every unit used in the half-months the period
/// touches); the notes that explain the rows left "not measured".
pub fn apply(rows: &mut [Row], period: &Period, halves: &[UnitHalf]) -> BTreeSet<OpenedNote> {
    let mut notes = BTreeSet::new();
    for row in rows.iter_mut() {
        row.opened = Opened::NotMeasured;
    }
    if halves.is_empty() {
        return notes;
    }
    let japan = line_midnight(period.first) == period.from
        && period.last.succ_opt().map(line_midnight) == Some(period.to);
    if !japan {
        notes.insert(OpenedNote::NotJapanTime);
        return notes;
    }
    let Some(tiles) = tiling(period.first, period.last) else {
        notes.insert(OpenedNote::NotTiled);
        return notes;
    };
    let inside = |half: &UnitHalf| tiles.iter().any(|t| t.first == half.half_first);
    for row in rows.iter_mut() {
        let used: Vec<&UnitHalf> = halves
            .iter()
            .filter(|h| inside(h) && h.step == row.key.step && h.variant == row.key.variant)
            .collect();
        if let Some((opened, note)) = opened(row, &used) {
            row.opened = opened;
            notes.extend(note);
        }
    }
    notes
}

/// One row's figure from its unit's half-months; `None` when its unit was not used.
fn opened(row: &Row, used: &[&UnitHalf]) -> Option<(Opened, Option<OpenedNote>)> {
    if used.is_empty() {
        return None;
    }
    let carried: u64 = used.iter().map(|h| h.sends).sum();
    if carried != row.counts.sent {
        return Some((Opened::NotMeasured, Some(OpenedNote::Partial)));
    }
    let (mut sum, mut withheld, mut unsettled) = (0u64, false, false);
    for half in used {
        let whole = HalfMonth::of(half.half_first).last;
        let Some(cached) = half.cached.filter(|c| c.last_day == whole) else {
            return Some((Opened::NotMeasured, Some(OpenedNote::NotFetched)));
        };
        match cached.figures.unique_impression {
            Some(count) => sum = sum.saturating_add(count),
            None => withheld = true,
        }
        unsettled |= !cached.settled;
    }
    let opened = if withheld {
        Opened::Suppressed
    } else {
        Opened::Unique(sum)
    };
    Some((opened, unsettled.then_some(OpenedNote::Unsettled)))
}

/// The account on `last` against `before` (the day before the period), from LINE's counts.
fn account(
    days: &[(NaiveDate, FollowerFigures)],
    before: NaiveDate,
    last: NaiveDate,
) -> Option<Account> {
    let ready = |day: NaiveDate| {
        days.iter()
            .find(|(d, f)| *d == day && f.status == FollowerStatus::Ready)
            .map(|(_, f)| f)
    };
    let end = ready(last)?;
    let start = ready(before);
    let change = |now: Option<u64>, then: Option<u64>| {
        Some(i64::try_from(now?).ok()? - i64::try_from(then?).ok()?)
    };
    Some(Account {
        day: last,
        followers: end.followers?,
        targeted_reaches: end.targeted_reaches?,
        blocks: end.blocks?,
        followers_change: start.and_then(|s| change(end.followers, s.followers)),
        blocks_change: start.and_then(|s| change(end.blocks, s.blocks)),
    })
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::ledger::{ArmKey, CachedHalf, SinkKind, UnitFigures};
    use crate::report::period::PeriodArgs;
    use crate::report::tally::Counts;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn row(variant: Option<&str>, sent: u64) -> Row {
        Row {
            key: ArmKey {
                sink: SinkKind::Line,
                step: "thanks".into(),
                variant: variant.map(str::to_owned),
            },
            stage: None,
            in_rules: true,
            counts: Counts {
                sent,
                ..Counts::default()
            },
            previous: Counts::default(),
            opened: Opened::NotMeasured,
        }
    }

    /// `variant`'s unit in the half-month starting `first`: `sends` delivered, and LINE's
    /// unique impressions as cached up to `cached_to` (`None`: not fetched).
    fn half(
        variant: &str,
        first: &str,
        sends: u64,
        cached_to: Option<&str>,
        opens: Option<u64>,
    ) -> UnitHalf {
        UnitHalf {
            unit: format!("thanks__{variant}"),
            half_first: day(first),
            step: "thanks".into(),
            variant: Some(variant.into()),
            last_day: day(first),
            sends,
            cached: cached_to.map(|to| CachedHalf {
                last_day: day(to),
                figures: UnitFigures {
                    unique_impression: opens,
                    ..UnitFigures::default()
                },
                fetched_at: DateTime::<Utc>::UNIX_EPOCH,
                settled: true,
            }),
        }
    }

    fn october(tz: chrono_tz::Tz) -> Period {
        PeriodArgs::Month("2026-10".into())
            .resolve(tz, "2026-11-20T00:00:00Z".parse().unwrap())
            .unwrap()
            .current
    }

    #[test]
    fn a_month_sums_its_two_halves_and_a_withheld_half_is_suppressed() {
        let mut rows = [row(Some("thanks_a"), 130), row(Some("thanks_b"), 60)];
        let halves = [
            half("thanks_a", "2026-10-01", 100, Some("2026-10-15"), Some(61)),
            half("thanks_a", "2026-10-16", 30, Some("2026-10-31"), Some(22)),
            half("thanks_b", "2026-10-01", 50, Some("2026-10-15"), Some(25)),
            half("thanks_b", "2026-10-16", 10, Some("2026-10-31"), None),
            // September's half is not October's.
            half("thanks_a", "2026-09-16", 7, Some("2026-09-30"), Some(99)),
        ];
        let notes = apply(&mut rows, &october(chrono_tz::Asia::Tokyo), &halves);
        assert_eq!(rows[0].opened, Opened::Unique(83));
        assert_eq!(rows[1].opened, Opened::Suppressed);
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn rows_stay_not_measured_with_the_reason_noted() {
        let tokyo = october(chrono_tz::Asia::Tokyo);
        let measured = |rows: &mut [Row], halves: &[UnitHalf], period: &Period| {
            let notes = apply(rows, period, halves);
            (rows[0].opened, notes.into_iter().collect::<Vec<_>>())
        };
        let whole = [half(
            "thanks_a",
            "2026-10-01",
            20,
            Some("2026-10-15"),
            Some(20),
        )];
        // Every send carried the unit: measured.
        assert_eq!(
            measured(&mut [row(Some("thanks_a"), 20)], &whole, &tokyo),
            (Opened::Unique(20), vec![])
        );
        // Five sends went without --custom-aggregation.
        assert_eq!(
            measured(&mut [row(Some("thanks_a"), 25)], &whole, &tokyo),
            (Opened::NotMeasured, vec![OpenedNote::Partial])
        );
        // Fetched while the half-month ran, or never.
        for cached in [Some("2026-10-12"), None] {
            let early = [half("thanks_a", "2026-10-01", 20, cached, Some(20))];
            assert_eq!(
                measured(&mut [row(Some("thanks_a"), 20)], &early, &tokyo),
                (Opened::NotMeasured, vec![OpenedNote::NotFetched])
            );
        }
        // No unit at all: not measured, nothing to say.
        assert_eq!(
            measured(&mut [row(None, 20)], &whole, &tokyo),
            (Opened::NotMeasured, vec![])
        );
        // A week is not whole half-months.
        let week = PeriodArgs::Range {
            from: "2026-10-05".into(),
            to: "2026-10-11".into(),
        }
        .resolve(
            chrono_tz::Asia::Tokyo,
            "2026-11-20T00:00:00Z".parse().unwrap(),
        )
        .unwrap()
        .current;
        assert_eq!(
            measured(&mut [row(Some("thanks_a"), 20)], &whole, &week),
            (Opened::NotMeasured, vec![OpenedNote::NotTiled])
        );
        // A clinic in Honolulu: its October is not LINE's.
        assert_eq!(
            measured(
                &mut [row(Some("thanks_a"), 20)],
                &whole,
                &october(chrono_tz::Pacific::Honolulu)
            ),
            (Opened::NotMeasured, vec![OpenedNote::NotJapanTime])
        );
    }

    #[test]
    fn the_account_is_read_at_the_end_against_the_day_before() {
        let ready = |followers, blocks| FollowerFigures {
            status: FollowerStatus::Ready,
            followers: Some(followers),
            targeted_reaches: Some(followers - blocks),
            blocks: Some(blocks),
        };
        let days = [
            (day("2026-09-30"), ready(100, 5)),
            (day("2026-10-31"), ready(130, 9)),
        ];
        let found = account(&days, day("2026-09-30"), day("2026-10-31")).unwrap();
        assert_eq!(
            (found.followers, found.followers_change, found.blocks_change),
            (130, Some(30), Some(4))
        );
        let without_start = account(&days[1..], day("2026-09-30"), day("2026-10-31")).unwrap();
        assert_eq!(without_start.followers_change, None);
        assert_eq!(
            account(&days[..1], day("2026-09-30"), day("2026-10-31")),
            None
        );
    }
}
