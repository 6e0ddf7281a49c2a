//! `check` on reactions and `after sent` timings.

use crate::check::{check_file, CheckOutcome};
use crate::diagnostic::Code;
use crate::source::SourceFile;
use crate::template::TemplateStore;

const HEADER: &str = "stages first_visit\ndates last_visit_at\n";

fn check(rules: &str) -> CheckOutcome {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b"] {
        std::fs::write(dir.path().join(format!("{name}.toml")), "text = \"x\"").unwrap();
    }
    let file = SourceFile::new("t.step", format!("{HEADER}{rules}"));
    check_file(&file, &mut TemplateStore::new(dir.path()))
}

/// (code, message, help) of each finding other than the unused templates.
fn found(outcome: &CheckOutcome) -> Vec<(&'static str, String, String)> {
    (outcome.diagnostics.iter())
        .filter(|d| d.code != Code::UnusedTemplate)
        .map(|d| {
            let help = d.help.clone().unwrap_or_default();
            (d.code.name(), d.message.clone(), help)
        })
        .collect()
}

const SURVEY: &str = "step survey: when stage=first_visit after 4d send a\n";

#[test]
fn the_issues_example_checks_with_one_warning_without_track() {
    let outcome = check(&format!(
        "{SURVEY}step survey_again: when stage=first_visit 3d after sent survey at 12:00 send b unless clicked survey\n"
    ));
    let found = found(&outcome);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "reaction-never-recorded");
    assert!(found[0].2.contains("track"), "{found:?}");
    let rules = outcome.rules.expect("a warning only");
    assert_eq!(
        rules.steps[1].timing.anchor,
        crate::check::AnchorField::Sent(0)
    );
}

#[test]
fn an_unknown_step_is_an_error_with_a_suggestion() {
    let outcome = check(&format!(
        "{SURVEY}step again: when stage=first_visit 3d after sent survye send b unless clicked servey\n"
    ));
    let found = found(&outcome);
    let unknown: Vec<_> = found.iter().filter(|f| f.0 == "unknown-step").collect();
    assert_eq!(unknown.len(), 2, "{found:?}");
    assert_eq!(unknown[0].1, "unknown step `survye`");
    assert_eq!(unknown[0].2, "did you mean `survey`?");
    assert_eq!(unknown[1].1, "unknown step `servey`");
    assert!(outcome.rules.is_none());
}

#[test]
fn a_step_reacting_to_itself_or_a_cycle_of_after_sent_is_an_error() {
    let outcome = check(
        "step a1: when stage=first_visit after 1d send a unless booked since a1\n\
         step x: when stage=first_visit 1d after sent y send a\n\
         step y: when stage=first_visit 1d after sent z send a\n\
         step z: when stage=first_visit 1d after sent x send b\n\
         step me: when stage=first_visit 1d after sent me send b\n",
    );
    let messages: Vec<_> = (found(&outcome).into_iter())
        .filter(|f| f.0 == "reaction-cycle")
        .map(|f| f.1)
        .collect();
    assert_eq!(
        messages,
        [
            "step `a1` reacts to its own send",
            "steps wait for each other's sends: x → y → z → x",
            "step `me` is timed after its own send",
        ]
    );
}

#[test]
fn windows_are_bounded_to_a_year() {
    let outcome = check(&format!(
        "{SURVEY}step s2: when stage=first_visit and clicked survey within 100y 1d after sent survey send b unless booked since survey within 0d\n\
         step s3: when stage=first_visit 2y after sent survey send b\n\
         step s5: when stage=first_visit 101y after sent survey send b unless clicked survey within 999y\n\
         step s4: when stage=first_visit and answered survey \"yes\" within 12mo 366d after sent survey send b\n"
    ));
    let ranges: Vec<_> = (found(&outcome).into_iter())
        .filter(|f| f.0 == "duration-out-of-range")
        .map(|f| f.1)
        .collect();
    assert_eq!(
        ranges,
        [
            "`100y` is longer than 1 year",
            "`0d` is zero",
            "`2y` is longer than 1 year",
            "`101y` is longer than 100 years",
            "`999y` is longer than 1 year",
        ]
    );
}

#[test]
fn reactions_nothing_records_are_warnings_and_blocked_is_not() {
    let outcome = check(&format!(
        "{SURVEY}step s2: when stage=first_visit 1d after sent survey send b unless answered survey \"yes\" or booked since survey or blocked\n"
    ));
    let warned: Vec<_> = (found(&outcome).into_iter())
        .filter(|f| f.0 == "reaction-never-recorded")
        .map(|f| f.1)
        .collect();
    assert_eq!(
        warned,
        [
            "this reaction can never be true: no postback is tracked",
            "this reaction can never be true: no booking field is watched",
        ]
    );
}

#[test]
fn a_reaction_word_alone_lists_the_reaction_conditions() {
    let outcome = check("step s: when stage=first_visit and clicked after 1d send a\n");
    let found = found(&outcome);
    assert_eq!(found[0].0, "unknown-field", "{found:?}");
    for condition in [
        "clicked STEP",
        "answered STEP",
        "booked since STEP",
        "blocked",
    ] {
        assert!(
            found[0].2.contains(condition),
            "{condition}: {}",
            found[0].2
        );
    }
}

#[test]
fn after_sent_without_a_step_says_how_to_name_one() {
    let outcome = check(&format!(
        "{SURVEY}step a: when stage=first_visit 3d after sent at 12:00 send b\n"
    ));
    let found = found(&outcome);
    assert_eq!(found[0].0, "not-a-date-field", "{found:?}");
    assert!(found[0].2.contains("`3d after sent survey`"), "{found:?}");
}
