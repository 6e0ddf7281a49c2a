//! [`ZoneClock`] held to the chrono functions it stands for, around every change of offset in
//! zones with daylight saving time (both hemispheres, a 30-minute change, Samoa's skipped
//! day) and without, at month ends and leap days, across the table's edges, and with a leap
//! second's nanoseconds.

use super::*;
use crate::time::calendar::tests::instants_around_changes;
use chrono_tz::{America, Asia, Australia, Europe, Pacific};
use proptest::prelude::*;

const ZONES: [Tz; 7] = [
    America::New_York,
    Europe::London,
    Australia::Lord_Howe,
    America::Sao_Paulo,
    Asia::Tokyo,
    Pacific::Apia,
    chrono_tz::UTC,
];

const OFFSETS: [Offset; 9] = [
    Offset::Minutes(0),
    Offset::Minutes(90),
    Offset::Minutes(3 * 24 * 60),
    Offset::Days(0),
    Offset::Days(1),
    Offset::Days(7),
    Offset::Months(1),
    Offset::Months(3),
    Offset::Months(12),
];

const CLOCKS: [(u32, u32); 7] = [
    (0, 0),
    (1, 30),
    (2, 30),
    (9, 0),
    (12, 0),
    (23, 59),
    (25, 70),
];

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// Every operation of the clock at `instant` against chrono's.
fn agrees_with_chrono(clock: ZoneClock, instant: DateTime<Utc>) {
    let tz = clock.tz();
    let ours = UnixTime::from(instant);
    assert_eq!(ours.utc(), instant);
    for offset in OFFSETS {
        for backwards in [false, true] {
            assert_eq!(
                clock.shift(ours, offset, backwards),
                shift(instant, offset, backwards, tz).map(UnixTime::from),
                "{tz} {instant} {offset:?} backwards={backwards}"
            );
        }
    }
    for period in OFFSETS {
        let series = clock.series(ours, period);
        for k in [0, 1, 2, 3, 13, 400] {
            let expected = period
                .times(k)
                .and_then(|offset| shift(instant, offset, false, tz).map(UnixTime::from));
            assert_eq!(series.nth(k), expected, "{tz} {instant} {k}×{period:?}");
        }
    }
    for (hour, minute) in CLOCKS {
        let time = ClockTime { hour, minute };
        let (made, wall) = clock.at_time_on_wall(ours, time);
        assert_eq!(
            made,
            UnixTime::from(at_time(instant, time, tz)),
            "{tz} {instant} at {time}"
        );
        // The wall clock it hands back for quiet hours is the one the zone gives the instant.
        if let Some(wall) = wall {
            assert_eq!(
                Some(wall),
                clock.wall_minute(made),
                "{tz} {instant} at {time}"
            );
        }
    }
    assert_eq!(
        clock.next_day(ours),
        next_day(instant, tz).map(UnixTime::from),
        "{tz} {instant}"
    );
    assert_eq!(
        clock.next_week(ours),
        next_week(instant, tz).map(UnixTime::from),
        "{tz} {instant}"
    );
    let date = local_date(instant, tz);
    assert_eq!(clock.local_day(ours), days_of(date), "{tz} {instant}");
    assert_eq!(
        clock.day_start(days_of(date)),
        Some(UnixTime::from(local_to_utc(
            date.and_time(NaiveTime::MIN),
            tz
        ))),
        "{tz} {date}"
    );
}

#[test]
fn the_clock_is_chronos_around_every_change_of_offset() {
    for tz in ZONES {
        let clock = ZoneClock::new(tz);
        for instant in instants_around_changes(tz) {
            agrees_with_chrono(clock, instant);
        }
    }
}

#[test]
fn month_ends_and_leap_days_are_chronos() {
    for tz in ZONES {
        let clock = ZoneClock::new(tz);
        for day in [
            "2024-01-31T10:00:00Z",
            "2024-02-29T10:00:00Z",
            "2024-02-29T23:59:59Z",
            "2025-02-28T14:30:00Z",
            "2026-11-30T10:00:00Z",
            "2027-12-31T23:30:00Z",
            "2100-02-28T12:00:00Z",
            "2000-02-29T00:00:00Z",
        ] {
            agrees_with_chrono(clock, utc(day));
        }
    }
}

#[test]
fn a_leap_seconds_nanoseconds_are_left_to_chrono() {
    let leap =
        DateTime::from_timestamp(utc("2016-12-31T23:59:59Z").timestamp(), 1_500_000_000).unwrap();
    for tz in ZONES {
        agrees_with_chrono(ZoneClock::new(tz), leap);
    }
}

#[test]
fn the_ends_of_the_calendar_do_not_panic() {
    let clock = ZoneClock::new(America::New_York);
    for instant in [super::super::calendar_start(), super::super::calendar_end()] {
        agrees_with_chrono(clock, instant);
    }
    // Far past chrono's range there is no instant and no day: nothing, not a panic.
    assert_eq!(UnixTime::at(i64::MAX).utc(), CALENDAR_END);
    assert_eq!(UnixTime::at(i64::MIN).utc(), CALENDAR_START);
    assert_eq!(clock.day_start(i64::MAX / DAY), None);
    let huge = Offset::Minutes(i64::MAX);
    assert_eq!(clock.shift(UnixTime::at(0), huge, false), None);
    assert_eq!(clock.shift(UnixTime::at(0), huge, true), None);
}

#[test]
fn minutes_between_are_chronos() {
    let pairs = [
        (0, 0, 0, 0),
        (59, 0, 0, 0),
        (60, 0, 0, 0),
        (120, 0, 0, 1),
        (120, 5, 0, 1),
        (-1, 0, -3_601, 999_999_999),
    ];
    for (later, later_nanos, earlier, earlier_nanos) in pairs {
        let a = DateTime::from_timestamp(later, later_nanos).unwrap();
        let b = DateTime::from_timestamp(earlier, earlier_nanos).unwrap();
        assert_eq!(
            UnixTime::from(a).minutes_since(UnixTime::from(b)),
            a.signed_duration_since(b).num_minutes(),
            "{a} {b}"
        );
    }
}

proptest! {
    #[test]
    fn the_clock_is_chronos_at_random(
        zone in 0..ZONES.len(),
        // 1880 to 2220: through both edges of the table.
        seconds in -2_840_000_000i64..7_880_000_000,
        nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000],
    ) {
        let instant = DateTime::from_timestamp(seconds, nanos).unwrap();
        agrees_with_chrono(ZoneClock::new(ZONES[zone]), instant);
    }
}
