//! The order `plan` lists sends in: by instant, then by the patient's place in the file, then
//! by step, and sends equal in all three in the order the evaluator gave them. A week's plan
//! has a million sends but only a few hundred distinct instants (the steps' clock times), so
//! the rows are put in place by counting instead of comparing: the instants are counted as
//! the rows come in, and once the last patient is read each row's place is known from the
//! counts of the instants before its own.

use std::collections::HashMap;

use super::Row;
use crate::records::keyed_hasher;

/// Distinct instants counted at most; past this many the rows are sorted by comparing, as a
/// plan of few sends spread over many seconds is cheap to sort that way anyway.
const MOST_INSTANTS: usize = 1 << 16;

/// How many rows fall on each instant, counted as the rows come in.
pub(super) struct SendTimes {
    /// `None` once there were more than `most` distinct instants.
    counts: Option<HashMap<i64, usize, ahash::RandomState>>,
    most: usize,
}

impl SendTimes {
    pub(super) fn new() -> Self {
        Self::counting_at_most(MOST_INSTANTS)
    }

    fn counting_at_most(most: usize) -> Self {
        SendTimes {
            counts: Some(HashMap::with_hasher(keyed_hasher())),
            most,
        }
    }

    /// Counts one more row at `at`.
    pub(super) fn note(&mut self, at: i64) {
        let Some(counts) = self.counts.as_mut() else {
            return;
        };
        if let Some(count) = counts.get_mut(&at) {
            *count += 1;
        } else if counts.len() < self.most {
            counts.insert(at, 1);
        } else {
            self.counts = None;
        }
    }
}

/// `rows` in the order above. Each patient's rows must come together, patients in file order
/// (their `patient` numbers rising) and each patient's rows in step order, ties in the
/// evaluator's order ([`in_step_order`]); `times` counted every row's instant.
pub(super) fn sorted(mut rows: Vec<Row>, times: SendTimes) -> Vec<Row> {
    if let Some(counts) = times.counts {
        if counts.values().sum::<usize>() == rows.len() {
            if let Some(sorted) = by_counts(&rows, counts) {
                return sorted;
            }
        }
    }
    // Stable, and the rows are already in (patient, step) order: the same order.
    rows.sort_by_key(|r| (r.at, r.patient, r.step));
    rows
}

/// One patient's rows in step order, those of one step in the order they came: stable.
pub(super) fn in_step_order(rows: &mut [Row]) {
    rows.sort_by_key(|r| r.step);
}

/// Rows counted by instant, copied in one pass to their places: the rows of an instant take
/// the places after those of earlier instants, in the order they are in now. Reading the rows
/// in order and writing each instant's run in order keeps to the memory a cache likes (moving
/// each row into place by swaps took a miss or two per row at a million rows). `None` if an
/// instant was not counted.
fn by_counts(rows: &[Row], counts: HashMap<i64, usize, ahash::RandomState>) -> Option<Vec<Row>> {
    let mut starts: Vec<(i64, usize)> = counts.into_iter().collect();
    starts.sort_unstable();
    let mut next = 0;
    for (_, start) in &mut starts {
        let count = *start;
        *start = next;
        next += count;
    }
    let Some(&first) = rows.first() else {
        return Some(Vec::new());
    };
    let mut sorted = vec![first; rows.len()];
    for row in rows {
        let found = starts.binary_search_by_key(&row.at, |&(at, _)| at).ok()?;
        let place = &mut starts[found].1;
        *sorted.get_mut(*place)? = *row;
        *place += 1;
    }
    Some(sorted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows for `patients` patients in the evaluator's order: each patient's sends at a few of
    /// `instants` instants, steps in any order, several on one step and instant (told apart by
    /// `occurrence`, their place in the evaluator's order).
    fn evaluated(patients: u32, instants: i64, seed: u64) -> Vec<Row> {
        let mut state = seed;
        let mut next = move |below: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % below
        };
        let mut rows = Vec::new();
        for patient in 0..patients {
            for nth in 0..next(6) {
                rows.push(Row {
                    at: 1_795_564_800 + 60 * next(instants as u64) as i64,
                    patient,
                    step: next(4) as u16,
                    variant: 0,
                    occurrence: nth as i64,
                    expires: 0,
                    before_start: false,
                    ledger: None,
                });
            }
        }
        rows
    }

    /// `rows` as `plan` collects them: each patient's in step order.
    fn collected(mut rows: Vec<Row>) -> Vec<Row> {
        let mut start = 0;
        while start < rows.len() {
            let patient = rows[start].patient;
            let end = start + rows[start..].partition_point(|r| r.patient == patient);
            in_step_order(&mut rows[start..end]);
            start = end;
        }
        rows
    }

    fn key(row: &Row) -> (i64, u32, u16, i64) {
        (row.at, row.patient, row.step, row.occurrence)
    }

    /// The order of a stable sort by (instant, patient, step) of the rows in the evaluator's
    /// order (what `plan` did before counting), whether the instants are counted or too many to
    /// count.
    #[test]
    fn counted_order_is_the_stable_sorts_order() {
        for (instants, most) in [
            (1, MOST_INSTANTS),
            (7, MOST_INSTANTS),
            (500, 64),
            (5000, 64),
        ] {
            let evaluated = evaluated(3000, instants, instants as u64);
            let mut want = evaluated.clone();
            let rows = collected(evaluated);
            want.sort_by_key(|r| (r.at, r.patient, r.step));
            let mut times = SendTimes::counting_at_most(most);
            for row in &rows {
                times.note(row.at);
            }
            let counted = times.counts.is_some();
            assert_eq!(counted, instants as usize <= most, "{instants} instants");
            let got = sorted(rows, times);
            let got: Vec<_> = got.iter().map(key).collect();
            let want: Vec<_> = want.iter().map(key).collect();
            assert_eq!(got, want, "{instants} instants, counted: {counted}");
        }
    }

    /// Counts that do not add up to the rows (a row not counted) fall back to comparing.
    #[test]
    fn rows_not_all_counted_are_sorted_by_comparing() {
        let evaluated = evaluated(200, 9, 3);
        let mut want = evaluated.clone();
        let rows = collected(evaluated);
        want.sort_by_key(|r| (r.at, r.patient, r.step));
        let mut times = SendTimes::new();
        for row in &rows[1..] {
            times.note(row.at);
        }
        let got = sorted(rows, times);
        assert_eq!(
            got.iter().map(key).collect::<Vec<_>>(),
            want.iter().map(key).collect::<Vec<_>>()
        );
    }
}
