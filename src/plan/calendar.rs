//! The plan's side of the clinic calendar: a rule's duration as a calendar step, and moving a
//! send out of quiet hours. The calendar itself is [`crate::time`].

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

use crate::time::{local_to_utc, wall_clock, Offset};
use crate::values::{ClockTime, Duration, DurationUnit, QuietHours};

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
    let local = wall_clock(instant, tz);
    let clock = ClockTime {
        hour: local.hour(),
        minute: local.minute(),
    };
    if !quiet.contains(clock) {
        return instant;
    }
    let date = local.date();
    let wraps = quiet.from > quiet.to;
    // In a window that wraps midnight, the evening part ends tomorrow morning.
    let end_date = if wraps && clock >= quiet.from {
        date.succ_opt().unwrap_or(date)
    } else {
        date
    };
    local_to_utc(end_date.and_time(quiet.to.naive()), tz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Tokyo;

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
}
