//! The monthly trend the HTML report draws: LINE's figures for each of the six calendar months
//! ending with the month the report's period ends in, so that a clinic sees where this month
//! sits. One tally per month, each a bounded read of the ledger; the report's own two periods
//! are reused when they are those months.

use chrono::{Datelike, Months, NaiveDate};

use super::build::Report;
use super::period::Period;
use super::tally::{tally, Counts, Windows};
use crate::ledger::{LedgerError, ReadLedger, SinkKind};

/// How many months the trend covers.
pub const TREND_MONTHS: u32 = 6;

/// One calendar month's LINE deliveries and what was credited to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthFigures {
    /// The month's first day on the clinic's calendar.
    pub first: NaiveDate,
    pub line: Counts,
}

/// The [`TREND_MONTHS`] months ending with the month of the report's last day, oldest first.
pub fn monthly(
    ledger: &dyn ReadLedger,
    report: &Report,
    windows: &Windows,
) -> Result<Vec<MonthFigures>, LedgerError> {
    let periods = &report.periods;
    let Some(last_month) = periods.current.last.with_day(1) else {
        return Ok(Vec::new());
    };
    let mut months = Vec::new();
    for back in (0..TREND_MONTHS).rev() {
        // A month before the calendar's start (never for the years a report takes) is left out.
        let Some(first) = last_month.checked_sub_months(Months::new(back)) else {
            continue;
        };
        let Ok(period) = Period::month(first, report.timezone) else {
            continue;
        };
        let line = if period == periods.current {
            sum(report.rows.iter().map(|row| row.counts))
        } else if period == periods.previous {
            sum(report.rows.iter().map(|row| row.previous))
        } else {
            let arms = tally(ledger, &period, windows)?;
            sum(arms
                .into_iter()
                .filter(|(key, _)| key.sink == SinkKind::Line)
                .map(|(_, counts)| counts))
        };
        months.push(MonthFigures { first, line });
    }
    Ok(months)
}

fn sum(counts: impl Iterator<Item = Counts>) -> Counts {
    counts.fold(Counts::default(), |total, c| Counts {
        sent: total.sent + c.sent,
        clicked: total.clicked + c.clicked,
        booked: total.booked + c.booked,
        revisited: total.revisited + c.revisited,
        blocked: total.blocked + c.blocked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Claim, Ledger, SendDetails, SendKey, Settlement};
    use crate::report::period::{PeriodArgs, Periods};
    use chrono::{DateTime, Utc};

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// One LINE send of `step` to `patient`, delivered at `when`.
    fn deliver(ledger: &mut Ledger, patient: &str, step: &str, when: &str) {
        let key = SendKey {
            sink: SinkKind::Line,
            patient,
            step,
            occurrence: at(when),
        };
        let details = SendDetails {
            template: step,
            variant: None,
            due_at: key.occurrence,
            expires_at: key.occurrence + chrono::Duration::days(1),
            outbox_from: None,
        };
        let Claim::New { retry_key } = ledger.claim(&key, &details, key.occurrence).unwrap() else {
            panic!("claimed twice")
        };
        let sent = Settlement::Sent {
            request_id: Some("r".into()),
            note: None,
        };
        ledger
            .settle(&key, &retry_key, 1, &sent, key.occurrence)
            .unwrap();
    }

    fn report_for(periods: Periods) -> Report {
        Report {
            periods,
            timezone: chrono_tz::Asia::Tokyo,
            clinic: None,
            months: Vec::new(),
            reach: None,
            ledger_name: None,
            line: Default::default(),
            rows: Vec::new(),
            outbox: Vec::new(),
            experiments: Vec::new(),
            recommendations: Vec::new(),
        }
    }

    #[test]
    fn six_months_end_with_the_reports_month_at_the_clinics_midnights() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        // 23:59 on April 30th in Tokyo is April; 00:00 on May 1st is May.
        deliver(&mut ledger, "P1", "a", "2026-04-30T14:59:00Z");
        deliver(&mut ledger, "P2", "a", "2026-04-30T15:00:00Z");
        deliver(&mut ledger, "P3", "a", "2026-09-15T03:00:00Z");
        // Before the six months: not in them.
        deliver(&mut ledger, "P4", "a", "2026-03-15T03:00:00Z");
        let tokyo = chrono_tz::Asia::Tokyo;
        let periods = PeriodArgs::Range {
            from: "2026-10-01".into(),
            to: "2026-10-20".into(),
        }
        .resolve(tokyo, at("2026-11-01T00:00:00Z"))
        .unwrap();
        let months = monthly(&ledger, &report_for(periods), &Windows::default()).unwrap();
        let firsts: Vec<String> = months.iter().map(|m| m.first.to_string()).collect();
        assert_eq!(
            firsts,
            [
                "2026-05-01",
                "2026-06-01",
                "2026-07-01",
                "2026-08-01",
                "2026-09-01",
                "2026-10-01"
            ]
        );
        let sent: Vec<u64> = months.iter().map(|m| m.line.sent).collect();
        assert_eq!(sent, [1, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn the_reports_own_month_and_the_one_before_are_taken_from_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        let tokyo = chrono_tz::Asia::Tokyo;
        let periods = PeriodArgs::Month("2026-10".into())
            .resolve(tokyo, at("2026-11-01T00:00:00Z"))
            .unwrap();
        let mut report = report_for(periods);
        // Figures the empty ledger does not have: they can only come from the rows.
        report.rows.push(super::super::build::Row {
            key: crate::ledger::ArmKey {
                sink: SinkKind::Line,
                step: "a".into(),
                variant: None,
            },
            stage: None,
            in_rules: false,
            counts: Counts {
                sent: 7,
                clicked: 2,
                ..Counts::default()
            },
            previous: Counts {
                sent: 3,
                ..Counts::default()
            },
            opened: super::super::build::Opened::NotMeasured,
        });
        let months = monthly(&ledger, &report, &Windows::default()).unwrap();
        assert_eq!(months.len(), 6);
        assert_eq!((months[5].line.sent, months[5].line.clicked), (7, 2));
        assert_eq!(months[4].line.sent, 3);
        assert_eq!(months[0].line.sent, 0);
    }
}
