//! Instants as Unix seconds, and the clinic's calendar on them with the zone's table of
//! offsets taken once. The evaluator places every occurrence of every step of every patient
//! (`at` times, quiet hours, expiry, the cap's days); through chrono each of those steps turned
//! a `DateTime` into seconds and back and looked the zone's table up again, and that was most
//! of what placing cost. Here they are integer sums; a `DateTime` is built only for the sends
//! kept. Wherever the table declines (a gap, an overlap, before 1900 or after 2200) or an
//! instant has a leap second's nanoseconds, the answer is chrono's, from the functions of
//! [`super::calendar`] and [`super::zone`], so both ways give the same instants.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

use super::calendar::{move_on_the_wall, CALENDAR_END, CALENDAR_START};
use super::civil::{self, DAY};
use super::offsets::ZoneTable;
use super::{at_time, local_date, local_to_utc, next_day, next_week, shift, ClockTime, Offset};

/// Nanoseconds in a second: a `DateTime`'s nanoseconds reach past it only in a leap second.
const NANOS_PER_SECOND: u32 = 1_000_000_000;

/// The calendar's ends ([`super::calendar_start`], [`super::calendar_end`]) as seconds.
const FIRST: UnixTime = UnixTime {
    seconds: CALENDAR_START.timestamp(),
    nanos: CALENDAR_START.timestamp_subsec_nanos(),
};
const LAST: UnixTime = UnixTime {
    seconds: CALENDAR_END.timestamp(),
    nanos: CALENDAR_END.timestamp_subsec_nanos(),
};

/// An instant as `DateTime<Utc>` holds it, Unix seconds and the nanoseconds past them, ordered
/// as the instants are; only cheaper to add to and compare.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime {
    pub seconds: i64,
    /// Under 1,000,000,000 except in a leap second, as chrono keeps it.
    pub nanos: u32,
}

impl UnixTime {
    /// A whole second.
    pub const fn at(seconds: i64) -> UnixTime {
        UnixTime { seconds, nanos: 0 }
    }

    /// The instant as chrono's: one index into a table of dates for 1900–2199. An instant
    /// made from a `DateTime` (or by [`ZoneClock`], which stays inside the calendar) always
    /// has one; anything else is taken to the calendar's nearer end rather than a panic.
    pub fn utc(self) -> DateTime<Utc> {
        civil::instant(self.seconds, self.nanos).unwrap_or(if self.seconds < 0 {
            CALENDAR_START
        } else {
            CALENDAR_END
        })
    }

    /// `seconds` later (earlier when negative); `None` past `i64`.
    pub fn plus_seconds(self, seconds: i64) -> Option<UnixTime> {
        Some(UnixTime {
            seconds: self.seconds.checked_add(seconds)?,
            nanos: self.nanos,
        })
    }

    /// Whole minutes from `earlier` to `self`, rounded toward zero (chrono's
    /// `signed_duration_since(earlier).num_minutes()` for `self >= earlier`).
    pub fn minutes_since(self, earlier: UnixTime) -> i64 {
        let mut seconds = self.seconds.saturating_sub(earlier.seconds);
        if self.nanos < earlier.nanos {
            seconds = seconds.saturating_sub(1);
        }
        seconds / 60
    }
}

impl From<DateTime<Utc>> for UnixTime {
    fn from(instant: DateTime<Utc>) -> UnixTime {
        UnixTime {
            seconds: instant.timestamp(),
            nanos: instant.timestamp_subsec_nanos(),
        }
    }
}

/// A local day as days since 1970-01-01 and a time on it, to the minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallMinuteOf {
    pub day: i64,
    pub clock: ClockTime,
}

/// The clinic's zone with its table of offsets, looked up once (per evaluator) rather than
/// for every conversion: [`super::calendar`]'s arithmetic on [`UnixTime`]s.
#[derive(Debug, Clone, Copy)]
pub struct ZoneClock {
    tz: Tz,
    table: Option<&'static ZoneTable>,
}

impl ZoneClock {
    pub fn new(tz: Tz) -> ZoneClock {
        ZoneClock {
            tz,
            table: ZoneTable::of(tz),
        }
    }

    pub fn tz(self) -> Tz {
        self.tz
    }

