//! A zone's offsets from UTC as a table of spans, built once per zone from chrono-tz's own
//! answers, so that the evaluator's millions of conversions are a short search over plain
//! integers. chrono-tz searches its spans (with their names and DST parts) on every call, and
//! that was half of the evaluator's time.
//!
//! The table answers only where the answer is plain: inside [`TABLE_START`, `TABLE_END`) and,
//! from the wall clock, for times that exactly one instant has. Everything else (the hours
//! daylight saving skips or repeats, times outside the table) is left to chrono-tz by the
//! caller, so the one rule for gaps and overlaps stays in one place ([`super::local_to_utc`]).

use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset as _, TimeZone, Utc};
use chrono_tz::{Tz, TZ_VARIANTS};

/// 1900-01-01 00:00 UTC: birth dates, visits and every window a clinic plans are after it.
const TABLE_START: i64 = -2_208_988_800;
/// 2200-01-01 00:00 UTC (chrono-tz's rules end in 2099; it keeps the last offset after that).
const TABLE_END: i64 = 7_258_118_400;

/// How far apart the instants are at which the table asks chrono-tz for the offset; between
/// two probes with different offsets it finds the change to the second. Two changes closer
/// than this that come back to the same offset would be missed: in chrono-tz 0.10's data the
/// closest two changes in any zone are 167 hours apart (Brazil in 2000, Gaza's planned
/// Ramadan breaks), so a day leaves a margin of seven.
const PROBE_SECONDS: i64 = 86_400;

/// The shortest span a table may have (but the first and the last); a zone with a shorter one
/// is left to chrono-tz. It does two things. A future tz database with changes closer than
/// chrono-tz 0.10's shows up as zones without a table (the test `every_zone_has_a_table`)
/// long before its changes could come closer than a probe. And with spans longer than twice
/// the largest offset, a wall-clock time can belong only to one span or to two neighbours,
/// which is what [`ZoneTable::offset_of_local`] relies on.
const SHORTEST_SPAN: i64 = 4 * PROBE_SECONDS;

/// Offsets are under a day either way (chrono's `FixedOffset` range), so a wall-clock time
/// more than a day inside the table cannot belong to an instant outside it.
const EDGE: i64 = 86_400;

/// One stretch of time over which the zone's offset does not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    /// The first UTC second (Unix time) of the span; it lasts until the next span's start.
    start: i64,
    offset: FixedOffset,
    /// The wall-clock seconds (Unix time of the wall clock read as UTC) that this span alone
    /// names, `[local_low, local_high)`: its wall-clock range less the parts that a gap
    /// leaves out or that the neighbouring spans also name.
    local_low: i64,
    local_high: i64,
}

/// A zone's spans over the table's range, in order.
#[derive(Debug)]
pub(super) struct ZoneTable {
    tz: Tz,
    spans: Box<[Span]>,
}

