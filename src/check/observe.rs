//! What `run` watches in the export so that `report` can tell whether a message brought a
//! patient back: the booking fields (`bookings`), the visit fields (`visits`), the `booked_at`
//! column, and the windows in which a booking or a visit is credited to a send (`attribution`,
//! `revisit`). Checked here, lowered into [`Observed`].

use super::{Checker, Declarations};
use crate::diagnostic::{self, suggest, Code};
use crate::source::Spanned;
use crate::syntax::{Ident, Statement};
use crate::values::{Duration, DurationUnit};

/// Booking fields the rules use when they say nothing: the first of these they declare.
pub const DEFAULT_BOOKINGS: [&str; 2] = ["next_booking_at", "appointment_at"];
/// Visit fields the rules use when they say nothing.
pub const DEFAULT_VISITS: [&str; 2] = ["visited_at", "last_visit_at"];
/// The column that says when a booking was made, when the export has it.
pub const BOOKED_AT: &str = "booked_at";
/// `attribution` when not given: a booking within 14 days of a send counts for it.
pub const DEFAULT_ATTRIBUTION: Duration = Duration {
    amount: 14,
    unit: DurationUnit::Days,
};
/// `revisit` when not given: a visit within 90 days of a send counts for it.
pub const DEFAULT_REVISIT: Duration = Duration {
    amount: 90,
    unit: DurationUnit::Days,
};
/// The range of `attribution` and `revisit`, as the help text says it.
pub const WINDOW_RANGE: &str = "a window is 1 hour to 1 year: from `1h` (`60m`) up to `1y`, \
     `12mo`, `52w`, `366d` or `8784h`";

/// What `run` observes and how `report` credits it. Field indexes are into the rules'
/// `dates` (the record's `dates`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Date fields holding the patient's next booking.
    pub bookings: Vec<usize>,
    /// Date fields holding the patient's last visit.
    pub visits: Vec<usize>,
    /// The `booked_at` date field, when declared: when a new booking was made.
    pub booked_at: Option<usize>,
    /// How long after a send a booking is credited to it.
    pub attribution: Duration,
    /// How long after a send a visit is credited to it.
    pub revisit: Duration,
}

impl Observed {
    /// Whether `run` has anything to watch.
    pub fn is_empty(&self) -> bool {
        self.bookings.is_empty() && self.visits.is_empty()
    }
}

/// The settings as written, gathered with the other declarations.
#[derive(Debug, Default)]
pub(super) struct ObserveSettings {
    bookings: Option<Vec<Ident>>,
    visits: Option<Vec<Ident>>,
    attribution: Option<Duration>,
    revisit: Option<Duration>,
}

/// Whether `duration` is a usable attribution or revisit window.
fn window_in_range(duration: Duration) -> bool {
    let (min, max) = match duration.unit {
        DurationUnit::Minutes => (60, 366 * 24 * 60),
        DurationUnit::Hours => (1, 366 * 24),
        DurationUnit::Days => (1, 366),
        DurationUnit::Weeks => (1, 52),
        DurationUnit::Months => (1, 12),
        DurationUnit::Years => (1, 1),
    };
    (min..=max).contains(&duration.amount)
}

