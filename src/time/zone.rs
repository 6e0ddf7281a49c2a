//! A clinic's wall clock and the instants it names. The one rule for the hours daylight saving
//! skips or repeats lives here, so that records, timings, conditions and templates agree.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::offsets::ZoneTable;

/// A wall-clock time in `tz` as an instant.
///
/// - In a gap (clocks jump forward over it, e.g. 02:30 on the night New York springs forward)
///   the time never happens: it is the first instant after the gap, the moment of the jump
///   (03:00 EDT), not the same distance past it (03:30).
/// - In an overlap (clocks turned back, e.g. 01:30 on New York's fall-back night) it happens
///   twice: it is the earlier of the two (01:30 EDT).
///
/// This is the hot path of the evaluator: a time that happens exactly once (nearly all) is
/// one search of the zone's table of offsets and allocates nothing; gaps, overlaps and times
/// before 1900 or after 2200 go to chrono-tz.
pub fn local_to_utc(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    let plain = ZoneTable::of(tz)
        .and_then(|table| table.offset_of_local(&local))
        .and_then(|offset| local.checked_sub_offset(offset));
    match plain {
        Some(utc) => utc.and_utc(),
        None => local_to_utc_by_chrono_tz(local, tz),
    }
}

/// The wall clock at the UTC second `utc` (Unix time), counted in seconds (Unix time of the
/// wall clock read as UTC), from the zone's table: `None` where the table does not answer
/// (before 1900, after 2200), and the caller asks [`wall_clock`].
pub(super) fn wall_seconds(utc: i64, tz: Tz) -> Option<i64> {
    utc.checked_add(ZoneTable::of(tz)?.seconds_east_at(utc)?)
}

/// The one UTC second that has the wall-clock second `wall` (as [`wall_seconds`] counts it),
/// from the zone's table: `None` in a gap, an overlap or outside the table, and the caller
/// asks [`local_to_utc`], which keeps the one rule for those.
pub(super) fn utc_seconds(wall: i64, tz: Tz) -> Option<i64> {
    wall.checked_sub(ZoneTable::of(tz)?.seconds_east_of_local(wall)?)
}

/// [`local_to_utc`] asking chrono-tz, for the times the zone's table declines.
fn local_to_utc_by_chrono_tz(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&local).earliest() {
        Some(instant) => instant.with_timezone(&Utc),
        None => end_of_gap(local, tz),
    }
}

/// The clinic's wall clock at `instant`: one search of the zone's table of offsets, or
/// chrono-tz's answer before 1900 and after 2200.
pub fn wall_clock(instant: DateTime<Utc>, tz: Tz) -> NaiveDateTime {
    let utc = instant.naive_utc();
    let offset = ZoneTable::of(tz)
        .and_then(|table| table.offset_at(&instant))
        .unwrap_or_else(|| tz.offset_from_utc_datetime(&utc).fix());
    // Only within a day of the end of chrono's range is there no wall-clock time to give;
    // the time as UTC keeps this total there.
    utc.checked_add_offset(offset).unwrap_or(utc)
}

/// The date on the clinic's wall calendar at `instant`.
pub fn local_date(instant: DateTime<Utc>, tz: Tz) -> NaiveDate {
    wall_clock(instant, tz).date()
}