    /// The wall clock at the UTC second `utc`, in seconds (Unix time of the wall clock read as
    /// UTC); `None` outside the table.
    fn wall_seconds(self, utc: i64) -> Option<i64> {
        utc.checked_add(self.table?.seconds_east_at(utc)?)
    }

    /// The one UTC second with the wall-clock second `wall`; `None` in a gap, an overlap or
    /// outside the table.
    fn utc_seconds(self, wall: i64) -> Option<i64> {
        wall.checked_sub(self.table?.seconds_east_of_local(wall)?)
    }

    /// The local day and clock time of `instant`, or `None` where the table does not answer
    /// (the caller asks chrono).
    pub fn wall_minute(self, instant: UnixTime) -> Option<WallMinuteOf> {
        let wall = self.wall_seconds(instant.seconds)?;
        let time = wall.rem_euclid(DAY);
        Some(WallMinuteOf {
            day: wall.div_euclid(DAY),
            // Under 86,400 seconds: the hour is under 24.
            clock: ClockTime {
                hour: (time / 3600) as u32,
                minute: (time % 3600 / 60) as u32,
            },
        })
    }

    /// `clock` (as [`ClockTime::naive`] takes it) on the local day `day`, when exactly one
    /// instant has it; `None` in a gap or an overlap or outside the table (the caller asks
    /// chrono, which keeps the one rule for those).
    pub fn on_day_at(self, day: i64, clock: ClockTime) -> Option<UnixTime> {
        let wall = day
            .checked_mul(DAY)?
            .checked_add(clock.seconds_since_midnight())?;
        self.utc_seconds(wall).map(UnixTime::at)
    }

    /// [`shift`] on Unix seconds.
    pub fn shift(self, instant: UnixTime, offset: Offset, backwards: bool) -> Option<UnixTime> {
        if instant.nanos < NANOS_PER_SECOND {
            let moved = match offset {
                Offset::Minutes(minutes) => {
                    let delta = minutes.checked_mul(60)?;
                    let delta = if backwards {
                        delta.checked_neg()?
                    } else {
                        delta
                    };
                    let moved = instant.plus_seconds(delta)?;
                    return (FIRST..=LAST).contains(&moved).then_some(moved);
                }
                // Inside the table, so inside the calendar.
                offset => self
                    .wall_seconds(instant.seconds)
                    .and_then(|wall| move_on_the_wall(wall, offset, backwards))
                    .and_then(|wall| self.utc_seconds(wall)),
            };
            if let Some(seconds) = moved {
                return Some(UnixTime {
                    seconds,
                    nanos: instant.nanos,
                });
            }
        }
        shift(instant.utc(), offset, backwards, self.tz).map(UnixTime::from)
    }

    /// [`at_time`] on Unix seconds: `clock` on the local day of `instant`; with the wall clock
    /// of the instant it made when the table made it, so that quiet hours need not read it
    /// again.
    pub fn at_time_on_wall(
        self,
        instant: UnixTime,
        clock: ClockTime,
    ) -> (UnixTime, Option<WallMinuteOf>) {
        let made = self.wall_minute(instant).and_then(|wall| {
            let at = self.on_day_at(wall.day, clock)?;
            // `on_day_at` reads the clock as `ClockTime::naive` does, within 23:59.
            let clock = ClockTime {
                hour: clock.hour.min(23),
                minute: clock.minute.min(59),
            };
            Some((
                at,
                WallMinuteOf {
                    day: wall.day,
                    clock,
                },
            ))
        });
        match made {
            Some((at, wall)) => (at, Some(wall)),
            None => (UnixTime::from(at_time(instant.utc(), clock, self.tz)), None),
        }
    }

    /// [`next_day`] on Unix seconds: the start of the next local day.
    pub fn next_day(self, instant: UnixTime) -> Option<UnixTime> {
        let fast = self
            .wall_minute(instant)
            .and_then(|wall| self.on_day_at(wall.day.checked_add(1)?, ClockTime::MIDNIGHT));
        match fast {
            Some(start) => Some(start),
            None => next_day(instant.utc(), self.tz).map(UnixTime::from),
        }
    }