impl Checker<'_> {
    /// Takes one of the four settings (any other statement is left to `declarations`).
    pub(super) fn observe_setting(&mut self, statement: &Statement) {
        match statement {
            Statement::Bookings(names) | Statement::Visits(names) => {
                let is_bookings = matches!(statement, Statement::Bookings(_));
                let name = if is_bookings { "bookings" } else { "visits" };
                let span = match (names.first(), names.last()) {
                    (Some(first), Some(last)) => first.span.to(last.span),
                    _ => return,
                };
                if self.first_setting(name, span) {
                    let slot = if is_bookings {
                        &mut self.decls.observe.bookings
                    } else {
                        &mut self.decls.observe.visits
                    };
                    *slot = Some(names.clone());
                }
            }
            Statement::Attribution(window) | Statement::Revisit(window) => {
                let is_attribution = matches!(statement, Statement::Attribution(_));
                let name = if is_attribution {
                    "attribution"
                } else {
                    "revisit"
                };
                if self.first_setting(name, window.span) && self.window(window) {
                    let slot = if is_attribution {
                        &mut self.decls.observe.attribution
                    } else {
                        &mut self.decls.observe.revisit
                    };
                    *slot = Some(window.node);
                }
            }
            _ => {}
        }
    }

    /// Reports a window that is zero, shorter than an hour or longer than a year.
    fn window(&mut self, window: &Spanned<Duration>) -> bool {
        if window.node.amount == 0 {
            self.report(
                Code::InvalidDuration,
                window.span,
                format!("`{}` is zero", window.node),
            )
            .help = Some(WINDOW_RANGE.into());
            return false;
        }
        if window_in_range(window.node) {
            return true;
        }
        let diag = self.report(
            Code::DurationOutOfRange,
            window.span,
            format!("`{}` is outside the range of a window", window.node),
        );
        diag.label = Some("out of range".into());
        diag.help = Some(WINDOW_RANGE.into());
        false
    }

    /// Resolves the settings against the declared date fields, reporting names that are not
    /// date fields and names given twice.
    pub(super) fn observed(&mut self) -> Observed {
        let settings = std::mem::take(&mut self.decls.observe);
        let mut taken: Vec<&Ident> = Vec::new();
        let bookings = self.observed_fields(settings.bookings.as_deref(), &DEFAULT_BOOKINGS);
        let visits = self.observed_fields(settings.visits.as_deref(), &DEFAULT_VISITS);
        for name in settings
            .bookings
            .iter()
            .chain(settings.visits.iter())
            .flatten()
        {
            match taken.iter().find(|t| t.node == name.node) {
                Some(first) => {
                    let diag = self.report(
                        Code::DuplicateDeclaration,
                        name.span,
                        format!("`{}` is already watched", name.node),
                    );
                    diag.label = Some("named again here".into());
                    diag.related.push(diagnostic::Related {
                        span: first.span,
                        label: "first named here".into(),
                    });
                    diag.help = Some(
                        "a field is either a booking or a visit; name it in one of `bookings` \
                         and `visits`, once"
                            .into(),
                    );
                }
                None => taken.push(name),
            }
        }
        let booked_at = self.decls.dates.iter().position(|d| d.node == BOOKED_AT);
        Observed {
            bookings,
            visits,
            booked_at,
            attribution: settings.attribution.unwrap_or(DEFAULT_ATTRIBUTION),
            revisit: settings.revisit.unwrap_or(DEFAULT_REVISIT),
        }
    }

    /// The date fields `names` stand for, or the declared ones among `defaults`.
    fn observed_fields(&mut self, names: Option<&[Ident]>, defaults: &[&str]) -> Vec<usize> {
        let Some(names) = names else {
            return defaults
                .iter()
                .filter_map(|name| date_index(&self.decls, name))
                .collect();
        };
        let mut indexes = Vec::new();
        for name in names {
            match date_index(&self.decls, &name.node) {
                Some(index) if !indexes.contains(&index) => indexes.push(index),
                Some(_) => {}
                None => self.not_a_date_field(name),
            }
        }
        indexes
    }

    fn not_a_date_field(&mut self, name: &Ident) {
        if self.field_kind(&name.node).is_some() {
            self.report(
                Code::NotADateField,
                name.span,
                format!("`{}` is not a declared date field", name.node),
            )
            .help = Some(format!(
                "bookings and visits are instants in the export: declare `{}` in `dates` (and \
                 not in `fields`), or name a field that is",
                name.node
            ));
            return;
        }
        let dates = self.decls.dates.iter().map(|d| d.node.as_str());
        let help = match suggest(&name.node, dates) {
            Some(date) => format!("did you mean `{date}`?"),
            None => format!("declare it first: `dates {}`", name.node),
        };
        self.report(
            Code::UnknownField,
            name.span,
            format!("unknown date field `{}`", name.node),
        )
        .help = Some(help);
    }
}

fn date_index(decls: &Declarations, name: &str) -> Option<usize> {
    decls.dates.iter().position(|d| d.node == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_run_from_an_hour_to_a_year() {
        let window = |amount, unit| window_in_range(Duration { amount, unit });
        assert!(window(60, DurationUnit::Minutes));
        assert!(!window(59, DurationUnit::Minutes));
        assert!(window(1, DurationUnit::Hours));
        assert!(window(366, DurationUnit::Days));
        assert!(!window(367, DurationUnit::Days));
        assert!(window(52, DurationUnit::Weeks));
        assert!(!window(53, DurationUnit::Weeks));
        assert!(window(12, DurationUnit::Months));
        assert!(!window(13, DurationUnit::Months));
        assert!(window(1, DurationUnit::Years));
        assert!(!window(2, DurationUnit::Years));
        assert!(!window(8785, DurationUnit::Hours));
    }
}