/// The instant the clocks jump over `local` (a wall-clock time that does not exist in `tz`).
///
/// The jump happens at an instant `t` with `t + before <= local < t + after`, where `before`
/// and `after` are the offsets around it; a binary search over that window finds it to the
/// second (transitions fall on whole seconds), in about 17 steps.
fn end_of_gap(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    let local = chrono::Timelike::with_nanosecond(&local, 0).unwrap_or(local);
    let offset_at = |utc: NaiveDateTime| tz.offset_from_utc_datetime(&utc).fix();
    let shift = |offset: FixedOffset| TimeDelta::seconds(offset.local_minus_utc().into());
    let day = TimeDelta::days(1);
    // At the very ends of chrono's range there is no day either side; zones have no gaps
    // there, so reading the clock time as UTC only keeps this total.
    let (Some(day_before), Some(day_after)) =
        (local.checked_sub_signed(day), local.checked_add_signed(day))
    else {
        return Utc.from_utc_datetime(&local);
    };
    let before = offset_at(day_before);
    let after = offset_at(day_after);
    let (Some(low), Some(high)) = (
        local.checked_sub_signed(shift(after)),
        local.checked_sub_signed(shift(before)),
    ) else {
        return Utc.from_utc_datetime(&local);
    };
    if offset_at(high) != after || offset_at(low) == after {
        // Not the simple one-jump shape; moving the time forward by the gap is close enough.
        return Utc.from_utc_datetime(&high);
    }
    // Whole seconds, so that the answer is the transition itself, not a fraction past it.
    let at = |seconds: i64| DateTime::from_timestamp(seconds, 0).map(|t| t.naive_utc());
    let (mut low, mut high) = (low.and_utc().timestamp(), high.and_utc().timestamp());
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        match at(middle) {
            Some(instant) if offset_at(instant) == after => high = middle,
            _ => low = middle,
        }
    }
    DateTime::from_timestamp(high, 0).unwrap_or_else(|| Utc.from_utc_datetime(&local))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America::New_York, Asia::Tokyo, Europe::London};

    fn local(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn new_york_gap_is_the_moment_clocks_jump() {
        // 2026-03-08 02:00 EST → 03:00 EDT (07:00 UTC).
        for skipped in ["2026-03-08 02:00", "2026-03-08 02:10", "2026-03-08 02:59"] {
            assert_eq!(
                local_to_utc(local(skipped), New_York),
                utc("2026-03-08T07:00:00Z"),
                "{skipped}"
            );
        }
        assert_eq!(
            local_to_utc(local("2026-03-08 01:59"), New_York),
            utc("2026-03-08T06:59:00Z")
        );
        assert_eq!(
            local_to_utc(local("2026-03-08 03:10"), New_York),
            utc("2026-03-08T07:10:00Z")
        );
    }

    #[test]
    fn new_york_overlap_is_the_earlier_instant() {
        // 2026-11-01 02:00 EDT → 01:00 EST: 01:00–01:59 happen twice, first at UTC-4.
        assert_eq!(
            local_to_utc(local("2026-11-01 01:30"), New_York),
            utc("2026-11-01T05:30:00Z")
        );
        assert_eq!(
            local_to_utc(local("2026-11-01 00:59"), New_York),
            utc("2026-11-01T04:59:00Z")
        );
        assert_eq!(
            local_to_utc(local("2026-11-01 02:00"), New_York),
            utc("2026-11-01T07:00:00Z")
        );
    }

    #[test]
    fn london_gap_and_overlap() {
        // 2026-03-29 01:00 GMT → 02:00 BST; 2026-10-25 02:00 BST → 01:00 GMT.
        assert_eq!(
            local_to_utc(local("2026-03-29 01:30"), London),
            utc("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            local_to_utc(local("2026-03-29 00:59"), London),
            utc("2026-03-29T00:59:00Z")
        );
        assert_eq!(
            local_to_utc(local("2026-10-25 01:30"), London),
            utc("2026-10-25T00:30:00Z")
        );
        assert_eq!(
            local_to_utc(local("2026-10-25 02:00"), London),
            utc("2026-10-25T02:00:00Z")
        );
    }

    #[test]
    fn tokyo_has_no_gaps_or_overlaps() {
        // Tokyo has kept UTC+9 all year since 1951: the New York and London nights are
        // ordinary there.
        for text in [
            "2026-03-08 02:10",
            "2026-03-29 01:30",
            "2026-10-25 01:30",
            "2026-11-01 01:30",
        ] {
            let instant = local_to_utc(local(text), Tokyo);
            assert_eq!(instant.with_timezone(&Tokyo).naive_local(), local(text));
        }
        assert_eq!(
            local_to_utc(local("2026-11-01 01:30"), Tokyo),
            utc("2026-10-31T16:30:00Z")
        );
    }

    #[test]
    fn local_date_is_the_clinic_calendar_day() {
        let late_evening_utc = utc("2026-11-25T23:30:00Z");
        assert_eq!(
            local_date(late_evening_utc, Tokyo),
            NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
        );
        assert_eq!(
            local_date(late_evening_utc, New_York),
            NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
        );
    }

    /// Wall-clock times and instants around every change of offset since 1900 in zones with
    /// daylight saving time (both hemispheres, half hours, Samoa's skipped day) and without.
    fn around_every_change(tz: Tz) -> Vec<NaiveDateTime> {
        let start = utc("1900-01-02T00:00:00Z");
        let end = utc("2199-12-30T00:00:00Z");
        let offset = |at: DateTime<Utc>| tz.offset_from_utc_datetime(&at.naive_utc()).fix();
        let mut times = Vec::new();
        let mut day = start;
        while day < end {
            let next = day + TimeDelta::days(1);
            if offset(day) != offset(next) {
                let mut at = day - TimeDelta::hours(6);
                while at < next + TimeDelta::hours(6) {
                    times.push(at.naive_utc());
                    at += TimeDelta::minutes(10);
                }
            }
            day = next;
        }
        times.extend([start.naive_utc(), end.naive_utc()]);
        times
    }

    #[test]
    fn the_fast_path_keeps_the_rule_for_gaps_and_overlaps_across_every_change() {
        use chrono_tz::{America::Sao_Paulo, Australia::Lord_Howe, Pacific::Apia};
        for tz in [New_York, London, Tokyo, Lord_Howe, Apia, Sao_Paulo] {
            let times = around_every_change(tz);
            assert!(times.len() > 2 || tz == Tokyo, "{tz}: no changes found");
            for time in times {
                // The same numbers both ways: as a wall-clock time and as an instant.
                assert_eq!(
                    local_to_utc(time, tz),
                    local_to_utc_by_chrono_tz(time, tz),
                    "{tz}: wall clock {time}"
                );
                let instant = time.and_utc();
                assert_eq!(
                    wall_clock(instant, tz),
                    instant.with_timezone(&tz).naive_local(),
                    "{tz}: instant {instant}"
                );
            }
        }
    }

    #[test]
    fn ends_of_the_calendar_do_not_panic() {
        let _ = local_to_utc(NaiveDateTime::MAX, New_York);
        let _ = local_to_utc(NaiveDateTime::MIN, London);
        let _ = wall_clock(DateTime::<Utc>::MAX_UTC, Tokyo);
        let _ = wall_clock(DateTime::<Utc>::MIN_UTC, New_York);
    }
}