impl ZoneTable {
    /// The table of `tz`, built on first use and kept for the process (a few kilobytes for a
    /// zone with daylight saving time, one span for Tokyo since 1951). `None` for a zone the
    /// table cannot describe safely; its conversions go to chrono-tz.
    pub(super) fn of(tz: Tz) -> Option<&'static ZoneTable> {
        static TABLES: OnceLock<Box<[OnceLock<Option<ZoneTable>>]>> = OnceLock::new();
        let tables = TABLES.get_or_init(|| TZ_VARIANTS.iter().map(|_| OnceLock::new()).collect());
        // `Tz` is a plain enum: its discriminant is its index among the zones. The table says
        // which zone it is, so that even a slot shared by two zones could not answer wrongly.
        tables
            .get(tz as usize)?
            .get_or_init(|| ZoneTable::build(tz))
            .as_ref()
            .filter(|table| table.tz == tz)
    }

    /// Walks the range a probe at a time, asking chrono-tz for the offset, and finds each
    /// change to the second by bisection.
    fn build(tz: Tz) -> Option<ZoneTable> {
        let offset_at = |seconds: i64| -> Option<FixedOffset> {
            let utc = DateTime::from_timestamp(seconds, 0)?.naive_utc();
            Some(tz.offset_from_utc_datetime(&utc).fix())
        };
        let mut starts = vec![(TABLE_START, offset_at(TABLE_START)?)];
        let mut probe = TABLE_START;
        while probe < TABLE_END - 1 {
            let (_, current) = *starts.last()?;
            let next = (probe + PROBE_SECONDS).min(TABLE_END - 1);
            if offset_at(next)? == current {
                probe = next;
                continue;
            }
            // The offset is `current` at `low` and something else at `high`.
            let (mut low, mut high) = (probe, next);
            while high - low > 1 {
                let middle = low + (high - low) / 2;
                if offset_at(middle)? == current {
                    low = middle;
                } else {
                    high = middle;
                }
            }
            starts.push((high, offset_at(high)?));
            probe = high;
        }
        ZoneTable::from_starts(tz, &starts)
    }

    /// The table for spans starting at `starts` (the last one lasting to [`TABLE_END`]), or
    /// `None` when a span is too short (see [`SHORTEST_SPAN`]) or the wall-clock ranges are
    /// out of order.
    fn from_starts(tz: Tz, starts: &[(i64, FixedOffset)]) -> Option<ZoneTable> {
        let seconds = |offset: FixedOffset| i64::from(offset.local_minus_utc());
        let mut spans = Vec::with_capacity(starts.len());
        for (i, &(start, offset)) in starts.iter().enumerate() {
            let end = starts.get(i + 1).map_or(TABLE_END, |&(next, _)| next);
            let inner = i != 0 && i + 1 != starts.len();
            if inner && end - start < SHORTEST_SPAN {
                return None;
            }
            // A wall-clock time in an overlap is named by both spans; in a gap, by neither.
            let local_low = match i.checked_sub(1).map(|before| starts[before].1) {
                Some(before) => start + seconds(offset).max(seconds(before)),
                None => start + EDGE,
            };
            let local_high = match starts.get(i + 1) {
                Some(&(next, after)) => next + seconds(offset).min(seconds(after)),
                None => end - EDGE,
            };
            spans.push(Span {
                start,
                offset,
                local_low,
                local_high,
            });
        }
        // The search needs the ranges in order; only a change within a day of the table's
        // ends could put them out of it.
        let ordered = spans
            .windows(2)
            .all(|pair| pair[0].local_low < pair[1].local_low);
        ordered.then(|| ZoneTable {
            tz,
            spans: spans.into_boxed_slice(),
        })
    }

    /// The offset at `instant`, or `None` outside the table.
    pub(super) fn offset_at(&self, instant: &DateTime<Utc>) -> Option<FixedOffset> {
        self.span_at(instant.timestamp()).map(|span| span.offset)
    }

    /// The offset in seconds at the UTC second `seconds` (Unix time), or `None` outside the
    /// table: [`ZoneTable::offset_at`] for callers that count in seconds.
    pub(super) fn seconds_east_at(&self, seconds: i64) -> Option<i64> {
        self.span_at(seconds)
            .map(|span| i64::from(span.offset.local_minus_utc()))
    }

    fn span_at(&self, seconds: i64) -> Option<&Span> {
        if !(TABLE_START..TABLE_END).contains(&seconds) {
            return None;
        }
        // Most zones have had the same offset (or rules) for decades: try the last span first.
        let last = self.spans.last()?;
        if seconds >= last.start {
            return Some(last);
        }
        let after = self.spans.partition_point(|span| span.start <= seconds);
        self.spans.get(after.checked_sub(1)?)
    }

    /// The offset of the one instant that has this wall-clock time, or `None` when there is
    /// not exactly one (a gap or an overlap) or the time is outside the table.
    pub(super) fn offset_of_local(&self, local: &NaiveDateTime) -> Option<FixedOffset> {
        self.span_of_local(local.and_utc().timestamp())
            .map(|span| span.offset)
    }

    /// [`ZoneTable::offset_of_local`] for a wall-clock time counted in seconds (Unix time of
    /// the wall clock read as UTC): the offset in seconds, or `None` in a gap, an overlap or
    /// outside the table.
    pub(super) fn seconds_east_of_local(&self, local: i64) -> Option<i64> {
        self.span_of_local(local)
            .map(|span| i64::from(span.offset.local_minus_utc()))
    }

    fn span_of_local(&self, seconds: i64) -> Option<&Span> {
        let last = self.spans.last()?;
        let span = if seconds >= last.local_low {
            last
        } else {
            let after = self.spans.partition_point(|span| span.local_low <= seconds);
            self.spans.get(after.checked_sub(1)?)?
        };
        (seconds < span.local_high).then_some(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, LocalResult};
    use chrono_tz::{America, Asia, Australia, Europe, Pacific};

    /// Zones with daylight saving time in either hemisphere, with wartime and one-off
    /// changes, a 30-minute shift, a skipped day, and none at all.
    const ZONES: [Tz; 9] = [
        America::New_York,
        Europe::London,
        Asia::Tokyo,
        Australia::Sydney,
        Australia::Lord_Howe,
        Europe::Moscow,
        Pacific::Apia,
        America::Sao_Paulo,
        Asia::Kolkata,
    ];

    fn transitions(table: &ZoneTable) -> impl Iterator<Item = i64> + '_ {
        table.spans.iter().skip(1).map(|span| span.start)
    }

    /// Every five minutes from six hours before each change of offset to six hours after, the
    /// seconds either side of it, and the quarter hours of ten ordinary days.
    fn instants_to_check(table: &ZoneTable) -> Vec<i64> {
        let mut seconds = Vec::new();
        for change in transitions(table) {
            seconds.extend((change - 6 * 3600..change + 6 * 3600).step_by(300));
            seconds.extend(change - 2..change + 2);
        }
        let ordinary = DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z").unwrap();
        seconds.extend((0..10 * 96).map(|q| ordinary.timestamp() + q * 900));
        seconds
    }

    #[test]
    fn utc_to_offset_agrees_with_chrono_tz_around_every_change() {
        for tz in ZONES {
            let table = ZoneTable::of(tz).unwrap_or_else(|| panic!("{tz} has a table"));
            for seconds in instants_to_check(table) {
                let instant = DateTime::from_timestamp(seconds, 0).unwrap();
                let expected = tz.offset_from_utc_datetime(&instant.naive_utc()).fix();
                assert_eq!(table.offset_at(&instant), Some(expected), "{tz} {instant}");
            }
        }
    }

    #[test]
    fn wall_clock_to_offset_agrees_with_chrono_tz_or_declines() {
        for tz in ZONES {
            let table = ZoneTable::of(tz).unwrap();
            for seconds in instants_to_check(table) {
                // The same numbers as wall-clock times: some fall in gaps and overlaps.
                let local = DateTime::from_timestamp(seconds, 0).unwrap().naive_utc();
                let chrono_tz = tz.offset_from_local_datetime(&local).map(|o| o.fix());
                match (table.offset_of_local(&local), chrono_tz) {
                    (Some(fast), LocalResult::Single(slow)) => assert_eq!(fast, slow),
                    // Ordinary times near the table's edges, gaps and overlaps are declined.
                    (None, _) => assert!(
                        !matches!(chrono_tz, LocalResult::Single(_))
                            || !(TABLE_START + EDGE..TABLE_END - EDGE).contains(&seconds),
                        "{tz} {local}: declined an ordinary time"
                    ),
                    (Some(fast), other) => panic!("{tz} {local}: {fast} where chrono-tz {other:?}"),
                }
            }
        }
    }

    #[test]
    fn the_tables_see_the_known_changes() {
        let ny = ZoneTable::of(America::New_York).unwrap();
        let spring_2026 = DateTime::parse_from_rfc3339("2026-03-08T07:00:00Z").unwrap();
        assert!(transitions(ny).any(|t| t == spring_2026.timestamp()));
        // Tokyo's last change was in 1951: one span covers every instant since.
        let tokyo = ZoneTable::of(Asia::Tokyo).unwrap();
        let last = tokyo.spans.last().unwrap();
        assert_eq!(last.offset.local_minus_utc(), 9 * 3600);
        assert_eq!(
            DateTime::from_timestamp(last.start, 0)
                .unwrap()
                .to_rfc3339(),
            "1951-09-08T15:00:00+00:00"
        );
        // Samoa skipped 2011-12-30 by moving from UTC-10 to UTC+14.
        let apia = ZoneTable::of(Pacific::Apia).unwrap();
        let skip = DateTime::parse_from_rfc3339("2011-12-30T10:00:00Z").unwrap();
        assert!(transitions(apia).any(|t| t == skip.timestamp()));
    }

    #[test]
    fn every_zone_has_a_table() {
        // A zone without one would still be right (chrono-tz answers), only slower; a tz
        // database with changes closer than `SHORTEST_SPAN` would show up here first.
        let missing: Vec<&str> = TZ_VARIANTS
            .iter()
            .filter(|tz| ZoneTable::of(**tz).is_none())
            .map(|tz| tz.name())
            .collect();
        assert!(missing.is_empty(), "no table for {missing:?}");
    }

    #[test]
    fn outside_the_table_the_answer_is_left_to_chrono_tz() {
        let table = ZoneTable::of(Europe::London).unwrap();
        let before = DateTime::from_timestamp(TABLE_START - 1, 0).unwrap();
        let after = DateTime::from_timestamp(TABLE_END, 0).unwrap();
        assert_eq!(table.offset_at(&before), None);
        assert_eq!(table.offset_at(&after), None);
        assert_eq!(table.offset_of_local(&before.naive_utc()), None);
        assert_eq!(table.offset_of_local(&after.naive_utc()), None);
        assert_eq!(table.offset_of_local(&NaiveDateTime::MIN), None);
        assert_eq!(table.offset_of_local(&NaiveDateTime::MAX), None);
    }

    #[test]
    fn a_span_too_short_to_trust_leaves_the_zone_to_chrono_tz() {
        let east = |hours: i32| FixedOffset::east_opt(hours * 3600).unwrap();
        let start = TABLE_START;
        let short = Duration::days(2).num_seconds();
        let starts = [
            (start, east(1)),
            (start + 400 * 86_400, east(2)),
            (start + 400 * 86_400 + short, east(1)),
        ];
        assert!(ZoneTable::from_starts(Europe::Paris, &starts).is_none());
        let long = Duration::days(30).num_seconds();
        let starts = [starts[0], starts[1], (start + 400 * 86_400 + long, east(1))];
        assert!(ZoneTable::from_starts(Europe::Paris, &starts).is_some());
    }
}