    /// [`next_week`] on Unix seconds: the start of the next local Monday.
    pub fn next_week(self, instant: UnixTime) -> Option<UnixTime> {
        let fast = self.wall_minute(instant).and_then(|wall| {
            self.on_day_at(monday_of(wall.day).checked_add(7)?, ClockTime::MIDNIGHT)
        });
        match fast {
            Some(start) => Some(start),
            None => next_week(instant.utc(), self.tz).map(UnixTime::from),
        }
    }

    /// The local day of `instant`, as days since 1970-01-01 ([`local_date`]).
    pub fn local_day(self, instant: UnixTime) -> i64 {
        match self.wall_minute(instant) {
            Some(wall) => wall.day,
            None => days_of(local_date(instant.utc(), self.tz)),
        }
    }

    /// The first instant of the local day `day` (days since 1970-01-01), by the one rule for
    /// the hours daylight saving skips; `None` for a day beyond chrono's calendar.
    pub fn day_start(self, day: i64) -> Option<UnixTime> {
        if let Some(start) = self.on_day_at(day, ClockTime::MIDNIGHT) {
            return Some(start);
        }
        let (year, month, day) = civil::civil_from_days(day);
        let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
        Some(UnixTime::from(local_to_utc(
            date.and_time(NaiveTime::MIN),
            self.tz,
        )))
    }
}

/// A repeating step's instants from one anchor: the anchor shifted by `k` periods, for any
/// `k` ([`ZoneClock::shift`] by `period.times(k)`), with the anchor's wall clock and date read
/// once rather than for every `k`.
#[derive(Debug, Clone, Copy)]
pub struct Series {
    clock: ZoneClock,
    anchor: UnixTime,
    period: Offset,
    /// The anchor's wall clock, where the table gives it and the period is in days or months.
    wall: Option<AnchorWall>,
}

#[derive(Debug, Clone, Copy)]
struct AnchorWall {
    /// Unix time of the wall clock read as UTC.
    seconds: i64,
    /// Seconds into its day.
    time: i64,
    /// Its day as year, month and day of the month (for periods in months).
    date: (i64, u32, u32),
}

impl ZoneClock {
    /// The instants of a repeating step counting from `anchor` every `period`.
    pub fn series(self, anchor: UnixTime, period: Offset) -> Series {
        let wall = match period {
            Offset::Minutes(_) => None,
            _ if anchor.nanos >= NANOS_PER_SECOND => None,
            _ => self.wall_seconds(anchor.seconds).map(|seconds| AnchorWall {
                seconds,
                time: seconds.rem_euclid(DAY),
                date: match period {
                    Offset::Months(_) => civil::civil_from_days(seconds.div_euclid(DAY)),
                    _ => (0, 0, 0),
                },
            }),
        };
        Series {
            clock: self,
            anchor,
            period,
            wall,
        }
    }
}

impl Series {
    /// The anchor `k` periods later: [`ZoneClock::shift`]'s answer, with its wall-clock
    /// arithmetic (and its fall back to chrono where the table declines) as there.
    pub fn nth(&self, k: u32) -> Option<UnixTime> {
        let offset = self.period.times(k)?;
        if let Some(wall) = self.wall {
            let moved = match offset {
                Offset::Days(days) => i64::try_from(days)
                    .ok()
                    .and_then(|days| days.checked_mul(DAY))
                    .and_then(|delta| wall.seconds.checked_add(delta)),
                Offset::Months(months) => {
                    let (year, month, day) = wall.date;
                    civil::add_months_to(year, month, day, i64::from(months))
                        .and_then(|day| day.checked_mul(DAY))
                        .and_then(|day| day.checked_add(wall.time))
                }
                Offset::Minutes(_) => None,
            };
            if let Some(seconds) = moved.and_then(|moved| self.clock.utc_seconds(moved)) {
                return Some(UnixTime {
                    seconds,
                    nanos: self.anchor.nanos,
                });
            }
        }
        self.clock.shift(self.anchor, offset, false)
    }
}

/// The Monday on or before the day `day` (both as days since 1970-01-01).
pub fn monday_of(day: i64) -> i64 {
    day - civil::days_from_monday(day)
}

/// Days since 1970-01-01 of a chrono date.
pub(super) fn days_of(date: NaiveDate) -> i64 {
    civil::days_from_civil(i64::from(date.year()), date.month(), date.day())
}

#[cfg(test)]
#[path = "seconds_tests.rs"]
mod tests;
