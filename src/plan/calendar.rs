//! The plan's side of the clinic calendar: a rule's duration as a calendar step, and moving a
//! send out of quiet hours. The calendar itself is [`crate::time`].

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::time::{wall_minute, Offset, UnixTime, WallMinuteOf, ZoneClock};
use crate::values::{Duration, DurationUnit, QuietHours};

// `Offset` lives in `time`; turning a written duration into one needs the syntax tree's
// duration, which `time` must not import.
impl Offset {
    pub fn of(duration: Duration) -> Offset {
        let amount = duration.amount;
        match duration.unit {
            DurationUnit::Minutes => Offset::Minutes(i64::from(amount)),
            DurationUnit::Hours => Offset::Minutes(i64::from(amount) * 60),
            DurationUnit::Days => Offset::Days(u64::from(amount)),
            DurationUnit::Weeks => Offset::Days(u64::from(amount) * 7),
            DurationUnit::Months => Offset::Months(amount),
            // Saturating is exact enough: u32::MAX months is beyond the calendar, which
            // `shift` reports as `None`, as it would the true value.
            DurationUnit::Years => Offset::Months(amount.saturating_mul(12)),
        }
    }
}

/// If `instant` is inside quiet hours, the end of that quiet window; otherwise `instant`.
pub fn leave_quiet(instant: DateTime<Utc>, quiet: Option<QuietHours>, tz: Tz) -> DateTime<Utc> {
    let Some(quiet) = quiet else {
        return instant;
    };
    let wall = wall_minute(instant, tz);
    if !quiet.contains(wall.clock) {
        return instant;
    }
    // In a window that wraps midnight, the evening part ends tomorrow morning (or, on
    // chrono's last day, that morning).
    let wraps = quiet.from > quiet.to;
    if wraps && wall.clock >= quiet.from {
        if let Some(end) = wall.days_later_at(1, quiet.to, tz) {
            return end;
        }
    }
    wall.at(quiet.to, tz)
}

/// [`leave_quiet`] on Unix seconds, with the zone's table taken once: the evaluator's way.
/// Where the table does not answer (a quiet window ending in a gap or an overlap, times
/// outside 1900–2200), [`leave_quiet`] does.
pub fn leave_quiet_at(instant: UnixTime, quiet: Option<QuietHours>, clock: ZoneClock) -> UnixTime {
    leave_quiet_on_wall(instant, None, quiet, clock)
}

/// [`leave_quiet_at`] for an instant whose wall clock the caller knows already (it just made
/// the instant from it, [`ZoneClock::at_time_on_wall`]); `None` reads it from the zone.
pub fn leave_quiet_on_wall(
    instant: UnixTime,
    wall: Option<WallMinuteOf>,
    quiet: Option<QuietHours>,
    clock: ZoneClock,
) -> UnixTime {
    let Some(quiet) = quiet else {
        return instant;
    };
    let by_chrono = || UnixTime::from(leave_quiet(instant.utc(), Some(quiet), clock.tz()));
    let Some(wall) = wall.or_else(|| clock.wall_minute(instant)) else {
        return by_chrono();
    };
    if !quiet.contains(wall.clock) {
        return instant;
    }
    // In a window that wraps midnight, the evening part ends tomorrow morning.
    let day = match quiet.from > quiet.to && wall.clock >= quiet.from {
        true => wall.day.checked_add(1),
        false => Some(wall.day),
    };
    day.and_then(|day| clock.on_day_at(day, quiet.to))
        .unwrap_or_else(by_chrono)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Tokyo;

    use crate::values::ClockTime;

    use crate::time::tokyo::{show, tokyo};

    #[test]
    fn quiet_hours_move_to_the_window_end() {
        let quiet = Some(QuietHours {
            from: ClockTime {
                hour: 21,
                minute: 0,
            },
            to: ClockTime { hour: 9, minute: 0 },
        });
        let cases = [
            ("2026-11-25 22:30", "2026-11-26 09:00"),
            ("2026-11-26 03:00", "2026-11-26 09:00"),
            ("2026-11-26 09:00", "2026-11-26 09:00"),
            ("2026-11-26 20:59", "2026-11-26 20:59"),
        ];
        for (at, expected) in cases {
            assert_eq!(show(leave_quiet(tokyo(at), quiet, Tokyo)), expected, "{at}");
        }
        let lunch = Some(QuietHours {
            from: ClockTime {
                hour: 12,
                minute: 0,
            },
            to: ClockTime {
                hour: 13,
                minute: 0,
            },
        });
        assert_eq!(
            show(leave_quiet(tokyo("2026-11-26 12:10"), lunch, Tokyo)),
            "2026-11-26 13:00"
        );
    }

    #[test]
    fn quiet_hours_end_on_the_wall_clock_across_daylight_saving() {
        use chrono::{NaiveDateTime, Timelike};
        use chrono_tz::America::New_York;

        use crate::time::{local_to_utc, wall_clock};
        // 01:00–03:00 New York: the spring night skips 02:00–03:00, the autumn night repeats
        // 01:00–02:00; and the evening window that wraps midnight.
        let windows = [((1, 0), (3, 0)), ((21, 0), (9, 0)), ((0, 30), (2, 30))];
        let wall = |text: &str| {
            let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
            local_to_utc(naive, New_York)
        };
        for ((fh, fm), (th, tm)) in windows {
            let quiet = QuietHours {
                from: ClockTime {
                    hour: fh,
                    minute: fm,
                },
                to: ClockTime {
                    hour: th,
                    minute: tm,
                },
            };
            for start in ["2026-03-07 18:00", "2026-10-31 18:00"] {
                let mut at = wall(start);
                for _ in 0..(36 * 4) {
                    // The old way, through chrono's calendar.
                    let local = wall_clock(at, New_York);
                    let clock = ClockTime {
                        hour: local.hour(),
                        minute: local.minute(),
                    };
                    let expected = if !quiet.contains(clock) {
                        at
                    } else {
                        let date = local.date();
                        let date = match quiet.from > quiet.to && clock >= quiet.from {
                            true => date.succ_opt().unwrap(),
                            false => date,
                        };
                        local_to_utc(date.and_time(quiet.to.naive()), New_York)
                    };
                    assert_eq!(leave_quiet(at, Some(quiet), New_York), expected, "{at}");
                    let clock = ZoneClock::new(New_York);
                    let on_seconds = leave_quiet_at(UnixTime::from(at), Some(quiet), clock);
                    assert_eq!(on_seconds, UnixTime::from(expected), "{at} on seconds");
                    at += chrono::Duration::minutes(15);
                }
            }
        }
    }
}
