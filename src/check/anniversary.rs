//! Timings on `birth_date`: a birthday comes back every year, but `0d after birth_date` counts
//! once from the day of birth, so it could only fire on that one day, long past.

use super::Checker;
use crate::diagnostic::Code;
use crate::fields::Field;
use crate::syntax::{Anchor, StepDecl};

impl Checker<'_> {
    /// Warns when a step counts once from `birth_date` (`D after` or `D before`, not `every`):
    /// its only occurrence is D from the day the patient was born.
    pub(super) fn birth_date_once(&mut self, step: &StepDecl) {
        let (duration, field, direction) = match &step.timing.anchor {
            Anchor::AfterField(duration, field) => (duration, field, "after"),
            Anchor::BeforeField(duration, field) => (duration, field, "before"),
            _ => return,
        };
        let birth_date = Field::BirthDate.name();
        if field.node != birth_date {
            return;
        }
        let at = step
            .timing
            .at
            .as_ref()
            .map(|at| format!(" at {}", at.node))
            .unwrap_or_default();
        let when = match (direction, duration.node.amount) {
            ("after", 0) => "on the day of birth".to_owned(),
            _ => format!("{} {direction} the day of birth", duration.node),
        };
        let diag = self.report(
            Code::BirthDateOnce,
            step.timing.span,
            format!(
                "`{} {direction} {birth_date}` fires once, {when}, not on each birthday",
                duration.node
            ),
        );
        diag.label = Some("once, from the day of birth".into());
        diag.help = Some(format!(
            "for each birthday write `every 1y after {birth_date}{at}`; a birthday on 02-29 \
             then falls on 02-28 in common years"
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::check::check_file;
    use crate::diagnostic::{Code, Diagnostic};
    use crate::source::SourceFile;
    use crate::template::TemplateStore;

    fn check(steps: &str) -> Vec<Diagnostic> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "text = \"x\"").unwrap();
        let steps = crate::check::privacy::as_care(steps);
        let text = format!("stages regular\ndates last_visit_at\nfields doctor\n{steps}");
        let file = SourceFile::new("t.step", text);
        check_file(&file, &mut TemplateStore::new(dir.path())).diagnostics
    }

    fn codes(steps: &str) -> Vec<&'static str> {
        check(steps).iter().map(|d| d.code.name()).collect()
    }

    #[test]
    fn only_a_once_timing_on_birth_date_warns() {
        assert_eq!(
            codes("step s: when stage=regular 0d after birth_date send a"),
            ["birth-date-once"]
        );
        assert_eq!(
            codes("step s: when stage=regular 1d before birth_date send a"),
            ["birth-date-once"]
        );
        assert!(codes("step s: when stage=regular every 1y after birth_date send a").is_empty());
        assert!(codes("step s: when stage=regular 0d after last_visit_at send a").is_empty());
        let warning = &check("step s: when stage=regular 0d after birth_date at 09:30 send a")[0];
        assert_eq!(warning.code, Code::BirthDateOnce);
        assert!(warning
            .help
            .as_deref()
            .unwrap()
            .contains("`every 1y after birth_date at 09:30`"));
    }

    #[test]
    fn a_series_on_a_field_is_checked_as_every_is() {
        // A zero or too short period, a `within` longer than it, and a field that holds no
        // date are errors, as for `every D` and `D after FIELD`.
        assert_eq!(
            codes("step s: when stage=regular every 0d after last_visit_at send a"),
            ["invalid-duration"]
        );
        assert_eq!(
            codes("step s: when stage=regular every 30m after last_visit_at send a"),
            ["duration-out-of-range"]
        );
        assert_eq!(
            codes("step s: when stage=regular every 1d after last_visit_at send a within 2d"),
            ["duration-out-of-range"]
        );
        assert_eq!(
            codes("step s: when stage=regular every 1y after doctor send a"),
            ["not-a-date-field"]
        );
    }

    #[test]
    fn an_unnamed_series_gets_an_id_from_its_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "text = \"x\"").unwrap();
        let file = SourceFile::new(
            "t.step",
            "stages regular\nwhen stage=regular every 1y after birth_date at 10:00 send a care\n",
        );
        let rules = check_file(&file, &mut TemplateStore::new(dir.path()))
            .rules
            .unwrap();
        assert_eq!(rules.steps[0].id, "a_every_1y_after_birth_date_at_1000");
    }
}
